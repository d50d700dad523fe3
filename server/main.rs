//! `lockstep`: thin entry point. Logging, arguments, dispatch; the work lives in the library.

// Production code never unwraps, expects or panics on what it is given (the lint gate, see the
// workspace `Cargo.toml`); unit tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::process::ExitCode;

use lockstep::cli::Command;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = lockstep::cli::help::parse();
    lockstep::cli::init_logging(cli.log_format.as_deref(), &cli.command);
    lockstep::cli::quiet_on_closed_pipe(&cli.command);
    let result = match cli.command {
        Command::Inventory(cmd) => lockstep::cli::inventory::run_inventory(cmd),
        Command::Preflight(args) => lockstep::cli::inventory::run_preflight(args).await,
        Command::Runbook(cmd) => lockstep::cli::runbook::run_runbook(cmd),
        Command::Plan(args) => lockstep::cli::runbook::run_plan(args),
        Command::Audit(cmd) => lockstep::cli::audit::run_audit(cmd).await,
        Command::Backup(args) => lockstep::cli::backup::run_backup(args).await,
        Command::Restore(args) => lockstep::cli::backup::run_restore(args).await,
        #[cfg(feature = "testkit")]
        Command::Engine(cmd) => lockstep::cli::engine::run_engine(cmd).await,
        Command::Agent(cmd) => lockstep::cli::agent::run_agent(cmd).await,
        Command::Serve(args) => lockstep::cli::serve::run_serve(args).await,
        Command::User(cmd) => lockstep::cli::serve::run_user(cmd).await,
        Command::Demo(args) => lockstep::cli::demo::run_demo(args).await,
        Command::Rehearse(args) => lockstep::cli::demo::run_rehearse(args).await,
        Command::Campaign(cmd) => lockstep::cli::campaign::run_campaign(cmd).await,
        Command::Config(cmd) => lockstep::cli::config::run_config(cmd),
        Command::Completions(args) => lockstep::cli::config::run_completions(args),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): what it wanted it has; not an error.
        Err(e) if lockstep::cli::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
