//! Issue 14, items 4 and 5, through the store on a real SQLite file: preflight gates the start
//! (run again on submit and on approve start, an error blocks until an approver other than the
//! requester overrides that finding) and the change window (scheduled before it opens, held at
//! its end only before a step that stops services or starts a phase, a forecast warning recorded
//! once).

use lockstep::engine::executor::Outcome;
use lockstep::engine::machine::{gating, Actor, RunEvent, RunStatus, StepEvent, StepStatus};
use lockstep::engine::policy::{self, Control};
use lockstep::engine::store::{DriveLimits, NewRun};
use lockstep::engine::testkit::{agent_step, approver, noop_plan, plan_of};
use lockstep::engine::{EngineError, Refusal, Store};
use lockstep::knowledge::operation::{Operation, ServiceSet};
use lockstep::knowledge::plan::Plan;
use lockstep::knowledge::role::Role;

const INVENTORY: &str = include_str!("../examples/standalone.toml");
const DC: &str = "Fabrikam backup (stand-alone)";
/// The key of the error a self-signed Management API certificate raises.
const BAD_CERT: &str = "management-api-certificate@FABAPI01";

fn olga() -> Actor {
    Actor::new("olga", &[Role::Operator, Role::Approver]).of_person("olga@example.com")
}

fn olga_alt() -> Actor {
    Actor::new("olga.alt", &[Role::Approver]).of_person("olga@example.com")
}

/// The stand-alone example with the Management API's certificate self-signed: an error.
fn bad_inventory() -> String {
    let api = INVENTORY.find("name = \"FABAPI01\"").unwrap();
    let at = api + INVENTORY[api..].find("issuer = \"trusted-ca\"").unwrap();
    format!(
        "{}issuer = \"self-signed\"{}",
        &INVENTORY[..at],
        &INVENTORY[at + "issuer = \"trusted-ca\"".len()..]
    )
}

struct Site {
    _dir: tempfile::TempDir,
    store: Store,
    pool: sqlx::SqlitePool,
}

async fn site(inventory: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let store = Store::open(&db).await.unwrap();
    let pool = store.writer().clone();
    let site = Site {
        _dir: dir,
        store,
        pool,
    };
    site.upload(inventory).await;
    site
}

impl Site {
    async fn upload(&self, toml: &str) {
        lockstep::web::datacenters::save(&self.pool, toml, "dora", 0)
            .await
            .unwrap()
            .unwrap();
    }

    /// A run of upgrade-8.11 on the stored Data Center, created and submitted by Olga.
    async fn submitted(&self, window: (Option<i64>, Option<i64>), mut plan: Plan) -> String {
        plan.runbook = "upgrade-8.11".into();
        plan.inventory = DC.into();
        let new = NewRun {
            change_ticket: "CHG-14".into(),
            window_start: window.0,
            window_end: window.1,
            plan,
        };
        let run = self.store.create_run(new, &olga(), 0).await.unwrap();
        self.store
            .apply_run_event(&run.id, &RunEvent::Submit { actor: olga() }, 0)
            .await
            .unwrap();
        run.id
    }

    async fn approve_start(&self, run: &str, actor: Actor, now: i64) -> Result<(), EngineError> {
        let go = RunEvent::ApproveStart {
            actor,
            comment: "CAB agreed".into(),
        };
        self.store.apply_run_event(run, &go, now).await.map(|_| ())
    }

    async fn override_finding(
        &self,
        run: &str,
        actor: Actor,
        finding: &str,
        why: &str,
    ) -> Result<(), EngineError> {
        let e = RunEvent::OverrideFinding {
            actor,
            finding: finding.into(),
            justification: why.into(),
        };
        self.store.apply_run_event(run, &e, 10).await.map(|_| ())
    }

    async fn kinds(&self, run: &str) -> Vec<(String, String)> {
        self.store
            .run_events(run)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.kind.to_string(), e.actor))
            .collect()
    }
}

