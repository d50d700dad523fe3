//! Load on the dashboard: people post comments and race to approve runs while watchers hold SSE
//! streams on the same runs, each watcher dropping its stream once and reconnecting with
//! `Last-Event-ID`. Properties (no timing assertions; latencies are printed):
//! - no request gets a 5xx; every comment is acknowledged and stored; each run is approved once
//!   (the other approvers get a 4xx, not an error);
//! - every watcher sees event ids strictly increasing (nothing replayed out of order across its
//!   reconnect) and ends at its run's last event (nothing lost). The stream carries the run view
//!   as of an event id, so a burst of events may arrive as one update with the newest id.
//!
//! CI runs the short version (20 people, 100 watchers). The full one (200 people, 1,000
//! watchers) is ignored by default and run by `scripts/soak`.

#[path = "web/app.rs"]
mod app;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lockstep::web::auth::Role;

use app::{spawn_app, Session, TestApp};

/// Each run's last event id, known once every write is done.
type Finals = Arc<std::collections::HashMap<String, i64>>;

/// Follows a run's stream: ids it saw, reconnecting once with `Last-Event-ID` after
/// `reconnect_after` updates, until it sees `final_id` (sent once every write is done).
async fn watch(
    app: Arc<TestApp>,
    viewer: Session,
    run_id: String,
    reconnect_after: usize,
    mut finals: tokio::sync::watch::Receiver<Option<Finals>>,
) -> Vec<i64> {
    let mut seen: Vec<i64> = Vec::new();
    let mut reconnected = false;
    loop {
        let mut req = app
            .client
            .get(app.url(&format!("/runs/{run_id}/events")))
            .header("cookie", format!("__Host-lockstep={}", viewer.cookie));
        if let Some(last) = seen.last() {
            req = req.header("last-event-id", last.to_string());
        }
        let resp = req.send().await.expect("stream");
        assert_eq!(resp.status(), 200, "event stream");
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        loop {
            let done = finals.borrow().as_ref().map(|f| f[&run_id]);
            if let (Some(f), Some(l)) = (done, seen.last()) {
                if *l >= f {
                    return seen;
                }
            }
            tokio::select! {
                chunk = stream.next() => {
                    let Some(Ok(chunk)) = chunk else { break }; // server closed: reconnect
                    buf.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(nl) = buf.find('\n') {
                        let line: String = buf.drain(..=nl).collect();
                        if let Some(id) = line.trim_end().strip_prefix("id:") {
                            seen.push(id.trim().parse().expect("numeric event id"));
                        }
                    }
                    if !reconnected && seen.len() >= reconnect_after {
                        reconnected = true;
                        break; // drop the stream: a forced reconnect
                    }
                }
                _ = finals.changed() => {}
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn load(people: usize, watchers: usize, runs: usize, comments_each: usize) {
    let app = Arc::new(spawn_app().await);
    app.add_user("olga", Role::Operator).await;
    let viewer = app.login_as("vera", Role::Viewer).await;
    let mut run_ids = Vec::new();
    for _ in 0..runs {
        run_ids.push(app.submitted_run("olga").await.id);
    }
    let mut sessions = Vec::new();
    for i in 0..people {
        // One in five is a change manager who races to approve; the others comment.
        let role = if i % 5 == 0 {
            Role::Approver
        } else {
            Role::Operator
        };
        sessions.push((role, app.login_as(&format!("user{i:03}"), role).await));
    }

    let (final_tx, final_rx) = tokio::sync::watch::channel(None::<Finals>);
    let mut watching = Vec::new();
    for w in 0..watchers {
        let run = run_ids[w % runs].clone();
        let task = tokio::spawn(watch(
            app.clone(),
            viewer.clone(),
            run.clone(),
            1 + w % 3,
            final_rx.clone(),
        ));
        watching.push((w, run, task));
    }
    // Let the streams register before the writes start.
    let deadline = Instant::now() + Duration::from_secs(60);
    while run_ids
        .iter()
        .map(|r| app.state.live.watching(r).len())
        .sum::<usize>()
        == 0
    {
        assert!(Instant::now() < deadline, "no watcher registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let mut writers = Vec::new();
    for (i, (role, s)) in sessions.into_iter().enumerate() {
        let app = app.clone();
        let run_ids = run_ids.clone();
        writers.push(tokio::spawn(async move {
            let mut out = Vec::new(); // (latency, status, run, what)
            for c in 0..comments_each {
                let approving = role == Role::Approver && c == 0;
                // Approvers (every fifth person) spread over the runs, several per run: a race.
                let run = if approving {
                    &run_ids[(i / 5) % run_ids.len()]
                } else {
                    &run_ids[(i + c) % run_ids.len()]
                };
                let (path, fields): (String, Vec<(&str, String)>) = if approving {
                    (
                        format!("/runs/{run}/approve"),
                        vec![("comment", format!("go from {i}"))],
                    )
                } else {
                    (
                        format!("/runs/{run}/comments"),
                        vec![("text", format!("note {i}/{c}"))],
                    )
                };
                let fields: Vec<(&str, &str)> =
                    fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let t = Instant::now();
                let r = app.post(&s, &path, &fields).await;
                out.push((
                    t.elapsed(),
                    r.status().as_u16(),
                    run.clone(),
                    path.ends_with("approve"),
                ));
            }
            out
        }));
    }
    let mut results = Vec::new();
    for w in writers {
        results.extend(w.await.expect("writer"));
    }
    let writing = started.elapsed();
    let server_errors: Vec<_> = results.iter().filter(|r| r.1 >= 500).collect();
    assert!(server_errors.is_empty(), "5xx answers: {server_errors:?}");
    let comments_ok = results.iter().filter(|r| !r.3 && r.1 < 400).count();
    let comments_sent = results.iter().filter(|r| !r.3).count();
    assert_eq!(comments_ok, comments_sent, "every comment is acknowledged");

    // Stored: each acknowledged comment, and exactly one start approval per run.
    let mut stored_comments = 0;
    let mut finals = std::collections::HashMap::new();
    for run in &run_ids {
        let events = app.state.store.run_events(run).await.unwrap();
        stored_comments += events.iter().filter(|e| e.kind == "comment").count();
        let approvals = events
            .iter()
            .filter(|e| e.kind == "run.approve_start")
            .count();
        assert_eq!(approvals, 1, "run {run} approved {approvals} times");
        finals.insert(run.clone(), events.last().unwrap().id);
    }
    assert_eq!(
        stored_comments, comments_sent,
        "every acknowledged comment is stored"
    );

    // Every watcher ends at its run's last event, ids strictly increasing.
    let finals = Arc::new(finals);
    final_tx.send(Some(finals.clone())).unwrap();
    let mut updates = 0;
    for (w, run, task) in watching {
        let final_id = finals[&run];
        let seen = tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .unwrap_or_else(|_| panic!("watcher {w} on run {run} never reached event {final_id}"))
            .expect("watcher");
        assert!(
            seen.windows(2).all(|p| p[0] < p[1]),
            "watcher {w}: ids not strictly increasing: {seen:?}"
        );
        assert_eq!(
            *seen.last().unwrap(),
            final_id,
            "watcher {w} missed the end of run {run}"
        );
        updates += seen.len();
    }
    let mut lat: Vec<Duration> = results.iter().map(|r| r.0).collect();
    lat.sort();
    println!(
        "{people} people, {watchers} watchers on {runs} runs: {} posts in {writing:?}, p50 {:?}, p99 {:?}, max {:?}; {updates} updates received, 0 lost, 0 5xx",
        results.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_people_and_a_hundred_watchers_lose_nothing_and_get_no_server_error() {
    load(20, 100, 2, 3).await;
}

/// The full load: `scripts/soak` (or `cargo test --release --test reliability_load -- --ignored
/// --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by scripts/soak"]
async fn two_hundred_people_and_a_thousand_watchers_lose_nothing_and_get_no_server_error() {
    load(200, 1000, 10, 5).await;
}
