/* cfg.c - table-driven configuration from the environment.
 *
 * For each spec NAME the value comes from $NAME, or from the file named by
 * $NAME_FILE (at most 64 KiB, trailing CR/LF stripped); setting both is an
 * error. Defaults apply when neither is set. Values are validated against
 * the spec (type, range, length) and stored in a new lc_cfg. Loading is not
 * thread-safe (getenv); call it once in main(). Getters are thread-safe
 * (read-only). */
#include "lc/cfg.h"
#include "lc/log.h"
#include "lc/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#define CFG_FILE_MAX (64 * 1024)

typedef struct {
  const lc_cfg_spec *spec;
  char *str;     /* value text (NULL = unset) */
  int64_t ival;  /* INT value */
  int bval;      /* BOOL value */
} cfg_val;

struct lc_cfg {
  cfg_val *v;
  size_t n;
};

static int read_value_file(const char *var, const char *path, char **out, char *err) {
  FILE *f;
  char *buf;
  size_t len;
  *out = NULL;
  f = fopen(path, "rb");
  if (f == NULL)
    return lc_err_set(err, LC_ERR_PARAM, "%s_FILE: cannot open '%s': %s", var, path,
                      strerror(errno));
  buf = lc_xmalloc(CFG_FILE_MAX + 2);
  len = fread(buf, 1, CFG_FILE_MAX + 1, f);
  if (ferror(f)) {
    fclose(f);
    free(buf);
    return lc_err_set(err, LC_ERR_PARAM, "%s_FILE: cannot read '%s'", var, path);
  }
  fclose(f);
  if (len > CFG_FILE_MAX) {
    free(buf);
    return lc_err_set(err, LC_ERR_PARAM, "%s_FILE: '%s' is larger than %d bytes", var, path,
                      CFG_FILE_MAX);
  }
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
  buf[len] = '\0';
  if (memchr(buf, '\0', len) != NULL) {
    free(buf);
    return lc_err_set(err, LC_ERR_PARAM, "%s_FILE: '%s' contains a NUL byte", var, path);
  }
  *out = buf;
  return LC_OK;
}

static int parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"};
  static const char *const no[] = {"0", "false", "no", "off"};
  size_t i;
  for (i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = 1;
      return LC_OK;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = 0;
      return LC_OK;
    }
  }
  return LC_ERR_PARAM;
}

/* Fetches the raw text for one spec into *out (new, or NULL when unset). */
static int fetch_raw(const lc_cfg_spec *s, char **out, char *err) {
  char fname[256];
  const char *env, *fenv;
  *out = NULL;
  if (snprintf(fname, sizeof fname, "%s_FILE", s->name) >= (int)sizeof fname)
    return lc_err_set(err, LC_ERR_PARAM, "%s: variable name too long", s->name);
  env = getenv(s->name);
  fenv = getenv(fname);
  if (env != NULL && fenv != NULL)
    return lc_err_set(err, LC_ERR_PARAM, "%s: both %s and %s are set", s->name, s->name, fname);
  if (fenv != NULL) return read_value_file(s->name, fenv, out, err);
  if (env != NULL) {
    *out = lc_xstrdup(env);
    return LC_OK;
  }
  if (s->def != NULL) *out = lc_xstrdup(s->def);
  return LC_OK;
}

static int validate(cfg_val *v, char *err) {
  const lc_cfg_spec *s = v->spec;
  size_t len;
  int64_t iv;
  int rc;
  if (v->str == NULL) {
    if (s->required) return lc_err_set(err, LC_ERR_PARAM, "%s: required but not set", s->name);
    return LC_OK;
  }
  switch (s->type) {
  case LC_CFG_INT:
    rc = lc_parse_i64(v->str, INT64_MIN, INT64_MAX, &iv);
    if (rc != LC_OK)
      return lc_err_set(err, LC_ERR_PARAM, "%s: '%.64s' is not an integer", s->name, v->str);
    if (iv < s->min)
      return lc_err_set(err, LC_ERR_PARAM, "%s: %" PRId64 " is below the minimum %" PRId64,
                        s->name, iv, s->min);
    if (iv > s->max)
      return lc_err_set(err, LC_ERR_PARAM, "%s: %" PRId64 " is above the maximum %" PRId64,
                        s->name, iv, s->max);
    v->ival = iv;
    return LC_OK;
  case LC_CFG_BOOL:
    if (parse_bool(v->str, &v->bval) != LC_OK)
      return lc_err_set(err, LC_ERR_PARAM, "%s: '%.64s' is not a boolean", s->name, v->str);
    return LC_OK;
  case LC_CFG_STR:
  case LC_CFG_SECRET:
    len = strlen(v->str);
    if ((int64_t)len < s->min)
      return lc_err_set(err, LC_ERR_PARAM, "%s: length %zu is below the minimum %" PRId64,
                        s->name, len, s->min);
    if (s->max > 0 && (int64_t)len > s->max)
      return lc_err_set(err, LC_ERR_PARAM, "%s: length %zu is above the maximum %" PRId64,
                        s->name, len, s->max);
    return LC_OK;
  default:
    return lc_err_set(err, LC_ERR_PARAM, "%s: unknown type", s->name);
  }
}

