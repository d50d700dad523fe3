//! Remote step overhead benchmark (not a test): `cargo bench --bench remote`, or
//! `scripts/bench-remote`, which also installs Ansible and Prefect and runs the same work through
//! them in the same invocation.
//!
//! M simulated agents listen on their own loopback addresses (127.0.0.2, .3, ...) behind pinned
//! mutual TLS. A plan of N no-op allowlisted queries per host (the agent's product-version
//! query, read-only) is driven by the real engine on a real SQLite database (WAL, FULL sync):
//! claim → commit dispatched → agent journals → result → commit succeeded (with the claim of the
//! host's next step) → event published. Each host's steps form a chain, hosts run side by side,
//! one step per host at a time. The per step × host figure is the time between two consecutive
//! `succeeded` events of one host as a subscriber receives them, so it covers the whole path of
//! one step.
//!
//! Two shapes, each measured on every side: one host × LOCKSTEP_BENCH_SINGLE_STEPS (default 200)
//! and LOCKSTEP_BENCH_HOSTS (M, default 20) × LOCKSTEP_BENCH_STEPS (N, default 20).
//! When `LOCKSTEP_BENCH_ANSIBLE` names an `ansible-playbook`, the same tasks run through it
//! (`ansible_connection=local`, forks = M, no fact gathering, `df -P /` per task). When
//! `LOCKSTEP_BENCH_PREFECT` names a Python with Prefect 3, `scripts/bench-prefect` runs the same
//! shapes as flows of no-op tasks against a `prefect server` on loopback, timed until every task
//! run is COMPLETED in its API. Ratios are per task as one host sees it, same shape. Lines
//! starting `RESULT` are read by `scripts/bench-all`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockstep::engine::clock::TokioClock;
use lockstep::engine::machine::{RunEvent, RunStatus};
use lockstep::engine::store::{DriveLimits, NewRun};
use lockstep::engine::testkit::{agent_step, approver, operator, plan_of};
use lockstep::engine::{Engine, EngineConfig, Router, Store};
use lockstep::executors::agent::{AgentEndpoint, AgentExecutor};
use lockstep::knowledge::operation::Operation;
use lockstep_agent::backend::simulated::SimState;
use lockstep_agent::simulated_agent::start_simulated_agent;
use lockstep_protocol::tls::Identity;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// N chained product-version queries on each of `hosts`.
fn plan(hosts: &[String], n: usize) -> lockstep::knowledge::plan::Plan {
    let mut steps = Vec::new();
    for h in hosts {
        for k in 0..n {
            let mut s = agent_step(&format!("{h}-s{k:04}"), Some(h));
            s.operation = Operation::ProductVersion {
                expect: "8.8.6".into(),
                component: None,
            };
            if k > 0 {
                s.depends_on = vec![format!("{h}-s{:04}", k - 1)];
            }
            steps.push(s);
        }
    }
    plan_of(steps)
}

