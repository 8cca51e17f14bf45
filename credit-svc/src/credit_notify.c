/* credit_notify.c - low-credit emails; see credit_notify.h. */
#include "credit_notify.h"

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc/http.h"
#include "lc/iauth.h"
#include "lc/log.h"
#include "lc/svc.h"
#include "lc/util.h"

#define MAIL_MAX 16384

int credit_mail_provider_parse(const char *s, credit_mail_provider *out) {
  if (s && strcmp(s, "smtp") == 0)
    *out = CREDIT_MAIL_SMTP;
  else if (s && strcmp(s, "sendgrid") == 0)
    *out = CREDIT_MAIL_SENDGRID;
  else if (s && strcmp(s, "mailgun") == 0)
    *out = CREDIT_MAIL_MAILGUN;
  else
    return LC_ERR_PARAM;
  return LC_OK;
}

int credit_mail_addr_valid(const char *addr) {
  if (addr == NULL)
    return 0;
  size_t n = strlen(addr);
  if (n < 3 || n > CREDIT_MAIL_ADDR_MAX)
    return 0;
  const char *at = strchr(addr, '@');
  if (at == NULL || at == addr || at[1] == '\0' || strchr(at + 1, '@') != NULL)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)addr[i];
    if (c <= 0x20 || c >= 0x7f || strchr("<>()[]\\,;:\"", c) != NULL)
      return 0;
  }
  return 1;
}

static int header_safe(const char *s) {
  if (s == NULL)
    return 0;
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
      return 0;
  return 1;
}

/* Appends printf output to buf (cap MAIL_MAX); -1 when it does not fit. */
static int put(char *buf, size_t *len, const char *fmt, const char *a, const char *b) {
  int n = snprintf(buf + *len, MAIL_MAX - *len, fmt, a, b);
  if (n < 0 || (size_t)n >= MAIL_MAX - *len)
    return -1;
  *len += (size_t)n;
  return 0;
}

char *credit_mail_build_rfc5322(const credit_mail *m) {
  if (m == NULL || !credit_mail_addr_valid(m->from) || !credit_mail_addr_valid(m->to) ||
      !header_safe(m->subject) || m->text == NULL || !header_safe(m->message_id) ||
      m->message_id[0] == '\0')
    return NULL;
  char date[64];
  struct tm tm;
  gmtime_r(&m->date, &tm);
  if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
    return NULL;
  const char *domain = strchr(m->from, '@') + 1;
  char *buf = lc_xmalloc(MAIL_MAX);
  size_t len = 0;
  int bad = put(buf, &len, "Date: %s%s\r\n", date, "") ||
            put(buf, &len, "From: <%s>%s\r\n", m->from, "") ||
            put(buf, &len, "To: <%s>%s\r\n", m->to, "") ||
            put(buf, &len, "Message-ID: <%s@%s>\r\n", m->message_id, domain) ||
            put(buf, &len, "Subject: %s%s\r\n", m->subject, "") ||
            put(buf, &len, "MIME-Version: 1.0\r\n%s%s", "", "") ||
            put(buf, &len, "Content-Type: text/plain; charset=UTF-8\r\n%s%s", "", "") ||
            put(buf, &len, "Content-Transfer-Encoding: 8bit\r\n%s%s", "", "") ||
            put(buf, &len, "Auto-Submitted: auto-generated\r\n\r\n%s%s", "", "");
  /* Body: normalise every line end to CRLF; drop bare CRs. */
  for (const char *p = m->text; !bad && *p; p++) {
    if (*p == '\r')
      continue;
    if (len + 3 >= MAIL_MAX) {
      bad = 1;
      break;
    }
    if (*p == '\n')
      buf[len++] = '\r';
    buf[len++] = *p;
  }
  if (!bad && len >= 2 && !(buf[len - 2] == '\r' && buf[len - 1] == '\n'))
    bad = put(buf, &len, "\r\n%s%s", "", "");
  if (bad) {
    free(buf);
    return NULL;
  }
  buf[len] = '\0';
  return buf;
}

