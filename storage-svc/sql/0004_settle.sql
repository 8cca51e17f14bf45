-- storage-svc migration 0004: exactly-once settlement of paid work.
-- status of a reports/files row:
--   pending   the request that wrote it is still running (commit not answered yet);
--   settling  the commit's outcome is unknown (credit-svc timed out / restarted):
--             the settler thread asks credit-svc again (docs/storage.md "Settlement");
--   committed debit_id is stored: the row is visible to its owner.
-- The settler picks rows with debit_id NULL whose settle_after has passed: a
-- settling row a few seconds after the failed commit, a pending row only
-- after STORAGE_SETTLE_GRACE_S (its request crashed). Rows invisible before
-- this migration (debit_id NULL) are handed to the settler at once.
ALTER TABLE storage.reports ADD COLUMN IF NOT EXISTS status text;
UPDATE storage.reports SET status = CASE WHEN debit_id IS NOT NULL THEN 'committed'
                                         ELSE 'settling' END WHERE status IS NULL;
ALTER TABLE storage.reports ALTER COLUMN status SET DEFAULT 'pending';
ALTER TABLE storage.reports ALTER COLUMN status SET NOT NULL;
ALTER TABLE storage.reports ADD COLUMN IF NOT EXISTS settle_after timestamptz NOT NULL DEFAULT now();
ALTER TABLE storage.reports ADD COLUMN IF NOT EXISTS settle_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE storage.reports DROP CONSTRAINT IF EXISTS reports_status_check;
ALTER TABLE storage.reports ADD CONSTRAINT reports_status_check
  CHECK (status IN ('pending', 'settling', 'committed') AND
         (status = 'committed') = (debit_id IS NOT NULL));

ALTER TABLE storage.files ADD COLUMN IF NOT EXISTS status text;
UPDATE storage.files SET status = CASE WHEN debit_id IS NOT NULL THEN 'committed'
                                       ELSE 'settling' END WHERE status IS NULL;
ALTER TABLE storage.files ALTER COLUMN status SET DEFAULT 'pending';
ALTER TABLE storage.files ALTER COLUMN status SET NOT NULL;
ALTER TABLE storage.files ADD COLUMN IF NOT EXISTS settle_after timestamptz NOT NULL DEFAULT now();
ALTER TABLE storage.files ADD COLUMN IF NOT EXISTS settle_attempts integer NOT NULL DEFAULT 0;
-- the Idempotency-Key of the upload, so a claim is never taken over while its
-- upload is unsettled and a settled upload completes its claim
ALTER TABLE storage.files ADD COLUMN IF NOT EXISTS idempotency_key text;
ALTER TABLE storage.files DROP CONSTRAINT IF EXISTS files_status_check;
ALTER TABLE storage.files ADD CONSTRAINT files_status_check
  CHECK (status IN ('pending', 'settling', 'committed') AND
         (status = 'committed') = (debit_id IS NOT NULL));

CREATE INDEX IF NOT EXISTS reports_unsettled_idx ON storage.reports (settle_after)
  WHERE debit_id IS NULL;
CREATE INDEX IF NOT EXISTS files_unsettled_idx ON storage.files (settle_after)
  WHERE debit_id IS NULL;
CREATE INDEX IF NOT EXISTS files_user_idem_idx ON storage.files (user_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
