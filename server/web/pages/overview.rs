//! Overview: what awaits the viewer across every open run (gates they may approve, manual tasks
//! they may claim or complete, failures they may retry or resolve), and the active runs with
//! their progress. Both stay live: `GET /overview/events` re-renders them for this viewer after
//! every engine event and sends them when they changed.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use crate::engine::machine::{RunStatus, StepStatus};
use crate::web::auth::{CurrentUser, Role};
use crate::web::runview::{self, attention, Viewer};
use crate::web::views::{html, Chrome};
use crate::web::{words, AppError, Core};

pub struct ActiveRun {
    pub id: String,
    pub name: String,
    pub status: &'static str,
    pub status_words: &'static str,
    pub blocked_on: String,
    pub done: usize,
    pub total: usize,
    pub percent: usize,
}

/// One thing waiting for this viewer.
pub struct Awaiting {
    pub run_id: String,
    pub run_name: String,
    /// Where on the run page (a step card's id, or the header for the start approval).
    pub anchor: String,
    pub what: String,
    pub title: String,
    pub waited: String,
    pub since: String,
}

/// The live part of the Overview, pushed as one out-of-band swap.
#[derive(Template)]
#[template(path = "partials/overview_live.html")]
pub struct OverviewLive {
    pub awaiting: Vec<Awaiting>,
    pub active: Vec<ActiveRun>,
    pub oob: bool,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub chrome: Chrome,
    pub live: OverviewLive,
    pub agents: Vec<crate::web::pages::agents::AgentRow>,
}

/// What awaits `name` (with `role`) across the open runs, and the open runs themselves. The
/// controls' flags come from the run page's own attention strip, so both agree.
pub async fn overview_live(state: &Core, name: &str, role: Role) -> Result<OverviewLive, AppError> {
    let now = state.clock.now();
    let mut active = Vec::new();
    let mut awaiting = Vec::new();
    for run in state.store.runs().await? {
        if run.status.is_terminal() {
            continue;
        }
        let steps = state.store.steps(&run.id).await?;
        let viewer = Viewer {
            role,
            is_requester: run.requester == name,
            person: None,
            csrf: String::new(),
        };
        let a = attention::attention(&run, &steps, &viewer, now);
        let run_name = runview::run_name(&run);
        if a.start_is_mine {
            awaiting.push(Awaiting {
                run_id: run.id.clone(),
                run_name: run_name.clone(),
                anchor: "approve-start-form".into(),
                what: "Start approval".into(),
                title: format!("Start of {}", run.runbook),
                waited: a.start_waited.clone(),
                since: String::new(),
            });
        }
        for i in a.items.iter().filter(|i| i.is_mine()) {
            // A gate this person already approved waits for someone else now.
            let approved_already = steps.iter().any(|s| {
                s.id == i.step_id
                    && s.status == StepStatus::AwaitingApproval
                    && s.state.approvals.iter().any(|x| x.actor == name)
            });
            if approved_already {
                continue;
            }
            awaiting.push(Awaiting {
                run_id: run.id.clone(),
                run_name: run_name.clone(),
                anchor: i.dom_id.clone(),
                what: i.what.to_string(),
                title: match &i.host {
                    h if h.is_empty() => i.title.clone(),
                    h => format!("{} on {h}", i.title),
                },
                waited: i.waited.clone(),
                since: i.since.clone(),
            });
        }
        let total = steps
            .iter()
            .filter(|s| s.undo_of.is_none() && !s.spec.is_join())
            .count();
        let done = steps
            .iter()
            .filter(|s| {
                s.undo_of.is_none()
                    && !s.spec.is_join()
                    && matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped)
            })
            .count();
        active.push(ActiveRun {
            id: run.id.clone(),
            name: run_name,
            status: run.status.as_str(),
            status_words: words::run_status(run.status),
            blocked_on: if run.status == RunStatus::AwaitingStartApproval {
                String::new()
            } else {
                attention::blocked_on(&run, &steps, now)
            },
            done,
            total,
            percent: (done * 100).checked_div(total).unwrap_or(0),
        });
    }
    Ok(OverviewLive {
        awaiting,
        active,
        oob: false,
    })
}

pub async fn page(State(state): State<Core>, me: CurrentUser) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let live = overview_live(&state, me.name(), me.role()).await?;
    let agents = crate::web::pages::agents::rows(&state).await?;
    html(&OverviewPage {
        chrome: Chrome::new(&me, "overview"),
        live,
        agents,
    })
}

/// How long a burst of engine events is gathered before the Overview is rendered again.
const SETTLE: Duration = Duration::from_millis(150);
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /overview/events`: the Overview's live part for this viewer, sent whenever it changes.
pub async fn events(State(state): State<Core>, me: CurrentUser) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let rx = state.store.subscribe();
    let first = overview_live(&state, me.name(), me.role()).await?;
    let last = render_oob(first)?;
    struct Feed {
        state: Core,
        name: String,
        role: Role,
        rx: tokio::sync::broadcast::Receiver<crate::engine::audit::AuditEvent>,
        last: String,
    }
    let feed = Feed {
        state,
        name: me.name().to_string(),
        role: me.role(),
        rx,
        last,
    };
    let body = futures_util::stream::unfold(feed, |mut f| async move {
        loop {
            let got = tokio::time::timeout(KEEP_ALIVE, f.rx.recv()).await;
            match got {
                Err(_) => {
                    return Some((
                        Ok::<_, Infallible>(axum::body::Bytes::from_static(b":\n\n")),
                        f,
                    ))
                }
                Ok(Err(RecvError::Closed)) => return None,
                Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
            }
            tokio::time::sleep(SETTLE).await;
            while f.rx.try_recv().is_ok() {}
            let rendered = match overview_live(&f.state, &f.name, f.role).await {
                Ok(l) => render_oob(l),
                Err(e) => {
                    tracing::warn!(error = ?e, "overview live update failed");
                    continue;
                }
            };
            match rendered {
                Ok(h) if h != f.last => {
                    let frame = crate::web::live::frame("update", &h);
                    f.last = h;
                    return Some((Ok(frame), f));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "rendering the overview failed"),
            }
        }
    });
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

fn render_oob(mut l: OverviewLive) -> Result<String, AppError> {
    l.oob = true;
    Ok(l.render()?)
}
