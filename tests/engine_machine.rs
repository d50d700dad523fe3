//! The state machines as tables: every (status, event) pair of runs and steps is either allowed,
//! with the status it leads to, or refused with a typed refusal. Plus property tests over random
//! event sequences: refused events change nothing, attempts only grow, terminal states stay put.

use lockstep::engine::executor::{ActionStatus, Outcome};
use lockstep::engine::machine::{
    run, step, Actor, Refusal, RunEvent, RunState, RunStatus, StepAction, StepCtx, StepEvent,
    StepState, StepStatus,
};
use lockstep::knowledge::plan::{GateSpec, RetryPolicy, StepKind};
use lockstep::knowledge::role::Role;
use proptest::prelude::*;

fn boss() -> Actor {
    Actor::new("alice", &[Role::Operator, Role::Approver])
}

fn ok() -> Outcome {
    Outcome::Succeeded {
        evidence: serde_json::json!({}),
    }
}

fn gated_ctx() -> StepCtx {
    StepCtx {
        kind: StepKind::Agent,
        gate: Some(GateSpec {
            role: Role::Approver,
            quorum: 1,
            expires_after_secs: Some(60),
        }),
        retry: RetryPolicy::default(),
        has_postcondition: true,
        run_requester: "olga".into(),
        content_hash: "h1".into(),
    }
}

fn step_events() -> Vec<StepEvent> {
    let a = boss();
    vec![
        StepEvent::Unblock,
        StepEvent::Start,
        StepEvent::Approve {
            actor: a.clone(),
            comment: "ok".into(),
            content_hash: "h1".into(),
        },
        StepEvent::Reject {
            actor: a.clone(),
            comment: "no".into(),
        },
        StepEvent::Lapse,
        StepEvent::ReopenGate { actor: a.clone() },
        StepEvent::ContentChanged,
        StepEvent::Claim { actor: a.clone() },
        StepEvent::Complete {
            actor: a.clone(),
            note: "done by hand".into(),
        },
        StepEvent::Heartbeat,
        StepEvent::Finished { outcome: ok() },
        StepEvent::Verified {
            ok: true,
            evidence: serde_json::json!({}),
        },
        StepEvent::Reconciled {
            status: ActionStatus::Finished { outcome: ok() },
        },
        StepEvent::Retry { actor: a.clone() },
        StepEvent::Skip {
            actor: a.clone(),
            justification: "not needed here".into(),
        },
        StepEvent::MarkDone {
            actor: a.clone(),
            evidence: "seen on host".into(),
        },
        StepEvent::MarkFailed {
            actor: a.clone(),
            reason: "broke".into(),
        },
        StepEvent::Cancel,
        StepEvent::CancelAnswered { cancelled: true },
    ]
}

/// The preconditions an event needs besides the status (so the table is about status pairs):
/// the task is claimed by the actor (for claim and complete only: the claimer never resolves
/// the outcome alone), the gate is open (lapsed for a reopen), and time is before the gate's
/// expiry (after it for a lapse).
fn fixture(status: StepStatus, event: &StepEvent) -> (StepState, i64) {
    let state = StepState {
        status,
        attempt: 1,
        gate_opened_at: Some(0),
        gate_lapsed: matches!(event, StepEvent::ReopenGate { .. }),
        claimed_by: matches!(event, StepEvent::Claim { .. } | StepEvent::Complete { .. })
            .then(|| "alice".into()),
        ..StepState::default()
    };
    let now = if matches!(event, StepEvent::Lapse) {
        120_000
    } else {
        1_000
    };
    (state, now)
}

