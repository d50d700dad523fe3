//! `lockstep campaign plan` and `lockstep campaign rehearse`.
//!
//! `plan` prints the ordered stages from the estate as the inventory states it to the target
//! (text explains the order; JSON is the contract `{"target","stages":[{"runbook","params",
//! "servers","reason","section","estimate_secs","estate_after"}]}`), exit 0; a target the guide
//! cannot reach exits 2 naming the rule. `rehearse` runs every stage against one simulated Data
//! Center, exit 0 only when every server ends at the target (read from the simulator).

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::knowledge::campaign::{self, parse_target, Campaign, Refusal, ServerState};
use crate::knowledge::inventory::Inventory;
use crate::knowledge::runbook::format_duration;
use crate::rehearsal::campaign::{CampaignError, CampaignOptions, CampaignReport};

pub const PLAN_ABOUT: &str = "\
Plan a campaign: every procedure of the vendor's guide, in an order its rules allow, from the \
estate as the inventory states it to the target.

The guide's procedures depend on each other: Windows Server 2012 R2 needs every server at \
Connected Backup 8.8.1, Windows Server 2016 needs 8.8.6.1; SQL Server 2012 SP4 / 2014 SP2 / 2016 \
need 8.8.1 / 8.8.3 / 8.8.6; a SQL Server upgrade needs Windows Server 2012 R2 or later; Windows \
upgrades in place one release at a time (2008 R2, 2012 R2, 2016); only some Windows / SQL Server \
combinations are supported; mirrored and clustered Data Centers go primary side first. Lockstep \
tries the orders these rules allow, runs each stage's preflight against the estate the stages \
before it leave (it must pass), and keeps the order that stops the Data Center's sides the fewest \
times. Each stage says which rule put it where it is, with the guide's section.

--target names where the estate should end, one release per option: connected=8.11, \
windows=2012 R2|2016, sql=2012 SP4|2014 SP2|2016. A release left out is left as it is.

A target the guide cannot reach is refused, naming the rule: a server newer than the target, an \
unsupported Windows / SQL Server pair, a server below 8.8.1 (8.11 upgrades directly only from \
there). Where the way forward lies outside the guide (an intermediate Connected Backup release, \
Windows Server 2019) the refusal says so; Lockstep never invents a procedure.

