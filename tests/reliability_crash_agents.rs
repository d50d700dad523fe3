//! The crash campaign on real agents: `lockstep engine run-local --agents` drives a 50-step plan
//! whose steps go, over mutual TLS, to five real `lockstep-agent` processes (simulated backend,
//! each action taking LOCKSTEP_CRASH_ACTION_MS), and the orchestrator is killed with SIGKILL at
//! random moments — starting up, reconciling, claiming, waiting on an agent, recording a result —
//! then restarted, again and again. Properties, checked after every life and at the end:
//! - every step is pending, moving, succeeded or outcome unknown — never failed;
//! - every action id was accepted once by its agent's journal and executed at most once by the
//!   host (the simulated host's own history), and no step ran under a second attempt unless its
//!   first one never reached the host;
//! - every event the orchestrator acknowledged (printed after its commit) is still in the log,
//!   with the same hash;
//! - at the end every step succeeded, `PRAGMA integrity_check` is ok and `lockstep audit verify`
//!   passes.
//!
//! CI runs 25 kills. The campaign (200 kills, slower actions so that the run outlasts them):
//! `scripts/soak crash-agents` (README "Reliability"). `LOCKSTEP_CRASH_SEED=N` replays the kill times.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockstep::engine::machine::{StepEvent, StepStatus};
use lockstep::engine::testkit::{noop_plan, operator};
use lockstep::engine::Store;
use lockstep_agent::backend::simulated::{read_state, SimState, SimulatedHost};
use lockstep_agent::config::{AgentConfig, BackendKind};
use lockstep_protocol::ActionKind;
use rand::{Rng, SeedableRng};

const BIN: &str = env!("CARGO_BIN_EXE_lockstep");
const HOSTS: [&str; 5] = ["h0", "h1", "h2", "h3", "h4"];
const STEPS: usize = 50;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `lockstep-agent` belongs to another workspace member, which `cargo test --test …` does not
/// build: build it once into the same target folder.
fn agent_binary() -> PathBuf {
    let dir = Path::new(BIN).parent().unwrap().to_path_buf();
    let path = dir.join("lockstep-agent");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "lockstep-agent", "--bin", "lockstep-agent"])
            .env("CARGO_TARGET_DIR", dir.parent().unwrap())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of lockstep-agent failed");
    }
    path
}

