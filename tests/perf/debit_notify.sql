-- debit_notify.sql - reference: debit.sql as credit-svc ran it until
-- 2026-12-07 (third session): the same two transactions, but every statement
-- unprepared (bench.py runs this with -M extended) and a pg_notify of the
-- relay inside the commit transaction. PostgreSQL takes a database-wide
-- lock for a NOTIFYing commit (held until its WAL is flushed), so these
-- commits serialise. Kept to show what preparing + the in-process bell
-- bought. Variables: :nusers (accounts seeded as perf_uuid(1..nusers)).
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
-- write_debit: account, ledger, reservation, audit, outbox, notify in one statement
WITH acc AS (UPDATE accounts SET balance = balance - :cost, reserved = reserved - :cost, updated_at = now() WHERE user_id = perf_uuid(:u) RETURNING balance), led AS (INSERT INTO ledger (user_id, delta, hold, kind, action, debit_id, request_id, balance_after, actor, reason, reservation_id, ref_id) SELECT perf_uuid(:u), -(:cost::bigint), -(:cost::bigint), 'debit', 'service.metadata', :did::uuid, 'perf-req', acc.balance, perf_uuid(:u)::text, 'service.metadata', :rid::uuid, NULL FROM acc RETURNING id, balance_after), res AS (UPDATE reservations SET status = 'committed', debit_id = :did::uuid, updated_at = now() WHERE id = :rid::uuid AND EXISTS (SELECT 1 FROM led)), aud AS (INSERT INTO audit (user_id, actor, action, cost, status, debit_id, request_id, chain_status, detail) SELECT perf_uuid(:u), perf_uuid(:u)::text, 'service.metadata', :cost, 'committed', :did::uuid, 'perf-req', 'pending', jsonb_build_object('reservation_id', :rid::text, 'entry_id', led.id::text) FROM led), ob AS (INSERT INTO outbox (id, routing_key, payload) SELECT gen_random_uuid(), 'credit.debit.committed', perf_payload(:did::text, perf_uuid(:u)::text) FROM led RETURNING id) SELECT led.balance_after, led.id::text, (SELECT count(*) FROM ob), pg_notify('perf_outbox', '') FROM led;
COMMIT;
