//! `lockstep agent add|list|health|identity`: the registry of host agents and the orchestrator's
//! client certificate they pin.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use lockstep_agent::client::AgentClient;
use lockstep_protocol::tls::Thumbprint;

use crate::config::{Config, Overrides};
use crate::executors::agent::{orchestrator_identity, registry};

/// Where the database and the orchestrator's identity are.
#[derive(Debug, clap::Args)]
pub struct AgentDb {
    /// TOML configuration file (for the database path and data folder).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// SQLite database file.
    #[arg(long, value_name = "FILE", global = true)]
    pub db: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum AgentCmd {
    /// Register (or re-point) the agent of an inventory server.
    Add {
        /// Inventory server name.
        #[arg(long)]
        server: String,
        /// https://host:port where the agent listens.
        #[arg(long)]
        url: String,
        /// The agent's certificate thumbprint, as `lockstep-agent init` printed it.
        #[arg(long)]
        thumbprint: String,
        #[command(flatten)]
        db: AgentDb,
    },
    /// List registered agents: server, URL, thumbprint, last status, agent version.
    List {
        #[command(flatten)]
        db: AgentDb,
    },
    /// Contact every agent now, record whether it is online, and print the result.
    Health {
        #[command(flatten)]
        db: AgentDb,
    },
    /// Print the orchestrator's certificate thumbprint (for `lockstep-agent trust`), creating it
    /// on first use.
    Identity {
        #[command(flatten)]
        db: AgentDb,
    },
}

fn config(db: &AgentDb) -> anyhow::Result<Config> {
    let overrides = Overrides {
        db: db.db.clone(),
        ..Default::default()
    };
    Ok(Config::from_process(db.config.as_deref(), &overrides)?)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub async fn run_agent(cmd: AgentCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        AgentCmd::Add {
            server,
            url,
            thumbprint,
            db,
        } => {
            let t =
                Thumbprint::parse(&thumbprint).map_err(|e| anyhow::anyhow!("--thumbprint: {e}"))?;
            registry::check_server(&server).map_err(anyhow::Error::msg)?;
            registry::check_url(&url).map_err(anyhow::Error::msg)?;
            let cfg = config(&db)?;
            let store = crate::engine::Store::open(&cfg.db).await?;
            let pool = store.writer().clone();
            let r = registry::add(&pool, &server, &url, t, now()).await?;
            println!("added {} {} {}", r.server, r.url, r.thumbprint);
        }
        AgentCmd::List { db } => {
            let cfg = config(&db)?;
            let store = crate::engine::Store::open(&cfg.db).await?;
            let pool = store.writer().clone();
            for r in registry::list(&pool).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    r.server,
                    r.url,
                    r.thumbprint,
                    r.status,
                    r.agent_version.as_deref().unwrap_or("-")
                );
            }
        }
        AgentCmd::Health { db } => {
            let cfg = config(&db)?;
            let store = crate::engine::Store::open(&cfg.db).await?;
            let pool = store.writer().clone();
            let identity = orchestrator_identity(&cfg.data_dir)?;
            let mut offline = 0;
            for r in registry::list(&pool).await? {
                let beat =
                    match AgentClient::new(&r.url, &identity, r.thumbprint, Duration::from_secs(5))
                    {
                        Err(e) => registry::Heartbeat::Offline {
                            error: e.to_string(),
                        },
                        Ok(c) => match c.health().await {
                            Ok(h) => registry::Heartbeat::from_health(h, now()),
                            Err(e) => registry::Heartbeat::Offline {
                                error: e.to_string(),
                            },
                        },
                    };
                registry::record_heartbeat(&pool, &r.server, &beat, now()).await?;
                match beat {
                    registry::Heartbeat::Online {
                        agent_version,
                        backend,
                        clock_skew,
                    } => {
                        println!(
                            "{}\tonline\t{agent_version}\t{backend}\tskew {clock_skew}s",
                            r.server
                        )
                    }
                    registry::Heartbeat::Offline { error } => {
                        offline += 1;
                        println!("{}\toffline\t{error}", r.server)
                    }
                }
            }
            if offline > 0 {
                return Ok(ExitCode::from(1));
            }
        }
        AgentCmd::Identity { db } => {
            let cfg = config(&db)?;
            let id = orchestrator_identity(&cfg.data_dir)?;
            println!("{}", id.thumbprint());
        }
    }
    Ok(ExitCode::SUCCESS)
}