#[tokio::test]
async fn an_error_blocks_the_start_until_an_approver_other_than_the_requester_overrides_it() {
    let site = site(&bad_inventory()).await;
    let run = site.submitted((None, None), noop_plan(1, false, &[])).await;
    // Submitting ran preflight and kept its findings with the run.
    let state = site.store.run(&run).await.unwrap().state;
    let blocking: Vec<&str> = gating::blocking(&state)
        .iter()
        .map(|f| f.key.as_str())
        .collect();
    assert_eq!(blocking, [BAD_CERT]);
    assert!(site
        .kinds(&run)
        .await
        .contains(&("run.preflight".into(), "lockstep".into())));

    // The error blocks the start, named in the refusal.
    let r = site.approve_start(&run, approver("carl"), 1).await;
    assert!(
        matches!(&r, Err(EngineError::Refused(Refusal::PreflightBlocks { findings })) if findings.len() == 1 && findings[0].contains(BAD_CERT) && findings[0].contains("self-signed")),
        "{r:?}"
    );
    assert_eq!(
        site.store.run(&run).await.unwrap().status,
        RunStatus::AwaitingStartApproval
    );

    // The requester cannot override it, with either of her accounts.
    for who in [olga(), olga_alt()] {
        let before = site.kinds(&run).await.len();
        let r = site
            .override_finding(&run, who, BAD_CERT, "we accept it")
            .await;
        assert!(
            matches!(&r, Err(EngineError::Refused(Refusal::PolicyViolation(v))) if v.control == Control::OverrideFinding),
            "{r:?}"
        );
        assert_eq!(site.kinds(&run).await.len(), before, "a refusal wrote");
    }
    // Not without a justification, nor with an endless one, nor for a finding not on the run.
    let r = site
        .override_finding(&run, approver("carl"), BAD_CERT, "  ")
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::JustificationRequired))),
        "{r:?}"
    );
    let long = "x".repeat(policy::MAX_JUSTIFICATION_CHARS + 1);
    let r = site
        .override_finding(&run, approver("carl"), BAD_CERT, &long)
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::PolicyViolation(_)))),
        "{r:?}"
    );
    let r = site
        .override_finding(&run, approver("carl"), "no-such-rule@X", "fine")
        .await;
    assert!(
        matches!(&r, Err(EngineError::Refused(Refusal::NotOverridable { finding, .. })) if finding == "no-such-rule@X"),
        "{r:?}"
    );

    // Another approver overrides THAT finding: an audit event with the justification.
    site.override_finding(
        &run,
        approver("carl"),
        BAD_CERT,
        "the CA signs it on Monday; the API is not used before",
    )
    .await
    .unwrap();
    let events = site.store.run_events(&run).await.unwrap();
    let o = events
        .iter()
        .find(|e| e.kind == "run.override_finding")
        .expect("an override event");
    assert_eq!(o.actor, "carl");
    assert_eq!(o.payload["event"]["finding"], BAD_CERT);
    assert_eq!(
        o.payload["event"]["justification"],
        "the CA signs it on Monday; the API is not used before"
    );
    // Once is enough: a second override of the same finding is refused.
    let r = site
        .override_finding(&run, approver("abby"), BAD_CERT, "again")
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::NotOverridable { .. }))),
        "{r:?}"
    );

    // Now the start goes (preflight ran again and still finds the error, overridden).
    site.approve_start(&run, approver("carl"), 20)
        .await
        .unwrap();
    let run_now = site.store.run(&run).await.unwrap();
    assert_eq!(run_now.status, RunStatus::Running);
    assert_eq!(run_now.state.preflight.as_ref().unwrap().checked_at, 20);
    assert_eq!(run_now.state.overrides.len(), 1);
    assert_eq!(site.store.verify_audit().await.unwrap().problem, None);
}

#[tokio::test]
async fn preflight_runs_again_at_approval_so_a_fix_unblocks_and_a_new_error_blocks() {
    // Fixed after submit: the approval's preflight finds nothing and the start goes.
    let site = site(&bad_inventory()).await;
    let run = site.submitted((None, None), noop_plan(1, false, &[])).await;
    site.upload(INVENTORY).await;
    site.approve_start(&run, approver("carl"), 5).await.unwrap();
    let state = site.store.run(&run).await.unwrap().state;
    assert!(gating::blocking(&state).is_empty());
    assert!(state.overrides.is_empty());

    // Broken after submit: the approval's preflight finds the error, refuses the start, and
    // keeps the findings it refused with so the approver sees (and may override) exactly those.
    let site = site_clean().await;
    let run = site.submitted((None, None), noop_plan(1, false, &[])).await;
    assert!(gating::blocking(&site.store.run(&run).await.unwrap().state).is_empty());
    site.upload(&bad_inventory()).await;
    let r = site.approve_start(&run, approver("carl"), 5).await;
    assert!(
        matches!(
            r,
            Err(EngineError::Refused(Refusal::PreflightBlocks { .. }))
        ),
        "{r:?}"
    );
    let run_now = site.store.run(&run).await.unwrap();
    assert_eq!(run_now.status, RunStatus::AwaitingStartApproval);
    assert_eq!(run_now.state.preflight.as_ref().unwrap().checked_at, 5);
    assert_eq!(gating::blocking(&run_now.state).len(), 1);
}

