/* amqp_pub.c - test tool: publishes the message read from stdin to an
 * exchange through lc_amqp_publish (publisher confirms), count times.
 *
 *   AMQP_URL=amqp://... amqp_pub EXCHANGE ROUTING_KEY MESSAGE_ID [COUNT]
 *
 * Used by tests/e2e/test_chain.py to deliver duplicates of a real debit
 * envelope and poison messages (Python has no AMQP client in its stdlib).
 * Exit 0 when every publish was confirmed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/amqp.h"
#include "lc/util.h"

#define BODY_MAX (1024 * 1024)

int main(int argc, char **argv)
{
  const char *url = getenv("AMQP_URL");
  char err[LC_ERR_LEN] = "", *body;
  lc_amqp_pub *pub = NULL;
  int64_t count = 1;
  size_t n;
  int ret = EXIT_FAILURE;

  if (argc < 4 || argc > 5 || url == NULL ||
      (argc == 5 && lc_parse_i64(argv[4], 1, 100000, &count) != LC_OK)) {
    fprintf(stderr, "usage: AMQP_URL=... amqp_pub EXCHANGE ROUTING_KEY MESSAGE_ID [COUNT] < body\n");
    return EXIT_FAILURE;
  }
  body = lc_xmalloc(BODY_MAX + 1);
  n = fread(body, 1, BODY_MAX, stdin);
  body[n] = '\0';
  if (lc_amqp_pub_open(url, &pub, err) != LC_OK) {
    fprintf(stderr, "amqp_pub: %s\n", err);
    goto out;
  }
  for (int64_t i = 0; i < count; i++) {
    if (lc_amqp_publish(pub, argv[1], argv[2], argv[3], body, n, 5000, err) != LC_OK) {
      fprintf(stderr, "amqp_pub: publish %lld: %s\n", (long long)i, err);
      goto out;
    }
  }
  ret = EXIT_SUCCESS;
out:
  if (pub != NULL)
    lc_amqp_pub_close(pub);
  free(body);
  return ret;
}
