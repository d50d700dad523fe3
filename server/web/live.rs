//! Live run pages: one server-sent event stream per run page, authorized per run.
//!
//! A single hub task follows the engine's committed events. For a run that has watchers it keeps
//! the run's steps in memory, refreshes what the event touched, renders the changed step card and
//! the run header once per kind of viewer (role × requester-or-not), and hands the result to every
//! watcher of that run — so 1,000 watchers cost one render, not 1,000. Each watcher's stream sends
//! `update` events whose data is those partials marked `hx-swap-oob` (htmx swaps them by id), with
//! the engine's event id as the SSE id. A watcher that reconnects with `Last-Event-ID` (or the
//! page's `?after=` for the first connection) first gets the current state of everything touched
//! since then, read back from the event log. At a terminal state the stream sends `done` and ends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::engine::audit::AuditEvent;
use crate::engine::store::{RunRecord, StepRecord};
use crate::engine::Store;
use crate::web::auth::{CurrentUser, Role};
use crate::web::runview::{self, Viewer};
use crate::web::{AppError, AppState, Clock};

/// One rendering kind: controls differ by role and by whether the viewer requested the run.
pub type Variant = (Role, bool);

/// What the hub sends to a run's watchers after an engine event.
#[derive(Debug)]
pub struct Update {
    pub id: i64,
    pub terminal: bool,
    pub html: HashMap<Variant, String>,
}

type UpdateSender = broadcast::Sender<Arc<Update>>;

struct RunFeed {
    tx: broadcast::Sender<Arc<Update>>,
    /// user name → (role, open streams)
    watchers: BTreeMap<String, (Role, usize)>,
}

/// Shared between the hub task and the stream handlers.
pub struct Live {
    store: Store,
    clock: Clock,
    feeds: Mutex<HashMap<String, RunFeed>>,
}

impl Live {
    /// Creates the hub and starts its task (needs a Tokio runtime).
    pub fn start(store: Store, clock: Clock) -> Arc<Live> {
        let live = Arc::new(Live {
            store,
            clock,
            feeds: Mutex::new(HashMap::new()),
        });
        let weak = Arc::downgrade(&live);
        let events = live.store.subscribe();
        tokio::spawn(hub(weak, events));
        live
    }

    /// Names of the people with the run open right now.
    pub fn watching(&self, run_id: &str) -> Vec<String> {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds
            .get(run_id)
            .map(|f| f.watchers.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn join(&self, run_id: &str, user: &str, role: Role) -> broadcast::Receiver<Arc<Update>> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        let feed = feeds.entry(run_id.to_string()).or_insert_with(|| RunFeed {
            tx: broadcast::channel(256).0,
            watchers: BTreeMap::new(),
        });
        feed.watchers.entry(user.to_string()).or_insert((role, 0)).1 += 1;
        feed.tx.subscribe()
    }

    fn leave(&self, run_id: &str, user: &str) {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(feed) = feeds.get_mut(run_id) {
            if let Some(w) = feed.watchers.get_mut(user) {
                w.1 -= 1;
                if w.1 == 0 {
                    feed.watchers.remove(user);
                }
            }
            if feed.watchers.is_empty() {
                feeds.remove(run_id);
            }
        }
    }

    fn watched(&self, run_id: &str) -> Option<(UpdateSender, Vec<(String, Role)>)> {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds.get(run_id).map(|f| {
            (
                f.tx.clone(),
                f.watchers
                    .iter()
                    .map(|(u, (r, _))| (u.clone(), *r))
                    .collect(),
            )
        })
    }
}

/// Renders the header and the named steps' cards as out-of-band partials for one variant.
pub fn render_update(
    run: &RunRecord,
    steps: &[StepRecord],
    touched: &HashSet<String>,
    variant: Variant,
    now_ms: i64,
    watching: &[String],
) -> Result<String, askama::Error> {
    use askama::Template;
    let viewer = Viewer {
        role: variant.0,
        is_requester: variant.1,
        csrf: String::new(),
    };
    let mut header = runview::run_header(run, steps, &viewer, now_ms, watching);
    header.oob = true;
    let mut out = header.render()?;
    for step in steps.iter().filter(|s| touched.contains(&s.id)) {
        let mut card = runview::step_card(run, step, &viewer);
        card.oob = true;
        out.push_str(&card.render()?);
    }
    Ok(out)
}

/// Per-run cache the hub keeps while a run has watchers.
struct Cached {
    run: RunRecord,
    steps: Vec<StepRecord>,
}

async fn hub(live: std::sync::Weak<Live>, mut events: broadcast::Receiver<AuditEvent>) {
    let mut cache: HashMap<String, Cached> = HashMap::new();
    let mut last_id = 0i64;
    loop {
        let batch: Vec<AuditEvent> = match events.recv().await {
            Ok(e) => vec![e],
            Err(broadcast::error::RecvError::Closed) => return,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let Some(live) = live.upgrade() else { return };
                match live.store.events_after(last_id, None, 100_000).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "live view could not replay missed events");
                        continue;
                    }
                }
            }
        };
        let Some(live) = live.upgrade() else { return };
        for event in batch {
            if event.id <= last_id {
                continue;
            }
            last_id = event.id;
            let Some(run_id) = event.run_id.clone() else {
                continue;
            };
            let Some((tx, watchers)) = live.watched(&run_id) else {
                cache.remove(&run_id);
                continue;
            };
            if let Err(e) =
                refresh(&live.store, &mut cache, &run_id, event.step_id.as_deref()).await
            {
                tracing::warn!(run = %run_id, error = %e, "live view could not read the run");
                continue;
            }
            let Some(c) = cache.get(&run_id) else {
                continue;
            };
            let mut touched = HashSet::new();
            if let Some(s) = &event.step_id {
                touched.insert(s.clone());
            }
            let names: Vec<String> = watchers.iter().map(|(u, _)| u.clone()).collect();
            let variants: HashSet<Variant> = watchers
                .iter()
                .map(|(u, r)| (*r, *u == c.run.requester))
                .collect();
            let mut html = HashMap::new();
            let now = live.clock.now_ms();
            for v in variants {
                match render_update(&c.run, &c.steps, &touched, v, now, &names) {
                    Ok(h) => {
                        html.insert(v, h);
                    }
                    Err(e) => tracing::warn!(error = %e, "rendering a live update failed"),
                }
            }
            let _ = tx.send(Arc::new(Update {
                id: event.id,
                terminal: c.run.status.is_terminal(),
                html,
            }));
        }
        cache.retain(|run_id, _| live.watched(run_id).is_some());
    }
}

