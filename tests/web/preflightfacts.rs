//! Preflight on the Data Center page and in the API answers from the facts the agents reported
//! (stored with `registry::record_facts`), with no "unknown" left for facts they report, and goes
//! back to "unknown" (saying how old the facts are) once they are stale.

use lockstep::executors::agent::registry::{self, Heartbeat};
use lockstep::web::auth::{accounts, Role};
use lockstep_protocol::tls::Thumbprint;
use lockstep_protocol::SiteFacts;

use crate::app::{spawn_app, TestApp};

const INVENTORY: &str = include_str!("../../examples/standalone.toml");

/// The stand-alone example without the `[servers.facts]` values agents report (the weak-cipher
/// setting, which no agent reports, stays).
fn inventory_without_agent_facts() -> String {
    INVENTORY
        .lines()
        .filter(|l| {
            ![
                "free_disk_mb",
                "registry_",
                "sql_service_account",
                "sql_agent_account",
                "tls_versions",
                "legacy_ssl_disabled",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the agent of `server` reports, read at `now`: the Registry's data on D: and its log on L:,
/// where L: has too little free space for 10% of the log.
fn facts(server: &str, now: i64) -> SiteFacts {
    let common = serde_json::json!({
        "protocol": 1, "hostname": server.to_ascii_lowercase(), "collected_at": now,
        "windows": "2012 R2",
        "tls_protocols": [
            {"protocol": "SSL 2.0", "enabled": false}, {"protocol": "SSL 3.0", "enabled": false},
            {"protocol": "TLS 1.2", "enabled": true}
        ]
    });
    let own = match server {
        "FABDC01" => serde_json::json!({
            "services": [{"name": "BackupServer", "state": "running", "startup": "automatic"}],
            "components": [{"component": "data_center", "version": "8.8.6"}],
            "volumes": [{"drive": "D:", "free_mb": 5000, "total_mb": 100000},
                        {"drive": "L:", "free_mb": 100, "total_mb": 20000}],
            "database_files": [
                {"database": "Registry", "kind": "data", "path": "D:\\SQL\\Registry.mdf", "drive": "D:", "size_mb": 12288},
                {"database": "Registry", "kind": "log", "path": "L:\\SQL\\Registry.ldf", "drive": "L:", "size_mb": 2048}],
            "sql_accounts": {"sql_server": "FABRIKAM\\svc-sql", "sql_agent": "FABRIKAM\\svc-sql"},
            "sql_server": "2014 SP2"
        }),
        "FABWEB01" => serde_json::json!({
            "components": [{"component": "support_center", "version": "8.8.6"}],
            "certificates": [{"thumbprint": "AA", "subject_cn": "backup.fabrikam.com",
                "sans": ["fabweb01.fabrikam.local"], "issuer": "CN=CA", "not_after": now + 90 * 86400,
                "bindings": ["Default Web Site *:443"]}]
        }),
        _ => serde_json::json!({
            "components": [{"component": "datatransfer_api", "version": "8.8.6"}],
            "certificates": [{"thumbprint": "BB", "subject_cn": "fabapi01.fabrikam.local",
                "issuer": "CN=CA", "not_after": now + 90 * 86400, "bindings": ["Default Web Site *:443"]}]
        }),
    };
    let mut doc = common;
    if let (Some(d), Some(o)) = (doc.as_object_mut(), own.as_object()) {
        d.extend(o.clone());
    }
    serde_json::from_value(doc).expect("valid facts")
}

/// Enrols an agent for each server, with a heartbeat and facts `age` seconds old.
async fn report(app: &TestApp, age: i64) {
    let pool = &app.state.pool;
    let now = app.clock.now();
    let thumb = Thumbprint::parse(&"AB".repeat(32)).expect("thumbprint");
    for server in ["FABDC01", "FABWEB01", "FABAPI01"] {
        let url = format!("https://{}:7443", server.to_ascii_lowercase());
        registry::add(pool, server, &url, thumb, now - 3600)
            .await
            .expect("add");
        let beat = Heartbeat::Online {
            agent_version: "0.4.1".into(),
            backend: "simulated".into(),
            clock_skew: 0,
        };
        registry::record_heartbeat(pool, server, &beat, now - age)
            .await
            .expect("beat");
        registry::record_facts(pool, server, &facts(server, now - age), now - age)
            .await
            .expect("facts");
    }
}

#[tokio::test]
async fn the_data_center_page_answers_preflight_from_the_agents_facts() {
    let app = spawn_app().await;
    let op = app.login_as("olga", Role::Operator).await;
    let toml = inventory_without_agent_facts();
    let r = app
        .post(&op, "/datacenters", &[("toml", toml.as_str())])
        .await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();

    let page = app.get(&op, &location).await.text().await.expect("page");
    assert!(
        page.contains("<strong>unknown</strong> registry-free-space on FABDC01"),
        "without facts the rule cannot answer"
    );

    report(&app, 40).await;
    let page = app.get(&op, &location).await.text().await.expect("page");
    assert!(
        !page.contains("<strong>unknown</strong>"),
        "no unknown left for facts the agents report:\n{page}"
    );
    assert!(page.contains("<strong>fail</strong> registry-free-space on FABDC01: free space reported by FABDC01&#39;s agent 40 s ago: D: has 5000 MB free, at least 10% of Registry.mdf (12288 MB) = 1229 MB; L: has 100 MB free, LESS than 10% of Registry.ldf (2048 MB) = 205 MB"), "{page}");
    assert!(page.contains("<strong>pass</strong> sql-agent-same-account on FABDC01: SQL Server and SQL Server Agent on FABDC01 both run as FABRIKAM\\svc-sql (reported by FABDC01&#39;s agent 40 s ago)"), "{page}");
    assert!(
        page.contains("<strong>pass</strong> legacy-ssl-disabled on FABWEB01"),
        "{page}"
    );
    assert!(
        page.contains("<strong>pass</strong> management-api-tls12 on FABAPI01"),
        "{page}"
    );

    // The new-run preview judges the runbook's rules from the same facts.
    let fields = [
        ("datacenter", "Fabrikam backup (stand-alone)"),
        ("runbook", "upgrade-8.11"),
    ];
    let preview = app.post(&op, "/runs/preview", &fields).await;
    assert_eq!(preview.status(), 200);
    let page = preview.text().await.expect("preview");
    assert!(page.contains("<strong>pass</strong> direct-upgrade: every server below 8.11 runs 8.8.1 or later (3 to upgrade)"), "{page}");
    assert!(page.contains("<strong>fail</strong> registry-free-space on FABDC01: free space reported by FABDC01&#39;s agent 40 s ago"), "{page}");
    assert!(!page.contains("<strong>unknown</strong>"), "{page}");

    // Ten minutes later the facts are stale (default 180 s): unknown again, saying how old.
    app.clock.advance(600);
    let page = app.get(&op, &location).await.text().await.expect("page");
    assert!(page.contains("<strong>unknown</strong> registry-free-space on FABDC01: unknown — will be checked live: free space on FABDC01 needs facts free_disk_mb, registry_mdf_mb and registry_ldf_mb (10% of each file must be free); FABDC01&#39;s agent last reported facts 10 min ago, older than the 180 s preflight trusts"), "{page}");
}

#[tokio::test]
async fn the_api_preflight_of_a_data_center_reads_the_agents_facts() {
    let app = spawn_app().await;
    app.add_user("olga", Role::Operator).await;
    let user = accounts::find_user(&app.state.pool, "olga")
        .await
        .expect("db")
        .expect("user");
    let token = accounts::create_token(&app.state.pool, user.id, "test", app.clock.now())
        .await
        .expect("token");
    let toml = inventory_without_agent_facts();
    let r = app
        .client
        .post(app.url("/api/v1/datacenters"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "toml": toml }))
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.expect("json");
    let name = body["name"].as_str().expect("name").to_string();
    report(&app, 40).await;
    let detail: serde_json::Value = app
        .client
        .get(app.url(&format!(
                "/api/v1/datacenters/{}",
                name.replace(' ', "%20")
                    .replace('(', "%28")
                    .replace(')', "%29")
            )))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let findings = detail["findings"].as_array().expect("findings");
    let unknown: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["result"] == "unknown")
        .collect();
    assert!(unknown.is_empty(), "{unknown:#?}");
    let free = findings
        .iter()
        .find(|f| f["rule"] == "registry-free-space" && f["server"] == "FABDC01")
        .expect("free-space finding");
    assert_eq!(
        (&free["result"], &free["severity"]),
        (&"fail".into(), &"error".into()),
        "{free}"
    );
    assert!(
        free["message"]
            .as_str()
            .unwrap_or_default()
            .contains("reported by FABDC01's agent 40 s ago"),
        "{free}"
    );
}
