//! The command line. Each command group lives in its own file; this module only names them.
//! Output shapes documented in the README are a contract other tools rely on.

use clap::{Parser, Subcommand};

pub mod agent;
pub mod audit;
pub mod backup;
pub mod campaign;
pub mod config;
pub mod demo;
#[cfg(feature = "testkit")]
pub mod engine;
pub mod help;
pub mod inventory;
pub mod runbook;
pub mod serve;

/// Lockstep conducts Connected Backup Data Center upgrades: it knows the vendor's procedure,
/// checks the estate before the window, drives every step in order on the right server, stops
/// where a change manager must approve, proves each step worked and keeps a tamper-evident record.
#[derive(Debug, Parser)]
#[command(name = "lockstep", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr: "text" (default) or "json" (structured, one object per line).
    #[arg(long, global = true, env = "LOCKSTEP_LOG_FORMAT")]
    pub log_format: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an inventory file (a Data Center described in TOML).
    #[command(subcommand)]
    Inventory(inventory::InventoryCmd),
    /// Check a Data Center against the vendor's rules before the change window.
    #[command(long_about = inventory::PREFLIGHT_ABOUT)]
    Preflight(inventory::PreflightArgs),
    /// List and show the runbooks (one per procedure in the vendor's guide).
    #[command(subcommand)]
    Runbook(runbook::RunbookCmd),
    /// Expand a runbook over an inventory into the concrete, ordered plan.
    #[command(long_about = runbook::PLAN_ABOUT)]
    Plan(runbook::PlanArgs),
    /// Verify and export the tamper-evident audit log.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Take an online backup of the orchestrator database.
    Backup(backup::BackupArgs),
    /// Restore a backup (with the service stopped); checks it and its audit chain first.
    Restore(backup::RestoreArgs),
    /// Low-level engine commands (driving plans without the dashboard; used by crash tests).
    /// Only in builds with the `testkit` feature (tests, benches): it drives the journaling
    /// test executor.
    #[cfg(feature = "testkit")]
    #[command(subcommand, hide = true)]
    Engine(engine::EngineCmd),
    /// Register and inspect host agents.
    #[command(subcommand)]
    Agent(agent::AgentCmd),
    /// Serve the dashboard and the JSON API.
    Serve(serve::ServeArgs),
    /// Manage local accounts.
    #[command(subcommand)]
    User(serve::UserCmd),
    /// Start the dashboard driving a simulated Data Center, to see Lockstep work.
    Demo(demo::DemoArgs),
    /// Rehearse a runbook against a simulated copy of your Data Center.
    Rehearse(demo::RehearseArgs),
    /// Plan and rehearse a campaign: every procedure from the estate as it is to a target.
    #[command(subcommand)]
    Campaign(campaign::CampaignCmd),
    /// Check the configuration file and environment: effective settings and where each came from.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(config::CompletionsArgs),
}

/// Structured logs on stderr; `RUST_LOG` filters. The default is `info`, except for the
/// interactive `demo` and `rehearse`, which print their own progress and default to `warn` so
/// their terminal is not buried under per-step and per-request lines.
pub fn init_logging(format: Option<&str>, command: &Command) {
    use tracing_subscriber::EnvFilter;
    let default = match command {
        Command::Demo(_) | Command::Rehearse(_) | Command::Campaign(_) => "warn",
        _ => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == Some("json") {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// Commands that only read local files and print lie down quietly when their reader goes away
/// (`lockstep audit export | head -1`): SIGPIPE ends them, as it ends `cat`, instead of a write
/// error or a panic in `println!`. Serving and talking to agents keep Rust's default (ignored),
/// so a client that hangs up never takes a server down.
pub fn quiet_on_closed_pipe(command: &Command) {
    let prints_only = matches!(
        command,
        Command::Inventory(_)
            | Command::Runbook(_)
            | Command::Plan(_)
            | Command::Audit(_)
            | Command::Config(_)
            | Command::Completions(_)
            | Command::Campaign(campaign::CampaignCmd::Plan(_))
    );
    #[cfg(unix)]
    if prints_only {
        restore_sigpipe();
    }
    #[cfg(not(unix))]
    let _ = prints_only;
}

/// Whether an error is a write to a pipe whose reader has gone.
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// SIGPIPE back to its default (end quietly), for the commands that only print.
#[cfg(unix)]
#[allow(
    unsafe_code,
    reason = "libc::signal has no safe wrapper in std; the one unsafe call of the crate"
)]
fn restore_sigpipe() {
    // SAFETY: restoring a signal's default disposition at start-up, before any thread that could
    // be writing to a pipe exists; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
