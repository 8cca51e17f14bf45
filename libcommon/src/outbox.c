/* outbox.c - generic outbox relay; see lc/outbox.h. Parameterised by
 * exchange, wake-up (bell / NOTIFY channel / poll period) and the routing
 * keys whose unroutable publishes count as delivered. */
#include "lc/outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* Appends id to a Postgres array literal being built in buf ("{a,b"). */
static void arr_add(char *buf, size_t cap, size_t *len, int *count, const char *id) {
  *len += (size_t)snprintf(buf + *len, cap - *len, "%s%s", *count ? "," : "", id);
  (*count)++;
}

int lc_outbox_drain(lc_db_pool *pool, lc_amqp_pub *pub, const char *exchange,
                    const char *const *drop_unroutable, int *sent, char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  PGresult *r = NULL;
  lc_amqp_msg msgs[LC_OUTBOX_BATCH];
  char acked[LC_OUTBOX_BATCH * 37 + 4], failed[LC_OUTBOX_BATCH * 37 + 4];
  size_t alen = 1, flen = 1;
  int pubrc = LC_OK, nacked = 0, nfailed = 0, n;
  char perr[LC_ERR_LEN] = "";
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
  n = PQntuples(r) < LC_OUTBOX_BATCH ? PQntuples(r) : LC_OUTBOX_BATCH;
  for (int i = 0; i < n; i++) {
    msgs[i].msg_id = PQgetvalue(r, i, 0);
    msgs[i].routing_key = PQgetvalue(r, i, 1);
    msgs[i].body = PQgetvalue(r, i, 2);
    msgs[i].len = (size_t)PQgetlength(r, i, 2);
  }
  /* The whole batch in flight at once, one wait for the confirms. */
  if (n > 0)
    pubrc = lc_amqp_publish_batch(pub, exchange, msgs, (size_t)n, PUBLISH_TIMEOUT_MS, perr);
  if (pubrc == LC_ERR_PARAM) {
    rc = lc_err_set(err, pubrc, "publish: %s", perr);
    goto out;
  }
  acked[0] = failed[0] = '{';
  for (int i = 0; i < n; i++) {
    int mrc = msgs[i].result;
    if (mrc == LC_ERR_NOTFOUND && droppable(msgs[i].routing_key, drop_unroutable)) {
      lc_log_debug("outbox - %s %s had no bound queue (nobody listening): sent",
                   msgs[i].routing_key, msgs[i].msg_id);
      mrc = LC_OK;
    }
    if (mrc == LC_OK)
      arr_add(acked, sizeof(acked), &alen, &nacked, msgs[i].msg_id);
    else if (mrc != LC_ERR_TIMEOUT) /* returned (kept for later) or nacked */
      arr_add(failed, sizeof(failed), &flen, &nfailed, msgs[i].msg_id);
  }
  acked[alen++] = '}';
  acked[alen] = '\0';
  failed[flen++] = '}';
  failed[flen] = '\0';
  if (nacked > 0) {
    LC_FAILPOINT("outbox.after_confirm");
    rc = mark_rows(c, "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::uuid[])", acked, err);
    if (rc != LC_OK)
      goto out;
  }
  if (nfailed > 0) {
    rc = mark_rows(c, "UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1::uuid[])",
                   failed, err);
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
  if (rc != LC_OK)
    return rc;
  if (pubrc != LC_OK)
    return lc_err_set(err, pubrc, "publish: %s", perr);
  if (nfailed > 0) /* every confirm came, but some rows were returned unroutable */
    return lc_err_set(err, LC_ERR_NOTFOUND, "publish: %d of %d unroutable: %s", nfailed, n, perr);
  return LC_OK;
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

struct lc_outbox_bell {
  int fd[2];              /* [0] read end (the relay polls it), [1] write end; both O_NONBLOCK */
  atomic_int pending;     /* 1 = a byte is (about to be) in the pipe */
};

int lc_outbox_bell_new(lc_outbox_bell **out, char err[LC_ERR_LEN]) {
  lc_outbox_bell *b = lc_xcalloc(1, sizeof(*b));
  if (pipe(b->fd) != 0) {
    int e = errno;
    free(b);
    *out = NULL;
    return lc_err_set(err, LC_ERR_IO, "lc_outbox_bell_new - pipe: %s", strerror(e));
  }
  for (int i = 0; i < 2; i++) {
    int fl = fcntl(b->fd[i], F_GETFL);
    if (fl < 0 || fcntl(b->fd[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
        fcntl(b->fd[i], F_SETFD, FD_CLOEXEC) != 0) {
      int e = errno;
      lc_outbox_bell_free(b);
      *out = NULL;
      return lc_err_set(err, LC_ERR_IO, "lc_outbox_bell_new - fcntl: %s", strerror(e));
    }
  }
  atomic_init(&b->pending, 0);
  *out = b;
  return LC_OK;
}

void lc_outbox_bell_free(lc_outbox_bell *b) {
  if (b == NULL)
    return;
  close(b->fd[0]);
  close(b->fd[1]);
  free(b);
}

void lc_outbox_ring(lc_outbox_bell *b) {
  if (b == NULL || atomic_exchange(&b->pending, 1) != 0)
    return; /* a wake-up is already on its way */
  ssize_t w;
  do
    w = write(b->fd[1], "", 1);
  while (w < 0 && errno == EINTR);
  /* EAGAIN: the pipe is full, the relay wakes anyway */
}

/* Empties the pipe; rings that come after this see pending == 0 and write
 * again, so a commit ringing during the following drain is not lost. */
static void bell_take(lc_outbox_bell *b) {
  char buf[64];
  atomic_store(&b->pending, 0);
  while (read(b->fd[0], buf, sizeof(buf)) > 0) {
  }
}

/* Waits up to ms for the bell, a NOTIFY on *lc, or nothing (poll period). */
static void wait_wake(lc_outbox_bell *bell, PGconn **lc, int ms, const char *name) {
  struct pollfd pfd[2];
  int n = 0, ilc = -1, ibell = -1;
  PGnotify *nt;

  if (bell != NULL) {
    pfd[n].fd = bell->fd[0];
    pfd[n].events = POLLIN;
    pfd[n].revents = 0;
    ibell = n++;
  }
  if (*lc != NULL) {
    pfd[n].fd = PQsocket(*lc);
    pfd[n].events = POLLIN;
    pfd[n].revents = 0;
    ilc = n++;
  }
  if (n == 0) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return;
  }
  if (poll(pfd, (nfds_t)n, ms) <= 0)
    return;
  if (ibell >= 0 && pfd[ibell].revents != 0)
    bell_take(bell);
  if (ilc < 0 || pfd[ilc].revents == 0)
    return;
  if (PQconsumeInput(*lc) == 0) {
    lc_log_warn("%s - LISTEN connection lost, falling back to polling", name);
    PQfinish(*lc);
    *lc = NULL;
    return;
  }
  while ((nt = PQnotifies(*lc)) != NULL)
    PQfreemem(nt);
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
    wait_wake(cfg->bell, &lconn, cfg->poll_ms > 0 ? cfg->poll_ms : 100, name);
  }
  if (pub != NULL)
    lc_amqp_pub_close(pub);
  PQfinish(lconn);
  return NULL;
}
