//! Issue 14, items 1–3: one policy table for every human decision, enforced by the engine
//! whatever the door; order as an invariant of every transition; people, not account names.
//! Through the store on a real SQLite file, plus a model-based property test that drives the
//! engine with random controls by random people and checks the invariants after every step.

use lockstep::engine::executor::Outcome;
use lockstep::engine::machine::{
    step, Actor, RunEvent, RunStatus, StepCtx, StepEvent, StepState, StepStatus,
};
use lockstep::engine::policy::{self, Control};
use lockstep::engine::store::{DriveLimits, NewRun};
use lockstep::engine::testkit::{agent_step, approver, noop_plan, operator, plan_of};
use lockstep::engine::{EngineError, Refusal, Store};
use lockstep::knowledge::plan::{GateSpec, Plan, StepKind};
use lockstep::knowledge::role::Role;

/// Olga requests every run here, and also holds the approver role.
fn olga() -> Actor {
    Actor::new("olga", &[Role::Operator, Role::Approver]).of_person("olga@example.com")
}

async fn started(plan: Plan) -> (tempfile::TempDir, Store, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("p.db")).await.unwrap();
    let new = NewRun {
        change_ticket: "CHG-14".into(),
        window_start: None,
        window_end: None,
        plan,
    };
    let run = store.create_run(new, &olga(), 0).await.unwrap();
    let submit = RunEvent::Submit { actor: olga() };
    store.apply_run_event(&run.id, &submit, 0).await.unwrap();
    let go = RunEvent::ApproveStart {
        actor: approver("carl"),
        comment: "go".into(),
    };
    store.apply_run_event(&run.id, &go, 0).await.unwrap();
    (dir, store, run.id)
}

fn skip(actor: Actor) -> StepEvent {
    StepEvent::Skip {
        actor,
        justification: "not installed here".into(),
    }
}

#[tokio::test]
async fn skip_by_the_requester_is_refused_even_with_the_approver_role_and_changes_nothing() {
    let (_dir, store, run) = started(noop_plan(2, false, &[])).await;
    let before = store.run_events(&run).await.unwrap().len();
    let r = store
        .apply_step_event(&run, "s0000", &skip(olga()), 1)
        .await;
    assert!(
        matches!(&r, Err(EngineError::Refused(Refusal::PolicyViolation(v))) if v.control == Control::Skip && v.who == "olga"),
        "{r:?}"
    );
    // Her second account is the same person.
    let alt = Actor::new("olga.alt", &[Role::Approver]).of_person("olga@example.com");
    assert!(store
        .apply_step_event(&run, "s0000", &skip(alt), 1)
        .await
        .is_err());
    assert_eq!(
        store.step(&run, "s0000").await.unwrap().status,
        StepStatus::Pending
    );
    assert_eq!(store.run_events(&run).await.unwrap().len(), before);
    store
        .apply_step_event(&run, "s0000", &skip(approver("carl")), 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn skip_of_a_step_whose_inputs_are_pending_is_refused_and_releases_nothing() {
    let (_dir, store, run) = started(noop_plan(3, true, &[])).await;
    let r = store
        .apply_step_event(&run, "s0001", &skip(approver("carl")), 1)
        .await;
    assert!(
        matches!(&r, Err(EngineError::Refused(Refusal::InputsNotDone { step, waiting_on })) if step == "s0001" && waiting_on == "s0000"),
        "{r:?}"
    );
    // The driver's claim unblocks only s0000; s0002 stays pending behind s0001.
    store.claim(&run, DriveLimits::default(), 2).await.unwrap();
    let statuses: Vec<StepStatus> = store
        .steps(&run)
        .await
        .unwrap()
        .iter()
        .map(|s| s.status)
        .collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Dispatched,
            StepStatus::Pending,
            StepStatus::Pending
        ]
    );
}

#[tokio::test]
async fn unblock_of_a_step_whose_inputs_are_not_done_is_refused_by_the_store_whoever_asks() {
    let (_dir, store, run) = started(noop_plan(2, true, &[])).await;
    let r = store
        .apply_step_event(&run, "s0001", &StepEvent::Unblock, 1)
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::InputsNotDone { .. }))),
        "{r:?}"
    );
}