async fn site_clean() -> Site {
    site(INVENTORY).await
}

#[tokio::test]
async fn a_refusal_for_another_reason_runs_no_preflight_and_changes_nothing() {
    let site = site(&bad_inventory()).await;
    let run = site.submitted((None, None), noop_plan(1, false, &[])).await;
    let before = site.kinds(&run).await.len();
    // The requester's own approval: four-eyes, before preflight is even asked.
    let r = site.approve_start(&run, olga_alt(), 5).await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::FourEyes { .. }))),
        "{r:?}"
    );
    assert_eq!(site.kinds(&run).await.len(), before);
}

fn finished() -> StepEvent {
    StepEvent::Finished {
        outcome: Outcome::Succeeded {
            evidence: serde_json::Value::Null,
        },
    }
}

/// a → (verify, stop) in phase "Data Center"; next-phase depends on verify and starts a phase.
fn window_plan() -> Plan {
    let mut a = agent_step("a", Some("dc1"));
    a.phase = "Data Center".into();
    let mut verify = agent_step("verify", Some("dc2"));
    verify.phase = "Data Center".into();
    verify.depends_on = vec!["a".into()];
    verify.operation = Operation::ProductVersion {
        expect: "8.11".into(),
        component: None,
    };
    let mut stop = agent_step("stop", Some("dc3"));
    stop.phase = "Data Center".into();
    stop.depends_on = vec!["a".into()];
    stop.operation = Operation::ServicesStop {
        services: ServiceSet::Connected,
    };
    let mut web = agent_step("web", Some("dc4"));
    web.phase = "Web Services".into();
    web.depends_on = vec!["verify".into()];
    plan_of(vec![a, verify, stop, web])
}

#[tokio::test]
async fn a_run_approved_before_its_window_is_scheduled_and_dispatches_nothing_until_it_opens() {
    let site = site_clean().await;
    let run = site
        .submitted((Some(10_000), Some(100_000)), window_plan())
        .await;
    site.approve_start(&run, approver("carl"), 1_000)
        .await
        .unwrap();
    let r = site.store.run(&run).await.unwrap();
    assert_eq!(r.status, RunStatus::Running);
    assert!(gating::scheduled(r.status, r.window_start, 9_999));
    assert_eq!(
        lockstep::web::words::run_status_at(r.status, r.window_start, 9_999).0,
        "scheduled"
    );
    let (claimed, wake) = site
        .store
        .claim(&run, DriveLimits::default(), 9_999)
        .await
        .unwrap();
    assert!(claimed.is_empty());
    assert_eq!(wake, Some(10_000));
    assert!(site
        .store
        .steps(&run)
        .await
        .unwrap()
        .iter()
        .all(|s| s.status == StepStatus::Pending));
    let (claimed, _) = site
        .store
        .claim(&run, DriveLimits::default(), 10_000)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(!gating::scheduled(r.status, r.window_start, 10_000));
}

