//! A small history of past runs per Data Center for the Overview: each finished run's actual
//! duration against its plan, and its outcome. A self-contained partial: the Overview includes
//! a placeholder that htmx fills from `/overview/run-history` once the page has loaded, so the
//! Overview's own handler does not change.

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use crate::engine::store::StepRecord;
use crate::engine::Store;
use crate::web::auth::{CurrentUser, Role};
use crate::web::views::{fmt_duration, fmt_time};
use crate::web::AppError;

/// Finished runs shown per Data Center (newest first); bounds the steps read per request.
const PER_DC: usize = 6;
/// Width of the bar area, in SVG units.
const BAR_W: i64 = 220;

pub struct PastRun {
    pub id: String,
    pub name: String,
    pub finished: String,
    pub outcome: String,
    pub actual: String,
    pub planned: String,
    pub actual_w: i64,
    pub planned_w: i64,
    /// `late` when it took longer than planned.
    pub late: bool,
}

pub struct DcHistory {
    pub datacenter: String,
    pub runs: Vec<PastRun>,
}

#[derive(Template)]
#[template(path = "partials/run_history.html")]
pub struct RunHistory {
    pub dcs: Vec<DcHistory>,
    pub bar_w: i64,
}

fn planned_secs(steps: &[StepRecord]) -> i64 {
    let plan: Vec<&StepRecord> = steps.iter().filter(|s| s.undo_of.is_none()).collect();
    let mut finish: std::collections::BTreeMap<&str, u64> = Default::default();
    for s in &plan {
        let start = s
            .spec
            .depends_on
            .iter()
            .filter_map(|d| finish.get(d.as_str()))
            .max()
            .copied()
            .unwrap_or(0);
        finish.insert(&s.id, start + s.spec.estimate_secs);
    }
    finish.values().max().copied().unwrap_or(0) as i64
}

pub async fn partial(State(store): State<Store>, me: CurrentUser) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let mut runs = store.runs().await?;
    runs.sort_by_key(|r| std::cmp::Reverse(r.updated_at));
    let mut dcs: Vec<DcHistory> = Vec::new();
    let mut raw: Vec<(String, String, String, String, i64, i64)> = Vec::new();
    for r in runs
        .iter()
        .filter(|r| r.status.is_terminal() || r.status.as_str() == "failed")
    {
        let shown = raw.iter().filter(|x| x.0 == r.inventory).count();
        if shown >= PER_DC {
            continue;
        }
        let steps = store.steps(&r.id).await?;
        let started = steps.iter().filter_map(|s| s.state.dispatched_at).min();
        let actual = started
            .map(|s| (r.updated_at - s).div_euclid(1000).max(0))
            .unwrap_or(0);
        raw.push((
            r.inventory.clone(),
            r.id.clone(),
            format!("{} · {}", r.change_ticket, r.runbook),
            r.status.as_str().to_string(),
            actual,
            planned_secs(&steps),
        ));
    }
    let longest = raw.iter().map(|x| x.4.max(x.5)).max().unwrap_or(1).max(1);
    for (dc, id, name, outcome, actual, planned) in raw {
        let finished = runs
            .iter()
            .find(|r| r.id == id)
            .map(|r| fmt_time(r.updated_at.div_euclid(1000)))
            .unwrap_or_default();
        let past = PastRun {
            id,
            name,
            finished,
            outcome: outcome.replace('_', " "),
            actual: fmt_duration(actual),
            planned: fmt_duration(planned),
            actual_w: (actual * BAR_W / longest).max(1),
            planned_w: (planned * BAR_W / longest).max(1),
            late: actual > planned,
        };
        match dcs.iter_mut().find(|d| d.datacenter == dc) {
            Some(d) => d.runs.push(past),
            None => dcs.push(DcHistory {
                datacenter: dc,
                runs: vec![past],
            }),
        }
    }
    let body = RunHistory { dcs, bar_w: BAR_W }
        .render()
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(Html(body).into_response())
}
