//! For each example Data Center (stand-alone, mirrored, clustered), the plans keep the seed's
//! ordering rules. Rules are checked on the dependency closure (`rules.rs`), never on
//! the order steps happen to be listed in.

use super::rules as plan_rules;

use std::collections::BTreeMap;
use std::path::Path;

use lockstep::knowledge::expand::expand;
use lockstep::knowledge::inventory::Inventory;
use lockstep::knowledge::plan::Plan;
use lockstep::knowledge::runbook::Catalog;

fn example(name: &str) -> Inventory {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    Inventory::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn plan(inventory: &Inventory, runbook: &str, params: &[(&str, &str)]) -> Plan {
    let catalog = Catalog::builtin().expect("built-in runbooks are valid");
    let rb = catalog.get(runbook).expect("runbook exists");
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    expand(rb, inventory, &params).unwrap_or_else(|e| panic!("{e}"))
}

fn assert_rules(result: Result<(), String>) {
    if let Err(broken) = result {
        panic!("the plan breaks the seed's ordering:\n{broken}");
    }
}

#[test]
fn the_standalone_upgrade_keeps_the_seed_order_without_redirects() {
    let inv = example("standalone.toml");
    let p = plan(&inv, "upgrade-8.11", &[]);
    assert_rules(plan_rules::upgrade_811(&p, &inv));
    assert!(p.steps.iter().all(|s| !s.id.contains("redirect")));
    assert!(
        p.steps
            .iter()
            .any(|s| s.id.starts_with("backup-weeklymaint@")),
        "stand-alone backs up with WeeklyMaint"
    );
}

#[test]
fn the_mirrored_upgrade_keeps_the_seed_order() {
    let inv = example("mirrored.toml");
    assert_rules(plan_rules::upgrade_811(
        &plan(&inv, "upgrade-8.11", &[]),
        &inv,
    ));
}

#[test]
fn the_clustered_upgrade_keeps_the_seed_order() {
    let inv = example("clustered.toml");
    assert_rules(plan_rules::upgrade_811(
        &plan(&inv, "upgrade-8.11", &[]),
        &inv,
    ));
}

#[test]
fn clustered_directory_servers_stop_and_start_with_their_registration_master() {
    let inv = example("clustered.toml");
    let p = plan(&inv, "upgrade-8.11", &[]);
    for dir in ["NWDIR1A", "NWDIR2A"] {
        assert!(p.runs_after("setup-registry@NWRM1", &format!("stop-services@{dir}")));
        assert!(p.runs_after(&format!("start-services@{dir}"), "setup-registry@NWRM1"));
        assert!(p.runs_after("start-services@NWRM1", &format!("setup-directory@{dir}")));
    }
    for dir in ["NWDIR1B", "NWDIR2B"] {
        assert!(
            p.step(&format!("stop-services@{dir}")).is_none(),
            "secondary {dir} keeps running with the primary side"
        );
        assert!(p.runs_after(
            &format!("secondary-stop-services@{dir}"),
            "verify-data-center@NWRM1"
        ));
    }
}

#[test]
fn only_the_node_whose_certificate_names_another_host_gets_its_outflow_url_rewritten() {
    let inv = example("clustered.toml");
    let p = plan(&inv, "upgrade-8.11", &[]);
    let rewritten: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| s.id.starts_with("url-to-"))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(rewritten, ["url-to-fqdn@NWDT2", "url-to-cn@NWDT2"]);
    assert!(p.step("disable-datatransfer-ssl@NWDT3").is_some());
}

#[test]
fn verification_probes_run_from_a_server_without_the_component() {
    let inv = example("clustered.toml");
    let p = plan(&inv, "upgrade-8.11", &[]);
    let probe = p.step("verify-datatransfer@NWDT1").expect("probe exists");
    let host = probe
        .host
        .as_deref()
        .expect("a clustered Data Center has servers without a DataTransfer API");
    assert!(!inv
        .server(host)
        .expect("host exists")
        .has(lockstep::knowledge::inventory::ServerRole::DatatransferApi));
}

