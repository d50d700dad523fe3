-- Step specs out of the hot row (issue 19). A step's spec (the PlannedStep as expanded, about a
-- kilobyte of JSON, two with long instructions) never changes after the run is created, except
-- by an amendment; its status, attempt and state change with every transition. SQLite rewrites a
-- whole row on every UPDATE, so with the spec in `steps` each transition rewrote it too, and two
-- to four rows shared a leaf page instead of ten (more pages read by every claim and status
-- scan; a spec that spills onto overflow pages rewrote those as well). The spec now lives beside
-- the step, written once.
CREATE TABLE step_specs (
    run_id TEXT NOT NULL,
    id     TEXT NOT NULL,
    spec   TEXT NOT NULL,
    PRIMARY KEY (run_id, id),
    FOREIGN KEY (run_id, id) REFERENCES steps (run_id, id)
);
INSERT INTO step_specs (run_id, id, spec) SELECT run_id, id, spec FROM steps;
ALTER TABLE steps DROP COLUMN spec;

-- The claim asks which pending steps depend on the steps that just became done (issue 19: a
-- claim costs what changed, not the length of the plan; see `store/claim.rs`).
CREATE INDEX step_deps_by_dependency ON step_deps (run_id, depends_on, step_id);
