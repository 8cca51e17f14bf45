-- 0001_init.sql - auth-svc schema: users and refresh token families.
-- Objects are unqualified: the migrator runs with search_path set to the
-- daemon's schema (auth in production, a throwaway schema in tests).

CREATE TABLE users (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  email         text        NOT NULL UNIQUE
                            CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
  password_hash text        NULL,            -- NULL for OAuth-only accounts
  role          text        NOT NULL DEFAULT 'user'
                            CHECK (role IN ('admin', 'user', 'service')),
  disabled      boolean     NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per issued refresh token; only the SHA-256 (hex) of the token is
-- stored. A family starts at login and ends absolutely at family_expires_at;
-- each use marks the row rotated and inserts a child (parent_id). Presenting
-- a rotated token revokes every row of the family (revoked_at). A later grace
-- window for concurrent refreshes uses rotated_at.
CREATE TABLE refresh_tokens (
  id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  family_id         uuid        NOT NULL,
  user_id           uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_hash        text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
  parent_id         uuid        NULL REFERENCES refresh_tokens (id) ON DELETE CASCADE,
  issued_at         timestamptz NOT NULL DEFAULT now(),
  family_expires_at timestamptz NOT NULL,
  rotated_at        timestamptz NULL,
  revoked_at        timestamptz NULL
);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_live_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_tokens_parent_idx ON refresh_tokens (parent_id);
