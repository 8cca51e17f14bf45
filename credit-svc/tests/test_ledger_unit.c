/* test_ledger_unit.c - credit-svc unit tests (no services) for the issue-4
 * logic: Idempotency-Key hashing and decisions, top-up amount validation,
 * low-credit crossing rule, notification mail building (SMTP, SendGrid,
 * Mailgun) and auth.audit event validation. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "credit_audit.h"
#include "credit_idem.h"
#include "credit_ledger.h"
#include "credit_notify.h"
#include "credit_topup.h"
#include "lc/err.h"
#include "lc/util.h"

/* ---- idempotency ---- */

START_TEST(test_idem_hash) {
  char a[65], b[65];
  credit_idem_hash("POST", "/v1/admin/users/x/credits", "{\"amount\":5}", 12, a);
  ck_assert_uint_eq(strlen(a), 64);
  credit_idem_hash("POST", "/v1/admin/users/x/credits", "{\"amount\":5}", 12, b);
  ck_assert_str_eq(a, b); /* deterministic */
  credit_idem_hash("POST", "/v1/admin/users/x/credits", "{\"amount\":6}", 12, b);
  ck_assert_str_ne(a, b); /* body */
  credit_idem_hash("POST", "/v1/admin/users/y/credits", "{\"amount\":5}", 12, b);
  ck_assert_str_ne(a, b); /* path */
  credit_idem_hash("PUT", "/v1/admin/users/x/credits", "{\"amount\":5}", 12, b);
  ck_assert_str_ne(a, b); /* method */
  /* Field boundaries are unambiguous: moving bytes between path and body
   * changes the hash. */
  char c[65], d[65];
  credit_idem_hash("POST", "/p\n1:x", "", 0, c);
  credit_idem_hash("POST", "/p", "x", 1, d);
  ck_assert_str_ne(c, d);
  credit_idem_hash("POST", "/p", NULL, 0, c);
  credit_idem_hash("POST", "/p", "", 0, d);
  ck_assert_str_eq(c, d);
}
END_TEST

START_TEST(test_idem_decide) {
  const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
  const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";
  static const struct {
    int exists;
    const char *state;
    int same, expired, stale;
    credit_idem_decision want;
  } T[] = {
      {0, NULL, 1, 0, 0, CREDIT_IDEM_NEW},
      {1, "done", 1, 0, 0, CREDIT_IDEM_REPLAY},
      {1, "done", 0, 0, 0, CREDIT_IDEM_MISMATCH},
      {1, "in_flight", 1, 0, 0, CREDIT_IDEM_IN_FLIGHT},
      {1, "in_flight", 0, 0, 0, CREDIT_IDEM_MISMATCH},
      {1, "in_flight", 1, 0, 1, CREDIT_IDEM_NEW},   /* abandoned claim taken over */
      {1, "done", 1, 1, 0, CREDIT_IDEM_NEW},        /* past its 24 h */
      {1, "done", 0, 1, 0, CREDIT_IDEM_NEW},
      {1, "in_flight", 0, 1, 1, CREDIT_IDEM_NEW},
  };
  for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
    credit_idem_decision got =
        credit_idem_decide(T[i].exists, T[i].state, h1, T[i].same ? h1 : h2, T[i].expired,
                           T[i].stale);
    ck_assert_msg(got == T[i].want, "row %zu: got %d want %d", i, (int)got, (int)T[i].want);
  }
}
END_TEST

START_TEST(test_idem_key_valid) {
  ck_assert_int_eq(credit_idem_key_valid("abc-123_XYZ"), 1);
  ck_assert_int_eq(credit_idem_key_valid(""), 0);
  ck_assert_int_eq(credit_idem_key_valid(NULL), 0);
  ck_assert_int_eq(credit_idem_key_valid("has space"), 0);
  ck_assert_int_eq(credit_idem_key_valid("tab\there"), 0);
  ck_assert_int_eq(credit_idem_key_valid("caf\xc3\xa9"), 0);
  char k[300];
  memset(k, 'k', sizeof(k));
  k[255] = '\0';
  ck_assert_int_eq(credit_idem_key_valid(k), 1);
  k[255] = 'k';
  k[256] = '\0';
  ck_assert_int_eq(credit_idem_key_valid(k), 0);
}
END_TEST

/* ---- top-up validation ---- */

/* 1 when the body text is accepted (as the handler parses it). */
static int topup_ok(const char *text, int64_t *amount) {
  json_error_t je;
  json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL)
    return 0; /* the handler answers 400 for unparsable bodies */
  const char *reason = NULL;
  char err[LC_ERR_LEN];
  int rc = credit_topup_validate(j, amount, &reason, err);
  json_decref(j);
  return rc == LC_OK;
}

