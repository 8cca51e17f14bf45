-- balance.sql - pgbench script (reference row of tests/perf/bench.sh): the
-- one statement credit-svc runs for W1 (GET /v1/credits, account exists):
-- credit_ledger.c balance_read, a prepared autocommit SELECT (run with
-- pgbench -M prepared). Variables: :nusers (accounts perf_uuid(1..nusers)).
\set u random(1, :nusers)
SELECT balance, reserved FROM accounts WHERE user_id = perf_uuid(:u);
