//! Operator controls and human work with the driver running: pause/resume, abort, undo, manual
//! tasks, host locks across runs, automatic retries, timeouts and wait steps. Each test fails if
//! the rule it names is removed.

mod engine_common;

use std::time::Duration;

use engine_common::Harness;
use lockstep::engine::journal::{Behavior, JournalExecutor};
use lockstep::engine::machine::{RunEvent, RunStatus, StepEvent, StepStatus};
use lockstep::engine::testkit::{agent_step, approver, noop_plan, operator, plan_of};
use lockstep::engine::{EngineConfig, EngineError, Refusal};
use lockstep::knowledge::operation::{Operation, ServiceSet, WaitCondition};
use lockstep::knowledge::plan::{GateSpec, PlannedStep, RetryPolicy, StepKind};
use lockstep::knowledge::role::Role;

fn manual(id: &str) -> PlannedStep {
    let mut s = agent_step(id, Some("dc1"));
    s.kind = StepKind::Manual;
    s.operation = Operation::Manual {
        instructions: "Run the Setup wizard".into(),
    };
    s
}

/// Gives the driver time to do something it must not do.
async fn settle_a_while() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn a_paused_run_dispatches_nothing_until_resumed() {
    let mut h = Harness::new().await;
    let mut plan = noop_plan(3, true, &["dc1"]);
    plan.steps[0] = manual("s0000");
    h.start();
    let run = h.started_run(plan).await;
    h.step_reaches(&run.id, "s0000", StepStatus::AwaitingOperator)
        .await;
    h.engine
        .run_event(
            &run.id,
            RunEvent::Pause {
                actor: operator("olga"),
                reason: "call from the DBA".into(),
            },
        )
        .await
        .unwrap();
    // The task is finished while paused; what depends on it must wait.
    h.engine
        .step_event(
            &run.id,
            "s0000",
            StepEvent::Claim {
                actor: operator("dora"),
            },
        )
        .await
        .unwrap();
    h.engine
        .step_event(
            &run.id,
            "s0000",
            StepEvent::Complete {
                actor: operator("dora"),
                note: "wizard done".into(),
            },
        )
        .await
        .unwrap();
    settle_a_while().await;
    assert_eq!(
        h.journal.executions("s0001"),
        0,
        "nothing is dispatched while paused"
    );
    assert_eq!(
        h.store.run(&run.id).await.unwrap().status,
        RunStatus::Paused
    );
    h.engine
        .run_event(
            &run.id,
            RunEvent::Resume {
                actor: operator("olga"),
            },
        )
        .await
        .unwrap();
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    h.stop().await;
    assert_eq!(h.journal.executions("s0001"), 1);
}

