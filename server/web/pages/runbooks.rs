//! Runbooks: the catalog, and each runbook's steps with the seed section each carries out.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use crate::knowledge::runbook::{Catalog, Runbook};
use crate::web::auth::{CurrentUser, Role};
use crate::web::views::{fmt_duration, html, Chrome};
use crate::web::{AppError, Core};

/// The built-in runbooks, parsed once.
pub fn catalog() -> Result<&'static Catalog, AppError> {
    static CATALOG: std::sync::OnceLock<Result<Catalog, String>> = std::sync::OnceLock::new();
    CATALOG
        .get_or_init(|| {
            Catalog::builtin().map_err(|errs| {
                errs.iter()
                    .map(|e| format!("{}:{}: {}: {}", e.file, e.line, e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        })
        .as_ref()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("built-in runbooks do not parse: {e}")))
}

pub fn runbook(id: &str) -> Result<&'static Runbook, AppError> {
    catalog()?
        .get(id)
        .ok_or_else(|| AppError::NotFound(format!("no runbook `{id}`")))
}

pub struct RunbookRow {
    pub id: String,
    pub title: String,
    pub description: String,
    pub steps: usize,
    pub parameters: String,
}

#[derive(Template)]
#[template(path = "runbooks.html")]
pub struct RunbooksPage {
    pub chrome: Chrome,
    pub runbooks: Vec<RunbookRow>,
}

pub struct StepRow {
    pub id: String,
    pub title: String,
    pub section: String,
    pub phase: String,
    pub kind: &'static str,
    pub depends_on: String,
    pub estimate: String,
    pub instructions: String,
}

pub struct ParamRow {
    pub name: String,
    pub description: String,
    pub allowed: String,
    pub default: String,
}

#[derive(Template)]
#[template(path = "runbook.html")]
pub struct RunbookPage {
    pub chrome: Chrome,
    pub id: String,
    pub title: String,
    pub description: String,
    pub params: Vec<ParamRow>,
    pub steps: Vec<StepRow>,
}

pub async fn list(State(_state): State<Core>, me: CurrentUser) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let runbooks = catalog()?
        .all()
        .iter()
        .map(|r| RunbookRow {
            id: r.id.clone(),
            title: r.title.clone(),
            description: r.description.clone(),
            steps: r.steps.len(),
            parameters: r
                .parameters
                .iter()
                .map(|p| p.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    html(&RunbooksPage {
        chrome: Chrome::new(&me, "runbooks"),
        runbooks,
    })
}

pub async fn show(
    State(_state): State<Core>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let r = runbook(&id)?;
    html(&RunbookPage {
        chrome: Chrome::new(&me, "runbooks"),
        id: r.id.clone(),
        title: r.title.clone(),
        description: r.description.clone(),
        params: r
            .parameters
            .iter()
            .map(|p| ParamRow {
                name: p.name.clone(),
                description: p.description.clone(),
                allowed: p.allowed.join(", "),
                default: p.default.clone().unwrap_or_else(|| "(required)".into()),
            })
            .collect(),
        steps: r
            .steps
            .iter()
            .map(|s| StepRow {
                id: s.id.clone(),
                title: s.title.clone(),
                section: s.section.clone(),
                phase: s.phase.clone(),
                kind: s.kind.as_str(),
                depends_on: s
                    .depends_on
                    .iter()
                    .map(|d| d.step_id().unwrap_or("*").to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                estimate: fmt_duration(s.estimate_secs as i64),
                instructions: s.instructions.clone(),
            })
            .collect(),
    })
}
