-- debit.sql - pgbench script: exactly the SQL credit-svc runs for one paid
-- action without idempotency key (GET /v1/service/metadata/{id}, cost 3):
-- credit_ledger.c reserve_unit (transaction 1, account exists, asynchronous
-- commit) then commit_unit (transaction 2, synchronous), statement for
-- statement, same parameters' types. Run by
-- tests/perf/bench.sh (pgbench -M prepared: credit-svc prepares these
-- statements, lc_db_exec_prepared) against a scratch schema migrated with
-- credit-svc/sql/*.sql (search_path set by the connection's PGOPTIONS).
-- (RES_COLS timestamps via perf_ts(): pgbench would read ":MI" as a variable.)
-- Variables: :nusers (accounts seeded as perf_uuid(1..nusers)).
\set u random(1, :nusers)
\set cost 3
BEGIN;
-- the atomic guard
-- (and SET LOCAL synchronous_commit = off: the reserve commits without waiting
-- for its WAL flush; the commit below is synchronous and flushes both)
UPDATE accounts SET reserved = reserved + :cost, updated_at = now() WHERE user_id = perf_uuid(:u) AND balance - reserved >= :cost RETURNING balance, set_config('synchronous_commit', 'off', true) AS sc \gset res_
INSERT INTO reservations (id, user_id, action, cost, status, idempotency_key, request_id, expires_at) VALUES (gen_random_uuid(), perf_uuid(:u), 'service.metadata', :cost, 'reserved', NULL, 'perf-req', now() + make_interval(secs => 300)) RETURNING id::text AS rid, user_id::text, action, cost, status, perf_ts(expires_at) \gset
INSERT INTO ledger (user_id, delta, hold, kind, action, debit_id, request_id, balance_after, actor, reason, reservation_id, ref_id) VALUES (perf_uuid(:u), 0, :cost, 'reservation', 'service.metadata', NULL, 'perf-req', :res_balance, perf_uuid(:u)::text, 'reserve service.metadata', :rid::uuid, NULL) ON CONFLICT (kind, ref_id) WHERE ref_id IS NOT NULL DO NOTHING RETURNING id::text;
INSERT INTO audit (user_id, actor, action, cost, status, request_id, detail, event_id, ts) VALUES (perf_uuid(:u), perf_uuid(:u)::text, 'reservation', 0, 'reserved', 'perf-req', jsonb_build_object('action', 'service.metadata', 'amount', :cost::bigint, 'reservation_id', :rid::text), NULL, coalesce(NULL::timestamptz, clock_timestamp())) ON CONFLICT (event_id) DO NOTHING RETURNING id;
COMMIT;
BEGIN;
-- lock_reservation
SELECT user_id::text, action, cost, status, debit_id::text, expires_at <= now(), request_id FROM reservations WHERE id = :rid::uuid FOR UPDATE;
SELECT gen_random_uuid()::text AS did \gset
-- write_debit: account, ledger, reservation, audit, outbox in one statement
-- (credit-svc wakes its relay after the COMMIT in-process: no NOTIFY)
WITH acc AS (UPDATE accounts SET balance = balance - :cost, reserved = reserved - :cost, updated_at = now() WHERE user_id = perf_uuid(:u) RETURNING balance), led AS (INSERT INTO ledger (user_id, delta, hold, kind, action, debit_id, request_id, balance_after, actor, reason, reservation_id, ref_id) SELECT perf_uuid(:u), -(:cost::bigint), -(:cost::bigint), 'debit', 'service.metadata', :did::uuid, 'perf-req', acc.balance, perf_uuid(:u)::text, 'service.metadata', :rid::uuid, NULL FROM acc RETURNING id, balance_after), res AS (UPDATE reservations SET status = 'committed', debit_id = :did::uuid, updated_at = now() WHERE id = :rid::uuid AND EXISTS (SELECT 1 FROM led)), aud AS (INSERT INTO audit (user_id, actor, action, cost, status, debit_id, request_id, chain_status, detail) SELECT perf_uuid(:u), perf_uuid(:u)::text, 'service.metadata', :cost, 'committed', :did::uuid, 'perf-req', 'pending', jsonb_build_object('reservation_id', :rid::text, 'entry_id', led.id::text) FROM led), ob AS (INSERT INTO outbox (id, routing_key, payload) SELECT gen_random_uuid(), 'credit.debit.committed', perf_payload(:did::text, perf_uuid(:u)::text) FROM led RETURNING id) SELECT led.balance_after, led.id::text, (SELECT count(*) FROM ob) FROM led;
COMMIT;