START_TEST(test_topup_amount_table) {
  static const char *const BAD[] = {
      "{\"amount\": -5, \"reason\": \"r\"}",
      "{\"amount\": 0, \"reason\": \"r\"}",
      "{\"amount\": -0, \"reason\": \"r\"}",
      "{\"amount\": 1.5, \"reason\": \"r\"}",
      "{\"amount\": 1.0, \"reason\": \"r\"}",
      "{\"amount\": 1e3, \"reason\": \"r\"}",
      "{\"amount\": 1E2, \"reason\": \"r\"}",
      "{\"amount\": \"10\", \"reason\": \"r\"}",
      "{\"amount\": 1000001, \"reason\": \"r\"}",
      "{\"amount\": 9223372036854775807, \"reason\": \"r\"}",
      "{\"amount\": 99999999999999999999999, \"reason\": \"r\"}",
      "{\"amount\": 1e400, \"reason\": \"r\"}",
      "{\"amount\": null, \"reason\": \"r\"}",
      "{\"amount\": {}, \"reason\": \"r\"}",
      "{\"amount\": [5], \"reason\": \"r\"}",
      "{\"amount\": true, \"reason\": \"r\"}",
      "{\"amount\": NaN, \"reason\": \"r\"}",
      "{\"reason\": \"r\"}",
      "{\"amount\": 5}",
      "{\"amount\": 5, \"reason\": \"\"}",
      "{\"amount\": 5, \"reason\": 7}",
      "{\"amount\": 5, \"reason\": \"line\\nbreak\"}",
      "{\"amount\": 5, \"reason\": \"nul\\u0000byte\"}",
      "{\"amount\": 5, \"reason\": \"r\", \"user_id\": \"x\"}",
      "{\"amount\": 5, \"amount\": 6, \"reason\": \"r\"}",
      "[5]",
      "5",
  };
  int64_t amount = -1;
  for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++)
    ck_assert_msg(!topup_ok(BAD[i], &amount), "accepted: %s", BAD[i]);
  ck_assert(topup_ok("{\"amount\": 1, \"reason\": \"r\"}", &amount));
  ck_assert_int_eq(amount, 1);
  ck_assert(topup_ok("{\"reason\": \"support ticket #42 \xc3\xa9t\xc3\xa9\", \"amount\": 1000000}",
                     &amount));
  ck_assert_int_eq(amount, 1000000);
}
END_TEST

START_TEST(test_topup_reason_length) {
  char body[1200], reason[900];
  int64_t amount = 0;
  memset(reason, 'r', 200);
  reason[200] = '\0';
  snprintf(body, sizeof(body), "{\"amount\": 3, \"reason\": \"%s\"}", reason);
  ck_assert(topup_ok(body, &amount));
  reason[200] = 'r';
  reason[201] = '\0';
  snprintf(body, sizeof(body), "{\"amount\": 3, \"reason\": \"%s\"}", reason);
  ck_assert(!topup_ok(body, &amount));
  /* 200 two-byte characters are 200 characters. */
  size_t n = 0;
  for (int i = 0; i < 200; i++) {
    reason[n++] = '\xc3';
    reason[n++] = '\xa9';
  }
  reason[n] = '\0';
  snprintf(body, sizeof(body), "{\"amount\": 3, \"reason\": \"%s\"}", reason);
  ck_assert(topup_ok(body, &amount));
}
END_TEST

/* ---- crossing ---- */

START_TEST(test_low_crossing) {
  ck_assert_int_eq(credit_low_crossed(10, 5, 10), 1);  /* from == threshold */
  ck_assert_int_eq(credit_low_crossed(15, 9, 10), 1);
  ck_assert_int_eq(credit_low_crossed(50, 0, 10), 1);
  ck_assert_int_eq(credit_low_crossed(9, 4, 10), 0);   /* already below */
  ck_assert_int_eq(credit_low_crossed(20, 10, 10), 0); /* lands on it: not below */
  ck_assert_int_eq(credit_low_crossed(20, 15, 10), 0);
  ck_assert_int_eq(credit_low_crossed(10, 5, 0), 0);   /* disabled */
  ck_assert_int_eq(credit_low_crossed(5, 0, 1), 1);
}
END_TEST

/* ---- mail ---- */

static const credit_mail MAIL = {"no-reply@credits.example", "alice@example.com",
                                 "Your credit balance is low", "Hello,\nline two\n.dot line\n",
                                 "5b0c1a3e-1111-4222-8333-944445555666", 1767225600};