#[tokio::test]
async fn abort_cancels_waiting_steps_and_in_flight_actions_the_executor_can_cancel() {
    let journal = JournalExecutor::in_memory().with_cancellable(true);
    let mut h = Harness::with_journal(journal, EngineConfig::default()).await;
    h.journal.script("s0000", vec![Behavior::Hang]);
    let mut plan = noop_plan(3, false, &["dc1", "dc2", "dc3"]);
    plan.steps[1].gate = Some(GateSpec {
        role: Role::Approver,
        quorum: 1,
        expires_after_secs: None,
    });
    plan.steps[2].depends_on = vec!["s0000".into()];
    h.start();
    let run = h.started_run(plan).await;
    h.step_reaches(&run.id, "s0000", StepStatus::Dispatched)
        .await;
    h.step_reaches(&run.id, "s0001", StepStatus::AwaitingApproval)
        .await;
    let abort = RunEvent::Abort {
        actor: operator("olga"),
        reason: "window closed".into(),
    };
    h.engine.run_event(&run.id, abort).await.unwrap();
    h.step_reaches(&run.id, "s0000", StepStatus::Cancelled)
        .await;
    assert_eq!(
        h.store.step(&run.id, "s0001").await.unwrap().status,
        StepStatus::Cancelled
    );
    assert_eq!(
        h.store.step(&run.id, "s0002").await.unwrap().status,
        StepStatus::Cancelled
    );
    assert_eq!(
        h.store.run(&run.id).await.unwrap().status,
        RunStatus::Aborted
    );
    assert!(
        h.store.host_locks().await.unwrap().is_empty(),
        "an aborted run holds no host"
    );
    assert_eq!(h.journal.phase("cancel").len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn abort_marks_an_in_flight_action_the_executor_cannot_cancel_as_outcome_unknown() {
    let mut h = Harness::new().await;
    h.journal.script("s0000", vec![Behavior::Hang]);
    h.start();
    let run = h.started_run(noop_plan(1, false, &["dc1"])).await;
    h.step_reaches(&run.id, "s0000", StepStatus::Dispatched)
        .await;
    h.engine
        .run_event(
            &run.id,
            RunEvent::Abort {
                actor: operator("olga"),
                reason: "stop".into(),
            },
        )
        .await
        .unwrap();
    h.step_reaches(&run.id, "s0000", StepStatus::OutcomeUnknown)
        .await;
    h.stop().await;
}

fn reversible(id: &str) -> PlannedStep {
    let mut s = agent_step(id, Some("dc1"));
    s.operation = Operation::RegistrySet {
        key: "HKLM\\SOFTWARE\\Connected".into(),
        name: id.into(),
        value: "new".into(),
    };
    s.undo = Some(Operation::RegistrySet {
        key: "HKLM\\SOFTWARE\\Connected".into(),
        name: id.into(),
        value: "(captured)".into(),
    });
    s
}

#[tokio::test]
async fn undo_restores_what_reversible_steps_changed_in_reverse_order_with_their_captured_values() {
    let mut h = Harness::new().await;
    let mut plan = plan_of(vec![
        reversible("a"),
        agent_step("b", Some("dc1")),
        reversible("c"),
        agent_step("d", Some("dc1")),
    ]);
    for i in 1..4 {
        plan.steps[i].depends_on = vec![plan.steps[i - 1].id.clone()];
    }
    h.journal
        .script("d", vec![Behavior::Fail("service would not start".into())]);
    h.start();
    let run = h.started_run(plan).await;
    h.run_reaches(&run.id, RunStatus::Failed).await;
    let undo = RunEvent::Undo {
        actor: operator("olga"),
        reason: "back out the change".into(),
    };
    h.engine.run_event(&run.id, undo).await.unwrap();
    h.run_reaches(&run.id, RunStatus::Undone).await;
    h.stop().await;
    let undone: Vec<(String, serde_json::Value)> = h
        .journal
        .phase("start")
        .into_iter()
        .filter(|e| e.step_id.starts_with("undo:"))
        .map(|e| (e.step_id, e.before.unwrap_or_default()))
        .collect();
    let order: Vec<&str> = undone.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        order,
        ["undo:c", "undo:a"],
        "reverse order, reversible steps only"
    );
    let c_evidence = h
        .store
        .step(&run.id, "c")
        .await
        .unwrap()
        .state
        .evidence
        .unwrap();
    assert_eq!(
        undone[0].1, c_evidence,
        "the undo gets the values step c captured"
    );
    assert_eq!(undone[0].1["before"]["value"], "before:c");
}

#[tokio::test]
async fn a_manual_task_is_claimed_completed_with_a_note_and_then_verified() {
    let mut h = Harness::new().await;
    let mut task = manual("setup");
    task.postcondition = Some(Operation::ServicesRunning {
        services: ServiceSet::Connected,
    });
    h.start();
    let run = h.started_run(plan_of(vec![task])).await;
    h.step_reaches(&run.id, "setup", StepStatus::AwaitingOperator)
        .await;
    let complete = |who: &str, note: &str| StepEvent::Complete {
        actor: operator(who),
        note: note.into(),
    };
    let r = h
        .engine
        .step_event(&run.id, "setup", complete("dora", "done"))
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::NotClaimed))),
        "{r:?}"
    );
    h.engine
        .step_event(
            &run.id,
            "setup",
            StepEvent::Claim {
                actor: operator("dora"),
            },
        )
        .await
        .unwrap();
    let r = h
        .engine
        .step_event(&run.id, "setup", complete("erin", "done"))
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::ClaimedByOther { .. }))),
        "{r:?}"
    );
    let r = h
        .engine
        .step_event(&run.id, "setup", complete("dora", ""))
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::NoteRequired))),
        "{r:?}"
    );
    h.engine
        .step_event(
            &run.id,
            "setup",
            complete("dora", "Setup wizard finished, reboot done"),
        )
        .await
        .unwrap();
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    h.stop().await;
    assert_eq!(
        h.journal.phase("check").len(),
        1,
        "the post-condition was checked"
    );
    let step = h.store.step(&run.id, "setup").await.unwrap();
    assert_eq!(
        step.state.note.as_deref(),
        Some("Setup wizard finished, reboot done")
    );
}

