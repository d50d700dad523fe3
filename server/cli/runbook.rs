//! `lockstep runbook list|show` and `lockstep plan`.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum RunbookCmd {
    /// List the runbooks.
    List,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[arg(long)]
    pub inventory: std::path::PathBuf,
    #[arg(long)]
    pub runbook: String,
}

pub fn run_runbook(_cmd: RunbookCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep runbook` is not built yet (issue 2)")
}

pub fn run_plan(_args: PlanArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep plan` is not built yet (issue 2)")
}
