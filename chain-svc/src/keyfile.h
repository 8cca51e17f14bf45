/* keyfile.h - the HD wallet's mnemonic encrypted at rest with libsodium.
 *
 * File layout (binary, all integers little-endian):
 *   magic "CHAINKF1" (8) | opslimit u64 | memlimit u64 | salt (16) |
 *   nonce (24) | secretbox(mnemonic) (16-byte MAC + mnemonic bytes)
 * key = crypto_pwhash(Argon2id13, 32 bytes, passphrase, salt, opslimit,
 * memlimit); cipher = crypto_secretbox_easy (XSalsa20-Poly1305).
 * The parameters travel in the file so they can be raised later. Key and
 * plaintext buffers are wiped (sodium_memzero) before returning. */
#ifndef CHAIN_KEYFILE_H
#define CHAIN_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include "lc/err.h"

#define CHAIN_KEYFILE_MAGIC "CHAINKF1"
#define CHAIN_KEYFILE_MAX_MNEMONIC 1000
#define CHAIN_KEYFILE_MIN_PASSPHRASE 12
/* Defaults: Argon2id t=3, m=64 MiB (SPEC: at least t=2, m=64 MiB). */
#define CHAIN_KEYFILE_OPSLIMIT 3
#define CHAIN_KEYFILE_MEMLIMIT (64u * 1024u * 1024u)

/* Encrypts mnemonic (validated as BIP-39 by the caller) under passphrase
 * (>= CHAIN_KEYFILE_MIN_PASSPHRASE bytes) and writes path, mode 0600,
 * refusing to overwrite an existing file (LC_ERR_CONFLICT). opslimit/memlimit
 * 0 mean the defaults. LC_ERR_PARAM for bad inputs, LC_ERR_IO for I/O,
 * LC_ERR_NOMEM when Argon2id cannot get its memory. */
int chain_keyfile_write(const char *path, const char *mnemonic, const char *passphrase,
                        uint64_t opslimit, size_t memlimit, char err[LC_ERR_LEN]);

/* Decrypts path with passphrase into out (NUL-terminated, outsz >=
 * CHAIN_KEYFILE_MAX_MNEMONIC + 1). The caller wipes out after use.
 * LC_ERR_UNAUTH for a wrong passphrase or a tampered file (the MAC fails),
 * LC_ERR_PARAM for a file that is not a key file, LC_ERR_IO when unreadable. */
int chain_keyfile_read(const char *path, const char *passphrase, char *out, size_t outsz,
                       char err[LC_ERR_LEN]);

#endif
