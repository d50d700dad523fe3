//! The site as found, through the real binaries as separate processes (`lockstep-sim`, one
//! `lockstep-agent` per server, `lockstep serve`; see `e2e_common`) on the mirrored example:
//! a disabled DCAlerter, a server without backup-session counters and one without a Connected
//! service still upgrade (the steps act on what is there, a person confirms the drain), and a
//! Management API whose installer fails stops the run at the Management API's own check.
//! Outcomes are read back from the agents' state files.

mod e2e_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e_common::{start_site_with, step, stopped_at, summary};
use lockstep::rehearsal::faults::MISSING_SERVICE;
use lockstep::rehearsal::Fault;
use lockstep_agent::backend::simulated::SimulatedHost;
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::{Component, StartupType};

fn mirrored() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/mirrored.toml")
}

/// Injects `faults` (SERVER:KIND) into the host state files before the agents start.
fn inject(faults: &'static [&'static str]) -> impl Fn(&str, &Path) {
    move |server, state| {
        for f in faults {
            let fault: Fault = f.parse().unwrap();
            if fault.server == server {
                fault
                    .inject_into_host(&SimulatedHost::open(state).unwrap())
                    .unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_unlike_the_defaults_upgrades_acting_on_what_is_there() {
    const FAULTS: &[&str] = &[
        "DC1:dcalerter-disabled",
        "DC1:no-session-counters",
        "DC2:service-missing",
    ];
    let site = start_site_with(&mirrored(), 240, &[], inject(FAULTS)).await;
    let id = site.create_run("upgrade-8.11", &[]).await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{}", summary(&detail));

    let dc1 = site.host("DC1");
    assert_eq!(dc1.product_version.as_deref(), Some("8.11"));
    let alerter = &dc1.services["DCAlerter"];
    assert_eq!(
        (alerter.state, alerter.startup),
        (ServiceRunState::Stopped, StartupType::Disabled)
    );
    let start = step(&detail, "start-services@DC1");
    assert!(
        start["state"]["evidence"]
            .to_string()
            .contains("DCAlerter is disabled"),
        "{start}"
    );
    let drain = step(&detail, "drain-sessions@DC1");
    assert!(
        drain["state"]["evidence"]["handed_over"]["handed_to_person"]
            .as_str()
            .is_some_and(|m| m.contains("counters are unavailable")),
        "{drain}"
    );
    assert!(!drain["state"]["note"].as_str().unwrap_or("").is_empty());

    let dc2 = site.host("DC2");
    assert_eq!(dc2.product_version.as_deref(), Some("8.11"));
    assert!(!dc2.services.contains_key(MISSING_SERVICE));
    assert!(dc2
        .services
        .values()
        .all(|s| s.state == ServiceRunState::Running));
    let stop = step(&detail, "secondary-stop-services@DC2");
    assert!(
        stop["state"]["evidence"]
            .to_string()
            .contains(&format!("\"absent\":[\"{MISSING_SERVICE}\"]")),
        "{stop}"
    );
    site.assert_four_eyes(&detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_management_api_installer_stops_at_the_management_api_check() {
    let site = start_site_with(&mirrored(), 250, &[], inject(&["WEB1:mapi-setup-fails"])).await;
    let id = site.create_run("upgrade-8.11", &[]).await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    let (stopped, _) = stopped_at(&detail).unwrap_or_else(|| panic!("{}", summary(&detail)));
    assert_eq!(stopped, "mapi-install@WEB1", "{}", summary(&detail));
    let why = step(&detail, "mapi-install@WEB1")["state"]["evidence"].to_string();
    assert!(why.contains("Management API version is 8.8.6"), "{why}");
    assert_eq!(site.host("DC1").product_version.as_deref(), Some("8.11"));
    assert_eq!(
        site.host("WEB1")
            .components
            .get(&Component::ManagementApi)
            .map(String::as_str),
        Some("8.8.6")
    );
}
