//! `lockstep campaign plan` and `lockstep campaign rehearse` through the real binary: the text
//! explains the order, the JSON has the issue's shape, refusals exit 2 naming the rule, and a
//! rehearsal exits 0 only when every server ends at the target.

use std::path::PathBuf;
use std::process::{Command, Output};

fn example(topology: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{topology}.toml"))
        .display()
        .to_string()
}

fn lockstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .env_remove("LOCKSTEP_LOG_FORMAT")
        .output()
        .expect("run lockstep")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const FULL: [&str; 6] = [
    "--target",
    "connected=8.11",
    "--target",
    "windows=2016",
    "--target",
    "sql=2016",
];

#[test]
fn the_plan_text_explains_the_order_with_the_guides_sections() {
    let inv = example("standalone");
    let mut args = vec!["campaign", "plan", "--inventory", inv.as_str()];
    args.extend(FULL);
    let out = lockstep(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    for says in [
        "1. upgrade-8.11",
        "2. upgrade-windows-server (target=2016)",
        "3. upgrade-sql-server (target=2016)",
        "Windows Server 2016 needs Connected Backup 8.8.6.1 or later on every server",
        "the 8.11 upgrade comes first",
        "Guide: \"Upgrade a Data Center Server to Windows Server\"",
        "Estate after:",
        "8.11 on Windows Server 2016, SQL Server 2016: FABDC01",
        "8.11 on Windows Server 2016: FABWEB01, FABAPI01",
    ] {
        assert!(t.contains(says), "no {says:?} in:\n{t}");
    }
}

#[test]
fn the_plan_json_is_the_issues_contract() {
    let inv = example("mirrored");
    let mut args = vec![
        "campaign",
        "plan",
        "--inventory",
        inv.as_str(),
        "--format",
        "json",
    ];
    args.extend(FULL);
    let out = lockstep(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["target"]["connected"], "8.11");
    assert_eq!(v["target"]["sql_server"], "2016");
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3);
    assert_eq!(stages[0]["runbook"], "upgrade-8.11");
    assert_eq!(stages[2]["params"]["target"], "2016");
    assert_eq!(stages[2]["servers"], serde_json::json!(["DC1", "DC2"]));
    assert!(stages[0]["estimate_secs"].as_u64().unwrap() > 0);
    let last = &stages[2]["estate_after"][0];
    assert_eq!(last["name"], "DC1");
    assert_eq!(last["version"], "8.11");
    assert_eq!(last["windows"], "2016");
    assert_eq!(last["sql_server"], "2016");
}

#[test]
fn refusals_exit_2_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.toml");
    let body = std::fs::read_to_string(example("mirrored"))
        .unwrap()
        .replace(
            "connected_version = \"8.8.6\"",
            "connected_version = \"8.7\"",
        );
    std::fs::write(&old, body).unwrap();
    let old = old.display().to_string();
    let mirrored = example("mirrored");
    for (inv, targets, rule, outside) in [
        (old.as_str(), vec!["connected=8.11"], "direct-upgrade", true),
        (
            mirrored.as_str(),
            vec!["windows=2019"],
            "windows-release-covered",
            true,
        ),
        (
            mirrored.as_str(),
            vec!["windows=2016", "sql=2012 SP4"],
            "supported-windows-sql-combination",
            false,
        ),
        (mirrored.as_str(), vec!["os=2016"], "campaign-target", false),
    ] {
        let mut args = vec!["campaign", "plan", "--inventory", inv, "--format", "json"];
        for t in &targets {
            args.extend(["--target", t]);
        }
        let out = lockstep(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{targets:?}: {}",
            text(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["refusal"]["rule"], rule, "{v}");
        assert_eq!(v["refusal"]["outside_guide"], outside, "{v}");
        let err = text(&out.stderr);
        assert!(err.contains(&format!("campaign refused: {rule}")), "{err}");
        if outside {
            assert!(err.contains("outside the vendor's guide"), "{err}");
        }
    }
}

#[test]
fn a_bad_inventory_or_no_target_exits_2() {
    let out = lockstep(&[
        "campaign",
        "plan",
        "--inventory",
        "/nonexistent.toml",
        "--target",
        "sql=2016",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/nonexistent.toml"),
        "{}",
        text(&out.stderr)
    );
    let inv = example("mirrored");
    let out = lockstep(&["campaign", "plan", "--inventory", inv.as_str()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap refuses a missing --target"
    );
}

#[test]
fn a_rehearsed_campaign_exits_0_with_every_server_at_the_target() {
    let inv = example("standalone");
    let mut args = vec![
        "campaign",
        "rehearse",
        "--inventory",
        inv.as_str(),
        "--format",
        "json",
    ];
    args.extend(FULL);
    let out = lockstep(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "succeeded");
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3);
    assert!(stages
        .iter()
        .all(|s| s["status"] == "succeeded" && s["stopped_at"].is_null()));
    for s in v["servers"].as_array().unwrap() {
        assert_eq!(s["version"], "8.11", "{s}");
        assert_eq!(s["windows"], "2016", "{s}");
    }
    assert_eq!(v["servers"][0]["sql_server"], "2016");
}
