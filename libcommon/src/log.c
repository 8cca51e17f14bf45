/* log.c - JSON-lines logging with a per-thread request id.
 *
 * Every line on stderr is one JSON object:
 *   {"ts":"2026-01-02T03:04:05.678Z","level":"info","app":"credit-svc",
 *    "rid":"<request id or ->","msg":"..."}
 * Messages of the libraries that log through yder (ulfius) are routed into
 * the same writer (yder callback mode). lc_log_init() must run once in
 * main() before threads log; before it (or after lc_log_close) warnings and
 * errors are still written, with app "lc". Messages are bounded
 * (LOG_MSG_MAX bytes, truncated with "..."); control characters, quotes and
 * backslashes are escaped, invalid UTF-8 bytes become U+FFFD, so every line
 * is valid JSON. A line is written with one fwrite under the stream lock:
 * lines of concurrent threads never interleave. */
#include "lc/log.h"
#include "lc/err.h"
#include "lc/util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOG_MSG_MAX 2048
#define LOG_LINE_MAX (LOG_MSG_MAX * 6 + 512)

static atomic_ulong g_level = Y_LOG_LEVEL_WARNING;
static atomic_int g_inited = 0;
static char g_app[64] = "lc";
static _Thread_local char t_rid[64];

static const char *level_name(unsigned long lvl) {
  switch (lvl) {
    case Y_LOG_LEVEL_ERROR: return "error";
    case Y_LOG_LEVEL_WARNING: return "warning";
    case Y_LOG_LEVEL_INFO: return "info";
    case Y_LOG_LEVEL_DEBUG: return "debug";
    default: return "info";
  }
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  size_t len, i;
  unsigned int cp;
  if (s[0] < 0x80) return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf) len = 2, cp = s[0] & 0x1f;
  else if (s[0] >= 0xe0 && s[0] <= 0xef) len = 3, cp = s[0] & 0x0f;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4) len = 4, cp = s[0] & 0x07;
  else return 0;
  if (len > n) return 0;
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return len;
}

size_t lc_log_json_escape(char *out, size_t cap, const char *s) {
  static const char hexd[] = "0123456789abcdef";
  size_t o = 0, n = s ? strlen(s) : 0, i = 0;
  if (cap == 0) return 0;
  while (i < n) {
    const unsigned char c = (unsigned char)s[i];
    char tmp[8];
    size_t tl = 0, adv = 1, ul;
    if (c == '"' || c == '\\') {
      tmp[0] = '\\', tmp[1] = (char)c, tl = 2;
    } else if (c == '\n') {
      tmp[0] = '\\', tmp[1] = 'n', tl = 2;
    } else if (c == '\r') {
      tmp[0] = '\\', tmp[1] = 'r', tl = 2;
    } else if (c == '\t') {
      tmp[0] = '\\', tmp[1] = 't', tl = 2;
    } else if (c < 0x20 || c == 0x7f) {
      memcpy(tmp, "\\u00", 4);
      tmp[4] = hexd[c >> 4], tmp[5] = hexd[c & 15], tl = 6;
    } else if (c < 0x80) {
      tmp[0] = (char)c, tl = 1;
    } else if ((ul = utf8_len((const unsigned char *)s + i, n - i)) > 0) {
      memcpy(tmp, s + i, ul);
      tl = ul, adv = ul;
    } else {
      memcpy(tmp, "\xef\xbf\xbd", 3), tl = 3; /* U+FFFD */
    }
    if (o + tl >= cap) break;
    memcpy(out + o, tmp, tl);
    o += tl;
    i += adv;
  }
  out[o] = '\0';
  return o;
}

