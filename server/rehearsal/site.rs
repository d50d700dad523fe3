//! A simulated site: the simulator's Data Center started from an inventory, with its agents
//! pinned to the orchestrator's identity, and Lockstep's real executors (agent client, SQL,
//! probes) configured from its endpoints. Shared by rehearsals and `lockstep demo`.
//!
//! This is the one place where the simulator's endpoints become executor settings: the
//! executors themselves know only their public configuration types, never the simulator.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use lockstep_protocol::tls::{Identity, Thumbprint};
use lockstep_simulator::{Endpoints, SimOptions, SimulatedDataCenter};

use crate::engine::Router;
use crate::executors::agent::{AgentEndpoint, AgentExecutor};
use crate::executors::probe::{ProbeConfig, ProbeExecutor};
use crate::executors::sql::{FixedScripts, SqlConfig, SqlEncryption, SqlExecutor, SqlTarget};
use crate::knowledge::plan::StepKind;

/// Starts the simulated Data Center of `inventory` under `sim_dir`, its agents accepting only
/// `orchestrator`'s certificate, and returns it with a router over the real executors.
pub async fn start(
    inventory: &Path,
    sim_dir: &Path,
    orchestrator: Identity,
    first_ip: u8,
    store: &crate::engine::Store,
) -> anyhow::Result<(SimulatedDataCenter, Router)> {
    std::fs::create_dir_all(sim_dir)
        .with_context(|| format!("cannot create {}", sim_dir.display()))?;
    let mut sim = SimOptions::new(sim_dir);
    sim.orchestrator_pins = vec![orchestrator.thumbprint()];
    sim.first_ip = first_ip;
    let dc = SimulatedDataCenter::start_file(inventory, sim)
        .await
        .context("the simulated Data Center did not start")?;
    let endpoints = dc.endpoints();
    let agents = AgentExecutor::new(orchestrator);
    for (server, a) in &endpoints.agents {
        let thumbprint = Thumbprint::parse(&a.thumbprint).map_err(|e| anyhow!("{e}"))?;
        agents.add(
            server,
            AgentEndpoint {
                url: a.url.clone(),
                thumbprint,
            },
        )?;
    }
    let agents = Arc::new(agents);
    let sql = SqlExecutor::new(sql_config(&endpoints), Arc::new(site_scripts()))
        .with_backups(Arc::new(store.clone()));
    let probes = ProbeExecutor::new(probe_config(&endpoints, true))?;
    let router = Router::new()
        .route(StepKind::Agent, agents.clone())
        .route(StepKind::Wait, agents)
        .route(StepKind::Sql, Arc::new(sql))
        .route(StepKind::Probe, Arc::new(probes));
    Ok((dc, router))
}

/// The SQL Servers of a simulated Data Center (SQL login, encryption off: the simulator does not
/// do TDS TLS, so this is the explicit lab setting the run page shows).
pub fn sql_config(e: &Endpoints) -> SqlConfig {
    let servers = e
        .sql
        .iter()
        .map(|(name, addr)| {
            let t = SqlTarget {
                address: addr.to_string(),
                user: e.sql_user.clone(),
                password: Some(e.sql_password.clone()),
                password_env: None,
                encrypt: SqlEncryption::Off,
                ca_file: None,
            };
            (name.clone(), t)
        })
        .collect();
    SqlConfig { servers }
}

/// The site scripts every simulated Data Center folder holds.
pub fn site_scripts() -> FixedScripts {
    FixedScripts(
        lockstep_simulator::scripts::SITE_SCRIPTS
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect(),
    )
}

/// Probes of a simulated Data Center: its CA trusted, and — when `trust_self_signed` — the
/// self-signed certificates too, as a site that imported them would.
pub fn probe_config(e: &Endpoints, trust_self_signed: bool) -> ProbeConfig {
    let mut trusted_pem = vec![e.ca_pem.clone()];
    if trust_self_signed {
        trusted_pem.extend(e.self_signed_pem.values().cloned());
    }
    ProbeConfig {
        trusted_pem,
        resolve: e.resolve.clone(),
        timeout: Some(Duration::from_secs(30)),
    }
}
