//! A database written before issue 19's schema changes (the plan in the run's row, step specs in
//! the step rows, the audit table with `AUTOINCREMENT` and a unique hash, the `steps_status_by_id`
//! index) is brought up to date when it is opened: its run, plan, steps, their specs and its
//! signed chain come through unchanged, and the run goes on.

use lockstep::engine::machine::{RunEvent, StepStatus};
use lockstep::engine::store::{DriveLimits, NewRun};
use lockstep::engine::testkit::{approver, noop_plan, operator};
use lockstep::engine::Store;
use sqlx::{Connection, Row};

/// Puts the database back into the layout it had before migrations `20261207500001` to `…003`
/// (the statements of the original migrations), and forgets that those ran.
const BEFORE_ISSUE_19: &str = "
ALTER TABLE runs ADD COLUMN plan TEXT NOT NULL DEFAULT '';
UPDATE runs SET plan = (SELECT p.plan FROM run_plans p WHERE p.run_id = runs.id);
DROP TABLE run_plans;
ALTER TABLE steps ADD COLUMN spec TEXT NOT NULL DEFAULT '';
UPDATE steps SET spec = (SELECT x.spec FROM step_specs x WHERE x.run_id = steps.run_id AND x.id = steps.id);
DROP TABLE step_specs;
DROP INDEX step_deps_by_dependency;
CREATE INDEX steps_status_by_id ON steps (run_id, id, status);
CREATE TABLE events_before (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id    TEXT,
    step_id   TEXT,
    actor     TEXT NOT NULL,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    payload   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE,
    sig       TEXT
);
INSERT INTO events_before SELECT id, run_id, step_id, actor, at, kind, payload, prev_hash, hash, sig FROM events ORDER BY id;
DROP TABLE events;
ALTER TABLE events_before RENAME TO events;
CREATE INDEX events_by_run ON events (run_id, id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
DELETE FROM _sqlx_migrations WHERE version IN (20261207500001, 20261207500002, 20261207500003);
";

#[tokio::test]
async fn a_database_from_before_the_lean_schema_keeps_its_steps_and_signed_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lockstep.db");
    let store = Store::open(&path).await.unwrap();
    let new = NewRun {
        change_ticket: "CHG-19".into(),
        window_start: None,
        window_end: None,
        plan: noop_plan(6, true, &["dc1"]),
    };
    let run = store.create_run(new, &operator("olga"), 1).await.unwrap();
    let submit = RunEvent::Submit {
        actor: operator("olga"),
    };
    store.apply_run_event(&run.id, &submit, 2).await.unwrap();
    let go = RunEvent::ApproveStart {
        actor: approver("carl"),
        comment: "go".into(),
    };
    store.apply_run_event(&run.id, &go, 3).await.unwrap();
    store
        .claim(&run.id, DriveLimits::default(), 4)
        .await
        .unwrap();
    let steps = store.steps(&run.id).await.unwrap();
    let plan = store.plan(&run.id).await.unwrap();
    let record = store.run(&run.id).await.unwrap();
    let events = store.all_events().await.unwrap();
    drop(store);

    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(BEFORE_ISSUE_19)
        .execute(&mut conn)
        .await
        .unwrap();
    let old_layout: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info('steps') WHERE name = 'spec'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        old_layout, 1,
        "the database is in the old layout before it is opened"
    );
    conn.close().await.unwrap();

    let store = Store::open(&path).await.unwrap();
    assert_eq!(
        store.steps(&run.id).await.unwrap(),
        steps,
        "steps and specs unchanged"
    );
    assert_eq!(
        store.plan(&run.id).await.unwrap(),
        plan,
        "the plan unchanged"
    );
    assert_eq!(
        store.run(&run.id).await.unwrap(),
        record,
        "the run unchanged"
    );
    assert_eq!(
        store.all_events().await.unwrap(),
        events,
        "every event unchanged"
    );
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.events, events.len() as u64);
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let indexes: Vec<String> = sqlx::query("SELECT name FROM pragma_index_list('events')")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(indexes, ["events_by_run"], "no index on the hash");
    let spec_column: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info('steps') WHERE name = 'spec'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(spec_column, 0, "specs live in step_specs");
    conn.close().await.unwrap();

    // The run goes on: the first step finishes and the claim starts the next one.
    let done = lockstep::engine::machine::StepEvent::Finished {
        outcome: lockstep::engine::executor::Outcome::Succeeded {
            evidence: serde_json::Value::Null,
        },
    };
    store
        .apply_step_event(&run.id, "s0000", &done, 5)
        .await
        .unwrap();
    let (claimed, _) = store
        .claim(&run.id, DriveLimits::default(), 6)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].step.id, "s0001");
    assert_eq!(claimed[0].step.status, StepStatus::Dispatched);
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.events, events.len() as u64 + 3);
}
