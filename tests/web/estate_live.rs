//! The Data Center page during a run, in headless Chromium: a server's box follows the state of
//! the run's step on it — through the page's event stream, without a reload and without polling.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lockstep::engine::machine::{RunEvent, StepEvent, StepStatus};
use lockstep::engine::store::NewRun;
use lockstep::engine::Actor;
use lockstep::knowledge::inventory::Topology;
use lockstep::knowledge::plan::{Plan, StepKind};
use lockstep::web::auth::Role;

use crate::app::{spawn_app_with_driver, step, TestApp};
use crate::browser::{artifact, log_in, wait_live};
use crate::webdriver::{Browser, Driver};

/// A server box as the page shows it now: its `data-step` and its lines of text.
async fn server_box(b: &Browser, server: &str) -> (String, String) {
    let v = b
        .script(&format!(
            "var g = document.getElementById('server-{server}'); if (!g) return null; \
             return [g.getAttribute('data-step') || '', \
                     Array.from(g.querySelectorAll('text')).map(function (t) {{ return t.textContent; }}).join(' | ')];"
        ))
        .await;
    (
        v[0].as_str().unwrap_or("(no box)").to_string(),
        v[1].as_str().unwrap_or("").to_string(),
    )
}

/// Waits until `step` of `run` has `status` (the driver moves it).
async fn wait_step(app: &TestApp, run: &str, step: &str, status: StepStatus) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = app.state.store.step(run, step).await.unwrap().status;
        if now == status {
            return;
        }
        assert!(Instant::now() < deadline, "{step} is {now}, never {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_run_a_servers_box_changes_state_without_reload() {
    let app = spawn_app_with_driver().await;
    app.add_user("alan", Role::Approver).await;
    let inv = lockstep::web::datacenters::save(
        &app.state.pool,
        include_str!("../../examples/standalone.toml"),
        "olga",
        app.clock.now(),
    )
    .await
    .unwrap()
    .unwrap();
    // A manual task on the database server, then a gate on the web server.
    let plan = Plan {
        runbook: "upgrade-8.11".into(),
        runbook_title: "Upgrade to 8.11".into(),
        inventory: inv.name.clone(),
        topology: Topology::Standalone,
        params: BTreeMap::new(),
        steps: vec![
            step("wizard", StepKind::Manual, "FABDC01", &[], "Run Setup"),
            step(
                "signoff",
                StepKind::Approval,
                "FABWEB01",
                &["wizard"],
                "Sign off",
            ),
        ],
    };
    let store = &app.state.store;
    let olga = Actor::new("olga", &[Role::Viewer, Role::Operator]);
    let now = app.clock.now_ms();
    let run = store
        .create_run(
            NewRun {
                change_ticket: "CHG-7001".into(),
                window_start: None,
                window_end: None,
                plan,
            },
            &olga,
            now,
        )
        .await
        .unwrap()
        .id;
    store
        .apply_run_event(&run, &RunEvent::Submit { actor: olga }, now)
        .await
        .unwrap();
    store
        .apply_run_event(
            &run,
            &RunEvent::ApproveStart {
                actor: Actor::new("boss", &[Role::Approver]),
                comment: "go".into(),
            },
            now,
        )
        .await
        .unwrap();
    app.state.wake();
    wait_step(&app, &run, "wizard", StepStatus::AwaitingOperator).await;

    let driver = Driver::start().await;
    let b = driver.browser().await;
    b.set_window(1400, 1000).await;
    log_in(&app, &b, "alan").await;
    b.goto(&app.url(&format!("/datacenters/{}", inv.name.replace(' ', "%20"))))
        .await;
    wait_live(&b).await;
    // The primary path is the stream: nothing on the page polls.
    let polling = b
        .script("return document.querySelectorAll('[hx-trigger*=\"every\"]').length")
        .await;
    assert_eq!(polling.as_i64(), Some(0), "the drawing polls");
    // Before: the database server waits for a person, in words and a sign; the web server has
    // no step yet.
    let (state, text) = server_box(&b, "FABDC01").await;
    assert_eq!(state, "waiting", "{text}");
    assert!(
        text.contains("‖ waiting for a person: Step wizard"),
        "{text}"
    );
    assert_eq!(server_box(&b, "FABWEB01").await.0, "");
    b.script("window.__notReloaded = true; return null").await;
    let anchor = b.find("#dc-live").await.expect("the live region");

    // The operator performs the task; the driver opens the gate on the web server.
    let oscar = Actor::new("oscar", &[Role::Viewer, Role::Operator]);
    let t = app.clock.now_ms();
    store
        .apply_step_event(
            &run,
            "wizard",
            &StepEvent::Claim {
                actor: oscar.clone(),
            },
            t,
        )
        .await
        .unwrap();
    store
        .apply_step_event(
            &run,
            "wizard",
            &StepEvent::Complete {
                actor: oscar,
                note: "Setup finished".into(),
            },
            t,
        )
        .await
        .unwrap();
    app.state.wake();
    let completed = Instant::now();

    // After: the database server's box reads done, the web server's waits — on the same page.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (dc, dc_text) = server_box(&b, "FABDC01").await;
        let (web, web_text) = server_box(&b, "FABWEB01").await;
        if dc == "done" && web == "waiting" {
            assert!(dc_text.contains("✔ done: Step wizard"), "{dc_text}");
            assert!(
                web_text.contains("‖ waiting for a person: Step signoff"),
                "{web_text}"
            );
            eprintln!(
                "task completed → the boxes changed on the open page after {:?}",
                completed.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the boxes did not change within 20 s: FABDC01 `{dc}` ({dc_text}), FABWEB01 `{web}` ({web_text})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(b.text_of(&anchor).await.is_ok(), "the page was reloaded");
    assert_eq!(
        b.script("return window.__notReloaded === true")
            .await
            .as_bool(),
        Some(true),
        "the page was reloaded"
    );
    b.screenshot(&artifact("datacenter-live-1400.png")).await;
    b.set_window(400, 1000).await;
    b.screenshot(&artifact("datacenter-live-400.png")).await;
    b.quit().await;
}
