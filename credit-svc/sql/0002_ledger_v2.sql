-- credit-svc schema v2: a complete append-only ledger (grants, purchases,
-- top-ups, reservation / commit / release markers), an append-only audit log
-- (auth events too), Stripe-style idempotency keys for admin credit
-- adjustments and the low-credit notification queue.
--
-- Ledger model (docs/credits.md):
--   every entry has two signed amounts:
--     delta  change of the committed balance      balance  = sum(delta)
--     hold   change of the reserved (held) amount reserved = sum(hold)
--   kind          delta        hold      meaning
--   signup_bonus  +50          0         account opened (a grant)
--   grant         +n           0         other grants (support, promotions)
--   purchase      +n           0         paid credit pack (payments_*)
--   topup         +n           0         admin top-up
--   reservation   0            +cost     credits held for a paid action
--   debit         -cost        -cost     commit: the held credits are spent
--   release       0            -cost     released (work failed) or expired
--   credit, adjustment: legacy kinds (delta <> 0, hold 0)
--   accounts.balance / accounts.reserved are caches of these two sums,
--   updated in the same transaction as the entry; CHECKs keep
--   0 <= reserved <= balance.
-- Ledger rows are never updated or deleted (trigger below). Audit rows are
-- never deleted; only the chain result columns may be set later.

-- ---------------------------------------------------------------- ledger
ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_kind_check;
ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_delta_check;
ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_debit_shape;

ALTER TABLE ledger
  ADD COLUMN hold           bigint NOT NULL DEFAULT 0,
  ADD COLUMN actor          text,
  ADD COLUMN reason         text,
  ADD COLUMN reservation_id uuid,
  ADD COLUMN ref_id         text;

-- Backfill rows written by schema v1 (before the append-only trigger exists).
UPDATE ledger SET actor = 'system' WHERE actor IS NULL;
UPDATE ledger SET reason = CASE kind WHEN 'signup_bonus' THEN 'signup bonus'
                                     WHEN 'debit' THEN coalesce(action, 'debit')
                                     ELSE kind END WHERE reason IS NULL;
UPDATE ledger SET request_id = 'migration-0002' WHERE request_id IS NULL;

ALTER TABLE ledger
  ALTER COLUMN actor SET NOT NULL,
  ALTER COLUMN reason SET NOT NULL,
  ALTER COLUMN request_id SET NOT NULL,
  ADD CONSTRAINT ledger_actor_len CHECK (length(actor) BETWEEN 1 AND 64),
  ADD CONSTRAINT ledger_reason_len CHECK (length(reason) BETWEEN 1 AND 400),
  ADD CONSTRAINT ledger_request_id_len CHECK (length(request_id) BETWEEN 1 AND 64),
  ADD CONSTRAINT ledger_ref_len CHECK (ref_id IS NULL OR length(ref_id) BETWEEN 1 AND 255),
  ADD CONSTRAINT ledger_kind_check CHECK (kind IN ('signup_bonus', 'grant', 'purchase', 'topup',
      'reservation', 'debit', 'release', 'credit', 'adjustment')),
  ADD CONSTRAINT ledger_shape CHECK (CASE kind
      WHEN 'reservation' THEN delta = 0 AND hold > 0 AND reservation_id IS NOT NULL
      WHEN 'release'     THEN delta = 0 AND hold < 0 AND reservation_id IS NOT NULL
      WHEN 'debit'       THEN delta < 0 AND debit_id IS NOT NULL
                              AND ((reservation_id IS NOT NULL AND hold = delta)
                                   OR (reservation_id IS NULL AND hold = 0))
      WHEN 'adjustment'  THEN delta <> 0 AND hold = 0
      ELSE delta > 0 AND hold = 0 END);

-- One reservation entry per reservation and one final entry (debit or
-- release) per reservation, whatever the code does.
CREATE UNIQUE INDEX ledger_one_reservation ON ledger (reservation_id) WHERE kind = 'reservation';
CREATE UNIQUE INDEX ledger_one_outcome ON ledger (reservation_id)
  WHERE kind IN ('debit', 'release');
