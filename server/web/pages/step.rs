//! A step's own page: what it is, its instructions, its evidence as tables a person can read,
//! and its whole output — searchable (`?q=`, works without JavaScript) and downloadable as text
//! (`/runs/ID/steps/STEP/log.txt`). The run page's cards show only the newest lines in words;
//! here the technical lines behind them (what was sent, every raw server message) can be shown
//! too (`?technical=1`), and the text download has them all, marked.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

use crate::engine::steplog::{LogLine, LINES_PER_STEP};
use crate::engine::store::StepRecord;
use crate::web::auth::{CurrentUser, Role};
use crate::web::live::Live;
use crate::web::runview::run_name;
use crate::web::views::{fmt_time, html, Chrome, Stamp};
use crate::web::{words, AppError, Core};

/// One row of evidence: a field and its value as text (nested values as compact JSON).
pub struct EvidenceRow {
    pub field: String,
    pub value: String,
}

pub struct LogRow {
    pub at: Stamp,
    pub attempt: u32,
    pub text: String,
    pub detail: bool,
}

#[derive(Template)]
#[template(path = "step.html")]
pub struct StepPage {
    pub chrome: Chrome,
    pub run_id: String,
    pub run_name: String,
    pub step_id: String,
    pub title: String,
    pub host: String,
    pub status: &'static str,
    pub status_words: &'static str,
    pub section: String,
    pub instructions: String,
    pub last_error: String,
    pub evidence: Vec<EvidenceRow>,
    pub q: String,
    /// Technical lines are shown too.
    pub technical: bool,
    pub lines: Vec<LogRow>,
    pub total: i64,
}

#[derive(Deserialize, Default)]
pub struct LogQuery {
    #[serde(default)]
    q: String,
    /// `1` to show the technical lines too.
    #[serde(default)]
    technical: String,
}

/// Evidence as (field, value) rows: an object's fields one per row (dotted paths one level
/// down), anything else as one row.
pub fn evidence_rows(v: &serde_json::Value) -> Vec<EvidenceRow> {
    fn text(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "—".into(),
            other => other.to_string(),
        }
    }
    let mut rows = Vec::new();
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m {
                match val {
                    serde_json::Value::Object(inner) if !inner.is_empty() => {
                        for (k2, v2) in inner {
                            rows.push(EvidenceRow {
                                field: format!("{k}.{k2}"),
                                value: text(v2),
                            });
                        }
                    }
                    other => rows.push(EvidenceRow {
                        field: k.clone(),
                        value: text(other),
                    }),
                }
            }
        }
        serde_json::Value::Null => {}
        other => rows.push(EvidenceRow {
            field: "evidence".into(),
            value: text(other),
        }),
    }
    rows
}

async fn all_lines(
    state: &Core,
    live: &Live,
    run_id: &str,
    step_id: &str,
) -> Result<(StepRecord, Vec<LogLine>, i64), AppError> {
    let step = state.store.step(run_id, step_id).await?;
    let tail = live
        .step_log()
        .tail(run_id, step_id, LINES_PER_STEP as usize + 1)
        .await?;
    Ok((step, tail.lines, tail.total))
}

/// `GET /runs/{id}/steps/{step}`.
pub async fn page(
    State(state): State<Core>,
    State(live): State<Arc<Live>>,
    me: CurrentUser,
    Path((id, step_id)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let run = state.store.run(&id).await?;
    let (step, lines, total) = all_lines(&state, &live, &id, &step_id).await?;
    let needle = q.q.trim().to_lowercase();
    let technical = match q.technical.as_str() {
        "" | "0" => false,
        "1" => true,
        other => {
            return Err(AppError::BadRequest(format!(
                "technical: `{}` is not a choice; use 1 to show the technical lines",
                other.chars().take(20).collect::<String>()
            )))
        }
    };
    if needle.chars().count() > 200 {
        return Err(AppError::BadRequest(
            "q: search for at most 200 characters".into(),
        ));
    }
    html(&StepPage {
        chrome: Chrome::new(&me, "runs"),
        run_name: run_name(&run),
        run_id: id,
        step_id: step.id.clone(),
        title: step.spec.title.clone(),
        host: step.spec.host.clone().unwrap_or_default(),
        status: step.status.as_str(),
        status_words: words::step_status(step.status),
        section: step.spec.section.clone(),
        instructions: step.spec.instructions.clone(),
        last_error: step.state.last_error.clone().unwrap_or_default(),
        evidence: step
            .state
            .evidence
            .as_ref()
            .map(evidence_rows)
            .unwrap_or_default(),
        q: q.q.trim().to_string(),
        technical,
        lines: lines
            .iter()
            .filter(|l| technical || !l.detail)
            .filter(|l| needle.is_empty() || l.text.to_lowercase().contains(&needle))
            .map(|l| LogRow {
                at: Stamp::at(l.at),
                attempt: l.attempt,
                text: l.text.clone(),
                detail: l.detail,
            })
            .collect(),
        total: if technical {
            total
        } else {
            lines.iter().filter(|l| !l.detail).count() as i64
        },
    })
}

/// `GET /runs/{id}/steps/{step}/log.txt`: the whole output as plain text, one line each.
pub async fn log_text(
    State(state): State<Core>,
    State(live): State<Arc<Live>>,
    me: CurrentUser,
    Path((id, step_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let (step, lines, _) = all_lines(&state, &live, &id, &step_id).await?;
    let mut out = format!(
        "# {} ({}) — run {id}\n",
        step.spec.title,
        step.spec.host.as_deref().unwrap_or("no host")
    );
    for l in &lines {
        out.push_str(&format!(
            "{} attempt {} {}{}\n",
            fmt_time(l.at.div_euclid(1000)),
            l.attempt,
            if l.detail { "[technical] " } else { "" },
            l.text
        ));
    }
    // The step id goes into the file name only as safe characters.
    let name: String = step_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.log.txt\""),
            ),
        ],
        out,
    )
        .into_response())
}
