//! `lockstep inventory check` and `lockstep preflight`.
//!
//! `inventory check` prints a summary of a valid inventory, or every problem with its line.
//! `preflight` prints the vendor's rules as a change manager reads them (text) or as the JSON
//! contract `{"findings":[{"rule","severity","server","message","section","result"}]}`; it
//! exits 1 when any finding is an error, so a pipeline can stop on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};

use crate::knowledge::inventory::Inventory;
use crate::knowledge::preflight::{preflight_live, Finding, LiveFacts, Outcome, Severity};
use crate::knowledge::runbook::Catalog;

const CHECK_ABOUT: &str = "\
Parse and validate an inventory file: a Data Center described in TOML.

Parsing is strict. Unknown fields, bad values (a role, a Windows or SQL Server release that is \
not one of the listed ones), duplicate server names and shapes no Data Center can have are all \
reported, each as FILE:LINE: FIELD: MESSAGE, for example:

  dc.toml:14: servers[2].side: missing; every server of a mirrored Data Center is on the \
\"primary\" or \"secondary\" side

The shapes: a stand-alone Data Center has one Data Center server with roles \"registry\" and \
\"directory\"; a mirrored one a primary and a secondary server, each with both; a clustered one a \
Registration Master (role \"registry\") on each side and directory servers in pairs across the \
sides (same `pair`, one server per side).

On success it prints the Data Center's name, topology and servers with their roles, and exits 0. \
On any problem it prints them all and exits 1.

Examples:
  lockstep inventory check examples/mirrored.toml
  lockstep inventory check examples/clustered.toml";

/// `lockstep preflight --help` (used on the command in `cli.rs`).
pub const PREFLIGHT_ABOUT: &str = "\
Check a Data Center against the vendor's rules before the change window opens.

Every rule the vendor's guide states about the estate is a named check: minimum Connected Backup \
versions for Windows Server and SQL Server targets, supported Windows/SQL Server combinations, \
one Management API per Data Center, what may share a server with the DataTransfer API, \
certificates (trusted CA for the Management API; port 443 where the DataTransfer API runs; a \
certificate CN that differs from the FQDN), free space for the Registry files, SQL Server and SQL \
Server Agent accounts, and TLS settings.

Each check passes, fails (as an error or a warning), or — when the inventory lacks the facts — \
says \"unknown — will be checked live\"; it never passes on missing facts. Each finding names the \
section of the vendor's guide it comes from.

--runbook picks the procedure-specific rules (upgrade-8.11, upgrade-windows-server, \
upgrade-sql-server, uninstall-management-api, uninstall-datatransfer-api); without it only the \
rules about the estate run. Windows and SQL Server upgrades need --param target=...

--db FILE (or --config FILE, for the database `lockstep serve` uses) also reads the facts the \
agents last reported to that dashboard: a rule the inventory cannot answer then answers from fresh \
facts (naming the fact and its age), and the releases and versions the agents report replace the \
inventory's. Facts older than [agents] facts_stale_secs (default 180) keep \"unknown\" and say how \
old they are.

--format json prints {\"findings\":[{\"rule\",\"severity\",\"server\",\"message\",\"section\",\
\"result\"}]} (server is null for a finding about the whole Data Center).

Exit status: 0 when no finding is an error, 1 when at least one is, 2 when the inventory or the \
arguments are invalid.

Examples:
  lockstep preflight --inventory examples/clustered.toml
  lockstep preflight --inventory examples/mirrored.toml --runbook upgrade-windows-server --param target=2016
  lockstep preflight --inventory examples/mirrored.toml --runbook upgrade-sql-server --param target=2016 --format json
  lockstep preflight --inventory dc.toml --runbook upgrade-8.11 --db lockstep-data/lockstep.db";

#[derive(Debug, clap::Subcommand)]
pub enum InventoryCmd {
    /// Parse and validate an inventory file; print its servers or every problem with its line.
    #[command(long_about = CHECK_ABOUT)]
    Check {
        /// The inventory file (TOML).
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people: findings grouped by what needs doing.
    Text,
    /// For tools: {"findings":[...]}.
    Json,
}

#[derive(Debug, clap::Args)]
pub struct PreflightArgs {
    /// The inventory file (TOML) describing the Data Center.
    #[arg(long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// The runbook whose rules apply, e.g. upgrade-sql-server (default: only the estate rules).
    #[arg(long, value_name = "ID")]
    pub runbook: Option<String>,
    /// A runbook parameter, e.g. --param target=2016. Repeatable.
    #[arg(long = "param", value_name = "K=V", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also read the agents' facts from this Lockstep database (as `lockstep serve` stores them).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// TOML configuration of `lockstep serve`: its database and `[agents] facts_stale_secs`.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `K=V` → `(K, V)`; the value may contain `=` and spaces (`target=2012 R2`).
fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not K=V (e.g. target=2016)")),
    }
}

pub fn run_inventory(cmd: InventoryCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        InventoryCmd::Check { file } => match Inventory::load(&file) {
            Ok(inv) => {
                print!("{}", summary(&file.display().to_string(), &inv));
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                let n = e.problems.len();
                eprintln!(
                    "{}: {n} problem{} found; the inventory was not accepted",
                    e.file,
                    if n == 1 { "" } else { "s" }
                );
                Ok(ExitCode::from(1))
            }
        },
    }
}