-- A payment / top-up reference (provider event, checkout session, admin
-- request) credits at most once per kind.
CREATE UNIQUE INDEX ledger_one_ref ON ledger (kind, ref_id) WHERE ref_id IS NOT NULL;

-- Reservations open at migration time get their reservation entry so that
-- accounts.reserved = sum(hold) holds from here on.
INSERT INTO ledger (user_id, delta, hold, kind, action, request_id, balance_after, actor, reason,
                    reservation_id)
SELECT r.user_id, 0, r.cost, 'reservation', r.action, coalesce(r.request_id, 'migration-0002'),
       a.balance, 'system', 'reserve ' || r.action, r.id
  FROM reservations r JOIN accounts a ON a.user_id = r.user_id
 WHERE r.status = 'reserved';

CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ledger_no_update_delete BEFORE UPDATE OR DELETE ON ledger
  FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

-- ----------------------------------------------------------------- audit
ALTER TABLE audit
  ALTER COLUMN user_id DROP NOT NULL,            -- e.g. login_failed for an unknown email
  ADD COLUMN detail   jsonb NOT NULL DEFAULT '{}'::jsonb,
  ADD COLUMN event_id uuid UNIQUE;               -- auth.audit envelope body event_id
CREATE INDEX audit_action_ts ON audit (action, ts DESC);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF NEW.id IS NOT DISTINCT FROM OLD.id AND NEW.ts IS NOT DISTINCT FROM OLD.ts
       AND NEW.user_id IS NOT DISTINCT FROM OLD.user_id AND NEW.actor IS NOT DISTINCT FROM OLD.actor
       AND NEW.action IS NOT DISTINCT FROM OLD.action AND NEW.cost IS NOT DISTINCT FROM OLD.cost
       AND NEW.status IS NOT DISTINCT FROM OLD.status
       AND NEW.debit_id IS NOT DISTINCT FROM OLD.debit_id
       AND NEW.request_id IS NOT DISTINCT FROM OLD.request_id
       AND NEW.detail IS NOT DISTINCT FROM OLD.detail
       AND NEW.event_id IS NOT DISTINCT FROM OLD.event_id THEN
      RETURN NEW;  -- only tx_hash, chain_status, block_number, to_address changed
    END IF;
    RAISE EXCEPTION 'audit rows are immutable except for the chain result'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RAISE EXCEPTION 'audit log is append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_guard_update_delete BEFORE UPDATE OR DELETE ON audit
  FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
  FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- ---------------------------------------------------- idempotency keys
-- Stripe semantics for POST /v1/admin/users/{id}/credits: one row per
-- (caller, key). state in_flight while the first request runs; done with the
-- stored response afterwards. Kept >= 24 h (expires_at), then swept.
CREATE TABLE idempotency_keys (
  owner           text NOT NULL CHECK (length(owner) BETWEEN 1 AND 64),
  idem_key        text NOT NULL CHECK (length(idem_key) BETWEEN 1 AND 255),
  request_hash    text NOT NULL CHECK (length(request_hash) = 64),
  state           text NOT NULL CHECK (state IN ('in_flight', 'done')),
  response_status integer,
  response_body   text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  locked_at       timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  PRIMARY KEY (owner, idem_key),
  CONSTRAINT idem_done_shape CHECK (state <> 'done' OR
    (response_status IS NOT NULL AND response_body IS NOT NULL))
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- --------------------------------------------------- notifications
-- Low-credit emails: one row per crossing (the ledger entry whose commit
-- took the balance from >= threshold to < threshold).
CREATE TABLE notifications (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id         uuid NOT NULL REFERENCES accounts (user_id),
  kind            text NOT NULL CHECK (kind IN ('low_balance')),
  ledger_entry_id uuid NOT NULL REFERENCES ledger (id),
  balance         bigint NOT NULL,
  threshold       bigint NOT NULL,
  status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text,
  created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  sent_at         timestamptz,
  CONSTRAINT notifications_once_per_crossing UNIQUE (user_id, ledger_entry_id)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
