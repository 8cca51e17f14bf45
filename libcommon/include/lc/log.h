/* log.h - yder logging with a per-thread request id.
 *
 * Lines look like: "<app> rid=<request-id> <message>". Audit-relevant lines use
 * the "Security - " / "Event - " prefixes. Never pass secrets, tokens, keys,
 * passwords or full bodies. */
#ifndef LC_LOG_H
#define LC_LOG_H

#include <yder.h>

/* level: "error" | "warning" | "info" | "debug". Returns LC_OK or LC_ERR_PARAM. */
int lc_log_init(const char *app, const char *level);
void lc_log_close(void);
/* 1 when a message at yder level lvl would be emitted. */
int lc_log_enabled(unsigned long lvl);

/* Thread-local request id (copied, truncated to 63 chars; NULL clears). */
void lc_log_set_rid(const char *rid);
const char *lc_log_rid(void); /* "-" when unset */

void lc_log_msg(unsigned long lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LC_LOG(lvl, ...) do { if (lc_log_enabled(lvl)) lc_log_msg((lvl), __VA_ARGS__); } while (0)
#define lc_log_error(...) LC_LOG(Y_LOG_LEVEL_ERROR, __VA_ARGS__)
#define lc_log_warn(...)  LC_LOG(Y_LOG_LEVEL_WARNING, __VA_ARGS__)
#define lc_log_info(...)  LC_LOG(Y_LOG_LEVEL_INFO, __VA_ARGS__)
#define lc_log_debug(...) LC_LOG(Y_LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
