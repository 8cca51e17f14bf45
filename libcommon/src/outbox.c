/* outbox.c - generic outbox relay; see lc/outbox.h. Same algorithm as
 * credit-svc's relay, parameterised by exchange, NOTIFY channel and the
 * routing keys whose unroutable publishes count as delivered. */
#include "lc/outbox.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lc/log.h"
#include "lc/failpoint.h"
#include "lc/svc.h"
#include "lc/util.h"

#define PUBLISH_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static int mark_rows(PGconn *c, const char *sql, const char *arr, char err[LC_ERR_LEN]) {
  const char *p[1] = {arr};
  return lc_db_exec(c, sql, 1, p, NULL, err);
}

static int droppable(const char *rk, const char *const *prefixes) {
  if (prefixes == NULL)
    return 0;
  for (size_t i = 0; prefixes[i] != NULL; i++)
    if (strncmp(rk, prefixes[i], strlen(prefixes[i])) == 0)
      return 1;
  return 0;
}

int lc_outbox_drain(lc_db_pool *pool, lc_amqp_pub *pub, const char *exchange,
                    const char *const *drop_unroutable, int *sent, char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  PGresult *r = NULL;
  char acked[LC_OUTBOX_BATCH * 37 + 4];
  size_t alen = 0;
  int pubrc = LC_OK, nacked = 0, failed_row = -1;
  int rc;

  *sent = 0;
  rc = lc_db_acquire(pool, &c, err);
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
  for (int i = 0; i < PQntuples(r) && i < LC_OUTBOX_BATCH; i++) {
    const char *id = PQgetvalue(r, i, 0), *rk = PQgetvalue(r, i, 1), *pl = PQgetvalue(r, i, 2);
    size_t plen = (size_t)PQgetlength(r, i, 2);
    char perr[LC_ERR_LEN] = "";
    pubrc = lc_amqp_publish(pub, exchange, rk, id, pl, plen, PUBLISH_TIMEOUT_MS, perr);
    if (pubrc == LC_ERR_NOTFOUND && droppable(rk, drop_unroutable)) {
      lc_log_debug("outbox - %s %s had no bound queue (nobody listening): sent", rk, id);
      pubrc = LC_OK;
    }
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
    LC_FAILPOINT("outbox.after_confirm");
    rc = mark_rows(c, "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::uuid[])", acked, err);
    if (rc != LC_OK)
      goto out;
  }
  if (failed_row >= 0) {
    char one[40], e2[LC_ERR_LEN];
    snprintf(one, sizeof(one), "{%s}", PQgetvalue(r, failed_row, 0));
    rc = mark_rows(c, "UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1::uuid[])", one,
                   e2);
    if (rc != LC_OK)
      goto out;
  }
  rc = lc_db_commit(c, err);
  if (rc == LC_OK)
    *sent = nacked;
out:
  PQclear(r);
  if (rc != LC_OK)
    lc_db_rollback(c);
  lc_db_release(pool, c);
  if (rc == LC_OK && pubrc != LC_OK)
    return pubrc;
  return rc;
}

static int channel_ok(const char *ch) {
  size_t n = ch != NULL ? strlen(ch) : 0;
  if (n == 0 || n > 63)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!((ch[i] >= 'a' && ch[i] <= 'z') || ch[i] == '_'))
      return 0;
  return 1;
}

static PGconn *listen_open(const lc_outbox_cfg *cfg) {
  char sql[96], err[LC_ERR_LEN];
  PGconn *c;

  if (cfg->conninfo == NULL || !channel_ok(cfg->channel))
    return NULL;
  c = PQconnectdb(cfg->conninfo);
  if (c == NULL || PQstatus(c) != CONNECTION_OK) {
    PQfinish(c);
    return NULL;
  }
  /* channel is checked to [a-z_]{1,63} above: safe as an identifier. */
  snprintf(sql, sizeof(sql), "LISTEN %s", cfg->channel);
  if (lc_db_exec(c, sql, 0, NULL, NULL, err) != LC_OK) {
    PQfinish(c);
    return NULL;
  }
  return c;
}

static void wait_notify(PGconn **lc, int ms, const char *name) {
  PGnotify *n;
  struct pollfd pfd;

  if (*lc == NULL) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return;
  }
  pfd.fd = PQsocket(*lc);
  pfd.events = POLLIN;
  pfd.revents = 0;
  if (poll(&pfd, 1, ms) > 0 && PQconsumeInput(*lc) == 0) {
    lc_log_warn("%s - LISTEN connection lost, falling back to polling", name);
    PQfinish(*lc);
    *lc = NULL;
    return;
  }
  while ((n = PQnotifies(*lc)) != NULL)
    PQfreemem(n);
}

void *lc_outbox_thread(void *arg) {
  lc_outbox_cfg *cfg = arg;
  const char *name = cfg->name != NULL ? cfg->name : "outbox";
  lc_amqp_pub *pub = NULL;
  PGconn *lconn = listen_open(cfg);
  int64_t next_open = 0, next_listen = lc_mono_ms() + 5000;
  int backoff = BACKOFF_MIN_MS, warned = 0;
  char err[LC_ERR_LEN];

  lc_log_set_rid(name);
  for (;;) {
    int stopping = atomic_load(cfg->stop);
    int64_t now = lc_mono_ms();
    int sent = 0;

    if (pub == NULL && now >= next_open) {
      int orc = LC_OK;
      if (cfg->declare_topology)
        orc = lc_amqp_declare_topology(cfg->amqp_url, err);
      if (orc == LC_OK)
        orc = lc_amqp_pub_open(cfg->amqp_url, &pub, err);
      if (orc != LC_OK) {
        pub = NULL;
        if (!warned)
          lc_log_warn("%s - broker unavailable: %s (retrying)", name, err);
        warned = 1;
        next_open = now + backoff;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
      } else {
        if (warned)
          lc_log_info("%s - broker connection restored", name);
        warned = 0;
        backoff = BACKOFF_MIN_MS;
      }
    }
    if (pub != NULL) {
      int rc = lc_outbox_drain(cfg->pool, pub, cfg->exchange, cfg->drop_unroutable, &sent, err);
      if (rc == LC_ERR_IO || rc == LC_ERR_TIMEOUT) {
        lc_log_warn("%s - %s; reopening the publisher", name, err);
        lc_amqp_pub_close(pub);
        pub = NULL;
        next_open = lc_mono_ms() + backoff;
      } else if (rc != LC_OK) {
        lc_log_warn("%s - drain: %s (retrying)", name, err);
      }
    }
    if (cfg->tick != NULL)
      cfg->tick(cfg->tick_ud);
    if (stopping)
      break;
    if (sent >= LC_OUTBOX_BATCH)
      continue;
    if (lconn == NULL && cfg->conninfo != NULL && lc_mono_ms() >= next_listen) {
      lconn = listen_open(cfg);
      next_listen = lc_mono_ms() + 5000;
    }
    wait_notify(&lconn, cfg->poll_ms > 0 ? cfg->poll_ms : 100, name);
  }
  if (pub != NULL)
    lc_amqp_pub_close(pub);
  PQfinish(lconn);
  return NULL;
}
