-- Notification delivery attempts: one row per try, so the run page can show what was sent where
-- and whether it arrived. `target` is the receiver's scheme and host only (Teams and Slack URLs
-- carry their secret in the path).
CREATE TABLE notification_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL,
    run_id TEXT,
    step_id TEXT,
    audit_event_id INTEGER NOT NULL,
    notification TEXT NOT NULL,
    target TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'failed', 'gave_up')),
    http_status INTEGER,
    error TEXT
);
CREATE INDEX notification_attempts_by_run ON notification_attempts (run_id, id);
