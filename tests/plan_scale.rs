//! Plans stay linear in the estate (issue #14): a 2,003-server clustered Data Center plans to
//! under 20 MB of JSON with dependencies that grow with the number of steps (joins between
//! phases instead of every server waiting for every other) and within 300 MiB, and a real
//! `lockstep serve` process stores it and creates its run through the API in seconds (a debug
//! build on a shared machine: the bound, 120 s, is generous and the figure is printed), within
//! 400 MiB;
//! 10,001 servers are refused with the limit named (422), never a 500.

mod serve_process;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Instant;

use lockstep::knowledge::expand::expand;
use lockstep::knowledge::inventory::Inventory;
use lockstep::knowledge::plan::StepKind;

fn server(out: &mut String, name: &str, side: &str, roles: &str, extra: &str) {
    let lower = name.to_lowercase();
    out.push_str(&format!(
        "[[servers]]\nname = \"{name}\"\nfqdn = \"{lower}.big.corp\"\nside = \"{side}\"\nroles = [{roles}]\nconnected_version = \"8.8.6.1\"\nwindows = \"2012 R2\"\n{extra}\n"
    ));
}

/// A clustered Data Center of `size` servers: two Registration Masters, one web server with the
/// Management API, a quarter DataTransfer API nodes, the rest directory servers in pairs.
fn inventory(size: usize) -> String {
    let dt = size / 4;
    let dirs = (size - 3 - dt) / 2 * 2;
    let dt = size - 3 - dirs;
    let mut out = String::from("name = \"Big estate\"\ntopology = \"clustered\"\n\n");
    let facts =
        "[servers.facts]\nfree_disk_mb = 102400\nregistry_mdf_mb = 61440\nregistry_ldf_mb = 8192\n";
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
                &format!("D{p}{suffix}"),
                side,
                "\"directory\"",
                &format!("sql_server = \"2014 SP2\"\npair = \"p{p}\"\n"),
            );
        }
    }
    server(
        &mut out,
        "WEB1",
        "primary",
        "\"support-center\", \"account-management-website\", \"management-api\"",
        "[servers.certificate]\ncommon_name = \"web1.big.corp\"\nissuer = \"trusted-ca\"\nport = 443\n",
    );
    for d in 0..dt {
        let side = if d % 2 == 0 { "primary" } else { "secondary" };
        server(&mut out, &format!("T{d}"), side, "\"datatransfer-api\"", "");
    }
    out
}

/// Set in the child process that plans alone, so its peak memory is the planning's own.
const CHILD: &str = "LOCKSTEP_PLAN_SCALE_CHILD";