#[tokio::test]
async fn at_the_windows_end_the_run_holds_only_before_steps_that_stop_services_or_start_a_phase() {
    let site = site_clean().await;
    let run = site.submitted((Some(0), Some(20_000)), window_plan()).await;
    site.approve_start(&run, approver("carl"), 1).await.unwrap();
    let limits = DriveLimits {
        per_run: 4,
        per_host: 1,
    };
    let (claimed, _) = site.store.claim(&run, limits, 1_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // `a` finishes after the end: verify may still start, stop may not.
    site.store
        .apply_step_event(&run, "a", &finished(), 20_500)
        .await
        .unwrap();
    let (claimed, _) = site.store.claim(&run, limits, 21_000).await.unwrap();
    let ids: Vec<&str> = claimed.iter().map(|c| c.step.id.as_str()).collect();
    assert_eq!(ids, ["verify"]);
    site.store
        .apply_step_event(&run, "verify", &finished(), 22_000)
        .await
        .unwrap();
    // Nor may the next phase start; claiming again records the hold only once.
    for now in [23_000, 24_000] {
        let (claimed, _) = site.store.claim(&run, limits, now).await.unwrap();
        assert!(claimed.is_empty(), "{claimed:?}");
    }
    let status = |id: &str| {
        let store = site.store.clone();
        let run = run.clone();
        let id = id.to_string();
        async move { store.step(&run, &id).await.unwrap().status }
    };
    assert_eq!(status("stop").await, StepStatus::Ready);
    assert_eq!(status("web").await, StepStatus::Ready);
    let holds: Vec<_> = site
        .kinds(&run)
        .await
        .into_iter()
        .filter(|(k, _)| k == "run.window_hold")
        .collect();
    assert_eq!(holds.len(), 1);
    let held = site
        .store
        .run(&run)
        .await
        .unwrap()
        .state
        .window_held
        .unwrap();
    assert_eq!(held.end, 20_000);
    // The run did not fail: it waits.
    site.store.settle(&run, 24_500).await.unwrap();
    assert_eq!(
        site.store.run(&run).await.unwrap().status,
        RunStatus::Running
    );
    // The requester cannot extend; another approver can, and both steps start.
    let extend = |actor: Actor| RunEvent::ExtendWindow {
        actor,
        until: 60_000,
        reason: "Setup is slow; the CAB agreed".into(),
    };
    assert!(site
        .store
        .apply_run_event(&run, &extend(olga()), 25_000)
        .await
        .is_err());
    site.store
        .apply_run_event(&run, &extend(approver("carl")), 25_000)
        .await
        .unwrap();
    let (claimed, _) = site.store.claim(&run, limits, 25_001).await.unwrap();
    let mut ids: Vec<&str> = claimed.iter().map(|c| c.step.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["stop", "web"]);
}

#[tokio::test]
async fn a_forecast_past_the_windows_end_is_recorded_once_per_end() {
    let site = site_clean().await;
    // Its longest chain (a, verify, web) is 3 s: a window of 2 s from the start cannot hold it.
    let run = site.submitted((Some(0), Some(2_000)), window_plan()).await;
    site.approve_start(&run, approver("carl"), 1).await.unwrap();
    assert!(site.store.watch_window(&run, 10).await.unwrap());
    assert!(!site.store.watch_window(&run, 20).await.unwrap());
    let warnings = site
        .kinds(&run)
        .await
        .into_iter()
        .filter(|(k, _)| k == "run.window_warning")
        .count();
    assert_eq!(warnings, 1);
    // An extension long enough: no new warning; one too short: warned again, once.
    let extend = |until| RunEvent::ExtendWindow {
        actor: approver("carl"),
        until,
        reason: "agreed".into(),
    };
    site.store
        .apply_run_event(&run, &extend(3_600_000), 30)
        .await
        .unwrap();
    assert!(!site.store.watch_window(&run, 40).await.unwrap());
    site.store
        .apply_run_event(&run, &extend(2_500), 50)
        .await
        .unwrap();
    assert!(site.store.watch_window(&run, 60).await.unwrap());
    assert!(!site.store.watch_window(&run, 70).await.unwrap());
    // A run that fits its window is never warned.
    let fits = site
        .submitted((Some(0), Some(3_600_000)), window_plan())
        .await;
    site.approve_start(&fits, approver("carl"), 1)
        .await
        .unwrap();
    assert!(!site.store.watch_window(&fits, 10).await.unwrap());
}

/// A gate, then a step after it.
fn gate_plan() -> Plan {
    let mut gate = agent_step("gate", Some("dc1"));
    gate.kind = lockstep::knowledge::plan::StepKind::Approval;
    gate.operation = Operation::None;
    let mut after = agent_step("after", Some("dc1"));
    after.depends_on = vec!["gate".into()];
    plan_of(vec![gate, after])
}

/// A running run (no stored Data Center: no preflight) waiting at its gate, denied by Carl.
async fn denied() -> (tempfile::TempDir, Store, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("h.db")).await.unwrap();
    let new = NewRun {
        change_ticket: "CHG-14-3".into(),
        window_start: None,
        window_end: None,
        plan: gate_plan(),
    };
    let run = store.create_run(new, &olga(), 0).await.unwrap().id;
    store
        .apply_run_event(&run, &RunEvent::Submit { actor: olga() }, 0)
        .await
        .unwrap();
    let go = RunEvent::ApproveStart {
        actor: approver("carl"),
        comment: "go".into(),
    };
    store.apply_run_event(&run, &go, 1).await.unwrap();
    store.claim(&run, DriveLimits::default(), 2).await.unwrap();
    let deny = StepEvent::Reject {
        actor: approver("carl"),
        comment: "not with the backup still running".into(),
    };
    store
        .apply_step_event(&run, "gate", &deny, 3)
        .await
        .unwrap();
    (dir, store, run)
}