fn gate_plan(quorum: u32) -> Plan {
    let mut g = agent_step("gate", Some("dc1"));
    g.kind = StepKind::Approval;
    g.gate = Some(GateSpec {
        role: Role::Approver,
        quorum,
        expires_after_secs: None,
    });
    plan_of(vec![g])
}

#[tokio::test]
async fn a_quorum_counts_people_so_two_accounts_of_one_person_are_one_approval() {
    let (_dir, store, run) = started(gate_plan(2)).await;
    store.claim(&run, DriveLimits::default(), 1).await.unwrap();
    let hash = store.step(&run, "gate").await.unwrap().content_hash;
    let approve = |actor: Actor| StepEvent::Approve {
        actor,
        comment: "looked at it".into(),
        content_hash: hash.clone(),
    };
    let carl = approver("carl").of_person("carl@example.com");
    let carl_alt = Actor::new("carl.alt", &[Role::Approver]).of_person("carl@example.com");
    store
        .apply_step_event(&run, "gate", &approve(carl), 2)
        .await
        .unwrap();
    let r = store
        .apply_step_event(&run, "gate", &approve(carl_alt), 3)
        .await;
    assert!(
        matches!(
            r,
            Err(EngineError::Refused(Refusal::AlreadyApproved { .. }))
        ),
        "{r:?}"
    );
    assert_eq!(
        store.step(&run, "gate").await.unwrap().status,
        StepStatus::AwaitingApproval
    );
    store
        .apply_step_event(&run, "gate", &approve(approver("abby")), 4)
        .await
        .unwrap();
    assert_eq!(
        store.step(&run, "gate").await.unwrap().status,
        StepStatus::Succeeded
    );
}

#[tokio::test]
async fn the_requesters_second_account_cannot_approve_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("p.db")).await.unwrap();
    let new = NewRun {
        change_ticket: "CHG-14".into(),
        window_start: None,
        window_end: None,
        plan: noop_plan(1, false, &[]),
    };
    let run = store.create_run(new, &olga(), 0).await.unwrap();
    store
        .apply_run_event(&run.id, &RunEvent::Submit { actor: olga() }, 0)
        .await
        .unwrap();
    let alt = Actor::new("o.smith", &[Role::Approver]).of_person("olga@example.com");
    let r = store
        .apply_run_event(
            &run.id,
            &RunEvent::ApproveStart {
                actor: alt,
                comment: "fine".into(),
            },
            1,
        )
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::FourEyes { .. }))),
        "{r:?}"
    );
    assert_eq!(
        store.run(&run.id).await.unwrap().status,
        RunStatus::AwaitingStartApproval
    );
}

#[test]
fn the_person_who_claimed_a_task_does_not_resolve_its_unknown_outcome_alone() {
    let ctx = StepCtx::for_step(&agent_step("t", None), "olga", "h".into());
    let state = StepState {
        status: StepStatus::OutcomeUnknown,
        attempt: 1,
        claimed_by: Some("dora".into()),
        ..StepState::default()
    };
    let done = |actor: Actor| StepEvent::MarkDone {
        actor,
        evidence: "seen on the host".into(),
    };
    let r = step::apply(&state, &ctx, &done(operator("dora")), 1);
    assert!(
        matches!(&r, Err(Refusal::PolicyViolation(v)) if v.control == Control::MarkDone),
        "{r:?}"
    );
    let r = step::apply(&state, &ctx, &done(operator("olga")), 1);
    assert!(
        matches!(&r, Err(Refusal::PolicyViolation(v)) if v.rule.contains("requester")),
        "{r:?}"
    );
    assert!(step::apply(&state, &ctx, &done(operator("pat")), 1).is_ok());
}

#[test]
fn a_justification_is_bounded() {
    let ctx = StepCtx::for_step(&agent_step("t", None), "olga", "h".into());
    let long = StepEvent::Skip {
        actor: approver("carl"),
        justification: "x".repeat(policy::MAX_JUSTIFICATION_CHARS + 1),
    };
    let r = step::apply(&StepState::default(), &ctx, &long, 1);
    assert!(matches!(r, Err(Refusal::PolicyViolation(_))), "{r:?}");
}

