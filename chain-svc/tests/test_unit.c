/* test_unit.c - chain-svc unit tests (no services): JSON-RPC response parsing
 * (texts captured from anvil 1.7.1), quantities, deterministic event ids and
 * the HD key derivation wired into chain_ctx. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "chain_ctx.h"
#include "lc/util.h"
#include "rpc.h"
#include "sender.h"
#include "wallet.h"

/* Real anvil answers (eth_getBlockByNumber trimmed of blooms/roots only). */
static const char BLOCK_RESP[] =
    "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"hash\":\"0x014bc97306255817eb9b823a739c6ae55d1b6"
    "bcb1be0271a1cb7a3775d367e48\",\"parentHash\":\"0x000000000000000000000000000000000000000000"
    "0000000000000000000000\",\"miner\":\"0x0000000000000000000000000000000000000000\","
    "\"difficulty\":\"0x0\",\"number\":\"0x0\",\"gasLimit\":\"0x1c9c380\",\"gasUsed\":\"0x0\","
    "\"timestamp\":\"0x6b0ac63d\",\"extraData\":\"0x\",\"nonce\":\"0x0000000000000000\","
    "\"baseFeePerGas\":\"0x3b9aca00\",\"blobGasUsed\":\"0x0\",\"excessBlobGas\":\"0x0\","
    "\"totalDifficulty\":\"0x0\",\"size\":\"0x267\",\"uncles\":[],\"transactions\":[],"
    "\"withdrawals\":[]}}";
static const char ERROR_RESP[] =
    "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32602,\"message\":\"Failed to decode "
    "transaction\"}}";
static const char NULL_RESP[] = "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":null}";

START_TEST(test_parse_block)
{
  json_t *res = NULL;
  long code = 99;
  char err[LC_ERR_LEN] = "";
  uint64_t v = 0;
  uint8_t fee[32], want[32];

  ck_assert_int_eq(rpc_parse_response(BLOCK_RESP, strlen(BLOCK_RESP), 7, &res, &code, err), LC_OK);
  ck_assert_int_eq(code, 0);
  ck_assert(json_is_object(res));
  ck_assert_int_eq(rpc_quantity_u64(json_object_get(res, "gasLimit"), &v), LC_OK);
  ck_assert_uint_eq(v, 30000000u);
  ck_assert_int_eq(rpc_quantity_u256(json_object_get(res, "baseFeePerGas"), fee), LC_OK);
  memset(want, 0, sizeof(want));
  want[28] = 0x3b; want[29] = 0x9a; want[30] = 0xca; want[31] = 0x00;
  ck_assert_mem_eq(fee, want, 32);
  json_decref(res);
}
END_TEST

START_TEST(test_parse_error_and_null)
{
  json_t *res = NULL;
  long code = 0;
  char err[LC_ERR_LEN] = "";

  ck_assert_int_eq(rpc_parse_response(ERROR_RESP, strlen(ERROR_RESP), 7, &res, &code, err),
                   LC_ERR_UNPROCESSABLE);
  ck_assert_ptr_null(res);
  ck_assert_int_eq(code, -32602);
  ck_assert_str_eq(err, "Failed to decode transaction");

  ck_assert_int_eq(rpc_parse_response(NULL_RESP, strlen(NULL_RESP), 7, &res, &code, err), LC_OK);
  ck_assert(json_is_null(res));
  json_decref(res);
}
END_TEST

START_TEST(test_parse_rejects)
{
  json_t *res = NULL;
  char err[LC_ERR_LEN] = "";
  static const char noresult[] = "{\"jsonrpc\":\"2.0\",\"id\":7}";
  static const char array[] = "[1,2]";
  static const char trunc[] = "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":";

  /* id mismatch */
  ck_assert_int_eq(rpc_parse_response(NULL_RESP, strlen(NULL_RESP), 8, &res, NULL, err),
                   LC_ERR_IO);
  ck_assert_int_eq(rpc_parse_response(noresult, strlen(noresult), 7, &res, NULL, err), LC_ERR_IO);
  ck_assert_int_eq(rpc_parse_response(array, strlen(array), 7, &res, NULL, err), LC_ERR_IO);
  ck_assert_int_eq(rpc_parse_response(trunc, strlen(trunc), 7, &res, NULL, err), LC_ERR_IO);
  ck_assert_int_eq(rpc_parse_response("", 0, 7, &res, NULL, err), LC_ERR_IO);
  ck_assert_ptr_null(res);
}
END_TEST

