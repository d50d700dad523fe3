//! One watcher's event stream: `GET /runs/{id}/events`.
//!
//! The response body is polled by the connection's own task: no task and no channel per watcher
//! beside it. It yields the catch-up first, then the frames the hub encoded for this kind of
//! viewer (cloning bytes, not rendering or copying HTML), a comment every 15 s to keep proxies
//! from closing an idle stream, and `done` at a terminal state. Dropping the body (the browser
//! left) takes the watcher off the run's list.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;

use super::{catch_up, Live, StreamQuery, Update, Variant};
use crate::engine::Store;
use crate::web::auth::{CurrentUser, Role};
use crate::web::AppError;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Encodes one server-sent event. Every line break in `data` (`\n`, `\r\n` or `\r`) starts a new
/// `data:` line, so no text can end the field early or inject another field.
pub fn frame(id: Option<i64>, event: &str, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + data.len() / 16 + 48);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    out.push_str("event: ");
    out.push_str(event);
    out.push('\n');
    for line in data.split('\n') {
        for part in line.split('\r') {
            out.push_str("data: ");
            out.push_str(part);
            out.push('\n');
        }
    }
    out.push('\n');
    Bytes::from(out)
}

fn done() -> Bytes {
    Bytes::from_static(b"event: done\ndata: done\n\n")
}

/// `GET /runs/{id}/events`: the run's live stream, for anyone who may view the run.
pub async fn stream(
    State(store): State<Store>,
    State(live): State<Arc<Live>>,
    user: CurrentUser,
    Path(run_id): Path<String>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    user.require(Role::Viewer)?;
    let run = store.run(&run_id).await?;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(q.after)
        .unwrap_or(0);
    let variant: Variant = (user.role(), user.name() == run.requester);
    let updates = live.join(&run_id, user.name(), user.role());
    let mut watch = Watch {
        live,
        run_id,
        user: user.name().to_string(),
        variant,
        updates,
        sent: last_seen,
        log_seen: 0,
        pending: VecDeque::new(),
        finished: false,
        keep_alive: tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE),
    };
    // Catch up first: everything the event log and the step log hold after what the page shows.
    watch.catch_up().await;
    let body = futures_util::stream::unfold(watch, |mut w| async move {
        let frame = w.next_frame().await?;
        Some((Ok::<_, Infallible>(frame), w))
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

/// The state of one watcher's stream.
struct Watch {
    live: Arc<Live>,
    run_id: String,
    user: String,
    variant: Variant,
    updates: broadcast::Receiver<Arc<Update>>,
    /// The newest engine event sent (the SSE id).
    sent: i64,
    /// The newest log line shown (by the catch-up or an append).
    log_seen: i64,
    /// Frames to send before waiting for more.
    pending: VecDeque<Bytes>,
    /// Nothing more after `pending`: the run ended or the hub went away.
    finished: bool,
    keep_alive: tokio::time::Interval,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.live.leave(&self.run_id, &self.user);
    }
}

impl Watch {
    /// Queues the header and the cards changed since `sent` (database reads: at the start, and
    /// after this watcher fell behind the hub's channel).
    async fn catch_up(&mut self) {
        match catch_up(&self.live, &self.run_id, self.sent, self.variant).await {
            Ok(c) => {
                self.log_seen = self.log_seen.max(c.log_seen);
                if let Some(html) = c.html {
                    if let Some(id) = c.last_event {
                        self.sent = id;
                    }
                    self.pending.push_back(frame(c.last_event, "update", &html));
                }
                if c.terminal {
                    self.pending.push_back(done());
                    self.finished = true;
                }
            }
            Err(e) => tracing::warn!(run = %self.run_id, error = %e, "catch-up failed"),
        }
    }

    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Some(f);
            }
            if self.finished {
                return None;
            }
            tokio::select! {
                got = self.updates.recv() => match got {
                    Ok(update) => self.take(&update),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up().await,
                    Err(broadcast::error::RecvError::Closed) => self.finished = true,
                },
                _ = self.keep_alive.tick() => return Some(Bytes::from_static(b":\n\n")),
            }
        }
    }

    /// Queues an update's frame for this viewer, unless the catch-up already showed it.
    fn take(&mut self, update: &Update) {
        if let Some(id) = update.id {
            if id <= self.sent {
                return;
            }
            self.sent = id;
        }
        if let Some(l) = update.log_id {
            // Lines the catch-up already showed (read while this stream joined).
            if l <= self.log_seen {
                return;
            }
            self.log_seen = l;
        }
        if let Some(f) = update.html.for_variant(&self.variant) {
            self.pending.push_back(f.clone());
        }
        if update.terminal {
            self.pending.push_back(done());
            self.finished = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::frame;

    #[test]
    fn every_line_break_in_the_data_starts_a_new_data_line() {
        let f = frame(Some(7), "update", "<p>a</p>\n<p>b</p>\r\nid: 9\revent: x");
        assert_eq!(
            &f[..],
            b"id: 7\nevent: update\ndata: <p>a</p>\ndata: <p>b</p>\ndata: \ndata: id: 9\ndata: event: x\n\n"
        );
    }

    #[test]
    fn a_frame_without_an_id_has_no_id_field() {
        assert_eq!(
            &frame(None, "update", "x")[..],
            b"event: update\ndata: x\n\n"
        );
    }
}
