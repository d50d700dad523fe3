//! Benchmark of the dashboard (ignored by default; run with
//! `cargo test --release --test web_bench -- --ignored --nocapture`). Prints:
//! - run page render time for a 2,000-step run (server-side render alone, and the whole GET);
//! - SSE fan-out latency from commit to receipt for 1,000 connected watchers (real HTTP streams),
//!   for an engine event and for a step log line;
//! - memory per watcher (resident set growth of this process, which holds both the server and
//!   the 1,000 client connections, so an upper bound for the server's share).

#[path = "web/app.rs"]
mod app;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lockstep::engine::machine::RunEvent;
use lockstep::engine::store::NewRun;
use lockstep::engine::{testkit, Actor};
use lockstep::web::auth::Role;
use lockstep::web::runview::{self, Viewer};

use app::spawn_app;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture (release build recommended)"]
async fn bench_run_page_and_sse_fan_out() {
    let app = spawn_app().await;
    let viewer = app.login_as("watcher", Role::Operator).await;
    app.add_user("boss", Role::Approver).await;

    // A 2,000-step run.
    let plan = testkit::noop_plan(2000, true, &["DC1", "DC2", "DC3", "DC4"]);
    let now = app.clock.now_ms();
    let run = app
        .state
        .store
        .create_run(
            NewRun {
                change_ticket: "BENCH".into(),
                window_start: None,
                window_end: None,
                plan,
            },
            &Actor::new("watcher", &[Role::Operator]),
            now,
        )
        .await
        .unwrap();
    app.state
        .store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit {
                actor: Actor::new("watcher", &[Role::Operator]),
            },
            now,
        )
        .await
        .unwrap();

    let rec = app.state.store.run(&run.id).await.unwrap();
    let steps = app.state.store.steps(&run.id).await.unwrap();
    let v = Viewer {
        role: Role::Operator,
        is_requester: true,
        person: None,
        csrf: "x".into(),
    };
    let mut render = Vec::new();
    let mut bytes = 0;
    for _ in 0..10 {
        let t = Instant::now();
        let header = runview::run_header(&rec, &steps, &v, now, &[]);
        let phases = runview::phases(&rec, &steps, &v, &Default::default());
        let mut html = askama::Template::render(&header).unwrap();
        for p in &phases {
            for c in &p.cards {
                html.push_str(&askama::Template::render(c).unwrap());
            }
        }
        bytes = html.len();
        render.push(t.elapsed());
    }
    render.sort();
    let mut full = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let r = app.get(&viewer, &format!("/runs/{}", run.id)).await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        assert!(body.contains("step-1999"));
        full.push(t.elapsed());
    }
    full.sort();
    println!(
        "run page, 2,000 steps: render {:?} median ({:?} max, {} KiB of HTML); whole GET incl. store reads {:?} median ({:?} max)",
        percentile(&render, 0.5),
        render.last().unwrap(),
        bytes / 1024,
        percentile(&full, 0.5),
        full.last().unwrap()
    );

    // 1,000 watchers on the run's event stream.
    const WATCHERS: usize = 1000;
    let rss_before = rss_kib();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String, Instant)>();
    let mut tasks = Vec::new();
    let last = app
        .state
        .store
        .run_events(&run.id)
        .await
        .unwrap()
        .last()
        .unwrap()
        .id;
    for i in 0..WATCHERS {
        let resp = app
            .get(&viewer, &format!("/runs/{}/events?after={last}", run.id))
            .await;
        assert_eq!(resp.status(), 200);
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = resp.bytes_stream();
            let mut partial = String::new();
            while let Some(Ok(chunk)) = s.next().await {
                partial.push_str(&String::from_utf8_lossy(&chunk));
                // Whole lines only: a frame may arrive in pieces.
                let Some(end) = partial.rfind('\n') else {
                    continue;
                };
                let now = Instant::now();
                for line in partial[..end].lines() {
                    if let Some(id) = line.strip_prefix("id: ") {
                        let _ = tx.send((i, id.to_string(), now));
                    } else if let Some(at) = line.find("bench-line-") {
                        let token: String = line[at..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                            .collect();
                        let _ = tx.send((i, token, now));
                    }
                }
                partial.drain(..=end);
            }
        }));
    }
    // Let every stream register.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.state.live.watching(&run.id).is_empty() || Arc::strong_count(&app.state.live) == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib();

    let mut latencies = Vec::new();
    let actor = Actor::new("boss", &[Role::Approver]);
    for round in 0..5 {
        let t0 = Instant::now();
        let event = app
            .state
            .store
            .comment(
                &run.id,
                Some("s0000"),
                &actor,
                &format!("round {round}"),
                app.clock.now_ms(),
            )
            .await
            .unwrap();
        let want = event.id.to_string();
        let mut got = 0;
        while got < WATCHERS {
            let (_, id, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("all watchers hear within 30 s")
                .unwrap();
            if id == want {
                latencies.push(at - t0);
                got += 1;
            }
        }
    }
    latencies.sort();
    println!(
        "SSE fan-out to {WATCHERS} watchers, commit → receipt over 5 commits: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );

    // Step log lines: written (and committed) through a step-log scope, appended live.
    let log = app.state.store.step_log().clone();
    let clock: Arc<dyn lockstep::engine::clock::Clock> =
        Arc::new(lockstep::engine::clock::TokioClock::new());
    let mut line_latencies = Vec::new();
    for round in 0..5 {
        let key = lockstep::engine::executor::IdempotencyKey {
            run_id: run.id.clone(),
            step_id: "s0000".into(),
            attempt: 1,
        };
        let want = format!("bench-line-{round}");
        let said = want.clone();
        let t0 = Instant::now();
        lockstep::engine::steplog::scope(log.clone(), key, clock.clone(), async move {
            lockstep::engine::steplog::line(said);
        })
        .await;
        let mut got = 0;
        while got < WATCHERS {
            let (_, token, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("all watchers hear the line within 30 s")
                .unwrap();
            if token == want {
                line_latencies.push(at - t0);
                got += 1;
            }
        }
    }
    line_latencies.sort();
    println!(
        "step log line to {WATCHERS} watchers, write → receipt over 5 lines: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&line_latencies, 0.5),
        percentile(&line_latencies, 0.99),
        line_latencies.last().unwrap()
    );
    println!(
        "memory per watcher: {:.1} KiB (RSS {} → {} KiB for {WATCHERS} streams, server and client sides together)",
        (rss_after.saturating_sub(rss_before)) as f64 / WATCHERS as f64,
        rss_before,
        rss_after
    );
    for t in tasks {
        t.abort();
    }
}
