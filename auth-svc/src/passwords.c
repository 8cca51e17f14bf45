/* passwords.c - Argon2id via libsodium behind a counting semaphore.
 *
 * The semaphore is a mutex + condition variable on CLOCK_MONOTONIC (so a wall
 * clock jump neither shortens nor extends the wait). Hash strings carry their
 * own parameters, so verify works for hashes made with older settings. */
#include "passwords.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lc/util.h"

struct auth_pw {
  size_t memlimit;
  uint64_t opslimit;
  int concurrency;
  int wait_ms;
  int in_use;
  int waiting;     /* callers blocked in auth_pw_slot_acquire */
  int max_waiters; /* 0 = unbounded */
  uint64_t queue_full;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  char dummy[AUTH_PW_HASH_MAX];
};

int auth_password_validate(const char *pw, size_t len, char err[LC_ERR_LEN]) {
  if (pw == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "password is required");
  if (len < AUTH_PW_MIN_LEN)
    return lc_err_set(err, LC_ERR_PARAM, "password must be at least %d bytes", AUTH_PW_MIN_LEN);
  if (len > AUTH_PW_MAX_LEN)
    return lc_err_set(err, LC_ERR_PARAM, "password must be at most %d bytes", AUTH_PW_MAX_LEN);
  if (memchr(pw, '\0', len) != NULL)
    return lc_err_set(err, LC_ERR_PARAM, "password must not contain NUL");
  return LC_OK;
}

int auth_pw_slot_acquire(auth_pw *pw) {
  struct timespec deadline;
  int rc = LC_OK;

  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += pw->wait_ms / 1000;
  deadline.tv_nsec += (long)(pw->wait_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&pw->mu);
  if (pw->in_use >= pw->concurrency && pw->max_waiters > 0 && pw->waiting >= pw->max_waiters) {
    pw->queue_full++;
    pthread_mutex_unlock(&pw->mu);
    return LC_ERR_UNAVAIL;
  }
  pw->waiting++;
  while (pw->in_use >= pw->concurrency) {
    int w = pthread_cond_timedwait(&pw->cv, &pw->mu, &deadline);
    if (w == ETIMEDOUT && pw->in_use >= pw->concurrency) {
      rc = LC_ERR_UNAVAIL;
      break;
    }
  }
  pw->waiting--;
  if (rc == LC_OK)
    pw->in_use++;
  pthread_mutex_unlock(&pw->mu);
  return rc;
}

void auth_pw_set_max_waiters(auth_pw *pw, int max_waiters) {
  pthread_mutex_lock(&pw->mu);
  pw->max_waiters = max_waiters < 0 ? 0 : max_waiters;
  pthread_mutex_unlock(&pw->mu);
}

int auth_pw_saturated(auth_pw *pw) {
  int full;
  pthread_mutex_lock(&pw->mu);
  full = pw->in_use >= pw->concurrency && pw->max_waiters > 0 && pw->waiting >= pw->max_waiters;
  if (full)
    pw->queue_full++;
  pthread_mutex_unlock(&pw->mu);
  return full;
}

uint64_t auth_pw_queue_full(auth_pw *pw) {
  uint64_t n;
  pthread_mutex_lock(&pw->mu);
  n = pw->queue_full;
  pthread_mutex_unlock(&pw->mu);
  return n;
}

void auth_pw_slot_release(auth_pw *pw) {
  pthread_mutex_lock(&pw->mu);
  if (pw->in_use > 0)
    pw->in_use--;
  pthread_cond_signal(&pw->cv);
  pthread_mutex_unlock(&pw->mu);
}

int auth_pw_in_use(auth_pw *pw) {
  int n;
  pthread_mutex_lock(&pw->mu);
  n = pw->in_use;
  pthread_mutex_unlock(&pw->mu);
  return n;
}

