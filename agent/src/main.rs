//! `lockstep-agent`: runs allowlisted, journaled actions on one Data Center server.
//!
//! `init` creates the agent's key and certificate and prints its thumbprint; `trust` pins the
//! orchestrator's certificate; `run` serves HTTPS until Ctrl-C.

// Production code never unwraps, expects or panics on what it is given (the lint gate, see the
// workspace `Cargo.toml`); unit tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lockstep_agent::config::AgentConfig;
use lockstep_agent::tls::{Identity, Thumbprint};
use lockstep_agent::AgentSetup;

#[derive(Debug, Parser)]
#[command(name = "lockstep-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create this agent's key pair and self-signed certificate; print its SHA-256 thumbprint.
    Init {
        #[arg(long)]
        state_dir: PathBuf,
        /// Name in the certificate (default: this host's name).
        #[arg(long)]
        name: Option<String>,
        /// Replace an existing identity (the orchestrator must then re-pin the new thumbprint).
        #[arg(long)]
        force: bool,
    },
    /// Pin the orchestrator's certificate thumbprint (the newest two pins are kept, for rotation).
    Trust {
        thumbprint: String,
        #[arg(long)]
        state_dir: PathBuf,
        /// Allow dropping the oldest pin when two are pinned already.
        #[arg(long)]
        replace: bool,
    },
    /// Serve HTTPS with mutual TLS.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the journal: every action id with its state.
    Journal {
        #[arg(long)]
        config: PathBuf,
    },
}

fn host_name() -> String {
    std::env::var("COMPUTERNAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "lockstep-agent".into())
}

/// `lockstep-agent journal`: every id with its last state, then every damaged place. Read-only
/// (opening the journal for writing would mark running actions unknown) and never stopped by
/// damage or bytes that are not UTF-8: it says where they are, and exits non-zero.
fn print_journal(path: &std::path::Path) -> anyhow::Result<()> {
    let seen = lockstep_agent::journal::inspect(path)?;
    let mut last = std::collections::BTreeMap::new();
    for (id, state) in seen.records {
        last.insert(
            id,
            if state == "accepted" {
                "running"
            } else {
                state
            },
        );
    }
    for (id, state) in last {
        println!("{id}\t{state}");
    }
    if let Some(at) = seen.torn_at {
        println!("# torn: the last write (from byte {at}) never finished; the agent cuts it off");
    }
    for d in &seen.damage {
        println!("# damaged: {d}");
    }
    if !seen.damage.is_empty() {
        anyhow::bail!(
            "the journal {} is damaged in {} place(s) (listed above); the agent will not start on it",
            path.display(),
            seen.damage.len()
        );
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Init {
            state_dir,
            name,
            force,
        } => {
            if state_dir.join("agent.cert.pem").exists() && !force {
                let id = Identity::load(&state_dir, "agent")?;
                println!("{}", id.thumbprint());
                eprintln!(
                    "identity already exists in {} (use --force to replace it)",
                    state_dir.display()
                );
                return Ok(());
            }
            let id = Identity::generate(&name.unwrap_or_else(host_name))?;
            // The folder holds the key, the pins and the journal: the agent's account only.
            lockstep_agent::config::ensure_private_dir(&state_dir)?;
            id.save(&state_dir, "agent")?;
            println!("{}", id.thumbprint());
        }
        Cmd::Trust {
            thumbprint,
            state_dir,
            replace,
        } => {
            let t = Thumbprint::parse(&thumbprint).map_err(|e| anyhow::anyhow!(e))?;
            let pins = lockstep_agent::server::trust(&state_dir, t, replace)?;
            for p in pins {
                println!("trusted {p}");
            }
        }
        Cmd::Run { config } => {
            let cfg = AgentConfig::load(&config)?;
            let setup = AgentSetup::from_config(cfg)?;
            let listener = tokio::net::TcpListener::bind(setup.config.listen).await?;
            let core = lockstep_agent::server::build_core(&setup)?;
            // Machine-readable line for scripts and tests: where we listen and who we are.
            println!(
                "listening {} {}",
                listener.local_addr()?,
                setup.identity.thumbprint()
            );
            lockstep_agent::server::serve_core(core, &setup, listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        }
        Cmd::Journal { config } => {
            let cfg = AgentConfig::load(&config)?;
            return print_journal(&cfg.journal_path());
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