char *credit_mail_low_text(int64_t balance, int64_t threshold) {
  char *t = lc_xmalloc(512);
  snprintf(t, 512,
           "Hello,\n\nyour credit balance is now %lld credit%s, below %lld.\n"
           "Paid actions stop working when it reaches the cost of the action.\n"
           "Buy a credit pack to keep going.\n\nThis message is sent once each time your\n"
           "balance drops below %lld credits.\n",
           (long long)balance, balance == 1 ? "" : "s", (long long)threshold,
           (long long)threshold);
  return t;
}

void credit_mail_http_free(credit_mail_http *h) {
  if (h == NULL)
    return;
  for (size_t i = 0; i < sizeof(h->headers) / sizeof(h->headers[0]); i++) {
    free(h->headers[i]);
    h->headers[i] = NULL;
  }
  free(h->body);
  h->body = NULL;
}

static int check_mail(const credit_mail *m) {
  return m && credit_mail_addr_valid(m->from) && credit_mail_addr_valid(m->to) &&
         header_safe(m->subject) && m->text != NULL;
}

static char *hdr(const char *fmt, const char *v) {
  size_t n = strlen(fmt) + strlen(v) + 1;
  char *s = lc_xmalloc(n);
  snprintf(s, n, fmt, v);
  return s;
}

int credit_mail_build_sendgrid(const credit_mail *m, const char *base_url, const char *key,
                               credit_mail_http *out) {
  memset(out, 0, sizeof(*out));
  if (!check_mail(m) || base_url == NULL || key == NULL || !header_safe(key) || key[0] == '\0')
    return LC_ERR_PARAM;
  int n = snprintf(out->url, sizeof(out->url), "%s/v3/mail/send", base_url);
  if (n < 0 || (size_t)n >= sizeof(out->url))
    return LC_ERR_PARAM;
  json_t *b = json_pack("{s:[{s:[{s:s}]}], s:{s:s}, s:s, s:[{s:s, s:s}]}", "personalizations",
                        "to", "email", m->to, "from", "email", m->from, "subject", m->subject,
                        "content", "type", "text/plain", "value", m->text);
  out->body = b ? json_dumps(b, JSON_COMPACT) : NULL;
  json_decref(b);
  if (out->body == NULL)
    return LC_ERR_PARAM;
  out->body_len = strlen(out->body);
  out->headers[0] = hdr("Authorization: Bearer %s", key);
  out->headers[1] = hdr("Content-Type: %s", "application/json");
  return LC_OK;
}

/* application/x-www-form-urlencoded value (RFC 1866: space as '+'). */
static void form_append(char **buf, size_t *len, size_t *cap, const char *name, const char *v) {
  size_t need = *len + strlen(name) + 3 * strlen(v) + 3;
  if (need > *cap) {
    *cap = need * 2;
    *buf = lc_xrealloc(*buf, *cap);
  }
  if (*len)
    (*buf)[(*len)++] = '&';
  size_t nl = strlen(name);
  memcpy(*buf + *len, name, nl);
  *len += nl;
  (*buf)[(*len)++] = '=';
  static const char hexd[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    unsigned char c = *p;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '_' || c == '.' || c == '*') {
      (*buf)[(*len)++] = (char)c;
    } else if (c == ' ') {
      (*buf)[(*len)++] = '+';
    } else {
      (*buf)[(*len)++] = '%';
      (*buf)[(*len)++] = hexd[c >> 4];
      (*buf)[(*len)++] = hexd[c & 15];
    }
  }
  (*buf)[*len] = '\0';
}