pub async fn run_preflight(args: PreflightArgs) -> anyhow::Result<ExitCode> {
    let inv = Inventory::load(&args.inventory).map_err(|e| anyhow!("{e}"))?;
    let mut given = BTreeMap::new();
    for (k, v) in &args.params {
        if given.insert(k.clone(), v.clone()).is_some() {
            bail!("--param {k} is given twice");
        }
    }
    let params = match &args.runbook {
        None if !given.is_empty() => {
            bail!("--param needs --runbook (parameters belong to a runbook)")
        }
        None => given,
        Some(id) => {
            let catalog = Catalog::builtin()
                .map_err(|e| anyhow!("the built-in runbooks are invalid: {e:?}"))?;
            let rb = catalog
                .get(id)
                .ok_or_else(|| anyhow!("no runbook `{id}`; known: {}", catalog.ids().join(", ")))?;
            crate::knowledge::runbook::raw::resolve_params(rb, &given)
                .map_err(|e| anyhow!(e))
                .context("--param")?
        }
    };
    let live = live_facts(&args).await?;
    let findings = preflight_live(&inv, args.runbook.as_deref(), &params, &live);
    match args.format {
        Format::Json => {
            #[derive(serde::Serialize)]
            struct Doc<'a> {
                findings: &'a [Finding],
            }
            let doc = Doc {
                findings: &findings,
            };
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Text => print!(
            "{}",
            report(&inv, args.runbook.as_deref(), &params, &findings)
        ),
    }
    let blocked = findings.iter().any(|f| f.severity == Severity::Error);
    Ok(if blocked {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The agents' facts from the database `--db`/`--config` name; none (inventory only) without
/// either. A database that does not exist is an error rather than a new empty one.
async fn live_facts(args: &PreflightArgs) -> anyhow::Result<LiveFacts> {
    if args.db.is_none() && args.config.is_none() {
        return Ok(LiveFacts::default());
    }
    let overrides = crate::config::Overrides {
        db: args.db.clone(),
        ..Default::default()
    };
    let cfg = crate::config::Config::from_process(args.config.as_deref(), &overrides)?;
    if !cfg.db.is_file() {
        bail!(
            "--db {}: no such database (give the file `lockstep serve` uses)",
            cfg.db.display()
        );
    }
    let store = crate::engine::Store::open(&cfg.db).await?;
    let pool = store.writer();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let stale = i64::try_from(cfg.facts_stale_secs).unwrap_or(i64::MAX);
    crate::executors::agent::registry::live_facts(pool, now, stale)
        .await
        .with_context(|| format!("reading agent facts from {}", cfg.db.display()))
}

/// `inventory check` output: what the file describes.
fn summary(file: &str, inv: &Inventory) -> String {
    let mut rows = vec![[
        "SERVER".to_owned(),
        "SIDE".into(),
        "PAIR".into(),
        "VERSION".into(),
        "WINDOWS".into(),
        "SQL SERVER".into(),
        "ROLES".into(),
    ]];
    for s in &inv.servers {
        let roles: Vec<&str> = s.roles.iter().map(|r| r.as_str()).collect();
        rows.push([
            s.name.clone(),
            s.side.map_or("-".into(), |x| x.to_string()),
            s.pair.clone().unwrap_or_else(|| "-".into()),
            s.connected_version.to_string(),
            s.windows.as_str().into(),
            s.sql_server.map_or("-".into(), |x| x.as_str().into()),
            roles.join(", "),
        ]);
    }
    let mut out = format!(
        "{file}: valid\n{} — {} Data Center, {} server{}\n\n",
        inv.name,
        inv.topology,
        inv.servers.len(),
        if inv.servers.len() == 1 { "" } else { "s" }
    );
    out.push_str(&table(&rows));
    out
}

/// Left-aligned columns, two spaces apart, indented by two.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i + 1 == N {
                    c.clone()
                } else {
                    format!("{c:w$}")
                }
            })
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `preflight` text output: the findings grouped by what the change manager must do.
fn report(
    inv: &Inventory,
    runbook: Option<&str>,
    params: &BTreeMap<String, String>,
    findings: &[Finding],
) -> String {
    let is = |f: &&Finding, r: Outcome, s: Severity| f.result == r && f.severity == s;
    let errors: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    let warnings: Vec<&Finding> = findings
        .iter()
        .filter(|f| is(f, Outcome::Fail, Severity::Warning))
        .collect();
    let unknown: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.result == Outcome::Unknown)
        .collect();
    let passed: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.result == Outcome::Pass)
        .collect();

    let mut out = format!(
        "Preflight: {} ({} Data Center, {} servers)\n",
        inv.name,
        inv.topology,
        inv.servers.len()
    );
    let procedure = match runbook {
        None => "none (rules about the estate only)".to_owned(),
        Some(id) if params.is_empty() => id.to_owned(),
        Some(id) => {
            let p: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{id} ({})", p.join(", "))
        }
    };
    out.push_str(&format!("Runbook:   {procedure}\n"));
    out.push_str(&format!(
        "Result:    {} — {} error{}, {} warning{}, {} to check live, {} passed\n",
        if errors.is_empty() {
            "READY"
        } else {
            "NOT READY"
        },
        errors.len(),
        plural(errors.len()),
        warnings.len(),
        plural(warnings.len()),
        unknown.len(),
        passed.len()
    ));
    let groups = [
        ("Errors — fix these before the change window opens", errors),
        ("Warnings — read and acknowledge", warnings),
        ("To check live — the inventory lacks these facts", unknown),
        ("Passed", passed),
    ];
    for (title, group) in groups {
        if group.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{title}\n"));
        for f in group {
            let who = f.server.as_deref().unwrap_or("Data Center");
            out.push_str(&format!("  [{who}] {}\n", f.message));
            out.push_str(&format!("      {} · seed: \"{}\"\n", f.rule, f.section));
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_param("target=2012 R2"),
            Ok(("target".into(), "2012 R2".into()))
        );
        assert!(parse_param("target").is_err());
        assert!(parse_param("=2016").is_err());
    }
}
