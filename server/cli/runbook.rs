//! `lockstep runbook list|show` and `lockstep plan`.
//!
//! `runbook list` names every runbook; `runbook show ID` prints its parameters and steps, each
//! with the seed section it carries out. `plan` expands a runbook over an inventory: text is the
//! printable runbook for a change request, JSON the contract
//! `{"runbook","topology","steps":[{"id","title","section","kind","host","depends_on"}]}` (plus
//! more fields per step), dot a Graphviz graph.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};

use crate::knowledge::expand::expand;
use crate::knowledge::inventory::Inventory;
use crate::knowledge::plan::render;
use crate::knowledge::runbook::{format_duration, Catalog, Runbook, RunbookError};

const LIST_ABOUT: &str = "\
List the runbooks: one per procedure in the vendor's guide (built in), plus any site runbooks \
in --runbooks-dir.

Examples:
  lockstep runbook list
  lockstep runbook list --format json
  lockstep runbook list --runbooks-dir /etc/lockstep/runbooks";

const SHOW_ABOUT: &str = "\
Show one runbook: its parameters, and each step with its kind, where it runs, what it waits for \
and the heading of the vendor's guide it carries out (the \"seed section\").

A runbook describes steps in terms of roles and sides; `lockstep plan` binds them to your \
servers.

Examples:
  lockstep runbook show upgrade-8.11
  lockstep runbook show upgrade-sql-server --format json";

/// `lockstep plan --help` (set on the command in `cli.rs`).
pub const PLAN_ABOUT: &str = "\
Expand a runbook over an inventory into the concrete, ordered plan: every step on every server \
it concerns, with the dependencies the vendor's guide requires for this topology.

The plan is deterministic: the same inventory, runbook and parameters give the same plan, with \
the same step ids (`step` or `step@SERVER`), so approvals and audit entries keep their meaning.

--format text (default): the printable runbook to attach to a change request: numbered steps \
grouped by phase, each with its server, the seed section, the steps it waits for, what is done \
and what is checked after.

--format json: {\"runbook\",\"topology\",\"steps\":[{\"id\",\"title\",\"section\",\"kind\",\"host\",\
\"depends_on\":[ids]}]}; host is null for a step not bound to one server; steps carry more \
fields (operation, postcondition, undo, gate, retry, estimates).

--format dot: a Graphviz graph, e.g. piped into `dot -Tsvg > plan.svg`.

Parameters: upgrade-sql-server and upgrade-windows-server need --param target=RELEASE; \
uninstall-datatransfer-api needs --param server=NAME. `lockstep runbook show ID` lists them.

Examples:
  lockstep plan --inventory examples/mirrored.toml --runbook upgrade-8.11
  lockstep plan --inventory dc.toml --runbook upgrade-sql-server --param target=2016
  lockstep plan --inventory dc.toml --runbook upgrade-8.11 --format json
  lockstep plan --inventory dc.toml --runbook upgrade-8.11 --format dot | dot -Tsvg > plan.svg";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Dot,
}