/// Allowed step transitions for a gated agent step with a post-condition. Everything else is
/// refused as not allowed.
fn step_table() -> Vec<(StepStatus, &'static str, StepStatus)> {
    use StepStatus::*;
    vec![
        (Pending, "unblock", Ready),
        (Pending, "content_changed", Pending),
        (Pending, "skip", Skipped),
        (Pending, "cancel", Cancelled),
        (Ready, "start", AwaitingApproval),
        (Ready, "content_changed", Ready),
        (Ready, "skip", Skipped),
        (Ready, "cancel", Cancelled),
        (AwaitingApproval, "approve", Dispatched),
        (AwaitingApproval, "reject", Failed),
        (AwaitingApproval, "lapse", AwaitingApproval),
        (AwaitingApproval, "reopen_gate", AwaitingApproval),
        (AwaitingApproval, "content_changed", AwaitingApproval),
        (AwaitingApproval, "skip", Skipped),
        (AwaitingApproval, "cancel", Cancelled),
        (AwaitingOperator, "claim", AwaitingOperator),
        (AwaitingOperator, "complete", Verifying),
        (AwaitingOperator, "content_changed", AwaitingOperator),
        (AwaitingOperator, "skip", Skipped),
        (AwaitingOperator, "cancel", Cancelled),
        (Dispatched, "heartbeat", Running),
        (Dispatched, "finished", Verifying),
        (Dispatched, "reconciled", Verifying),
        (Dispatched, "cancel", Dispatched),
        (Dispatched, "cancel_answered", Cancelled),
        (Running, "heartbeat", Running),
        (Running, "finished", Verifying),
        (Running, "reconciled", Verifying),
        (Running, "cancel", Running),
        (Running, "cancel_answered", Cancelled),
        (Verifying, "verified", Succeeded),
        (Verifying, "cancel", Verifying),
        (Verifying, "cancel_answered", Cancelled),
        (Failed, "content_changed", Failed),
        (Failed, "retry", Ready),
        (Failed, "skip", Skipped),
        (Failed, "cancel", Cancelled),
        (OutcomeUnknown, "reconciled", Verifying),
        (OutcomeUnknown, "retry", Ready),
        (OutcomeUnknown, "skip", Skipped),
        (OutcomeUnknown, "mark_done", Succeeded),
        (OutcomeUnknown, "mark_failed", Failed),
    ]
}

