//! A runbook's parameter declarations: the values a person starting a plan may give with
//! `--param NAME=VALUE`.
//!
//! They sit below both the runbook reader and the operation templates: a runbook declares them,
//! and a template's `{param.NAME}` placeholders are checked and filled against them. Keeping the
//! type here, rather than in [`super::runbook`], is what lets [`super::template`] stay a leaf
//! that the runbook reader can use without an import circle.

use serde::Serialize;

/// A value the person starting a plan may give with `--param NAME=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Parameter {
    pub name: String,
    pub description: String,
    /// Values accepted, exactly as written (empty: any value).
    pub allowed: Vec<String>,
    /// Used when the parameter is not given; `None` makes the parameter required.
    pub default: Option<String>,
    /// The value must be a whole number (it is written into numeric operation fields).
    pub number: bool,
}
