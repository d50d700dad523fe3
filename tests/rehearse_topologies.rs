//! Rehearsals in process: the real engine and executors drive upgrade-8.11 and the other
//! runbooks against simulated Data Centers built from the example inventories, and the
//! simulated end state is checked — not the engine's word for it. Faults stop the run at the
//! step a change manager would expect; a retry after the fault clears finishes; undo restores
//! the registry values captured before the change.

use lockstep::engine::machine::{RunStatus, StepStatus};
use lockstep::rehearsal::{Rehearsal, Report};
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_simulator::iis::{registry_server, REGISTRY_CONNECT_KEYS};

mod rehearse_common;
use rehearse_common::{options, rehearse};

fn registry_connect(r: &Rehearsal, server: &str) -> Option<String> {
    let st = r.dc.host(server).unwrap().read().unwrap();
    REGISTRY_CONNECT_KEYS.iter().find_map(|k| {
        st.registry_value(k, "RegistryConnect")
            .map(|v| registry_server(v))
    })
}

/// Every server at 8.11 with its Connected services running, Web Services pointing at the
/// primary Registry, OutflowServices URLs by CN where SSL is on.
fn assert_upgraded(r: &Rehearsal, report: &Report, primary: &str) {
    assert!(report.succeeded, "{}", report.text());
    for s in &r.dc.servers {
        let name = &s.description.name;
        let st = s.host.read().unwrap();
        assert_eq!(st.product_version.as_deref(), Some("8.11"), "{name}");
        for svc in lockstep_agent::config::default_connected_services() {
            if let Some(state) = st.services.get(&svc) {
                assert_eq!(state.state, ServiceRunState::Running, "{name} {svc}");
            }
        }
        drop(st);
        if s.description.hosts_web() {
            assert_eq!(
                registry_connect(r, name).as_deref(),
                Some(primary),
                "{name}"
            );
        }
    }
    assert!(!report.outflow_services.is_empty());
    for (reg, rows) in &report.outflow_services {
        for dt in
            r.dc.description
                .servers
                .iter()
                .filter(|s| s.has("datatransfer-api"))
        {
            let url = format!("{}/ose/OutflowServiceExtension.dll", dt.datatransfer_host());
            assert!(
                rows.iter().any(|row| row.url == url),
                "{reg}: no {url} in {rows:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_8_11_rehearses_to_success_on_the_standalone_example() {
    let (o, _dir) = options("standalone", "upgrade-8.11", &[], &[]);
    let (r, report) = rehearse(o).await;
    let primary = r.dc.description.primary_registry().unwrap().name.clone();
    assert_upgraded(&r, &report, &primary);
    assert!(
        report.steps.iter().all(|s| s.duration_ms.is_some()),
        "every step has a recorded duration"
    );
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_8_11_rehearses_to_success_on_the_mirrored_example() {
    let (o, _dir) = options("mirrored", "upgrade-8.11", &[], &[]);
    let (r, report) = rehearse(o).await;
    assert_upgraded(&r, &report, "DC1");
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_8_11_rehearses_to_success_on_the_clustered_example() {
    let (o, _dir) = options("clustered", "upgrade-8.11", &[], &[]);
    let (r, report) = rehearse(o).await;
    let primary = r.dc.description.primary_registry().unwrap().name.clone();
    assert_upgraded(&r, &report, &primary);
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_are_approved_by_a_labelled_rehearsal_identity_other_than_the_requester() {
    let (o, _dir) = options("standalone", "upgrade-8.11", &[], &[]);
    let (r, report) = rehearse(o).await;
    assert!(report.succeeded, "{}", report.text());
    let run = r.store.run(&r.run_id).await.unwrap();
    assert!(run.requester.starts_with("rehearsal-operator"));
    let events = r.store.run_events(&r.run_id).await.unwrap();
    let approvals: Vec<_> = events
        .iter()
        .filter(|e| e.payload.to_string().contains("\"approve"))
        .collect();
    assert!(!approvals.is_empty());
    for e in approvals {
        assert!(e.actor.starts_with("rehearsal-approver"), "{}", e.actor);
        assert_ne!(e.actor, run.requester);
    }
    assert!(r.store.verify_audit().await.unwrap().problem.is_none());
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_server_upgrade_to_2016_rehearses_to_success_on_the_mirrored_example() {
    let (o, _dir) = options("mirrored", "upgrade-sql-server", &[("target", "2016")], &[]);
    let (r, report) = rehearse(o).await;
    assert!(report.succeeded, "{}", report.text());
    for s in report
        .servers
        .iter()
        .filter(|s| r.dc.server(&s.name).unwrap().description.has_database())
    {
        assert_eq!(s.sql_server.as_deref(), Some("2016"), "{}", s.name);
    }
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_server_upgrade_rehearses_to_success_on_the_standalone_example() {
    let (o, _dir) = options(
        "standalone",
        "upgrade-windows-server",
        &[("target", "2016")],
        &[],
    );
    let (r, report) = rehearse(o).await;
    assert!(report.succeeded, "{}", report.text());
    assert!(
        report.servers.iter().any(|s| s.windows == "2016"),
        "{}",
        report.text()
    );
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_uninstall_runbooks_rehearse_to_success_on_the_mirrored_example() {
    for (runbook, params) in [
        ("uninstall-management-api", vec![]),
        ("uninstall-datatransfer-api", vec![("server", "DT1")]),
    ] {
        let (o, _dir) = options("mirrored", runbook, &params, &[]);
        let (r, report) = rehearse(o).await;
        assert!(report.succeeded, "{runbook}: {}", report.text());
        r.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkdb_error_stops_at_the_integrity_check_and_a_retry_after_the_fix_finishes() {
    let (o, _dir) = options("mirrored", "upgrade-8.11", &[], &["DC1:checkdb-error"]);
    let (r, report) = rehearse(o).await;
    assert_eq!(report.status, RunStatus::Failed, "{}", report.text());
    let stopped = report.stopped_at.clone().unwrap();
    assert_eq!(stopped.step, "verify-integrity@DC1", "{}", report.text());
    assert!(stopped.why.contains("SQL Server error"), "{}", stopped.why);
    // Nothing was stopped or changed: the approval to stop services never came.
    assert!(report
        .servers
        .iter()
        .all(|s| s.version.as_deref() == Some("8.8.6")));
    r.clear_faults().unwrap();
    r.retry().await.unwrap();
    r.drive(&mut |_| {}).await.unwrap();
    let report = r.report().await.unwrap();
    assert_upgraded(&r, &report, "DC1");
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_support_center_stops_at_its_verification_probe() {
    let (o, _dir) = options("mirrored", "upgrade-8.11", &[], &["WEB1:probe-old-version"]);
    let (r, report) = rehearse(o).await;
    assert_eq!(report.status, RunStatus::Failed, "{}", report.text());
    let stopped = report.stopped_at.clone().unwrap();
    assert!(
        stopped.step.starts_with("verify-support-center"),
        "{}",
        report.text()
    );
    assert!(stopped.why.contains("8.8.6"), "{}", stopped.why);
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_sql_connection_stops_at_the_first_sql_step() {
    let (o, _dir) = options("standalone", "upgrade-8.11", &[], &[]);
    let server = {
        let inv = std::fs::read_to_string(&o.inventory).unwrap();
        lockstep_simulator::Description::parse(&inv)
            .unwrap()
            .primary_registry()
            .unwrap()
            .name
            .clone()
    };
    let mut o = o;
    o.faults = vec![format!("{server}:tds-drop").parse().unwrap()];
    let (r, report) = rehearse(o).await;
    assert_ne!(report.status, RunStatus::Succeeded, "{}", report.text());
    let stopped = report.stopped_at.clone().unwrap();
    assert_eq!(
        stopped.step,
        format!("verify-integrity@{server}"),
        "{}",
        report.text()
    );
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_after_a_failed_setup_restores_the_captured_registry_values() {
    let (o, _dir) = options(
        "mirrored",
        "upgrade-8.11",
        &[],
        &["DC1:setup-wrong-version"],
    );
    let (r, report) = rehearse(o).await;
    assert_eq!(report.status, RunStatus::Failed, "{}", report.text());
    let stopped = report.stopped_at.clone().unwrap();
    assert!(
        stopped.step.starts_with("setup-registry@DC1"),
        "{}",
        report.text()
    );
    // Web Services were redirected to the secondary Registry before Setup.
    assert_eq!(
        registry_connect(&r, "WEB1").as_deref(),
        Some("DC2"),
        "{}",
        report.text()
    );
    r.undo("Setup left the wrong version; roll back")
        .await
        .unwrap();
    r.drive(&mut |_| {}).await.unwrap();
    let report = r.report().await.unwrap();
    assert_eq!(report.status, RunStatus::Undone, "{}", report.text());
    assert_eq!(
        registry_connect(&r, "WEB1").as_deref(),
        Some("DC1"),
        "{}",
        report.text()
    );
    let steps = r.store.steps(&r.run_id).await.unwrap();
    assert!(steps
        .iter()
        .any(|s| s.undo_of.is_some() && s.status == StepStatus::Succeeded));
    r.stop().await.unwrap();
}