/// The two 2,003-server tests take turns: on a two-core machine they would mostly measure each
/// other.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[test]
fn a_two_thousand_server_estate_plans_linearly_in_under_20_mb() {
    if std::env::var_os(CHILD).is_none() {
        let _turn = HEAVY.blocking_lock();
        // Run this very test again in a process of its own and read its peak memory there:
        // other tests of this binary share the process (and its allocator) otherwise.
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "a_two_thousand_server_estate_plans_linearly_in_under_20_mb",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        eprint!("{err}");
        assert!(out.status.success(), "the planning child failed");
        let peak: u64 = err
            .lines()
            .find_map(|l| l.strip_prefix("planning peak MiB: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("the child reports its peak memory");
        assert!(peak < 300, "planning peaked at {peak} MiB");
        return;
    }
    let inv = Inventory::parse(&inventory(2003)).expect("the estate is valid");
    assert_eq!(inv.servers.len(), 2003);
    let catalog = lockstep::knowledge::runbook::Catalog::builtin().expect("runbooks load");
    let rb = catalog.get("upgrade-8.11").expect("upgrade-8.11");
    let t = Instant::now();
    let plan = expand(rb, &inv, &BTreeMap::new()).expect("plans");
    let json = serde_json::to_vec(&plan).unwrap();
    let edges: usize = plan.steps.iter().map(|s| s.depends_on.len()).sum();
    let joins = plan
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Barrier)
        .count();
    eprintln!(
        "2,003 servers: {} steps ({joins} joins), {edges} dependencies, {:.1} MB of JSON, planned in {:.1} s",
        plan.steps.len(),
        json.len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    assert!(json.len() < 20_000_000, "{} bytes of JSON", json.len());
    assert!(
        edges < 3 * plan.steps.len(),
        "{edges} dependencies for {} steps: not linear",
        plan.steps.len()
    );
    assert!(joins > 0, "the fan-ins became joins");
    eprintln!("planning peak MiB: {}", peak_kib(std::process::id()) / 1024);
    // Every join waits for something and is waited for, and is no one's work.
    for j in plan.steps.iter().filter(|s| s.kind == StepKind::Barrier) {
        assert!(j.depends_on.len() >= 2, "{}", j.id);
        assert!(j.host.is_none() && j.gate.is_none(), "{}", j.id);
        assert!(
            plan.steps.iter().any(|s| s.depends_on.contains(&j.id)),
            "{} is waited for",
            j.id
        );
    }
}

/// Peak resident memory of a process in KiB (`VmHWM`).
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// A serve process with an operator's API token.
fn serve() -> (serve_process::Serve, String) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lockstep.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args([
            "user",
            "add",
            "olga",
            "--role",
            "operator",
            "--password-stdin",
            "--db",
        ])
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough passphrase 42\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(["user", "token", "olga", "--label", "scale", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let path = dir.path().to_path_buf();
    (
        serve_process::start(serve_process::command(&path), dir),
        token,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn its_run_is_created_through_the_api_in_seconds_and_10001_servers_are_refused() {
    let _turn = HEAVY.lock().await;
    let (s, token) = serve();
    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{}/api/v1{path}", s.base))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let idle_mib = peak_kib(s.pid()) / 1024;
    let t = Instant::now();
    let r = post(
        "/datacenters",
        serde_json::json!({ "toml": inventory(2003) }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let stored = t.elapsed();
    let r = post(
        "/runs",
        serde_json::json!({
            "datacenter": "Big estate",
            "runbook": "upgrade-8.11",
            "change_ticket": "CHG-2003",
        }),
    )
    .await
    .unwrap();
    let created = t.elapsed();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    let steps = body["steps"].as_array().map(Vec::len).unwrap_or(0);
    let peak_mib = peak_kib(s.pid()) / 1024;
    eprintln!(
        "2,003 servers through the API: stored in {:.1} s, run of {steps} steps created after {:.1} s; serve peak {peak_mib} MiB (idle {idle_mib} MiB)",
        stored.as_secs_f64(),
        created.as_secs_f64()
    );
    assert!(steps > 2003, "{steps} steps");
    // Generous: a debug build on a shared two-core machine took 24 to 47 s here (the figure
    // printed above is the news; a release build is several times faster). Before joins, the
    // same run had a million dependencies and 97 MB of plan and did not answer within 60 s.
    assert!(created.as_secs() < 120, "took {created:?}");
    // Planning, storing 18,000 steps in one transaction and answering them all as JSON.
    assert!(peak_mib < 400, "serve peaked at {peak_mib} MiB");

    let r = post(
        "/datacenters",
        serde_json::json!({ "toml": inventory(10_001).replace("Big estate", "Too big") }),
    )
    .await
    .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 422, "{body}");
    let problems = body["problems"].to_string();
    assert!(
        problems.contains("10001 servers") && problems.contains("at most 5000"),
        "the refusal names the limit: {body}"
    );
}

#[test]
fn inventory_limits_name_the_limit_and_the_entry() {
    let base = inventory(8);
    let nul = base.replacen("pair = \"p0\"", "pair = \"p\\u0000\"", 1);
    let e = Inventory::parse(&nul).unwrap_err().to_string();
    assert!(
        e.contains("servers[2].pair") && e.contains("control character U+0000"),
        "{e}"
    );
    let long = base.replacen("Big estate", &"x".repeat(300), 1);
    let e = Inventory::parse(&long).unwrap_err().to_string();
    assert!(e.contains("name") && e.contains("the limit is 256"), "{e}");
    let huge = format!("{base}\n#{}\n", "x".repeat(3 * 1024 * 1024));
    let e = Inventory::parse(&huge).unwrap_err().to_string();
    assert!(e.contains("the limit is 2097152 bytes"), "{e}");
    let e = Inventory::parse(&inventory(5_001)).unwrap_err().to_string();
    assert!(
        e.contains("lists 5001 servers") && e.contains("at most 5000"),
        "{e}"
    );
}
