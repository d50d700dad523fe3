//! Backups you can restore, rehearsed in process on the three example Data Centers: before
//! anything stops, every Registry and Directory database of both sides is backed up and proved
//! with RESTORE VERIFYONLY over TDS; the simulator's own backup history and the run's evidence
//! agree; a backup that does not verify stops the run before any service stops; and when Setup
//! stops half-way, `recover-failed-upgrade` puts the site back as it was — read back from the
//! simulator (hosts and SQL Servers), not from Lockstep.

use std::collections::BTreeMap;

use lockstep::engine::machine::{RunEvent, RunStatus};
use lockstep::executors::sql::BackupRecord;
use lockstep::rehearsal::Rehearsal;
use lockstep_protocol::evidence::ServiceRunState;

mod rehearse_common;
use rehearse_common::rehearse;

fn options(
    topology: &str,
    runbook: &str,
    faults: &[&str],
) -> (lockstep::rehearsal::Options, tempfile::TempDir) {
    rehearse_common::options(topology, runbook, &[], faults)
}

/// The backups a run's `backup-verified` steps recorded, by server.
async fn recorded_backups(r: &Rehearsal) -> BTreeMap<String, Vec<BackupRecord>> {
    let mut out = BTreeMap::new();
    for s in r.store.steps(&r.run_id).await.unwrap() {
        if !s.id.starts_with("backup-verified@") {
            continue;
        }
        let list = s
            .state
            .evidence
            .as_ref()
            .and_then(|e| e.get("backups"))
            .cloned()
            .unwrap_or_default();
        let list: Vec<BackupRecord> = serde_json::from_value(list).unwrap_or_default();
        out.insert(s.spec.host.clone().unwrap_or_default(), list);
    }
    out
}

/// Every database server of the example, both sides.
fn database_servers(r: &Rehearsal) -> Vec<String> {
    r.dc.servers
        .iter()
        .filter(|s| s.description.has("registry") || s.description.has("directory"))
        .map(|s| s.description.name.clone())
        .collect()
}

