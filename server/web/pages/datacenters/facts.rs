//! Live agent facts on the Data Center page: for each inventory server, what its enrolled agent
//! last reported (version, backend, heartbeat age, clock skew, error), and preflight findings
//! built from those facts — pass or fail when a fresh heartbeat is known, "unknown — will be
//! checked live" only when none is.
//!
//! The heartbeat reports the agent's version, backend and clock; it carries no service list or
//! disk figures, so the inventory rules that need those stay as they are.

use crate::executors::agent::registry::AgentRecord;
use crate::knowledge::inventory::Inventory;
use crate::knowledge::preflight::UNKNOWN_PREFIX;
use crate::web::pages::datacenters::FindingRow;
use crate::web::views::fmt_duration;

/// A heartbeat older than this is not trusted as "now" (the agent list refreshes every few
/// minutes with `lockstep agent check`).
pub const FRESH_SECS: i64 = 15 * 60;
/// The agent refuses requests when the clocks differ by more than this.
pub const MAX_SKEW_SECS: i64 = lockstep_protocol::MAX_CLOCK_SKEW_SECS;

const RULE: &str = "agent-ready";
const SECTION: &str = "Lockstep agents (lockstep agent check)";

pub struct FactRow {
    pub server: String,
    /// `online`, `offline`, `unknown` (enrolled, never answered) or `not enrolled`.
    pub status: String,
    pub version: String,
    pub backend: String,
    pub heartbeat: String,
    pub skew: String,
    pub error: String,
}

/// One row and one finding per inventory server, from the agent registry at `now` (Unix secs).
pub fn facts(inv: &Inventory, agents: &[AgentRecord], now: i64) -> (Vec<FactRow>, Vec<FindingRow>) {
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    for s in &inv.servers {
        let agent = agents
            .iter()
            .find(|a| a.server.eq_ignore_ascii_case(&s.name));
        let finding = |severity: &'static str, result: &'static str, message: String| FindingRow {
            severity,
            result,
            rule: RULE.into(),
            server: s.name.clone(),
            message,
            section: SECTION.into(),
        };
        let Some(a) = agent else {
            rows.push(FactRow {
                server: s.name.clone(),
                status: "not enrolled".into(),
                version: String::new(),
                backend: String::new(),
                heartbeat: String::new(),
                skew: String::new(),
                error: String::new(),
            });
            findings.push(finding(
                "warning",
                "fail",
                format!(
                    "no agent is enrolled for {}: its steps cannot run (lockstep agent add)",
                    s.name
                ),
            ));
            continue;
        };
        let age = a.checked_at.map(|t| (now - t).max(0));
        let version = a.agent_version.clone().unwrap_or_default();
        let backend = a.backend.clone().unwrap_or_default();
        let skew = a.clock_skew.unwrap_or(0);
        findings.push(match (a.status.as_str(), age) {
            ("online", Some(age)) if age <= FRESH_SECS && skew.abs() > MAX_SKEW_SECS => finding(
                "error",
                "fail",
                format!("the agent on {} is {skew} s off our clock; it refuses requests beyond {MAX_SKEW_SECS} s", s.name),
            ),
            ("online", Some(age)) if age <= FRESH_SECS => finding(
                "info",
                "pass",
                format!("agent {version} ({backend}) on {} answered {} ago", s.name, fmt_duration(age)),
            ),
            ("offline", Some(age)) if age <= FRESH_SECS => finding(
                "error",
                "fail",
                format!(
                    "the agent on {} did not answer {} ago: {}",
                    s.name,
                    fmt_duration(age),
                    a.last_error.as_deref().unwrap_or("no reason given")
                ),
            ),
            (_, Some(age)) => finding(
                "warning",
                "unknown",
                format!("{UNKNOWN_PREFIX}: the last heartbeat of {} is {} old", s.name, fmt_duration(age)),
            ),
            (_, None) => finding(
                "warning",
                "unknown",
                format!("{UNKNOWN_PREFIX}: the agent for {} has not answered a heartbeat yet", s.name),
            ),
        });
        rows.push(FactRow {
            server: s.name.clone(),
            status: a.status.clone(),
            version,
            backend,
            heartbeat: age
                .map(|a| format!("{} ago", fmt_duration(a)))
                .unwrap_or_else(|| "never".into()),
            skew: a.clock_skew.map(|k| format!("{k} s")).unwrap_or_default(),
            error: a.last_error.clone().unwrap_or_default(),
        });
    }
    (rows, findings)
}