--format json prints {\"target\":{...},\"stages\":[{\"runbook\",\"params\",\"servers\",\"reason\",\
\"section\",\"estimate_secs\",\"estate_after\":[{\"name\",\"version\",\"windows\",\"sql_server\"}]}]}; \
a refusal prints {\"refusal\":{\"rule\",\"section\",\"message\",\"outside_guide\"}}.

Exit status: 0 the campaign is planned (no stages when the estate is at the target), 2 the \
target is refused (the rule is named) or the inventory or arguments are invalid.

Examples:
  lockstep campaign plan --inventory examples/mirrored.toml --target connected=8.11 --target windows=2016 --target sql=2016
  lockstep campaign plan --inventory dc.toml --target sql=2016 --format json
  lockstep campaign plan --inventory dc.toml --target \"windows=2012 R2\"";

pub const REHEARSE_ABOUT: &str = "\
Rehearse a campaign: plan it, then run every stage, in order, against ONE simulated copy of the \
Data Center, with the real engine and executors, as `lockstep rehearse` runs one runbook.

The simulated estate carries over from stage to stage: after each stage the Connected Backup, \
Windows Server and SQL Server releases are read back from the simulated hosts, and the next stage \
is planned against that estate as found (not against the plan's projection). Approvals and manual \
tasks are performed by clearly labelled rehearsal identities, never in a person's name.

--format json prints {\"status\",\"stages\":[{\"runbook\",\"params\",\"run_id\",\"status\",\
\"stopped_at\",...}],\"servers\":[{\"name\",\"version\",\"windows\",\"sql_server\"}],...}.

Exit status: 0 every stage succeeded and every server ends at the target, 1 a stage stopped or a \
server ended short of the target (the report says which and why), 2 the target is refused or the \
inventory or arguments are invalid.

Examples:
  lockstep campaign rehearse --inventory examples/standalone.toml --target connected=8.11 --target windows=2016 --target sql=2016
  lockstep campaign rehearse --inventory dc.toml --target sql=2016 --format json --db campaign.db";

#[derive(Debug, clap::Subcommand)]
pub enum CampaignCmd {
    /// Plan the ordered stages (runbooks) from the estate to the target, and why in that order.
    #[command(long_about = PLAN_ABOUT)]
    Plan(PlanArgs),
    /// Rehearse every stage of a campaign against one simulated Data Center.
    #[command(long_about = REHEARSE_ABOUT)]
    Rehearse(RehearseArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people: the order, explained.
    Text,
    /// For tools: {"target","stages":[...]}.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The inventory file (TOML) describing the Data Center as it is.
    #[arg(long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// Where to end, one release per option: connected=8.11, windows=2016, sql=2016. Repeatable.
    #[arg(long = "target", value_name = "K=V", required = true)]
    pub targets: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct RehearseArgs {
    /// The inventory file (TOML) describing the Data Center to simulate.
    #[arg(long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// Where to end, one release per option: connected=8.11, windows=2016, sql=2016. Repeatable.
    #[arg(long = "target", value_name = "K=V", required = true)]
    pub targets: Vec<String>,
    /// Keep every stage's run and audit log in this SQLite file (default: a temporary one).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// A directory of site runbooks (*.toml) to add to the built-in ones.
    #[arg(long, env = "LOCKSTEP_RUNBOOKS_DIR", value_name = "DIR")]
    pub runbooks_dir: Option<PathBuf>,
}

pub async fn run_campaign(cmd: CampaignCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CampaignCmd::Plan(args) => run_plan(args),
        CampaignCmd::Rehearse(args) => run_rehearse(args).await,
    }
}

fn load(file: &std::path::Path) -> Result<Inventory, ExitCode> {
    Inventory::load(file).map_err(|e| {
        eprintln!("{e}");
        eprintln!("{}: the inventory was not accepted", e.file);
        ExitCode::from(2)
    })
}

/// A refusal: JSON on stdout for tools, the sentence on stderr for people; exit 2.
fn refuse(r: &Refusal, format: Format) -> anyhow::Result<ExitCode> {
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "refusal": r }))?
        );
    }
    eprintln!("campaign refused: {r}");
    Ok(ExitCode::from(2))
}

