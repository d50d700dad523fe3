//! `lockstep demo` and `lockstep rehearse`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

#[derive(Debug, clap::Args)]
pub struct RehearseArgs {}

pub async fn run_demo(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep demo` is not built yet (issue 7)")
}

pub async fn run_rehearse(_args: RehearseArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`lockstep rehearse` is not built yet (issue 7)")
}