int credit_mail_build_mailgun(const credit_mail *m, const char *base_url, const char *domain,
                              const char *key, credit_mail_http *out) {
  memset(out, 0, sizeof(*out));
  if (!check_mail(m) || base_url == NULL || key == NULL || key[0] == '\0' || domain == NULL ||
      domain[0] == '\0' || strpbrk(domain, "/?#% \r\n") != NULL || strlen(key) > 200)
    return LC_ERR_PARAM;
  int n = snprintf(out->url, sizeof(out->url), "%s/v3/%s/messages", base_url, domain);
  if (n < 0 || (size_t)n >= sizeof(out->url))
    return LC_ERR_PARAM;
  size_t len = 0, cap = 256;
  char *body = lc_xmalloc(cap);
  body[0] = '\0';
  form_append(&body, &len, &cap, "from", m->from);
  form_append(&body, &len, &cap, "to", m->to);
  form_append(&body, &len, &cap, "subject", m->subject);
  form_append(&body, &len, &cap, "text", m->text);
  out->body = body;
  out->body_len = len;
  char cred[256], b64[400];
  snprintf(cred, sizeof(cred), "api:%s", key);
  sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)cred, strlen(cred),
                    sodium_base64_VARIANT_ORIGINAL);
  sodium_memzero(cred, sizeof(cred));
  out->headers[0] = hdr("Authorization: Basic %s", b64);
  out->headers[1] = hdr("Content-Type: %s", "application/x-www-form-urlencoded");
  sodium_memzero(b64, sizeof(b64));
  return LC_OK;
}

/* ---- sending ---- */

typedef struct {
  const char *data;
  size_t len, pos;
} upload;

static size_t read_cb(char *ptr, size_t size, size_t nmemb, void *ud) {
  upload *u = ud;
  size_t room = size * nmemb, left = u->len - u->pos;
  size_t n = left < room ? left : room;
  memcpy(ptr, u->data + u->pos, n);
  u->pos += n;
  return n;
}

