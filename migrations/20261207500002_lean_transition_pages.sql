-- Fewer pages per transition (issue 19). Every step transition makes durable the pages it
-- changes; measured with `scripts/bench-wal-pages`, these three were a page each and serve no
-- query that needs them:
--
-- 1. `steps_status_by_id (run_id, id, status)`: kept the claim's dependency check off rows that
--    carried kilobytes of spec. Specs now live in `step_specs` (migration 20261207500001), so
--    the check reads the small row through the primary key, and a status change no longer
--    rewrites an entry in this index too.
DROP INDEX IF EXISTS steps_status_by_id;

-- 2. `AUTOINCREMENT` on `events.id`: every insert also rewrote `sqlite_sequence`. The store
--    writes every event with an explicit id (one more than the chain's tail) and events are
--    never deleted (the triggers below), so a plain INTEGER PRIMARY KEY keeps the same ids.
-- 3. `UNIQUE` on `events.hash`: its index took a random page per event (a hash is random), and
--    no query looks an event up by its hash; the chain itself makes a repeated hash detectable
--    (each hash covers the previous one and the event's id).
--
-- SQLite cannot drop either from a table in place, so the table is rebuilt with its rows as
-- they are (ids, hashes, signatures unchanged: verification gives the same answer), then its
-- index and append-only triggers are created again, word for word. A DROP TABLE fires no
-- triggers; the rebuild runs inside the migration's transaction, so it happens whole or not at
-- all.
CREATE TABLE events_rebuilt (
    id        INTEGER PRIMARY KEY,
    run_id    TEXT,
    step_id   TEXT,
    actor     TEXT NOT NULL,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    payload   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    sig       TEXT
);
INSERT INTO events_rebuilt (id, run_id, step_id, actor, at, kind, payload, prev_hash, hash, sig)
    SELECT id, run_id, step_id, actor, at, kind, payload, prev_hash, hash, sig FROM events
    ORDER BY id;
DROP TABLE events;
ALTER TABLE events_rebuilt RENAME TO events;
CREATE INDEX events_by_run ON events (run_id, id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
