-- The plan out of the run's row (issue 19). `runs.plan` holds the whole expanded plan (1.7 MB of
-- JSON at 200 servers: four hundred overflow pages), and it sat before `state`, `created_at` and
-- `updated_at` in the row: reading a run's state walked the plan's whole overflow chain, and
-- reading a run is part of every claim, every transition and every pass of the driver. In WAL
-- mode each commit empties the other connections' page caches, so those pages were read from
-- the file again each time: a 200-server rehearsal spent a quarter of its samples in `pread`,
-- growing with plan size times steps. The plan is written once and read only when asked for.
CREATE TABLE run_plans (
    run_id TEXT PRIMARY KEY REFERENCES runs (id),
    plan   TEXT NOT NULL
);
INSERT INTO run_plans (run_id, plan) SELECT id, plan FROM runs;
ALTER TABLE runs DROP COLUMN plan;