#[tokio::test]
async fn a_manual_task_whose_postcondition_does_not_hold_fails() {
    let mut h = Harness::new().await;
    let mut task = manual("setup");
    task.postcondition = Some(Operation::ProductVersion {
        expect: "8.11".into(),
        component: None,
    });
    h.journal.script_checks("setup", vec![false]);
    h.start();
    let run = h.started_run(plan_of(vec![task])).await;
    h.step_reaches(&run.id, "setup", StepStatus::AwaitingOperator)
        .await;
    h.engine
        .step_event(
            &run.id,
            "setup",
            StepEvent::Claim {
                actor: operator("dora"),
            },
        )
        .await
        .unwrap();
    h.engine
        .step_event(
            &run.id,
            "setup",
            StepEvent::Complete {
                actor: operator("dora"),
                note: "done".into(),
            },
        )
        .await
        .unwrap();
    h.run_reaches(&run.id, RunStatus::Failed).await;
    h.stop().await;
    assert_eq!(
        h.store.step(&run.id, "setup").await.unwrap().status,
        StepStatus::Failed
    );
}

#[tokio::test]
async fn two_runs_never_hold_the_same_host() {
    let mut h = Harness::new().await;
    let mut first = noop_plan(1, false, &["dc1"]);
    first.steps.push(manual("later"));
    first.steps[1].depends_on = vec!["s0000".into()];
    h.start();
    let a = h.started_run(first).await;
    h.step_reaches(&a.id, "later", StepStatus::AwaitingOperator)
        .await;
    let b = h.started_run(noop_plan(1, false, &["dc1"])).await;
    settle_a_while().await;
    assert_eq!(
        h.store.step(&b.id, "s0000").await.unwrap().status,
        StepStatus::Ready,
        "dc1 belongs to the first run"
    );
    assert_eq!(h.store.host_locks().await.unwrap().get("dc1"), Some(&a.id));
    h.engine
        .step_event(
            &a.id,
            "later",
            StepEvent::Claim {
                actor: operator("dora"),
            },
        )
        .await
        .unwrap();
    h.engine
        .step_event(
            &a.id,
            "later",
            StepEvent::Complete {
                actor: operator("dora"),
                note: "ok".into(),
            },
        )
        .await
        .unwrap();
    h.run_reaches(&a.id, RunStatus::Succeeded).await;
    h.run_reaches(&b.id, RunStatus::Succeeded).await;
    h.stop().await;
}

#[tokio::test]
async fn a_retryable_step_is_retried_automatically_after_a_backoff() {
    let mut h = Harness::new().await;
    let mut plan = noop_plan(1, false, &["dc1"]);
    plan.steps[0].retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff_secs: 1,
        max_backoff_secs: 1,
    };
    h.journal.script(
        "s0000",
        vec![Behavior::Fail("busy".into()), Behavior::Fail("busy".into())],
    );
    h.start();
    let run = h.started_run(plan).await;
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    h.stop().await;
    let attempts: Vec<u32> = h
        .journal
        .phase("start")
        .into_iter()
        .map(|e| e.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
}

#[tokio::test]
async fn an_action_that_does_not_answer_in_time_becomes_outcome_unknown_and_is_not_run_again() {
    let mut h = Harness::new().await;
    let mut plan = noop_plan(1, false, &["dc1"]);
    plan.steps[0].timeout_secs = 1;
    plan.steps[0].retry.max_attempts = 3;
    h.journal.script("s0000", vec![Behavior::Hang]);
    h.start();
    let run = h.started_run(plan).await;
    h.step_reaches(&run.id, "s0000", StepStatus::OutcomeUnknown)
        .await;
    settle_a_while().await;
    h.stop().await;
    assert_eq!(h.journal.executions("s0000"), 1);
    let step = h.store.step(&run.id, "s0000").await.unwrap();
    assert_eq!(step.status, StepStatus::OutcomeUnknown);
    assert!(step
        .state
        .last_error
        .unwrap_or_default()
        .contains("started but not how it ended"));
}

