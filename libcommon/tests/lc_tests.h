/* lc_tests.h - suite constructors composed by test_main.c. */
#ifndef LC_TESTS_H
#define LC_TESTS_H

#include <check.h>

Suite *util_suite(void);
Suite *cfg_suite(void);
Suite *iauth_suite(void);
Suite *jwt_suite(void);
Suite *msg_suite(void);
Suite *stream_suite(void);

#endif
