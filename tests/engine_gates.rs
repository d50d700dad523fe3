//! Gates and human decisions, through the store on a real database: four-eyes against the run's
//! requester and the step action's requester, role, comment, quorum, expiry, content-bound
//! approvals, skip with justification. Each test fails if its rule is removed.

use lockstep::engine::machine::{Actor, RunEvent, StepEvent, StepStatus};
use lockstep::engine::store::{DriveLimits, NewRun};
use lockstep::engine::testkit::{agent_step, approver, operator, plan_of};
use lockstep::engine::{EngineError, Refusal, Store};
use lockstep::knowledge::operation::Operation;
use lockstep::knowledge::plan::{GateSpec, Plan};
use lockstep::knowledge::role::Role;

struct Gate {
    _dir: tempfile::TempDir,
    store: Store,
    run_id: String,
}

const STEP: &str = "stop-services";

fn gated_plan(quorum: u32, expires_after_secs: Option<u64>) -> Plan {
    let mut s = agent_step(STEP, Some("dc1"));
    s.gate = Some(GateSpec {
        role: Role::Approver,
        quorum,
        expires_after_secs,
    });
    plan_of(vec![s])
}

/// A running run (requested by olga, started by carl) whose one step waits at its gate.
async fn at_gate(plan: Plan) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("g.db")).await.unwrap();
    let new = NewRun {
        change_ticket: "CHG-7".into(),
        window_start: None,
        window_end: None,
        plan,
    };
    let run = store.create_run(new, &operator("olga"), 0).await.unwrap();
    store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit {
                actor: operator("olga"),
            },
            0,
        )
        .await
        .unwrap();
    let start = RunEvent::ApproveStart {
        actor: approver("carl"),
        comment: "window ok".into(),
    };
    store.apply_run_event(&run.id, &start, 0).await.unwrap();
    store
        .claim(&run.id, DriveLimits::default(), 1_000)
        .await
        .unwrap();
    assert_eq!(
        store.step(&run.id, STEP).await.unwrap().status,
        StepStatus::AwaitingApproval
    );
    Gate {
        _dir: dir,
        store,
        run_id: run.id,
    }
}

impl Gate {
    async fn hash(&self) -> String {
        self.store
            .step(&self.run_id, STEP)
            .await
            .unwrap()
            .content_hash
    }
    async fn approve(
        &self,
        actor: Actor,
        comment: &str,
        at: i64,
    ) -> Result<StepStatus, EngineError> {
        let content_hash = self.hash().await;
        let e = StepEvent::Approve {
            actor,
            comment: comment.into(),
            content_hash,
        };
        self.store
            .apply_step_event(&self.run_id, STEP, &e, at)
            .await
            .map(|(s, _)| s.status)
    }
    async fn status(&self) -> StepStatus {
        self.store.step(&self.run_id, STEP).await.unwrap().status
    }
}

