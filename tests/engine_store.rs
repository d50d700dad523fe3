//! The store end to end on a real SQLite file: runs are created, move through their states with
//! audit events, refuse what the machine refuses, and leave a chain that verifies.

use lockstep::engine::machine::{RunEvent, RunStatus, StepEvent, StepStatus};
use lockstep::engine::store::NewRun;
use lockstep::engine::testkit::{approver, noop_plan, operator};
use lockstep::engine::{EngineError, Refusal, Store};
use lockstep::knowledge::role::Role;

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
    let olga_as_approver = lockstep::engine::Actor::new("olga", &[Role::Approver, Role::Operator]);
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

mod persisted_states_are_reachable {
    //! Property: random person and driver events against a real database. A refused event writes
    //! nothing; every stored step state is exactly what the pure machine gives when the step's
    //! logged events are replayed from the start.

    use lockstep::engine::executor::{ActionStatus, Outcome};
    use lockstep::engine::machine::{step, Actor, RunEvent, StepCtx, StepEvent, StepState};
    use lockstep::engine::store::NewRun;
    use lockstep::engine::testkit::{agent_step, approver, operator, plan_of};
    use lockstep::engine::Store;
    use lockstep::knowledge::operation::Operation;
    use lockstep::knowledge::plan::{GateSpec, RetryPolicy, StepKind};
    use lockstep::knowledge::role::Role;
    use proptest::prelude::*;

    const CURRENT: &str = "<current content hash>";

    fn event() -> impl Strategy<Value = StepEvent> {
        let who = prop::sample::select(vec!["olga", "carl", "dora"]);
        let actor = who.prop_map(|n| Actor::new(n, &[Role::Operator, Role::Approver]));
        let text = prop::sample::select(vec!["", "because"]).prop_map(str::to_string);
        let outcome = prop_oneof![
            Just(Outcome::Succeeded {
                evidence: serde_json::json!({"ok": 1})
            }),
            Just(Outcome::Failed {
                message: "no".into(),
                evidence: serde_json::Value::Null
            }),
            Just(Outcome::Unknown {
                reason: "lost".into()
            }),
        ];
        prop_oneof![
            Just(StepEvent::Unblock),
            Just(StepEvent::Start),
            (
                actor.clone(),
                text.clone(),
                prop::sample::select(vec![CURRENT, "stale"])
            )
                .prop_map(|(actor, comment, h)| StepEvent::Approve {
                    actor,
                    comment,
                    content_hash: h.into()
                }),
            Just(StepEvent::Lapse),
            actor
                .clone()
                .prop_map(|actor| StepEvent::ReopenGate { actor }),
            actor.clone().prop_map(|actor| StepEvent::Claim { actor }),
            (actor.clone(), text.clone())
                .prop_map(|(actor, note)| StepEvent::Complete { actor, note }),
            outcome
                .clone()
                .prop_map(|outcome| StepEvent::Finished { outcome }),
            any::<bool>().prop_map(|ok| StepEvent::Verified {
                ok,
                evidence: serde_json::Value::Null
            }),
            prop_oneof![
                Just(ActionStatus::NotFound),
                outcome.prop_map(|outcome| ActionStatus::Finished { outcome })
            ]
            .prop_map(|status| StepEvent::Reconciled { status }),
            actor.clone().prop_map(|actor| StepEvent::Retry { actor }),
            (actor.clone(), text.clone()).prop_map(|(actor, justification)| StepEvent::Skip {
                actor,
                justification
            }),
            (actor, text).prop_map(|(actor, evidence)| StepEvent::MarkDone { actor, evidence }),
            Just(StepEvent::Cancel),
            any::<bool>().prop_map(|cancelled| StepEvent::CancelAnswered { cancelled }),
        ]
    }

