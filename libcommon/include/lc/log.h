/* log.h - JSON-lines logging (stderr) with a per-thread request id.
 *
 * Each line is one JSON object {"ts","level","app","rid","msg"}: ts is UTC
 * ISO 8601 with milliseconds, level is error|warning|info|debug, rid the
 * thread's request id ("-" when unset). Messages of ulfius (yder) land in
 * the same stream. Audit-relevant messages use the "Security - " /
 * "Event - " prefixes. Never pass secrets, tokens, keys, passwords or full
 * bodies. */
#ifndef LC_LOG_H
#define LC_LOG_H

#include <stddef.h>
#include <yder.h>

/* level: "error" | "warning" | "info" | "debug". Returns LC_OK or LC_ERR_PARAM. */
int lc_log_init(const char *app, const char *level);
void lc_log_close(void);
/* 1 when a message at yder level lvl would be emitted. */
int lc_log_enabled(unsigned long lvl);

/* Thread-local request id (copied, truncated to 63 chars; NULL clears). */
void lc_log_set_rid(const char *rid);
const char *lc_log_rid(void); /* "-" when unset */

/* JSON string escaping of s (quotes, backslashes, control characters as
 * \uXXXX, invalid UTF-8 as U+FFFD) into out (cap bytes, NUL-terminated,
 * truncated at a character boundary). Returns the length written. */
size_t lc_log_json_escape(char *out, size_t cap, const char *s);

void lc_log_msg(unsigned long lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LC_LOG(lvl, ...) do { if (lc_log_enabled(lvl)) lc_log_msg((lvl), __VA_ARGS__); } while (0)
#define lc_log_error(...) LC_LOG(Y_LOG_LEVEL_ERROR, __VA_ARGS__)
#define lc_log_warn(...)  LC_LOG(Y_LOG_LEVEL_WARNING, __VA_ARGS__)
#define lc_log_info(...)  LC_LOG(Y_LOG_LEVEL_INFO, __VA_ARGS__)
#define lc_log_debug(...) LC_LOG(Y_LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
