//! The driver against a real SQLite file and the journaling executor: plans run to completion in
//! dependency order, each attempt runs once, host locks keep runs apart, failures retry only when
//! declared retryable, lost results become outcome unknown and wait for a person.

mod engine_common;

use engine_common::Harness;
use lockstep::engine::executor::Executor;
use lockstep::engine::journal::Behavior;
use lockstep::engine::machine::{RunStatus, StepEvent, StepStatus};
use lockstep::engine::testkit::{noop_plan, operator};

#[tokio::test]
async fn a_chained_plan_runs_to_completion_in_dependency_order_once_each() {
    let mut h = Harness::new().await;
    h.start();
    let run = h.started_run(noop_plan(12, true, &["dc1", "dc2"])).await;
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    h.stop().await;
    let started: Vec<String> = h
        .journal
        .phase("start")
        .into_iter()
        .map(|e| e.step_id)
        .collect();
    let expected: Vec<String> = (0..12).map(|i| format!("s{i:04}")).collect();
    assert_eq!(started, expected);
    assert!(
        h.store.host_locks().await.unwrap().is_empty(),
        "locks are released at the end"
    );
    assert_eq!(h.store.verify_audit().await.unwrap().problem, None);
}

#[tokio::test]
async fn a_failed_step_is_not_retried_unless_declared_retryable() {
    let mut h = Harness::new().await;
    h.journal
        .script("s0001", vec![Behavior::Fail("disk full".into())]);
    h.start();
    let run = h.started_run(noop_plan(3, true, &[])).await;
    let failed = h.run_reaches(&run.id, RunStatus::Failed).await;
    assert_eq!(failed.state.reason.as_deref(), Some("step s0001 failed"));
    assert_eq!(h.journal.executions("s0001"), 1);
    assert_eq!(
        h.journal.executions("s0002"),
        0,
        "nothing after the failed step ran"
    );
    // A person retries: the run goes on and the step runs again under a new attempt.
    h.engine
        .step_event(
            &run.id,
            "s0001",
            StepEvent::Retry {
                actor: operator("olga"),
            },
        )
        .await
        .unwrap();
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    h.stop().await;
    let attempts: Vec<u32> = h
        .journal
        .phase("start")
        .into_iter()
        .filter(|e| e.step_id == "s0001")
        .map(|e| e.attempt)
        .collect();
    assert_eq!(attempts, [1, 2]);
}

#[tokio::test]
async fn a_lost_result_becomes_outcome_unknown_and_is_never_retried_automatically() {
    let mut h = Harness::new().await;
    h.journal.script(
        "s0000",
        vec![Behavior::LoseResult("connection reset".into())],
    );
    let mut plan = noop_plan(2, true, &[]);
    plan.steps[0].retry.max_attempts = 5; // retryable, and still not retried: the outcome is unknown
    h.start();
    let run = h.started_run(plan).await;
    h.step_reaches(&run.id, "s0000", StepStatus::OutcomeUnknown)
        .await;
    // The executor was asked by key; it could not tell either.
    let key = lockstep::engine::executor::IdempotencyKey {
        run_id: run.id.clone(),
        step_id: "s0000".into(),
        attempt: 1,
    };
    assert!(matches!(
        h.journal.status(&key, None).await,
        lockstep::engine::executor::ActionStatus::Unknown { .. }
    ));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(h.journal.executions("s0000"), 1);
    assert_eq!(
        h.store.step(&run.id, "s0000").await.unwrap().status,
        StepStatus::OutcomeUnknown
    );
    // A person other than the requester (issue 14: "it is done" is never the requester's own
    // call) looked at the host and marks it done with evidence; the run goes on.
    h.engine
        .step_event(
            &run.id,
            "s0000",
            StepEvent::MarkDone {
                actor: operator("dora"),
                evidence: "IIS reset seen in event log 12:03".into(),
            },
        )
        .await
        .unwrap();
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    h.stop().await;
    assert_eq!(h.journal.executions("s0000"), 1);
}

#[tokio::test]
async fn a_join_passes_once_everything_it_joins_is_done_and_runs_nothing() {
    use lockstep::engine::testkit::{agent_step, plan_of};
    use lockstep::knowledge::plan::StepKind;
    let mut h = Harness::new().await;
    h.start();
    let mut steps: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|id| agent_step(id, Some(&format!("h{id}"))))
        .collect();
    let mut join = agent_step("a.all", None);
    join.kind = StepKind::Barrier;
    join.operation = lockstep::knowledge::operation::Operation::None;
    join.depends_on = vec!["a".into(), "b".into(), "c".into()];
    let mut after = agent_step("after", Some("ha"));
    after.depends_on = vec!["a.all".into()];
    steps.push(join);
    steps.push(after);
    let run = h.started_run(plan_of(steps)).await;
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    h.stop().await;
    let started: Vec<String> = h
        .journal
        .phase("start")
        .into_iter()
        .map(|e| e.step_id)
        .collect();
    assert!(
        !started.contains(&"a.all".to_string()),
        "a join runs nothing"
    );
    assert_eq!(
        started.last().map(String::as_str),
        Some("after"),
        "{started:?}"
    );
    assert_eq!(started.len(), 4);
    let join = h
        .store
        .steps(&run.id)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id == "a.all")
        .unwrap();
    assert_eq!(join.status, StepStatus::Succeeded);
    assert_eq!(h.store.verify_audit().await.unwrap().problem, None);
}
