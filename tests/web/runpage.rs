//! The run page's timeline (planned vs actual, SVG) and its list of notification deliveries.

use std::sync::Arc;
use std::time::Duration;

use lockstep::engine::executor::{ActionStatus, Dispatch, Executor, IdempotencyKey, Outcome};
use lockstep::engine::machine::RunEvent;
use lockstep::engine::store::NewRun;
use lockstep::engine::{testkit, Actor};
use lockstep::knowledge::plan::{Plan, StepKind};
use lockstep::web::auth::Role;

use crate::app::{small_plan, spawn_app, spawn_app_with_executor, step, TestApp};

const HOSTILE: &str = "Wizard <script>alert(1)</script> \"q\" {{ x }}";

async fn run_of(app: &TestApp, plan: Plan) -> String {
    let olga = Actor::new("olga", &[Role::Viewer, Role::Operator]);
    let run = app
        .state
        .store
        .create_run(
            NewRun {
                change_ticket: "CHG-9".into(),
                window_start: None,
                window_end: None,
                plan,
            },
            &olga,
            app.clock.now_ms(),
        )
        .await
        .expect("run created");
    run.id
}

#[tokio::test]
async fn the_timeline_has_a_bar_pair_per_step_with_accessible_and_escaped_text() {
    let app = spawn_app().await;
    let olga = app.login_as("olga", Role::Operator).await;
    let mut plan = small_plan("DC1", "ok");
    plan.steps[1].title = HOSTILE.into();
    let run = run_of(&app, plan).await;
    let page = app
        .get(&olga, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    let svg_start = page.find("<svg").expect("an SVG timeline");
    let svg = &page[svg_start..page[svg_start..].find("</svg>").unwrap() + svg_start];
    assert!(svg.contains("role=\"img\""));
    assert!(svg.contains("aria-labelledby=\"timeline-title\""));
    // A chain: every step is on the critical path (marked on the group, not by its class).
    assert_eq!(
        svg.matches("<g class=\"bar waiting\" data-critical=\"true\">")
            .count(),
        3
    );
    assert_eq!(svg.matches("class=\"planned\"").count(), 3);
    // The Gantt adds the forecast of what is left to each bar's title.
    assert!(svg.contains(
        "Step gate: planned 2m 00s, actual not started, ends in 2m 00s (critical path)</title>"
    ));
    assert!(
        !page.contains("<script>alert"),
        "no markup from a step title"
    );
    assert!(svg
        .contains("Wizard &#60;script&#62;alert(1)&#60;/script&#62; &#34;q&#34; {{ x }}: planned"));
    // The same figures as a table.
    assert!(page.contains("<td>Step final</td><td>2m 00s</td><td>not started</td>"));
}

#[tokio::test]
async fn a_large_plan_is_drawn_per_phase() {
    let app = spawn_app().await;
    let olga = app.login_as("olga", Role::Operator).await;
    let run = run_of(&app, testkit::noop_plan(120, true, &["DC1", "DC2"])).await;
    let page = app
        .get(&olga, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Planned and actual duration of each phase"));
    let bars = page.matches("<g class=\"bar ").count();
    assert!((1..=20).contains(&bars), "{bars} phase bars");
}

struct Instant;

#[async_trait::async_trait]
impl Executor for Instant {
    async fn execute(&self, _d: &Dispatch) -> Outcome {
        Outcome::Succeeded {
            evidence: serde_json::json!({}),
        }
    }
    async fn status(&self, _key: &IdempotencyKey, _host: Option<&str>) -> ActionStatus {
        ActionStatus::NotFound
    }
}

#[tokio::test]
async fn finished_steps_show_their_actual_duration() {
    let app = spawn_app_with_executor(Arc::new(Instant)).await;
    let olga = app.login_as("olga", Role::Operator).await;
    app.add_user("alan", Role::Approver).await;
    let mut plan = small_plan("DC1", "ok");
    plan.steps = vec![
        step("one", StepKind::Agent, "DC1", &[], "first"),
        step("two", StepKind::Agent, "DC1", &["one"], "second"),
    ];
    let run = run_of(&app, plan).await;
    let store = &app.state.store;
    store
        .apply_run_event(
            &run,
            &RunEvent::Submit {
                actor: Actor::new("olga", &[Role::Viewer, Role::Operator]),
            },
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    store
        .apply_run_event(
            &run,
            &RunEvent::ApproveStart {
                actor: Actor::new("alan", &[Role::Viewer, Role::Operator, Role::Approver]),
                comment: "go".into(),
            },
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    app.state.wake();
    for _ in 0..200 {
        if store.run(&run).await.unwrap().status.is_terminal() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let page = app
        .get(&olga, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(page.matches("<g class=\"bar done\">").count(), 2, "{page}");
    assert!(page.contains("<td>Step two</td><td>2m 00s</td><td>0s</td>"));
}

#[tokio::test]
async fn each_notification_delivery_is_listed_with_attempts_status_and_next_retry() {
    let app = spawn_app().await;
    let olga = app.login_as("olga", Role::Operator).await;
    let run = run_of(&app, small_plan("DC1", "ok")).await;
    let none = app
        .get(&olga, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(none.contains("No notifications were sent for this run."));
    // What the notifier records (server/notify): one row per attempt.
    let at = 1_900_000_000_000i64;
    /// delivery, attempt, outcome, HTTP status, error, next retry
    type Attempt<'a> = (
        &'a str,
        i64,
        &'a str,
        Option<i64>,
        Option<&'a str>,
        Option<i64>,
    );
    let rows: [Attempt; 3] = [
        ("d1", 1, "failed", Some(503), Some("busy"), Some(at + 2_000)),
        ("d1", 2, "delivered", Some(200), None, None),
        (
            "d2",
            1,
            "failed",
            None,
            Some("<b>refused</b>"),
            Some(at + 60_000),
        ),
    ];
    for (id, attempt, outcome, status, error, retry_at) in rows {
        sqlx::query(
            "INSERT INTO notification_attempts (delivery_id, run_id, step_id, audit_event_id, \
             notification, target, attempt, at, outcome, http_status, error, retry_at) \
             VALUES (?, ?, 'gate', 1, 'gate_waiting', ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(&run)
        .bind(if id == "d1" {
            "https://hooks.example"
        } else {
            "smtp://mail.example"
        })
        .bind(attempt)
        .bind(at + attempt * 1000)
        .bind(outcome)
        .bind(status)
        .bind(error)
        .bind(retry_at)
        .execute(&app.state.pool)
        .await
        .unwrap();
    }
    let page = app
        .get(&olga, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(page.matches("<tr class=\"delivery ").count(), 2);
    assert!(page.contains("<tr class=\"delivery delivered\"><td>https://hooks.example</td><td>gate_waiting</td><td>gate</td><td>2</td>"));
    assert!(page.contains("<tr class=\"delivery failed\"><td>smtp://mail.example</td><td>gate_waiting</td><td>gate</td><td>1</td>"));
    assert!(page.contains("&#60;b&#62;refused&#60;/b&#62;"));
    assert!(
        page.contains("<td>2030-03-17 17:46:41Z</td><td>2030-03-17 17:47:40Z</td></tr>"),
        "{}",
        &page[page.find("id=\"deliveries\"").unwrap()..]
    );
}

struct Failing;

#[async_trait::async_trait]
impl Executor for Failing {
    async fn execute(&self, _d: &Dispatch) -> Outcome {
        Outcome::Failed {
            message: "Setup stopped half-way".into(),
            evidence: serde_json::json!({}),
        }
    }
    async fn status(&self, _key: &IdempotencyKey, _host: Option<&str>) -> ActionStatus {
        ActionStatus::NotFound
    }
}

#[tokio::test]
async fn a_failed_upgrade_offers_the_recovery_run_prefilled_with_its_id() {
    let app = spawn_app_with_executor(Arc::new(Failing)).await;
    let olga = app.login_as("olga", Role::Operator).await;
    app.add_user("alan", Role::Approver).await;
    let mut plan = small_plan("DC1", "ok");
    plan.runbook = "upgrade-8.11".into();
    plan.steps = vec![step("one", StepKind::Agent, "DC1", &[], "first")];
    let run = run_of(&app, plan).await;
    let store = &app.state.store;
    let page = app
        .get(&olga, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("recover-failed-upgrade"),
        "offered before the run failed"
    );
    for event in [
        RunEvent::Submit {
            actor: Actor::new("olga", &[Role::Viewer, Role::Operator]),
        },
        RunEvent::ApproveStart {
            actor: Actor::new("alan", &[Role::Viewer, Role::Operator, Role::Approver]),
            comment: "go".into(),
        },
    ] {
        store
            .apply_run_event(&run, &event, app.clock.now_ms())
            .await
            .unwrap();
    }
    app.state.wake();
    for _ in 0..200 {
        if store.run(&run).await.unwrap().status == lockstep::engine::machine::RunStatus::Failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let page = app
        .get(&olga, &format!("/runs/{run}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<form method=\"get\" action=\"/runs/new\""),
        "{page}"
    );
    assert!(
        page.contains("name=\"runbook\" value=\"recover-failed-upgrade\""),
        "{page}"
    );
    assert!(
        page.contains(&format!("name=\"param.failed-run\" value=\"{run}\"")),
        "{page}"
    );
}
