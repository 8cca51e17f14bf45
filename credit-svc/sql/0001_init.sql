-- credit-svc schema: accounts, ledger, reservations, audit log, outbox.
-- Applied by lc_db_migrate into the daemon's own schema (search_path is set
-- to it), so no object name is schema-qualified here.
--
-- Invariants:
--   * balance is never stored as a default: an account row starts at 0 and
--     the opening transaction writes the +50 signup_bonus ledger entry and
--     adds it to the balance (balance = sum(ledger.delta) for the account).
--   * 0 <= reserved <= balance (CHECKs are the last safety net; the code
--     never relies on them to enforce the rule).

CREATE TABLE accounts (
  user_id    uuid PRIMARY KEY,
  balance    bigint NOT NULL,
  reserved   bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT accounts_balance_nonneg CHECK (balance >= 0),
  CONSTRAINT accounts_reserved_nonneg CHECK (reserved >= 0),
  CONSTRAINT accounts_reserved_le_balance CHECK (reserved <= balance)
);

CREATE TABLE ledger (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid NOT NULL REFERENCES accounts (user_id),
  ts            timestamptz NOT NULL DEFAULT clock_timestamp(),
  delta         bigint NOT NULL CHECK (delta <> 0),
  kind          text NOT NULL CHECK (kind IN ('signup_bonus', 'debit', 'credit', 'topup',
                                              'purchase', 'adjustment')),
  action        text,
  debit_id      uuid UNIQUE,
  request_id    text,
  balance_after bigint NOT NULL CHECK (balance_after >= 0),
  CONSTRAINT ledger_debit_shape CHECK (kind <> 'debit' OR (delta < 0 AND debit_id IS NOT NULL))
);
CREATE INDEX ledger_user_ts_id ON ledger (user_id, ts DESC, id DESC);
-- At most one signup bonus per account, whatever the code does.
CREATE UNIQUE INDEX ledger_one_signup_bonus ON ledger (user_id) WHERE kind = 'signup_bonus';

CREATE TABLE reservations (
  id              uuid PRIMARY KEY,
  user_id         uuid NOT NULL REFERENCES accounts (user_id),
  action          text NOT NULL,
  cost            bigint NOT NULL CHECK (cost > 0),
  status          text NOT NULL CHECK (status IN ('reserved', 'committed', 'released', 'expired')),
  idempotency_key text CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 200),
  request_id      text,
  debit_id        uuid UNIQUE,
  created_at      timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT reservations_idem UNIQUE (user_id, idempotency_key),
  CONSTRAINT reservations_debit_shape CHECK ((status = 'committed') = (debit_id IS NOT NULL))
);
CREATE INDEX reservations_open_expiry ON reservations (expires_at) WHERE status = 'reserved';

-- Audit log of credit actions. chain_status order: pending < submitted < failed < confirmed
-- (a later, lower status never overwrites a higher one).
CREATE TABLE audit (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  ts           timestamptz NOT NULL DEFAULT clock_timestamp(),
  user_id      uuid NOT NULL,
  actor        text NOT NULL,
  action       text NOT NULL,
  cost         bigint NOT NULL DEFAULT 0,
  status       text NOT NULL,
  debit_id     uuid UNIQUE,
  request_id   text,
  tx_hash      text,
  chain_status text CHECK (chain_status IN ('pending', 'submitted', 'confirmed', 'failed')),
  block_number bigint,
  to_address   text
);
CREATE INDEX audit_ts_id ON audit (ts DESC, id DESC);
CREATE INDEX audit_user_ts ON audit (user_id, ts DESC);

-- Transactional outbox: written in the commit transaction, published by the relay.
CREATE TABLE outbox (
  id          uuid PRIMARY KEY,            -- = envelope id = AMQP message_id
  routing_key text NOT NULL,
  payload     text NOT NULL,               -- full envelope JSON text
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  sent_at     timestamptz,
  attempts    integer NOT NULL DEFAULT 0
);
CREATE INDEX outbox_unsent ON outbox (created_at) WHERE sent_at IS NULL;
