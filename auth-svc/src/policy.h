/* policy.h - pure decision functions of the identity layer (no I/O), kept
 * apart so they are unit-tested exhaustively:
 *   - the refresh decision (rotate / grace / reuse / reject),
 *   - the CSRF decision for cookie-authenticated refreshes,
 *   - sealing a rotated token's successor for the grace window.
 * Thread-safe (no state). */
#ifndef AUTH_POLICY_H
#define AUTH_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "lc/err.h"

/* What the refresh path knows about the presented token (read under lock). */
typedef struct {
  int revoked;          /* the token or any token of its family is revoked */
  int expired;          /* the family's absolute lifetime is over */
  int rotated;          /* the token was already exchanged for a successor */
  int64_t rotated_age_ms; /* now - rotated_at (only meaningful when rotated) */
  int has_successor;    /* the sealed successor is still stored (not wiped) */
  int successor_live;   /* the successor is neither rotated nor revoked */
} auth_rt_state;

typedef enum {
  AUTH_RT_ROTATE = 0,   /* normal use: rotate, issue a child */
  AUTH_RT_GRACE,        /* concurrent refresh within the window: hand out the same successor */
  AUTH_RT_REUSE,        /* reuse of a rotated token: revoke the family, audit, 401 */
  AUTH_RT_REJECT,       /* revoked or expired: 401, nothing changes */
} auth_rt_decision;

/* The decision table (grace_ms 0 disables the grace window):
 *   revoked                                            -> REJECT
 *   rotated, age <= grace_ms, successor stored & live,
 *     family not expired                               -> GRACE
 *   rotated otherwise                                  -> REUSE
 *   expired                                            -> REJECT
 *   else                                               -> ROTATE */
auth_rt_decision auth_rt_decide(const auth_rt_state *s, int64_t grace_ms);

/* CSRF defence for requests authenticated by the __Host-refresh cookie:
 * allowed when origin (may be NULL) equals one entry of allowed_csv (comma
 * separated, whitespace around entries ignored, exact byte comparison,
 * "null" never allowed), or when x_requested_with equals "fetch" exactly.
 * Returns 1 when allowed, 0 otherwise. */
int auth_csrf_allowed(const char *origin, const char *x_requested_with, const char *allowed_csv);

/* Sealed successor: 24-byte nonce || secretbox(successor). The box key is
 * BLAKE2b-256(key = enc_key, msg = parent token), so only someone who
 * presents the parent token (and the server key) can open it. */
#define AUTH_SEAL_MAX 128

/* Seals successor (NUL-terminated, <= 80 bytes) into out (capacity
 * AUTH_SEAL_MAX); *outlen receives the length. LC_ERR_PARAM when too long. */
int auth_seal_successor(const uint8_t enc_key[32], const char *parent_token,
                        const char *successor, uint8_t *out, size_t *outlen);

/* Opens a sealed successor into out (capacity outsz, NUL-terminated).
 * LC_ERR_UNAUTH when the box does not verify (wrong parent, wrong key,
 * tampered), LC_ERR_PARAM for malformed lengths. */
int auth_open_successor(const uint8_t enc_key[32], const char *parent_token,
                        const uint8_t *sealed, size_t len, char *out, size_t outsz);

#endif