/// Two chained steps, the second stopping services: the window's end holds it (the end holds
/// only steps that stop services or start a phase; see tests/engine_gating.rs).
fn stop_after_first() -> Plan {
    let mut plan = noop_plan(2, true, &[]);
    plan.steps[1].operation = lockstep::knowledge::operation::Operation::ServicesStop {
        services: lockstep::knowledge::operation::ServiceSet::Connected,
    };
    plan
}

#[tokio::test]
async fn nothing_starts_before_the_window_opens_nor_after_it_ends_until_someone_else_extends_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("w.db")).await.unwrap();
    let new = NewRun {
        change_ticket: "CHG-14".into(),
        window_start: Some(10_000),
        window_end: Some(20_000),
        plan: stop_after_first(),
    };
    let run = store.create_run(new, &olga(), 0).await.unwrap().id;
    store
        .apply_run_event(&run, &RunEvent::Submit { actor: olga() }, 0)
        .await
        .unwrap();
    // The start may be approved before the window opens…
    let go = RunEvent::ApproveStart {
        actor: approver("carl"),
        comment: "go at ten".into(),
    };
    store.apply_run_event(&run, &go, 1_000).await.unwrap();
    // …but nothing is dispatched before it, and the driver is told when to wake.
    let (claimed, wake) = store
        .claim(&run, DriveLimits::default(), 5_000)
        .await
        .unwrap();
    assert!(claimed.is_empty());
    assert_eq!(wake, Some(10_000));
    let (claimed, _) = store
        .claim(&run, DriveLimits::default(), 10_000)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let finished = StepEvent::Finished {
        outcome: Outcome::Succeeded {
            evidence: serde_json::Value::Null,
        },
    };
    store
        .apply_step_event(&run, "s0000", &finished, 11_000)
        .await
        .unwrap();
    // The window has ended: the next step (it stops services) does not start. Its inputs are
    // done, so it is ready — held, not started.
    let (claimed, _) = store
        .claim(&run, DriveLimits::default(), 20_000)
        .await
        .unwrap();
    assert!(claimed.is_empty());
    assert_eq!(
        store.step(&run, "s0001").await.unwrap().status,
        StepStatus::Ready
    );
    let extend = |actor: Actor| RunEvent::ExtendWindow {
        actor,
        until: 30_000,
        reason: "Setup is slow; the CAB agreed".into(),
    };
    let r = store.apply_run_event(&run, &extend(olga()), 20_000).await;
    assert!(
        matches!(&r, Err(EngineError::Refused(Refusal::PolicyViolation(v))) if v.control == Control::ExtendWindow),
        "{r:?}"
    );
    store
        .apply_run_event(&run, &extend(approver("carl")), 20_000)
        .await
        .unwrap();
    let events = store.run_events(&run).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "run.extend_window" && e.actor == "carl"));
    let (claimed, _) = store
        .claim(&run, DriveLimits::default(), 20_001)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].step.id, "s0001");
}

#[test]
fn the_readme_shows_the_policy_table_as_the_code_has_it() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    assert!(
        readme.contains(&policy::markdown_table()),
        "README's policy table differs from engine::policy::POLICY; paste this:\n{}",
        policy::markdown_table()
    );
}

mod model {
    //! Model-based: random controls by random people (the requester, her second account, two
    //! accounts of one approver, an operator, a viewer) and driver ticks, against a real store.
    //! After every step: order holds, no accepted decision broke the policy table (including
    //! ask again at a denied gate, whose asker never approves it, and a denial that holds the run
    //! instead of failing it), nothing that stops services or starts the run was started after the
    //! window's end, a refusal wrote nothing and an accepted decision wrote its audit event; at
    //! the end the chain verifies.

    use super::*;
    use proptest::prelude::*;

