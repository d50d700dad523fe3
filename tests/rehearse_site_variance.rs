//! The site as found, rehearsed: each fault that makes a simulated server differ from the
//! runbook's defaults (a disabled DCAlerter, a Management API whose installer fails, no
//! backup-session counters, a Connected service that is not installed) rehearses to the outcome
//! a change manager would expect on the example estates of all three topologies, and each
//! outcome is read back from the simulated host's own state, not only from Lockstep's view.
//! Plus: a rehearsal that stops at a step that can never succeed ends in seconds.

use std::time::{Duration, Instant};

use lockstep::engine::machine::{RunStatus, StepStatus};
use lockstep::rehearsal::{Options, Rehearsal, Report};
use lockstep_agent::backend::simulated::SimState;
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::{Component, StartupType};
use lockstep_simulator::Description;

mod rehearse_common;
use rehearse_common::inventory;

const TOPOLOGIES: [&str; 3] = ["standalone", "mirrored", "clustered"];

fn description(topology: &str) -> Description {
    Description::parse(&std::fs::read_to_string(inventory(topology)).unwrap()).unwrap()
}

fn primary(topology: &str) -> String {
    description(topology)
        .primary_registry()
        .unwrap()
        .name
        .clone()
}

fn options(topology: &str, faults: &[String]) -> (Options, tempfile::TempDir) {
    let faults: Vec<&str> = faults.iter().map(String::as_str).collect();
    rehearse_common::options(topology, "upgrade-8.11", &[], &faults)
}

async fn rehearse(topology: &str, fault: String) -> (Rehearsal, Report, tempfile::TempDir) {
    let (o, dir) = options(topology, &[fault]);
    let (r, report) = rehearse_common::rehearse(o).await;
    (r, report, dir)
}

fn host(r: &Rehearsal, server: &str) -> SimState {
    r.dc.host(server).unwrap().read().unwrap()
}

