-- storage-svc migration 0005: instance heartbeats, owner of each claim.
-- Every storage-svc process upserts its row every STORAGE_HEARTBEAT_MS
-- (liveness.h). An Idempotency-Key claim records the process that made it;
-- a claim whose owner has not been seen for STORAGE_CLAIM_STALE_S may be taken
-- over (its request died with the process), still never while a report or
-- file row with the key exists. Claims without an owner (made before this
-- migration) keep the 10-minute rule.
CREATE TABLE IF NOT EXISTS storage.instances (
  id      text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
  seen_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE storage.idempotency_keys ADD COLUMN IF NOT EXISTS owner text;
