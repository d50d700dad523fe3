//! The other runbooks through the real binaries as separate processes (see `e2e_common`):
//! `upgrade-sql-server` to 2016 on the mirrored example, `upgrade-windows-server` on the
//! stand-alone one, and both uninstall runbooks — each created and approved through the JSON
//! API by an operator and two approvers, each end state read from the simulated site.

mod e2e_common;

use std::path::PathBuf;
use std::time::Duration;

use e2e_common::{start_site, start_site_with, summary};
use lockstep_simulator::Description;

const MAPI_KEY: &str = r"HKLM\SOFTWARE\Wow6432Node\Connected\MAPI";

fn example(topology: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{topology}.toml"))
}

fn servers_of(topology: &str) -> Description {
    Description::parse(&std::fs::read_to_string(example(topology)).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_server_upgrade_to_2016_succeeds_on_the_mirrored_example() {
    let site = start_site("mirrored", 100).await;
    let id = site
        .create_run("upgrade-sql-server", &[("target", "2016")])
        .await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{}", summary(&detail));
    site.assert_four_eyes(&detail);
    for s in servers_of("mirrored")
        .servers
        .iter()
        .filter(|s| s.has_database())
    {
        assert_eq!(
            site.host(&s.name).sql_server.as_deref(),
            Some("2016"),
            "{}",
            s.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_server_upgrade_succeeds_on_the_standalone_example() {
    let site = start_site("standalone", 120).await;
    let before: Vec<String> = servers_of("standalone")
        .servers
        .iter()
        .map(|s| site.host(&s.name).windows)
        .collect();
    assert!(before.iter().all(|w| w != "2016"), "{before:?}");
    let id = site
        .create_run("upgrade-windows-server", &[("target", "2016")])
        .await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{}", summary(&detail));
    site.assert_four_eyes(&detail);
    let upgraded: Vec<String> = servers_of("standalone")
        .servers
        .iter()
        .filter(|s| site.host(&s.name).windows == "2016")
        .map(|s| s.name.clone())
        .collect();
    assert!(!upgraded.is_empty(), "{}", summary(&detail));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstalling_the_management_api_removes_its_registry_key() {
    let inventory = example("mirrored");
    let mapi_hosts: Vec<String> = servers_of("mirrored")
        .servers
        .iter()
        .filter(|s| s.has("management-api"))
        .map(|s| s.name.clone())
        .collect();
    assert!(!mapi_hosts.is_empty());
    let hosts = mapi_hosts.clone();
    // The key the Management API installer left behind.
    let site = start_site_with(&inventory, 140, &[], move |server, state| {
        if hosts.iter().any(|h| h == server) {
            let host = lockstep_agent::backend::simulated::SimulatedHost::open(state).unwrap();
            host.update(|s| s.set_registry(MAPI_KEY, "PublicServerName", "backup.example.com"))
                .unwrap();
        }
    })
    .await;
    let id = site
        .create_run(
            "uninstall-management-api",
            &[("remove-public-server-name", "yes")],
        )
        .await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{}", summary(&detail));
    site.assert_four_eyes(&detail);
    for h in &mapi_hosts {
        assert!(
            site.host(h).registry_key(MAPI_KEY).is_none(),
            "{h} still has {MAPI_KEY}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstalling_the_datatransfer_api_records_the_outflow_rows_first() {
    let site = start_site("mirrored", 160).await;
    let id = site
        .create_run("uninstall-datatransfer-api", &[("server", "DT1")])
        .await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    assert_eq!(detail["run"]["status"], "succeeded", "{}", summary(&detail));
    site.assert_four_eyes(&detail);
    let record = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"].as_str().unwrap().starts_with("record-outflow"))
        .expect("a record-outflow step");
    let evidence = record["state"]["evidence"].to_string();
    assert!(
        evidence.contains("/ose/OutflowServiceExtension.dll"),
        "the rows read over TDS are the evidence: {evidence}"
    );
}
