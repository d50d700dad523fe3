-- The agent registry (issue 4): where each inventory server's lockstep-agent listens and which
-- certificate it must present. The thumbprint is the agent's identity: the orchestrator accepts
-- no other certificate for that server. Health columns are the last heartbeat's result.
-- Times are Unix seconds (UTC).

CREATE TABLE agents (
    -- Inventory server name (as typed in the seed's dialogs, no domain).
    server        TEXT    PRIMARY KEY,
    -- https://host:port of the agent.
    url           TEXT    NOT NULL CHECK (url LIKE 'https://%'),
    -- SHA-256 of the agent's certificate, 64 upper-case hex digits.
    thumbprint    TEXT    NOT NULL CHECK (length(thumbprint) = 64),
    added_at      INTEGER NOT NULL,
    -- Last heartbeat: when, what it found, and the agent's own report.
    checked_at    INTEGER,
    status        TEXT    NOT NULL DEFAULT 'unknown' CHECK (status IN ('unknown', 'online', 'offline')),
    agent_version TEXT,
    backend       TEXT,
    -- Agent clock minus ours at the last heartbeat, in seconds.
    clock_skew    INTEGER,
    last_error    TEXT
);
