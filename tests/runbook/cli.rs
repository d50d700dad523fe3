//! The command line as other tools and people use it: `lockstep runbook list|show` and
//! `lockstep plan`, run as the real binary.

use std::path::Path;
use std::process::{Command, Output};

fn lockstep(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("LOCKSTEP_RUNBOOKS_DIR")
        .output()
        .expect("run lockstep")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn plan_json_follows_the_contract() {
    let o = lockstep(&[
        "plan",
        "--inventory",
        "examples/clustered.toml",
        "--runbook",
        "upgrade-8.11",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(v["runbook"], "upgrade-8.11");
    assert_eq!(v["topology"], "clustered");
    let steps = v["steps"].as_array().expect("steps");
    assert!(steps.len() > 50);
    let mut seen = std::collections::HashSet::new();
    for s in steps {
        for key in ["id", "title", "section", "kind"] {
            assert!(s[key].is_string(), "{key} in {s}");
        }
        assert!(s["host"].is_string() || s["host"].is_null(), "host in {s}");
        for d in s["depends_on"].as_array().expect("depends_on") {
            assert!(
                seen.contains(d.as_str().unwrap()),
                "{} depends on a later step {d}",
                s["id"]
            );
        }
        seen.insert(s["id"].as_str().unwrap().to_string());
    }
    let unbound = steps
        .iter()
        .find(|s| s["id"] == "approve-window")
        .expect("gate");
    assert!(unbound["host"].is_null());
    assert_eq!(unbound["kind"], "approval");
}

#[test]
fn plan_text_is_the_printable_runbook() {
    let o = lockstep(&[
        "plan",
        "--inventory",
        "examples/mirrored.toml",
        "--runbook",
        "upgrade-8.11",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("Upgrade Connected Backup to 8.11 (upgrade-8.11)"),
        "{text}"
    );
    assert!(text.contains("Phase 1: Prepare"));
    assert!(text.contains("seed:     \"Stop Data Center Services\""));
    assert!(text.contains("check:"));
}

#[test]
fn plan_dot_is_a_graphviz_digraph() {
    let o = lockstep(&[
        "plan",
        "--inventory",
        "examples/standalone.toml",
        "--runbook",
        "upgrade-sql-server",
        "--param",
        "target=2016",
        "--format",
        "dot",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dot = stdout(&o);
    assert!(dot.starts_with("digraph \"upgrade-sql-server\" {"), "{dot}");
    assert!(dot.contains("->"));
    assert!(dot.trim_end().ends_with('}'));
}

#[test]
fn a_missing_parameter_is_refused_with_what_to_give() {
    let o = lockstep(&[
        "plan",
        "--inventory",
        "examples/mirrored.toml",
        "--runbook",
        "upgrade-sql-server",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--param target=VALUE"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn a_malformed_parameter_is_refused() {
    let o = lockstep(&[
        "plan",
        "--inventory",
        "examples/mirrored.toml",
        "--runbook",
        "upgrade-sql-server",
        "--param",
        "target",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not KEY=VALUE"), "{}", stderr(&o));
}

#[test]
fn an_unknown_runbook_is_refused_with_the_known_ones() {
    let o = lockstep(&[
        "plan",
        "--inventory",
        "examples/mirrored.toml",
        "--runbook",
        "upgrade-9",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("known: upgrade-8.11"), "{}", stderr(&o));
}

#[test]
fn an_invalid_inventory_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "name = \"x\"\ntopology = \"ring\"\nservers = []\n").unwrap();
    let o = lockstep(&[
        "plan",
        "--inventory",
        path.to_str().unwrap(),
        "--runbook",
        "upgrade-8.11",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.toml:2"), "{}", stderr(&o));
}

#[test]
fn runbook_list_names_every_runbook() {
    let o = lockstep(&["runbook", "list", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ids: Vec<&str> = v["runbooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6, "{ids:?}");
}

#[test]
fn runbook_show_gives_each_step_its_seed_section() {
    let o = lockstep(&["runbook", "show", "upgrade-8.11"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("redirect-registryconnect"));
    assert!(
        text.contains("seed: \"Redirect Web Services Applications to Another Server\""),
        "{text}"
    );
    let o = lockstep(&["runbook", "show", "upgrade-sql-server", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for s in v["steps"].as_array().unwrap() {
        assert!(s["section"].is_string(), "{s}");
    }
}

#[test]
fn a_site_runbook_directory_is_listed_and_planned() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.toml"),
        "id = \"site-check\"\ntitle = \"Site check\"\ndescription = \"d\"\n\n[[steps]]\nid = \"look\"\ntitle = \"Look at {host}\"\nsection = \"Verify the Upgrade\"\nphase = \"Verify\"\nkind = \"manual\"\ntarget = { database = true }\nestimate = \"5m\"\ninstructions = \"Look.\"\n",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let o = lockstep(&[
        "plan",
        "--inventory",
        "examples/mirrored.toml",
        "--runbook",
        "site-check",
        "--runbooks-dir",
        d,
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["steps"].as_array().unwrap().len(), 2);
}

#[test]
fn help_texts_teach_with_examples() {
    for args in [
        &["plan", "--help"][..],
        &["runbook", "show", "--help"][..],
        &["runbook", "list", "--help"][..],
    ] {
        let o = lockstep(args);
        assert!(o.status.success());
        assert!(stdout(&o).contains("Examples:"), "{args:?}: {}", stdout(&o));
    }
    let o = lockstep(&["plan", "--help"]);
    assert!(stdout(&o).contains("\"depends_on\""));
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("runbooks/README.md")
        .exists());
}