async fn lockstep_side(dir: &Path, n: usize, m: usize) -> (Vec<Duration>, Duration) {
    let orchestrator = Identity::generate("lockstep-bench").expect("identity");
    let pin = orchestrator.thumbprint();
    let executor = AgentExecutor::new(orchestrator);
    let mut agents = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..m {
        let name = format!("H{i:03}");
        let addr = format!("127.0.0.{}:0", i + 2).parse().expect("address");
        let seed = SimState::data_center_server(&name, "8.8.6");
        let (agent, _host) =
            start_simulated_agent(&dir.join(&name), addr, Some(&seed), vec![pin], |_| {})
                .await
                .expect("simulated agent");
        executor
            .add(
                &name,
                AgentEndpoint {
                    url: agent.url(),
                    thumbprint: agent.thumbprint,
                },
            )
            .expect("register agent");
        agents.push(agent);
        hosts.push(name);
    }
    let store = Store::open(&dir.join("lockstep.db")).await.expect("store");
    let config = EngineConfig {
        limits: DriveLimits {
            per_run: m.max(1),
            per_host: 1,
        },
        // LOCKSTEP_BENCH_CLAIM_IN_COMMIT=0: the driver claims in a commit of its own (the
        // engine before issue 19), to measure both in one invocation.
        claim_in_commit: std::env::var("LOCKSTEP_BENCH_CLAIM_IN_COMMIT").as_deref() != Ok("0"),
        ..EngineConfig::default()
    };
    let engine = Engine::with(
        store.clone(),
        Router::all(Arc::new(executor)),
        Arc::new(TokioClock::new()),
        config,
    );
    let run = store
        .create_run(
            NewRun {
                change_ticket: "BENCH".into(),
                window_start: None,
                window_end: None,
                plan: plan(&hosts, n),
            },
            &operator("olga"),
            0,
        )
        .await
        .expect("create run");
    store
        .apply_run_event(
            &run.id,
            &RunEvent::Submit {
                actor: operator("olga"),
            },
            0,
        )
        .await
        .expect("submit");
    let mut events = store.subscribe();
    store
        .apply_run_event(
            &run.id,
            &RunEvent::ApproveStart {
                actor: approver("carl"),
                comment: "bench".into(),
            },
            0,
        )
        .await
        .expect("approve");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let t0 = Instant::now();
    let driver = tokio::spawn(engine.drive(async {
        let _ = stopped.await;
    }));
    let mut last: HashMap<String, Instant> = HashMap::new();
    let mut per_step = Vec::with_capacity(n * m);
    while per_step.len() < n * m {
        let ev = match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
            Ok(Ok(ev)) => ev,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(k))) => {
                panic!("subscriber lagged by {k} events: figures would be wrong")
            }
            Ok(Err(e)) => panic!("event stream ended: {e}"),
            Err(_) => panic!("no event for 60 s: the run is stuck"),
        };
        let now = Instant::now();
        if ev.kind.is_step() && ev.payload["to"] == "succeeded" {
            let step = ev.step_id.unwrap_or_default();
            let host = step.split('-').next().unwrap_or_default().to_string();
            let since = last.insert(host, now).unwrap_or(t0);
            per_step.push(now - since);
        }
        if ev.kind.is_step() && ev.payload["to"] == "failed" {
            panic!("step failed: {:?}", ev.payload);
        }
    }
    let wall = t0.elapsed();
    // The driver completes the run on its pass after the last step (not timed): wait for that
    // before stopping it, or the stop can win the race and leave the run running.
    let settled = tokio::time::timeout(Duration::from_secs(60), async {
        while store.run(&run.id).await.expect("run").status != RunStatus::Succeeded {
            let _ = tokio::time::timeout(Duration::from_millis(100), events.recv()).await;
        }
    })
    .await;
    let _ = stop.send(());
    driver.await.expect("driver task").expect("driver");
    assert!(
        settled.is_ok(),
        "the run did not complete within 60 s of its last step"
    );
    for a in agents {
        let _ = a.stop().await;
    }
    per_step.sort();
    (per_step, wall)
}