/* Hashes without taking a slot (caller holds one). */
static int pw_hash_locked(const auth_pw *pw, const char *password, size_t len,
                          char out[AUTH_PW_HASH_MAX], char err[LC_ERR_LEN]) {
  if (crypto_pwhash_str_alg(out, password, (unsigned long long)len,
                            (unsigned long long)pw->opslimit, pw->memlimit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0)
    return lc_err_set(err, LC_ERR_NOMEM, "argon2id: out of memory");
  return LC_OK;
}

int auth_pw_new(size_t memlimit, uint64_t opslimit, int concurrency, int wait_ms,
                auth_pw **out, char err[LC_ERR_LEN]) {
  auth_pw *pw = NULL;
  uint8_t rnd[32];
  char rnd_hex[65];
  pthread_condattr_t ca;
  int rc;

  *out = NULL;
  if (memlimit < AUTH_PW_MEMLIMIT_MIN || memlimit > crypto_pwhash_MEMLIMIT_MAX)
    return lc_err_set(err, LC_ERR_PARAM, "memlimit out of range");
  if (opslimit < AUTH_PW_OPSLIMIT_MIN || opslimit > 64)
    return lc_err_set(err, LC_ERR_PARAM, "opslimit out of range");
  if (concurrency < 1 || concurrency > 256)
    return lc_err_set(err, LC_ERR_PARAM, "concurrency out of range");
  if (wait_ms < 1 || wait_ms > 600000)
    return lc_err_set(err, LC_ERR_PARAM, "wait_ms out of range");

  pw = lc_xcalloc(1, sizeof(*pw));
  pw->memlimit = memlimit;
  pw->opslimit = opslimit;
  pw->concurrency = concurrency;
  pw->wait_ms = wait_ms;
  pthread_mutex_init(&pw->mu, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&pw->cv, &ca);
  pthread_condattr_destroy(&ca);

  /* Dummy hash of a random, never-revealed password with the live params. */
  lc_random(rnd, sizeof(rnd));
  lc_hex_encode(rnd, sizeof(rnd), rnd_hex);
  rc = pw_hash_locked(pw, rnd_hex, 64, pw->dummy, err);
  sodium_memzero(rnd, sizeof(rnd));
  sodium_memzero(rnd_hex, sizeof(rnd_hex));
  if (rc != LC_OK) {
    auth_pw_free(pw);
    return rc;
  }
  *out = pw;
  return LC_OK;
}

void auth_pw_free(auth_pw *pw) {
  if (pw == NULL)
    return;
  pthread_mutex_destroy(&pw->mu);
  pthread_cond_destroy(&pw->cv);
  sodium_memzero(pw, sizeof(*pw));
  free(pw);
}

int auth_pw_hash(auth_pw *pw, const char *password, size_t len, char out[AUTH_PW_HASH_MAX],
                 char err[LC_ERR_LEN]) {
  int rc;

  out[0] = '\0';
  if (password == NULL || len > AUTH_PW_MAX_LEN)
    return lc_err_set(err, LC_ERR_PARAM, "password length out of range");
  if (auth_pw_slot_acquire(pw) != LC_OK)
    return lc_err_set(err, LC_ERR_UNAVAIL, "password hashing busy");
  rc = pw_hash_locked(pw, password, len, out, err);
  auth_pw_slot_release(pw);
  return rc;
}

int auth_pw_verify(auth_pw *pw, const char *hash, const char *password, size_t len,
                   char err[LC_ERR_LEN]) {
  const char *h = hash != NULL ? hash : pw->dummy;
  char buf[AUTH_PW_HASH_MAX];
  int ok;

  if (password == NULL || len > AUTH_PW_MAX_LEN)
    return lc_err_set(err, LC_ERR_UNAUTH, "invalid credentials");
  /* crypto_pwhash_str_verify reads a crypto_pwhash_STRBYTES buffer: copy the
   * (possibly shorter, DB-owned) string into one that is fully sized. */
  memset(buf, 0, sizeof(buf));
  if (lc_strlcpy(buf, h, sizeof(buf)) != LC_OK)
    h = pw->dummy; /* malformed stored hash: spend the time, then fail */
  else
    h = buf;
  if (auth_pw_slot_acquire(pw) != LC_OK)
    return lc_err_set(err, LC_ERR_UNAVAIL, "password hashing busy");
  ok = crypto_pwhash_str_verify(h, password, (unsigned long long)len) == 0;
  auth_pw_slot_release(pw);
  if (hash == NULL || h == pw->dummy || !ok)
    return lc_err_set(err, LC_ERR_UNAUTH, "invalid credentials");
  return LC_OK;
}
