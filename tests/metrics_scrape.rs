//! `/metrics` scraped from the real application with the engine's driver running, and read by a
//! real Prometheus parser — the OpenMetrics parser of the Python `prometheus_client` package
//! (Debian `python3-prometheus-client`, in `scripts/test`) — so every family, type, help text and
//! sample is checked by the client library Prometheus users run, and the figures move as a run
//! goes through.

#[path = "web/app.rs"]
mod app;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lockstep::engine::machine::{RunEvent, RunStatus};
use lockstep::engine::store::NewRun;
use lockstep::engine::Actor;
use lockstep::executors::agent::registry;
use lockstep::knowledge::operation::Operation;
use lockstep::knowledge::plan::{Plan, PlannedStep, RetryPolicy, StepKind};
use lockstep::web::auth::Role;
use lockstep::web::metrics::MetricsAccess;
use lockstep_protocol::tls::Thumbprint;

use app::{spawn_app_with_driver, TestApp};

/// Debian's interpreter, where `python3-prometheus-client` installs the parser (a `python3`
/// earlier on the PATH, such as pyenv's, would not see it).
const PYTHON: &str = "/usr/bin/python3";

/// Parses the body with `prometheus_client.openmetrics.parser` and prints one JSON object per
/// family: its name, type, help and samples (labels sorted by name, so the series text below is
/// stable). The parser refuses anything the format does not allow (a sample of an undeclared
/// family, a missing `# EOF`, a histogram without `+Inf`, an unescaped label value).
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    samples = [{"series": s.name + ("{" + ",".join('%s="%s"' % (k, s.labels[k]) for k in sorted(s.labels)) + "}" if s.labels else ""),
                "value": s.value} for s in f.samples]
    print(json.dumps({"name": f.name, "type": f.type, "help": f.documentation, "samples": samples}))
"#;

/// One metric family as the parser read it.
#[derive(Debug, serde::Deserialize)]
struct Family {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

#[derive(Debug, serde::Deserialize)]
struct Sample {
    series: String,
    value: f64,
}

/// A scrape as the parser read it: families by name, and every sample by its series text
/// (`name{label="value",…}`, labels in name order).
struct Scrape {
    families: HashMap<String, Family>,
    samples: HashMap<String, f64>,
}

impl std::ops::Index<&str> for Scrape {
    type Output = f64;
    fn index(&self, series: &str) -> &f64 {
        self.samples
            .get(series)
            .unwrap_or_else(|| panic!("no sample {series}; have {:?}", self.samples.keys()))
    }
}

fn parse(text: &str) -> Scrape {
    let mut child = Command::new(PYTHON)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PYTHON} (Debian python3-prometheus-client): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the exposition (is python3-prometheus-client installed?):\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut scrape = Scrape {
        families: HashMap::new(),
        samples: HashMap::new(),
    };
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let family: Family = serde_json::from_str(line).unwrap();
        for s in &family.samples {
            scrape.samples.insert(s.series.clone(), s.value);
        }
        scrape.families.insert(family.name.clone(), family);
    }
    scrape
}

async fn scrape(app: &TestApp) -> Scrape {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    parse(&resp.text().await.unwrap())
}

/// Every family Lockstep exposes, with its type and help text.
const FAMILIES: [(&str, &str, &str); 8] = [
    ("lockstep_runs", "gauge", "Runs by state."),
    (
        "lockstep_steps",
        "gauge",
        "Steps of all runs by state and kind.",
    ),
    (
        "lockstep_agent_up",
        "gauge",
        "Whether the agent answered its last heartbeat (1) or not (0).",
    ),
    (
        "lockstep_agent_heartbeat_age_seconds",
        "gauge",
        "Seconds since the agent's last heartbeat.",
    ),
    (
        "lockstep_step_dispatch_latency_seconds",
        "histogram",
        "Time from a step becoming ready to its dispatch.",
    ),
    (
        "lockstep_sse_watchers",
        "gauge",
        "Open live streams (run pages being watched).",
    ),
    (
        "lockstep_http_requests",
        "counter",
        "HTTP requests by route, method and status.",
    ),
    (
        "lockstep_http_request_duration_seconds",
        "histogram",
        "Time to answer (to the response head).",
    ),
];

