/* test_unit.c - storage-svc unit tests (no services needed): SigV4 against
 * AWS's published S3 examples, URI encoding, request validation, time
 * parsing, report document builder, Idempotency-Key validation. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "lc/util.h"
#include "reports.h"
#include "sigv4.h"

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define HOST "examplebucket.s3.amazonaws.com"
#define T_20130524 ((time_t)1369353600) /* 2013-05-24T00:00:00Z */

static storage_sigv4_req example_req(void)
{
  storage_sigv4_req r;

  memset(&r, 0, sizeof(r));
  r.host = HOST;
  r.access_key = AK;
  r.secret_key = SK;
  r.region = "us-east-1";
  r.service = "s3";
  r.now = T_20130524;
  r.payload_sha256 = STORAGE_SIGV4_EMPTY_SHA256;
  return r;
}

/* AWS S3 API reference, "Signature Calculations for the Authorization Header
 * (AWS Signature Version 4)", Example: GET Object. */
START_TEST(sigv4_get_object)
{
  storage_sigv4_kv hdr[] = {{"Range", "bytes=0-9"}};
  storage_sigv4_req r = example_req();
  storage_sigv4_out o;
  char creq[1024], err[LC_ERR_LEN];

  r.method = "GET";
  r.path = "/test.txt";
  r.headers = hdr;
  r.nheaders = 1;
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, creq, sizeof(creq), err), LC_OK);
  ck_assert_str_eq(creq, "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"
                         "range:bytes=0-9\nx-amz-content-sha256:"
                         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
                         "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-"
                         "date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  ck_assert_str_eq(o.creq_sha256,
                   "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  ck_assert_str_eq(o.amz_date, "20130524T000000Z");
  ck_assert_str_eq(o.signature,
                   "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  ck_assert_str_eq(o.authorization,
                   "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                   "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                   "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}
END_TEST

/* Same page, Example: PUT Object (key "test$file.text": '$' must become %24,
 * body "Welcome to Amazon S3.", extra signed headers date and x-amz-storage-class). */
START_TEST(sigv4_put_object)
{
  storage_sigv4_kv hdr[] = {{"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                            {"Date", "Fri, 24 May 2013 00:00:00 GMT"}};
  storage_sigv4_req r = example_req();
  storage_sigv4_out o;
  uint8_t d[32];
  char hex[65], creq[1024], err[LC_ERR_LEN];
  const char *body = "Welcome to Amazon S3.";

  lc_sha256(body, strlen(body), d);
  lc_hex_encode(d, 32, hex);
  ck_assert_str_eq(hex, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  r.method = "PUT";
  r.path = "/test$file.text";
  r.headers = hdr;
  r.nheaders = 2;
  r.payload_sha256 = hex;
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, creq, sizeof(creq), err), LC_OK);
  ck_assert_ptr_nonnull(strstr(creq, "PUT\n/test%24file.text\n\ndate:"));
  ck_assert_str_eq(o.signed_headers, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
  ck_assert_str_eq(o.creq_sha256,
                   "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  ck_assert_str_eq(o.signature,
                   "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}
END_TEST

/* Same page, Example: GET Bucket Lifecycle (query "lifecycle" with empty value). */
START_TEST(sigv4_get_lifecycle)
{
  storage_sigv4_kv q[] = {{"lifecycle", ""}};
  storage_sigv4_req r = example_req();
  storage_sigv4_out o;
  char err[LC_ERR_LEN];

  r.method = "GET";
  r.path = "/";
  r.query = q;
  r.nquery = 1;
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, NULL, 0, err), LC_OK);
  ck_assert_str_eq(o.signature,
                   "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}
END_TEST

/* Same page, Example: Get Bucket (List Objects): two query pairs given unsorted. */
START_TEST(sigv4_list_objects)
{
  storage_sigv4_kv q[] = {{"prefix", "J"}, {"max-keys", "2"}};
  storage_sigv4_req r = example_req();
  storage_sigv4_out o;
  char creq[1024], err[LC_ERR_LEN];

  r.method = "GET";
  r.path = "/";
  r.query = q;
  r.nquery = 2;
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, creq, sizeof(creq), err), LC_OK);
  ck_assert_ptr_nonnull(strstr(creq, "GET\n/\nmax-keys=2&prefix=J\n"));
  ck_assert_str_eq(o.signature,
                   "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}
END_TEST

START_TEST(sigv4_changes_with_inputs)
{
  storage_sigv4_req r = example_req();
  storage_sigv4_out a, b;
  char err[LC_ERR_LEN];

  r.method = "GET";
  r.path = "/test.txt";
  ck_assert_int_eq(storage_sigv4_sign(&r, &a, NULL, 0, err), LC_OK);
  r.now += 1;
  ck_assert_int_eq(storage_sigv4_sign(&r, &b, NULL, 0, err), LC_OK);
  ck_assert_str_ne(a.signature, b.signature);
  r.now -= 1;
  r.secret_key = "another-secret";
  ck_assert_int_eq(storage_sigv4_sign(&r, &b, NULL, 0, err), LC_OK);
  ck_assert_str_ne(a.signature, b.signature);
  /* the secret never appears in the output */
  ck_assert_ptr_null(strstr(b.authorization, "another-secret"));
}
END_TEST

START_TEST(sigv4_rejects_bad_input)
{
  storage_sigv4_kv dup[] = {{"Range", "a"}, {"range", "b"}};
  storage_sigv4_kv host[] = {{"Host", "evil"}};
  storage_sigv4_req r = example_req();
  storage_sigv4_out o;
  char err[LC_ERR_LEN];

  r.method = "GET";
  r.path = "test.txt"; /* not absolute */
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, NULL, 0, err), LC_ERR_PARAM);
  r.path = "/test.txt";
  r.headers = dup;
  r.nheaders = 2;
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, NULL, 0, err), LC_ERR_PARAM);
  r.headers = host;
  r.nheaders = 1;
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, NULL, 0, err), LC_ERR_PARAM);
  r.headers = NULL;
  r.nheaders = 0;
  r.secret_key = NULL;
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, NULL, 0, err), LC_ERR_PARAM);
}
END_TEST