fn refusal(r: Result<StepStatus, EngineError>) -> Refusal {
    match r {
        Err(EngineError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn approval_by_the_person_who_requested_the_run_is_refused() {
    let g = at_gate(gated_plan(1, None)).await;
    let olga = Actor::new("olga", &[Role::Operator, Role::Approver]);
    assert!(matches!(
        refusal(g.approve(olga, "looks fine", 2_000).await),
        Refusal::FourEyes { .. }
    ));
    assert_eq!(g.status().await, StepStatus::AwaitingApproval);
    assert_eq!(
        g.approve(approver("carl"), "looks fine", 2_000)
            .await
            .unwrap(),
        StepStatus::Dispatched
    );
}

#[tokio::test]
async fn approval_by_the_person_who_requested_the_steps_retry_is_refused() {
    let g = at_gate(gated_plan(1, None)).await;
    let reject = StepEvent::Reject {
        actor: approver("carl"),
        comment: "not yet".into(),
    };
    g.store
        .apply_step_event(&g.run_id, STEP, &reject, 2_000)
        .await
        .unwrap();
    let dora = Actor::new("dora", &[Role::Operator, Role::Approver]);
    g.store
        .apply_step_event(
            &g.run_id,
            STEP,
            &StepEvent::Retry {
                actor: dora.clone(),
            },
            3_000,
        )
        .await
        .unwrap();
    g.store
        .claim(&g.run_id, DriveLimits::default(), 4_000)
        .await
        .unwrap();
    assert_eq!(g.status().await, StepStatus::AwaitingApproval);
    let r = refusal(g.approve(dora, "I asked for it", 5_000).await);
    assert!(
        matches!(&r, Refusal::FourEyes { requested, .. } if requested.contains("step")),
        "{r}"
    );
    assert_eq!(
        g.approve(approver("carl"), "fine now", 5_000)
            .await
            .unwrap(),
        StepStatus::Dispatched
    );
}

#[tokio::test]
async fn approval_needs_the_gates_role_and_a_comment() {
    let g = at_gate(gated_plan(1, None)).await;
    assert!(matches!(
        refusal(g.approve(operator("dora"), "ok", 2_000).await),
        Refusal::MissingRole { .. }
    ));
    assert!(matches!(
        refusal(g.approve(approver("carl"), "  ", 2_000).await),
        Refusal::CommentRequired
    ));
    assert_eq!(g.status().await, StepStatus::AwaitingApproval);
    let events = g.store.run_events(&g.run_id).await.unwrap();
    assert!(
        !events.iter().any(|e| e.kind == "step.approve"),
        "refused approvals leave no event"
    );
}

#[tokio::test]
async fn a_quorum_of_two_needs_two_distinct_approvers() {
    let g = at_gate(gated_plan(2, None)).await;
    assert_eq!(
        g.approve(approver("carl"), "ok", 2_000).await.unwrap(),
        StepStatus::AwaitingApproval
    );
    assert!(matches!(
        refusal(g.approve(approver("carl"), "ok again", 2_100).await),
        Refusal::AlreadyApproved { .. }
    ));
    assert_eq!(g.status().await, StepStatus::AwaitingApproval);
    assert_eq!(
        g.approve(approver("erin"), "agreed", 2_200).await.unwrap(),
        StepStatus::Dispatched
    );
}

#[tokio::test]
async fn an_expired_gate_refuses_approval_and_waits_until_reopened() {
    let g = at_gate(gated_plan(2, Some(60))).await;
    // Opened at 1 s; lapses at 61 s.
    g.approve(approver("carl"), "ok", 30_000).await.unwrap();
    assert!(matches!(
        refusal(g.approve(approver("erin"), "late", 61_000).await),
        Refusal::GateExpired { .. }
    ));
    g.store
        .apply_step_events(&g.run_id, &[(STEP.to_string(), StepEvent::Lapse)], 61_000)
        .await
        .unwrap();
    let step = g.store.step(&g.run_id, STEP).await.unwrap();
    assert!(
        step.state.gate_lapsed && step.state.approvals.is_empty(),
        "a lapse drops the approvals"
    );
    assert_eq!(
        step.status,
        StepStatus::AwaitingApproval,
        "nothing proceeds by default"
    );
    // Reopened by dora, who now cannot approve it; two fresh approvals pass it.
    let reopen = StepEvent::ReopenGate {
        actor: Actor::new("dora", &[Role::Operator, Role::Approver]),
    };
    g.store
        .apply_step_event(&g.run_id, STEP, &reopen, 70_000)
        .await
        .unwrap();
    assert!(matches!(
        refusal(
            g.approve(Actor::new("dora", &[Role::Approver]), "ok", 71_000)
                .await
        ),
        Refusal::FourEyes { .. }
    ));
    g.approve(approver("carl"), "ok", 71_000).await.unwrap();
    assert_eq!(
        g.approve(approver("erin"), "ok", 72_000).await.unwrap(),
        StepStatus::Dispatched
    );
}

#[tokio::test]
async fn an_approval_lapses_when_the_steps_content_changes() {
    let g = at_gate(gated_plan(2, None)).await;
    let shown = g.hash().await;
    g.approve(approver("carl"), "approving IIS reset on dc1", 2_000)
        .await
        .unwrap();
    // The step's resolved inputs change: another host.
    let mut changed = agent_step(STEP, Some("dc2"));
    changed.gate = g.store.step(&g.run_id, STEP).await.unwrap().spec.gate;
    changed.operation = Operation::IisReset;
    g.store
        .amend_step(&g.run_id, &changed, &operator("olga"), 3_000)
        .await
        .unwrap();
    assert_ne!(g.hash().await, shown);
    // An approval of what erin was shown before the change is refused...
    let stale = StepEvent::Approve {
        actor: approver("erin"),
        comment: "ok".into(),
        content_hash: shown,
    };
    let r = g
        .store
        .apply_step_event(&g.run_id, STEP, &stale, 4_000)
        .await
        .map(|(s, _)| s.status);
    assert!(matches!(refusal(r), Refusal::ContentChanged { .. }));
    // ...and carl's earlier approval no longer counts towards the quorum.
    assert_eq!(
        g.approve(approver("erin"), "ok for dc2", 5_000)
            .await
            .unwrap(),
        StepStatus::AwaitingApproval
    );
    assert_eq!(
        g.approve(approver("carl"), "ok for dc2", 6_000)
            .await
            .unwrap(),
        StepStatus::Dispatched
    );
}

#[tokio::test]
async fn skipping_a_step_needs_the_approver_role_and_a_justification_and_never_passes_a_gate() {
    let g = at_gate(gated_plan(1, None)).await;
    let skip = |actor: Actor, justification: &str| StepEvent::Skip {
        actor,
        justification: justification.into(),
    };
    let r = g
        .store
        .apply_step_event(
            &g.run_id,
            STEP,
            &skip(operator("dora"), "not needed"),
            2_000,
        )
        .await;
    assert!(matches!(
        r,
        Err(EngineError::Refused(Refusal::MissingRole { .. }))
    ));
    let r = g
        .store
        .apply_step_event(&g.run_id, STEP, &skip(approver("carl"), " "), 2_000)
        .await;
    assert!(matches!(
        r,
        Err(EngineError::Refused(Refusal::JustificationRequired))
    ));
    assert_eq!(g.status().await, StepStatus::AwaitingApproval);
    // Issue 14: a gate is approved or denied, never skipped — not even by another approver.
    let r = g
        .store
        .apply_step_event(
            &g.run_id,
            STEP,
            &skip(approver("carl"), "IIS is not installed on dc1"),
            2_000,
        )
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::PolicyViolation(ref v))) if v.rule.contains("never skipped")),
        "{r:?}"
    );
    assert_eq!(g.status().await, StepStatus::AwaitingApproval);
    let events = g.store.run_events(&g.run_id).await.unwrap();
    assert!(
        !events.iter().any(|e| e.kind == "step.skip"),
        "a refused skip writes nothing"
    );
}

#[tokio::test]
async fn people_cannot_act_on_a_run_that_has_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("g.db")).await.unwrap();
    let new = NewRun {
        change_ticket: "CHG-7".into(),
        window_start: None,
        window_end: None,
        plan: gated_plan(1, None),
    };
    let run = store.create_run(new, &operator("olga"), 0).await.unwrap();
    let skip = StepEvent::Skip {
        actor: approver("carl"),
        justification: "early".into(),
    };
    let r = store.apply_step_event(&run.id, STEP, &skip, 1).await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::NotAllowed { .. }))),
        "{r:?}"
    );
}
