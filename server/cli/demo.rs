//! `lockstep demo` and `lockstep rehearse`.
//!
//! `rehearse` runs a runbook end to end against a simulated copy of an inventory's Data Center
//! (see [`crate::rehearsal`]) and reports what happened; exit 0 only when the run succeeded,
//! 1 when it stopped, 2 when it could not start.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::rehearsal::{self, Fault, Options, Rehearsal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoTopology {
    Standalone,
    Mirrored,
    Clustered,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Which example Data Center to simulate (ignored when --inventory is given).
    #[arg(long, value_enum, default_value_t = DemoTopology::Mirrored)]
    pub topology: DemoTopology,
    /// Simulate this inventory instead of an example.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Where the demo keeps its database, identities and simulated hosts (reused on restart).
    #[arg(long, value_name = "DIR", default_value = "lockstep-demo")]
    pub data_dir: PathBuf,
    /// Address of the dashboard (loopback only: the demo serves plain HTTP).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Inject a rehearsal fault into the simulated Data Center, e.g. DC1:checkdb-error, to see
    /// how a failed step looks and what it offers. Repeatable.
    #[arg(long = "fault", value_name = "SERVER:KIND")]
    pub faults: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Faults (--fault SERVER:KIND):\n  checkdb-error, tds-drop, probe-old-version, status-not-xml,\n  service-fails-to-start, stop-refused, setup-wrong-version"
)]
pub struct RehearseArgs {
    /// The inventory file describing the Data Center to simulate.
    #[arg(long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// The runbook id, e.g. upgrade-8.11 (`lockstep runbook list`).
    #[arg(long, value_name = "ID")]
    pub runbook: String,
    /// A runbook parameter, e.g. --param target=2016. Repeatable.
    #[arg(long = "param", value_name = "K=V")]
    pub params: Vec<String>,
    /// Inject a fault into the simulated Data Center, e.g. DC1:checkdb-error. Repeatable.
    #[arg(long = "fault", value_name = "SERVER:KIND")]
    pub faults: Vec<String>,
    /// Keep the rehearsal's run and audit log in this SQLite file (default: a temporary one).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// A directory of site runbooks (*.toml) to add to the built-in ones.
    #[arg(long, env = "LOCKSTEP_RUNBOOKS_DIR", value_name = "DIR")]
    pub runbooks_dir: Option<PathBuf>,
}

pub async fn run_demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let inventory = match (&args.inventory, args.topology) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
        (None, DemoTopology::Standalone) => EXAMPLE_STANDALONE.to_string(),
        (None, DemoTopology::Mirrored) => EXAMPLE_MIRRORED.to_string(),
        (None, DemoTopology::Clustered) => EXAMPLE_CLUSTERED.to_string(),
    };
    let faults = args
        .faults
        .iter()
        .map(|f| f.parse::<Fault>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    crate::rehearsal::demo::run(&args.data_dir, &args.listen, &inventory, &faults).await
}

const EXAMPLE_STANDALONE: &str = include_str!("../../examples/standalone.toml");
const EXAMPLE_MIRRORED: &str = include_str!("../../examples/mirrored.toml");
const EXAMPLE_CLUSTERED: &str = include_str!("../../examples/clustered.toml");

pub async fn run_rehearse(args: RehearseArgs) -> anyhow::Result<ExitCode> {
    let faults = args
        .faults
        .iter()
        .map(|f| f.parse::<Fault>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let scratch = rehearsal::scratch_dir("rehearsal");
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| scratch.join("rehearsal.db"));
    let options = Options {
        inventory: args.inventory.clone(),
        runbook: args.runbook.clone(),
        params: super::runbook::parse_params(&args.params)?,
        faults,
        db,
        sim_dir: scratch.join("simulated"),
        runbooks_dir: args.runbooks_dir.clone(),
    };
    eprintln!(
        "rehearsing {} on a simulated copy of {} (approvals by rehearsal identities, not people)",
        options.runbook,
        options.inventory.display()
    );
    let r = Rehearsal::start(options).await?;
    eprintln!("simulated Data Center started; run {}", r.run_id);
    let result = r
        .drive(&mut |p| {
            let detail = p
                .detail
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default();
            eprintln!(
                "[{:>6.1} s] {:<17} {}{detail}",
                p.elapsed.as_secs_f64(),
                p.status.as_str(),
                p.step
            );
        })
        .await;
    let report = r.report().await;
    r.stop().await?;
    result?;
    let mut report = report?;
    if args.db.is_none() {
        report.db = "a temporary database, now removed (pass --db FILE to keep it)".into();
    }
    match args.format {
        ReportFormat::Text => print!("{}", report.text()),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    if args.db.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    } else {
        let _ = std::fs::remove_dir_all(scratch.join("simulated"));
    }
    Ok(if report.succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