START_TEST(test_quantities)
{
  uint64_t v = 1;
  json_t *j;

  j = json_string("0x0");
  ck_assert_int_eq(rpc_quantity_u64(j, &v), LC_OK);
  ck_assert_uint_eq(v, 0);
  json_decref(j);
  j = json_string("0xffffffffffffffff");
  ck_assert_int_eq(rpc_quantity_u64(j, &v), LC_OK);
  ck_assert(v == UINT64_MAX);
  json_decref(j);
  j = json_string("0x10000000000000000"); /* 2^64 */
  ck_assert_int_eq(rpc_quantity_u64(j, &v), LC_ERR_PARAM);
  json_decref(j);
  j = json_string("12");
  ck_assert_int_eq(rpc_quantity_u64(j, &v), LC_ERR_PARAM);
  json_decref(j);
  j = json_string("0x");
  ck_assert_int_eq(rpc_quantity_u64(j, &v), LC_ERR_PARAM);
  json_decref(j);
  j = json_string("0x1g");
  ck_assert_int_eq(rpc_quantity_u64(j, &v), LC_ERR_PARAM);
  json_decref(j);
  j = json_integer(5);
  ck_assert_int_eq(rpc_quantity_u64(j, &v), LC_ERR_PARAM);
  json_decref(j);
  ck_assert_int_eq(rpc_quantity_u64(NULL, &v), LC_ERR_PARAM);
}
END_TEST

START_TEST(test_event_ids)
{
  const char *d = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
  char a[37], b[37], c[37];

  chain_event_msg_id(d, "submitted", a);
  chain_event_msg_id(d, "submitted", b);
  chain_event_msg_id(d, "confirmed", c);
  ck_assert_str_eq(a, b);
  ck_assert_str_ne(a, c);
  ck_assert(lc_uuid_valid(a));
  ck_assert(lc_uuid_valid(c));
  ck_assert_int_eq(a[14], '5');
}
END_TEST

START_TEST(test_ctx_keys)
{
  /* BIP-39 seed of anvil's default mnemonic (no passphrase). */
  static const char *mn = "test test test test test test test test test test test junk";
  chain_ctx ctx;
  uint8_t seed[64], addr[20];
  char err[LC_ERR_LEN] = "", out[43];

  ck_assert_int_eq(wallet_seed_from_mnemonic(mn, "", seed), LC_OK);
  ck_assert_int_eq(chain_ctx_init(&ctx, NULL, "http://127.0.0.1:1", 31337,
                                  "0x5FbDB2315678afecb367f032d93F642f64180aa3", seed, 64, err),
                   LC_OK);
  ck_assert_str_eq(ctx.master_str, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
  ck_assert_str_eq(ctx.token_str, "0x5FbDB2315678afecb367f032d93F642f64180aa3");
  /* anvil account #1 = m/44'/60'/0'/0/1 */
  ck_assert_int_eq(chain_user_address(&ctx, 1, addr, out), LC_OK);
  ck_assert_str_eq(out, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
  ck_assert_int_eq(chain_user_address(&ctx, 0, addr, out), LC_ERR_PARAM);
  ck_assert_int_eq(chain_user_address(&ctx, INT64_C(0x80000000), addr, out), LC_ERR_PARAM);
  chain_ctx_free(&ctx);

  ck_assert_int_eq(chain_ctx_init(&ctx, NULL, "http://127.0.0.1:1", 31337, "0x1234", seed, 64,
                                  err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(chain_ctx_init(&ctx, NULL, "http://127.0.0.1:1", 31337,
                                  "0x5FbDB2315678afecb367f032d93F642f64180aa3", seed, 8, err),
                   LC_ERR_PARAM);
}
END_TEST

START_TEST(test_rpc_node_down)
{
  rpc_client c;
  json_t *res = NULL;
  char err[LC_ERR_LEN] = "";
  int rc;

  ck_assert_int_eq(rpc_init(&c, "http://127.0.0.1:1", 2000, err), LC_OK);
  rc = rpc_call(&c, "eth_chainId", NULL, &res, NULL, err);
  ck_assert(rc == LC_ERR_UNAVAIL || rc == LC_ERR_TIMEOUT);
  ck_assert_ptr_null(res);
  ck_assert_int_eq(rpc_init(&c, "", 0, err), LC_ERR_PARAM);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("chain-svc");
  TCase *tc = tcase_create("rpc");
  SRunner *sr;
  int failed;

  lc_global_init();
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_parse_block);
  tcase_add_test(tc, test_parse_error_and_null);
  tcase_add_test(tc, test_parse_rejects);
  tcase_add_test(tc, test_quantities);
  tcase_add_test(tc, test_event_ids);
  tcase_add_test(tc, test_ctx_keys);
  tcase_add_test(tc, test_rpc_node_down);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
