-- storage-svc schema, migration 0001: report metadata.
-- Applied by lc_db_migrate(pool, "storage", sql_dir) in its own transaction
-- (which creates the schema when missing; the daemon's role may not CREATE in the database).
-- Objects live in S3 under object_key; a row is visible to its owner only
-- once the reservation was committed (debit_id set).

CREATE TABLE IF NOT EXISTS storage.reports (
  id              uuid        PRIMARY KEY,
  user_id         uuid        NOT NULL,
  kind            text        NOT NULL CHECK (kind IN ('usage', 'files')),
  format          text        NOT NULL CHECK (format IN ('json', 'csv')),
  object_key      text        NOT NULL UNIQUE,
  size_bytes      bigint      NOT NULL CHECK (size_bytes >= 0),
  sha256          text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  from_ts         timestamptz,
  to_ts           timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  reservation_id  text        NOT NULL,
  debit_id        text,
  idempotency_key text,
  request_hash    text,
  CHECK (from_ts IS NULL OR to_ts IS NULL OR from_ts <= to_ts),
  UNIQUE (user_id, idempotency_key)
);

-- Listing: own reports newest first, keyset pagination on (created_at, id).
CREATE INDEX IF NOT EXISTS reports_user_created_idx
  ON storage.reports (user_id, created_at DESC, id DESC);
