//! Site facts on the Data Center and Agents pages (tables, escaped, stale marked, mixed versions
//! flagged), "Refresh facts" without a collector, and the estate following a succeeded run: the
//! recorded versions updated from fresh facts with an audit event naming old → new.

use lockstep::executors::agent::registry::{self, Heartbeat};
use lockstep::web::auth::Role;
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::facts::{
    CertificateFact, ComponentVersion, DatabaseFileFact, DatabaseFileKind, ServiceFact,
    SqlAccountsFact, TlsProtocolFact, VolumeFact,
};
use lockstep_protocol::tls::Thumbprint;
use lockstep_protocol::{Component, SiteFacts, StartupType};

use crate::app::{spawn_app, TestApp};

const INVENTORY: &str = include_str!("../../examples/standalone.toml");

fn facts(host: &str, version: &str) -> SiteFacts {
    let mut f = SiteFacts::empty(host, 0);
    f.services = vec![
        ServiceFact {
            name: "BackupServer".into(),
            state: ServiceRunState::Running,
            startup: Some(StartupType::Automatic),
        },
        ServiceFact {
            name: "DCAlerter".into(),
            state: ServiceRunState::Stopped,
            startup: Some(StartupType::Disabled),
        },
    ];
    f.services_missing = vec!["Compactor".into()];
    f.components = vec![
        ComponentVersion {
            component: Component::DataCenter,
            version: version.into(),
        },
        ComponentVersion {
            component: Component::ManagementApi,
            version: "8.8.6".into(),
        },
    ];
    f.volumes = vec![VolumeFact {
        drive: "E:".into(),
        free_mb: 5120,
        total_mb: 51200,
    }];
    f.database_files = vec![DatabaseFileFact {
        database: "Registry".into(),
        kind: DatabaseFileKind::Log,
        path: r"E:\SQLLogs\Registry_log.ldf".into(),
        drive: "E:".into(),
        size_mb: 2048,
    }];
    f.sql_accounts = Some(SqlAccountsFact {
        sql_server: r"FABRIKAM\svc-sql".into(),
        sql_agent: r"FABRIKAM\svc-sqlagent".into(),
    });
    f.tls_protocols = vec![TlsProtocolFact {
        protocol: "TLS 1.0".into(),
        enabled: None,
    }];
    f.certificates = vec![CertificateFact {
        thumbprint: "AB".repeat(20),
        subject_cn: "backup.fabrikam.com<script>alert(1)</script>".into(),
        sans: vec!["backup.fabrikam.com".into(), "fabweb01".into()],
        issuer: "CN=Fabrikam CA".into(),
        not_after: 1_900_000_000,
        bindings: vec!["Default Web Site *:443:".into()],
    }];
    f.windows = Some("2012 R2".into());
    f.sql_server = Some("2014 SP2".into());
    f.errors = vec!["database_files: Login failed <b>".into()];
    f
}

async fn enrol(app: &TestApp, server: &str, f: &SiteFacts, at: i64) {
    let pool = &app.state.pool;
    let thumb = Thumbprint::parse(&"AB".repeat(32)).unwrap();
    registry::add(
        pool,
        server,
        &format!("https://{server}:7443"),
        thumb,
        at - 10,
    )
    .await
    .unwrap();
    registry::record_heartbeat(
        pool,
        server,
        &Heartbeat::Online {
            agent_version: "0.5.0".into(),
            backend: "simulated".into(),
            clock_skew: 0,
        },
        at,
    )
    .await
    .unwrap();
    registry::record_facts(pool, server, f, at).await.unwrap();
}