START_TEST(test_smtp_message) {
  char *m = credit_mail_build_rfc5322(&MAIL);
  ck_assert_ptr_nonnull(m);
  ck_assert_ptr_nonnull(strstr(m, "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"));
  ck_assert_ptr_nonnull(strstr(m, "From: <no-reply@credits.example>\r\n"));
  ck_assert_ptr_nonnull(strstr(m, "To: <alice@example.com>\r\n"));
  ck_assert_ptr_nonnull(
      strstr(m, "Message-ID: <5b0c1a3e-1111-4222-8333-944445555666@credits.example>\r\n"));
  ck_assert_ptr_nonnull(strstr(m, "Subject: Your credit balance is low\r\n"));
  ck_assert_ptr_nonnull(strstr(m, "MIME-Version: 1.0\r\n"));
  ck_assert_ptr_nonnull(strstr(m, "Content-Type: text/plain; charset=UTF-8\r\n"));
  const char *body = strstr(m, "\r\n\r\n");
  ck_assert_ptr_nonnull(body);
  ck_assert_str_eq(body + 4, "Hello,\r\nline two\r\n.dot line\r\n");
  for (const char *p = m; *p; p++) /* every LF is part of a CRLF */
    if (*p == '\n')
      ck_assert(p > m && p[-1] == '\r');
  free(m);
}
END_TEST

START_TEST(test_smtp_message_rejects_injection) {
  credit_mail bad = MAIL;
  bad.to = "alice@example.com\r\nBcc: eve@evil.example";
  ck_assert_ptr_null(credit_mail_build_rfc5322(&bad));
  bad = MAIL;
  bad.to = "Alice <alice@example.com>";
  ck_assert_ptr_null(credit_mail_build_rfc5322(&bad));
  bad = MAIL;
  bad.subject = "hi\r\nBcc: eve@evil.example";
  ck_assert_ptr_null(credit_mail_build_rfc5322(&bad));
  bad = MAIL;
  bad.from = "nobody";
  ck_assert_ptr_null(credit_mail_build_rfc5322(&bad));
  ck_assert_int_eq(credit_mail_addr_valid("a@b@c"), 0);
  ck_assert_int_eq(credit_mail_addr_valid("@b.c"), 0);
  ck_assert_int_eq(credit_mail_addr_valid("a@"), 0);
  ck_assert_int_eq(credit_mail_addr_valid("e2e-1@example.com"), 1);
}
END_TEST

START_TEST(test_low_text) {
  char *t = credit_mail_low_text(5, 10);
  ck_assert_ptr_nonnull(strstr(t, "5 credits, below 10"));
  free(t);
  t = credit_mail_low_text(1, 10);
  ck_assert_ptr_nonnull(strstr(t, "1 credit, below 10"));
  free(t);
}
END_TEST

START_TEST(test_sendgrid_request) {
  credit_mail_http h;
  ck_assert_int_eq(credit_mail_build_sendgrid(&MAIL, "http://127.0.0.1:23400", "SG.key", &h),
                   LC_OK);
  ck_assert_str_eq(h.url, "http://127.0.0.1:23400/v3/mail/send");
  ck_assert_str_eq(h.headers[0], "Authorization: Bearer SG.key");
  ck_assert_str_eq(h.headers[1], "Content-Type: application/json");
  ck_assert_ptr_null(h.headers[2]);
  json_t *j = json_loadb(h.body, h.body_len, 0, NULL);
  ck_assert_ptr_nonnull(j);
  json_t *to = json_array_get(
      json_object_get(json_array_get(json_object_get(j, "personalizations"), 0), "to"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(to, "email")), "alice@example.com");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "from"), "email")),
                   "no-reply@credits.example");
  ck_assert_str_eq(json_string_value(json_object_get(j, "subject")), MAIL.subject);
  json_t *c0 = json_array_get(json_object_get(j, "content"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(c0, "type")), "text/plain");
  ck_assert_str_eq(json_string_value(json_object_get(c0, "value")), MAIL.text);
  json_decref(j);
  credit_mail_http_free(&h);
  ck_assert_int_eq(credit_mail_build_sendgrid(&MAIL, "http://x", "", &h), LC_ERR_PARAM);
  credit_mail_http_free(&h);
}
END_TEST

