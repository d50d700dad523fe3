//! `lockstep serve` and `lockstep user add`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

#[derive(Debug, clap::Subcommand)]
pub enum UserCmd {
    /// Create a local account.
    Add,
}

pub async fn run_serve(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep serve` is not built yet (issue 6)")
}

pub async fn run_user(_cmd: UserCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep user` is not built yet (issue 6)")
}
