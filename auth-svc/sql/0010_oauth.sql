-- 0010_oauth.sql - OAuth login (Google OpenID Connect, GitHub OAuth 2).
--
-- oauth_states: one row per started login. The state value travels through
-- the provider in a URL, so only its SHA-256 (hex) is stored; binding_hash is
-- the SHA-256 of the random value of the browser's __Host-oauth cookie. The
-- PKCE code_verifier and the OIDC nonce are kept in clear for the token
-- exchange; rows live ~10 minutes and are single use (used_at set by the
-- consuming UPDATE). Provider access tokens are never stored.
CREATE TABLE oauth_states (
  state_hash    text        PRIMARY KEY CHECK (state_hash ~ '^[0-9a-f]{64}$'),
  binding_hash  text        NOT NULL CHECK (binding_hash ~ '^[0-9a-f]{64}$'),
  provider      text        NOT NULL CHECK (provider IN ('google', 'github')),
  code_verifier text        NOT NULL CHECK (length(code_verifier) BETWEEN 43 AND 128),
  nonce         text        NULL CHECK (nonce IS NULL OR length(nonce) BETWEEN 22 AND 128),
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz NULL
);

CREATE INDEX oauth_states_expires_idx ON oauth_states (expires_at);

-- One row per external account linked to a user: (provider, subject) is the
-- provider's stable id (OIDC sub, GitHub numeric user id).
CREATE TABLE oauth_identities (
  provider      text        NOT NULL CHECK (provider IN ('google', 'github')),
  subject       text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
  user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  email         text        NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_login_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, subject)
);

CREATE INDEX oauth_identities_user_idx ON oauth_identities (user_id);
