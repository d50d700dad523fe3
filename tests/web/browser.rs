//! In headless Chromium: two people in two browsers on the same run. Screenshots go to
//! `test-artifacts/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lockstep::engine::machine::{RunEvent, StepStatus};
use lockstep::engine::Actor;
use lockstep::web::auth::Role;

use crate::app::{spawn_app_with_driver, TestApp, PASSWORD};
use crate::webdriver::{Browser, Driver};

pub fn artifact(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("test-artifacts")
        .join(name)
}

pub async fn log_in(app: &TestApp, b: &Browser, name: &str) {
    b.goto(&app.url("/login")).await;
    b.type_into("input[name=name]", name).await;
    b.type_into("input[name=password]", PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait_for("header.top .who", 5).await;
}

/// Waits until the page says the live stream is connected.
pub async fn wait_live(b: &Browser) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.text("#live-state").await != "live" {
        assert!(Instant::now() < deadline, "the live stream never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `css`'s text until it contains `want` and returns how long that took. Live updates
/// replace elements (out-of-band swaps), so `css` is looked up afresh each time; the `#live`
/// container is found once and must stay attached, which a page reload would break.
async fn updates_without_reload(b: &Browser, css: &str, want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    let anchor = b.find("#live").await.expect("the live region");
    loop {
        let text = match b.find(css).await {
            Ok(el) => b.text_of(&el).await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(want) {
            assert!(b.text_of(&anchor).await.is_ok(), "the page was reloaded");
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "`{css}` did not show `{want}` within {limit:?}; it shows `{text}`"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_in_one_browser_updates_the_other_within_two_seconds() {
    let app = spawn_app_with_driver().await;
    app.add_user("olga", Role::Operator).await;
    app.add_user("alan", Role::Approver).await;
    lockstep::web::datacenters::save(
        &app.state.pool,
        include_str!("../../examples/standalone.toml"),
        "olga",
        app.clock.now(),
    )
    .await
    .unwrap()
    .unwrap();
    let driver = Driver::start().await;
    let a = driver.browser().await;
    let b = driver.browser().await;

    // Olga creates a run through the New run page.
    log_in(&app, &a, "olga").await;
    a.goto(&app.url("/runs/new")).await;
    let dc = lockstep::web::datacenters::list(&app.state.pool)
        .await
        .unwrap()[0]
        .name
        .clone();
    a.click(&format!("select[name=datacenter] option[value='{dc}']"))
        .await;
    a.click("select[name=runbook] option[value='upgrade-8.11']")
        .await;
    a.type_into("input[name=change_ticket]", "CHG-2026-1127")
        .await;
    a.click("#create-run").await;
    a.wait_for("#run-header", 10).await;
    assert!(a
        .text("#run-header .status")
        .await
        .contains("waiting for start approval"));
    wait_live(&a).await;
    let header = a.find("#live").await.unwrap();
    let run_url = a.current_url().await;

    // Alan approves the start in his own browser.
    log_in(&app, &b, "alan").await;
    b.goto(&run_url).await;
    b.type_into(
        "#approve-start-comment",
        "Window agreed with the service owner",
    )
    .await;
    let clicked = Instant::now();
    b.click("#approve-start").await;

    // Olga's page moves on by itself, without a reload.
    let took =
        updates_without_reload(&a, "#run-header .status", "running", Duration::from_secs(2)).await;
    assert!(
        a.text_of(&header).await.is_ok(),
        "the page was not reloaded"
    );
    eprintln!(
        "approval → watcher update: {:?} (click to visible {:?})",
        took,
        clicked.elapsed()
    );
    a.screenshot(&artifact("run-page-after-approval.png")).await;
    b.screenshot(&artifact("run-page-approver.png")).await;
    a.quit().await;
    b.quit().await;
}

/// A run on the test plan (gate → manual task → gate), approved to start, with the first gate
/// opened by the driver.
pub async fn run_at_first_gate(app: &TestApp) -> String {
    let run = app
        .create_run("olga", "DC1", "Run the Setup wizard on DC1")
        .await;
    let store = &app.state.store;
    let now = app.clock.now_ms();
    store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit {
                actor: Actor::new("olga", &[Role::Viewer, Role::Operator]),
            },
            now,
        )
        .await
        .unwrap();
    store
        .apply_run_event(
            &run.id,
            &RunEvent::ApproveStart {
                actor: Actor::new("boss", &[Role::Approver]),
                comment: "go".into(),
            },
            now,
        )
        .await
        .unwrap();
    app.state.wake();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.step(&run.id, "gate").await.unwrap().status != StepStatus::AwaitingApproval {
        assert!(
            Instant::now() < deadline,
            "the driver never opened the gate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_and_a_manual_task_are_seen_live_by_the_other_browser() {
    let app = spawn_app_with_driver().await;
    app.add_user("olga", Role::Operator).await;
    app.add_user("alan", Role::Approver).await;
    let driver = Driver::start().await;
    let a = driver.browser().await;
    let b = driver.browser().await;
    log_in(&app, &a, "olga").await;
    log_in(&app, &b, "alan").await;

    // Deny: Alan denies the gate with a comment; Olga sees the gate denied (issue 14: a denial
    // is a person's "no" that puts the run on hold, not a failure).
    let denied = run_at_first_gate(&app).await;
    a.goto(&app.url(&format!("/runs/{denied}"))).await;
    wait_live(&a).await;
    b.goto(&app.url(&format!("/runs/{denied}"))).await;
    b.type_into("#step-0 input[name=comment]", "Not during month-end close")
        .await;
    b.click("#step-0 button[value=deny]").await;
    updates_without_reload(&a, "#step-0 .status", "denied", Duration::from_secs(2)).await;

    // Manual task: Alan approves the gate, Olga claims and completes the Setup wizard task.
    let run = run_at_first_gate(&app).await;
    a.goto(&app.url(&format!("/runs/{run}"))).await;
    wait_live(&a).await;
    b.goto(&app.url(&format!("/runs/{run}"))).await;
    wait_live(&b).await;
    b.type_into("#step-0 input[name=comment]", "Backups verified")
        .await;
    b.click("#step-0 button[value=approve]").await;
    updates_without_reload(
        &a,
        "#step-1 .status",
        "waiting for a person",
        Duration::from_secs(3),
    )
    .await;
    a.click("#step-1 form[action$='/claim'] button").await;
    updates_without_reload(&a, "#step-1", "Claimed by olga", Duration::from_secs(2)).await;
    a.type_into(
        "#step-1 input[name=note]",
        "Setup wizard finished, version 8.11 shown",
    )
    .await;
    a.click("#step-1 form[action$='/complete'] button").await;
    updates_without_reload(&b, "#step-1 .status", "done", Duration::from_secs(3)).await;
    a.screenshot(&artifact("run-page-manual-task.png")).await;
    a.quit().await;
    b.quit().await;
}

/// Says one line of output, then holds the step until released.
struct Talker(std::sync::Arc<tokio::sync::Notify>);

#[async_trait::async_trait]
impl lockstep::engine::executor::Executor for Talker {
    async fn execute(
        &self,
        _d: &lockstep::engine::executor::Dispatch,
    ) -> lockstep::engine::executor::Outcome {
        lockstep::engine::steplog::line("<b>copying</b> the 8.11 kit to DC1");
        self.0.notified().await;
        lockstep::engine::executor::Outcome::Succeeded {
            evidence: serde_json::json!({}),
        }
    }
    async fn status(
        &self,
        _key: &lockstep::engine::executor::IdempotencyKey,
        _host: Option<&str>,
    ) -> lockstep::engine::executor::ActionStatus {
        lockstep::engine::executor::ActionStatus::Running
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_is_watching_and_a_steps_output_update_live_in_the_other_browser() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let app =
        crate::app::spawn_app_with_executor(std::sync::Arc::new(Talker(release.clone()))).await;
    app.add_user("olga", Role::Operator).await;
    app.add_user("alan", Role::Approver).await;
    let mut plan = crate::app::small_plan("DC1", "ok");
    plan.steps = vec![crate::app::step(
        "copy",
        lockstep::knowledge::plan::StepKind::Agent,
        "DC1",
        &[],
        "Copy the kit",
    )];
    let olga = Actor::new("olga", &[Role::Viewer, Role::Operator]);
    let store = &app.state.store;
    let run = store
        .create_run(
            lockstep::engine::store::NewRun {
                change_ticket: "CHG-8".into(),
                window_start: None,
                window_end: None,
                plan,
            },
            &olga,
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit { actor: olga },
            app.clock.now_ms(),
        )
        .await
        .unwrap();

    let driver = Driver::start().await;
    let a = driver.browser().await;
    let b = driver.browser().await;
    log_in(&app, &a, "olga").await;
    log_in(&app, &b, "alan").await;
    let url = app.url(&format!("/runs/{}", run.id));
    a.goto(&url).await;
    wait_live(&a).await;

    // Alan opens the run: Olga's page lists him among the watchers.
    b.goto(&url).await;
    wait_live(&b).await;
    updates_without_reload(&a, "#watching", "alan", Duration::from_secs(2)).await;

    // Alan approves the start; the step's first output line appears on Olga's card, as text.
    b.type_into("#approve-start-comment", "go").await;
    b.click("#approve-start").await;
    let took = updates_without_reload(
        &a,
        "#step-0-log",
        "<b>copying</b> the 8.11 kit",
        Duration::from_secs(3),
    )
    .await;
    eprintln!("step output → watcher: {took:?}");
    a.screenshot(&artifact("run-page-step-output.png")).await;

    // Alan closes his browser: Olga's list no longer names him.
    b.quit().await;
    let start = Instant::now();
    while a.text("#watching").await.contains("alan") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "alan still listed after leaving"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    release.notify_one();
    a.quit().await;
}
