/* cfg.h - configuration from environment variables, one static table per daemon.
 *
 * Each daemon declares `static const lc_cfg_spec SPECS[] = {...}` and calls
 * lc_cfg_load() in main() before any socket opens. Values come from the
 * environment; for any variable NAME, NAME_FILE may instead name a file whose
 * content (trailing newline stripped) is the value (used for secrets).
 * Errors name the offending variable, e.g.
 *   "AUTH_DB_POOL_SIZE: 0 is below the minimum 1". */
#ifndef LC_CFG_H
#define LC_CFG_H

#include <stddef.h>
#include <stdint.h>
#include "lc/err.h"

typedef enum {
  LC_CFG_STR,    /* string; min/max bound its length */
  LC_CFG_INT,    /* 64-bit integer; min/max bound its value */
  LC_CFG_BOOL,   /* 0/1/true/false/yes/no/on/off */
  LC_CFG_SECRET, /* like STR but never printed (lc_cfg_dump masks it) */
} lc_cfg_type;

typedef struct {
  const char *name;  /* environment variable, e.g. "AUTH_PORT" */
  lc_cfg_type type;
  int64_t min, max;  /* value range (INT) or length range (STR/SECRET) */
  const char *def;   /* default as text; NULL = no default */
  int required;      /* 1 = must be set (or have a default) */
  const char *help;  /* one line for the docs / --help */
} lc_cfg_spec;

typedef struct lc_cfg lc_cfg;

/* Loads and validates every entry. On success *out is new (lc_cfg_free).
 * On failure returns LC_ERR_PARAM with err naming the variable. */
int lc_cfg_load(const lc_cfg_spec *specs, size_t n, lc_cfg **out, char err[LC_ERR_LEN]);
void lc_cfg_free(lc_cfg *cfg);

/* Getters; name must be in the table (abort otherwise: programming error).
 * Strings are borrowed from cfg; an unset optional string returns NULL. */
const char *lc_cfg_str(const lc_cfg *cfg, const char *name);
int64_t lc_cfg_int(const lc_cfg *cfg, const char *name);
int lc_cfg_bool(const lc_cfg *cfg, const char *name);

/* Display form of one setting as lc_cfg_dump prints it: "********" for a
 * set SECRET, "(unset)" when unset, else the value; copied (truncated)
 * into out. Aborts when name is not in the table. */
void lc_cfg_display(const lc_cfg *cfg, const char *name, char *out, size_t outsz);

/* Logs each setting at info level, secrets masked. */
void lc_cfg_dump(const lc_cfg *cfg);

#endif