#[tokio::test(start_paused = true)]
async fn a_wait_step_polls_until_the_condition_has_held_for_its_stable_period() {
    let journal = JournalExecutor::in_memory();
    journal.script_checks("drain", vec![false, true, false, true, true, true, true]);
    let wait = Operation::Wait {
        condition: WaitCondition::BackupSessionsLow {
            max: 0,
            stable_secs: 60,
        },
        interval_secs: 30,
        timeout_secs: 600,
    };
    let dispatch = lockstep::engine::executor::Dispatch {
        key: lockstep::engine::executor::IdempotencyKey {
            run_id: "r".into(),
            step_id: "drain".into(),
            attempt: 1,
        },
        host: Some("dc1".into()),
        operation: wait,
        timeout_secs: 600,
    };
    let started = tokio::time::Instant::now();
    let outcome = lockstep::engine::driver::poll_until(&journal, &dispatch).await;
    assert!(
        matches!(
            outcome,
            lockstep::engine::executor::Outcome::Succeeded { .. }
        ),
        "{outcome:?}"
    );
    // Held from the 4th poll (90 s) through the 6th (150 s): 60 s stable.
    assert_eq!(started.elapsed(), Duration::from_secs(150));
    assert_eq!(journal.phase("check").len(), 6);
}

#[tokio::test(start_paused = true)]
async fn a_wait_step_fails_when_its_condition_never_holds_long_enough() {
    let journal = JournalExecutor::in_memory();
    journal.script_checks("drain", vec![false; 100]);
    let dispatch = lockstep::engine::executor::Dispatch {
        key: lockstep::engine::executor::IdempotencyKey {
            run_id: "r".into(),
            step_id: "drain".into(),
            attempt: 1,
        },
        host: None,
        operation: Operation::Wait {
            condition: WaitCondition::BackupSessionsLow {
                max: 0,
                stable_secs: 0,
            },
            interval_secs: 10,
            timeout_secs: 60,
        },
        timeout_secs: 60,
    };
    let outcome = lockstep::engine::driver::poll_until(&journal, &dispatch).await;
    assert!(
        matches!(outcome, lockstep::engine::executor::Outcome::Failed { .. }),
        "{outcome:?}"
    );
    assert_eq!(journal.phase("check").len(), 7, "polled at 0, 10, … 60 s");
}

#[tokio::test]
async fn an_approval_step_waits_for_an_approver_other_than_the_requester() {
    let mut h = Harness::new().await;
    let mut gate = agent_step("go-no-go", None);
    gate.kind = StepKind::Approval;
    gate.operation = Operation::None;
    let mut plan = plan_of(vec![gate, agent_step("after", Some("dc1"))]);
    plan.steps[1].depends_on = vec!["go-no-go".into()];
    h.start();
    let run = h.started_run(plan).await;
    h.step_reaches(&run.id, "go-no-go", StepStatus::AwaitingApproval)
        .await;
    settle_a_while().await;
    assert_eq!(h.journal.executions("after"), 0);
    let hash = h
        .store
        .step(&run.id, "go-no-go")
        .await
        .unwrap()
        .content_hash;
    let approve = StepEvent::Approve {
        actor: approver("carl"),
        comment: "go".into(),
        content_hash: hash,
    };
    h.engine
        .step_event(&run.id, "go-no-go", approve)
        .await
        .unwrap();
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    h.stop().await;
}

#[tokio::test]
async fn a_long_action_reports_heartbeats_and_shows_as_running() {
    let journal = JournalExecutor::in_memory().with_effect(Duration::from_millis(600));
    let config = EngineConfig {
        heartbeat: Duration::from_millis(100),
        ..Harness::config()
    };
    let mut h = Harness::with_journal(journal, config).await;
    h.start();
    let run = h.started_run(noop_plan(1, false, &["dc1"])).await;
    h.step_reaches(&run.id, "s0000", StepStatus::Running).await;
    assert!(h
        .store
        .step(&run.id, "s0000")
        .await
        .unwrap()
        .state
        .heartbeat_at
        .is_some());
    h.run_reaches(&run.id, RunStatus::Succeeded).await;
    h.stop().await;
    assert_eq!(h.journal.executions("s0000"), 1);
}