async fn every_database_of_both_sides_is_backed_up_and_verified(topology: &str) {
    let (o, _dir) = options(topology, "upgrade-8.11", &[]);
    let (r, report) = rehearse(o).await;
    assert!(report.succeeded, "{}", report.text());
    let recorded = recorded_backups(&r).await;
    let servers = database_servers(&r);
    assert!(!servers.is_empty());
    for name in &servers {
        let d = &r
            .dc
            .servers
            .iter()
            .find(|s| &s.description.name == name)
            .unwrap()
            .description;
        let want: Vec<&str> = [("registry", "Registry"), ("directory", "Directory")]
            .iter()
            .filter(|(role, _)| d.has(role))
            .map(|(_, db)| *db)
            .collect();
        let got = recorded
            .get(name)
            .unwrap_or_else(|| panic!("no backup step for {name}"));
        let dbs: Vec<&str> = got.iter().map(|b| b.database.as_str()).collect();
        assert_eq!(dbs, want, "{name}");
        for b in got {
            assert!(b.verified, "{b:?}");
            assert!(b.size_bytes.unwrap_or(0) > 0, "{b:?}");
            assert!(
                b.file
                    .ends_with(&format!("{}-{}.bak", b.database, r.run_id)),
                "{b:?}"
            );
            assert!(!b.finished_at.is_empty(), "{b:?}");
        }
        // The simulated SQL Server's own history (msdb) holds the same backups.
        let history = r.dc.sql(name).unwrap().backups();
        for db in &want {
            assert!(history.iter().any(|h| h == db), "{name}: {history:?}");
        }
    }
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_backs_up_and_verifies_every_database_before_the_change() {
    every_database_of_both_sides_is_backed_up_and_verified("standalone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_backs_up_and_verifies_both_sides_before_the_change() {
    every_database_of_both_sides_is_backed_up_and_verified("mirrored").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustered_backs_up_and_verifies_every_database_server_before_the_change() {
    every_database_of_both_sides_is_backed_up_and_verified("clustered").await;
}

async fn an_unrestorable_backup_stops_the_run_before_anything_stops(topology: &str, server: &str) {
    let fault = format!("{server}:backup-unrestorable");
    let (o, _dir) = options(topology, "upgrade-8.11", &[&fault]);
    let (r, report) = rehearse(o).await;
    assert_eq!(report.status, RunStatus::Failed, "{}", report.text());
    let stopped = report.stopped_at.clone().unwrap();
    assert_eq!(
        stopped.step,
        format!("backup-verified@{server}"),
        "{}",
        report.text()
    );
    assert!(
        stopped.why.contains("Damage to the backup set"),
        "{}",
        stopped.why
    );
    // Nothing stopped and nothing changed: every service still runs, every version is the old one.
    for s in &r.dc.servers {
        let st = s.host.read().unwrap();
        assert_eq!(
            st.product_version.as_deref(),
            Some(s.description.connected_version.as_str()),
            "{}",
            s.description.name
        );
        for (svc, state) in &st.services {
            assert_eq!(
                state.state,
                ServiceRunState::Running,
                "{} {svc}",
                s.description.name
            );
        }
    }
    let steps = r.store.steps(&r.run_id).await.unwrap();
    let started: Vec<&str> = steps
        .iter()
        .filter(|s| s.id.starts_with("stop-services") || s.id.starts_with("restrict-sessions"))
        .filter(|s| s.attempt > 0)
        .map(|s| s.id.as_str())
        .collect();
    assert!(started.is_empty(), "{started:?}");
    let recorded = recorded_backups(&r).await;
    let bad = recorded.get(server).cloned().unwrap_or_default();
    assert!(bad.iter().any(|b| !b.verified), "{bad:?}");
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_an_unrestorable_backup_stops_before_anything_stops() {
    an_unrestorable_backup_stops_the_run_before_anything_stops("standalone", "FABDC01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_an_unrestorable_backup_on_the_secondary_stops_before_anything_stops() {
    an_unrestorable_backup_stops_the_run_before_anything_stops("mirrored", "DC2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustered_an_unrestorable_backup_on_a_directory_server_stops_before_anything_stops() {
    an_unrestorable_backup_stops_the_run_before_anything_stops("clustered", "NWDIR1B").await;
}

/// What a person would check to say "the site is as it was": per server the installed version,
/// every registry value and every service's state; per SQL Server the Registry's OutflowServices
/// rows. Read from the simulator.
#[derive(Debug, PartialEq)]
struct SiteAsFound {
    hosts: BTreeMap<String, String>,
    registry: BTreeMap<String, String>,
    outflow: BTreeMap<String, String>,
}

fn site_as_found(r: &Rehearsal) -> SiteAsFound {
    let mut hosts = BTreeMap::new();
    let mut registry = BTreeMap::new();
    let mut outflow = BTreeMap::new();
    for s in &r.dc.servers {
        let name = s.description.name.clone();
        let st = s.host.read().unwrap();
        let services: Vec<String> = st
            .services
            .iter()
            .map(|(n, v)| format!("{n}={:?}", v.state))
            .collect();
        hosts.insert(
            name.clone(),
            format!("{:?} {}", st.product_version, services.join(",")),
        );
        registry.insert(name.clone(), format!("{:?}", st.registry));
        drop(st);
        if let Some(sql) = r.dc.sql(&name) {
            outflow.insert(name, format!("{:?}", sql.outflow_rows()));
        }
    }
    SiteAsFound {
        hosts,
        registry,
        outflow,
    }
}

async fn setup_failing_half_way_then_recovery_puts_the_site_back(topology: &str) {
    let (o, _dir) = options(topology, "upgrade-8.11", &[]);
    let rm = {
        let inv = std::fs::read_to_string(&o.inventory).unwrap();
        lockstep_simulator::Description::parse(&inv)
            .unwrap()
            .primary_registry()
            .unwrap()
            .name
            .clone()
    };
    let mut o = o;
    o.faults = vec![format!("{rm}:setup-fails-midway").parse().unwrap()];
    let mut r = Rehearsal::start(o).await.unwrap();
    let before = site_as_found(&r);
    r.drive(&mut |_| {}).await.unwrap();
    let report = r.report().await.unwrap();
    assert_eq!(report.status, RunStatus::Failed, "{}", report.text());
    let stopped = report.stopped_at.clone().unwrap();
    assert_eq!(
        stopped.step,
        format!("setup-registry@{rm}"),
        "{}",
        report.text()
    );
    // Setup really left the site half-changed: no version, the Registry database rewritten.
    let broken = site_as_found(&r);
    assert_ne!(broken.hosts[&rm], before.hosts[&rm]);
    assert_ne!(broken.outflow[&rm], before.outflow[&rm]);
    assert!(
        broken.outflow[&rm].contains("setup-8.11-incomplete"),
        "{}",
        broken.outflow[&rm]
    );

    let failed = r.run_id.clone();
    // The failed run holds its servers until it is aborted, as an operator would before recovering.
    r.engine
        .run_event(
            &failed,
            RunEvent::Abort {
                actor: lockstep::rehearsal::operator(),
                reason: "Setup failed half-way; recovering with recover-failed-upgrade".into(),
            },
        )
        .await
        .unwrap();
    let params = BTreeMap::from([("failed-run".to_string(), failed.clone())]);
    r.follow_with("recover-failed-upgrade", params)
        .await
        .unwrap();
    assert_ne!(r.run_id, failed);
    r.drive(&mut |_| {}).await.unwrap();
    let report = r.report().await.unwrap();
    assert!(report.succeeded, "{}", report.text());
    let after = site_as_found(&r);
    assert_eq!(after.outflow, before.outflow);
    assert_eq!(after.hosts, before.hosts);
    assert_eq!(after.registry, before.registry);
    // The restore used the failed run's recorded files.
    let restored = r
        .store
        .step(&r.run_id, &format!("restore-databases@{rm}"))
        .await
        .unwrap();
    let ev = restored.state.evidence.unwrap_or_default().to_string();
    assert!(ev.contains(&format!("Registry-{failed}.bak")), "{ev}");
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_setup_failing_half_way_is_recovered_to_the_site_as_it_was() {
    setup_failing_half_way_then_recovery_puts_the_site_back("standalone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_setup_failing_half_way_is_recovered_to_the_site_as_it_was() {
    setup_failing_half_way_then_recovery_puts_the_site_back("mirrored").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustered_setup_failing_half_way_is_recovered_to_the_site_as_it_was() {
    setup_failing_half_way_then_recovery_puts_the_site_back("clustered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_from_a_run_that_did_not_fail_is_refused_before_anything_stops() {
    let (o, _dir) = options("standalone", "upgrade-8.11", &[]);
    let (mut r, report) = rehearse(o).await;
    assert!(report.succeeded, "{}", report.text());
    let done = r.run_id.clone();
    let params = BTreeMap::from([("failed-run".to_string(), done.clone())]);
    r.follow_with("recover-failed-upgrade", params)
        .await
        .unwrap();
    r.drive(&mut |_| {}).await.unwrap();
    let report = r.report().await.unwrap();
    assert_eq!(report.status, RunStatus::Failed, "{}", report.text());
    let stopped = report.stopped_at.clone().unwrap();
    assert!(
        stopped.step.starts_with("check-backups@"),
        "{}",
        report.text()
    );
    assert!(stopped.why.contains("not failed"), "{}", stopped.why);
    let steps = r.store.steps(&r.run_id).await.unwrap();
    assert!(steps
        .iter()
        .filter(|s| s.id.starts_with("stop-services"))
        .all(|s| s.attempt == 0));
    r.stop().await.unwrap();
}
