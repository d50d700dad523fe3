//! Runbooks: one declarative TOML file per procedure in the seed, embedded in the binary (a
//! directory of site runbooks can be added with [`Catalog::load_dir`]).
//!
//! A runbook says *what* a procedure does, step by step, in terms of roles and sides ("every
//! server with a database on the primary side", "the other Registry server"); plan expansion
//! ([`super::expand`]) binds it to one inventory. Parsing is as strict as the inventory's: unknown
//! fields, bad values, duplicate or unknown step ids, dependency cycles, headings that are not in
//! the seed and operation templates that do not make an operation are errors naming the file,
//! line and field. The file format is described in `runbooks/README.md`.

mod errors;
mod params;
pub mod raw;
pub mod sections;

pub use params::resolve_params;
// Declared beside the templates that fill them (see `knowledge::parameter`); re-exported so a
// runbook's parts are still found here.
pub use super::parameter::Parameter;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::inventory::{ServerRole, Side, Topology};
use super::plan::{GateSpec, RetryPolicy, StepKind};

/// The runbooks shipped inside the binary: `(file name, text)`.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "upgrade-8.11.toml",
        include_str!("../../runbooks/upgrade-8.11.toml"),
    ),
    (
        "uninstall-management-api.toml",
        include_str!("../../runbooks/uninstall-management-api.toml"),
    ),
    (
        "uninstall-datatransfer-api.toml",
        include_str!("../../runbooks/uninstall-datatransfer-api.toml"),
    ),
    (
        "upgrade-windows-server.toml",
        include_str!("../../runbooks/upgrade-windows-server.toml"),
    ),
    (
        "upgrade-sql-server.toml",
        include_str!("../../runbooks/upgrade-sql-server.toml"),
    ),
    (
        "recover-failed-upgrade.toml",
        include_str!("../../runbooks/recover-failed-upgrade.toml"),
    ),
];

/// A validated runbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    pub id: String,
    pub title: String,
    pub description: String,
    pub parameters: Vec<Parameter>,
    /// In file order.
    pub steps: Vec<StepTemplate>,
    /// Where it was read from (`builtin:upgrade-8.11.toml` or a path), for messages.
    pub source: String,
}

impl Runbook {
    pub fn step(&self, id: &str) -> Option<&StepTemplate> {
        self.steps.iter().find(|s| s.id == id)
    }
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

/// Which servers a step runs on, and how many of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// The server has at least one of these roles (empty: any role).
    #[serde(default)]
    pub roles: Vec<ServerRole>,
    /// The server has every one of these roles.
    #[serde(default)]
    pub all_roles: Vec<ServerRole>,
    /// The server has none of these roles.
    #[serde(default)]
    pub not_roles: Vec<ServerRole>,
    /// The server is on this side (a stand-alone server counts as primary).
    pub side: Option<Side>,
    /// The server belongs to this directory pair.
    pub pair: Option<String>,
    /// The server has this name (placeholders allowed, e.g. `"{param.server}"`).
    pub name: Option<String>,
    /// The server hosts (true) or does not host (false) a Web Services application.
    pub web_services: Option<bool>,
    /// The server holds (true) or does not hold (false) a Registry or Directory database.
    pub database: Option<bool>,
    /// The server's certificate common name differs from its FQDN.
    pub cn_differs: Option<bool>,
    /// The server's DataTransfer API uses SSL (`[servers.datatransfer] ssl`).
    pub datatransfer_ssl: Option<bool>,
    /// The server has an HTTPS certificate bound in IIS.
    pub certificate: Option<bool>,
    /// The server runs a Windows release older than this (placeholders allowed).
    pub windows_below: Option<String>,
    /// The server runs a SQL Server release older than this (placeholders allowed).
    pub sql_below: Option<String>,
    /// `each` (default): one step per matching server, id `<step>@<host>`. `one`: the first
    /// matching server (primary side first, then by name), id `<step>`.
    pub pick: Option<Pick>,
    /// `elsewhere`: the step is about the matching server but runs from a server that hosts none
    /// of `roles` (verification probes); without such a server it runs from Lockstep itself.
    pub run_from: Option<RunFrom>,
    /// The plan is refused when no server matches (instead of leaving the step out).
    pub required: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    Each,
    One,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunFrom {
    Component,
    Elsewhere,
}

/// When a step is part of the plan at all. Every given clause must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The Data Center has one of these topologies.
    #[serde(default)]
    pub topology: Vec<Topology>,
    /// Each named parameter has one of the listed values.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// At least one server matches.
    pub exists: Option<Selector>,
    /// No server matches.
    pub absent: Option<Selector>,
}

