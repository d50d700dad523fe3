-- Output lines of steps while they run (issue 6): agent action progress, SQL Server INFO
-- messages, probe attempts and wait-step polls, shown live on the run page's step cards and kept
-- so a page load or a reconnect shows them. Not part of the audit chain: a step's result keeps its
-- evidence there; these lines are what an operator watches. Bounded by the writer
-- (`engine::steplog::LINES_PER_STEP` lines of at most `MAX_LINE_CHARS` characters per step, plus
-- one line saying that more was dropped).
-- `after_event` is the newest audit event id when the line was written: a watcher that reconnects
-- after event N gets the cards of steps with lines where after_event >= N.
-- Times are milliseconds since the Unix epoch (the engine's clock).
CREATE TABLE step_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT    NOT NULL,
    step_id     TEXT    NOT NULL,
    attempt     INTEGER NOT NULL CHECK (attempt >= 0),
    at          INTEGER NOT NULL,
    text        TEXT    NOT NULL,
    after_event INTEGER NOT NULL
);
CREATE INDEX step_log_by_step ON step_log (run_id, step_id, id);
CREATE INDEX step_log_by_event ON step_log (run_id, after_event);
