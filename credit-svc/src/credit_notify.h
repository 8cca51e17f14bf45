/* credit_notify.h - low-credit notification emails.
 *
 * A commit that takes a balance from >= CREDIT_LOW_BALANCE_THRESHOLD to below
 * it queues one row in `notifications` (unique per crossing ledger entry, in
 * the commit's transaction; see credit_ledger.c). The notifier thread sends
 * each pending row once: it asks auth-svc for the address (GET
 * /internal/users/{id} -> {id, email, role}, signed as role "system";
 * credit-svc does not store emails), then sends through the configured
 * provider:
 *   smtp      libcurl SMTP (smtp://host:port or smtps://), MAIL FROM / RCPT TO
 *             / DATA with Date, Message-ID, From, To, Subject, MIME headers;
 *   sendgrid  POST {base}/v3/mail/send (Bearer API key, JSON v3 body) -> 202;
 *   mailgun   POST {base}/v3/{domain}/messages (Basic api:key, form body).
 * Failures are retried with exponential backoff (2^n s, max 10 min) up to
 * CREDIT_NOTIFY_MAX_ATTEMPTS, then the row is marked failed. A crash between
 * the send and the commit re-sends (at-least-once; the Message-ID is stable
 * per notification so mail systems can de-duplicate).
 *
 * The message builders are pure and unit-tested; the thread is the only
 * user of its connection and CURL handle. */
#ifndef CREDIT_NOTIFY_H
#define CREDIT_NOTIFY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lc/db.h"
#include "lc/err.h"

#define CREDIT_NOTIFY_MAX_ATTEMPTS 10
#define CREDIT_MAIL_ADDR_MAX 254

typedef enum { CREDIT_MAIL_SMTP = 0, CREDIT_MAIL_SENDGRID, CREDIT_MAIL_MAILGUN } credit_mail_provider;

/* Parses "smtp" | "sendgrid" | "mailgun"; LC_ERR_PARAM otherwise. */
int credit_mail_provider_parse(const char *s, credit_mail_provider *out);

/* 1 when addr is a plain mailbox local@domain (printable ASCII, no spaces,
 * quotes, angle brackets, commas, CR/LF; <= 254 bytes; one '@'). */
int credit_mail_addr_valid(const char *addr);

typedef struct {
  const char *from, *to;  /* validated mailboxes */
  const char *subject;    /* ASCII, no CR/LF */
  const char *text;       /* UTF-8 body, lines separated by '\n' */
  const char *message_id; /* local part of the Message-ID (e.g. the notification id) */
  time_t date;            /* Date header */
} credit_mail;

/* Builds the RFC 5322 message (CRLF line ends, lines of the body that start
 * with '.' are left to libcurl's dot-stuffing) into a new string. NULL on
 * invalid input. */
char *credit_mail_build_rfc5322(const credit_mail *m);

/* The subject and text of the low-credit email. text is new. */
char *credit_mail_low_text(int64_t balance, int64_t threshold);
#define CREDIT_MAIL_LOW_SUBJECT "Your credit balance is low"

typedef struct {
  char url[1024];
  char *headers[4];     /* new "Name: value" lines, NULL-terminated */
  char *body;           /* new */
  size_t body_len;
} credit_mail_http;

/* Builds the SendGrid v3 / Mailgun request for m (pure). base_url has no
 * trailing slash; key is the API key; domain (Mailgun) the sending domain.
 * Returns LC_OK or LC_ERR_PARAM. Free with credit_mail_http_free. */
int credit_mail_build_sendgrid(const credit_mail *m, const char *base_url, const char *key,
                               credit_mail_http *out);
int credit_mail_build_mailgun(const credit_mail *m, const char *base_url, const char *domain,
                              const char *key, credit_mail_http *out);
void credit_mail_http_free(credit_mail_http *h);

typedef struct {
  lc_db_pool *pool;
  credit_mail_provider provider;
  const char *from;
  const char *smtp_url, *smtp_user, *smtp_password; /* user/password NULL = none */
  const char *api_base, *api_key, *mailgun_domain;
  const char *auth_url;                             /* auth-svc base URL */
  const uint8_t *secret;                            /* INTERNAL_SECRET bytes */
  size_t secret_len;
  int poll_ms;
  atomic_bool *stop;
} credit_notify_cfg;

/* Sends m through the configured provider. LC_OK on acceptance. */
int credit_notify_send(const credit_notify_cfg *cfg, const credit_mail *m, char err[LC_ERR_LEN]);

/* Processes due notifications once (at most max rows); *sent = mails sent. */
int credit_notify_run_once(const credit_notify_cfg *cfg, int max, int *sent, char err[LC_ERR_LEN]);

/* Thread body (arg = credit_notify_cfg*): run_once every poll_ms until *stop. */
void *credit_notify_thread(void *arg);

/* Asks auth-svc (GET /internal/users/:id, signed as role system) whether
 * user_id exists; copies its email into email (cap bytes) when email is not
 * NULL. Returns LC_OK, LC_ERR_NOTFOUND (auth-svc answered 404), or
 * LC_ERR_IO / LC_ERR_TIMEOUT (auth-svc unreachable or unusable answer).
 * Thread-safe. */
int credit_auth_user_lookup(const uint8_t *secret, size_t secret_len, const char *auth_url,
                            const char *user_id, char *email, size_t cap, char err[LC_ERR_LEN]);

#endif
