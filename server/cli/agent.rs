//! `lockstep agent add|list`.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum AgentCmd {
    /// Register an agent.
    Add,
}

pub async fn run_agent(_cmd: AgentCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep agent` is not built yet (issue 4)")
}
