//! `lockstep rehearse` as a change team runs it: the real binary, a report on stdout (text or
//! JSON), progress on stderr, exit 0 only on success, 1 when the rehearsal stopped, 2 when it
//! could not start.

use std::process::Command;

fn rehearse(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .arg("rehearse")
        .args(args)
        .output()
        .expect("lockstep rehearse runs")
}

#[test]
fn a_standalone_upgrade_rehearsal_succeeds_and_reports_the_end_state_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let out = rehearse(&[
        "--inventory",
        "examples/standalone.toml",
        "--runbook",
        "upgrade-8.11",
        "--format",
        "json",
        "--db",
        db.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("succeeded"), "progress on stderr: {stderr}");
    assert!(
        !stderr.contains("INFO"),
        "progress only, not per-step log lines, unless RUST_LOG asks: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["status"], "succeeded");
    assert_eq!(report["succeeded"], true);
    for s in report["servers"].as_array().unwrap() {
        assert_eq!(s["version"], "8.11", "{s}");
    }
    assert!(report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["duration_ms"].is_number()));
    assert!(db.exists(), "the run is kept in --db");
}

#[test]
fn a_fault_stops_the_rehearsal_with_exit_1_and_says_where_and_why() {
    let out = rehearse(&[
        "--inventory",
        "examples/mirrored.toml",
        "--runbook",
        "upgrade-8.11",
        "--fault",
        "DC1:checkdb-error",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("DID NOT SUCCEED"), "{text}");
    assert!(text.contains("Stopped at: verify-integrity@DC1"), "{text}");
}

#[test]
fn an_unknown_fault_is_refused_before_anything_starts() {
    let out = rehearse(&[
        "--inventory",
        "examples/mirrored.toml",
        "--runbook",
        "upgrade-8.11",
        "--fault",
        "DC1:meltdown",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown fault `meltdown`"), "{stderr}");
}

#[test]
fn a_fault_on_a_server_the_inventory_lacks_is_refused_before_anything_starts() {
    let out = rehearse(&[
        "--inventory",
        "examples/mirrored.toml",
        "--runbook",
        "upgrade-8.11",
        "--fault",
        "NOPE:tds-drop",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the inventory has no server NOPE"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("agent listening"),
        "nothing started: {stderr}"
    );
}
