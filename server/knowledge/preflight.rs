//! Preflight: the vendor's rules about the estate, checked before the window opens.
//!
//! Each rule the seed states about servers, versions, certificates and SQL Server becomes a named
//! check. A check ends in one of three results: `pass`, `fail`, or `unknown` when the inventory
//! lacks the facts it needs ("unknown — will be checked live"; never "pass"). The runbook and its
//! parameters decide which rules apply: `upgrade-sql-server` with `target=2016` checks the SQL
//! Server 2016 minimums, `upgrade-windows-server` with `target=2016` the Windows ones.
//!
//! With agent facts ([`preflight_live`]) the rules that lack an inventory fact answer from the
//! facts a server's agent reported, when they are fresh, and say which fact and how old; stale
//! facts keep "unknown" and say their age. Some rules exist only with facts (services missing,
//! certificates as bound in IIS, TLS 1.2 for the Management API).
//!
//! Pure: the same inventory, runbook, parameters and facts give the same findings in the same
//! order.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::inventory::{Inventory, Server, SqlServerVersion, WindowsVersion};

pub mod compat;
mod estate;
mod host;
mod live;
mod site;
mod targets;

pub use site::binding_port;
pub use targets::sql_section;

/// How much a finding matters to the change manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The window must not open until this is fixed.
    Error,
    /// Needs a person's attention; does not block.
    Warning,
    /// Recorded for the change record.
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// The inventory lacks the facts; an agent or SQL query will check it live.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One result of one rule. Serialized as the CLI's JSON contract:
/// `{"rule","severity","server","message","section","result"}` (`server` null when the finding
/// concerns the whole Data Center).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable rule id, e.g. `sql-target-minimum-version`.
    pub rule: String,
    pub severity: Severity,
    /// The server the finding concerns, by inventory name.
    pub server: Option<String>,
    /// What was found, in words a change manager understands.
    pub message: String,
    /// The seed heading the rule comes from, exactly as printed.
    pub section: String,
    pub result: Outcome,
}

/// What `unknown` findings start with.
pub const UNKNOWN_PREFIX: &str = "unknown — will be checked live";

/// The procedure preflight checks for, read from the runbook id and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Procedure {
    /// No runbook: the rules about the estate as it stands.
    Estate,
    Upgrade811,
    UninstallManagementApi,
    UninstallDatatransferApi,
    UpgradeWindows(WindowsVersion),
    UpgradeSql(SqlServerVersion),
}

/// Agent facts older than this are not trusted by preflight: three collection intervals of a
/// minute, so one missed collection does not turn every finding back to "unknown" (the default of
/// `[agents] facts_stale_secs`).
pub const DEFAULT_FACTS_STALE_SECS: u64 = 180;

/// Facts the agents reported about their servers, with their age: what lets a rule answer pass or
/// fail from the site as found instead of "unknown". Built by the caller (from the store's
/// `agent_facts`); preflight itself stays pure.
#[derive(Debug, Clone, Default)]
pub struct LiveFacts {
    /// By inventory server name.
    pub servers: BTreeMap<String, ServerFacts>,
    /// Facts older than this many seconds are not trusted (the rule stays "unknown" and says how
    /// old the facts are).
    pub stale_after_secs: i64,
}

/// One server's latest facts and how old they are.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub facts: lockstep_protocol::SiteFacts,
    pub age_secs: i64,
}

impl LiveFacts {
    /// The facts of `server` when they are fresh enough to trust.
    pub fn fresh(&self, server: &str) -> Option<&ServerFacts> {
        self.get(server)
            .filter(|f| f.age_secs <= self.stale_after_secs)
    }

    /// The facts of `server`, fresh or not. Agents are enrolled under the name a person typed,
    /// so `fabdc01` finds the inventory's `FABDC01` (as the Data Center page matches them).
    pub fn get(&self, server: &str) -> Option<&ServerFacts> {
        self.servers.get(server).or_else(|| {
            self.servers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(server))
                .map(|(_, f)| f)
        })
    }
}

/// Checks `inv` against every rule that applies to `runbook` with `params`, from the inventory
/// alone (rules that need live facts answer "unknown"). See [`preflight_live`].
pub fn preflight(
    inv: &Inventory,
    runbook: Option<&str>,
    params: &BTreeMap<String, String>,
) -> Vec<Finding> {
    preflight_live(inv, runbook, params, &LiveFacts::default())
}

/// Checks `inv` against every rule that applies to `runbook` with `params`, answering from fresh
/// agent facts where the inventory lacks them. The releases and Connected versions a fresh agent
/// reports replace the inventory's (the site as found wins; an `inventory-matches-site` finding
/// says where they differ). Deterministic order: parameter problems, then where the inventory and
/// the site disagree, then the runbook's own rules, then the estate rules, each in inventory order.
pub fn preflight_live(
    inv: &Inventory,
    runbook: Option<&str>,
    params: &BTreeMap<String, String>,
    live: &LiveFacts,
) -> Vec<Finding> {
    let mut out = Findings::default();
    let procedure = procedure(runbook, params, &mut out);
    let found = live::as_found(inv, live, &mut out);
    if let Some(p) = procedure {
        targets::check(&found, p, params, &mut out);
        if p == Procedure::Upgrade811 {
            site::direct_upgrade(&found, live, &mut out);
        }
    }
    estate::check(
        &found,
        procedure.unwrap_or(Procedure::Estate),
        live,
        &mut out,
    );
    out.0
}

