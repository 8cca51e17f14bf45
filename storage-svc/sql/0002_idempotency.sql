-- storage-svc migration 0002: Idempotency-Key claims for paid POSTs.
-- A request first claims (user_id, key); a concurrent request with the same
-- key then gets 409, a later one gets the stored result (or 422 when its
-- request differs). report_id is set once the report was committed. A claim
-- that never completed (crash) may be taken over after 10 minutes.
CREATE TABLE IF NOT EXISTS storage.idempotency_keys (
  user_id      uuid        NOT NULL,
  key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
  request_hash text        NOT NULL,
  report_id    uuid,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, key)
);
