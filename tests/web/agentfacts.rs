//! Live agent facts on the Data Centers page, and the preflight findings made from them.

use lockstep::executors::agent::registry::{self, Heartbeat};
use lockstep::web::auth::Role;
use lockstep_protocol::tls::Thumbprint;

use crate::app::spawn_app;

const INVENTORY: &str = include_str!("../../examples/standalone.toml");

#[tokio::test]
async fn the_data_center_page_shows_each_agents_facts_and_judges_them_in_preflight() {
    let app = spawn_app().await;
    let op = app.login_as("olga", Role::Operator).await;
    let r = app.post(&op, "/datacenters", &[("toml", INVENTORY)]).await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let now = app.clock.now();
    let pool = &app.state.pool;
    let thumb = Thumbprint::parse(&"AB".repeat(32)).unwrap();
    // FABDC01: online, answered two minutes ago. FABWEB01: offline, with a hostile error text.
    // FABAPI01: no agent at all.
    registry::add(pool, "FABDC01", "https://fabdc01:7443", thumb, now - 3600)
        .await
        .unwrap();
    registry::record_heartbeat(
        pool,
        "FABDC01",
        &Heartbeat::Online {
            agent_version: "0.4.1".into(),
            backend: "windows".into(),
            clock_skew: 2,
        },
        now - 120,
    )
    .await
    .unwrap();
    registry::add(pool, "FABWEB01", "https://fabweb01:7443", thumb, now - 3600)
        .await
        .unwrap();
    registry::record_heartbeat(
        pool,
        "FABWEB01",
        &Heartbeat::Offline {
            error: "connection refused <img src=x onerror=alert(1)>".into(),
        },
        now - 60,
    )
    .await
    .unwrap();

    let page = app.get(&op, &location).await.text().await.unwrap();
    assert!(page.contains("<td>FABDC01</td><td><span class=\"status online\">online</span></td><td>0.4.1</td><td>windows</td><td>2m 00s ago</td><td>2 s</td>"));
    assert!(page
        .contains("<td>FABAPI01</td><td><span class=\"status not enrolled\">not enrolled</span>"));
    assert!(!page.contains("<img src=x"), "agent errors are escaped");
    assert!(page.contains("connection refused &#60;img src=x"));
    assert!(page.contains("<strong>pass</strong> agent-ready on FABDC01: agent 0.4.1 (windows) on FABDC01 answered 2m 00s ago"));
    assert!(page.contains("<strong>fail</strong> agent-ready on FABWEB01: the agent on FABWEB01 did not answer 1m 00s ago"));
    assert!(page.contains(
        "<strong>fail</strong> agent-ready on FABAPI01: no agent is enrolled for FABAPI01"
    ));

    // Twenty minutes later nothing is fresh: the findings go back to "will be checked live".
    app.clock.advance(1200);
    let page = app.get(&op, &location).await.text().await.unwrap();
    assert!(page.contains("<strong>unknown</strong> agent-ready on FABDC01: unknown — will be checked live: the last heartbeat of FABDC01 is 22m 00s old"));
}
