/* cursor.c - pagination cursors (cursor.h). */
#include "cursor.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
