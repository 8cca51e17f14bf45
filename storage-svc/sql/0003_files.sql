-- storage-svc migration 0003: uploaded files, idempotency claims for uploads,
-- report object format.
-- Objects live in S3 under object_key = files/<user_id>/<file uuid>, a key the
-- server generates; the client's file name is only sanitised metadata (name).
-- A row is visible to its owner only once the reservation was committed
-- (debit_id set), like storage.reports.

CREATE TABLE IF NOT EXISTS storage.files (
  id              uuid        PRIMARY KEY,
  user_id         uuid        NOT NULL,
  name            text        NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 255),
  content_type    text        NOT NULL,
  object_key      text        NOT NULL UNIQUE,
  size_bytes      bigint      NOT NULL CHECK (size_bytes >= 0),
  sha256          text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  created_at      timestamptz NOT NULL DEFAULT now(),
  reservation_id  text        NOT NULL,
  debit_id        text
);

CREATE INDEX IF NOT EXISTS files_user_created_idx
  ON storage.files (user_id, created_at DESC, id DESC);

-- Idempotency claims now serve uploads too: file_id is set once the upload
-- was committed (report_id stays NULL for them).
ALTER TABLE storage.idempotency_keys ADD COLUMN IF NOT EXISTS file_id uuid;