fn ok(what: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Site {
    dir: PathBuf,
    db: PathBuf,
    agents: Vec<Agent>,
}

struct Agent {
    state_dir: PathBuf,
    sim: PathBuf,
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Site {
    fn lockstep(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--db")
            .arg(&self.db)
            .env("LOCKSTEP_DATA_DIR", self.dir.join("data"))
            .env("RUST_LOG", "warn");
        cmd
    }

    /// Five agents, each with its own identity, pinning the orchestrator's, registered by name.
    fn start(dir: &Path, action_ms: u64) -> Site {
        let mut site = Site {
            dir: dir.to_path_buf(),
            db: dir.join("data").join("lockstep.db"),
            agents: Vec::new(),
        };
        let orchestrator = ok(
            "lockstep agent identity",
            &mut site.lockstep(&["agent", "identity"]),
        );
        for host in HOSTS {
            let state_dir = dir.join("agents").join(host);
            let agent = |args: &[&str]| {
                let mut c = Command::new(agent_binary());
                c.args(args).arg("--state-dir").arg(&state_dir);
                c
            };
            let thumbprint = ok("lockstep-agent init", &mut agent(&["init", "--name", host]));
            ok(
                "lockstep-agent trust",
                &mut agent(&["trust", &orchestrator]),
            );
            let mut seed = SimState::data_center_server(host, "8.8.6");
            seed.faults.delay_ms.insert(ActionKind::IisReset, action_ms);
            let sim = state_dir.join("sim.json");
            SimulatedHost::create(&sim, &seed).unwrap();
            let mut cfg = AgentConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                &state_dir,
                BackendKind::Simulated,
            );
            cfg.simulated_state = Some(sim.clone());
            let config = state_dir.join("agent.toml");
            std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
            let mut child = Command::new(agent_binary())
                .arg("run")
                .arg("--config")
                .arg(&config)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start lockstep-agent");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let addr = line
                .strip_prefix("listening ")
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_else(|| panic!("lockstep-agent printed {line:?}"))
                .to_string();
            site.agents.push(Agent {
                state_dir: state_dir.clone(),
                sim,
                child,
            });
            ok(
                "lockstep agent add",
                &mut site.lockstep(&[
                    "agent",
                    "add",
                    "--server",
                    host,
                    "--url",
                    &format!("https://{addr}"),
                    "--thumbprint",
                    &thumbprint,
                ]),
            );
        }
        // 50 steps in ten lanes of five (step i waits for step i-10), spread over the five hosts.
        let mut plan = noop_plan(STEPS, false, &HOSTS);
        for i in 10..STEPS {
            plan.steps[i].depends_on = vec![format!("s{:04}", i - 10)];
        }
        std::fs::write(dir.join("plan.json"), serde_json::to_string(&plan).unwrap()).unwrap();
        site
    }

    fn run_local(&self) -> Command {
        let mut cmd = self.lockstep(&[
            "engine",
            "run-local",
            "--agents",
            "--print-events",
            "--per-run",
            "2",
        ]);
        cmd.arg("--plan-json")
            .arg(self.dir.join("plan.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// One life of the orchestrator, with a thread collecting the events it acknowledged.
struct Life {
    child: Child,
    reader: std::thread::JoinHandle<()>,
}

impl Life {
    fn start(site: &Site, acked: &Arc<Mutex<Vec<(i64, String)>>>) -> Life {
        let mut child = site.run_local().spawn().expect("start lockstep");
        let stdout = child.stdout.take().unwrap();
        let acked = acked.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut w = line.split_whitespace();
                if w.next() == Some("event") {
                    if let (Some(Ok(id)), Some(hash)) = (w.next().map(str::parse), w.next()) {
                        acked.lock().unwrap().push((id, hash.to_string()));
                    }
                }
            }
        });
        Life { child, reader }
    }

    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
        self.reader.join().unwrap();
    }

    fn finish(mut self) -> Output {
        let status = self.child.wait().unwrap();
        self.reader.join().unwrap();
        let mut stderr = Vec::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_end(&mut e, &mut stderr);
        }
        Output {
            status,
            stdout: Vec::new(),
            stderr,
        }
    }
}

/// What each host really executed: action id → times.
fn executions(site: &Site) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for a in &site.agents {
        for e in read_state(&a.sim).unwrap().history {
            *n.entry(e.id).or_default() += 1;
        }
    }
    n
}

/// Action id → how many times an agent journal accepted it.
fn accepted(site: &Site) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for a in &site.agents {
        // The agent's own reader: it verifies each frame (a torn last write is not a record).
        let records = lockstep_agent::journal::read_records(&a.state_dir.join("journal.jsonl"))
            .unwrap_or_default();
        for (id, kind) in records {
            if kind == "accepted" {
                *n.entry(id.as_str().to_string()).or_default() += 1;
            }
        }
    }
    n
}

/// `<run>/<step>/<attempt>` (with `#…` for a part of an operation) → (step, attempt).
fn step_attempt(id: &str) -> (String, u32) {
    let main = id.split('#').next().unwrap_or(id);
    let mut parts = main.rsplitn(3, '/');
    let attempt = parts.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let step = parts.next().unwrap_or_default().to_string();
    (step, attempt)
}

