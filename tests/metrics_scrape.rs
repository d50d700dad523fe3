//! `/metrics` scraped from the real application with the engine's driver running: every sample
//! parses and belongs to a declared metric, and the figures move as a run goes through.

#[path = "web/app.rs"]
mod app;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use lockstep::engine::machine::{RunEvent, RunStatus};
use lockstep::engine::store::NewRun;
use lockstep::engine::Actor;
use lockstep::knowledge::operation::Operation;
use lockstep::knowledge::plan::{Plan, PlannedStep, RetryPolicy, StepKind};
use lockstep::web::auth::Role;
use lockstep::web::metrics::MetricsAccess;

use app::{spawn_app_with_driver, TestApp};

/// Samples by their full series text (`name{labels}`), after checking the exposition format:
/// each sample's metric has a `# TYPE` line before it, and every value is a number.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "unknown type in {line}"
            );
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let name = series.split('{').next().unwrap();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| types.get(*b).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(base), "sample before its # TYPE: {line}");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        samples.insert(series.to_string(), v);
    }
    samples
}

async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&resp.text().await.unwrap())
}

fn agent_step(id: &str) -> PlannedStep {
    PlannedStep {
        id: id.into(),
        title: format!("Step {id}"),
        section: "Stop Data Center Services".into(),
        phase: "Prepare".into(),
        kind: StepKind::Agent,
        host: Some("DC1".into()),
        depends_on: Vec::new(),
        instructions: "Stop the services".into(),
        operation: Operation::None,
        postcondition: None,
        undo: None,
        gate: None,
        retry: RetryPolicy::default(),
        timeout_secs: 60,
        estimate_secs: 10,
    }
}

/// A submitted run of one agent step on `host`.
async fn submitted(app: &TestApp, host: &str) -> String {
    let mut step = agent_step("stop");
    step.host = Some(host.into());
    let plan = Plan {
        runbook: "upgrade-8.11".into(),
        runbook_title: "Upgrade to 8.11".into(),
        inventory: "Test DC".into(),
        topology: lockstep::knowledge::inventory::Topology::Standalone,
        params: BTreeMap::new(),
        steps: vec![step],
    };
    let olga = Actor::new("olga", &[Role::Viewer, Role::Operator]);
    let store = &app.state.store;
    let run = store
        .create_run(
            NewRun {
                change_ticket: "CHG-7".into(),
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
    run.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_figures_move_as_a_run_goes_through() {
    let app = spawn_app_with_driver().await;
    let before = scrape(&app).await;
    for name in [
        "lockstep_runs{state=\"running\"}",
        "lockstep_runs{state=\"succeeded\"}",
        "lockstep_step_dispatch_latency_seconds_count",
        "lockstep_sse_watchers",
    ] {
        assert_eq!(before.get(name), Some(&0.0), "{name} starts at 0");
    }

    let waiting = submitted(&app, "DC2").await;
    let run = submitted(&app, "DC1").await;
    let mid = scrape(&app).await;
    assert_eq!(mid["lockstep_runs{state=\"awaiting_start_approval\"}"], 2.0);
    assert_eq!(mid["lockstep_steps{state=\"pending\",kind=\"agent\"}"], 2.0);

    // Someone watches the run that stays waiting: one open stream.
    let viewer = app.login_as("vera", Role::Viewer).await;
    let stream = app.get(&viewer, &format!("/runs/{waiting}/events")).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(scrape(&app).await["lockstep_sse_watchers"], 1.0);
    drop(stream);

    let boss = Actor::new("boss", &[Role::Viewer, Role::Operator, Role::Approver]);
    app.state
        .store
        .apply_run_event(
            &run,
            &RunEvent::ApproveStart {
                actor: boss,
                comment: "go".into(),
            },
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    app.state.wake();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.state.store.run(&run).await.unwrap().status != RunStatus::Succeeded {
        assert!(Instant::now() < deadline, "the run never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = scrape(&app).await;
    assert_eq!(after["lockstep_runs{state=\"succeeded\"}"], 1.0);
    assert_eq!(
        after["lockstep_runs{state=\"awaiting_start_approval\"}"],
        1.0
    );
    assert_eq!(
        after["lockstep_steps{state=\"succeeded\",kind=\"agent\"}"],
        1.0
    );
    assert_eq!(after["lockstep_step_dispatch_latency_seconds_count"], 1.0);
    assert_eq!(
        after["lockstep_step_dispatch_latency_seconds_bucket{le=\"+Inf\"}"],
        1.0
    );
    let scrapes = "lockstep_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"}";
    assert!(after[scrapes] >= 3.0, "earlier scrapes were counted");
    let streams =
        "lockstep_http_requests_total{route=\"/runs/{id}/events\",method=\"GET\",status=\"200\"}";
    assert_eq!(
        after[streams], 1.0,
        "routes are templates, not concrete paths"
    );

    // A finished run's stream says so and closes: no watcher left open by it.
    let done = app.get(&viewer, &format!("/runs/{run}/events")).await;
    let _ = done.text().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let open = scrape(&app).await["lockstep_sse_watchers"];
        if open <= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream is still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_token_when_configured_and_no_token_on_a_network_listener_are_enforced() {
    let app = spawn_app_with_driver().await;
    let token = "metrics-token-0123456789";
    app.state.metrics.set_access(MetricsAccess {
        token: Some(token.into()),
        network_listener: true,
    });
    let bare = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-9876543210")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        right.status(),
        200,
        "the metrics token is not taken for an API token"
    );
    assert!(right.text().await.unwrap().contains("lockstep_runs"));

    app.state.metrics.set_access(MetricsAccess {
        token: None,
        network_listener: true,
    });
    let refused = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("token_file"));
}
