-- Site facts: the latest facts each agent reported about its server (GET /v1/facts), as JSON
-- (lockstep_protocol::SiteFacts), with when the orchestrator received them (unix seconds).
-- One row per server; the previous facts are replaced (history lives in the run evidence and the
-- audit events that act on facts). Preflight trusts facts younger than the configured staleness.
CREATE TABLE agent_facts (
    server      TEXT    PRIMARY KEY REFERENCES agents (server) ON DELETE CASCADE,
    -- Unix seconds (orchestrator clock) when these facts arrived.
    received_at INTEGER NOT NULL,
    -- Unix seconds (agent clock) when the agent read them.
    collected_at INTEGER NOT NULL,
    facts_json  TEXT    NOT NULL CHECK (json_valid(facts_json))
);