/* Formats and writes one JSON line. */
static void emit(unsigned long lvl, const char *app, const char *msg) {
  static char esc_fail[] = "{\"msg\":\"log line too long\"}\n";
  char line[LOG_LINE_MAX], ts[40];
  struct timespec now;
  struct tm tm;
  size_t len = 0;
  int n;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  n = snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
               now.tv_nsec / 1000000L);
  if (n < 0) ts[0] = '\0';
  n = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"app\":\"", ts, level_name(lvl));
  if (n < 0 || (size_t)n >= sizeof line) return;
  len = (size_t)n;
  len += lc_log_json_escape(line + len, sizeof line - len, app);
  n = snprintf(line + len, sizeof line - len, "\",\"rid\":\"");
  if (n < 0 || (size_t)n >= sizeof line - len) return;
  len += (size_t)n;
  len += lc_log_json_escape(line + len, sizeof line - len, lc_log_rid());
  n = snprintf(line + len, sizeof line - len, "\",\"msg\":\"");
  if (n < 0 || (size_t)n >= sizeof line - len) return;
  len += (size_t)n;
  len += lc_log_json_escape(line + len, sizeof line - len - 4, msg);
  if (len + 4 > sizeof line) {
    fwrite(esc_fail, 1, sizeof esc_fail - 1, stderr);
    return;
  }
  memcpy(line + len, "\"}\n", 3);
  len += 3;
  flockfile(stderr);
  fwrite(line, 1, len, stderr);
  fflush(stderr);
  funlockfile(stderr);
}

/* yder callback: messages of ulfius and other yder users. */
static void yder_cb(void *cls, const char *app_name, const time_t date, const unsigned long level,
                    const char *message) {
  (void)cls;
  (void)date;
  if (!lc_log_enabled(level)) return;
  emit(level, app_name ? app_name : g_app, message ? message : "");
}

int lc_log_init(const char *app, const char *level) {
  unsigned long lvl;
  if (level == NULL || strcasecmp(level, "info") == 0)
    lvl = Y_LOG_LEVEL_INFO;
  else if (strcasecmp(level, "error") == 0)
    lvl = Y_LOG_LEVEL_ERROR;
  else if (strcasecmp(level, "warning") == 0 || strcasecmp(level, "warn") == 0)
    lvl = Y_LOG_LEVEL_WARNING;
  else if (strcasecmp(level, "debug") == 0)
    lvl = Y_LOG_LEVEL_DEBUG;
  else
    return LC_ERR_PARAM;
  if (atomic_load(&g_inited)) y_close_logs();
  (void)lc_strlcpy(g_app, app ? app : "lc", sizeof g_app);
  atomic_store(&g_level, lvl);
  if (!y_init_logs(g_app, Y_LOG_MODE_CALLBACK, lvl, NULL, NULL) ||
      !y_set_logs_callback(yder_cb, NULL, NULL))
    return LC_ERR;
  atomic_store(&g_inited, 1);
  lc_log_msg(Y_LOG_LEVEL_INFO, "logging started");
  return LC_OK;
}

void lc_log_close(void) {
  if (atomic_exchange(&g_inited, 0)) y_close_logs();
  atomic_store(&g_level, Y_LOG_LEVEL_WARNING);
}

int lc_log_enabled(unsigned long lvl) {
  return lvl != Y_LOG_LEVEL_NONE && lvl <= atomic_load(&g_level);
}

void lc_log_set_rid(const char *rid) {
  if (rid == NULL) {
    t_rid[0] = '\0';
    return;
  }
  (void)lc_strlcpy(t_rid, rid, sizeof t_rid);
}

const char *lc_log_rid(void) { return t_rid[0] ? t_rid : "-"; }

void lc_log_msg(unsigned long lvl, const char *fmt, ...) {
  char msg[LOG_MSG_MAX];
  va_list ap;
  int n;
  if (!lc_log_enabled(lvl) || fmt == NULL) return;
  va_start(ap, fmt);
  n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof msg) memcpy(msg + sizeof msg - 4, "...", 4);
  emit(lvl, atomic_load(&g_inited) ? g_app : "lc", msg);
}
