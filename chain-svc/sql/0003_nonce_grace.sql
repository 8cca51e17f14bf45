-- When chain-svc first saw a transfer's nonce used on chain with none of its
-- own attempts mined. A re-nonce (foreign transaction took the nonce) only
-- happens after this condition has held for a grace period, never on one
-- observation (a node can count a nonce before it serves the receipt).
ALTER TABLE transfers ADD COLUMN nonce_used_seen_at timestamptz;
