/* test_unit.c - chain-svc unit tests (no services): JSON-RPC response parsing
 * (texts captured from anvil 1.7.1), quantities, deterministic event ids and
 * the HD key derivation wired into chain_ctx. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>
#include <unistd.h>

#include "chain_ctx.h"
#include "consumer.h"
#include "ethtx.h"
#include "fees.h"
#include "keyfile.h"
#include "reconcile.h"
#include "u256.h"
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

  char e[37];

  chain_event_msg_id(d, "submitted", "0xaa", a);
  chain_event_msg_id(d, "submitted", "0xaa", b);
  chain_event_msg_id(d, "confirmed", "0xaa", c);
  chain_event_msg_id(d, "submitted", "0xbb", e);
  ck_assert_str_eq(a, b);
  ck_assert_str_ne(a, c);
  ck_assert_str_ne(a, e); /* a replacement is a new event, not a duplicate */
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


/* ---- fee bumps ------------------------------------------------------- */

static void gwei(uint64_t g, uint8_t out[32])
{
  ck_assert_int_eq(chain_gwei_to_wei(g, out), 0);
}

static void wei(uint64_t w, uint8_t out[32])
{
  u256_from_u64(w, out);
}

static uint64_t low64(const uint8_t v[32])
{
  uint64_t r = 0;
  for (int i = 24; i < 32; i++)
    r = (r << 8) | v[i];
  return r;
}

START_TEST(test_fee_bump_math)
{
  uint8_t ot[32], om[32], mt[32], mm[32], cap[32], nt[32], nm[32], zero[32] = {0};

  /* +12.5 % exactly when the market did not move: 2 gwei -> 2.25 gwei */
  gwei(2, ot);
  gwei(10, om);
  gwei(1, mt);
  gwei(5, mm);
  ck_assert_int_eq(chain_fee_bump(ot, om, mt, mm, zero, nt, nm), 0);
  ck_assert_uint_eq(low64(nt), 2250000000u);
  ck_assert_uint_eq(low64(nm), 11250000000u);
  /* rounding up: 1 wei -> 2 wei (1 + ceil(1/8)); 9 -> 11; 8 -> 9 */
  wei(1, ot);
  wei(9, om);
  wei(0, mt);
  wei(0, mm);
  ck_assert_int_eq(chain_fee_bump(ot, om, mt, mm, zero, nt, nm), 0);
  ck_assert_uint_eq(low64(nt), 2);
  ck_assert_uint_eq(low64(nm), 11);
  wei(8, om);
  ck_assert_int_eq(chain_fee_bump(ot, om, mt, mm, zero, nt, nm), 0);
  ck_assert_uint_eq(low64(nm), 9);
  /* the market went up more than 12.5 %: take the market */
  gwei(2, ot);
  gwei(10, om);
  gwei(3, mt);
  gwei(40, mm);
  ck_assert_int_eq(chain_fee_bump(ot, om, mt, mm, zero, nt, nm), 0);
  ck_assert_uint_eq(low64(nt), 3000000000u);
  ck_assert_uint_eq(low64(nm), 40000000000u);
  /* a cap below the market but above +12.5 %: capped, still a valid bump */
  gwei(20, cap);
  ck_assert_int_eq(chain_fee_bump(ot, om, mt, mm, cap, nt, nm), 0);
  ck_assert_uint_eq(low64(nm), 20000000000u);
  /* a cap that forbids +12.5 %: refused */
  gwei(11, cap);
  ck_assert_int_eq(chain_fee_bump(ot, om, mt, mm, cap, nt, nm), -1);
  ck_assert_uint_eq(low64(nm), 11000000000u);
  /* the tip never exceeds the max fee; a huge market tip lifts the max fee */
  gwei(1, ot);
  gwei(2, om);
  gwei(50, mt);
  gwei(3, mm);
  ck_assert_int_eq(chain_fee_bump(ot, om, mt, mm, zero, nt, nm), 0);
  ck_assert_int_le(u256_cmp(nt, nm), 0);
  ck_assert_uint_eq(low64(nm), 50000000000u);
  /* repeated bumps compound: 8 bumps of 1 gwei > 2.5 gwei */
  gwei(1, ot);
  gwei(1, om);
  wei(0, mt);
  wei(0, mm);
  for (int i = 0; i < 8; i++) {
    ck_assert_int_eq(chain_fee_bump(ot, om, mt, mm, zero, nt, nm), 0);
    memcpy(ot, nt, 32);
    memcpy(om, nm, 32);
  }
  ck_assert_uint_gt(low64(nm), 2565000000u);
  /* initial fees are capped as well */
  gwei(3, nt);
  gwei(900, nm);
  gwei(500, cap);
  chain_fee_cap(nt, nm, cap);
  ck_assert_uint_eq(low64(nm), 500000000000u);
  gwei(600, nt);
  chain_fee_cap(nt, nm, cap);
  ck_assert_uint_eq(low64(nt), 500000000000u);
}
END_TEST

