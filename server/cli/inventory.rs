//! `lockstep inventory check` and `lockstep preflight`.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum InventoryCmd {
    /// Parse and validate an inventory file.
    Check { file: std::path::PathBuf },
}

#[derive(Debug, clap::Args)]
pub struct PreflightArgs {
    #[arg(long)]
    pub inventory: std::path::PathBuf,
}

pub fn run_inventory(_cmd: InventoryCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep inventory` is not built yet (issue 2)")
}

pub fn run_preflight(_args: PreflightArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep preflight` is not built yet (issue 2)")
}