#[tokio::test]
async fn the_data_center_and_agents_pages_show_each_servers_facts_escaped_and_flag_mixed_versions()
{
    let app = spawn_app().await;
    let op = app.login_as("olga", Role::Operator).await;
    let r = app.post(&op, "/datacenters", &[("toml", INVENTORY)]).await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let now = app.clock.now();
    enrol(&app, "FABDC01", &facts("fabdc01", "8.11"), now - 30).await;
    enrol(&app, "FABWEB01", &facts("fabweb01", "8.8.6"), now - 30).await;

    let page = app.get(&op, &location).await.text().await.unwrap();
    assert!(
        page.contains("<h3>FABDC01 <span class=\"muted\">facts 30s old</span></h3>"),
        "{page}"
    );
    assert!(page.contains("<tr><th scope=\"row\">Data Center</th><td>8.11</td></tr>"));
    assert!(page.contains("<tr><th scope=\"row\">Management API</th><td>8.8.6</td></tr>"));
    assert!(page.contains("<tr><td>DCAlerter</td><td>Stopped</td><td>disabled</td></tr>"));
    assert!(page.contains("not installed: Compactor"));
    assert!(page.contains(
        "<tr><td>E:</td><td>5120 MB</td><td>50.0 GB</td><td>Registry log 2048 MB</td></tr>"
    ));
    assert!(page.contains(r"SQL Server FABRIKAM\svc-sql · SQL Server Agent FABRIKAM\svc-sqlagent"));
    assert!(
        page.contains("<tr><th scope=\"row\">TLS 1.0</th><td>not set (Windows default)</td></tr>")
    );
    assert!(page.contains("<td>backup.fabrikam.com, fabweb01</td><td>CN=Fabrikam CA</td><td>2030-03-17 17:46:40Z</td><td>Default Web Site *:443:</td>"));
    assert!(!page.contains("<script>alert(1)"), "agent text is escaped");
    assert!(page.contains("backup.fabrikam.com&#60;script&#62;"));
    assert!(page.contains("could not read database_files: Login failed &#60;b&#62;"));
    // Two servers at 8.11 and 8.8.6 (and FABAPI01 without facts, on record at 8.8.6).
    assert!(page.contains("<strong>Mixed Connected versions:</strong> 8.11 on FABDC01; 8.8.6 on FABWEB01, FABAPI01."), "{page}");
    assert!(
        page.contains("action=\"/agents/refresh\""),
        "operators can refresh"
    );

    // Facts older than the staleness limit are marked and no longer count for the flag.
    app.clock.advance(app.state.site.facts_stale_secs + 1);
    let page = app.get(&op, &location).await.text().await.unwrap();
    assert!(page.contains("<strong class=\"error\">stale</strong>, not trusted by preflight"));
    assert!(!page.contains("Mixed Connected versions"));

    let admin = app.login_as("ada", Role::Admin).await;
    let page = app.get(&admin, "/agents").await.text().await.unwrap();
    assert!(page.contains("id=\"facts-FABWEB01\""));
    assert!(page.contains("<tr><td>BackupServer</td><td>Running</td><td>automatic</td></tr>"));

    // Without a collector in this process, a refresh says so and changes nothing.
    let r = app
        .post(&op, "/agents/refresh", &[("back", "/agents")])
        .await;
    assert_eq!(r.status(), 409);
}

#[tokio::test]
async fn after_a_run_succeeds_the_recorded_versions_follow_the_fresh_facts_with_an_audit_event() {
    let app = spawn_app().await;
    let op = app.login_as("olga", Role::Operator).await;
    let toml = INVENTORY.replace(
        "name = \"Fabrikam backup (stand-alone)\"",
        "name = \"Test DC\"",
    );
    let r = app
        .post(&op, "/datacenters", &[("toml", toml.as_str())])
        .await;
    assert_eq!(r.status(), 303);
    let now = app.clock.now();
    let mut dc = facts("fabdc01", "8.11");
    dc.windows = Some("2016".into());
    enrol(&app, "FABDC01", &dc, now).await;
    // FABWEB01's facts are stale: its record stays as it is.
    enrol(
        &app,
        "FABWEB01",
        &facts("fabweb01", "8.11"),
        now - app.state.site.facts_stale_secs - 5,
    )
    .await;
    let run = app.create_run("olga", "FABDC01", "ok").await;

    let changes = lockstep::web::estate::follow_run(&app.state, &run.id)
        .await
        .unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    let stored = lockstep::web::datacenters::current(&app.state.pool, "Test DC")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.uploaded_by, "lockstep");
    let inv = stored.inventory().unwrap();
    let server = |n: &str| inv.servers.iter().find(|s| s.name == n).unwrap();
    assert_eq!(server("FABDC01").connected_version.to_string(), "8.11");
    assert_eq!(server("FABDC01").windows.as_str(), "2016");
    assert_eq!(server("FABWEB01").connected_version.to_string(), "8.8.6");
    assert!(
        stored.toml.contains("# A stand-alone Data Center"),
        "comments kept"
    );

    let events = app.state.store.events_after(0, None, 1000).await.unwrap();
    let e = events
        .iter()
        .find(|e| e.kind == lockstep::web::estate::EVENT_KIND)
        .expect("the update is audited");
    assert_eq!(e.run_id.as_deref(), Some(run.id.as_str()));
    assert_eq!(e.actor, "lockstep");
    let changes = e.payload["changes"].as_array().unwrap();
    assert!(changes.contains(&serde_json::json!({"server": "FABDC01", "field": "connected_version", "old": "8.8.6", "new": "8.11"})));
    assert!(changes.contains(&serde_json::json!({"server": "FABDC01", "field": "windows", "old": "2012 R2", "new": "2016"})));

    // A second pass finds nothing left to change and records nothing more.
    assert!(lockstep::web::estate::follow_run(&app.state, &run.id)
        .await
        .unwrap()
        .is_empty());
    let after = app.state.store.events_after(0, None, 1000).await.unwrap();
    assert_eq!(after.len(), events.len());
}