START_TEST(test_mailgun_request) {
  credit_mail_http h;
  ck_assert_int_eq(
      credit_mail_build_mailgun(&MAIL, "https://api.mailgun.net", "mg.example.com", "key-1", &h),
      LC_OK);
  ck_assert_str_eq(h.url, "https://api.mailgun.net/v3/mg.example.com/messages");
  /* base64("api:key-1") */
  ck_assert_str_eq(h.headers[0], "Authorization: Basic YXBpOmtleS0x");
  ck_assert_str_eq(h.headers[1], "Content-Type: application/x-www-form-urlencoded");
  ck_assert_str_eq(h.body, "from=no-reply%40credits.example&to=alice%40example.com"
                           "&subject=Your+credit+balance+is+low"
                           "&text=Hello%2C%0Aline+two%0A.dot+line%0A");
  ck_assert_uint_eq(h.body_len, strlen(h.body));
  credit_mail_http_free(&h);
  ck_assert_int_eq(credit_mail_build_mailgun(&MAIL, "https://x", "a/b", "k", &h), LC_ERR_PARAM);
  credit_mail_http_free(&h);
}
END_TEST

START_TEST(test_provider_parse) {
  credit_mail_provider p;
  ck_assert_int_eq(credit_mail_provider_parse("smtp", &p), LC_OK);
  ck_assert_int_eq(p, CREDIT_MAIL_SMTP);
  ck_assert_int_eq(credit_mail_provider_parse("sendgrid", &p), LC_OK);
  ck_assert_int_eq(p, CREDIT_MAIL_SENDGRID);
  ck_assert_int_eq(credit_mail_provider_parse("mailgun", &p), LC_OK);
  ck_assert_int_eq(p, CREDIT_MAIL_MAILGUN);
  ck_assert_int_eq(credit_mail_provider_parse("SMTP", &p), LC_ERR_PARAM);
  ck_assert_int_eq(credit_mail_provider_parse(NULL, &p), LC_ERR_PARAM);
}
END_TEST

/* ---- auth.audit events ---- */

START_TEST(test_auth_event_parse) {
  char err[LC_ERR_LEN];
  credit_audit_row row;
  json_t *ok = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}}", "event_id",
                         "7f1d7a36-3a4b-4c1e-9a53-2f0e1c2d3b4a", "ts", "2026-01-02T03:04:05.123Z",
                         "user_id", "5b0c1a3e-1111-4222-8333-944445555666", "actor",
                         "5b0c1a3e-1111-4222-8333-944445555666", "action", "login", "status",
                         "ok", "request_id", "rid-1", "detail", "ip", "127.0.0.1");
  ck_assert_int_eq(credit_audit_from_auth_event(ok, &row, err), LC_OK);
  ck_assert_str_eq(row.action, "login");
  ck_assert_int_eq(row.cost, 0);
  ck_assert_ptr_nonnull(row.detail);
  json_object_set_new(ok, "user_id", json_null()); /* login_failed of an unknown email */
  ck_assert_int_eq(credit_audit_from_auth_event(ok, &row, err), LC_OK);
  ck_assert_ptr_null(row.user_id);
  json_object_set_new(ok, "status", json_string("maybe"));
  ck_assert_int_eq(credit_audit_from_auth_event(ok, &row, err), LC_ERR_PARAM);
  json_object_set_new(ok, "status", json_string("failed"));
  json_object_set_new(ok, "event_id", json_string("nope"));
  ck_assert_int_eq(credit_audit_from_auth_event(ok, &row, err), LC_ERR_PARAM);
  json_object_set_new(ok, "event_id", json_string("7f1d7a36-3a4b-4c1e-9a53-2f0e1c2d3b4a"));
  json_object_set_new(ok, "detail", json_string("x"));
  ck_assert_int_eq(credit_audit_from_auth_event(ok, &row, err), LC_ERR_PARAM);
  json_object_del(ok, "detail");
  json_object_set_new(ok, "ts", json_string("yesterday"));
  ck_assert_int_eq(credit_audit_from_auth_event(ok, &row, err), LC_ERR_PARAM);
  json_decref(ok);
}
END_TEST

int main(void) {
  Suite *s = suite_create("credit-svc-ledger");
  struct {
    const char *name;
    const TTest *tests[8];
  } groups[] = {
      {"idempotency", {test_idem_hash, test_idem_decide, test_idem_key_valid, NULL}},
      {"topup", {test_topup_amount_table, test_topup_reason_length, NULL}},
      {"crossing", {test_low_crossing, NULL}},
      {"mail",
       {test_smtp_message, test_smtp_message_rejects_injection, test_low_text,
        test_sendgrid_request, test_mailgun_request, test_provider_parse, NULL}},
      {"audit", {test_auth_event_parse, NULL}},
  };
  for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
    TCase *tc = tcase_create(groups[g].name);
    tcase_set_timeout(tc, 10);
    for (size_t i = 0; groups[g].tests[i]; i++)
      tcase_add_test(tc, groups[g].tests[i]);
    suite_add_tcase(s, tc);
  }
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