/// A dependency as written in `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependency {
    /// `"step"`: every instance of the step.
    All(String),
    /// `"step@host"`: the instance on the same server (fanned-out steps).
    SameHost(String),
    /// `"step@side"`: the instances on servers of the same side.
    SameSide(String),
    /// `"*"`: after every step declared above this one, except other `"*"` steps.
    Everything,
}

impl Dependency {
    pub fn step_id(&self) -> Option<&str> {
        match self {
            Dependency::All(s) | Dependency::SameHost(s) | Dependency::SameSide(s) => Some(s),
            Dependency::Everything => None,
        }
    }

    fn parse(text: &str) -> Result<Dependency, String> {
        if text == "*" {
            return Ok(Dependency::Everything);
        }
        let (id, filter) = match text.split_once('@') {
            Some((id, f)) => (id, Some(f)),
            None => (text, None),
        };
        if !is_step_id(id) {
            return Err(format!(
                "`{text}` is not a step id (lowercase letters, digits and '-')"
            ));
        }
        match filter {
            None => Ok(Dependency::All(id.to_string())),
            Some("host") => Ok(Dependency::SameHost(id.to_string())),
            Some("side") => Ok(Dependency::SameSide(id.to_string())),
            Some(f) => Err(format!(
                "`@{f}` in `{text}` is not a dependency filter (use `@host` or `@side`)"
            )),
        }
    }
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dependency::All(s) => f.write_str(s),
            Dependency::SameHost(s) => write!(f, "{s}@host"),
            Dependency::SameSide(s) => write!(f, "{s}@side"),
            Dependency::Everything => f.write_str("*"),
        }
    }
}

/// One step of a runbook, before it is bound to servers.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTemplate {
    pub id: String,
    pub title: String,
    pub instructions: String,
    /// The seed heading carried out, exactly as printed.
    pub section: String,
    pub phase: String,
    pub kind: StepKind,
    /// `None`: one step, not bound to a server.
    pub target: Option<Selector>,
    pub depends_on: Vec<Dependency>,
    pub when: Condition,
    /// Templates in the shape of [`super::operation::Operation`] with `{placeholders}`.
    pub operation: Option<toml::Value>,
    pub postcondition: Option<toml::Value>,
    pub undo: Option<toml::Value>,
    pub retry: RetryPolicy,
    pub timeout_secs: u64,
    pub estimate_secs: u64,
    pub gate: Option<GateSpec>,
    /// Line of the step's `id` in its file.
    pub line: usize,
}

/// What is wrong with a runbook file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct RunbookError {
    pub file: String,
    pub line: usize,
    /// The field at fault (e.g. `steps[3].depends_on`), or `-` when not one field.
    pub field: String,
    pub kind: RunbookErrorKind,
    pub message: String,
}

/// The classes of runbook errors (tests assert on these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunbookErrorKind {
    /// Not TOML at all.
    Syntax,
    UnknownField,
    MissingField,
    /// A value of the wrong type or outside the allowed set.
    BadValue,
    DuplicateId,
    UnknownDependency,
    Cycle,
    UnknownSection,
    UnknownParameter,
    /// An operation, post-condition or undo template that does not make an operation.
    BadOperation,
    /// A field that does not fit the step's kind (e.g. a gate on a non-approval step).
    KindMismatch,
    /// Two runbooks in a catalog share an id.
    DuplicateRunbook,
}

/// Parses and validates one runbook file. `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Runbook, Vec<RunbookError>> {
    raw::parse(file, text)
}

/// The runbooks Lockstep knows: the built-in ones plus any loaded from a directory.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    runbooks: Vec<Runbook>,
}

impl Catalog {
    /// The built-in runbooks. They are validated by the test suite, so an error here is a bug.
    pub fn builtin() -> Result<Catalog, Vec<RunbookError>> {
        let mut c = Catalog::default();
        for (name, text) in BUILTIN {
            c.add(parse(&format!("builtin:{name}"), text)?)?;
        }
        Ok(c)
    }

