//! What stands between an approved plan and its start: the run's stored preflight (run again, with
//! the freshest facts, when the run is submitted and when its start is approved), the overrides
//! approvers recorded for its errors, and the change window's warnings.
//!
//! Pure data and rules; the store fills [`Preflight`] in (it reads the inventory and the agents'
//! facts) and the run machine refuses `approve_start` while [`blocking`] is not empty.

use serde::{Deserialize, Serialize};

use super::{Millis, RunState};

/// One preflight finding as kept with the run (the knowledge layer's `Finding`, with a key a
/// person can name in an override).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateFinding {
    /// `rule@SERVER` (or the rule alone for the whole Data Center), with `#2`, `#3`… when one
    /// rule says several things about one server. Stable across re-runs of preflight as long as
    /// the finding itself is there, so an override made before a re-run still names it.
    pub key: String,
    pub rule: String,
    /// `error`, `warning` or `info`.
    pub severity: String,
    /// `pass`, `fail` or `unknown`.
    pub result: String,
    pub server: Option<String>,
    pub message: String,
}

impl GateFinding {
    /// An error that failed: the start waits until it is fixed or overridden.
    pub fn blocks(&self) -> bool {
        self.severity == "error" && self.result == "fail"
    }

    /// Preflight could not tell: listed for the approver, does not block.
    pub fn is_unknown(&self) -> bool {
        self.result == "unknown"
    }
}

/// The run's latest preflight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    pub checked_at: Millis,
    /// Failed and unknown findings only: passes are not kept (a 200-server estate passes
    /// hundreds of rules, and only what needs a person matters to the start).
    pub findings: Vec<GateFinding>,
}

/// An approver's decision that one error finding does not block this run's start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingOverride {
    pub finding: String,
    /// The finding's message as the approver saw it (the record shows what was accepted).
    pub message: String,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    pub justification: String,
    pub at: Millis,
}

/// Findings as the store keeps them: failed and unknown ones, each with its key.
pub fn keep(findings: &[crate::knowledge::preflight::Finding], now: Millis) -> Preflight {
    use crate::knowledge::preflight::Outcome;
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let findings = findings
        .iter()
        .filter(|f| f.result != Outcome::Pass)
        .map(|f| {
            let base = match &f.server {
                Some(s) => format!("{}@{s}", f.rule),
                None => f.rule.clone(),
            };
            let n = seen.entry(base.clone()).or_default();
            *n += 1;
            let key = if *n == 1 { base } else { format!("{base}#{n}") };
            GateFinding {
                key,
                rule: f.rule.clone(),
                severity: f.severity.as_str().to_string(),
                result: f.result.as_str().to_string(),
                server: f.server.clone(),
                message: f.message.clone(),
            }
        })
        .collect();
    Preflight {
        checked_at: now,
        findings,
    }
}

/// The errors that still block the start: failed, and not overridden.
pub fn blocking(state: &RunState) -> Vec<&GateFinding> {
    state
        .preflight
        .iter()
        .flat_map(|p| p.findings.iter())
        .filter(|f| f.blocks() && override_of(state, &f.key).is_none())
        .collect()
}

/// The override recorded for `key`, if any.
pub fn override_of<'a>(state: &'a RunState, key: &str) -> Option<&'a FindingOverride> {
    state.overrides.iter().find(|o| o.finding == key)
}

/// A finding of the run's latest preflight by key.
pub fn finding<'a>(state: &'a RunState, key: &str) -> Option<&'a GateFinding> {
    state
        .preflight
        .as_ref()
        .and_then(|p| p.findings.iter().find(|f| f.key == key))
}

/// The window's end in force: extended by an approver, else the run's own.
pub fn window_end(state: &RunState, run_window_end: Option<Millis>) -> Option<Millis> {
    state.window_extended_to.or(run_window_end)
}

/// Where the driver stopped at the window's end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowHeld {
    pub end: Millis,
    /// The step that would have stopped services or started a phase.
    pub step_id: String,
}

/// A run whose start is approved but whose window has not opened: it dispatches nothing yet.
pub fn scheduled(status: super::RunStatus, window_start: Option<Millis>, now: Millis) -> bool {
    status == super::RunStatus::Running && window_start.is_some_and(|s| now < s)
}

/// At the window's end the driver holds a step that would make a new outage: it stops services
/// (`services_stop`), or it starts a phase (none of its inputs is in its own phase — the first
/// step of a side, of the Web Services upgrade, …). Everything else (verifications, probes,
/// starting services again, the rest of the phase underway) may still start, so a side that
/// is down is brought back rather than left half done.
pub fn held_at_window_end(step: &crate::knowledge::plan::PlannedStep, opens_phase: bool) -> bool {
    matches!(
        step.operation,
        crate::knowledge::operation::Operation::ServicesStop { .. }
    ) || opens_phase
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::preflight::{Finding, Outcome, Severity};

    fn finding(rule: &str, server: Option<&str>, severity: Severity, result: Outcome) -> Finding {
        Finding {
            rule: rule.into(),
            severity,
            server: server.map(str::to_string),
            message: format!("{rule} says so"),
            section: "Test".into(),
            result,
        }
    }

    #[test]
    fn passes_are_not_kept_and_keys_tell_apart_two_findings_of_one_rule_on_one_server() {
        let kept = keep(
            &[
                finding("cert", Some("A"), Severity::Error, Outcome::Fail),
                finding("cert", Some("A"), Severity::Error, Outcome::Fail),
                finding("cert", Some("B"), Severity::Error, Outcome::Pass),
                finding("tls", None, Severity::Warning, Outcome::Unknown),
            ],
            7,
        );
        let keys: Vec<&str> = kept.findings.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["cert@A", "cert@A#2", "tls"]);
        assert!(kept.findings[0].blocks());
        assert!(!kept.findings[2].blocks() && kept.findings[2].is_unknown());
    }

    #[test]
    fn only_failed_errors_without_an_override_block() {
        let mut state = RunState::new("olga");
        state.preflight = Some(keep(
            &[
                finding("cert", Some("A"), Severity::Error, Outcome::Fail),
                finding("disk", Some("A"), Severity::Warning, Outcome::Fail),
                finding("tls", Some("A"), Severity::Error, Outcome::Unknown),
            ],
            1,
        ));
        assert_eq!(blocking(&state).len(), 1);
        state.overrides.push(FindingOverride {
            finding: "cert@A".into(),
            message: String::new(),
            actor: "carl".into(),
            person: None,
            justification: "ok".into(),
            at: 2,
        });
        assert!(blocking(&state).is_empty());
    }
}
