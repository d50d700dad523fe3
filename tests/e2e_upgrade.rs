//! `upgrade-8.11` to success on the stand-alone, mirrored and clustered examples, through the
//! real binaries as separate processes (see `e2e_common`): the run created and approved through
//! the JSON API by an operator and two approvers, and the end state read from the simulated
//! site itself — versions from the web endpoints the probes read, OutflowServices rows over
//! TDS, registry values and services from the hosts' state.

mod e2e_common;

use std::time::Duration;

use e2e_common::{start_site, summary, Site};
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_simulator::iis::{registry_server, REGISTRY_CONNECT_KEYS};
use lockstep_simulator::Description;
use serde_json::Value;

fn description(site: &Site) -> Description {
    Description::parse(&std::fs::read_to_string(&site.inventory).unwrap()).unwrap()
}

/// The URLs the plan's probes read, by probe kind.
fn probe_urls(detail: &Value, kind: &str) -> Vec<String> {
    detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["spec"]["kind"] == "probe" && s["spec"]["operation"]["probe"] == kind)
        .filter_map(|s| s["spec"]["operation"]["url"].as_str().map(String::from))
        .collect()
}

async fn assert_upgraded(site: &Site, detail: &Value) {
    assert_eq!(detail["run"]["status"], "succeeded", "{}", summary(detail));
    site.assert_four_eyes(detail);
    let d = description(site);
    let primary = d.primary_registry().unwrap().name.clone();
    for s in &d.servers {
        let st = site.host(&s.name);
        assert_eq!(st.product_version.as_deref(), Some("8.11"), "{}", s.name);
        for svc in lockstep_agent::config::default_connected_services() {
            if let Some(state) = st.services.get(&svc) {
                assert_eq!(state.state, ServiceRunState::Running, "{} {svc}", s.name);
            }
        }
        if s.hosts_web() {
            let connect = REGISTRY_CONNECT_KEYS.iter().find_map(|k| {
                st.registry_value(k, "RegistryConnect")
                    .map(|v| registry_server(v))
            });
            assert_eq!(
                connect.as_deref(),
                Some(primary.as_str()),
                "{} RegistryConnect",
                s.name
            );
        }
    }
    // What the web servers themselves answer now, over HTTPS.
    let support = probe_urls(detail, "support_center");
    assert!(!support.is_empty(), "the plan probes Support Center");
    for url in support {
        let (status, page) = site.web_page(&url).await;
        assert_eq!(status, 200, "{url}");
        assert!(page.contains("Version 8.11"), "{url}: {page}");
    }
    for url in probe_urls(detail, "datatransfer_status") {
        let (status, page) = site.web_page(&url).await;
        assert_eq!(status, 200, "{url}");
        assert!(page.contains("<Version>8.11</Version>"), "{url}: {page}");
    }
    // OutflowServices in every Registry database lists every DataTransfer API node.
    for reg in d.servers.iter().filter(|s| s.has("registry")) {
        let rows = site.outflow_rows(&reg.name).await;
        for dt in d.servers.iter().filter(|s| s.has("datatransfer-api")) {
            let url = format!("{}/ose/OutflowServiceExtension.dll", dt.datatransfer_host());
            assert!(
                rows.iter().any(|r| r.1 == url),
                "{}: no {url} in {rows:?}",
                reg.name
            );
        }
    }
}

async fn upgrade(topology: &str, first_ip: u8) {
    let site = start_site(topology, first_ip).await;
    let id = site.create_run("upgrade-8.11", &[]).await;
    let detail = site.drive(&id, Duration::from_secs(300)).await;
    assert_upgraded(&site, &detail).await;
    assert_recorded_versions_follow(&site).await;
}

/// The estate follows the change: `serve` updates the Data Center's recorded versions from the
/// agents' fresh facts after the run succeeded (a new inventory version, audited).
async fn assert_recorded_versions_follow(site: &Site) {
    let path = format!("/datacenters/{}", site.inventory_name.replace(' ', "%20"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let dc = site.get(&site.tokens.operator, &path).await;
        let versions: Vec<&str> = dc["inventory"]["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .map(|s| s["connected_version"].as_str().unwrap_or(""))
            .collect();
        if versions.iter().all(|v| *v == "8.11") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "recorded versions still {versions:?} 60 s after the run succeeded"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let audit = site
        .get(
            &site.tokens.operator,
            "/audit?kind=datacenter.versions_updated",
        )
        .await;
    let changes = &audit["events"][0]["payload"]["changes"];
    assert!(
        changes
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["field"] == "connected_version"
                && c["old"].as_str().is_some_and(|v| v.starts_with("8.8."))
                && c["new"] == "8.11")),
        "{audit:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_8_11_succeeds_on_the_standalone_example_through_separate_processes() {
    upgrade("standalone", 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_8_11_succeeds_on_the_mirrored_example_through_separate_processes() {
    upgrade("mirrored", 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_8_11_succeeds_on_the_clustered_example_through_separate_processes() {
    upgrade("clustered", 80).await;
}