fn run_plan(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let inv = match load(&args.inventory) {
        Ok(inv) => inv,
        Err(code) => return Ok(code),
    };
    let planned = parse_target(&args.targets).and_then(|t| campaign::plan(&inv, &t));
    match planned {
        Err(r) => refuse(&r, args.format),
        Ok(c) => {
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&c)?),
                Format::Text => print!("{}", text(&inv, &args.inventory, &c)),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The campaign for people: the order, why, and what the estate looks like after each stage.
pub fn text(inv: &Inventory, file: &std::path::Path, c: &Campaign) -> String {
    let mut o = String::new();
    let mut to = Vec::new();
    if let Some(v) = &c.target.connected {
        to.push(format!("Connected Backup {v}"));
    }
    if let Some(w) = c.target.windows {
        to.push(w.to_string());
    }
    if let Some(q) = c.target.sql_server {
        to.push(q.to_string());
    }
    let _ = writeln!(
        o,
        "Campaign for {} ({}): to {}",
        inv.name,
        inv.topology,
        to.join(", ")
    );
    let _ = writeln!(o, "{}", c.why);
    for (n, s) in c.stages.iter().enumerate() {
        let params: Vec<String> = s.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let with = if params.is_empty() {
            String::new()
        } else {
            format!(" ({})", params.join(", "))
        };
        let _ = writeln!(
            o,
            "\n{}. {}{with}, about {}",
            n + 1,
            s.runbook,
            format_duration(s.estimate_secs)
        );
        let _ = writeln!(o, "   Changes: {}", some(&s.servers));
        let _ = writeln!(o, "   Why here: {}", s.reason);
        let _ = writeln!(o, "   Guide: \"{}\"", s.section);
        let _ = writeln!(o, "   Estate after:");
        for (releases, names) in grouped(&s.estate_after) {
            let _ = writeln!(o, "     {releases}: {}", some(&names));
        }
        let param_args: String = s
            .params
            .iter()
            .map(|(k, v)| format!(" --param \"{k}={v}\""))
            .collect();
        let _ = writeln!(
            o,
            "   Preview: lockstep plan --inventory {} --runbook {}{param_args}",
            file.display(),
            s.runbook
        );
    }
    o
}

/// Servers with the same releases together, in inventory order of their first server: a
/// 5,000-server estate reads as a few lines.
fn grouped(estate: &[ServerState]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for e in estate {
        let sql = e
            .sql_server
            .map(|q| format!(", SQL Server {}", q.as_str()))
            .unwrap_or_default();
        let releases = format!(
            "{} on Windows Server {}{sql}",
            e.version,
            e.windows.as_str()
        );
        match out.iter_mut().find(|(r, _)| *r == releases) {
            Some((_, names)) => names.push(e.name.clone()),
            None => out.push((releases, vec![e.name.clone()])),
        }
    }
    out
}

/// Up to twelve names, then how many more.
fn some(names: &[String]) -> String {
    const SHOWN: usize = 12;
    if names.len() <= SHOWN {
        return names.join(", ");
    }
    let shown: Vec<&str> = names.iter().take(SHOWN).map(String::as_str).collect();
    format!("{} and {} more", shown.join(", "), names.len() - SHOWN)
}

async fn run_rehearse(args: RehearseArgs) -> anyhow::Result<ExitCode> {
    let target = match parse_target(&args.targets) {
        Ok(t) => t,
        Err(r) => return refuse(&r, args.format),
    };
    if let Err(code) = load(&args.inventory) {
        return Ok(code);
    }
    let scratch = crate::rehearsal::scratch_dir("campaign");
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| scratch.join("campaign.db"));
    let options = CampaignOptions {
        inventory: args.inventory.clone(),
        target,
        db,
        sim_dir: scratch.join("simulated"),
        runbooks_dir: args.runbooks_dir.clone(),
    };
    eprintln!(
        "rehearsing a campaign on a simulated copy of {} (approvals by rehearsal identities, not people)",
        options.inventory.display()
    );
    let result = crate::rehearsal::campaign::rehearse(options, &mut |n, runbook, p| {
        eprintln!(
            "[stage {n} {runbook} {:>6.1} s] {:<17} {}",
            p.elapsed.as_secs_f64(),
            p.status.as_str(),
            p.step
        );
    })
    .await;
    let _ = std::fs::remove_dir_all(scratch.join("simulated"));
    if args.db.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let mut report = match result {
        Ok(r) => r,
        Err(CampaignError::Refused(r)) => return refuse(&r, args.format),
        Err(CampaignError::Failed(e)) => return Err(e),
    };
    if args.db.is_none() {
        report.db = "a temporary database, now removed (pass --db FILE to keep it)".into();
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", rehearsal_text(&report)),
    }
    Ok(if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The campaign rehearsal for people.
fn rehearsal_text(r: &CampaignReport) -> String {
    let mut o = String::new();
    let verdict = if r.succeeded() {
        "SUCCEEDED: every stage succeeded and every server is at the target"
    } else {
        "DID NOT SUCCEED"
    };
    let _ = writeln!(
        o,
        "Campaign rehearsal on {}\nResult: {verdict}\n\nStages:",
        r.inventory
    );
    for (n, s) in r.stages.iter().enumerate() {
        let params: Vec<String> = s.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            o,
            "  {}. {} {} — {} ({:.1} s, run {})",
            n + 1,
            s.runbook,
            params.join(" "),
            s.status,
            s.elapsed_ms as f64 / 1000.0,
            s.run_id
        );
        if let Some(st) = &s.stopped_at {
            let _ = writeln!(o, "     stopped at {} — {}: {}", st.step, st.title, st.why);
        }
    }
    if let Some(refused) = &r.replan_refused {
        let _ = writeln!(
            o,
            "\nPlanning again from the estate as found was refused: {refused}"
        );
    }
    let _ = writeln!(o, "\nSimulated end state:");
    for s in &r.servers {
        let _ = writeln!(
            o,
            "  {}: version {}, Windows {}, SQL Server {}",
            s.name,
            s.version.as_deref().unwrap_or("none"),
            s.windows,
            s.sql_server.as_deref().unwrap_or("none")
        );
    }
    for s in &r.short_of_target {
        let _ = writeln!(o, "  short of the target: {s}");
    }
    let _ = writeln!(o, "\nRecorded in {}", r.db);
    o
}