#[tokio::test]
async fn a_denied_gate_puts_the_run_on_hold_and_asking_again_reopens_it_for_someone_else() {
    let (_dir, store, run) = denied().await;
    let r = store.run(&run).await.unwrap();
    assert_eq!(r.status, RunStatus::Paused, "on hold, not failed");
    assert_eq!(r.state.on_hold.as_deref(), Some("gate"));
    assert!(r
        .state
        .reason
        .unwrap()
        .contains("not with the backup still running"));
    assert!(store
        .run_events(&run)
        .await
        .unwrap()
        .iter()
        .any(|e| e.kind == "run.hold"));
    // Resume is not one of the choices.
    let r = store
        .apply_run_event(
            &run,
            &RunEvent::Resume {
                actor: Actor::new("dora", &[Role::Operator]),
            },
            4,
        )
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::NotAllowed { .. }))),
        "{r:?}"
    );
    // Asking again needs the operator role, and applies to a denied gate only.
    let ask = |actor: Actor| StepEvent::AskAgain { actor };
    let r = store
        .apply_step_event(&run, "gate", &ask(Actor::new("vic", &[Role::Viewer])), 5)
        .await;
    assert!(
        matches!(r, Err(EngineError::Refused(Refusal::MissingRole { .. }))),
        "{r:?}"
    );
    // Dora asks again: the gate opens for a new decision and the run goes on.
    let dora = Actor::new("dora", &[Role::Operator, Role::Approver]);
    store
        .apply_step_event(&run, "gate", &ask(dora.clone()), 6)
        .await
        .unwrap();
    let gate = store.step(&run, "gate").await.unwrap();
    assert_eq!(gate.status, StepStatus::AwaitingApproval);
    assert!(gate.state.approvals.is_empty());
    let r = store.run(&run).await.unwrap();
    assert_eq!(r.status, RunStatus::Running);
    assert_eq!(r.state.on_hold, None);
    let r = store
        .apply_step_event(&run, "gate", &ask(dora.clone()), 7)
        .await;
    assert!(r.is_err(), "asking again at an open gate: {r:?}");
    // Neither the asker nor the requester decides it; another approver does.
    let approve = |actor: Actor| StepEvent::Approve {
        actor,
        comment: "backup finished".into(),
        content_hash: gate.content_hash.clone(),
    };
    for who in [dora, olga()] {
        let r = store.apply_step_event(&run, "gate", &approve(who), 8).await;
        assert!(
            matches!(r, Err(EngineError::Refused(Refusal::FourEyes { .. }))),
            "{r:?}"
        );
    }
    store
        .apply_step_event(&run, "gate", &approve(approver("carl")), 9)
        .await
        .unwrap();
    assert_eq!(
        store.step(&run, "gate").await.unwrap().status,
        StepStatus::Succeeded
    );
    assert_eq!(store.verify_audit().await.unwrap().problem, None);
}

#[tokio::test]
async fn a_run_on_hold_may_be_aborted_or_undone_by_an_operator() {
    let (_dir, store, run) = denied().await;
    let abort = RunEvent::Abort {
        actor: olga(),
        reason: "the change board said no".into(),
    };
    store.apply_run_event(&run, &abort, 4).await.unwrap();
    assert_eq!(store.run(&run).await.unwrap().status, RunStatus::Aborted);

    let (_dir, store, run) = denied().await;
    let undo = RunEvent::Undo {
        actor: olga(),
        reason: "back out".into(),
    };
    store.apply_run_event(&run, &undo, 4).await.unwrap();
    let r = store.run(&run).await.unwrap();
    assert_eq!(r.status, RunStatus::Undoing);
    assert_eq!(r.state.on_hold, None);
}
