//! Data Center pages following their runs: the hub marks a Data Center's feed dirty whenever
//! one of its runs records an event, and one renderer per watched Data Center (started by the
//! first watcher's stream, see `pages/datacenters/events.rs`) draws the picture again and hands
//! the same frame to every watcher — one render per change, not one per person. The feed goes
//! when its last watcher leaves, and with it the renderer.

use std::collections::HashMap;

use axum::body::Bytes;
use tokio::sync::{broadcast, watch};

use super::Live;
use crate::engine::audit::AuditEvent;

/// The run → Data Center names remembered at most (a run's Data Center never changes).
const RUNS_REMEMBERED: usize = 10_000;

pub(super) struct EstateFeed {
    tx: broadcast::Sender<Bytes>,
    watchers: usize,
    /// Bumped for every event of one of the Data Center's runs; the renderer waits on it.
    dirty: watch::Sender<u64>,
}

/// A watcher's place in a Data Center's feed.
pub struct EstateJoin {
    pub updates: broadcast::Receiver<Bytes>,
    /// For the first watcher only: what the renderer it must start listens and sends on.
    pub render: Option<Renderer>,
}

pub struct Renderer {
    /// Changes when the Data Center's runs move; closed when the last watcher left.
    pub dirty: watch::Receiver<u64>,
    pub tx: broadcast::Sender<Bytes>,
}

impl Live {
    /// Joins the feed of Data Center `name` (created for the first watcher).
    pub fn join_estate(&self, name: &str) -> EstateJoin {
        let mut feeds = self.estates.lock().unwrap_or_else(|p| p.into_inner());
        let mut render = None;
        let feed = feeds.entry(name.to_string()).or_insert_with(|| {
            let (dirty, dirty_rx) = watch::channel(0);
            let tx = broadcast::channel(16).0;
            render = Some(Renderer {
                dirty: dirty_rx,
                tx: tx.clone(),
            });
            EstateFeed {
                tx,
                watchers: 0,
                dirty,
            }
        });
        feed.watchers += 1;
        EstateJoin {
            updates: feed.tx.subscribe(),
            render,
        }
    }

    /// Leaves the feed; the last watcher out removes it (which stops its renderer).
    pub fn leave_estate(&self, name: &str) {
        let mut feeds = self.estates.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(feed) = feeds.get_mut(name) {
            feed.watchers = feed.watchers.saturating_sub(1);
            if feed.watchers == 0 {
                feeds.remove(name);
            }
        }
    }

    /// Called by the hub for every committed event: marks the feed of the event's Data Center.
    pub(super) async fn estate_event(&self, event: &AuditEvent) {
        let Some(run_id) = event.run_id.as_deref() else {
            return;
        };
        if self
            .estates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
        {
            return;
        }
        let known = self
            .run_inventory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(run_id)
            .cloned();
        let inventory = match known {
            Some(i) => i,
            None => match self.store.run(run_id).await {
                Ok(run) => {
                    let mut m = self.run_inventory.lock().unwrap_or_else(|p| p.into_inner());
                    if m.len() >= RUNS_REMEMBERED {
                        m.clear();
                    }
                    m.insert(run_id.to_string(), run.inventory.clone());
                    run.inventory
                }
                Err(e) => {
                    tracing::warn!(run = %run_id, error = %e, "live Data Center view could not read the run");
                    return;
                }
            },
        };
        let feeds = self.estates.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(feed) = feeds.get(&inventory) {
            feed.dirty.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// The feeds by Data Center name.
pub(super) type EstateFeeds = HashMap<String, EstateFeed>;
