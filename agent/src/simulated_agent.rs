//! Starting simulated agents in-process: the API the simulator and the tests use.
//!
//! ```no_run
//! # async fn demo(orchestrator: lockstep_agent::tls::Thumbprint) -> anyhow::Result<()> {
//! use lockstep_agent::backend::simulated::SimState;
//! use lockstep_agent::simulated_agent::start_simulated_agent;
//! let dir = std::path::Path::new("/tmp/sim/dc1");
//! let seed = SimState::data_center_server("dc1", "8.8.6");
//! let (agent, host) =
//!     start_simulated_agent(dir, "127.0.0.2:0".parse()?, Some(&seed), vec![orchestrator], |_| {}).await?;
//! println!("{} pinned {}", agent.url(), agent.thumbprint);
//! host.update(|s| s.backup_sessions = 3)?;      // seed or inject faults at any time
//! let now = host.read()?;                        // read what the agent did
//! # let _ = now; agent.stop().await }
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::backend::simulated::{SimState, SimulatedBackend, SimulatedHost};
use crate::config::{AgentConfig, BackendKind};
use crate::server::{spawn, AgentSetup, RunningAgent};
use crate::tls::{Identity, Thumbprint};

/// Starts a simulated agent keeping everything under `dir` (identity, journal, `simulated.json`).
///
/// - `seed`: `Some` writes a fresh state; `None` reuses the state file already in `dir` (an agent
///   "restart": same identity, same journal, same host).
/// - `client_pins`: orchestrator thumbprints accepted.
/// - `adjust`: change the configuration (allowlists, services) before it starts.
pub async fn start_simulated_agent(
    dir: &Path,
    listen: SocketAddr,
    seed: Option<&SimState>,
    client_pins: Vec<Thumbprint>,
    adjust: impl FnOnce(&mut AgentConfig),
) -> anyhow::Result<(RunningAgent, Arc<SimulatedHost>)> {
    std::fs::create_dir_all(dir)?;
    let mut config = AgentConfig::new(listen, dir, BackendKind::Simulated);
    adjust(&mut config);
    let name = seed
        .map(|s| s.hostname.clone())
        .unwrap_or_else(|| "simulated".into());
    let identity = Identity::load_or_generate(dir, "agent", &name)?;
    let path = config.simulated_state_path();
    let host = Arc::new(match seed {
        Some(s) => SimulatedHost::create(&path, s)?,
        None => SimulatedHost::open(&path)?,
    });
    let backend = Arc::new(SimulatedBackend::new(host.clone(), &config));
    let agent = spawn(AgentSetup {
        config,
        identity,
        client_pins,
        backend,
    })
    .await?;
    Ok((agent, host))
}
