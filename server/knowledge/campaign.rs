//! Campaigns: from the estate as it is to the estate a team wants, every procedure of the guide
//! in an order its rules allow.
//!
//! The guide's procedures are not independent: Windows Server 2016 needs every server at
//! Connected Backup 8.8.6.1, SQL Server 2016 needs 8.8.6, Windows upgrades in place one release at
//! a time, a SQL Server upgrade needs Windows Server 2012 R2 or later, and only some Windows / SQL
//! Server combinations are supported. [`plan`] searches the orders those rules allow (`search.rs`),
//! evaluates each stage's preflight — the same [`preflight`](super::preflight::preflight) a run
//! gets — against the estate projected by the stages before it, and keeps the order with the
//! fewest stops of the Data Center's sides; `explain.rs` says, stage by stage, which rule put it
//! where it is. What the guide cannot reach is refused naming the rule; where the way forward lies
//! outside the guide (an intermediate Connected Backup release, a Windows Server release it does
//! not cover), the refusal says so instead of inventing a procedure.
//!
//! Pure: no IO, no clock; the same inventory and target give the same campaign.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::inventory::{Inventory, SqlServerVersion, Version, WindowsVersion};

mod explain;
mod refuse;
mod search;
mod stage;
mod target;

pub use search::stage_blockers;
pub use stage::{project, StageKind};
pub use target::parse_target;

/// The estate a campaign aims for. A release left `None` is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The Connected Backup version every server ends at (the guide knows one: 8.11).
    pub connected: Option<Version>,
    /// The Windows Server release every server ends at.
    pub windows: Option<WindowsVersion>,
    /// The SQL Server release every Data Center server ends at.
    pub sql_server: Option<SqlServerVersion>,
}

/// One server's releases, as projected after a stage (or as read from a simulated site).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServerState {
    pub name: String,
    /// The Connected Backup version.
    pub version: Version,
    pub windows: WindowsVersion,
    pub sql_server: Option<SqlServerVersion>,
}

/// One stage: one runbook run over the estate the stages before it leave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// The runbook id, e.g. `upgrade-sql-server`.
    pub runbook: String,
    /// Its parameters (`target=2016`); empty for `upgrade-8.11`.
    pub params: BTreeMap<String, String>,
    /// The servers this stage changes, in inventory order.
    pub servers: Vec<String>,
    /// Why the stage comes where it is, in plain words, with the guide's sections.
    pub reason: String,
    /// The guide's section of the rule that puts the stage here (or of the procedure itself).
    pub section: String,
    /// The expanded plan's critical path: the window this stage needs.
    pub estimate_secs: u64,
    /// Every server's releases after this stage, in inventory order.
    pub estate_after: Vec<ServerState>,
    /// What the stage does, typed (the JSON says it through `runbook` and `params`).
    #[serde(skip)]
    pub kind: StageKind,
    /// The sides this stage takes out of service, in order (`primary`, `secondary`; a
    /// stand-alone Data Center's one is `data center`): what "least downtime" counts.
    #[serde(skip)]
    pub stops: Vec<String>,
}

/// The ordered stages, and why this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Campaign {
    pub target: Target,
    pub stages: Vec<Stage>,
    /// Why this order rather than another, in plain words (the JSON keeps the shape:
    /// each stage carries its own reason).
    #[serde(skip)]
    pub why: String,
}

impl Campaign {
    /// Every stop of a side over the whole campaign: the downtime the order minimises.
    pub fn total_stops(&self) -> usize {
        self.stages.iter().map(|s| s.stops.len()).sum()
    }
}

/// Why a target cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The rule that stops it, e.g. `direct-upgrade` (preflight's ids where preflight has one).
    pub rule: String,
    /// The guide's section the rule comes from, exactly as printed (empty for argument errors).
    pub section: String,
    pub message: String,
    /// The way forward lies outside the guide's procedures (an intermediate Connected Backup
    /// release, a Windows or SQL Server release it does not cover): Lockstep has no runbook for it.
    pub outside_guide: bool,
}

impl Refusal {
    fn new(rule: &str, section: &str, message: String) -> Refusal {
        Refusal {
            rule: rule.to_owned(),
            section: section.to_owned(),
            message,
            outside_guide: false,
        }
    }
    fn outside(mut self) -> Refusal {
        self.outside_guide = true;
        self
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)?;
        if !self.section.is_empty() {
            write!(f, " (guide: \"{}\")", self.section)?;
        }
        if self.outside_guide {
            write!(
                f,
                "; this lies outside the vendor's guide, so Lockstep has no procedure for it"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

/// Plans the campaign from `inventory` to `target`: the stages in the order with the fewest stops
/// of each side, each stage's preflight passing on the estate the stages before it leave.
pub fn plan(inventory: &Inventory, target: &Target) -> Result<Campaign, Refusal> {
    refuse::check_target(inventory, target)?;
    let kinds = search::best_order(inventory, target)?;
    explain::campaign(inventory, target, &kinds)
}

/// Every server's releases as the inventory states them, in inventory order.
pub fn estate_of(inventory: &Inventory) -> Vec<ServerState> {
    inventory
        .servers
        .iter()
        .map(|s| ServerState {
            name: s.name.clone(),
            version: s.connected_version.clone(),
            windows: s.windows,
            sql_server: s.sql_server,
        })
        .collect()
}

/// The servers of `estate` not yet at `target`, with what is left to do on each, e.g.
/// `DC1: SQL Server 2014 SP2, not 2016`. Empty when the estate is at the target.
pub fn short_of(inventory: &Inventory, estate: &[ServerState], target: &Target) -> Vec<String> {
    let mut out = Vec::new();
    for (s, inv) in estate.iter().zip(&inventory.servers) {
        let mut missing = Vec::new();
        if let Some(v) = &target.connected {
            if &s.version != v {
                missing.push(format!("Connected Backup {}, not {v}", s.version));
            }
        }
        if let Some(w) = target.windows {
            if s.windows != w {
                missing.push(format!("{}, not {}", s.windows, w.as_str()));
            }
        }
        if let (Some(q), true) = (target.sql_server, inv.has_database()) {
            if s.sql_server != Some(q) {
                let now = s.sql_server.map(|v| v.to_string());
                missing.push(format!(
                    "{}, not {}",
                    now.as_deref().unwrap_or("no SQL Server"),
                    q.as_str()
                ));
            }
        }
        if !missing.is_empty() {
            out.push(format!("{}: {}", s.name, missing.join("; ")));
        }
    }
    out
}