START_TEST(sigv4_header_values_canonicalised)
{
  storage_sigv4_kv h1[] = {{"X-Amz-Meta-A", "  one   two  "}};
  storage_sigv4_req r = example_req();
  storage_sigv4_out o;
  char creq[1024], err[LC_ERR_LEN];

  r.method = "PUT";
  r.path = "/b/k";
  r.headers = h1;
  r.nheaders = 1;
  ck_assert_int_eq(storage_sigv4_sign(&r, &o, creq, sizeof(creq), err), LC_OK);
  ck_assert_ptr_nonnull(strstr(creq, "\nx-amz-meta-a:one two\n"));
}
END_TEST

START_TEST(uri_encode_cases)
{
  static const struct {
    const char *in;
    int slash;
    const char *want;
  } c[] = {
      {"a b", 0, "a%20b"},
      {"a+b", 0, "a%2Bb"},
      {"100%", 0, "100%25"},
      {"A-z_0.9~", 1, "A-z_0.9~"},
      {"a/b", 0, "a/b"},
      {"a/b", 1, "a%2Fb"},
      {"=&?#", 1, "%3D%26%3F%23"},
      {"test$file.text", 0, "test%24file.text"},
      {"a!b'c(d)e*f", 0, "a%21b%27c%28d%29e%2Af"},
      {"\xd0\xba\xd0\xbb", 0, "%D0%BA%D0%BB"},
      {"", 0, ""},
      {"/bucket/reports/0b7a/x.json", 0, "/bucket/reports/0b7a/x.json"},
  };
  char out[128];

  for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
    ck_assert_int_eq(storage_sigv4_uri_encode(c[i].in, c[i].slash, out, sizeof(out)), LC_OK);
    ck_assert_str_eq(out, c[i].want);
  }
  /* too small: error, never a silent truncation */
  ck_assert_int_eq(storage_sigv4_uri_encode("abc", 0, out, 3), LC_ERR_TOO_LARGE);
  ck_assert_int_eq(storage_sigv4_uri_encode(" ", 0, out, 3), LC_ERR_TOO_LARGE);
  ck_assert_int_eq(storage_sigv4_uri_encode(" ", 0, out, 4), LC_OK);
  ck_assert_str_eq(out, "%20");
}
END_TEST

