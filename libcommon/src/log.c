/* log.c - yder console logging with a per-thread request id.
 *
 * lc_log_init() must run once in main() before threads log. Before it (or
 * after lc_log_close) warnings and errors go to stderr directly. Messages
 * are bounded (LOG_MSG_MAX bytes, truncated with "..."). */
#include "lc/log.h"
#include "lc/err.h"
#include "lc/util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define LOG_MSG_MAX 2048

static atomic_ulong g_level = Y_LOG_LEVEL_WARNING;
static atomic_int g_inited = 0;
static _Thread_local char t_rid[64];

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
  if (!y_init_logs(app ? app : "lc", Y_LOG_MODE_CONSOLE, lvl, NULL, "logging started")) return LC_ERR;
  atomic_store(&g_level, lvl);
  atomic_store(&g_inited, 1);
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
  if (atomic_load(&g_inited))
    y_log_message(lvl, "rid=%s %s", lc_log_rid(), msg);
  else
    fprintf(stderr, "rid=%s %s\n", lc_log_rid(), msg);
}
