//! The crash test: the real `lockstep` binary drives a 50-step plan on the journaling executor and
//! is killed with SIGKILL at random moments, then restarted, again and again. Afterwards:
//! - no idempotency key (run, step, attempt) ever started its side effect twice (the journal),
//! - every step succeeded, or was in doubt (outcome unknown) and was settled by a person,
//! - dependencies were respected (a step started only after what it depends on finished),
//! - `PRAGMA integrity_check` is ok and `lockstep audit verify` passes.
//!
//! CI runs 25 kills. For a longer soak, more kills need a slower run (each action's side effect
//! takes LOCKSTEP_CRASH_EFFECT_MS, default 40):
//! `LOCKSTEP_CRASH_KILLS=300 LOCKSTEP_CRASH_EFFECT_MS=200 cargo test --test engine_crash`.
//! `LOCKSTEP_CRASH_SEED=N` replays one sequence of kill times (the seed is printed).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lockstep::engine::journal::read_journal;
use lockstep::engine::machine::{StepEvent, StepStatus};
use lockstep::engine::testkit::{noop_plan, operator};
use lockstep::engine::Store;
use rand::{Rng, SeedableRng};

const BIN: &str = env!("CARGO_BIN_EXE_lockstep");

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run_local(dir: &Path) -> Command {
    let effect = env_number("LOCKSTEP_CRASH_EFFECT_MS", 40).to_string();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "engine",
        "run-local",
        "--per-run",
        "2",
        "--effect-ms",
        &effect,
    ])
    .arg("--db")
    .arg(dir.join("crash.db"))
    .arg("--plan-json")
    .arg(dir.join("plan.json"))
    .arg("--journal")
    .arg(dir.join("journal.jsonl"))
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// 50 steps in ten lanes of five (step i waits for step i-10), spread over five hosts.
fn plan_json(dir: &Path) {
    let mut plan = noop_plan(50, false, &["h0", "h1", "h2", "h3", "h4"]);
    for i in 10..50 {
        plan.steps[i].depends_on = vec![format!("s{:04}", i - 10)];
    }
    std::fs::write(dir.join("plan.json"), serde_json::to_string(&plan).unwrap()).unwrap();
}

/// What an operator does with steps in doubt: checks the host (here: the journal shows the
/// attempt started) and marks them done with that evidence. No step may have failed.
async fn settle_doubts(dir: &Path, settled: &mut HashSet<String>) {
    let store = Store::open(&dir.join("crash.db")).await.unwrap();
    let Some(run) = store.runs().await.unwrap().into_iter().next() else {
        return; // killed before the run was created
    };
    for s in store.steps(&run.id).await.unwrap() {
        match s.status {
            StepStatus::OutcomeUnknown => {
                let evidence = format!(
                    "journal shows attempt {} started; checked by hand",
                    s.attempt
                );
                let done = StepEvent::MarkDone {
                    actor: operator("pat"),
                    evidence,
                };
                store
                    .apply_step_event(&run.id, &s.id, &done, 0)
                    .await
                    .unwrap();
                settled.insert(s.id.clone());
            }
            StepStatus::Failed => panic!("step {} failed: {:?}", s.id, s.state.last_error),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_engine_at_random_moments_never_runs_an_attempt_twice_nor_loses_a_step() {
    let kills = env_number("LOCKSTEP_CRASH_KILLS", 25) as usize;
    let seed: u64 = std::env::var("LOCKSTEP_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test: {kills} kills, LOCKSTEP_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    plan_json(dir.path());

    let mut killed = 0;
    let mut finished_early = false;
    let mut settled_by_person = HashSet::new();
    while killed < kills {
        let mut child = run_local(dir.path()).spawn().expect("start lockstep");
        let delay = Duration::from_millis(rng.gen_range(5..120));
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_some() {
            finished_early = true; // the run needs nothing more from the engine
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        killed += 1;
        // Between lives a person settles what a kill left in doubt, so the run keeps moving.
        settle_doubts(dir.path(), &mut settled_by_person).await;
    }
    eprintln!("killed {killed} times (finished early: {finished_early})");
    assert!(
        killed >= kills.min(10),
        "the run finished before it was killed {} times; raise LOCKSTEP_CRASH_EFFECT_MS",
        kills.min(10)
    );

    // Let it finish; whatever is in doubt a person settles.
    for round in 0.. {
        assert!(round < 60, "the run did not finish");
        let out = run_local(dir.path()).output().expect("run lockstep");
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(3),
            "run-local failed: {:?}\n{}",
            code,
            String::from_utf8_lossy(&out.stderr)
        );
        if code == Some(0) {
            break;
        }
        settle_doubts(dir.path(), &mut settled_by_person).await;
    }

    let store = Store::open(&dir.path().join("crash.db")).await.unwrap();
    store.integrity_check().await.expect("integrity_check ok");
    let run = store.runs().await.unwrap().remove(0);
    let steps = store.steps(&run.id).await.unwrap();
    assert_eq!(steps.len(), 50);
    for s in &steps {
        assert_eq!(s.status, StepStatus::Succeeded, "step {}", s.id);
    }

    let journal = read_journal(&dir.path().join("journal.jsonl")).unwrap();
    let mut starts: HashMap<&str, usize> = HashMap::new();
    for e in journal.iter().filter(|e| e.phase == "start") {
        *starts.entry(e.key.as_str()).or_default() += 1;
    }
    for (key, n) in &starts {
        assert_eq!(*n, 1, "attempt {key} started {n} times");
    }
    // Every step's side effect happened: each succeeded step has a started attempt.
    for s in &steps {
        assert!(
            journal
                .iter()
                .any(|e| e.phase == "start" && e.step_id == s.id),
            "step {} succeeded without running",
            s.id
        );
    }
    // Dependencies: a step's first start comes after a finished attempt of the step it waits for
    // (or after a person settled that step).
    let position = |pred: &dyn Fn(&lockstep::engine::journal::JournalEntry) -> bool| {
        journal.iter().position(pred)
    };
    for s in &steps {
        for dep in &s.spec.depends_on {
            if settled_by_person.contains(dep) {
                continue;
            }
            let dep_done =
                position(&|e| e.phase == "done" && &e.step_id == dep).expect("dependency finished");
            let started = position(&|e| e.phase == "start" && e.step_id == s.id).unwrap();
            assert!(dep_done < started, "{} started before {dep} finished", s.id);
        }
    }

    let verify = Command::new(BIN)
        .args(["audit", "verify", "--db"])
        .arg(dir.path().join("crash.db"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    eprintln!(
        "{} keys started once each; {} steps settled by a person after a kill left them in doubt",
        starts.len(),
        settled_by_person.len()
    );
}