/// Runs the equivalent playbook; returns its wall time.
fn ansible_side(playbook_bin: &str, dir: &Path, n: usize, m: usize) -> Result<Duration, String> {
    let mut inv = String::from("[bench]\n");
    for i in 0..m {
        inv.push_str(&format!(
            "h{i:03} ansible_connection=local ansible_python_interpreter={}\n",
            std::env::var("LOCKSTEP_BENCH_PYTHON").unwrap_or_else(|_| "python3".into())
        ));
    }
    std::fs::write(dir.join("hosts.ini"), inv).map_err(|e| e.to_string())?;
    let mut play = String::from("- hosts: bench\n  gather_facts: false\n  tasks:\n");
    for k in 0..n {
        play.push_str(&format!(
            "    - name: disk free {k}\n      ansible.builtin.command: df -P /\n      changed_when: false\n"
        ));
    }
    std::fs::write(dir.join("play.yml"), play).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let out = std::process::Command::new(playbook_bin)
        .current_dir(dir)
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
        .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-tmp"))
        .args(["-i", "hosts.ini", "play.yml", "--forks"])
        .arg(m.to_string())
        .output()
        .map_err(|e| format!("running {playbook_bin}: {e}"))?;
    let wall = t.elapsed();
    if !out.status.success() {
        return Err(format!(
            "ansible-playbook failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(wall)
}

/// Prefect's figures per shape (hosts, steps) → ms per task as a host sees it, from one
/// `scripts/bench-prefect` call (one server start for every shape).
fn prefect_side(
    python: &str,
    shapes: &[(usize, usize)],
) -> Result<HashMap<(usize, usize), f64>, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench-prefect");
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(shapes.iter().map(|(m, n)| format!("{m}x{n}")))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("running {} {}: {e}", python, script.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut figures = HashMap::new();
    for line in text.lines() {
        match line.strip_prefix("PREFECT ") {
            Some(json) => {
                let v: serde_json::Value = serde_json::from_str(json)
                    .map_err(|e| format!("bench-prefect printed {json:?}: {e}"))?;
                let field = |k: &str| {
                    v[k].as_f64()
                        .ok_or_else(|| format!("bench-prefect: no {k} in {json}"))
                };
                figures.insert(
                    (field("hosts")? as usize, field("steps")? as usize),
                    field("per_task_ms")?,
                );
            }
            None => println!("{line}"),
        }
    }
    if !out.status.success() {
        return Err(format!("bench-prefect exited {}", out.status));
    }
    Ok(figures)
}

fn main() {
    let single = env_usize("LOCKSTEP_BENCH_SINGLE_STEPS", 200);
    let n = env_usize("LOCKSTEP_BENCH_STEPS", 20);
    let m = env_usize("LOCKSTEP_BENCH_HOSTS", 20);
    let shapes = [(1, single), (m, n)];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let prefect = match std::env::var("LOCKSTEP_BENCH_PREFECT") {
        Ok(python) => match prefect_side(&python, &shapes) {
            Ok(f) => Some(f),
            Err(e) => {
                println!("prefect: not measured: {e}");
                None
            }
        },
        Err(_) => {
            println!("prefect: not run (scripts/bench-remote installs it and sets LOCKSTEP_BENCH_PREFECT)");
            None
        }
    };
    for (m, n) in shapes {
        // Keys: `remote_1_…` for one host, `remote_m_…` for the many-host shape.
        let tag = if m == 1 { "1" } else { "m" };
        let dir = tempfile::tempdir().expect("temp dir");
        println!(
            "\nremote step overhead: {n} steps x {m} hosts, simulated agents over mutual TLS on loopback"
        );
        let (per_step, wall) = rt.block_on(lockstep_side(dir.path(), n, m));
        let p50 = percentile(&per_step, 0.50);
        let p99 = percentile(&per_step, 0.99);
        let amortized = wall / (n * m) as u32;
        let per_host = ms(wall) / n as f64;
        println!(
            "lockstep: per step x host p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; wall {:.2?} for {} steps ({:.2} ms per step as a host sees it, {:.2} ms amortized)",
            ms(p50),
            ms(p99),
            ms(*per_step.last().expect("steps")),
            wall,
            n * m,
            per_host,
            ms(amortized)
        );
        println!("RESULT remote_{tag}_hosts={m}");
        println!("RESULT remote_{tag}_steps={n}");
        println!("RESULT remote_{tag}_p50_ms={:.3}", ms(p50));
        println!("RESULT remote_{tag}_p99_ms={:.3}", ms(p99));
        println!("RESULT remote_{tag}_wall_s={:.3}", wall.as_secs_f64());
        if let Some(per_task) = prefect.as_ref().and_then(|f| f.get(&(m, n))) {
            println!(
                "prefect:  {per_task:.1} ms per task as a host sees it (until COMPLETED in its API)"
            );
            println!(
                "ratio: Prefect per task / Lockstep p50 = {:.1}x; / Lockstep wall per step as a host sees it = {:.1}x",
                per_task / ms(p50),
                per_task / per_host
            );
            println!("RESULT prefect_{tag}_per_task_ms={per_task:.3}");
            println!("RESULT prefect_{tag}_ratio={:.2}", per_task / ms(p50));
        }
        match std::env::var("LOCKSTEP_BENCH_ANSIBLE") {
            Ok(bin) => {
                let adir = dir.path().join("ansible");
                std::fs::create_dir_all(&adir).expect("ansible dir");
                match ansible_side(&bin, &adir, n, m) {
                    Ok(awall) => {
                        // Each host runs its N tasks one after another, hosts side by side
                        // (forks = M): the per task x host figure comparable to Lockstep's is wall / N.
                        let per_task = awall / n as u32;
                        println!(
                            "ansible:  wall {awall:.2?} for {} tasks ({:.1} ms per task x host as a host sees it, {:.2} ms amortized)",
                            n * m,
                            ms(per_task),
                            ms(awall / (n * m) as u32)
                        );
                        println!(
                            "ratio: Ansible per task x host / Lockstep p50 = {:.0}x; wall-time ratio = {:.1}x",
                            ms(per_task) / ms(p50),
                            awall.as_secs_f64() / wall.as_secs_f64()
                        );
                        println!("RESULT ansible_{tag}_per_task_ms={:.3}", ms(per_task));
                        println!("RESULT ansible_{tag}_ratio={:.1}", ms(per_task) / ms(p50));
                    }
                    Err(e) => println!("ansible: not measured: {e}"),
                }
            }
            Err(_) => println!(
                "ansible: not run (scripts/bench-remote installs it and sets LOCKSTEP_BENCH_ANSIBLE)"
            ),
        }
    }
}