    fn people() -> Vec<Actor> {
        vec![
            olga(),
            Actor::new("olga.alt", &[Role::Operator, Role::Approver]).of_person("olga@example.com"),
            approver("carl").of_person("carl@example.com"),
            Actor::new("carl.alt", &[Role::Approver]).of_person("carl@example.com"),
            operator("dora"),
            Actor::new("vic", &[]),
        ]
    }

    fn plan() -> Plan {
        let a = agent_step("a", Some("dc1"));
        let mut gate = agent_step("gate", Some("dc1"));
        gate.kind = StepKind::Approval;
        gate.gate = Some(GateSpec {
            role: Role::Approver,
            quorum: 2,
            expires_after_secs: None,
        });
        gate.depends_on = vec!["a".into()];
        // b stops services: after the window's end the driver must not start it.
        let mut b = agent_step("b", Some("dc2"));
        b.depends_on = vec!["gate".into()];
        b.operation = lockstep::knowledge::operation::Operation::ServicesStop {
            services: lockstep::knowledge::operation::ServiceSet::Connected,
        };
        let mut m = agent_step("m", None);
        m.kind = StepKind::Manual;
        m.depends_on = vec!["a".into()];
        let mut c = agent_step("c", Some("dc1"));
        c.depends_on = vec!["b".into(), "m".into()];
        plan_of(vec![a, gate, b, m, c])
    }

    const IDS: [&str; 5] = ["a", "gate", "b", "m", "c"];

    /// The model's run has a window ending partway through (ops are a second apart).
    const WINDOW_END: i64 = 25_010;

