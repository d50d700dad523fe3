//! Live parts of the run page: step log lines streamed and kept, who is watching, reconnects.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lockstep::engine::executor::{ActionStatus, Dispatch, Executor, IdempotencyKey, Outcome};
use lockstep::engine::machine::RunEvent;
use lockstep::engine::steplog::{self, DROPPED_NOTICE, LINES_PER_STEP};
use lockstep::engine::store::{NewRun, RunRecord};
use lockstep::engine::{Actor, Store};
use lockstep::knowledge::inventory::Topology;
use lockstep::knowledge::plan::{Plan, StepKind};
use lockstep::web::auth::Role;
use lockstep::web::runview;

use crate::app::{spawn_app, spawn_app_with_executor, step, TestApp};
use crate::runs::read_until;

/// An executor that says a line, waits until released, says another and succeeds.
struct Talker {
    first: String,
    release: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl Executor for Talker {
    async fn execute(&self, _d: &Dispatch) -> Outcome {
        steplog::line(self.first.clone());
        self.release.notified().await;
        steplog::line("copy finished: 42 files");
        Outcome::Succeeded {
            evidence: serde_json::json!({ "files": 42 }),
        }
    }
    async fn status(&self, _key: &IdempotencyKey, _host: Option<&str>) -> ActionStatus {
        ActionStatus::Running
    }
}

/// A started run of one agent step (`copy`) on DC1, requested by olga, approved by alan.
async fn started_talking_run(app: &TestApp) -> RunRecord {
    let plan = Plan {
        runbook: "upgrade-8.11".into(),
        runbook_title: "Upgrade to 8.11".into(),
        inventory: "Test DC".into(),
        topology: Topology::Standalone,
        params: BTreeMap::new(),
        steps: vec![step("copy", StepKind::Agent, "DC1", &[], "Copy the kit")],
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
        .expect("run created");
    store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit { actor: olga },
            app.clock.now_ms(),
        )
        .await
        .expect("submitted");
    run
}

async fn approve_start(app: &TestApp, run_id: &str) {
    app.state
        .store
        .apply_run_event(
            run_id,
            &RunEvent::ApproveStart {
                actor: Actor::new("alan", &[Role::Viewer, Role::Operator, Role::Approver]),
                comment: "go".into(),
            },
            app.clock.now_ms(),
        )
        .await
        .expect("start approved");
    app.state.wake();
}

async fn last_event(app: &TestApp, run_id: &str) -> i64 {
    app.state
        .store
        .run_events(run_id)
        .await
        .expect("events")
        .last()
        .map(|e| e.id)
        .unwrap_or(0)
}

async fn wait_for_lines(store: &Store, run_id: &str, step_id: &str, n: usize) {
    let log = store.step_log().clone();
    for _ in 0..200 {
        if log
            .tail(run_id, step_id, 100)
            .await
            .expect("tail")
            .lines
            .len()
            >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let st = store.step(run_id, step_id).await.map(|s| s.status);
    let tail = log.tail(run_id, step_id, 100).await;
    panic!("{step_id} never had {n} log lines ({st:?}, {tail:?})");
}

#[tokio::test]
async fn a_line_said_while_a_step_runs_reaches_watchers_escaped_and_is_kept_for_a_page_load() {
    let release = Arc::new(tokio::sync::Notify::new());
    let app = spawn_app_with_executor(Arc::new(Talker {
        first: "copying <script>alert('x')</script> {{ kit }}".into(),
        release: release.clone(),
    }))
    .await;
    let olga = app.login_as("olga", Role::Operator).await;
    app.add_user("alan", Role::Approver).await;
    let run = started_talking_run(&app).await;
    let shown = last_event(&app, &run.id).await;
    let stream = app
        .get(&olga, &format!("/runs/{}/events?after={shown}", run.id))
        .await;
    assert_eq!(stream.status(), 200);
    approve_start(&app, &run.id).await;

    let card = runview::step_dom_id(&app.state.store.step(&run.id, "copy").await.unwrap());
    let seen = read_until(stream, "alert(", 10).await;
    assert!(
        seen.contains(&format!("hx-swap-oob=\"beforeend:#{card}-log\"")),
        "the line is appended to the card's log: {seen}"
    );
    assert!(
        seen.contains("copying &#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; {{ kit }}"),
        "escaped: {seen}"
    );
    assert!(!seen.contains("<script>alert") && !seen.contains("alert('x')"));

    // A page load while the step still runs shows the line on the card, escaped.
    wait_for_lines(&app.state.store, &run.id, "copy", 1).await;
    let page = app
        .get(&olga, &format!("/runs/{}", run.id))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!(
        "<ol id=\"{card}-log\" class=\"log\" aria-label=\"Output\"><li>"
    )));
    assert!(page.contains("copying &#60;script&#62;alert("));
    assert!(!page.contains("<script>alert"));
    release.notify_one();
    wait_for_lines(&app.state.store, &run.id, "copy", 2).await;
}

