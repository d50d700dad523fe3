//! Scale benchmark (not a test): `cargo bench --bench scale`.
//!
//! Generates clustered Data Centers of 10, 50, 200 and 400 servers (two Registration Masters, one web
//! server with the Management API, a quarter of the estate DataTransfer API nodes — 51 at 200 —
//! and the rest directory servers in pairs across the two sides), then for each size, in a child
//! process of its own so peak memory is that size's alone:
//! - plan expansion of the `upgrade-8.11` runbook (time, steps);
//! - a rehearsal with zero simulated delays (`lockstep::rehearsal`: the real engine on SQLite,
//!   simulated agents over mutual TLS, SQL over TDS, probes over HTTPS), start and drive times;
//! - peak resident memory of the process (VmHWM).
//!
//! Sizes: LOCKSTEP_BENCH_SIZES (default "10,50,200,400": 400 shows whether the growth stays
//! linear beyond the 200-server target). Lines starting `RESULT` are read by
//! `scripts/bench-all`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use lockstep::engine::machine::RunStatus;
use lockstep::rehearsal::{plan_for, Options, Rehearsal};

const CHILD: &str = "LOCKSTEP_BENCH_SCALE_CHILD";

fn server(out: &mut String, name: &str, side: &str, roles: &str, extra: &str) {
    let lower = name.to_lowercase();
    out.push_str(&format!(
        "[[servers]]\nname = \"{name}\"\nfqdn = \"{lower}.bench.corp\"\nside = \"{side}\"\nroles = [{roles}]\nconnected_version = \"8.8.6.1\"\nwindows = \"2012 R2\"\nagent = \"https://{lower}.bench.corp:9443\"\n{extra}\n"
    ));
}

/// A valid clustered inventory of `size` servers (see the module doc for its shape).
fn inventory(size: usize) -> String {
    let dt = size / 4;
    let dirs = (size - 3 - dt) / 2 * 2;
    let dt = size - 3 - dirs;
    let mut out = String::from("name = \"Bench estate\"\ntopology = \"clustered\"\n\n");
    let facts = "[servers.facts]\nfree_disk_mb = 102400\nregistry_mdf_mb = 61440\nregistry_ldf_mb = 8192\nsql_service_account = 'BENCH\\svc-sql'\nsql_agent_account = 'BENCH\\svc-sql'\n";
    for (i, side) in ["primary", "secondary"].iter().enumerate() {
        server(
            &mut out,
            &format!("RM{}", i + 1),
            side,
            "\"registry\"",
            &format!("sql_server = \"2014 SP2\"\n{facts}"),
        );
    }
    for p in 0..dirs / 2 {
        for (side, suffix) in [("primary", "A"), ("secondary", "B")] {
            server(
                &mut out,
                &format!("DIR{p:03}{suffix}"),
                side,
                "\"directory\"",
                &format!("sql_server = \"2014 SP2\"\npair = \"pair-{p}\"\n"),
            );
        }
    }
    server(
        &mut out,
        "WEB1",
        "primary",
        "\"support-center\", \"account-management-website\", \"management-api\", \"reporting-services\"",
        "[servers.certificate]\ncommon_name = \"web1.bench.corp\"\nissuer = \"trusted-ca\"\nport = 443\n",
    );
    for d in 0..dt {
        let side = if d % 2 == 0 { "primary" } else { "secondary" };
        let name = format!("DT{d:03}");
        server(
            &mut out,
            &name,
            side,
            "\"datatransfer-api\"",
            &format!(
                "[servers.certificate]\ncommon_name = \"{}.bench.corp\"\nissuer = \"trusted-ca\"\nport = 443\n\n[servers.datatransfer]\nssl = true\n",
                name.to_lowercase()
            ),
        );
    }
    out
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

/// One size, in this (child) process.
fn child(size: usize, dir: &Path) {
    let inv = dir.join("estate.toml");
    std::fs::write(&inv, inventory(size)).expect("write inventory");
    let options = Options {
        inventory: inv,
        runbook: "upgrade-8.11".into(),
        params: BTreeMap::new(),
        faults: Vec::new(),
        db: dir.join("rehearsal.db"),
        sim_dir: dir.join("sim"),
        runbooks_dir: None,
    };
    let t = Instant::now();
    let plan = plan_for(&options).expect("plan expansion");
    let expand = t.elapsed();
    let steps = plan.steps.len();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let t = Instant::now();
    let (status, started) = rt.block_on(async {
        let r = Rehearsal::start(options).await.expect("rehearsal starts");
        let started = t.elapsed();
        let status = r.drive(&mut |_| {}).await.expect("rehearsal drives");
        r.stop().await.expect("rehearsal stops");
        (status, started)
    });
    let total = t.elapsed();
    println!(
        "{size:>4} servers: plan expansion {:>8.2} ms ({steps} steps); rehearsal {:>7.2} s (start {:.2} s) -> {}; peak RSS {:.1} MiB",
        expand.as_secs_f64() * 1000.0,
        total.as_secs_f64(),
        started.as_secs_f64(),
        if status == RunStatus::Succeeded { "succeeded".to_string() } else { format!("{status:?}") },
        vm_hwm_kib() as f64 / 1024.0
    );
    println!(
        "RESULT scale_{size}_expand_ms={:.3}",
        expand.as_secs_f64() * 1000.0
    );
    println!("RESULT scale_{size}_steps={steps}");
    println!("RESULT scale_{size}_rehearsal_s={:.3}", total.as_secs_f64());
    println!(
        "RESULT scale_{size}_succeeded={}",
        status == RunStatus::Succeeded
    );
    println!(
        "RESULT scale_{size}_peak_mib={:.1}",
        vm_hwm_kib() as f64 / 1024.0
    );
}

fn main() {
    if let Ok(size) = std::env::var(CHILD) {
        let size: usize = size.parse().expect("size");
        let dir = tempfile::tempdir().expect("temp dir");
        child(size, dir.path());
        return;
    }
    let sizes = std::env::var("LOCKSTEP_BENCH_SIZES").unwrap_or_else(|_| "10,50,200,400".into());
    println!("scale: upgrade-8.11 over generated clustered estates, one child process per size");
    let exe = std::env::current_exe().expect("own path");
    for size in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
    {
        let status = std::process::Command::new(&exe)
            .env(CHILD, size.to_string())
            .status()
            .expect("child runs");
        if !status.success() {
            println!("{size:>4} servers: child failed ({status})");
        }
    }
}
