-- The hash of the block a final transfer was recorded in (from its receipt).
-- A reorg or a node that re-mines reverted transactions can move a transfer
-- to another block while the master's nonce never falls behind: chain-svc
-- compares the recorded hashes of recent blocks with the chain's and
-- re-confirms the transfers of a block that changed. NULL for rows recorded
-- before this column existed (never re-checked).
ALTER TABLE transfers ADD COLUMN block_hash text
  CHECK (block_hash IS NULL OR block_hash ~ '^0x[0-9a-f]{64}$');
CREATE INDEX transfers_block_idx ON transfers (from_address, block_number)
  WHERE block_hash IS NOT NULL;