async fn evidence(r: &Rehearsal, step: &str) -> serde_json::Value {
    let s = r.store.step(&r.run_id, step).await.unwrap();
    assert_eq!(s.status, StepStatus::Succeeded, "{step}: {:?}", s.state);
    s.state.evidence.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_dcalerter_is_left_alone_with_a_note_and_the_run_succeeds() {
    for topology in TOPOLOGIES {
        let server = primary(topology);
        let (r, report, _dir) = rehearse(topology, format!("{server}:dcalerter-disabled")).await;
        assert!(report.succeeded, "{topology}: {}", report.text());
        let st = host(&r, &server);
        assert_eq!(st.product_version.as_deref(), Some("8.11"), "{topology}");
        let alerter = &st.services["DCAlerter"];
        assert_eq!(
            (alerter.state, alerter.startup),
            (ServiceRunState::Stopped, StartupType::Disabled),
            "{topology}: DCAlerter was touched"
        );
        for (name, svc) in &st.services {
            if name != "DCAlerter" {
                assert_eq!(svc.state, ServiceRunState::Running, "{topology} {name}");
            }
        }
        let ev = evidence(&r, &format!("start-services@{server}")).await;
        let text = ev.to_string();
        assert!(
            text.contains("DCAlerter is disabled") && text.contains("left alone"),
            "{topology}: no note in {text}"
        );
        r.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_management_api_setup_stops_the_run_at_the_management_api_check() {
    for topology in TOPOLOGIES {
        let d = description(topology);
        let mapi = d.servers.iter().find(|s| s.has("management-api")).unwrap();
        let (server, old) = (mapi.name.clone(), mapi.connected_version.clone());
        let (r, report, _dir) = rehearse(topology, format!("{server}:mapi-setup-fails")).await;
        assert_eq!(
            report.status,
            RunStatus::Failed,
            "{topology}: {}",
            report.text()
        );
        let stopped = report.stopped_at.clone().unwrap();
        assert_eq!(
            stopped.step,
            format!("mapi-install@{server}"),
            "{}",
            report.text()
        );
        let step = r.store.step(&r.run_id, &stopped.step).await.unwrap();
        let why = step.state.evidence.unwrap_or_default().to_string();
        assert!(
            why.contains(&format!("Management API version is {old}")),
            "{topology}: {why}"
        );
        // On the host: the Data Center is at 8.11, the Management API is not.
        let registry = host(&r, &d.primary_registry().unwrap().name);
        assert_eq!(registry.product_version.as_deref(), Some("8.11"));
        let st = host(&r, &server);
        assert_eq!(
            st.components.get(&Component::ManagementApi),
            Some(&old),
            "{topology}"
        );
        r.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_session_counters_the_drain_is_confirmed_by_the_rehearsal_stand_in() {
    for topology in TOPOLOGIES {
        let server = primary(topology);
        let (r, report, _dir) = rehearse(topology, format!("{server}:no-session-counters")).await;
        assert!(report.succeeded, "{topology}: {}", report.text());
        assert!(!host(&r, &server).session_counters, "{topology}");
        assert_eq!(host(&r, &server).product_version.as_deref(), Some("8.11"));
        let id = format!("drain-sessions@{server}");
        let step = r.store.step(&r.run_id, &id).await.unwrap();
        assert_eq!(step.status, StepStatus::Succeeded, "{topology}");
        assert!(
            step.state
                .decided_by
                .as_deref()
                .is_some_and(|d| d.starts_with("rehearsal-operator")),
            "{:?}",
            step.state.decided_by
        );
        let note = step.state.note.clone().unwrap_or_default();
        assert!(
            note.starts_with("Rehearsal: stand-in") && note.contains("0 session(s) open"),
            "{topology}: {note}"
        );
        let ev = step.state.evidence.unwrap_or_default();
        assert!(
            ev["handed_over"]["handed_to_person"]
                .as_str()
                .is_some_and(|m| m.contains("counters are unavailable")),
            "{topology}: {ev}"
        );
        r.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_connected_service_is_left_out_and_the_rest_is_stopped_and_started() {
    let missing = lockstep::rehearsal::faults::MISSING_SERVICE;
    for topology in TOPOLOGIES {
        let server = primary(topology);
        let (r, report, _dir) = rehearse(topology, format!("{server}:service-missing")).await;
        assert!(report.succeeded, "{topology}: {}", report.text());
        let st = host(&r, &server);
        assert!(!st.services.contains_key(missing), "{topology}");
        assert_eq!(st.product_version.as_deref(), Some("8.11"));
        assert!(st
            .services
            .values()
            .all(|s| s.state == ServiceRunState::Running));
        for step in [
            format!("stop-services@{server}"),
            format!("start-services@{server}"),
        ] {
            let ev = evidence(&r, &step).await;
            let agent = if ev.get("action").is_some() {
                ev["action"].clone()
            } else {
                ev.clone()
            };
            assert_eq!(
                agent["absent"],
                serde_json::json!([missing]),
                "{step}: {ev}"
            );
            let acted: Vec<&str> = agent["services"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s["name"].as_str())
                .collect();
            assert!(
                acted.contains(&"BackupServer") && !acted.contains(&missing),
                "{acted:?}"
            );
        }
        r.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_never_starts_ends_the_rehearsal_as_failed_in_seconds() {
    let server = primary("standalone");
    let started = Instant::now();
    let (r, report, _dir) =
        rehearse("standalone", format!("{server}:service-fails-to-start")).await;
    let took = started.elapsed();
    assert_eq!(report.status, RunStatus::Failed, "{}", report.text());
    let stopped = report.stopped_at.clone().unwrap();
    assert_eq!(
        stopped.step,
        format!("start-services@{server}"),
        "{}",
        report.text()
    );
    let step = r.store.step(&r.run_id, &stopped.step).await.unwrap();
    assert_eq!(step.attempt, 3, "every automatic retry was still made");
    assert!(
        step.state
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("BackupServer"),
        "{:?}",
        step.state.last_error
    );
    assert_eq!(
        host(&r, &server).services["BackupServer"].state,
        ServiceRunState::Stopped
    );
    // Generous: it took 3 attempts of 15 minutes each before; a few seconds now.
    assert!(took < Duration::from_secs(90), "took {took:?}");
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_services_and_the_management_api_are_checked_by_their_own_version_records() {
    let (o, _dir) = options("mirrored", &[]);
    let r = Rehearsal::start(o).await.unwrap();
    r.drive(&mut |_| {}).await.unwrap();
    let report = r.report().await.unwrap();
    assert!(report.succeeded, "{}", report.text());
    for (step, component) in [
        ("web-setup@WEB1", "support_center"),
        ("web-setup@DT1", "datatransfer_api"),
        ("mapi-install@WEB1", "management_api"),
    ] {
        let s = r.store.step(&r.run_id, step).await.unwrap();
        assert_eq!(
            s.spec
                .postcondition
                .as_ref()
                .map(|p| serde_json::to_value(p).unwrap()["component"].clone()),
            Some(serde_json::json!(component)),
            "{step}"
        );
        let ev = evidence(&r, step).await;
        assert_eq!(ev["postcondition"]["component"], component, "{step}: {ev}");
        assert_eq!(ev["postcondition"]["version"], "8.11", "{step}: {ev}");
    }
    let web1 = host(&r, "WEB1");
    for c in [
        Component::SupportCenter,
        Component::AccountManagementWebsite,
        Component::ManagementApi,
    ] {
        assert_eq!(
            web1.components.get(&c).map(String::as_str),
            Some("8.11"),
            "{c:?}"
        );
    }
    r.stop().await.unwrap();
}
