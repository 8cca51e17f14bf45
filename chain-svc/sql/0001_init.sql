-- chain-svc schema: custodial wallet indexes (no keys), the master wallet's
-- nonce allocator, and one row per credit debit with its signed transaction.
-- Tables are unqualified: the connection's search_path selects the schema
-- ("chain" for the daemon, a private schema for tests).

CREATE SEQUENCE wallet_idx_seq AS bigint START WITH 1 MINVALUE 1 MAXVALUE 2147483647;

CREATE TABLE wallets (
  user_id    uuid PRIMARY KEY,
  idx        integer NOT NULL UNIQUE CHECK (idx >= 1),
  address    text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per sending address; next_nonce is the next nonce to sign with.
-- Initialised from eth_getTransactionCount(address, 'pending') on first use.
CREATE TABLE nonces (
  address    text PRIMARY KEY,
  next_nonce bigint NOT NULL CHECK (next_nonce >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE transfers (
  debit_id        uuid PRIMARY KEY,
  user_id         uuid NOT NULL,
  request_id      text NOT NULL DEFAULT '',
  from_address    text NOT NULL,
  to_address      text NOT NULL,
  cost            bigint NOT NULL CHECK (cost > 0),
  amount          numeric(78,0) NOT NULL CHECK (amount > 0),
  nonce           bigint NOT NULL CHECK (nonce >= 0),
  raw_tx          text NOT NULL,
  tx_hash         text NOT NULL UNIQUE,
  status          text NOT NULL CHECK (status IN ('signed', 'submitted', 'confirmed', 'failed')),
  block_number    bigint,
  reported_status text,
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  created_at      timestamptz NOT NULL DEFAULT now(),
  submitted_at    timestamptz,
  confirmed_at    timestamptz,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (from_address, nonce)
);

CREATE INDEX transfers_open_idx ON transfers (status, nonce)
  WHERE status IN ('signed', 'submitted');
CREATE INDEX transfers_unreported_idx ON transfers (updated_at)
  WHERE reported_status IS DISTINCT FROM status;