/// `present` are there, and every family there is one of [`FAMILIES`] with its type and help.
fn assert_families(scrape: &Scrape, present: &[&str]) {
    for name in present {
        assert!(scrape.families.contains_key(*name), "no family {name}");
    }
    for family in scrape.families.values() {
        let declared = FAMILIES
            .iter()
            .find(|f| f.0 == family.name)
            .unwrap_or_else(|| panic!("an undeclared family {}", family.name));
        assert_eq!(
            (family.kind.as_str(), family.help.as_str()),
            (declared.1, declared.2),
            "{}",
            family.name
        );
    }
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
    // A family with no series yet is left out by the client (no steps, no agent, no request
    // answered before this first scrape).
    assert_families(
        &before,
        &[
            "lockstep_runs",
            "lockstep_step_dispatch_latency_seconds",
            "lockstep_sse_watchers",
        ],
    );
    for name in [
        "lockstep_runs{state=\"running\"}",
        "lockstep_runs{state=\"succeeded\"}",
        "lockstep_step_dispatch_latency_seconds_count",
        "lockstep_sse_watchers",
    ] {
        assert_eq!(before.samples.get(name), Some(&0.0), "{name} starts at 0");
    }
    assert_eq!(
        before.families["lockstep_runs"].samples.len(),
        9,
        "every run state is reported from the first scrape"
    );

    let waiting = submitted(&app, "DC2").await;
    let run = submitted(&app, "DC1").await;
    let mid = scrape(&app).await;
    assert_eq!(mid["lockstep_runs{state=\"awaiting_start_approval\"}"], 2.0);
    assert_eq!(mid["lockstep_steps{kind=\"agent\",state=\"pending\"}"], 2.0);

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
    let everything_but_agents: Vec<&str> = FAMILIES
        .iter()
        .map(|f| f.0)
        .filter(|name| !name.starts_with("lockstep_agent_"))
        .collect();
    assert_families(&after, &everything_but_agents);
    assert_eq!(after["lockstep_runs{state=\"succeeded\"}"], 1.0);
    assert_eq!(
        after["lockstep_runs{state=\"awaiting_start_approval\"}"],
        1.0
    );
    assert_eq!(
        after["lockstep_steps{kind=\"agent\",state=\"succeeded\"}"],
        1.0
    );
    assert_eq!(after["lockstep_step_dispatch_latency_seconds_count"], 1.0);
    let wait = after["lockstep_step_dispatch_latency_seconds_sum"];
    assert!(wait >= 0.0, "the dispatch wait is a duration: {wait}");
    let stream_time = "lockstep_http_request_duration_seconds_count{method=\"GET\",route=\"/runs/{id}/events\",status=\"200\"}";
    assert_eq!(after[stream_time], 1.0, "each request is timed once");
    assert_eq!(
        after["lockstep_step_dispatch_latency_seconds_bucket{le=\"+Inf\"}"],
        1.0
    );
    let scrapes = "lockstep_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"200\"}";
    assert!(after[scrapes] >= 3.0, "earlier scrapes were counted");
    let streams =
        "lockstep_http_requests_total{method=\"GET\",route=\"/runs/{id}/events\",status=\"200\"}";
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

#[tokio::test]
async fn agent_health_is_read_from_the_registry_at_each_scrape() {
    let app = app::spawn_app().await;
    let pool = &app.state.pool;
    let then = app.clock.now();
    for server in ["DC1", "DC2", "WEB1"] {
        let url = format!("https://{}.example.test:9443", server.to_lowercase());
        registry::add(pool, server, &url, Thumbprint([7; 32]), then)
            .await
            .unwrap();
    }
    let online = registry::Heartbeat::Online {
        agent_version: "1.0.0".into(),
        backend: "simulated".into(),
        clock_skew: 0,
    };
    registry::record_heartbeat(pool, "DC1", &online, then)
        .await
        .unwrap();
    let offline = registry::Heartbeat::Offline {
        error: "connection refused".into(),
    };
    registry::record_heartbeat(pool, "DC2", &offline, then)
        .await
        .unwrap();
    app.clock.advance(42);

    let s = scrape(&app).await;
    assert_families(
        &s,
        &["lockstep_agent_up", "lockstep_agent_heartbeat_age_seconds"],
    );
    assert_eq!(s["lockstep_agent_up{agent=\"DC1\"}"], 1.0);
    assert_eq!(s["lockstep_agent_up{agent=\"DC2\"}"], 0.0);
    assert_eq!(
        s["lockstep_agent_up{agent=\"WEB1\"}"], 0.0,
        "never asked: not up"
    );
    assert_eq!(
        s["lockstep_agent_heartbeat_age_seconds{agent=\"DC1\"}"],
        42.0
    );
    assert_eq!(
        s["lockstep_agent_heartbeat_age_seconds{agent=\"DC2\"}"],
        42.0
    );
    assert!(
        !s.samples
            .contains_key("lockstep_agent_heartbeat_age_seconds{agent=\"WEB1\"}"),
        "no age without a heartbeat"
    );
}
