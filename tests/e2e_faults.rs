//! Faults through the real binaries as separate processes (see `e2e_common`): each stops the
//! run at the step a change manager would expect, with a message that says why; undo restores
//! the registry values captured before the change; an agent process that dies mid-action
//! leaves the step for a person, and after a restart and a retry the run finishes.

mod e2e_common;

use std::path::PathBuf;
use std::time::Duration;

use e2e_common::{start_site_with, step, stopped_at, summary, Site};
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::ActionKind;
use lockstep_simulator::iis::{registry_server, REGISTRY_CONNECT_KEYS};
use serde_json::json;

fn mirrored() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/mirrored.toml")
}

fn registry_connect(site: &Site, server: &str) -> Option<String> {
    let st = site.host(server);
    REGISTRY_CONNECT_KEYS.iter().find_map(|k| {
        st.registry_value(k, "RegistryConnect")
            .map(|v| registry_server(v))
    })
}

fn update(
    state: &std::path::Path,
    f: impl FnOnce(&mut lockstep_agent::backend::simulated::SimState),
) {
    lockstep_agent::backend::simulated::SimulatedHost::open(state)
        .unwrap()
        .update(f)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkdb_error_stops_the_run_at_the_integrity_check_before_anything_changes() {
    let site = start_site_with(&mirrored(), 180, &["DC1:checkdb-error"], |_, _| {}).await;
    let id = site.create_run("upgrade-8.11", &[]).await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    let (step, why) = stopped_at(&detail).unwrap_or_else(|| panic!("{}", summary(&detail)));
    assert_eq!(step, "verify-integrity@DC1", "{}", summary(&detail));
    assert!(why.contains("SQL Server error"), "{why}");
    for server in ["DC1", "DC2"] {
        let st = site.host(server);
        assert_eq!(st.product_version.as_deref(), Some("8.8.6"), "{server}");
        assert_eq!(st.services["BackupServer"].state, ServiceRunState::Running);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrestorable_backup_on_the_secondary_stops_the_run_before_anything_stops() {
    let site = start_site_with(&mirrored(), 250, &["DC2:backup-unrestorable"], |_, _| {}).await;
    let id = site.create_run("upgrade-8.11", &[]).await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    let (step, why) = stopped_at(&detail).unwrap_or_else(|| panic!("{}", summary(&detail)));
    assert_eq!(step, "backup-verified@DC2", "{}", summary(&detail));
    assert!(why.contains("Damage to the backup set"), "{why}");
    for server in ["DC1", "DC2"] {
        let st = site.host(server);
        assert_eq!(st.product_version.as_deref(), Some("8.8.6"), "{server}");
        for (name, svc) in &st.services {
            assert_eq!(svc.state, ServiceRunState::Running, "{server} {name}");
        }
    }
}

/// Versions, services and registry values of every host, as the simulator's state files hold them.
fn hosts_as_found(site: &Site) -> Vec<String> {
    ["DC1", "DC2", "WEB1", "DT1"]
        .iter()
        .filter(|s| site.state_file(s).exists())
        .map(|s| {
            let st = site.host(s);
            let services: Vec<String> = st
                .services
                .iter()
                .map(|(n, v)| format!("{n}={:?}", v.state))
                .collect();
            format!(
                "{s} {:?} {} {:?}",
                st.product_version,
                services.join(","),
                st.registry
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_failing_half_way_then_recovery_puts_the_mirrored_site_back() {
    let site = start_site_with(&mirrored(), 30, &[], |server, state| {
        if server == "DC1" {
            update(state, |s| s.faults.setup_fails_midway = true);
        }
    })
    .await;
    let hosts_before = hosts_as_found(&site);
    let rows_before = (
        site.outflow_rows("DC1").await,
        site.outflow_rows("DC2").await,
    );
    let id = site.create_run("upgrade-8.11", &[]).await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    let (step, _) = stopped_at(&detail).unwrap_or_else(|| panic!("{}", summary(&detail)));
    assert_eq!(step, "setup-registry@DC1", "{}", summary(&detail));
    assert_eq!(site.host("DC1").product_version, None);
    // What the half-run Setup's schema scripts did to the Registry before they stopped (the
    // simulator process holds the database, so the test does it over TDS as Setup would).
    site.sql_batch("DC1", "DELETE FROM Registry.dbo.OutflowServices")
        .await;
    assert!(site.outflow_rows("DC1").await.is_empty());
    assert_ne!(hosts_as_found(&site), hosts_before);

    let (status, body) = site
        .post(
            &site.tokens.operator,
            &format!("/runs/{id}/abort"),
            serde_json::json!({ "reason": "Setup failed half-way; recovering" }),
        )
        .await;
    assert_eq!(status, 200, "abort: {body}");
    let recovery = site
        .create_run("recover-failed-upgrade", &[("failed-run", id.as_str())])
        .await;
    let detail = site.drive(&recovery, Duration::from_secs(300)).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{}", summary(&detail));
    site.assert_four_eyes(&detail);
    assert_eq!(
        (
            site.outflow_rows("DC1").await,
            site.outflow_rows("DC2").await
        ),
        rows_before
    );
    assert_eq!(hosts_as_found(&site), hosts_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_after_setup_left_the_wrong_version_restores_the_captured_registry_values() {
    let site = start_site_with(&mirrored(), 200, &[], |server, state| {
        if server == "DC1" {
            update(state, |s| {
                s.faults.version_after_setup = Some("8.10".into())
            });
        }
    })
    .await;
    assert_eq!(registry_connect(&site, "WEB1").as_deref(), Some("DC1"));
    let id = site.create_run("upgrade-8.11", &[]).await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    let (step, why) = stopped_at(&detail).unwrap_or_else(|| panic!("{}", summary(&detail)));
    assert!(
        step.starts_with("setup-registry@DC1"),
        "{}",
        summary(&detail)
    );
    assert!(
        why.contains("8.10"),
        "the message names the version found: {why}"
    );
    // Web Services were redirected to the secondary Registry before Setup.
    assert_eq!(registry_connect(&site, "WEB1").as_deref(), Some("DC2"));

    let (status, body) = site
        .post(
            &site.tokens.operator,
            &format!("/runs/{id}/undo"),
            json!({ "reason": "Setup left 8.10; roll back and reschedule" }),
        )
        .await;
    assert_eq!(status, 200, "undo: {body}");
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    assert_eq!(detail["run"]["status"], "undone", "{}", summary(&detail));
    assert_eq!(
        registry_connect(&site, "WEB1").as_deref(),
        Some("DC1"),
        "{}",
        summary(&detail)
    );
    assert!(detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| !s["undo_of"].is_null() && s["status"] == "succeeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_dies_mid_action_stops_the_run_and_a_retry_after_restart_finishes() {
    let mut site = start_site_with(&mirrored(), 220, &[], |server, state| {
        if server == "DC1" {
            update(state, |s| {
                s.faults.crash.insert(ActionKind::ServicesStop);
            });
        }
    })
    .await;
    let id = site.create_run("upgrade-8.11", &[]).await;
    // The run moves until DC1's agent aborts in the middle of stopping the services.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        site.approve_open_gates(&id).await;
        let dc1 = site.agents.iter_mut().find(|a| a.server == "DC1").unwrap();
        if !dc1.proc.is_running() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the DC1 agent never crashed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing after the interrupted step runs while its outcome is not known.
    let detail = site
        .get(&site.tokens.operator, &format!("/runs/{id}"))
        .await;
    let stop = step(&detail, "stop-services@DC1");
    assert!(
        ["dispatched", "running", "outcome_unknown"].contains(&stop["status"].as_str().unwrap()),
        "{}",
        summary(&detail)
    );
    for later in ["backup-databases@DC1", "setup-registry@DC1"] {
        assert_eq!(
            step(&detail, later)["status"],
            "pending",
            "{}",
            summary(&detail)
        );
    }

    // The site fixes the host and restarts the agent. The restarted agent reports the action
    // it never finished as unknown; the operator, having looked at the host, marks it failed
    // and retries it.
    site.update_host("DC1", |s| s.faults.crash.clear());
    site.restart_agent("DC1");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let detail = loop {
        let detail = site
            .get(&site.tokens.operator, &format!("/runs/{id}"))
            .await;
        let status = step(&detail, "stop-services@DC1")["status"].clone();
        if status == "outcome_unknown" || status == "failed" || status == "succeeded" {
            break detail;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the interrupted step was never reconciled: {}",
            summary(&detail)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = step(&detail, "stop-services@DC1")["status"]
        .as_str()
        .unwrap()
        .to_string();
    if status == "outcome_unknown" {
        let (code, body) = site
            .post(
                &site.tokens.operator,
                &format!("/runs/{id}/steps/stop-services@DC1/resolve"),
                json!({ "decision": "failed", "text": "BackupServer still running after the agent crash" }),
            )
            .await;
        assert_eq!(code, 200, "resolve: {body}");
    }
    if status != "succeeded" {
        let (code, body) = site
            .post(
                &site.tokens.operator,
                &format!("/runs/{id}/steps/stop-services@DC1/retry"),
                json!({}),
            )
            .await;
        assert_eq!(code, 200, "retry: {body}");
    }
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{}", summary(&detail));
    assert_eq!(site.host("DC1").product_version.as_deref(), Some("8.11"));
}

#[test]
fn the_simulator_refuses_a_fault_it_cannot_inject_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    for (fault, expected) in [
        ("DC1", "is not SERVER:KIND"),
        ("DC1:melt", "unknown kind `melt`"),
        ("WEB1:checkdb-error", "server WEB1 has no SQL Server"),
    ] {
        let out = std::process::Command::new(e2e_common::binary("lockstep-sim"))
            .arg("--inventory")
            .arg(mirrored())
            .arg("--dir")
            .arg(dir.path())
            .args(["--first-ip", "240", "--fault", fault])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{fault}: {stderr}");
        assert!(stderr.contains(expected), "{fault}: {stderr}");
    }
}
