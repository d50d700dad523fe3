//! Reading a runbook file: TOML → checked [`Runbook`]. Serde refuses unknown fields and bad
//! values; the checks here refuse what serde cannot see (ids, references, cycles, headings,
//! templates). Every error names the file, line and field.
//!
//! [`parse`] runs the phases in order, each in its own module: [`parameters`], [`steps`] (each
//! step's own fields), [`templates`] (placeholders and conditions against the parameters) and
//! [`graph`] (dependencies that exist and do not go round in a circle).

mod graph;
mod parameters;
mod steps;
mod templates;

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::errors::{line_of, serde_error};
pub use super::params::resolve_params;
use super::{
    is_runbook_id, parse_duration, Condition, Runbook, RunbookError, RunbookErrorKind as K,
    Selector,
};
use crate::knowledge::plan::StepKind;
use crate::knowledge::template;

pub(crate) use graph::step_edges;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    id: Spanned<String>,
    title: String,
    description: String,
    #[serde(default)]
    parameters: Vec<RawParameter>,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameter {
    name: Spanned<String>,
    description: String,
    #[serde(default)]
    allowed: Vec<String>,
    default: Option<String>,
    #[serde(default)]
    number: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Spanned<String>,
    title: String,
    instructions: String,
    section: Spanned<String>,
    phase: String,
    kind: StepKind,
    target: Option<Spanned<Selector>>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    when: Option<Spanned<Condition>>,
    operation: Option<Spanned<toml::Value>>,
    postcondition: Option<Spanned<toml::Value>>,
    undo: Option<Spanned<toml::Value>>,
    retry: Option<RawRetry>,
    timeout: Option<Spanned<String>>,
    estimate: Spanned<String>,
    gate: Option<Spanned<RawGate>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: u32,
    backoff: Spanned<String>,
    max_backoff: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    role: String,
    quorum: u32,
    expires_after: Option<Spanned<String>>,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<RunbookError>,
}

impl Ctx<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        line_of(self.text, span.start)
    }
    fn err(&mut self, span: &Range<usize>, field: String, kind: K, message: String) {
        let line = self.line(span);
        self.errors.push(RunbookError {
            file: self.file.to_string(),
            line,
            field,
            kind,
            message,
        });
    }
}

pub(super) fn parse(file: &str, text: &str) -> Result<Runbook, Vec<RunbookError>> {
    let raw: RawRunbook = toml::from_str(text).map_err(|e| vec![serde_error(file, text, &e)])?;
    let mut cx = Ctx {
        file,
        text,
        errors: Vec::new(),
    };
    if !is_runbook_id(raw.id.get_ref()) {
        cx.err(
            &raw.id.span(),
            "id".into(),
            K::BadValue,
            format!(
                "`{}` is not a runbook id (lowercase letters, digits, '-' and '.')",
                raw.id.get_ref()
            ),
        );
    }
    let parameters = parameters::check(&mut cx, raw.parameters);
    let (steps, dep_spans) = steps::check(&mut cx, raw.steps, &parameters);
    graph::check_references(&mut cx, &steps, &dep_spans);
    // A cycle is only looked for among references that all exist.
    if cx.errors.is_empty() {
        graph::check_cycles(&mut cx, &steps);
    }
    if !cx.errors.is_empty() {
        cx.errors.sort_by_key(|e| e.line);
        return Err(cx.errors);
    }
    Ok(Runbook {
        id: raw.id.into_inner(),
        title: raw.title,
        description: raw.description.trim().to_string(),
        parameters,
        steps,
        source: file.to_string(),
    })
}

/// A duration such as `90s` or `15m`; a bad one is reported against `field` and reads as none.
fn duration(cx: &mut Ctx, v: &Spanned<String>, field: String) -> Option<u64> {
    match parse_duration(v.get_ref()) {
        Ok(d) => Some(d),
        Err(m) => {
            cx.err(&v.span(), field, K::BadValue, m);
            None
        }
    }
}
