-- The workflow engine's tables: runs, their steps, the host locks that keep two runs off the same
-- server, and the append-only event log that is also the hash-chained audit trail.
-- Times are milliseconds since the Unix epoch. JSON columns hold the serde form of engine types.

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    status        TEXT NOT NULL CHECK (status IN ('draft', 'awaiting_start_approval', 'running',
                      'paused', 'succeeded', 'failed', 'aborted', 'undoing', 'undone')),
    -- Bumped by every transition: the compare-and-set guard for run state.
    version       INTEGER NOT NULL DEFAULT 0,
    requester     TEXT NOT NULL,
    change_ticket TEXT NOT NULL,
    window_start  INTEGER,
    window_end    INTEGER,
    runbook       TEXT NOT NULL,
    inventory     TEXT NOT NULL,
    params        TEXT NOT NULL,
    plan          TEXT NOT NULL,
    -- RunState (requester, approver, pause, reason); `status` above is authoritative.
    state         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE steps (
    run_id       TEXT NOT NULL REFERENCES runs (id),
    id           TEXT NOT NULL,
    -- Plan order; undo steps come after every plan step, in reverse order of what they undo.
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    host         TEXT,
    -- The PlannedStep as expanded (for an undo step: the undo operation in `operation`).
    spec         TEXT NOT NULL,
    -- For an undo step, the plan step whose change it reverses.
    undo_of      TEXT,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'awaiting_approval',
                     'awaiting_operator', 'dispatched', 'running', 'verifying', 'succeeded',
                     'failed', 'skipped', 'cancelled', 'outcome_unknown')),
    attempt      INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    -- StepState; `status` and `attempt` above are authoritative and form the CAS guard.
    state        TEXT NOT NULL,
    -- SHA-256 over the canonical JSON of the step's resolved inputs (content-bound approvals).
    content_hash TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (run_id, id)
);
CREATE INDEX steps_by_status ON steps (run_id, status);

CREATE TABLE step_deps (
    run_id     TEXT NOT NULL,
    step_id    TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id, depends_on),
    FOREIGN KEY (run_id, step_id) REFERENCES steps (run_id, id),
    FOREIGN KEY (run_id, depends_on) REFERENCES steps (run_id, id)
);

-- A server is held by at most one active run (released when the run finishes or is aborted).
CREATE TABLE host_locks (
    host   TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id)
);

-- The audit chain. Every transition appends one row in the same transaction as the state change;
-- `hash` is SHA-256 over the canonical encoding of the row including `prev_hash`.
-- No foreign keys: the record outlives whatever it describes.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id    TEXT,
    step_id   TEXT,
    actor     TEXT NOT NULL,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    payload   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
);
CREATE INDEX events_by_run ON events (run_id, id);

-- Append-only: the application never updates or deletes an event. (Someone with the file can
-- drop these triggers; the hash chain and the head file catch what they do next.)
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