#[test]
fn every_step_status_and_event_pair_is_allowed_or_refused_as_the_table_says() {
    let table = step_table();
    let mut checked = 0;
    for from in StepStatus::ALL {
        for event in step_events() {
            // A gate is never skipped (the policy table): skip is tabled on the same step
            // without its gate.
            let mut ctx = gated_ctx();
            if matches!(event, StepEvent::Skip { .. }) {
                ctx.gate = None;
            }
            let (state, now) = fixture(from, &event);
            let expected = table
                .iter()
                .find(|(f, e, _)| *f == from && *e == event.name())
                .map(|r| r.2);
            let got = step::apply(&state, &ctx, &event, now);
            match (expected, got) {
                (Some(to), Ok((next, _))) => {
                    assert_eq!(next.status, to, "{from} --{}-->", event.name())
                }
                (None, Err(Refusal::NotAllowed { .. })) => {}
                (Some(to), Err(r)) => panic!("{from} --{}--> {to} was refused: {r}", event.name()),
                (None, Ok((next, _))) => panic!(
                    "{from} --{}--> {} should be refused",
                    event.name(),
                    next.status
                ),
                (None, Err(r)) => panic!(
                    "{from} --{}--> refused for the wrong reason: {r}",
                    event.name()
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 12 * 19);
}

#[test]
fn start_leads_where_the_step_kind_says() {
    let state = StepState {
        status: StepStatus::Ready,
        ..StepState::default()
    };
    let mut ctx = gated_ctx();
    ctx.gate = None;
    let (next, actions) = step::apply(&state, &ctx, &StepEvent::Start, 0).unwrap();
    assert_eq!((next.status, next.attempt), (StepStatus::Dispatched, 1));
    assert_eq!(actions, [StepAction::Dispatch { attempt: 1 }]);
    ctx.kind = StepKind::Manual;
    let (next, _) = step::apply(&state, &ctx, &StepEvent::Start, 0).unwrap();
    assert_eq!(
        (next.status, next.attempt),
        (StepStatus::AwaitingOperator, 0)
    );
    ctx.kind = StepKind::Approval;
    let (next, _) = step::apply(&state, &ctx, &StepEvent::Start, 0).unwrap();
    assert_eq!(
        next.status,
        StepStatus::AwaitingApproval,
        "an approval step always has a gate"
    );
}

#[test]
fn a_failure_of_a_retryable_step_backs_off_exponentially_up_to_the_cap() {
    let mut ctx = gated_ctx();
    ctx.gate = None;
    ctx.has_postcondition = false;
    ctx.retry = RetryPolicy {
        max_attempts: 4,
        initial_backoff_secs: 5,
        max_backoff_secs: 12,
    };
    let failed = StepEvent::Finished {
        outcome: Outcome::Failed {
            message: "x".into(),
            evidence: serde_json::Value::Null,
        },
    };
    let mut state = StepState {
        status: StepStatus::Ready,
        ..StepState::default()
    };
    let mut now = 0;
    let mut delays = Vec::new();
    loop {
        let (s, _) = step::apply(&state, &ctx, &StepEvent::Start, now).unwrap();
        let (s, _) = step::apply(&s, &ctx, &failed, now).unwrap();
        state = s;
        match state.not_before {
            Some(t) if state.status == StepStatus::Ready => {
                assert!(matches!(
                    step::apply(&state, &ctx, &StepEvent::Start, t - 1),
                    Err(Refusal::BackoffPending { .. })
                ));
                delays.push(t - now);
                now = t;
            }
            _ => break,
        }
    }
    assert_eq!(delays, [5_000, 10_000, 12_000]);
    assert_eq!((state.status, state.attempt), (StepStatus::Failed, 4));
}

#[test]
fn a_step_handed_to_a_person_waits_for_an_operator_and_keeps_what_was_found() {
    let mut ctx = gated_ctx();
    ctx.gate = None;
    ctx.kind = StepKind::Wait;
    ctx.has_postcondition = false;
    let running = StepState {
        status: StepStatus::Running,
        attempt: 1,
        ..StepState::default()
    };
    let handed = StepEvent::Finished {
        outcome: Outcome::NeedsPerson {
            reason: "counters unavailable: watch the sessions".into(),
            evidence: serde_json::json!({ "counters": "unavailable" }),
        },
    };
    let (next, actions) = step::apply(&running, &ctx, &handed, 0).unwrap();
    assert_eq!(next.status, StepStatus::AwaitingOperator);
    assert_eq!(next.attempt, 1, "handing over is not a retry");
    assert_eq!(actions, [StepAction::NeedsPeople]);
    // The same claim-and-complete path as a manual task: a note is required.
    let a = boss();
    let (claimed, _) = step::apply(&next, &ctx, &StepEvent::Claim { actor: a.clone() }, 1).unwrap();
    assert!(matches!(
        step::apply(
            &claimed,
            &ctx,
            &StepEvent::Complete {
                actor: a.clone(),
                note: " ".into()
            },
            2
        ),
        Err(Refusal::NoteRequired)
    ));
    let (done, _) = step::apply(
        &claimed,
        &ctx,
        &StepEvent::Complete {
            actor: a,
            note: "3 sessions, steady for 10 minutes".into(),
        },
        2,
    )
    .unwrap();
    assert_eq!(done.status, StepStatus::Succeeded);
    let ev = done.evidence.unwrap();
    assert_eq!(ev["note"], "3 sessions, steady for 10 minutes");
    assert_eq!(
        ev["handed_over"]["found"]["counters"], "unavailable",
        "{ev}"
    );
    assert!(ev["handed_over"]["handed_to_person"]
        .as_str()
        .unwrap()
        .contains("watch the sessions"));
}

fn run_events() -> Vec<RunEvent> {
    let a = boss();
    vec![
        RunEvent::Submit { actor: a.clone() },
        RunEvent::ApproveStart {
            actor: a.clone(),
            comment: "go".into(),
        },
        RunEvent::Pause {
            actor: a.clone(),
            reason: "lunch".into(),
        },
        RunEvent::Resume { actor: a.clone() },
        RunEvent::Abort {
            actor: a.clone(),
            reason: "wrong window".into(),
        },
        RunEvent::Completed,
        RunEvent::Stalled {
            step_id: "s".into(),
        },
        RunEvent::Reopen { actor: a.clone() },
        RunEvent::Undo {
            actor: a,
            reason: "roll back".into(),
        },
    ]
}

#[test]
fn every_run_status_and_event_pair_is_allowed_or_refused_as_the_table_says() {
    use RunStatus::*;
    let table = [
        (Draft, "submit", AwaitingStartApproval),
        (Draft, "abort", Aborted),
        (AwaitingStartApproval, "approve_start", Running),
        (AwaitingStartApproval, "abort", Aborted),
        (Running, "pause", Paused),
        (Running, "abort", Aborted),
        (Running, "completed", Succeeded),
        (Running, "stalled", Failed),
        (Paused, "resume", Running),
        (Paused, "abort", Aborted),
        (Succeeded, "undo", Undoing),
        (Failed, "abort", Aborted),
        (Failed, "reopen", Running),
        (Failed, "undo", Undoing),
        (Aborted, "undo", Undoing),
        (Undoing, "abort", Aborted),
        (Undoing, "completed", Undone),
        (Undoing, "stalled", Failed),
    ];
    let mut checked = 0;
    for from in RunStatus::ALL {
        for event in run_events() {
            let state = RunState {
                status: from,
                ..RunState::new("olga")
            };
            let expected = table
                .iter()
                .find(|(f, e, _)| *f == from && *e == event.name())
                .map(|r| r.2);
            match (expected, run::apply(&state, &event, 0)) {
                (Some(to), Ok((next, _))) => {
                    assert_eq!(next.status, to, "{from} --{}-->", event.name())
                }
                (None, Err(Refusal::NotAllowed { .. })) => {}
                (e, got) => panic!("{from} --{}-->: expected {e:?}, got {got:?}", event.name()),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 9 * 9);
}

// ---- property tests ----

fn any_actor() -> impl Strategy<Value = Actor> {
    (
        prop::sample::select(vec!["olga", "carl", "dora", "eve"]),
        prop::sample::select(vec![
            vec![Role::Operator],
            vec![Role::Approver],
            vec![Role::Operator, Role::Approver],
            vec![],
        ]),
    )
        .prop_map(|(n, r)| Actor::new(n, &r))
}

fn any_outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(ok()),
        Just(Outcome::Failed {
            message: "failed".into(),
            evidence: serde_json::Value::Null
        }),
        Just(Outcome::Unknown {
            reason: "lost".into()
        }),
        Just(Outcome::NeedsPerson {
            reason: "no counters".into(),
            evidence: serde_json::json!({ "counters": "unavailable" }),
        }),
    ]
}

fn any_step_event() -> impl Strategy<Value = StepEvent> {
    let text = prop::sample::select(vec!["", "  ", "because"]).prop_map(str::to_string);
    let hash = prop::sample::select(vec!["h1", "h2"]).prop_map(str::to_string);
    prop_oneof![
        Just(StepEvent::Unblock),
        Just(StepEvent::Start),
        (any_actor(), text.clone(), hash).prop_map(|(actor, comment, content_hash)| {
            StepEvent::Approve {
                actor,
                comment,
                content_hash,
            }
        }),
        (any_actor(), text.clone())
            .prop_map(|(actor, comment)| StepEvent::Reject { actor, comment }),
        Just(StepEvent::Lapse),
        any_actor().prop_map(|actor| StepEvent::ReopenGate { actor }),
        Just(StepEvent::ContentChanged),
        any_actor().prop_map(|actor| StepEvent::Claim { actor }),
        (any_actor(), text.clone()).prop_map(|(actor, note)| StepEvent::Complete { actor, note }),
        Just(StepEvent::Heartbeat),
        any_outcome().prop_map(|outcome| StepEvent::Finished { outcome }),
        any::<bool>().prop_map(|ok| StepEvent::Verified {
            ok,
            evidence: serde_json::Value::Null
        }),
        prop_oneof![
            Just(ActionStatus::NotFound),
            Just(ActionStatus::Running),
            any_outcome().prop_map(|outcome| ActionStatus::Finished { outcome }),
            Just(ActionStatus::Unknown { reason: "?".into() }),
        ]
        .prop_map(|status| StepEvent::Reconciled { status }),
        any_actor().prop_map(|actor| StepEvent::Retry { actor }),
        (any_actor(), text.clone()).prop_map(|(actor, justification)| StepEvent::Skip {
            actor,
            justification
        }),
        (any_actor(), text.clone())
            .prop_map(|(actor, evidence)| StepEvent::MarkDone { actor, evidence }),
        (any_actor(), text).prop_map(|(actor, reason)| StepEvent::MarkFailed { actor, reason }),
        Just(StepEvent::Cancel),
        any::<bool>().prop_map(|cancelled| StepEvent::CancelAnswered { cancelled }),
    ]
}

fn any_ctx() -> impl Strategy<Value = StepCtx> {
    (
        prop::sample::select(vec![
            StepKind::Agent,
            StepKind::Manual,
            StepKind::Approval,
            StepKind::Sql,
        ]),
        any::<bool>(),
        1u32..3,
        1u32..4,
        any::<bool>(),
    )
        .prop_map(|(kind, gated, quorum, attempts, post)| StepCtx {
            kind,
            gate: gated.then_some(GateSpec {
                role: Role::Approver,
                quorum,
                expires_after_secs: Some(30),
            }),
            retry: RetryPolicy {
                max_attempts: attempts,
                initial_backoff_secs: 1,
                max_backoff_secs: 4,
            },
            has_postcondition: post,
            run_requester: "olga".into(),
            content_hash: "h1".into(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_step_event_sequences_keep_the_invariants(
        ctx in any_ctx(),
        events in prop::collection::vec((any_step_event(), 0i64..20_000), 1..60),
    ) {
        let mut state = StepState::default();
        let mut now = 0i64;
        for (event, dt) in events {
            now += dt;
            let before = state.clone();
            match step::apply(&state, &ctx, &event, now) {
                Ok((next, actions)) => {
                    prop_assert!(!before.status.is_terminal(), "left terminal {} by {}", before.status, event.name());
                    prop_assert!(next.attempt >= before.attempt);
                    prop_assert!(next.attempt <= before.attempt + 1);
                    if next.attempt > before.attempt {
                        prop_assert_eq!(next.status, StepStatus::Dispatched);
                        prop_assert!(actions.contains(&StepAction::Dispatch { attempt: next.attempt }), "dispatch action");
                    }
                    if next.status == StepStatus::OutcomeUnknown && before.status != StepStatus::OutcomeUnknown {
                        prop_assert!(!actions.iter().any(|a| matches!(a, StepAction::Dispatch { .. })), "outcome unknown never re-dispatches");
                    }
                    if before.status == StepStatus::OutcomeUnknown {
                        prop_assert!(!actions.iter().any(|a| matches!(a, StepAction::Dispatch { .. })), "no dispatch from doubt");
                    }
                    for a in &next.approvals {
                        prop_assert_ne!(a.actor.as_str(), "olga", "the requester approved");
                        prop_assert!(!a.comment.trim().is_empty());
                    }
                    if next.status == StepStatus::Skipped && before.status != StepStatus::Skipped {
                        prop_assert!(event.actor().is_some_and(|a| a.has_role(Role::Approver)));
                        prop_assert!(next.note.as_deref().is_some_and(|n| !n.trim().is_empty()));
                    }
                    state = next;
                }
                Err(_) => prop_assert_eq!(&state, &before),
            }
        }
    }

    #[test]
    fn random_run_event_sequences_never_leave_a_terminal_state(
        events in prop::collection::vec(0usize..9, 1..40),
    ) {
        let all = run_events();
        let mut state = RunState::new("olga");
        for i in events {
            let before = state.clone();
            if let Ok((next, _)) = run::apply(&state, &all[i], 0) {
                prop_assert!(!(before.status.is_terminal() && all[i].name() != "undo"));
                state = next;
            }
        }
    }
}