    async fn started_in_window(plan: Plan, end: i64) -> (tempfile::TempDir, Store, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.db")).await.unwrap();
        let new = NewRun {
            change_ticket: "CHG-14".into(),
            window_start: Some(0),
            window_end: Some(end),
            plan,
        };
        let run = store.create_run(new, &olga(), 0).await.unwrap();
        store
            .apply_run_event(&run.id, &RunEvent::Submit { actor: olga() }, 0)
            .await
            .unwrap();
        let go = RunEvent::ApproveStart {
            actor: approver("carl"),
            comment: "go".into(),
        };
        store.apply_run_event(&run.id, &go, 0).await.unwrap();
        (dir, store, run.id)
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A person's control on a step.
        Control(usize, usize, u8, bool),
        /// The driver: claim, then answer every dispatched step with this outcome.
        Tick(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0usize..5, 0usize..6, 0u8..9, any::<bool>())
                .prop_map(|(s, p, c, t)| Op::Control(s, p, c, t)),
            2 => (0u8..4).prop_map(Op::Tick),
        ]
    }

    fn event(control: u8, actor: Actor, text: bool, hash: &str) -> StepEvent {
        let text = if text {
            "because".to_string()
        } else {
            String::new()
        };
        match control {
            0 => StepEvent::Approve {
                actor,
                comment: text,
                content_hash: hash.into(),
            },
            1 => StepEvent::Reject {
                actor,
                comment: text,
            },
            2 => StepEvent::Skip {
                actor,
                justification: text,
            },
            3 => StepEvent::Retry { actor },
            4 => StepEvent::MarkDone {
                actor,
                evidence: text,
            },
            5 => StepEvent::MarkFailed {
                actor,
                reason: text,
            },
            6 => StepEvent::Claim { actor },
            7 => StepEvent::Complete { actor, note: text },
            _ => StepEvent::AskAgain { actor },
        }
    }

    async fn check_order(store: &Store, run: &str, plan: &Plan) {
        let steps = store.steps(run).await.unwrap();
        let status = |id: &str| steps.iter().find(|s| s.id == id).unwrap().status;
        for p in &plan.steps {
            let s = status(&p.id);
            if matches!(s, StepStatus::Pending | StepStatus::Cancelled) {
                continue;
            }
            for d in &p.depends_on {
                assert!(
                    status(d).is_done(),
                    "{} is {s} while its input {d} is {}",
                    p.id,
                    status(d)
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn random_controls_by_random_people_never_break_order_or_the_policy(
            ops in prop::collection::vec(op(), 1..40)
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let (_dir, store, run) = started_in_window(plan(), WINDOW_END).await;
                let plan = plan();
                let people = people();
                let mut now = 10;
                for op in ops {
                    now += 1_000;
                    match op {
                        Op::Tick(outcome) => {
                            store.claim(&run, DriveLimits::default(), now).await.unwrap();
                            for s in store.steps(&run).await.unwrap() {
                                if s.status == StepStatus::Dispatched {
                                    let outcome = match outcome {
                                        0 => Outcome::Failed { message: "no".into(), evidence: serde_json::Value::Null },
                                        1 => Outcome::Unknown { reason: "lost".into() },
                                        _ => Outcome::Succeeded { evidence: serde_json::Value::Null },
                                    };
                                    let _ = store.apply_step_event(&run, &s.id, &StepEvent::Finished { outcome }, now).await;
                                }
                            }
                            store.settle(&run, now).await.unwrap();
                        }
                        Op::Control(i, p, c, text) => {
                            let id = IDS[i];
                            let actor = people[p].clone();
                            let before = store.step(&run, id).await.unwrap();
                            let run_before = store.run(&run).await.unwrap().status;
                            let events_before = store.run_events(&run).await.unwrap().len();
                            let e = event(c, actor.clone(), text, &before.content_hash);
                            let name = e.name();
                            match store.apply_step_event(&run, id, &e, now).await {
                                Ok(_) => {
                                    // The policy table, checked by an oracle written apart
                                    // from the engine.
                                    let requester = actor.person() == "olga@example.com";
                                    if name == "approve" {
                                        assert_ne!(before.state.action_requester(), Some(actor.person()), "the person who asked again (or retried) approved");
                                    }
                                    if name == "ask_again" {
                                        assert!(before.state.denied_by.is_some(), "ask_again on a gate nobody denied");
                                    }
                                    if name == "reject" && run_before == RunStatus::Running {
                                        let r = store.run(&run).await.unwrap();
                                        assert_eq!(r.status, RunStatus::Paused, "a denial did not put the run on hold");
                                    }
                                    assert!(!actor.roles.is_empty(), "{} ({name}) has no role", actor.name);
                                    if matches!(name, "approve" | "reject" | "skip" | "mark_done") {
                                        assert!(!requester, "the requester's {name} on {id} was accepted");
                                    }
                                    if name == "skip" {
                                        assert_ne!(id, "gate", "a gate was skipped");
                                    }
                                    if matches!(name, "mark_done" | "mark_failed") {
                                        assert_ne!(before.state.claimer(), Some(actor.person()), "the claimer resolved alone");
                                    }
                                    let events = store.run_events(&run).await.unwrap();
                                    assert!(
                                        events[events_before..].iter().any(|ev| ev.kind == format!("step.{name}") && ev.actor == actor.name),
                                        "{name} on {id} has no audit event"
                                    );
                                }
                                Err(_) => {
                                    assert_eq!(store.step(&run, id).await.unwrap(), before, "a refused {name} changed {id}");
                                    assert_eq!(store.run_events(&run).await.unwrap().len(), events_before, "a refused {name} wrote an event");
                                }
                            }
                        }
                    }
                    check_order(&store, &run, &plan).await;
                    // The window: nothing that stops services or starts the run was started
                    // at or after its end.
                    for s in store.steps(&run).await.unwrap() {
                        if matches!(s.id.as_str(), "a" | "b") {
                            if let Some(at) = s.state.dispatched_at {
                                assert!(at < WINDOW_END, "{} started at {at}, after the window's end", s.id);
                            }
                        }
                    }
                    // A gate that let its step through had its quorum of distinct people.
                    let gate = store.step(&run, "gate").await.unwrap();
                    if gate.status == StepStatus::Succeeded {
                        let mut persons: Vec<&str> = gate.state.approvals.iter().map(|a| a.person()).collect();
                        persons.sort_unstable();
                        persons.dedup();
                        assert!(persons.len() >= 2, "gate passed with {persons:?}");
                        assert!(!persons.contains(&"olga@example.com"));
                    }
                }
                assert_eq!(store.verify_audit().await.unwrap().problem, None);
            });
        }
    }
}
