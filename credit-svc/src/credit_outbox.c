/* credit_outbox.c - outbox relay thread; see credit_outbox.h. */
#include "credit_outbox.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "credit_ledger.h"
#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"

#define PUBLISH_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* Marks ids (a Postgres array literal of UUIDs) sent, or bumps attempts. */
static int mark_rows(PGconn *c, const char *sql, const char *arr, char err[LC_ERR_LEN]) {
  const char *p[1] = {arr};
  return lc_db_exec(c, sql, 1, p, NULL, err);
}

int credit_outbox_drain(lc_db_pool *pool, lc_amqp_pub *pub, const char *exchange, int *sent,
                        char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  PGresult *r = NULL;
  /* "{" + 100 * (36 + 1) + "}" */
  char acked[CREDIT_OUTBOX_BATCH * 37 + 4];
  size_t alen = 0;
  int pubrc = LC_OK, nacked = 0, failed_row = -1;
  *sent = 0;
  int rc = lc_db_acquire(pool, &c, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    goto out;
  rc = lc_db_exec(c,
                  "SELECT id::text, routing_key, payload FROM outbox WHERE sent_at IS NULL"
                  " ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED",
                  0, NULL, &r, err);
  if (rc != LC_OK)
    goto out;
  acked[alen++] = '{';
  for (int i = 0; i < PQntuples(r); i++) {
    const char *id = PQgetvalue(r, i, 0), *rk = PQgetvalue(r, i, 1), *pl = PQgetvalue(r, i, 2);
    size_t plen = (size_t)PQgetlength(r, i, 2);
    char perr[LC_ERR_LEN] = "";
    pubrc = lc_amqp_publish(pub, exchange, rk, id, pl, plen, PUBLISH_TIMEOUT_MS, perr);
    if (pubrc != LC_OK) {
      lc_err_set(err, pubrc, "publish %s: %s", id, perr);
      failed_row = i;
      break;
    }
    alen += (size_t)snprintf(acked + alen, sizeof(acked) - alen, "%s%s", nacked ? "," : "", id);
    nacked++;
  }
  acked[alen++] = '}';
  acked[alen] = '\0';
  if (nacked > 0) {
    rc = mark_rows(c, "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::uuid[])", acked, err);
    if (rc != LC_OK)
      goto out;
  }
  if (failed_row >= 0) {
    char one[40];
    snprintf(one, sizeof(one), "{%s}", PQgetvalue(r, failed_row, 0));
    char e2[LC_ERR_LEN];
    rc = mark_rows(c, "UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1::uuid[])", one,
                   e2);
    if (rc != LC_OK)
      goto out;
  }
  rc = lc_db_commit(c, err);
  if (rc == LC_OK) {
    *sent = nacked;
    if (nacked > 0)
      lc_metric_add("credit_outbox_published_total", (uint64_t)nacked);
  }
out:
  PQclear(r);
  if (rc != LC_OK)
    lc_db_rollback(c);
  lc_db_release(pool, c);
  if (rc == LC_OK && pubrc != LC_OK)
    return pubrc;
  return rc;
}

/* ---- LISTEN connection ---- */

static PGconn *listen_open(const char *conninfo) {
  if (conninfo == NULL)
    return NULL;
  PGconn *c = PQconnectdb(conninfo);
  if (c == NULL || PQstatus(c) != CONNECTION_OK) {
    PQfinish(c);
    return NULL;
  }
  char err[LC_ERR_LEN];
  if (lc_db_exec(c, "LISTEN " CREDIT_OUTBOX_CHANNEL, 0, NULL, NULL, err) != LC_OK) {
    PQfinish(c);
    return NULL;
  }
  return c;
}

/* Waits up to ms for a notification (or just sleeps without a connection).
 * Returns 1 when woken by NOTIFY. Drops a broken connection (*lc = NULL). */
static int wait_notify(PGconn **lc, int ms) {
  if (*lc == NULL) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
  }
  struct pollfd pfd = {PQsocket(*lc), POLLIN, 0};
  int pr = poll(&pfd, 1, ms);
  if (pr > 0 && PQconsumeInput(*lc) == 0) {
    lc_log_warn("outbox_relay - LISTEN connection lost, falling back to polling");
    PQfinish(*lc);
    *lc = NULL;
    return 0;
  }
  int woke = 0;
  PGnotify *n = NULL;
  while ((n = PQnotifies(*lc)) != NULL) {
    woke = 1;
    PQfreemem(n);
  }
  return woke;
}

void *credit_outbox_thread(void *arg) {
  credit_relay_cfg *cfg = arg;
  lc_amqp_pub *pub = NULL;
  PGconn *lconn = listen_open(cfg->conninfo);
  int64_t next_open = 0, next_listen = lc_mono_ms() + 5000;
  int backoff = BACKOFF_MIN_MS, warned = 0;
  char err[LC_ERR_LEN];
  lc_log_set_rid("outbox-relay");
  for (;;) {
    int stopping = atomic_load(cfg->stop);
    int64_t now = lc_mono_ms();
    if (pub == NULL && now >= next_open) {
      if (lc_amqp_pub_open(cfg->amqp_url, &pub, err) != LC_OK) {
        pub = NULL;
        if (!warned)
          lc_log_warn("outbox_relay - broker unavailable: %s (retrying)", err);
        warned = 1;
        next_open = now + backoff;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
      } else {
        if (warned)
          lc_log_info("outbox_relay - broker connection restored");
        warned = 0;
        backoff = BACKOFF_MIN_MS;
      }
    }
    int sent = 0;
    if (pub != NULL) {
      int rc = credit_outbox_drain(cfg->pool, pub, cfg->exchange, &sent, err);
      if (rc == LC_ERR_IO || rc == LC_ERR_TIMEOUT) {
        lc_log_warn("outbox_relay - %s; reopening the publisher", err);
        lc_amqp_pub_close(pub);
        pub = NULL;
        next_open = lc_mono_ms() + backoff;
      } else if (rc != LC_OK) {
        lc_log_warn("outbox_relay - drain failed: %s", err);
      }
    }
    if (stopping)
      break;
    if (sent >= CREDIT_OUTBOX_BATCH)
      continue; /* more rows are waiting */
    if (lconn == NULL && cfg->conninfo && lc_mono_ms() >= next_listen) {
      lconn = listen_open(cfg->conninfo);
      next_listen = lc_mono_ms() + 5000;
    }
    wait_notify(&lconn, cfg->poll_ms > 0 ? cfg->poll_ms : 100);
  }
  if (pub != NULL)
    lc_amqp_pub_close(pub);
  PQfinish(lconn);
  return NULL;
}
