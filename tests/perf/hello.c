/* hello.c - perf ceiling: the smallest JSON endpoint on the same stack as the
 * daemons (libcommon's lc_svc_instance_init / lc_svc_start: ulfius +
 * GnuTLS, same limits wrapper, same connection/idle settings as the
 * gateway's defaults). GET /hello answers {"hello":"world"}.
 *
 *   perf-hello PORT CERT_FILE KEY_FILE    (runs until SIGINT/SIGTERM)
 *
 * Used by tests/perf/bench.sh only; not installed, not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ulfius.h>

#include "lc/err.h"
#include "lc/svc.h"
#include "lc/util.h"

static int hello_cb(const struct _u_request *req, struct _u_response *resp, void *ud) {
  (void)req;
  (void)ud;
  static const char body[] = "{\"hello\":\"world\"}";
  ulfius_set_string_body_response(resp, 200, body);
  u_map_put(resp->map_header, "Content-Type", "application/json");
  return U_CALLBACK_COMPLETE;
}

int main(int argc, char **argv) {
  char err[LC_ERR_LEN] = "", *cert = NULL, *key = NULL;
  struct _u_instance inst;
  int64_t port = 0;
  size_t len = 0;
  int status = EXIT_FAILURE, inst_ok = 0, started = 0;

  if (argc != 4 || lc_parse_i64(argv[1], 1, 65535, &port) != LC_OK) {
    fprintf(stderr, "usage: perf-hello PORT CERT_FILE KEY_FILE\n");
    return EXIT_FAILURE;
  }
  if (lc_global_init() != LC_OK || lc_svc_block_signals() != LC_OK) {
    fprintf(stderr, "perf-hello: init failed\n");
    return EXIT_FAILURE;
  }
  if (lc_read_file(argv[2], 1 << 20, &cert, &len, err) != LC_OK ||
      lc_read_file(argv[3], 1 << 20, &key, &len, err) != LC_OK) {
    fprintf(stderr, "perf-hello: TLS material: %s\n", err);
    goto out;
  }
  if (lc_svc_instance_init(&inst, "127.0.0.1", (int)port, 0, err) != LC_OK) {
    fprintf(stderr, "perf-hello: %s\n", err);
    goto out;
  }
  inst_ok = 1;
  if (lc_svc_route(&inst, "GET", "/hello", LC_PRIO_APP, hello_cb, NULL) != LC_OK) {
    fprintf(stderr, "perf-hello: route registration failed\n");
    goto out;
  }
  if (lc_svc_start(&inst, key, cert, 1024, 30, err) != LC_OK) {
    fprintf(stderr, "perf-hello: cannot start: %s\n", err);
    goto out;
  }
  started = 1;
  fprintf(stderr, "perf-hello: listening on https://127.0.0.1:%lld/hello\n", (long long)port);
  lc_svc_wait();
  status = EXIT_SUCCESS;
out:
  if (started)
    ulfius_stop_framework(&inst);
  if (inst_ok)
    ulfius_clean_instance(&inst);
  free(cert);
  free(key);
  return status;
}
