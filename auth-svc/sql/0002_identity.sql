-- 0002_identity.sql - revocation, refresh grace window, API keys, outbox.

-- Every access token issued before not_before (iat < not_before, Unix
-- seconds) is dead: password change, admin revoke-tokens, role change,
-- disable. NULL = nothing revoked.
ALTER TABLE users ADD COLUMN not_before bigint NULL CHECK (not_before IS NULL OR not_before > 0);

-- Grace window for concurrent refreshes: when a token is rotated, its
-- successor's plaintext is kept encrypted (libsodium secretbox, key derived
-- from AUTH_TOKEN_ENC_KEY and the presented token itself, so the row alone
-- cannot be decrypted) for AUTH_REFRESH_GRACE_MS, then wiped.
ALTER TABLE refresh_tokens ADD COLUMN successor_enc bytea NULL;
CREATE INDEX refresh_tokens_successor_idx ON refresh_tokens (rotated_at)
  WHERE successor_enc IS NOT NULL;

-- Logged-out access tokens (by jti) until they expire anyway.
CREATE TABLE revoked_tokens (
  jti        uuid        PRIMARY KEY,
  user_id    uuid        NOT NULL,
  exp        bigint      NOT NULL,          -- Unix seconds (the JWT's exp)
  revoked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX revoked_tokens_exp_idx ON revoked_tokens (exp);

-- API keys: "sk_" + 8-char prefix + "_" + base64url(32 random bytes); only
-- the SHA-256 hex of the whole key is stored; lookup by prefix.
CREATE TABLE api_keys (
  id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id   uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  prefix     text        NOT NULL UNIQUE CHECK (prefix ~ '^[a-z0-9]{8}$'),
  key_hash   text        NOT NULL CHECK (key_hash ~ '^[0-9a-f]{64}$'),
  scope      text        NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
  name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  created_by uuid        NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz NULL
);
CREATE INDEX api_keys_owner_idx ON api_keys (owner_id);
CREATE INDEX api_keys_list_idx ON api_keys (created_at DESC, id DESC);

CREATE INDEX users_list_idx ON users (created_at DESC, id DESC);

-- Transactional outbox for auth.events (same shape as credit-svc's; relayed
-- by lc_outbox with publisher confirms).
CREATE TABLE outbox (
  id          uuid PRIMARY KEY,            -- = envelope id = AMQP message_id
  routing_key text NOT NULL,
  payload     text NOT NULL,               -- full envelope JSON text
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  sent_at     timestamptz,
  attempts    integer NOT NULL DEFAULT 0
);
CREATE INDEX outbox_unsent ON outbox (created_at) WHERE sent_at IS NULL;
