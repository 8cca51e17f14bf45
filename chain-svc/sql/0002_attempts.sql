-- chain-svc schema v2: history of signed attempts per transfer (fee bumps,
-- re-nonced transfers), fees of the current attempt, delivery counters for
-- poison messages, and the token deployment made by `chain-svc deploy-token`.

-- Fees (wei) of the transfer's current attempt (raw_tx / tx_hash). NULL for
-- rows signed before this migration (the bump then starts from market fees).
ALTER TABLE transfers ADD COLUMN tip numeric(78,0);
ALTER TABLE transfers ADD COLUMN max_fee numeric(78,0);
-- Time of the last broadcast or replacement of the current attempt (the
-- stuck timer); submitted_at keeps the first broadcast.
ALTER TABLE transfers ADD COLUMN sent_at timestamptz;
ALTER TABLE transfers ADD COLUMN replacements integer NOT NULL DEFAULT 0;

-- Every transaction ever signed for a transfer, stored before it is
-- broadcast. outcome: signed (stored, maybe not broadcast yet), sent
-- (accepted by the node), rejected (refused, e.g. replacement underpriced),
-- mined (the one that made it on chain), superseded (never mined: another
-- attempt of the same transfer was).
CREATE TABLE transfer_attempts (
  id         bigserial PRIMARY KEY,
  debit_id   uuid NOT NULL REFERENCES transfers (debit_id),
  nonce      bigint NOT NULL CHECK (nonce >= 0),
  tx_hash    text NOT NULL UNIQUE,
  raw_tx     text NOT NULL,
  tip        numeric(78,0),
  max_fee    numeric(78,0),
  reason     text NOT NULL CHECK (reason IN ('initial', 'fee_bump', 'renonce')),
  outcome    text NOT NULL DEFAULT 'signed'
             CHECK (outcome IN ('signed', 'sent', 'rejected', 'mined', 'superseded')),
  error      text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transfer_attempts_debit_idx ON transfer_attempts (debit_id, id);

INSERT INTO transfer_attempts (debit_id, nonce, tx_hash, raw_tx, reason, outcome, created_at)
SELECT debit_id, nonce, tx_hash, raw_tx, 'initial',
       CASE WHEN status = 'signed' THEN 'signed' WHEN status = 'submitted' THEN 'sent'
            ELSE 'mined' END, created_at
FROM transfers;

-- Failed handling attempts per AMQP message id (non-transient failures only;
-- node or database outages never count). At CHAIN_MAX_DELIVERIES the message
-- is rejected to the dead-letter queue.
CREATE TABLE deliveries (
  msg_id     text PRIMARY KEY,
  failures   integer NOT NULL DEFAULT 0,
  last_error text,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The token contract deployed by chain-svc itself (one per chain id); the
-- creation transaction is stored before broadcast like a transfer.
CREATE TABLE token_deployments (
  chain_id    bigint PRIMARY KEY,
  address     text NOT NULL,
  deployer    text NOT NULL,
  nonce       bigint NOT NULL,
  tx_hash     text NOT NULL,
  raw_tx      text NOT NULL,
  status      text NOT NULL CHECK (status IN ('signed', 'deployed')),
  block_number bigint,
  created_at  timestamptz NOT NULL DEFAULT now(),
  deployed_at timestamptz
);
