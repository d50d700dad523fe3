//! The store end to end on a real SQLite file: runs are created, move through their states with
//! audit events, refuse what the machine refuses, and leave a chain that verifies.

use lockstep::engine::machine::{RunEvent, RunStatus, StepEvent, StepStatus};
use lockstep::engine::store::NewRun;
use lockstep::engine::testkit::{approver, noop_plan, operator};
use lockstep::engine::{EngineError, Refusal, Store};

async fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("lockstep.db"))
        .await
        .expect("open store");
    (dir, store)
}

fn new_run(n: usize) -> NewRun {
    NewRun {
        change_ticket: "CHG-1".into(),
        window_start: None,
        window_end: None,
        plan: noop_plan(n, true, &["dc1"]),
    }
}

#[tokio::test]
async fn a_run_is_created_submitted_and_approved_with_an_event_for_each_step() {
    let (_dir, store) = fresh().await;
    let mut live = store.subscribe();
    let run = store
        .create_run(new_run(3), &operator("olga"), 1_000)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Draft);
    assert_eq!(store.steps(&run.id).await.unwrap().len(), 3);
    store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit {
                actor: operator("olga"),
            },
            2_000,
        )
        .await
        .unwrap();
    store
        .apply_run_event(
            &run.id,
            &RunEvent::ApproveStart {
                actor: approver("carl"),
                comment: "window agreed".into(),
            },
            3_000,
        )
        .await
        .unwrap();
    assert_eq!(store.run(&run.id).await.unwrap().status, RunStatus::Running);
    let events = store.run_events(&run.id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["run.created", "run.submit", "run.approve_start"]);
    assert_eq!(live.recv().await.unwrap().id, events[0].id);
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.events, 3);
}

#[tokio::test]
async fn a_refused_transition_changes_nothing_and_writes_no_event() {
    let (_dir, store) = fresh().await;
    let run = store
        .create_run(new_run(1), &operator("olga"), 1_000)
        .await
        .unwrap();
    store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit {
                actor: operator("olga"),
            },
            2_000,
        )
        .await
        .unwrap();
    let olga_as_approver = lockstep::engine::Actor::new("olga", &["approver", "operator"]);
    let err = store
        .apply_run_event(
            &run.id,
            &RunEvent::ApproveStart {
                actor: olga_as_approver,
                comment: "mine".into(),
            },
            3_000,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Refused(Refusal::FourEyes { .. })),
        "{err}"
    );
    assert_eq!(
        store.run(&run.id).await.unwrap().status,
        RunStatus::AwaitingStartApproval
    );
    assert_eq!(store.run_events(&run.id).await.unwrap().len(), 2);
    let err = store
        .apply_step_event(&run.id, "s0000", &StepEvent::Start, 3_000)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Refused(Refusal::NotAllowed { .. })),
        "{err}"
    );
    assert_eq!(
        store.step(&run.id, "s0000").await.unwrap().status,
        StepStatus::Pending
    );
}

#[tokio::test]
async fn a_plan_whose_dependency_is_unknown_is_refused_naming_the_step() {
    let (_dir, store) = fresh().await;
    let mut new = new_run(2);
    new.plan.steps[1].depends_on = vec!["nope".into()];
    let err = store
        .create_run(new, &operator("olga"), 1)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("s0001") && err.to_string().contains("nope"),
        "{err}"
    );
    assert!(store.runs().await.unwrap().is_empty());
}
