-- credit-svc payments (helper PAY): provider checkout sessions / orders and
-- the provider events applied to them. docs/payments.md explains the flow.
--
-- Exactly-once crediting rests on unique inserts inside the one transaction
-- that also writes the ledger entry (credit_ledger_grant):
--   * payment_events (provider, event_id) PRIMARY KEY: an event id is applied
--     at most once; a concurrent duplicate blocks on the uncommitted key and
--     then finds it (ON CONFLICT DO NOTHING);
--   * payment_sessions row lock + status 'paid' and the ledger's unique
--     (kind, ref_id) with ref_id = '<provider>:<session id>': a session (or
--     Razorpay order) credits at most once, whatever its event ids.
-- Rows are only inserted or moved open -> paid; nothing is deleted.

CREATE TABLE payment_sessions (
  provider        text NOT NULL CHECK (provider IN ('stripe', 'razorpay')),
  id              text NOT NULL CHECK (length(id) BETWEEN 1 AND 255),  -- cs_... / order_...
  user_id         uuid NOT NULL,
  pack            text NOT NULL CHECK (length(pack) BETWEEN 1 AND 16),
  credits         bigint NOT NULL CHECK (credits > 0),
  amount          bigint NOT NULL CHECK (amount > 0),                  -- minor units
  currency        text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
  status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid')),
  checkout_url    text CHECK (checkout_url IS NULL OR length(checkout_url) <= 2048),
  client_key      text CHECK (client_key IS NULL OR length(client_key) BETWEEN 1 AND 255),
  request_id      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  paid_at         timestamptz,
  paid_event_id   text,
  paid_ref        text,                                                -- e.g. Razorpay pay_...
  ledger_entry_id uuid,
  PRIMARY KEY (provider, id),
  -- The caller's Idempotency-Key on checkout: one session per (user, provider, key).
  CONSTRAINT payment_sessions_client_key UNIQUE (user_id, provider, client_key),
  CONSTRAINT payment_sessions_paid_shape CHECK (
    (status = 'paid') = (paid_event_id IS NOT NULL AND ledger_entry_id IS NOT NULL
                         AND paid_at IS NOT NULL))
);
CREATE UNIQUE INDEX payment_sessions_one_entry ON payment_sessions (ledger_entry_id)
  WHERE ledger_entry_id IS NOT NULL;
CREATE INDEX payment_sessions_user ON payment_sessions (user_id, created_at DESC);

CREATE TABLE payment_events (
  provider    text NOT NULL CHECK (provider IN ('stripe', 'razorpay')),
  event_id    text NOT NULL CHECK (length(event_id) BETWEEN 1 AND 255),
  event_type  text NOT NULL CHECK (length(event_type) BETWEEN 1 AND 100),
  session_id  text NOT NULL,
  outcome     text NOT NULL CHECK (outcome IN ('processing', 'credited', 'duplicate_session',
                                               'amount_mismatch')),
  request_id  text,
  received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (provider, event_id)
);
CREATE INDEX payment_events_session ON payment_events (provider, session_id);