#[derive(Debug, clap::Args)]
pub struct CatalogArgs {
    /// A directory of site runbooks (*.toml) to add to the built-in ones.
    #[arg(long, env = "LOCKSTEP_RUNBOOKS_DIR", value_name = "DIR")]
    pub runbooks_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum RunbookCmd {
    /// List the runbooks.
    #[command(long_about = LIST_ABOUT)]
    List {
        /// Output format: text for people, json for tools.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
        #[command(flatten)]
        catalog: CatalogArgs,
    },
    /// Show a runbook's parameters and steps, each with its seed section.
    #[command(long_about = SHOW_ABOUT)]
    Show {
        /// The runbook id, e.g. upgrade-8.11.
        id: String,
        /// Output format: text for people, json for tools.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
        #[command(flatten)]
        catalog: CatalogArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The inventory file describing the Data Center (see `lockstep inventory check --help`).
    #[arg(long, value_name = "FILE")]
    pub inventory: PathBuf,
    /// The runbook id, e.g. upgrade-8.11 (`lockstep runbook list`).
    #[arg(long, value_name = "ID")]
    pub runbook: String,
    /// A runbook parameter, e.g. --param target=2016. Repeatable.
    #[arg(long = "param", value_name = "K=V")]
    pub params: Vec<String>,
    /// Output format: text (the printable runbook), json (for tools) or dot (Graphviz).
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    #[command(flatten)]
    pub catalog: CatalogArgs,
}

fn load_catalog(args: &CatalogArgs) -> anyhow::Result<Catalog> {
    let joined = |errs: Vec<RunbookError>| {
        anyhow!(
            "invalid runbook:\n{}",
            errs.iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    let mut c = Catalog::builtin().map_err(joined)?;
    if let Some(dir) = &args.runbooks_dir {
        c.load_dir(dir).map_err(joined)?;
    }
    Ok(c)
}

fn find<'a>(c: &'a Catalog, id: &str) -> anyhow::Result<&'a Runbook> {
    c.get(id)
        .ok_or_else(|| anyhow!("no runbook `{id}`; known: {}", c.ids().join(", ")))
}

/// Parses `--param K=V` values; a key given twice is refused.
pub fn parse_params(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for p in raw {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param `{p}` is not KEY=VALUE (e.g. --param target=2016)");
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            bail!("--param `{p}` has no key");
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            bail!("--param `{k}` is given twice");
        }
    }
    Ok(out)
}

pub fn run_runbook(cmd: RunbookCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RunbookCmd::List { format, catalog } => {
            let c = load_catalog(&catalog)?;
            match format {
                ListFormat::Json => {
                    let list: Vec<_> = c
                        .all()
                        .iter()
                        .map(|r| {
                            serde_json::json!({
                                "id": r.id, "title": r.title, "source": r.source,
                                "steps": r.steps.len(), "parameters": r.parameters,
                            })
                        })
                        .collect();
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({ "runbooks": list }))?
                    );
                }
                ListFormat::Text => {
                    for r in c.all() {
                        let params: Vec<String> = r
                            .parameters
                            .iter()
                            .map(|p| format!("--param {}=…", p.name))
                            .collect();
                        println!(
                            "{:<28} {} ({} steps){}",
                            r.id,
                            r.title,
                            r.steps.len(),
                            if params.is_empty() {
                                String::new()
                            } else {
                                format!("  [{}]", params.join(" "))
                            }
                        );
                    }
                }
            }
        }
        RunbookCmd::Show {
            id,
            format,
            catalog,
        } => {
            let c = load_catalog(&catalog)?;
            let r = find(&c, &id)?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&show_json(r))?),
                ListFormat::Text => print!("{}", show_text(r)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_json(r: &Runbook) -> serde_json::Value {
    let steps: Vec<_> = r
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id, "title": s.title, "section": s.section, "phase": s.phase,
                "kind": s.kind, "target": s.target, "when": s.when,
                "depends_on": s.depends_on.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "instructions": s.instructions, "estimate_secs": s.estimate_secs,
                "timeout_secs": s.timeout_secs, "gate": s.gate,
            })
        })
        .collect();
    serde_json::json!({
        "id": r.id, "title": r.title, "description": r.description, "source": r.source,
        "parameters": r.parameters, "steps": steps,
    })
}

fn show_text(r: &Runbook) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{} ({})\n\n{}\n", r.title, r.id, r.description);
    if r.parameters.is_empty() {
        let _ = writeln!(out, "Parameters: none");
    } else {
        let _ = writeln!(out, "Parameters:");
        for p in &r.parameters {
            let allowed = if p.allowed.is_empty() {
                String::new()
            } else {
                format!(" one of {:?};", p.allowed)
            };
            let default = p
                .default
                .as_ref()
                .map(|d| format!(" default \"{d}\""))
                .unwrap_or_else(|| " required".into());
            let _ = writeln!(
                out,
                "  --param {}=…{allowed}{default}\n      {}",
                p.name, p.description
            );
        }
    }
    let mut phase = "";
    for (i, s) in r.steps.iter().enumerate() {
        if s.phase != phase {
            phase = &s.phase;
            let _ = writeln!(out, "\n{phase}");
        }
        let target = match &s.target {
            None => "once".to_string(),
            Some(t) => serde_json::to_value(t)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|o| {
                    o.into_iter()
                        .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
        };
        let _ = writeln!(
            out,
            "{:>3}. {:<34} {:<8} seed: \"{}\"",
            i + 1,
            s.id,
            s.kind.as_str(),
            s.section
        );
        let _ = writeln!(out, "     {}", s.title);
        let _ = writeln!(
            out,
            "     on: {target}   estimate: {}",
            format_duration(s.estimate_secs)
        );
        if !s.depends_on.is_empty() {
            let deps: Vec<String> = s.depends_on.iter().map(|d| d.to_string()).collect();
            let _ = writeln!(out, "     after: {}", deps.join(", "));
        }
        if s.when != Default::default() {
            let _ = writeln!(
                out,
                "     when: {}",
                serde_json::to_string(&s.when).unwrap_or_default()
            );
        }
    }
    out
}

pub fn run_plan(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let c = load_catalog(&args.catalog)?;
    let r = find(&c, &args.runbook)?;
    let params = parse_params(&args.params)?;
    let inventory = Inventory::load(&args.inventory).map_err(|e| anyhow!("{e}"))?;
    let plan = expand(r, &inventory, &params).map_err(|e| {
        anyhow!(
            "cannot plan `{}` for {}: {e}",
            r.id,
            args.inventory.display()
        )
    })?;
    match args.format {
        PlanFormat::Text => print!("{}", render::text(&plan)),
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&render::json(&plan))?),
        PlanFormat::Dot => print!("{}", render::dot(&plan)),
    }
    Ok(ExitCode::SUCCESS)
}