START_TEST(s3_key_validation)
{
  ck_assert_int_eq(storage_s3_key_valid("reports/0b7a2b8e-1111-4222-8333-944455556666/x.json"), 1);
  ck_assert_int_eq(storage_s3_key_valid("/abs"), 0);
  ck_assert_int_eq(storage_s3_key_valid("a/../b"), 0);
  ck_assert_int_eq(storage_s3_key_valid("a//b"), 0);
  ck_assert_int_eq(storage_s3_key_valid("my file.txt"), 0);
  ck_assert_int_eq(storage_s3_key_valid(""), 0);
  ck_assert_int_eq(storage_s3_key_valid(NULL), 0);
}
END_TEST

START_TEST(s3_init_validation)
{
  storage_s3 s3;
  char err[LC_ERR_LEN];

  ck_assert_int_eq(storage_s3_init(&s3, "http://127.0.0.1:24568/", "us-east-1", "my-bucket", "ak",
                                   "sk", 0, err), LC_OK);
  ck_assert_str_eq(s3.endpoint, "http://127.0.0.1:24568");
  ck_assert_str_eq(s3.host, "127.0.0.1:24568");
  ck_assert_int_eq(storage_s3_init(&s3, "ftp://x", "us-east-1", "my-bucket", "ak", "sk", 0, err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(storage_s3_init(&s3, "http://x/path", "us-east-1", "my-bucket", "ak", "sk", 0,
                                   err), LC_ERR_PARAM);
  ck_assert_int_eq(storage_s3_init(&s3, "http://x", "us-east-1", "My_Bucket", "ak", "sk", 0, err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(storage_s3_init(&s3, "http://x", "us-east-1", "ok-bucket", "ak", "", 0, err),
                   LC_ERR_PARAM);
  ck_assert_ptr_null(strstr(err, "sk"));
}
END_TEST

static int parse_text(const char *text, storage_report_req *r, char err[LC_ERR_LEN])
{
  json_t *j = json_loads(text, 0, NULL);
  int rc;

  ck_assert_ptr_nonnull(j);
  rc = storage_reports_parse_req(j, r, err);
  json_decref(j);
  return rc;
}

START_TEST(req_validation)
{
  storage_report_req r;
  char err[LC_ERR_LEN];

  ck_assert_int_eq(parse_text("{\"kind\":\"usage\",\"format\":\"json\"}", &r, err), LC_OK);
  ck_assert_str_eq(r.kind, "usage");
  ck_assert_int_eq(r.from_ms, -1);
  ck_assert_int_eq(parse_text("{\"kind\":\"usage\",\"format\":\"json\",\"from\":\"2026-01-01\","
                              "\"to\":\"2026-02-01T00:00:00+01:00\"}", &r, err), LC_OK);
  ck_assert_str_eq(r.from, "2026-01-01T00:00:00.000Z");
  ck_assert_str_eq(r.to, "2026-01-31T23:00:00.000Z");
  ck_assert_int_eq(parse_text("{\"kind\":\"usage\",\"format\":\"json\",\"x\":1}", &r, err),
                   LC_ERR_PARAM);
  ck_assert_ptr_nonnull(strstr(err, "x"));
  ck_assert_int_eq(parse_text("{\"format\":\"json\"}", &r, err), LC_ERR_PARAM);
  ck_assert_int_eq(parse_text("{\"kind\":\"usage\"}", &r, err), LC_ERR_PARAM);
  ck_assert_int_eq(parse_text("{\"kind\":5,\"format\":\"json\"}", &r, err), LC_ERR_PARAM);
  ck_assert_int_eq(parse_text("{\"kind\":\"bogus\",\"format\":\"json\"}", &r, err), LC_ERR_PARAM);
  ck_assert_int_eq(parse_text("{\"kind\":\"files\",\"format\":\"json\"}", &r, err), LC_OK);
  ck_assert_str_eq(r.kind, "files");
  ck_assert_int_eq(parse_text("{\"kind\":\"usage\",\"format\":\"csv\"}", &r, err), LC_OK);
  ck_assert_str_eq(r.format, "csv");
  ck_assert_int_eq(parse_text("{\"kind\":\"usage\",\"format\":\"xml\"}", &r, err), LC_ERR_PARAM);
  ck_assert_int_eq(parse_text("{\"kind\":\"usage\",\"format\":\"json\",\"from\":\"2026-13-01\"}",
                              &r, err), LC_ERR_PARAM);
  ck_assert_int_eq(parse_text("{\"kind\":\"usage\",\"format\":\"json\",\"from\":7}", &r, err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(parse_text("{\"kind\":\"usage\",\"format\":\"json\",\"from\":\"2026-02-02\","
                              "\"to\":\"2026-02-01\"}", &r, err), LC_ERR_PARAM);
  ck_assert_int_eq(parse_text("[1]", &r, err), LC_ERR_PARAM);
}
END_TEST

START_TEST(time_parse_format)
{
  int64_t ms;
  char out[32];

  ck_assert_int_eq(storage_reports_parse_time("1970-01-01T00:00:00Z", &ms), LC_OK);
  ck_assert_int_eq(ms, 0);
  ck_assert_int_eq(storage_reports_parse_time("2013-05-24T00:00:00Z", &ms), LC_OK);
  ck_assert_int_eq(ms, (int64_t)T_20130524 * 1000);
  ck_assert_int_eq(storage_reports_parse_time("2024-02-29T12:34:56.789123Z", &ms), LC_OK);
  storage_reports_format_time(ms, out);
  ck_assert_str_eq(out, "2024-02-29T12:34:56.789Z");
  ck_assert_int_eq(storage_reports_parse_time("2024-02-29T12:34:56.7-02:30", &ms), LC_OK);
  storage_reports_format_time(ms, out);
  ck_assert_str_eq(out, "2024-02-29T15:04:56.700Z");
  ck_assert_int_eq(storage_reports_parse_time("2023-02-29", &ms), LC_ERR_PARAM);
  ck_assert_int_eq(storage_reports_parse_time("2023-01-01T24:00:00Z", &ms), LC_ERR_PARAM);
  ck_assert_int_eq(storage_reports_parse_time("2023-01-01T00:00:00", &ms), LC_ERR_PARAM);
  ck_assert_int_eq(storage_reports_parse_time("2023-01-01T00:00:00Zjunk", &ms), LC_ERR_PARAM);
  ck_assert_int_eq(storage_reports_parse_time("2023-1-01", &ms), LC_ERR_PARAM);
  ck_assert_int_eq(storage_reports_parse_time("1969-12-31", &ms), LC_ERR_PARAM);
  ck_assert_int_eq(storage_reports_parse_time("", &ms), LC_ERR_PARAM);
}
END_TEST

START_TEST(report_builder)
{
  const char *ledger =
      "[{\"id\":\"e3\",\"amount\":-5,\"reason\":\"report.generate\",\"ts\":\"2026-03-02T10:00:00Z\"},"
      " {\"id\":\"e2\",\"amount\":-10,\"reason\":\"file.upload\",\"ts\":\"2026-02-15T10:00:00.5Z\"},"
      " {\"id\":\"e1\",\"amount\":50,\"reason\":\"signup_bonus\",\"created_at\":\"2026-01-01T00:00:00Z\"},"
      " {\"id\":\"e0\",\"amount\":1,\"reason\":\"no time\"}]";
  json_t *entries = json_loads(ledger, 0, NULL), *doc, *arr;
  storage_report_req req;
  char err[LC_ERR_LEN], *out = NULL;
  size_t len = 0;

  ck_assert_ptr_nonnull(entries);
  ck_assert_int_eq(parse_text("{\"kind\":\"usage\",\"format\":\"json\"}", &req, err), LC_OK);
  ck_assert_int_eq(storage_reports_build_usage("r-1", "u-1", "2026-03-03T00:00:00.000Z", &req,
                                               entries, 0, &out, &len, err), LC_OK);
  ck_assert_uint_eq(len, strlen(out));
  doc = json_loads(out, 0, NULL);
  ck_assert_ptr_nonnull(doc);
  ck_assert_str_eq(json_string_value(json_object_get(doc, "report_id")), "r-1");
  ck_assert_str_eq(json_string_value(json_object_get(doc, "user_id")), "u-1");
  ck_assert_str_eq(json_string_value(json_object_get(doc, "kind")), "usage");
  ck_assert_str_eq(json_string_value(json_object_get(doc, "generated_at")), "2026-03-03T00:00:00.000Z");
  ck_assert_ptr_null(json_object_get(doc, "from"));
  arr = json_object_get(doc, "entries");
  ck_assert_uint_eq(json_array_size(arr), 4);
  ck_assert_int_eq(json_integer_value(json_object_get(doc, "entry_count")), 4);
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(arr, 1), "amount")), -10);
  json_decref(doc);
  free(out);

  /* range [2026-02-01, 2026-03-02T10:00:00Z): only e2 */
  ck_assert_int_eq(parse_text("{\"kind\":\"usage\",\"format\":\"json\",\"from\":\"2026-02-01\","
                              "\"to\":\"2026-03-02T10:00:00Z\"}", &req, err), LC_OK);
  ck_assert_int_eq(storage_reports_build_usage("r-2", "u-1", "2026-03-03T00:00:00.000Z", &req,
                                               entries, 1, &out, &len, err), LC_OK);
  doc = json_loads(out, 0, NULL);
  arr = json_object_get(doc, "entries");
  ck_assert_uint_eq(json_array_size(arr), 1);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(arr, 0), "id")), "e2");
  ck_assert_str_eq(json_string_value(json_object_get(doc, "from")), "2026-02-01T00:00:00.000Z");
  ck_assert(json_is_true(json_object_get(doc, "truncated")));
  json_decref(doc);
  free(out);

  ck_assert_int_eq(storage_reports_build_usage("r", "u", "t", &req, json_object_get(entries, "x"),
                                               0, &out, &len, err), LC_ERR_PARAM);
  json_decref(entries);
}
END_TEST