#[tokio::test]
async fn the_api_gives_a_steps_lines_as_said_and_refuses_unknown_steps() {
    let release = Arc::new(tokio::sync::Notify::new());
    let app = spawn_app_with_executor(Arc::new(Talker {
        first: "copying <script>x</script> \"kit\"".into(),
        release: release.clone(),
    }))
    .await;
    app.add_user("olga", Role::Operator).await;
    app.add_user("alan", Role::Approver).await;
    app.add_user("vera", Role::Viewer).await;
    let vera = lockstep::web::auth::accounts::find_user(&app.state.pool, "vera")
        .await
        .unwrap()
        .unwrap();
    let token = lockstep::web::auth::accounts::create_token(
        &app.state.pool,
        vera.id,
        "test",
        app.clock.now(),
    )
    .await
    .unwrap();
    let run = started_talking_run(&app).await;
    approve_start(&app, &run.id).await;
    release.notify_one();
    wait_for_lines(&app.state.store, &run.id, "copy", 2).await;

    let get = |path: String, token: Option<String>| {
        let mut r = app.client.get(app.url(&path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let path = format!("/api/v1/runs/{}/steps/copy/log", run.id);
    let r = get(path.clone(), Some(token.clone())).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["total"], 2, "{body}");
    let texts: Vec<&str> = body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "copying <script>x</script> \"kit\"",
            "copy finished: 42 files"
        ],
        "JSON carries the text as said (escaping is the page's job)"
    );
    assert!(body["lines"][0]["id"].as_i64() < body["lines"][1]["id"].as_i64());
    assert_eq!(body["lines"][0]["step_id"], "copy");

    let unknown = format!("/api/v1/runs/{}/steps/no-such-step/log", run.id);
    assert_eq!(
        get(unknown, Some(token.clone())).await.unwrap().status(),
        404
    );
    let no_run = "/api/v1/runs/no-such-run/steps/copy/log".to_string();
    assert_eq!(get(no_run, Some(token)).await.unwrap().status(), 404);
    assert_eq!(get(path, None).await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_watcher_reconnecting_with_last_event_id_gets_the_lines_it_missed() {
    let release = Arc::new(tokio::sync::Notify::new());
    let app = spawn_app_with_executor(Arc::new(Talker {
        first: "stopping services".into(),
        release: release.clone(),
    }))
    .await;
    let olga = app.login_as("olga", Role::Operator).await;
    app.add_user("alan", Role::Approver).await;
    let run = started_talking_run(&app).await;
    approve_start(&app, &run.id).await;
    wait_for_lines(&app.state.store, &run.id, "copy", 1).await;
    // The watcher last saw the newest event; since then, only a log line came.
    let seen_id = last_event(&app, &run.id).await;
    release.notify_one();
    wait_for_lines(&app.state.store, &run.id, "copy", 2).await;
    let r = app
        .client
        .get(app.url(&format!("/runs/{}/events", run.id)))
        .header("cookie", format!("__Host-lockstep={}", olga.cookie))
        .header("last-event-id", seen_id.to_string())
        .send()
        .await
        .unwrap();
    let seen = read_until(r, "copy finished: 42 files", 10).await;
    assert!(seen.contains("stopping services"), "the whole card: {seen}");
}

#[tokio::test]
async fn the_log_keeps_at_most_its_bound_per_step_and_says_that_more_was_dropped() {
    let app = spawn_app().await;
    let store = &app.state.store;
    let log = store.step_log().clone();
    let clock: Arc<dyn lockstep::engine::clock::Clock> =
        Arc::new(lockstep::engine::clock::TokioClock::new());
    for attempt in 1..=2u32 {
        let key = IdempotencyKey {
            run_id: "r1".into(),
            step_id: "chatty".into(),
            attempt,
        };
        steplog::scope(log.clone(), key, clock.clone(), async {
            for i in 0..(LINES_PER_STEP + 100) {
                steplog::line(format!("line {i} {}", "x".repeat(2000)));
                tokio::task::yield_now().await;
            }
        })
        .await;
    }
    let tail = log.tail("r1", "chatty", 1000).await.unwrap();
    assert_eq!(tail.total, LINES_PER_STEP + 1);
    assert_eq!(tail.lines.last().unwrap().text, DROPPED_NOTICE);
    assert!(tail
        .lines
        .iter()
        .all(|l| l.text.chars().count() <= steplog::MAX_LINE_CHARS + 1));
    // Outside a scope a line goes nowhere (and does not fail).
    steplog::line("nobody listens");
    assert_eq!(
        log.tail("r1", "chatty", 1000).await.unwrap().total,
        LINES_PER_STEP + 1
    );
}

#[tokio::test]
async fn someone_opening_the_run_is_announced_to_those_watching_and_their_leaving_too() {
    let app = spawn_app().await;
    let olga = app.login_as("olga", Role::Operator).await;
    let alan = app.login_as("alan", Role::Approver).await;
    let run = app.submitted_run("olga").await;
    let shown = last_event(&app, &run.id).await;
    let path = format!("/runs/{}/events?after={shown}", run.id);
    let mut olgas = app.get(&olga, &path).await;
    assert_eq!(olgas.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), olgas.chunk())
        .await
        .expect("olga hears who watches")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("<span class=\"watcher\">olga</span>"));

    let alans = app.get(&alan, &path).await;
    assert_eq!(alans.status(), 200);
    let mut seen = String::new();
    let joined = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(c) = olgas.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&c));
            if seen.contains("<span class=\"watcher\">alan</span>") {
                return;
            }
        }
    })
    .await;
    assert!(joined.is_ok(), "olga never saw alan arrive: {seen}");
    assert!(seen.contains("id=\"watching\" hx-swap-oob=\"true\""));

    drop(alans);
    let mut seen = String::new();
    let left = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(c) = olgas.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&c));
            if seen.contains("<span id=\"watching\" hx-swap-oob=\"true\"><span class=\"watcher\">olga</span></span>") {
                return;
            }
        }
    })
    .await;
    assert!(left.is_ok(), "olga never saw alan leave: {seen}");
    assert_eq!(app.state.live.watching(&run.id), vec!["olga".to_string()]);
}