    fn plan() -> lockstep::knowledge::plan::Plan {
        let mut gated = agent_step("gated", Some("dc1"));
        gated.gate = Some(GateSpec {
            role: Role::Approver,
            quorum: 2,
            expires_after_secs: Some(30),
        });
        gated.postcondition = Some(Operation::EventLogClean);
        gated.retry = RetryPolicy {
            max_attempts: 2,
            initial_backoff_secs: 1,
            max_backoff_secs: 1,
        };
        let mut manual = agent_step("manual", Some("dc2"));
        manual.kind = StepKind::Manual;
        manual.postcondition = Some(Operation::EventLogClean);
        let plain = agent_step("plain", None);
        plan_of(vec![gated, manual, plain])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        #[test]
        fn every_stored_step_state_is_the_replay_of_its_accepted_events(
            ops in prop::collection::vec((0usize..3, event(), 0i64..20_000), 1..30)
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(&dir.path().join("p.db")).await.unwrap();
                let new = NewRun { change_ticket: "CHG".into(), window_start: None, window_end: None, plan: plan() };
                let run = store.create_run(new, &operator("olga"), 0).await.unwrap();
                store.apply_run_event(&run.id, &RunEvent::Submit { actor: operator("olga") }, 0).await.unwrap();
                let go = RunEvent::ApproveStart { actor: approver("carl"), comment: "go".into() };
                store.apply_run_event(&run.id, &go, 0).await.unwrap();
                let ids = ["gated", "manual", "plain"];
                let mut now = 0;
                let mut accepted = 0;
                for (i, mut event, dt) in ops {
                    now += dt;
                    let before = store.step(&run.id, ids[i]).await.unwrap();
                    if let StepEvent::Approve { content_hash, .. } = &mut event {
                        if content_hash == CURRENT {
                            *content_hash = before.content_hash.clone();
                        }
                    }
                    match store.apply_step_event(&run.id, ids[i], &event, now).await {
                        Ok(_) => accepted += 1,
                        Err(_) => assert_eq!(store.step(&run.id, ids[i]).await.unwrap(), before, "a refused event changed the step"),
                    }
                }
                let events = store.run_events(&run.id).await.unwrap();
                let step_events: Vec<_> = events.iter().filter(|e| e.kind.is_step()).collect();
                assert_eq!(step_events.len(), accepted, "one event per accepted transition, none for refusals");
                for id in ids {
                    let stored = store.step(&run.id, id).await.unwrap();
                    let ctx = StepCtx::for_step(&stored.spec, "olga", stored.content_hash.clone());
                    let mut state = StepState::default();
                    for e in step_events.iter().filter(|e| e.step_id.as_deref() == Some(id)) {
                        let logged: StepEvent = serde_json::from_value(e.payload["event"].clone()).unwrap();
                        state = step::apply(&state, &ctx, &logged, e.at).expect("a logged event replays").0;
                    }
                    assert_eq!(state, stored.state, "step {id}");
                }
                assert_eq!(store.verify_audit().await.unwrap().problem, None);
            });
        }
    }
}

#[tokio::test]
async fn live_events_arrive_in_id_order_and_replay_from_the_table_after_any_id() {
    let (_dir, store) = fresh().await;
    let mut live = store.subscribe();
    let run = store
        .create_run(new_run(2), &operator("olga"), 1)
        .await
        .unwrap();
    store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit {
                actor: operator("olga"),
            },
            2,
        )
        .await
        .unwrap();
    store
        .comment(
            &run.id,
            Some("s0001"),
            &operator("olga"),
            "ready when you are",
            3,
        )
        .await
        .unwrap();
    let mut received = Vec::new();
    while let Ok(e) = live.try_recv() {
        received.push(e);
    }
    let ids: Vec<i64> = received.iter().map(|e| e.id).collect();
    assert_eq!(ids, [1, 2, 3]);
    // A client that saw event 1 (Last-Event-ID: 1) gets exactly what it missed.
    assert_eq!(
        store.events_after(1, Some(&run.id), 100).await.unwrap(),
        received[1..]
    );
    assert_eq!(store.events_after(3, None, 100).await.unwrap(), []);
    assert_eq!(received[2].step_id.as_deref(), Some("s0001"));
    let blank = store
        .comment(&run.id, None, &operator("olga"), "  ", 4)
        .await;
    assert!(matches!(
        blank,
        Err(EngineError::Refused(Refusal::CommentRequired))
    ));
}

#[tokio::test]
async fn a_database_in_a_folder_that_does_not_exist_yet_is_created_with_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("fresh-data")
        .join("nested")
        .join("lockstep.db");
    let store = Store::open(&path).await.expect("opens in a new folder");
    assert!(path.exists(), "database file created at {}", path.display());
    assert!(store.verify_audit().await.is_ok());
}
