//! `lockstep audit verify|export`, `lockstep backup`, and the hidden `lockstep engine` commands.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCmd {
    /// Verify the audit chain.
    Verify,
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    pub file: std::path::PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum EngineCmd {
    /// Drive a plan on the journaling test executor.
    RunLocal,
}

pub async fn run_audit(_cmd: AuditCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep audit` is not built yet (issue 3)")
}

pub async fn run_backup(_args: BackupArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep backup` is not built yet (issue 8)")
}

pub async fn run_engine(_cmd: EngineCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep engine` is not built yet (issue 3)")
}