#[test]
fn the_sql_server_upgrade_keeps_the_seed_order_on_every_topology() {
    for (file, target, folder) in [
        ("standalone.toml", "2016", "130"),
        ("mirrored.toml", "2016", "130"),
        ("clustered.toml", "2016", "130"),
    ] {
        let inv = example(file);
        let p = plan(&inv, "upgrade-sql-server", &[("target", target)]);
        if let Err(broken) = plan_rules::upgrade_sql(&p, &inv, folder) {
            panic!("{file}:\n{broken}");
        }
    }
}

#[test]
fn the_windows_upgrade_does_the_primary_side_before_the_secondary_on_every_topology() {
    for file in ["standalone.toml", "mirrored.toml", "clustered.toml"] {
        let inv = example(file);
        let p = plan(&inv, "upgrade-windows-server", &[("target", "2016")]);
        if let Err(broken) = plan_rules::upgrade_windows(&p, &inv) {
            panic!("{file}:\n{broken}");
        }
    }
}

#[test]
fn servers_already_on_the_target_release_are_left_out() {
    let inv = example("mirrored.toml");
    let current = inv
        .servers
        .iter()
        .find_map(|s| s.sql_server)
        .expect("a database server");
    let p = plan(&inv, "upgrade-sql-server", &[("target", current.as_str())]);
    assert!(
        p.steps
            .iter()
            .all(|s| s.host.is_none() || s.phase == "Prepare" || s.phase == "Verify"),
        "nothing to upgrade, yet the plan has {:?}",
        p.steps.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
}

#[test]
fn the_same_inputs_give_the_same_plan() {
    let inv = example("clustered.toml");
    let a = plan(&inv, "upgrade-8.11", &[]);
    let b = plan(&inv, "upgrade-8.11", &[]);
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

/// The checker itself must notice a broken plan, or the tests above prove nothing.
#[test]
fn the_rules_notice_a_backup_that_no_longer_waits_for_the_stop() {
    let inv = example("mirrored.toml");
    let mut p = plan(&inv, "upgrade-8.11", &[]);
    let backup = p
        .steps
        .iter_mut()
        .find(|s| s.id == "backup-databases@DC1")
        .expect("backup step");
    backup.depends_on.clear();
    let broken =
        plan_rules::upgrade_811(&p, &inv).expect_err("a backup before the stop must be caught");
    assert!(
        broken.contains("backup-databases@DC1 does not wait for stop-services@DC1"),
        "{broken}"
    );
}

#[test]
fn the_rules_notice_a_secondary_side_that_stops_with_the_primary() {
    let inv = example("clustered.toml");
    let mut p = plan(&inv, "upgrade-8.11", &[]);
    // Make the primary Setup wait for the secondary side: the secondary would have to stop first.
    let setup_pos = p
        .steps
        .iter()
        .position(|s| s.id == "setup-registry@NWRM1")
        .expect("setup step");
    p.steps[setup_pos]
        .depends_on
        .push("secondary-stop-services@NWRM2".into());
    // With every other rule in place this is a cycle, so the plan is refused as malformed.
    let broken = plan_rules::upgrade_811(&p, &inv).expect_err("must be caught");
    assert!(
        broken.contains("setup-registry@NWRM1 depends on secondary-stop-services@NWRM2"),
        "{broken}"
    );
}

#[test]
fn the_rules_notice_a_probe_run_from_the_server_it_checks() {
    let inv = example("mirrored.toml");
    let mut p = plan(&inv, "upgrade-8.11", &[]);
    let probe = p
        .steps
        .iter_mut()
        .find(|s| s.id.starts_with("verify-datatransfer@"))
        .expect("probe");
    let component = probe.id.split_once('@').unwrap().1.to_string();
    probe.host = Some(component);
    let broken = plan_rules::upgrade_811(&p, &inv).expect_err("must be caught");
    assert!(
        broken.contains("which hosts the datatransfer-api it checks"),
        "{broken}"
    );
}
