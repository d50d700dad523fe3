//! What the agents would report after a stage: each server's Connected, Windows Server and SQL
//! Server versions, stored as an enrolled agent's facts (the campaign reads the estate as found
//! from them, as it would from a real site).

use lockstep::executors::agent::registry;
use lockstep_protocol::facts::ComponentVersion;
use lockstep_protocol::tls::Thumbprint;
use lockstep_protocol::{Component, SiteFacts};

use crate::app::TestApp;

/// Records facts for `server`: Connected `version` (as the Data Center component), `windows`
/// and `sql_server`, received now.
pub async fn report(
    app: &TestApp,
    server: &str,
    version: &str,
    windows: &str,
    sql_server: Option<&str>,
) {
    let pool = &app.state.pool;
    let now = app.clock.now();
    if registry::get(pool, server).await.unwrap().is_none() {
        let thumb = Thumbprint::parse(&"AB".repeat(32)).unwrap();
        let url = format!("https://{}:9443", server.to_lowercase());
        registry::add(pool, server, &url, thumb, now).await.unwrap();
    }
    let mut facts = SiteFacts::empty(server, now);
    facts.components = vec![ComponentVersion {
        component: Component::DataCenter,
        version: version.into(),
    }];
    facts.windows = Some(windows.into());
    facts.sql_server = sql_server.map(str::to_string);
    registry::record_facts(pool, server, &facts, now)
        .await
        .unwrap();
}

/// Every server of a stage's projected estate (`estate_after` as the API gives it), reported.
pub async fn report_estate(app: &TestApp, estate: &serde_json::Value) {
    for s in estate.as_array().expect("an estate") {
        report(
            app,
            s["name"].as_str().unwrap(),
            s["version"].as_str().unwrap(),
            s["windows"].as_str().unwrap(),
            s["sql_server"].as_str(),
        )
        .await;
    }
}