/// Reads the procedure from the runbook id and `target`; problems become error findings.
fn procedure(
    runbook: Option<&str>,
    params: &BTreeMap<String, String>,
    out: &mut Findings,
) -> Option<Procedure> {
    let target = params.get("target").map(String::as_str);
    let rule = Rule::new("runbook-parameters", "");
    match runbook {
        None => Some(Procedure::Estate),
        Some("upgrade-8.11") => Some(Procedure::Upgrade811),
        Some("uninstall-management-api") => Some(Procedure::UninstallManagementApi),
        Some("uninstall-datatransfer-api") => Some(Procedure::UninstallDatatransferApi),
        Some("upgrade-windows-server") => {
            let rule = rule.at("Upgrade a Data Center Server to Windows Server");
            let choices = "\"2012 R2\" or \"2016\"";
            match target {
                Some("2012 R2") => Some(Procedure::UpgradeWindows(WindowsVersion::W2012R2)),
                Some("2016") => Some(Procedure::UpgradeWindows(WindowsVersion::W2016)),
                Some(other) => {
                    out.fail(&rule, Severity::Error, None, format!("target=\"{other}\" is not a Windows Server release this procedure upgrades to; use {choices}"));
                    None
                }
                None => {
                    out.fail(
                        &rule,
                        Severity::Error,
                        None,
                        format!("upgrade-windows-server needs --param target=... ({choices})"),
                    );
                    None
                }
            }
        }
        Some("upgrade-sql-server") => {
            let rule = rule.at("Upgrade SQL Server");
            let choices = "\"2012 SP4\", \"2014 SP2\" or \"2016\"";
            match target {
                Some("2012 SP4") => Some(Procedure::UpgradeSql(SqlServerVersion::S2012Sp4)),
                Some("2014 SP2") => Some(Procedure::UpgradeSql(SqlServerVersion::S2014Sp2)),
                Some("2016") => Some(Procedure::UpgradeSql(SqlServerVersion::S2016)),
                Some(other) => {
                    out.fail(&rule, Severity::Error, None, format!("target=\"{other}\" is not a SQL Server release this procedure upgrades to; use {choices}"));
                    None
                }
                None => {
                    out.fail(
                        &rule,
                        Severity::Error,
                        None,
                        format!("upgrade-sql-server needs --param target=... ({choices})"),
                    );
                    None
                }
            }
        }
        Some(other) => {
            let rule = Rule::new(
                "runbook-rules",
                "Review Upgrade Guidelines and Recommendations",
            );
            out.pass(
                &rule,
                None,
                format!("Lockstep has no rules specific to runbook `{other}`; only the rules about the estate were checked"),
            );
            Some(Procedure::Estate)
        }
    }
}

/// A rule's id and the seed section it comes from.
#[derive(Debug, Clone, Copy)]
struct Rule {
    id: &'static str,
    section: &'static str,
}

impl Rule {
    const fn new(id: &'static str, section: &'static str) -> Rule {
        Rule { id, section }
    }
    /// Another rule from the same section.
    const fn named(self, id: &'static str) -> Rule {
        Rule { id, ..self }
    }
    /// The same rule cited from another section (rules whose section depends on the topology).
    const fn at(self, section: &'static str) -> Rule {
        Rule { section, ..self }
    }
}

/// Findings in the order they were made.
#[derive(Debug, Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn push(
        &mut self,
        rule: &Rule,
        severity: Severity,
        result: Outcome,
        server: Option<&Server>,
        message: String,
    ) {
        self.0.push(Finding {
            rule: rule.id.to_owned(),
            severity,
            server: server.map(|s| s.name.clone()),
            message,
            section: rule.section.to_owned(),
            result,
        });
    }
    fn pass(&mut self, rule: &Rule, server: Option<&Server>, message: String) {
        self.push(rule, Severity::Info, Outcome::Pass, server, message);
    }
    fn fail(&mut self, rule: &Rule, severity: Severity, server: Option<&Server>, message: String) {
        self.push(rule, severity, Outcome::Fail, server, message);
    }
    /// Facts are missing: a warning that says what will be checked live.
    fn unknown(&mut self, rule: &Rule, server: Option<&Server>, what: String) {
        let message = format!("{UNKNOWN_PREFIX}: {what}");
        self.push(rule, Severity::Warning, Outcome::Unknown, server, message);
    }
}

/// Names joined for a message: `DC1, DC2 and WEB1`.
fn names<'a>(servers: impl IntoIterator<Item = &'a Server>) -> String {
    let v: Vec<&str> = servers.into_iter().map(|s| s.name.as_str()).collect();
    match v.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
