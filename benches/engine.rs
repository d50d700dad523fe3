//! Engine benchmark (not a test): `cargo bench --bench engine`.
//!
//! Prints durable transitions per second (one per transaction; 100 per transaction; and group
//! commit, where 50 callers apply driver events at once through `Store::apply_driver_event`, the
//! path the driver takes when many steps finish together), the time to drive a 1,000-step no-op
//! plan to completion on the journaling executor, the same with 10 runs at once, and, for
//! comparison, a raw SQLite insert loop with the same pragmas (WAL, synchronous=FULL) on the same
//! disk. Every transition is a compare-and-set plus a hash-chained audit event, committed with
//! fsync, plus the head file written beside the database (flushed in the background).
//! Sizes: LOCKSTEP_BENCH_STEPS (default 1000), LOCKSTEP_BENCH_RUNS (default 10),
//! LOCKSTEP_BENCH_TRANSITIONS (default 500, a multiple of 100). `LOCKSTEP_BENCH_ONLY=transitions`
//! skips the drives (for profiling the transitions alone).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep::engine::clock::TokioClock;
use lockstep::engine::executor::Outcome;
use lockstep::engine::journal::JournalExecutor;
use lockstep::engine::machine::{RunStatus, StepEvent};
use lockstep::engine::store::DriveLimits;
use lockstep::engine::testkit::noop_plan;
use lockstep::engine::{Engine, EngineConfig, Router, Store};
use lockstep::knowledge::plan::Plan;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` no-op steps in lanes of ten: step i waits for step i-10.
fn laned_plan(n: usize) -> Plan {
    let mut plan = noop_plan(n, false, &[]);
    for i in 10..n {
        plan.steps[i].depends_on = vec![format!("s{:04}", i - 10)];
    }
    plan
}

async fn started(store: &Store, plan: Plan) -> String {
    lockstep::engine::testkit::started_run(store, plan, "BENCH").await
}

/// Single transitions and the raw insert loop, interleaved in rounds of 50 so that both see the
/// same disk and the same load from other processes (on a shared machine the fsync rate drifts
/// by a factor of two within seconds); then batched and group commit.
async fn transitions(dir: &std::path::Path) {
    let n = env_usize("LOCKSTEP_BENCH_TRANSITIONS", 500).max(100) / 100 * 100;
    let rounds = 10;
    let store = Store::open(&dir.join("t.db")).await.expect("open");
    let run_id = started(&store, noop_plan(n, false, &[])).await;
    let mut raw = RawLoop::open(dir).await;
    let (mut raw_time, mut single) = (Duration::ZERO, Duration::ZERO);
    for r in 0..rounds {
        raw_time += raw.insert(n / rounds).await;
        let t = Instant::now();
        for i in (r * n / rounds)..((r + 1) * n / rounds) {
            store
                .apply_step_event(&run_id, &format!("s{i:04}"), &StepEvent::Unblock, 1)
                .await
                .expect("unblock");
        }
        single += t.elapsed();
    }
    println!(
        "raw SQLite insert, one per transaction:  {:>8.0}/s  ({n} in {:.2?}, interleaved with the next line)",
        n as f64 / raw_time.as_secs_f64(),
        raw_time
    );
    println!(
        "durable transitions, one per transaction: {:>8.0}/s  ({n} in {:.2?})",
        n as f64 / single.as_secs_f64(),
        single
    );
    let t = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let batch: Vec<(String, StepEvent)> = chunk
            .iter()
            .map(|i| (format!("s{i:04}"), StepEvent::Start))
            .collect();
        store
            .apply_step_events(&run_id, &batch, 2)
            .await
            .expect("batch");
    }
    let batched = t.elapsed();
    println!(
        "durable transitions, 100 per transaction: {:>8.0}/s  ({n} in {:.2?})",
        n as f64 / batched.as_secs_f64(),
        batched
    );
    // Group commit: 50 tasks at once, each finishing its share of the steps one by one.
    let callers = 50;
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..callers {
        let store = store.clone();
        let run_id = run_id.clone();
        tasks.spawn(async move {
            for i in (c..n).step_by(callers) {
                let done = StepEvent::Finished {
                    outcome: Outcome::Succeeded {
                        evidence: serde_json::Value::Null,
                    },
                };
                store
                    .apply_driver_event(&run_id, &format!("s{i:04}"), &done, 3)
                    .await
                    .expect("finished");
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("caller");
    }
    let grouped = t.elapsed();
    println!(
        "durable transitions, group commit ({callers} callers): {:>8.0}/s  ({n} in {:.2?})",
        n as f64 / grouped.as_secs_f64(),
        grouped
    );
}

async fn drive(dir: &std::path::Path, name: &str, runs: usize, steps: usize) -> Duration {
    let store = Store::open(&dir.join(format!("{name}.db")))
        .await
        .expect("open");
    let journal = Arc::new(JournalExecutor::in_memory());
    let config = EngineConfig {
        limits: DriveLimits {
            per_run: 10,
            per_host: 1,
        },
        ..EngineConfig::default()
    };
    let engine = Engine::with(
        store.clone(),
        Router::all(journal.clone()),
        Arc::new(TokioClock::new()),
        config,
    );
    let mut ids = Vec::new();
    for _ in 0..runs {
        ids.push(started(&store, laned_plan(steps)).await);
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let t = Instant::now();
    let driver = tokio::spawn(engine.drive(async {
        let _ = stopped.await;
    }));
    let mut events = store.subscribe();
    loop {
        let mut done = 0;
        for id in &ids {
            if store.run(id).await.expect("run").status == RunStatus::Succeeded {
                done += 1;
            }
        }
        if done == ids.len() {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
        while events.try_recv().is_ok() {}
    }
    let elapsed = t.elapsed();
    let _ = stop.send(());
    driver.await.expect("driver task").expect("driver");
    assert_eq!(
        journal.phase("start").len(),
        runs * steps,
        "every step ran once"
    );
    elapsed
}

/// A raw SQLite insert loop with the store's pragmas (WAL, synchronous=FULL), one row per
/// transaction: the disk's durable-commit limit.
struct RawLoop {
    conn: sqlx::SqliteConnection,
    next: usize,
}

impl RawLoop {
    async fn open(dir: &std::path::Path) -> RawLoop {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
        use sqlx::ConnectOptions;
        let mut conn = SqliteConnectOptions::new()
            .filename(dir.join("raw.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .connect()
            .await
            .expect("raw db");
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
            .execute(&mut conn)
            .await
            .expect("table");
        RawLoop { conn, next: 0 }
    }

    async fn insert(&mut self, n: usize) -> Duration {
        use sqlx::Connection;
        let t = Instant::now();
        for _ in 0..n {
            let mut tx = self.conn.begin().await.expect("begin");
            sqlx::query("INSERT INTO t (payload) VALUES (?)")
                .bind(format!("row {}", self.next))
                .execute(&mut *tx)
                .await
                .expect("insert");
            tx.commit().await.expect("commit");
            self.next += 1;
        }
        t.elapsed()
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        println!(
            "lockstep engine benchmark (database in {})",
            dir.path().display()
        );
        transitions(dir.path()).await;
        if std::env::var("LOCKSTEP_BENCH_ONLY").as_deref() == Ok("transitions") {
            return;
        }
        let steps = env_usize("LOCKSTEP_BENCH_STEPS", 1000);
        let runs = env_usize("LOCKSTEP_BENCH_RUNS", 10);
        let one = drive(dir.path(), "one", 1, steps).await;
        println!(
            "drive a {steps}-step no-op plan to completion: {one:.2?} ({:.0} steps/s)",
            steps as f64 / one.as_secs_f64()
        );
        let many = drive(dir.path(), "many", runs, steps).await;
        println!(
            "drive {runs} such runs at once:              {many:.2?} ({:.0} steps/s)",
            (runs * steps) as f64 / many.as_secs_f64()
        );
    });
}
