-- Upgrade campaigns (issue 21): from the estate as it is to the estate wanted, as ordered stages,
-- each stage one runbook whose run is created (and re-planned against the estate as found) when
-- the operator asks for it. The engine refuses to start a stage's run until every earlier stage's
-- run has succeeded (`store/campaigns.rs`, checked inside the start approval's transaction).
CREATE TABLE campaigns (
    id          TEXT    PRIMARY KEY,
    -- The Data Center's name (`data_centers.name`; each upload of it is a version, the latest
    -- is the estate a stage is re-planned against).
    data_center TEXT    NOT NULL,
    -- The target as parsed: {"connected": "8.11", "windows": "2016", "sql_server": "2016"}, a
    -- part left out (null) is not changed.
    target      TEXT    NOT NULL CHECK (json_valid(target)),
    created_by  TEXT    NOT NULL,
    -- Milliseconds since the Unix epoch (the engine's clock).
    created_at  INTEGER NOT NULL,
    -- `open` until every stage's run has succeeded, then `done`.
    state       TEXT    NOT NULL CHECK (state IN ('open', 'done'))
);
CREATE INDEX campaigns_by_data_center ON campaigns (data_center, created_at);

CREATE TABLE campaign_stages (
    campaign_id   TEXT    NOT NULL REFERENCES campaigns (id),
    -- 1, 2, 3, …: the order the planner chose and the engine enforces.
    ordinal       INTEGER NOT NULL CHECK (ordinal >= 1),
    runbook       TEXT    NOT NULL,
    -- The runbook's parameters, {"target": "2016"}; replaced by the re-plan when the run is made.
    params        TEXT    NOT NULL CHECK (json_valid(params)),
    -- The servers the stage changes, ["DC1", "DC2"].
    servers       TEXT    NOT NULL CHECK (json_valid(servers)),
    -- Why the stage comes where it does, in plain words, and the guide's section that says so.
    reason        TEXT    NOT NULL,
    section       TEXT    NOT NULL,
    estimate_secs INTEGER NOT NULL CHECK (estimate_secs >= 0),
    -- The estate the planner projects after this stage: [{name, version, windows, sql_server}].
    estate_after  TEXT    NOT NULL CHECK (json_valid(estate_after)),
    -- The stage's run, once the operator created it; a run that failed, was aborted or undone
    -- may be replaced by a new one (the old run keeps its own record).
    run_id        TEXT    REFERENCES runs (id),
    -- The estate as found when the NEXT stage's run was created (what this stage left behind),
    -- the same shape as `estate_after`; null until then.
    actual_after  TEXT    CHECK (actual_after IS NULL OR json_valid(actual_after)),
    PRIMARY KEY (campaign_id, ordinal)
);
-- The start check looks a run's stage up by its run.
CREATE UNIQUE INDEX campaign_stages_by_run ON campaign_stages (run_id) WHERE run_id IS NOT NULL;