/// The checks that hold after every life. Then what a person does with steps in doubt: looks at
/// the host (here, its history) and marks the step done if the action ran there, or retries it
/// if it never arrived.
async fn check_and_settle(site: &Site, settled: &mut HashSet<String>) {
    for (id, n) in accepted(site) {
        assert_eq!(n, 1, "action {id} accepted {n} times by its agent");
    }
    let ran = executions(site);
    for (id, n) in &ran {
        assert_eq!(*n, 1, "action {id} executed {n} times on its host");
    }
    if !site.db.exists() {
        return;
    }
    let store = Store::open(&site.db).await.unwrap();
    let Some(run) = store.runs().await.unwrap().into_iter().next() else {
        return; // killed before the run was created
    };
    for s in store.steps(&run.id).await.unwrap() {
        match s.status {
            StepStatus::OutcomeUnknown => {
                let key = format!("{}/{}/{}", run.id, s.id, s.attempt);
                let event = if ran.contains_key(&key) {
                    StepEvent::MarkDone {
                        actor: operator("pat"),
                        evidence: format!("{key} is in the host's history"),
                    }
                } else {
                    StepEvent::Retry {
                        actor: operator("pat"),
                    }
                };
                store
                    .apply_step_event(&run.id, &s.id, &event, 0)
                    .await
                    .unwrap();
                settled.insert(s.id.clone());
            }
            StepStatus::Failed => panic!("step {} failed: {:?}", s.id, s.state.last_error),
            _ => {}
        }
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_orchestrator_of_real_agents_never_runs_an_action_twice_nor_loses_an_acknowledged_event(
) {
    let kills = env_number("LOCKSTEP_CRASH_KILLS", 25) as usize;
    let action_ms = env_number("LOCKSTEP_CRASH_ACTION_MS", 400);
    let seed: u64 = std::env::var("LOCKSTEP_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash campaign on agents: {kills} kills, actions of {action_ms} ms, LOCKSTEP_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let site = Site::start(dir.path(), action_ms);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();

    let mut killed = 0;
    let mut settled = HashSet::new();
    // Where the kills landed: lives that committed nothing (start-up, reconcile, waiting on an
    // agent) and lives cut after committing some events.
    let (mut silent_lives, mut busy_lives) = (0, 0);
    while killed < kills {
        let acked_before = acked.lock().unwrap().len();
        let mut life = Life::start(&site, &acked);
        std::thread::sleep(Duration::from_millis(rng.gen_range(10..400)));
        if life.child.try_wait().unwrap().is_some() {
            life.finish();
            break; // the run needs nothing more from the engine
        }
        life.kill();
        killed += 1;
        if acked.lock().unwrap().len() == acked_before {
            silent_lives += 1;
        } else {
            busy_lives += 1;
        }
        check_and_settle(&site, &mut settled).await;
    }
    let acked_before_last = acked.lock().unwrap().len();
    eprintln!(
        "killed {killed} times in {:.1} s ({busy_lives} lives cut after committing events, {silent_lives} before their first commit); {acked_before_last} events acknowledged",
        started.elapsed().as_secs_f64()
    );
    assert!(
        killed >= kills.min(10),
        "the run finished before it was killed {} times; raise LOCKSTEP_CRASH_ACTION_MS",
        kills.min(10)
    );

    for round in 0.. {
        assert!(round < 60, "the run did not finish");
        let out = Life::start(&site, &acked).finish();
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(3),
            "run-local failed: {code:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_and_settle(&site, &mut settled).await;
        if code == Some(0) {
            break;
        }
    }

    let store = Store::open_read_only(&site.db).await.unwrap();
    store.integrity_check().await.expect("integrity_check ok");
    let run = store.runs().await.unwrap().remove(0);
    let steps = store.steps(&run.id).await.unwrap();
    assert_eq!(steps.len(), STEPS);
    for s in &steps {
        assert_eq!(s.status, StepStatus::Succeeded, "step {}", s.id);
    }
    let events: HashMap<i64, String> = store
        .all_events()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.hash))
        .collect();
    let acked = acked.lock().unwrap().clone();
    for (id, hash) in &acked {
        assert_eq!(
            events.get(id),
            Some(hash),
            "acknowledged event #{id} is gone or changed"
        );
    }

    // At most once, per step: one attempt reached a host, unless a person retried an attempt
    // that never arrived. Every step a person did not settle ran on its host.
    let ran = executions(&site);
    let mut attempts_run: HashMap<String, HashSet<u32>> = HashMap::new();
    for id in ran.keys() {
        let (step, attempt) = step_attempt(id);
        attempts_run.entry(step).or_default().insert(attempt);
    }
    for s in &steps {
        let attempts = attempts_run.get(&s.id).map_or(0, HashSet::len);
        assert!(attempts <= 1, "step {} ran under {attempts} attempts", s.id);
        if !settled.contains(&s.id) {
            assert_eq!(attempts, 1, "step {} succeeded without running", s.id);
        }
    }

    let verify = site.lockstep(&["audit", "verify"]).output().unwrap();
    assert!(
        verify.status.success(),
        "audit verify: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
    eprintln!(
        "{} kills, {:.1} s: {} actions executed once each, {} acknowledged events all kept, {} steps settled by a person, {} events in the log",
        killed,
        started.elapsed().as_secs_f64(),
        ran.len(),
        acked.len(),
        settled.len(),
        events.len()
    );
}
