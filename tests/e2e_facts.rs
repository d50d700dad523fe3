//! Facts from the site through separate processes: `lockstep-sim`, one `lockstep-agent` per
//! server and `lockstep serve` with a short `[agents] facts_interval_secs` (set through its
//! environment variable). Within one interval of starting, every agent is online with facts
//! read from its simulated host; a change on a host shows at the next scheduled collection; and
//! `POST /api/v1/agents/refresh` collects at once.

mod e2e_common;

use std::time::{Duration, Instant};

use e2e_common::*;
use lockstep_protocol::StartupType;
use serde_json::Value;

const INTERVAL_SECS: u64 = 2;

/// Polls `GET /api/v1/agents` until `ok` holds for the answer, or panics after `within`.
async fn agents_until(
    site: &Site,
    within: Duration,
    what: &str,
    ok: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let agents = site.get(&site.tokens.operator, "/agents").await;
        let agents = agents.as_array().expect("a list of agents").clone();
        if ok(&agents) {
            return agents;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {within:?}: {agents:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn agent<'a>(agents: &'a [Value], server: &str) -> &'a Value {
    agents
        .iter()
        .find(|a| a["server"] == server)
        .unwrap_or_else(|| panic!("no agent {server}"))
}

fn service<'a>(a: &'a Value, name: &str) -> Option<&'a Value> {
    a["facts"]["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

#[tokio::test]
async fn serve_records_every_agents_heartbeat_and_facts_within_one_interval_and_on_demand() {
    // `lockstep serve` inherits this process's environment (it is the only test in this binary).
    std::env::set_var("LOCKSTEP_FACTS_INTERVAL_SECS", INTERVAL_SECS.to_string());
    let started = Instant::now();
    let site = start_site("mirrored", 240).await;
    let servers: Vec<String> = site.agents.iter().map(|a| a.server.clone()).collect();
    assert_eq!(servers.len(), 4);

    let agents = agents_until(
        &site,
        Duration::from_secs(INTERVAL_SECS + 3),
        "every agent online with facts",
        |all| {
            all.len() == servers.len()
                && all
                    .iter()
                    .all(|a| a["status"] == "online" && a["facts"].is_object())
        },
    )
    .await;
    eprintln!(
        "all facts in {:?} after the site started",
        started.elapsed()
    );
    for server in &servers {
        let a = agent(&agents, server);
        let host = site.host(server);
        let f = &a["facts"];
        assert_eq!(f["hostname"], host.hostname.as_str(), "{server}");
        assert_eq!(a["backend"], "simulated");
        assert_eq!(a["facts_stale"], false);
        let dc = f["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["component"] == "data_center")
            .expect("the Data Center's version");
        assert_eq!(dc["version"].as_str(), host.product_version.as_deref());
        assert_eq!(f["windows"].as_str(), Some(host.windows.as_str()));
        assert_eq!(f["sql_server"].as_str(), host.sql_server.as_deref());
        assert_eq!(
            service(a, "BackupServer").unwrap()["state"],
            "running",
            "{server}"
        );
    }
    // The database servers report their Registry files and SQL Server accounts.
    let dc1 = &agent(&agents, "DC1")["facts"];
    assert!(dc1["database_files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["database"] == "Registry" && d["kind"] == "log"));
    assert!(dc1["sql_accounts"]["sql_server"].is_string());

    // A person disables DCAlerter on DC2: the next scheduled collection sees it.
    site.update_host("DC2", |s| {
        s.services.get_mut("DCAlerter").unwrap().startup = StartupType::Disabled;
    });
    agents_until(
        &site,
        Duration::from_secs(3 * INTERVAL_SECS + 3),
        "DC2's DCAlerter disabled",
        |all| {
            all.iter().any(|a| {
                a["server"] == "DC2"
                    && service(a, "DCAlerter").is_some_and(|s| s["startup"] == "disabled")
            })
        },
    )
    .await;

    // A service goes missing on DC1 and the session counters go: a refresh shows it at once.
    site.update_host("DC1", |s| {
        s.services.remove("Compactor");
        s.session_counters = false;
    });
    let (status, body) = site
        .post(
            &site.tokens.operator,
            "/agents/refresh",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["online"], 4);
    assert_eq!(body["facts"], 4);
    let dc1 = agent(body["agents"].as_array().unwrap(), "DC1");
    assert_eq!(
        dc1["facts"]["services_missing"],
        serde_json::json!(["Compactor"])
    );
    assert_eq!(dc1["facts"]["session_counters"], false);
}