static int send_smtp(const credit_notify_cfg *cfg, const credit_mail *m, char err[LC_ERR_LEN]) {
  char *msg = credit_mail_build_rfc5322(m);
  if (msg == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "cannot build the message");
  CURL *h = curl_easy_init();
  struct curl_slist *rcpt = NULL;
  char from[CREDIT_MAIL_ADDR_MAX + 3], to[CREDIT_MAIL_ADDR_MAX + 3];
  snprintf(from, sizeof(from), "<%s>", m->from);
  snprintf(to, sizeof(to), "<%s>", m->to);
  upload u = {msg, strlen(msg), 0};
  int rc = LC_OK;
  if (h == NULL) {
    rc = lc_err_set(err, LC_ERR_NOMEM, "curl_easy_init failed");
    goto out;
  }
  rcpt = curl_slist_append(NULL, to);
  curl_easy_setopt(h, CURLOPT_URL, cfg->smtp_url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
  curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
  curl_easy_setopt(h, CURLOPT_READDATA, &u);
  curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  if (cfg->smtp_user && cfg->smtp_user[0]) {
    curl_easy_setopt(h, CURLOPT_USERNAME, cfg->smtp_user);
    curl_easy_setopt(h, CURLOPT_PASSWORD, cfg->smtp_password ? cfg->smtp_password : "");
    /* Credentials never travel in clear: STARTTLS required (or smtps://). */
    curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
  }
  CURLcode cc = curl_easy_perform(h);
  if (cc != CURLE_OK) {
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    rc = lc_err_set(err, LC_ERR_IO, "smtp: %s (reply %ld)", curl_easy_strerror(cc), code);
  }
out:
  curl_slist_free_all(rcpt);
  if (h)
    curl_easy_cleanup(h);
  free(msg);
  return rc;
}

static int send_http(const credit_mail_http *hr, long ok_lo, long ok_hi, char err[LC_ERR_LEN]) {
  lc_http_req req = {"POST", hr->url, (const char *const *)hr->headers, hr->body, hr->body_len,
                     15000, 65536, NULL, NULL, 0};
  lc_http_resp resp;
  memset(&resp, 0, sizeof(resp));
  int rc = lc_http_do(&req, &resp, err);
  if (rc == LC_OK && (resp.status < ok_lo || resp.status > ok_hi))
    rc = lc_err_set(err, LC_ERR_IO, "mail API answered %ld", resp.status);
  lc_http_resp_free(&resp);
  return rc;
}

int credit_notify_send(const credit_notify_cfg *cfg, const credit_mail *m, char err[LC_ERR_LEN]) {
  credit_mail_http hr;
  int rc;
  switch (cfg->provider) {
  case CREDIT_MAIL_SMTP:
    return send_smtp(cfg, m, err);
  case CREDIT_MAIL_SENDGRID:
    rc = credit_mail_build_sendgrid(m, cfg->api_base, cfg->api_key, &hr);
    if (rc == LC_OK)
      rc = send_http(&hr, 200, 299, err); /* SendGrid answers 202 Accepted */
    else
      lc_err_set(err, rc, "cannot build the SendGrid request");
    credit_mail_http_free(&hr);
    return rc;
  case CREDIT_MAIL_MAILGUN:
    rc = credit_mail_build_mailgun(m, cfg->api_base, cfg->mailgun_domain, cfg->api_key, &hr);
    if (rc == LC_OK)
      rc = send_http(&hr, 200, 299, err);
    else
      lc_err_set(err, rc, "cannot build the Mailgun request");
    credit_mail_http_free(&hr);
    return rc;
  }
  return lc_err_set(err, LC_ERR_PARAM, "unknown provider");
}

int credit_auth_user_lookup(const uint8_t *secret, size_t secret_len, const char *auth_url,
                            const char *user_id, char *email, size_t cap, char err[LC_ERR_LEN]) {
  lc_identity sys;
  memset(&sys, 0, sizeof(sys));
  lc_strlcpy(sys.role, "system", sizeof(sys.role));
  snprintf(sys.request_id, sizeof(sys.request_id), "notify-%.36s", user_id);
  char path[80];
  snprintf(path, sizeof(path), "/internal/users/%s", user_id);
  lc_http_resp resp;
  memset(&resp, 0, sizeof(resp));
  int rc = lc_iauth_call(secret, secret_len, auth_url, "GET", path, &sys, NULL, NULL, 0, 5000,
                         &resp, err);
  if (rc != LC_OK)
    goto out;
  if (resp.status == 404) {
    rc = lc_err_set(err, LC_ERR_NOTFOUND, "auth-svc does not know the user");
    goto out;
  }
  if (resp.status != 200 || resp.body == NULL) {
    rc = lc_err_set(err, LC_ERR_IO, "auth-svc user lookup answered %ld", resp.status);
    goto out;
  }
  if (email != NULL) {
    json_t *j = json_loadb(resp.body, resp.len, 0, NULL);
    const char *e = json_string_value(json_object_get(j, "email"));
    if (e == NULL || !credit_mail_addr_valid(e) || lc_strlcpy(email, e, cap) != LC_OK)
      rc = lc_err_set(err, LC_ERR_IO, "auth-svc user lookup: no usable email");
    json_decref(j);
  }
out:
  lc_http_resp_free(&resp);
  return rc;
}

/* One due notification: lock, send, record; LC_ERR_NOTFOUND when none. */
static int run_one(const credit_notify_cfg *cfg, PGconn *c, int *sent, char err[LC_ERR_LEN]) {
  PGresult *r = NULL;
  int rc = lc_db_begin(c, err);
  if (rc != LC_OK)
    return rc;
  rc = lc_db_exec(c,
                  "SELECT id::text, user_id::text, balance, threshold, attempts FROM notifications"
                  " WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()"
                  " ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                  0, NULL, &r, err);
  if (rc != LC_OK) {
    lc_db_rollback(c);
    return rc;
  }
  if (PQntuples(r) != 1) {
    PQclear(r);
    lc_db_rollback(c);
    return LC_ERR_NOTFOUND;
  }
  char id[37], uid[37];
  int64_t bal = 0, th = 0, attempts = 0;
  lc_strlcpy(id, PQgetvalue(r, 0, 0), sizeof(id));
  lc_strlcpy(uid, PQgetvalue(r, 0, 1), sizeof(uid));
  lc_parse_i64(PQgetvalue(r, 0, 2), INT64_MIN, INT64_MAX, &bal);
  lc_parse_i64(PQgetvalue(r, 0, 3), INT64_MIN, INT64_MAX, &th);
  lc_parse_i64(PQgetvalue(r, 0, 4), 0, INT32_MAX, &attempts);
  PQclear(r);
  char email[CREDIT_MAIL_ADDR_MAX + 1], serr[LC_ERR_LEN] = "";
  int src = credit_auth_user_lookup(cfg->secret, cfg->secret_len, cfg->auth_url, uid, email, sizeof(email), serr);
  if (src == LC_OK) {
    char *text = credit_mail_low_text(bal, th);
    credit_mail m = {cfg->from, email, CREDIT_MAIL_LOW_SUBJECT, text, id, time(NULL)};
    src = credit_notify_send(cfg, &m, serr);
    free(text);
  }
  const char *p[3] = {id, serr, NULL};
  char backoff[24];
  if (src == LC_OK) {
    rc = lc_db_exec(c,
                    "UPDATE notifications SET status = 'sent', sent_at = clock_timestamp(),"
                    " attempts = attempts + 1, last_error = NULL WHERE id = $1::uuid",
                    1, p, NULL, err);
    if (rc == LC_OK)
      (*sent)++;
  } else {
    int64_t secs = (int64_t)1 << (attempts < 9 ? attempts + 1 : 10);
    snprintf(backoff, sizeof(backoff), "%lld", (long long)(secs > 600 ? 600 : secs));
    p[2] = backoff;
    int final = src == LC_ERR_NOTFOUND || attempts + 1 >= CREDIT_NOTIFY_MAX_ATTEMPTS;
    rc = lc_db_exec(c,
                    final ? "UPDATE notifications SET status = 'failed', attempts = attempts + 1,"
                            " last_error = left($2, 300) WHERE id = $1::uuid AND $3::int > 0"
                          : "UPDATE notifications SET attempts = attempts + 1,"
                            " last_error = left($2, 300), next_attempt_at = clock_timestamp() +"
                            " make_interval(secs => $3::int) WHERE id = $1::uuid",
                    3, p, NULL, err);
    lc_log_warn("notify - low-credit mail %s for user %s not sent (attempt %lld): %s", id, uid,
                (long long)attempts + 1, serr);
  }
  if (rc != LC_OK) {
    lc_db_rollback(c);
    return rc;
  }
  rc = lc_db_commit(c, err);
  if (rc == LC_OK && src == LC_OK) {
    lc_log_info("Event - low-credit mail %s sent to user %s (balance %lld < %lld)", id, uid,
                (long long)bal, (long long)th);
    lc_metric_add("credit_low_balance_mails_total", 1);
  }
  return rc;
}

int credit_notify_run_once(const credit_notify_cfg *cfg, int max, int *sent,
                           char err[LC_ERR_LEN]) {
  PGconn *c = NULL;
  *sent = 0;
  int rc = lc_db_acquire(cfg->pool, &c, err);
  if (rc != LC_OK)
    return rc;
  for (int i = 0; i < max; i++) {
    rc = run_one(cfg, c, sent, err);
    if (rc != LC_OK)
      break;
  }
  lc_db_release(cfg->pool, c);
  return rc == LC_ERR_NOTFOUND ? LC_OK : rc;
}

void *credit_notify_thread(void *arg) {
  credit_notify_cfg *cfg = arg;
  char err[LC_ERR_LEN];
  lc_log_set_rid("notifier");
  while (!atomic_load(cfg->stop)) {
    int sent = 0;
    if (credit_notify_run_once(cfg, 20, &sent, err) != LC_OK)
      lc_log_warn("notify - %s", err);
    for (int waited = 0; waited < cfg->poll_ms && !atomic_load(cfg->stop); waited += 50) {
      struct timespec ts = {0, 50 * 1000000L};
      nanosleep(&ts, NULL);
    }
  }
  lc_http_thread_cleanup();
  return NULL;
}