START_TEST(test_send_error_classes)
{
  /* wordings of anvil 1.7, geth, reth/erigon */
  ck_assert_int_eq(chain_classify_send_error("already known"), CHAIN_SEND_ALREADY_KNOWN);
  ck_assert_int_eq(chain_classify_send_error("transaction already imported"),
                   CHAIN_SEND_ALREADY_KNOWN);
  ck_assert_int_eq(chain_classify_send_error("nonce too low"), CHAIN_SEND_NONCE_TOO_LOW);
  ck_assert_int_eq(chain_classify_send_error("Nonce too low: next nonce 5, tx nonce 3"),
                   CHAIN_SEND_NONCE_TOO_LOW);
  ck_assert_int_eq(chain_classify_send_error("replacement transaction underpriced"),
                   CHAIN_SEND_UNDERPRICED);
  ck_assert_int_eq(chain_classify_send_error("transaction underpriced"), CHAIN_SEND_UNDERPRICED);
  ck_assert_int_eq(chain_classify_send_error("max fee per gas less than block base fee"),
                   CHAIN_SEND_FEE_TOO_LOW);
  ck_assert_int_eq(chain_classify_send_error("fee cap less than block base fee"),
                   CHAIN_SEND_FEE_TOO_LOW);
  ck_assert_int_eq(chain_classify_send_error("Insufficient funds for gas * price + value"),
                   CHAIN_SEND_NO_FUNDS);
  ck_assert_int_eq(chain_classify_send_error("insufficient funds for gas * price + value: "
                                             "balance 0, tx cost 1"),
                   CHAIN_SEND_NO_FUNDS);
  ck_assert_int_eq(chain_classify_send_error("intrinsic gas too low"), CHAIN_SEND_REJECTED);
  ck_assert_int_eq(chain_classify_send_error(""), CHAIN_SEND_REJECTED);
  ck_assert_int_eq(chain_classify_send_error(NULL), CHAIN_SEND_REJECTED);
  ck_assert_str_eq(chain_send_class_name(CHAIN_SEND_UNDERPRICED), "underpriced");
}
END_TEST

START_TEST(test_failure_classes)
{
  /* outages and races are retried forever; only the message's own failures count */
  ck_assert_int_eq(chain_debit_failure_counts(LC_OK), 0);
  ck_assert_int_eq(chain_debit_failure_counts(LC_ERR_PARAM), 0);
  ck_assert_int_eq(chain_debit_failure_counts(LC_ERR_UNAVAIL), 0);
  ck_assert_int_eq(chain_debit_failure_counts(LC_ERR_TIMEOUT), 0);
  ck_assert_int_eq(chain_debit_failure_counts(LC_ERR_RETRY), 0);
  ck_assert_int_eq(chain_debit_failure_counts(LC_ERR_CONFLICT), 0);
  ck_assert_int_eq(chain_debit_failure_counts(LC_ERR_IO), 0);
  ck_assert_int_eq(chain_debit_failure_counts(LC_ERR_UNPROCESSABLE), 1);
  ck_assert_int_eq(chain_debit_failure_counts(LC_ERR_DB), 1);
  ck_assert_int_eq(chain_debit_failure_counts(LC_ERR), 1);
}
END_TEST

/* ---- key file -------------------------------------------------------- */

static const char *ANVIL_MN = "test test test test test test test test test test test junk";

