/* failpoint.c - the test-build side of lc/failpoint.h. Compiles to an empty
 * translation unit unless LC_FAILPOINTS is defined (meson -Dfailpoints=true). */
#include "lc/failpoint.h"

#ifdef LC_FAILPOINTS
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lc/err.h"
#include "lc/util.h"

#define FP_MAX 16
#define FP_NAME_MAX 64

typedef enum { FP_KILL, FP_SLEEP } fp_action;

typedef struct {
  char name[FP_NAME_MAX];
  fp_action action;
  int64_t arg; /* kill: the hit that kills (1 = first); sleep: milliseconds */
  atomic_llong hits;
} fp_entry;

static fp_entry fp_table[FP_MAX];
static int fp_count;
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;

/* Parses one "name=kill[@N]" / "name=sleep:MS" entry into fp_table. */
static int fp_parse_one(const char *s, size_t len) {
  char buf[FP_NAME_MAX + 32];
  fp_entry *e;
  char *eq;

  if (len == 0 || len >= sizeof(buf) || fp_count >= FP_MAX)
    return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  eq = strchr(buf, '=');
  if (eq == NULL || eq == buf || (size_t)(eq - buf) >= FP_NAME_MAX)
    return -1;
  *eq = '\0';
  e = &fp_table[fp_count];
  if (strcmp(eq + 1, "kill") == 0) {
    e->action = FP_KILL;
    e->arg = 1;
  } else if (strncmp(eq + 1, "kill@", 5) == 0) {
    e->action = FP_KILL;
    if (lc_parse_i64(eq + 6, 1, 1000000, &e->arg) != LC_OK)
      return -1;
  } else if (strncmp(eq + 1, "sleep:", 6) == 0) {
    e->action = FP_SLEEP;
    if (lc_parse_i64(eq + 7, 0, 600000, &e->arg) != LC_OK)
      return -1;
  } else {
    return -1;
  }
  if (lc_strlcpy(e->name, buf, sizeof(e->name)) != LC_OK)
    return -1;
  atomic_init(&e->hits, 0);
  fp_count++;
  return 0;
}

static void fp_load(void) {
  const char *spec = getenv("LC_FAILPOINTS");
  const char *p = spec;

  if (spec == NULL)
    return;
  while (*p != '\0') {
    size_t len = strcspn(p, ",");
    if (len > 0 && fp_parse_one(p, len) != 0)
      fprintf(stderr, "failpoint - ignoring malformed LC_FAILPOINTS entry %.*s\n",
              (int)(len > 80 ? 80 : len), p);
    p += len;
    if (*p == ',')
      p++;
  }
  if (fp_count > 0)
    fprintf(stderr, "failpoint - %d failpoint(s) armed (test build)\n", fp_count);
}

void lc_failpoint_hit(const char *name) {
  pthread_once(&fp_once, fp_load);
  for (int i = 0; i < fp_count; i++) {
    fp_entry *e = &fp_table[i];
    long long n;
    if (strcmp(e->name, name) != 0)
      continue;
    n = atomic_fetch_add(&e->hits, 1) + 1;
    if (e->action == FP_SLEEP) {
      struct timespec ts = {(time_t)(e->arg / 1000), (long)(e->arg % 1000) * 1000000L};
      nanosleep(&ts, NULL);
    } else if (n == e->arg) {
      char line[FP_NAME_MAX + 48];
      int m = snprintf(line, sizeof(line), "failpoint %s hit %lld: SIGKILL\n", name, n);
      if (m > 0)
        (void)!write(STDERR_FILENO, line, (size_t)m < sizeof(line) ? (size_t)m : sizeof(line) - 1);
      raise(SIGKILL);
      _exit(137); /* not reached */
    }
  }
}
#else
/* ISO C forbids an empty translation unit. */
typedef int lc_failpoint_unused;
#endif
