//! `lockstep-sim`: runs a simulated Data Center described by an inventory file until Ctrl-C and
//! prints where its agents, SQL Servers and web endpoints listen (JSON), for configuring
//! Lockstep's executors.

// Production code never unwraps, expects or panics on what it is given (the lint gate, see the
// workspace `Cargo.toml`); unit tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::path::PathBuf;

use clap::Parser;
use lockstep_simulator::{SimOptions, SimulatedDataCenter};

#[derive(Parser)]
#[command(about = "Runs a simulated Connected Backup Data Center on loopback addresses")]
struct Args {
    /// Inventory file (TOML) describing the Data Center.
    #[arg(long)]
    inventory: PathBuf,
    /// Directory for the agents' identities, journals and host state.
    #[arg(long, default_value = "lockstep-sim")]
    dir: PathBuf,
    /// Orchestrator certificate thumbprint (hex) the agents accept; repeatable.
    #[arg(long = "orchestrator-pin")]
    pins: Vec<String>,
    /// Server i listens on 127.0.0.(first-ip + i).
    #[arg(long, default_value_t = 10)]
    first_ip: u8,
    /// Also write the endpoints JSON to this file (replaced atomically once everything listens).
    #[arg(long)]
    endpoints_out: Option<PathBuf>,
    /// Start no agents: seed each server's state file and write `DIR/<server>/agent.toml` for a
    /// `lockstep-agent run --config …` process per server (they share the state file with the
    /// simulator's TDS and web endpoints).
    #[arg(long)]
    external_agents: bool,
    /// Write `lockstep serve` settings for this Data Center (`[sql]`, `[probes]`,
    /// `simulated_site`) and the files they name into this folder: `lockstep-site.toml`.
    #[arg(long, value_name = "DIR")]
    site_config_out: Option<PathBuf>,
    /// Inject a fault into the simulator's own endpoints, SERVER:KIND. Repeatable. Kinds:
    /// checkdb-error (DBCC CHECKDB reports corruption in Registry), tds-drop (the SQL Server
    /// drops every connection), probe-old-version (Support Center keeps showing the old
    /// version), status-not-xml (the DataTransfer status page is truncated),
    /// backup-unrestorable (the SQL Server writes damaged backup files). Host faults
    /// (services, Setup) live in each host's state file.
    #[arg(long = "fault", value_name = "SERVER:KIND")]
    faults: Vec<String>,
}

/// Applies one `--fault`; the error names what is wrong.
fn inject(dc: &SimulatedDataCenter, spec: &str) -> anyhow::Result<()> {
    let (server, kind) = spec
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("--fault `{spec}` is not SERVER:KIND"))?;
    let missing = |part: &str| anyhow::anyhow!("--fault {spec}: server {server} has no {part}");
    match kind {
        "checkdb-error" | "tds-drop" | "backup-unrestorable" => {
            let sql = dc.sql(server).ok_or_else(|| missing("SQL Server"))?;
            let mut f = sql.faults();
            match kind {
                "tds-drop" => f.drop_connection = true,
                "backup-unrestorable" => f.backup_unrestorable = true,
                _ => f.checkdb_error_in = Some("Registry".into()),
            }
            sql.set_faults(f);
        }
        "probe-old-version" | "status-not-xml" => {
            let web = dc.web(server).ok_or_else(|| missing("web endpoint"))?;
            let mut f = web.faults();
            if kind == "status-not-xml" {
                f.status_not_xml = true;
            } else {
                let host = dc.host(server).ok_or_else(|| missing("host"))?;
                f.shown_version = host.read()?.product_version;
            }
            web.set_faults(f);
        }
        _ => anyhow::bail!(
            "--fault {spec}: unknown kind `{kind}` (checkdb-error, tds-drop, backup-unrestorable, probe-old-version, status-not-xml)"
        ),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = Args::parse();
    // Files written for other processes (agent configurations, serve settings) name absolute
    // paths, so they work from any working directory.
    args.dir = std::path::absolute(&args.dir)?;
    if let Some(d) = &args.site_config_out {
        args.site_config_out = Some(std::path::absolute(d)?);
    }
    let mut options = SimOptions::new(&args.dir);
    options.first_ip = args.first_ip;
    options.external_agents = args.external_agents;
    for p in &args.pins {
        options.orchestrator_pins.push(
            p.parse()
                .map_err(|e| anyhow::anyhow!("--orchestrator-pin {p}: {e}"))?,
        );
    }
    let dc = SimulatedDataCenter::start_file(&args.inventory, options).await?;
    for f in &args.faults {
        inject(&dc, f)?;
    }
    let json = serde_json::to_string_pretty(&dc.endpoints())?;
    if let Some(dir) = &args.site_config_out {
        let path = lockstep_simulator::site_config::write_site_config(&dc, dir)?;
        eprintln!("lockstep serve settings written to {}", path.display());
    }
    if let Some(out) = &args.endpoints_out {
        // Readers poll for the file: they must never see half of it.
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, &json).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, out).map_err(|e| anyhow::anyhow!("{}: {e}", out.display()))?;
    }
    println!("{json}");
    eprintln!(
        "simulated Data Center `{}` is running; Ctrl-C stops it",
        dc.description.name
    );
    tokio::signal::ctrl_c().await?;
    dc.stop().await
}
