-- Dashboard accounts, sessions, API tokens and stored inventories (issue 6). Comments are audit
-- events (the engine's `Store::comment`).
-- The engine owns the run, step and event tables; nothing here is part of the audit chain.
-- Times are Unix seconds (UTC).

-- Local accounts. Roles are ordered viewer < operator < approver < admin; the order lives in code.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'approver', 'admin')),
    -- argon2id PHC string; never the password.
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL
);

-- Browser sessions. The cookie holds a random 256-bit id; only its SHA-256 is stored, so a copy
-- of the database does not let anyone log in.
CREATE TABLE sessions (
    id_hash      TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Sent back by htmx in a header (or by forms in a hidden field) on every state change.
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Bearer tokens for the JSON API, one or more per user; stored hashed like sessions.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label        TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked      INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);


-- Inventories uploaded through the dashboard; the latest version of a name is the current one.
CREATE TABLE data_centers (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    toml        TEXT    NOT NULL,
    uploaded_by TEXT    NOT NULL,
    uploaded_at INTEGER NOT NULL
);
CREATE INDEX data_centers_by_name ON data_centers (name, id);
