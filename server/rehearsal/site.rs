//! A simulated site: the simulator's Data Center started from an inventory, with its agents
//! pinned to the orchestrator's identity, and Lockstep's real executors (agent client, SQL,
//! probes) configured from its endpoints. Shared by rehearsals and `lockstep demo`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use lockstep_agent::tls::{Identity, Thumbprint};
use lockstep_simulator::{SimOptions, SimulatedDataCenter};

use crate::engine::Router;
use crate::executors::agent::{AgentEndpoint, AgentExecutor};
use crate::executors::probe::{ProbeConfig, ProbeExecutor};
use crate::executors::sql::{FixedScripts, SqlConfig, SqlExecutor};
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
    let sql = SqlExecutor::new(
        SqlConfig::from_simulator(&endpoints),
        Arc::new(FixedScripts::simulated()),
    )
    .with_backups(Arc::new(store.clone()));
    let probes = ProbeExecutor::new(ProbeConfig::from_simulator(&endpoints, true))?;
    let router = Router::new()
        .route(StepKind::Agent, agents.clone())
        .route(StepKind::Wait, agents)
        .route(StepKind::Sql, Arc::new(sql))
        .route(StepKind::Probe, Arc::new(probes));
    Ok((dc, router))
}
