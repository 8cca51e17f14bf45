/* test_main.c - libcommon unit test runner: composes the per-module suites,
 * prints Check's summary line and exits non-zero on any failure.
 * Run under valgrind with CK_FORK=no. */
#include <stdlib.h>

#include "lc/http.h"
#include "lc/util.h"
#include "lc_tests.h"

int main(void) {
  SRunner *sr;
  int failed;
  if (lc_global_init() != 0) return EXIT_FAILURE;
  sr = srunner_create(util_suite());
  srunner_add_suite(sr, cfg_suite());
  srunner_add_suite(sr, msg_suite());
  srunner_add_suite(sr, jwt_suite());
  srunner_add_suite(sr, iauth_suite());
  srunner_add_suite(sr, stream_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  lc_http_thread_cleanup();
  lc_global_cleanup();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