    /// Adds every `*.toml` file of `dir` (sorted by name). Any invalid file refuses the lot.
    pub fn load_dir(&mut self, dir: &Path) -> Result<(), Vec<RunbookError>> {
        let io_err = |e: std::io::Error| {
            vec![RunbookError {
                file: dir.display().to_string(),
                line: 0,
                field: "-".into(),
                kind: RunbookErrorKind::Syntax,
                message: format!("cannot read the runbook directory: {e}"),
            }]
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(io_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        let mut added = Vec::new();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(io_err)?;
            added.push(parse(&p.display().to_string(), &text)?);
        }
        for rb in added {
            self.add(rb)?;
        }
        Ok(())
    }

    fn add(&mut self, rb: Runbook) -> Result<(), Vec<RunbookError>> {
        if let Some(existing) = self.get(&rb.id) {
            return Err(vec![RunbookError {
                file: rb.source.clone(),
                line: 1,
                field: "id".into(),
                kind: RunbookErrorKind::DuplicateRunbook,
                message: format!(
                    "runbook `{}` is already defined by {}",
                    rb.id, existing.source
                ),
            }]);
        }
        self.runbooks.push(rb);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&Runbook> {
        self.runbooks.iter().find(|r| r.id == id)
    }

    pub fn all(&self) -> &[Runbook] {
        &self.runbooks
    }

    pub fn ids(&self) -> Vec<&str> {
        self.runbooks.iter().map(|r| r.id.as_str()).collect()
    }
}

/// Step ids: lowercase ASCII letters, digits and '-', starting with a letter.
pub fn is_step_id(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Runbook ids: like step ids, and may hold dots (`upgrade-8.11`).
pub fn is_runbook_id(s: &str) -> bool {
    is_step_id(&s.replace('.', "-")) && !s.ends_with('.')
}

/// Parses `"90s"`, `"30m"`, `"2h"`, `"1h30m"` into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let err = || format!("`{text}` is not a duration (e.g. \"90s\", \"30m\", \"2h\", \"1h30m\")");
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut seen_unit = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mult = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(err()),
        };
        let n: u64 = num.parse().map_err(|_| err())?;
        total = total
            .checked_add(n.checked_mul(mult).ok_or_else(err)?)
            .ok_or_else(err)?;
        num.clear();
        seen_unit = true;
    }
    if !num.is_empty() || !seen_unit {
        return Err(err());
    }
    Ok(total)
}

/// `3600` → `"1h"`, `5400` → `"1h30m"`, `45` → `"45s"`.
pub fn format_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// A map from step id to its index, for validation and expansion.
pub(crate) fn index_of(steps: &[StepTemplate]) -> HashMap<&str, usize> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("2d"), Ok(172_800));
        for bad in ["", "5", "m", "5 m", "1.5h", "-3m", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn durations_print_back_the_same_way() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (3600, "1h"),
            (5400, "1h30m"),
            (3661, "1h1m1s"),
        ] {
            assert_eq!(format_duration(secs), text);
            assert_eq!(parse_duration(text), Ok(secs));
        }
    }

    #[test]
    fn ids_are_lowercase_words_joined_by_dashes() {
        assert!(is_step_id("stop-services"));
        assert!(!is_step_id("Stop"));
        assert!(!is_step_id("9lives"));
        assert!(!is_step_id("a@b"));
        assert!(is_runbook_id("upgrade-8.11"));
        assert!(!is_runbook_id("upgrade-8.11."));
    }

    #[test]
    fn dependencies_parse_with_their_filters() {
        assert_eq!(Dependency::parse("x"), Ok(Dependency::All("x".into())));
        assert_eq!(
            Dependency::parse("x@host"),
            Ok(Dependency::SameHost("x".into()))
        );
        assert_eq!(
            Dependency::parse("x@side"),
            Ok(Dependency::SameSide("x".into()))
        );
        assert_eq!(Dependency::parse("*"), Ok(Dependency::Everything));
        assert!(Dependency::parse("x@pair").is_err());
        assert!(Dependency::parse("X").is_err());
    }
}