async fn refresh(
    store: &Store,
    cache: &mut HashMap<String, Cached>,
    run_id: &str,
    step_id: Option<&str>,
) -> Result<(), crate::engine::EngineError> {
    match (cache.get_mut(run_id), step_id) {
        (Some(c), Some(step_id)) => {
            let fresh = store.step(run_id, step_id).await?;
            match c.steps.iter_mut().find(|s| s.id == step_id) {
                Some(slot) => *slot = fresh,
                None => c.steps = store.steps(run_id).await?,
            }
            c.run = store.run(run_id).await?;
        }
        _ => {
            let run = store.run(run_id).await?;
            let steps = store.steps(run_id).await?;
            cache.insert(run_id.to_string(), Cached { run, steps });
        }
    }
    Ok(())
}

#[derive(serde::Deserialize)]
pub struct StreamQuery {
    /// The newest event id the page already shows (used when no `Last-Event-ID` is sent).
    after: Option<i64>,
}

/// `GET /runs/{id}/events`: the run's live stream, for anyone who may view the run.
pub async fn stream(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(run_id): Path<String>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, AppError> {
    user.require(Role::Viewer)?;
    let run = state
        .store
        .run(&run_id)
        .await
        .map_err(crate::web::engine_error)?;
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(q.after)
        .unwrap_or(0);
    let live = state.live.clone();
    let variant: Variant = (user.role(), user.name() == run.requester);
    let mut updates = live.join(&run_id, user.name(), user.role());
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    let user_name = user.name().to_string();
    tokio::spawn(async move {
        let mut sent = last_seen;
        // Catch up first: everything the event log holds after what the page shows.
        match catch_up(&live, &run_id, sent, variant).await {
            Ok(Some((id, html, terminal))) => {
                sent = id;
                if tx
                    .send(Ok(Event::default()
                        .id(id.to_string())
                        .event("update")
                        .data(html)))
                    .await
                    .is_err()
                {
                    live.leave(&run_id, &user_name);
                    return;
                }
                if terminal {
                    let _ = tx
                        .send(Ok(Event::default().event("done").data("done")))
                        .await;
                    live.leave(&run_id, &user_name);
                    return;
                }
            }
            Ok(None) => {
                if run.status.is_terminal() {
                    let _ = tx
                        .send(Ok(Event::default().event("done").data("done")))
                        .await;
                    live.leave(&run_id, &user_name);
                    return;
                }
            }
            Err(e) => tracing::warn!(run = %run_id, error = %e, "catch-up failed"),
        }
        loop {
            tokio::select! {
                _ = tx.closed() => break,
                got = updates.recv() => match got {
                    Ok(update) => {
                        if update.id <= sent { continue; }
                        sent = update.id;
                        let Some(html) = update.html.get(&variant) else { continue };
                        let event = Event::default().id(update.id.to_string()).event("update").data(html.as_str());
                        if tx.send(Ok(event)).await.is_err() { break; }
                        if update.terminal {
                            let _ = tx.send(Ok(Event::default().event("done").data("done"))).await;
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        match catch_up(&live, &run_id, sent, variant).await {
                            Ok(Some((id, html, _))) => {
                                sent = id;
                                if tx.send(Ok(Event::default().id(id.to_string()).event("update").data(html))).await.is_err() { break; }
                            }
                            Ok(None) => {}
                            Err(e) => tracing::warn!(run = %run_id, error = %e, "catch-up failed"),
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
        live.leave(&run_id, &user_name);
    });
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}

/// The current header and every card touched by events after `after`, as one update; `None`
/// when nothing happened since.
async fn catch_up(
    live: &Live,
    run_id: &str,
    after: i64,
    variant: Variant,
) -> Result<Option<(i64, String, bool)>, AppError> {
    let missed = live
        .store
        .events_after(after, Some(run_id), 1_000_000)
        .await
        .map_err(crate::web::engine_error)?;
    let Some(last) = missed.last().map(|e| e.id) else {
        return Ok(None);
    };
    let touched: HashSet<String> = missed.iter().filter_map(|e| e.step_id.clone()).collect();
    let run = live
        .store
        .run(run_id)
        .await
        .map_err(crate::web::engine_error)?;
    let steps = live
        .store
        .steps(run_id)
        .await
        .map_err(crate::web::engine_error)?;
    let html = render_update(
        &run,
        &steps,
        &touched,
        variant,
        live.clock.now_ms(),
        &live.watching(run_id),
    )?;
    Ok(Some((last, html, run.status.is_terminal())))
}