START_TEST(idem_key_validation)
{
  char big[200];

  ck_assert_int_eq(storage_idem_key_valid("abc-123_XYZ:1"), 1);
  ck_assert_int_eq(storage_idem_key_valid(""), 0);
  ck_assert_int_eq(storage_idem_key_valid("a b"), 0);
  ck_assert_int_eq(storage_idem_key_valid("a,b"), 0);
  ck_assert_int_eq(storage_idem_key_valid("a\x7f"), 0);
  memset(big, 'k', sizeof(big));
  big[128] = '\0';
  ck_assert_int_eq(storage_idem_key_valid(big), 1);
  big[128] = 'k';
  big[129] = '\0';
  ck_assert_int_eq(storage_idem_key_valid(big), 0);
}
END_TEST

static Suite *unit_suite(void)
{
  Suite *s = suite_create("storage-unit");
  TCase *t = tcase_create("sigv4");

  tcase_add_test(t, sigv4_get_object);
  tcase_add_test(t, sigv4_put_object);
  tcase_add_test(t, sigv4_get_lifecycle);
  tcase_add_test(t, sigv4_list_objects);
  tcase_add_test(t, sigv4_changes_with_inputs);
  tcase_add_test(t, sigv4_rejects_bad_input);
  tcase_add_test(t, sigv4_header_values_canonicalised);
  tcase_add_test(t, uri_encode_cases);
  tcase_set_timeout(t, 10);
  suite_add_tcase(s, t);
  t = tcase_create("s3");
  tcase_add_test(t, s3_key_validation);
  tcase_add_test(t, s3_init_validation);
  tcase_set_timeout(t, 10);
  suite_add_tcase(s, t);
  t = tcase_create("reports");
  tcase_add_test(t, req_validation);
  tcase_add_test(t, time_parse_format);
  tcase_add_test(t, report_builder);
  tcase_add_test(t, idem_key_validation);
  tcase_set_timeout(t, 10);
  suite_add_tcase(s, t);
  return s;
}

int main(void)
{
  SRunner *sr;
  int failed;

  if (lc_global_init() != 0)
    return EXIT_FAILURE;
  sr = srunner_create(unit_suite());
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
