/* itest_main.c - runner of libcommon's integration tests (real PostgreSQL
 * and RabbitMQ). URLs from LC_TEST_PG_URL and LC_TEST_AMQP_URL (defaults:
 * the local dev stack). Prints Check's summary line; exit status is
 * non-zero when any test failed. Run under valgrind with CK_FORK=no. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "lc/err.h"
#include "lc/log.h"
#include "lc/util.h"

Suite *lc_db_suite(void);
Suite *lc_amqp_suite(void);
const char *itest_pg_url(void);
const char *itest_amqp_url(void);

const char *itest_pg_url(void) {
  const char *u = getenv("LC_TEST_PG_URL");
  return u != NULL && u[0] != '\0' ? u : "postgresql://postgres@127.0.0.1:25432/saas";
}

const char *itest_amqp_url(void) {
  const char *u = getenv("LC_TEST_AMQP_URL");
  return u != NULL && u[0] != '\0' ? u : "amqp://guest:guest@127.0.0.1:26672/%2f";
}

int main(void) {
  SRunner *sr;
  int failed;

  if (lc_global_init() != LC_OK) {
    fprintf(stderr, "lc_global_init failed\n");
    return EXIT_FAILURE;
  }
  sr = srunner_create(lc_db_suite());
  srunner_add_suite(sr, lc_amqp_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  lc_log_close();
  lc_global_cleanup();
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
