/* passwords.h - Argon2id password hashing (libsodium) with bounded concurrency.
 *
 * Hashes are crypto_pwhash_str_alg(..., crypto_pwhash_ALG_ARGON2ID13) strings
 * ("$argon2id$v=19$m=65536,t=2,p=1$..."). Each hash or verify needs memlimit
 * bytes, so an auth_pw object admits at most `concurrency` of them at once:
 * callers beyond that wait up to wait_ms for a slot and then get
 * LC_ERR_UNAVAIL (-> 503). At most max_waiters callers wait at once (see
 * auth_pw_set_max_waiters); one more is refused at once, so a burst of
 * logins costs at most concurrency * memlimit of Argon2id memory and is
 * answered 503 + Retry-After in microseconds instead of after wait_ms.
 * An auth_pw is thread-safe. */
#ifndef AUTH_PASSWORDS_H
#define AUTH_PASSWORDS_H

#include <stddef.h>
#include <stdint.h>
#include "lc/err.h"

/* Size of a buffer that holds any hash string (crypto_pwhash_STRBYTES). */
#define AUTH_PW_HASH_MAX 128
/* Accepted password lengths in bytes (UTF-8). */
#define AUTH_PW_MIN_LEN 8
#define AUTH_PW_MAX_LEN 256
/* Policy floors (SPEC §6): m >= 64 MiB, t >= 2. */
#define AUTH_PW_MEMLIMIT_MIN ((size_t)64 * 1024 * 1024)
#define AUTH_PW_OPSLIMIT_MIN 2

typedef struct auth_pw auth_pw;

/* Creates a hasher. memlimit >= AUTH_PW_MEMLIMIT_MIN, opslimit >=
 * AUTH_PW_OPSLIMIT_MIN, concurrency in [1,256], wait_ms in [1,600000]
 * (else LC_ERR_PARAM). Computes a dummy hash with the same parameters (used by
 * auth_pw_verify(NULL) so an unknown account costs the same time).
 * *out is new (auth_pw_free). */
int auth_pw_new(size_t memlimit, uint64_t opslimit, int concurrency, int wait_ms,
                auth_pw **out, char err[LC_ERR_LEN]);
void auth_pw_free(auth_pw *pw);

/* Bounds the callers waiting for a slot (0 = no bound, the default of
 * auth_pw_new). Beyond it auth_pw_slot_acquire fails at once. */
void auth_pw_set_max_waiters(auth_pw *pw, int max_waiters);

/* Checks a candidate password: 8..256 bytes, no NUL byte (len is the byte
 * length; UTF-8 validity is guaranteed by the JSON decoder). LC_OK or
 * LC_ERR_PARAM with err saying why. */
int auth_password_validate(const char *pw, size_t len, char err[LC_ERR_LEN]);

/* Hashes pw (len bytes) into out (NUL-terminated). Waits for a slot.
 * Returns LC_OK, LC_ERR_UNAVAIL (no slot within wait_ms), LC_ERR_NOMEM
 * (libsodium could not allocate), LC_ERR_PARAM (len out of range). */
int auth_pw_hash(auth_pw *pw, const char *password, size_t len, char out[AUTH_PW_HASH_MAX],
                 char err[LC_ERR_LEN]);

/* Verifies password against hash (NULL = the dummy hash, which never matches
 * but costs the same). Returns LC_OK on match, LC_ERR_UNAUTH on mismatch or a
 * malformed hash, LC_ERR_UNAVAIL when no slot was free within wait_ms. */
int auth_pw_verify(auth_pw *pw, const char *hash, const char *password, size_t len,
                   char err[LC_ERR_LEN]);

/* The slot semaphore itself (used by hash/verify; public so tests and
 * callers can reason about the bound). acquire waits at most wait_ms (not at
 * all when max_waiters callers already wait) and returns LC_OK or
 * LC_ERR_UNAVAIL; every LC_OK must be paired with release. */
int auth_pw_slot_acquire(auth_pw *pw);
void auth_pw_slot_release(auth_pw *pw);
/* Slots currently held (for tests and metrics). */
int auth_pw_in_use(auth_pw *pw);
/* 1 when a caller arriving now would be refused at once (all slots busy and
 * max_waiters already waiting). A racy snapshot for load shedding before
 * any other work (the login's user lookup); the acquire still decides. */
int auth_pw_saturated(auth_pw *pw);
/* Callers refused because max_waiters were already waiting (metrics). */
uint64_t auth_pw_queue_full(auth_pw *pw);

#endif
