/* cursor.c - keyset pagination: cursors and the shared page query (cursor.h). */
#include "cursor.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idem.h"
#include "lc/util.h"

int storage_cursor_decode(const char *cursor, char us[24], char id[37])
{
  uint8_t *raw = NULL;
  size_t rawlen = 0, i;
  int64_t v;
  int rc = LC_ERR_PARAM;

  if (cursor == NULL || strlen(cursor) > 120 ||
      lc_b64url_decode(cursor, strlen(cursor), &raw, &rawlen) != LC_OK)
    return LC_ERR_PARAM;
  for (i = 0; i < rawlen && i < 23 && raw[i] != ':'; i++)
    us[i] = (char)raw[i];
  us[i] = '\0';
  if (i == rawlen || raw[i] != ':' || rawlen - i - 1 != 36)
    goto out;
  memcpy(id, raw + i + 1, 36);
  id[36] = '\0';
  if (!lc_uuid_valid(id) || lc_parse_i64(us, 0, INT64_MAX, &v) != LC_OK)
    goto out;
  rc = LC_OK;
out:
  free(raw);
  return rc;
}

void storage_cursor_encode(const char *us, const char *id, char out[128])
{
  char raw[80];
  char *enc;
  int n = snprintf(raw, sizeof(raw), "%s:%s", us, id);

  out[0] = '\0';
  if (n < 0 || (size_t)n >= sizeof(raw))
    return;
  enc = lc_b64url_encode((const uint8_t *)raw, (size_t)n);
  if (enc != NULL)
    lc_strlcpy(out, enc, 128);
  free(enc);
}

int storage_page_newest(lc_db_pool *pool, const char *cols, int ncols, const char *table,
                        const char *user_id, int limit, const char *cursor, PGresult **res,
                        char next_cursor[128], char err[LC_ERR_LEN])
{
  char us[24] = "", cid[37] = "", lim[16], sql[1024];
  const char *params[4];
  int rc, n;

  *res = NULL;
  /* decode first: cursor may alias next_cursor */
  if (cursor != NULL && cursor[0] != '\0' && storage_cursor_decode(cursor, us, cid) != LC_OK) {
    next_cursor[0] = '\0';
    return lc_err_set(err, LC_ERR_PARAM, "cursor is invalid");
  }
  next_cursor[0] = '\0';
  if (limit < 1 || limit > 100)
    return lc_err_set(err, LC_ERR_PARAM, "limit must be between 1 and 100");
  if (!lc_uuid_valid(user_id))
    return lc_err_set(err, LC_ERR_FORBIDDEN, "a user identity is required");
  n = snprintf(sql, sizeof(sql),
               "SELECT %s, (extract(epoch FROM created_at) * 1000000)::bigint::text "
               "FROM %s WHERE user_id = $1::uuid AND debit_id IS NOT NULL "
               "AND ($2::bigint IS NULL OR (created_at, id) < "
               "(timestamptz 'epoch' + $2::bigint * interval '1 microsecond', $3::uuid)) "
               "ORDER BY created_at DESC, id DESC LIMIT $4::int",
               cols, table);
  if (n < 0 || (size_t)n >= sizeof(sql))
    return lc_err_set(err, LC_ERR, "page query too long");
  snprintf(lim, sizeof(lim), "%d", limit + 1);
  params[0] = user_id;
  params[1] = us[0] != '\0' ? us : NULL;
  params[2] = cid[0] != '\0' ? cid : NULL;
  params[3] = lim;
  rc = storage_db_run(pool, sql, 4, params, res, err);
  if (rc != LC_OK)
    return rc;
  if (PQntuples(*res) > limit)
    storage_cursor_encode(PQgetvalue(*res, limit - 1, ncols), PQgetvalue(*res, limit - 1, 0),
                          next_cursor);
  return LC_OK;
}