START_TEST(test_keyfile_round_trip)
{
  char path[] = "/tmp/chain-kf-XXXXXX", file[64], out[CHAIN_KEYFILE_MAX_MNEMONIC + 1],
       err[LC_ERR_LEN] = "";
  FILE *f;
  long sz;
  uint8_t buf[512];

  ck_assert_ptr_nonnull(mkdtemp(path));
  snprintf(file, sizeof(file), "%s/key", path);
  /* small Argon2id parameters keep the test fast; the file records them */
  ck_assert_int_eq(chain_keyfile_write(file, ANVIL_MN, "correct horse battery", 2,
                                       8u * 1024u * 1024u, err),
                   LC_OK);
  ck_assert_int_eq(chain_keyfile_read(file, "correct horse battery", out, sizeof(out), err),
                   LC_OK);
  ck_assert_str_eq(out, ANVIL_MN);
  /* wrong passphrase -> unauthenticated, nothing leaked */
  ck_assert_int_eq(chain_keyfile_read(file, "wrong horse battery!", out, sizeof(out), err),
                   LC_ERR_UNAUTH);
  ck_assert_str_eq(out, "");
  /* never overwritten */
  ck_assert_int_eq(chain_keyfile_write(file, ANVIL_MN, "correct horse battery", 2,
                                       8u * 1024u * 1024u, err),
                   LC_ERR_CONFLICT);
  /* the plaintext is not in the file */
  f = fopen(file, "rb");
  ck_assert_ptr_nonnull(f);
  sz = (long)fread(buf, 1, sizeof(buf), f);
  fclose(f);
  ck_assert_int_gt(sz, 60);
  ck_assert_ptr_null(memmem(buf, (size_t)sz, "test test", 9));
  /* a flipped ciphertext byte fails the MAC */
  buf[sz - 3] ^= 1;
  f = fopen(file, "wb");
  ck_assert_ptr_nonnull(f);
  fwrite(buf, 1, (size_t)sz, f);
  fclose(f);
  ck_assert_int_eq(chain_keyfile_read(file, "correct horse battery", out, sizeof(out), err),
                   LC_ERR_UNAUTH);
  /* not a key file */
  f = fopen(file, "wb");
  fputs("hello, this is not a key file at all, no magic here.........................", f);
  fclose(f);
  ck_assert_int_eq(chain_keyfile_read(file, "correct horse battery", out, sizeof(out), err),
                   LC_ERR_PARAM);
  unlink(file);
  /* short passphrase refused */
  ck_assert_int_eq(chain_keyfile_write(file, ANVIL_MN, "short", 2, 8u * 1024u * 1024u, err),
                   LC_ERR_PARAM);
  ck_assert_int_eq(chain_keyfile_read(file, "correct horse battery", out, sizeof(out), err),
                   LC_ERR_IO);
  rmdir(path);
}
END_TEST

/* anvil's ten printed accounts (and keys) = m/44'/60'/0'/0/0..9 of its mnemonic */
START_TEST(test_anvil_accounts)
{
  static const char *addr[10] = {
      "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
      "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
      "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65", "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
      "0x976EA74026E726554dB657fA54763abd0C3a0aa9", "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
      "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f", "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
  };
  static const char *keys[10] = {
      "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
      "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
      "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
      "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
      "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
      "8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
      "92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
      "4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
      "dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
      "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
  };
  uint8_t seed[64], priv[32], a[20];
  char cs[43], hex[65];

  ck_assert_int_eq(wallet_seed_from_mnemonic(ANVIL_MN, "", seed), LC_OK);
  for (uint32_t i = 0; i < 10; i++) {
    ck_assert_int_eq(wallet_derive_eth(seed, 64, 0, i, priv), LC_OK);
    lc_hex_encode(priv, 32, hex);
    ck_assert_str_eq(hex, keys[i]);
    ck_assert_int_eq(eth_address_from_priv(priv, a), LC_OK);
    eth_address_checksum(a, cs);
    ck_assert_str_eq(cs, addr[i]);
  }
}
END_TEST

/* CREATE address: anvil account #0's first contract (nonce 0) is the
 * well-known 0x5FbDB2315678afecb367f032d93F642f64180aa3. */
START_TEST(test_create_address)
{
  uint8_t sender[20], out[20];
  char cs[43];
  ck_assert_int_eq(eth_address_parse("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", sender), LC_OK);
  ck_assert_int_eq(eth_create_address(sender, 0, out), LC_OK);
  eth_address_checksum(out, cs);
  ck_assert_str_eq(cs, "0x5FbDB2315678afecb367f032d93F642f64180aa3");
  ck_assert_int_eq(eth_create_address(sender, 1, out), LC_OK);
  eth_address_checksum(out, cs);
  ck_assert_str_eq(cs, "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512");
}
END_TEST

START_TEST(test_reconcile_ts)
{
  ck_assert(chain_reconcile_ts_ok("2026-01-01T00:00:00Z"));
  ck_assert(chain_reconcile_ts_ok("2026-01-01T00:00:00.123+02:00"));
  ck_assert(chain_reconcile_ts_ok("2026-01-01"));
  ck_assert(!chain_reconcile_ts_ok("yesterday"));
  ck_assert(!chain_reconcile_ts_ok("2026-01-01'; DROP"));
  ck_assert(!chain_reconcile_ts_ok(NULL));
  ck_assert(!chain_reconcile_ts_ok("2026-01-01T00:00:00.000000000000000000000000000Z"));
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
  tcase_add_test(tc, test_fee_bump_math);
  tcase_add_test(tc, test_send_error_classes);
  tcase_add_test(tc, test_failure_classes);
  tcase_add_test(tc, test_keyfile_round_trip);
  tcase_add_test(tc, test_anvil_accounts);
  tcase_add_test(tc, test_create_address);
  tcase_add_test(tc, test_reconcile_ts);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