int lc_cfg_load(const lc_cfg_spec *specs, size_t n, lc_cfg **out, char err[LC_ERR_LEN]) {
  lc_cfg *c;
  size_t i;
  int rc = LC_OK;
  if (out == NULL) return lc_err_set(err, LC_ERR_PARAM, "lc_cfg_load: out is NULL");
  *out = NULL;
  if (specs == NULL && n > 0) return lc_err_set(err, LC_ERR_PARAM, "lc_cfg_load: no specs");
  c = lc_xcalloc(1, sizeof *c);
  c->v = lc_xcalloc(n ? n : 1, sizeof *c->v);
  c->n = n;
  for (i = 0; i < n; i++) {
    c->v[i].spec = &specs[i];
    rc = fetch_raw(&specs[i], &c->v[i].str, err);
    if (rc != LC_OK) goto out;
    rc = validate(&c->v[i], err);
    if (rc != LC_OK) goto out;
  }
out:
  if (rc != LC_OK) {
    lc_cfg_free(c);
    return rc;
  }
  *out = c;
  return LC_OK;
}

void lc_cfg_free(lc_cfg *cfg) {
  size_t i;
  if (cfg == NULL) return;
  for (i = 0; i < cfg->n; i++) {
    if (cfg->v[i].str != NULL) {
      sodium_memzero(cfg->v[i].str, strlen(cfg->v[i].str));
      free(cfg->v[i].str);
    }
  }
  free(cfg->v);
  free(cfg);
}

static const cfg_val *find(const lc_cfg *cfg, const char *name, lc_cfg_type want) {
  size_t i;
  if (cfg == NULL || name == NULL) {
    fprintf(stderr, "lc_cfg: lookup of '%s' in a NULL config\n", name ? name : "(null)");
    abort();
  }
  for (i = 0; i < cfg->n; i++) {
    const lc_cfg_spec *s = cfg->v[i].spec;
    if (strcmp(s->name, name) != 0) continue;
    if ((int)want >= 0 && want != LC_CFG_STR && s->type != want) {
      fprintf(stderr, "lc_cfg: '%s' read with the wrong type\n", name);
      abort();
    }
    return &cfg->v[i];
  }
  fprintf(stderr, "lc_cfg: '%s' is not in the config table\n", name);
  abort();
}

/* Works for every type (returns the value text; unset optional -> NULL). */
const char *lc_cfg_str(const lc_cfg *cfg, const char *name) {
  return find(cfg, name, LC_CFG_STR)->str;
}

int64_t lc_cfg_int(const lc_cfg *cfg, const char *name) {
  return find(cfg, name, LC_CFG_INT)->ival;
}

int lc_cfg_bool(const lc_cfg *cfg, const char *name) {
  return find(cfg, name, LC_CFG_BOOL)->bval;
}

static const char *display(const cfg_val *v) {
  if (v->str == NULL) return "(unset)";
  if (v->spec->type == LC_CFG_SECRET) return "********";
  return v->str;
}

void lc_cfg_display(const lc_cfg *cfg, const char *name, char *out, size_t outsz) {
  const cfg_val *v = find(cfg, name, (lc_cfg_type)-1);
  if (out != NULL && outsz > 0) (void)lc_strlcpy(out, display(v), outsz);
}

void lc_cfg_dump(const lc_cfg *cfg) {
  size_t i;
  if (cfg == NULL) return;
  for (i = 0; i < cfg->n; i++)
    lc_log_info("config %s=%.200s", cfg->v[i].spec->name, display(&cfg->v[i]));
}
