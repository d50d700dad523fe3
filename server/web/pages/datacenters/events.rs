//! `GET /datacenters/NAME/events`: the Data Center page's live stream. It sends the drawing as
//! it is now, then the drawing again (one `update` frame, swapped in by id) every time one of
//! the Data Center's runs moves, as the live hub reports it (`web/live/estate.rs`). The first
//! watcher of a Data Center starts its renderer; every watcher receives the same bytes.
//!
//! Agents' health and facts are not engine events: the renderer also looks again every
//! [`REFRESH`] and sends only when the picture changed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use super::drawing;
use crate::web::auth::{CurrentUser, Role};
use crate::web::live::{self, Live, Renderer};
use crate::web::{datacenters, AppError, Core};

/// How long a burst of events is gathered before the drawing is rendered again.
const SETTLE: Duration = Duration::from_millis(150);
/// How often the renderer looks again without an event (agents' health, facts).
const REFRESH: Duration = Duration::from_secs(60);
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The drawing as an out-of-band `update` frame.
async fn frame(state: &Core, name: &str) -> Result<(String, Bytes), AppError> {
    let mut partial = drawing::current(state, name).await?;
    partial.oob = true;
    let html = partial.render().map_err(|e| AppError::Internal(e.into()))?;
    let frame = live::frame("update", &html);
    Ok((html, frame))
}

/// One per watched Data Center: renders after its runs move (and every [`REFRESH`]), sends
/// what changed; ends when the last watcher left.
async fn render(state: Core, name: String, mut r: Renderer) {
    let mut last = String::new();
    loop {
        tokio::select! {
            changed = r.dirty.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(REFRESH) => {}
        }
        tokio::time::sleep(SETTLE).await;
        r.dirty.borrow_and_update();
        match frame(&state, &name).await {
            Ok((html, bytes)) if html != last => {
                let _ = r.tx.send(bytes);
                last = html;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(datacenter = %name, error = ?e, "live Data Center drawing failed")
            }
        }
    }
}

/// Takes the watcher off the feed when its stream ends (the browser left).
struct Watching {
    live: Arc<Live>,
    name: String,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.live.leave_estate(&self.name);
    }
}

pub async fn events(
    State(state): State<Core>,
    State(live): State<Arc<Live>>,
    me: CurrentUser,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    me.require(Role::Viewer)?;
    let dc = datacenters::current(&state.pool, &name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no Data Center named `{name}`")))?;
    let joined = live.join_estate(&dc.name);
    let watching = Watching {
        live,
        name: dc.name.clone(),
    };
    if let Some(r) = joined.render {
        tokio::spawn(render(state.clone(), dc.name.clone(), r));
    }
    // Now, for a page rendered a moment ago: whatever moved in between is shown.
    let (_, first) = frame(&state, &dc.name).await?;
    let feed = (Some(first), joined.updates, watching);
    let body = futures_util::stream::unfold(feed, |(first, mut rx, watching)| async move {
        if let Some(f) = first {
            return Some((Ok::<_, Infallible>(f), (None, rx, watching)));
        }
        loop {
            match tokio::time::timeout(KEEP_ALIVE, rx.recv()).await {
                Err(_) => return Some((Ok(Bytes::from_static(b":\n\n")), (None, rx, watching))),
                Ok(Ok(f)) => return Some((Ok(f), (None, rx, watching))),
                // Each frame is the whole drawing: a watcher that fell behind takes the next.
                Ok(Err(RecvError::Lagged(_))) => continue,
                Ok(Err(RecvError::Closed)) => return None,
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
