/* keyfile.c - encrypted mnemonic file (see keyfile.h). */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#define HDR_LEN (8 + 8 + 8 + crypto_pwhash_SALTBYTES + crypto_secretbox_NONCEBYTES)
#define FILE_MAX (HDR_LEN + crypto_secretbox_MACBYTES + CHAIN_KEYFILE_MAX_MNEMONIC)

static void put_u64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static int derive(uint8_t key[32], const char *passphrase, const uint8_t *salt, uint64_t ops,
                  size_t mem, char err[LC_ERR_LEN])
{
  if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_MAX ||
      mem < crypto_pwhash_MEMLIMIT_MIN || mem > (size_t)4096 * 1024 * 1024)
    return lc_err_set(err, LC_ERR_PARAM, "keyfile - Argon2id parameters out of range");
  if (crypto_pwhash(key, 32, passphrase, strlen(passphrase), salt, ops, mem,
                    crypto_pwhash_ALG_ARGON2ID13) != 0)
    return lc_err_set(err, LC_ERR_NOMEM, "keyfile - Argon2id failed (out of memory)");
  return LC_OK;
}

int chain_keyfile_write(const char *path, const char *mnemonic, const char *passphrase,
                        uint64_t opslimit, size_t memlimit, char err[LC_ERR_LEN])
{
  uint8_t buf[FILE_MAX], key[32];
  size_t mlen, total;
  int fd = -1, rc;

  if (path == NULL || mnemonic == NULL || passphrase == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "keyfile - missing argument");
  mlen = strlen(mnemonic);
  if (mlen == 0 || mlen > CHAIN_KEYFILE_MAX_MNEMONIC)
    return lc_err_set(err, LC_ERR_PARAM, "keyfile - mnemonic length out of range");
  if (strlen(passphrase) < CHAIN_KEYFILE_MIN_PASSPHRASE)
    return lc_err_set(err, LC_ERR_PARAM, "keyfile - passphrase shorter than %d bytes",
                      CHAIN_KEYFILE_MIN_PASSPHRASE);
  if (sodium_init() < 0)
    return lc_err_set(err, LC_ERR, "keyfile - libsodium init failed");
  if (opslimit == 0)
    opslimit = CHAIN_KEYFILE_OPSLIMIT;
  if (memlimit == 0)
    memlimit = CHAIN_KEYFILE_MEMLIMIT;

  memcpy(buf, CHAIN_KEYFILE_MAGIC, 8);
  put_u64(buf + 8, opslimit);
  put_u64(buf + 16, (uint64_t)memlimit);
  randombytes_buf(buf + 24, crypto_pwhash_SALTBYTES);
  randombytes_buf(buf + 24 + crypto_pwhash_SALTBYTES, crypto_secretbox_NONCEBYTES);
  rc = derive(key, passphrase, buf + 24, opslimit, memlimit, err);
  if (rc != LC_OK)
    goto out;
  crypto_secretbox_easy(buf + HDR_LEN, (const uint8_t *)mnemonic, mlen,
                        buf + 24 + crypto_pwhash_SALTBYTES, key);
  total = HDR_LEN + crypto_secretbox_MACBYTES + mlen;

  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    rc = lc_err_set(err, errno == EEXIST ? LC_ERR_CONFLICT : LC_ERR_IO,
                    "keyfile - cannot create %s: %s", path, strerror(errno));
    goto out;
  }
  if (write(fd, buf, total) != (ssize_t)total || fsync(fd) != 0) {
    rc = lc_err_set(err, LC_ERR_IO, "keyfile - write failed: %s", strerror(errno));
    close(fd);
    fd = -1;
    unlink(path);
    goto out;
  }
  rc = LC_OK;
out:
  if (fd >= 0 && close(fd) != 0 && rc == LC_OK)
    rc = lc_err_set(err, LC_ERR_IO, "keyfile - close failed");
  sodium_memzero(key, sizeof(key));
  sodium_memzero(buf, sizeof(buf));
  return rc;
}

int chain_keyfile_read(const char *path, const char *passphrase, char *out, size_t outsz,
                       char err[LC_ERR_LEN])
{
  uint8_t buf[FILE_MAX + 1], key[32];
  ssize_t n;
  size_t clen, mlen;
  uint64_t ops, mem;
  int fd, rc;

  if (path == NULL || passphrase == NULL || out == NULL || outsz == 0)
    return lc_err_set(err, LC_ERR_PARAM, "keyfile - missing argument");
  out[0] = '\0';
  if (sodium_init() < 0)
    return lc_err_set(err, LC_ERR, "keyfile - libsodium init failed");
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return lc_err_set(err, LC_ERR_IO, "keyfile - cannot open %s: %s", path, strerror(errno));
  n = read(fd, buf, sizeof(buf));
  close(fd);
  if (n < 0)
    return lc_err_set(err, LC_ERR_IO, "keyfile - read failed: %s", strerror(errno));
  if ((size_t)n < HDR_LEN + crypto_secretbox_MACBYTES + 1 || (size_t)n > FILE_MAX ||
      memcmp(buf, CHAIN_KEYFILE_MAGIC, 8) != 0) {
    rc = lc_err_set(err, LC_ERR_PARAM, "keyfile - %s is not a chain-svc key file", path);
    goto out;
  }
  ops = get_u64(buf + 8);
  mem = get_u64(buf + 16);
  clen = (size_t)n - HDR_LEN;
  mlen = clen - crypto_secretbox_MACBYTES;
  if (mlen + 1 > outsz) {
    rc = lc_err_set(err, LC_ERR_TOO_LARGE, "keyfile - output buffer too small");
    goto out;
  }
  rc = derive(key, passphrase, buf + 24, ops, (size_t)mem, err);
  if (rc != LC_OK)
    goto out;
  if (crypto_secretbox_open_easy((uint8_t *)out, buf + HDR_LEN, clen,
                                 buf + 24 + crypto_pwhash_SALTBYTES, key) != 0) {
    sodium_memzero(out, outsz);
    rc = lc_err_set(err, LC_ERR_UNAUTH, "keyfile - wrong passphrase or corrupted file");
    goto out;
  }
  out[mlen] = '\0';
  if (memchr(out, '\0', mlen) != NULL) {
    sodium_memzero(out, outsz);
    rc = lc_err_set(err, LC_ERR_PARAM, "keyfile - decrypted mnemonic contains NUL");
    goto out;
  }
  rc = LC_OK;
out:
  sodium_memzero(key, sizeof(key));
  sodium_memzero(buf, sizeof(buf));
  return rc;
}
