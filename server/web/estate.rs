//! The estate follows the change: after a run succeeds, the Data Center's recorded versions
//! (Connected, Windows Server, SQL Server per server, in its stored inventory) are updated from
//! the agents' fresh facts — a new inventory version, so the old one stays readable — with one
//! audit event naming old → new per server. And a Data Center whose servers report different
//! Connected versions is flagged (the guide asks that upgrades be completed in a timely manner).
//!
//! [`start`] runs the facts collector and the follower beside the dashboard (`serve`, the demo).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lockstep_protocol::tls::Identity;
use lockstep_protocol::{Component, SiteFacts};
use serde_json::json;
use tokio::sync::{broadcast::error::RecvError, watch};

use crate::executors::agent::collector::Collector;
use crate::executors::agent::registry::{self, StoredFacts};
use crate::knowledge::inventory::{Inventory, Version};
use crate::web::{datacenters, AppState};

/// Who the follower acts as in the audit log and the inventory history.
pub const ACTOR: &str = "lockstep";
/// The audit event that records the update.
pub const EVENT_KIND: &str = "datacenter.versions_updated";

/// The Connected version a server's facts report: the Data Center's own record, else (a web or
/// Management API server) the first Web Services component found.
pub fn connected_version(f: &SiteFacts) -> Option<&str> {
    [
        Component::DataCenter,
        Component::SupportCenter,
        Component::AccountManagementWebsite,
        Component::DatatransferApi,
        Component::ManagementApi,
    ]
    .into_iter()
    .find_map(|c| f.version_of(c))
}

/// One recorded value that the facts contradict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub server: String,
    /// The inventory field: `connected_version`, `windows` or `sql_server`.
    pub field: &'static str,
    pub old: String,
    pub new: String,
}

/// What the fresh facts say differs from `inv` (servers without fresh facts are left alone).
pub fn changes(
    inv: &Inventory,
    facts: &BTreeMap<String, StoredFacts>,
    now: i64,
    stale_secs: i64,
) -> Vec<Change> {
    let mut out = Vec::new();
    for s in &inv.servers {
        let Some(f) = facts
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&s.name))
            .map(|(_, f)| f)
            .filter(|f| f.age_secs(now) <= stale_secs)
        else {
            continue;
        };
        let mut push = |field: &'static str, old: String, new: &str| {
            if old != new {
                out.push(Change {
                    server: s.name.clone(),
                    field,
                    old,
                    new: new.to_string(),
                });
            }
        };
        if let Some(v) = connected_version(&f.facts) {
            // "8.11" and "8.11.0" are the same version; only a real difference is a change.
            if v.parse::<Version>().ok().as_ref() != Some(&s.connected_version) {
                push("connected_version", s.connected_version.to_string(), v);
            }
        }
        if let Some(w) = &f.facts.windows {
            push("windows", s.windows.as_str().to_string(), w);
        }
        if let (Some(q), Some(old)) = (&f.facts.sql_server, s.sql_server) {
            push("sql_server", old.as_str().to_string(), q);
        }
    }
    out
}

/// `toml` with `field = "value"` set in the `[[servers]]` block named `server` (the line
/// replaced where it exists, else added after the name). `None` when no such block exists.
pub fn set_server_field(toml: &str, server: &str, field: &str, value: &str) -> Option<String> {
    let lines: Vec<&str> = toml.lines().collect();
    // Each block's top part (before its first sub-table): where its name and the field are.
    let mut blocks: Vec<(Option<String>, Option<usize>, Option<usize>)> = Vec::new();
    let mut in_top = false;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_top = t.replace(' ', "") == "[[servers]]";
            if in_top {
                blocks.push((None, None, None));
            }
            continue;
        }
        let (true, Some(b)) = (in_top, blocks.last_mut()) else {
            continue;
        };
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k == "name" {
            // The value as TOML reads it (quotes, escapes), through a one-key document.
            b.0 = toml::from_str::<toml::Table>(&format!("v = {}", v.trim()))
                .ok()
                .and_then(|t| t.get("v").and_then(|v| v.as_str()).map(str::to_string));
            b.1 = Some(i);
        } else if k == field {
            b.2 = Some(i);
        }
    }
    // Values come from remote agents: one line of printable text, or nothing is changed.
    if value.chars().any(char::is_control) {
        return None;
    }
    let (_, name_at, field_at) = blocks
        .into_iter()
        .find(|b| b.0.as_deref() == Some(server))?;
    let line = format!("{field} = {}", toml::Value::String(value.to_string()));
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match (field_at, name_at) {
        (Some(i), _) => out[i] = line,
        (None, Some(i)) => out.insert(i + 1, line),
        (None, None) => return None,
    }
    let mut text = out.join("\n");
    if toml.ends_with('\n') {
        text.push('\n');
    }
    Some(text)
}

/// The Data Center's servers by the Connected version they report (fresh facts) or, without
/// them, the version on record. More than one key: a mixed Data Center.
pub fn versions_in_use(
    inv: &Inventory,
    facts: &BTreeMap<String, StoredFacts>,
    now: i64,
    stale_secs: i64,
) -> BTreeMap<String, Vec<String>> {
    let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &inv.servers {
        let reported = facts
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&s.name))
            .map(|(_, f)| f)
            .filter(|f| f.age_secs(now) <= stale_secs)
            .and_then(|f| connected_version(&f.facts))
            .and_then(|v| v.parse::<Version>().ok());
        let v = reported.unwrap_or_else(|| s.connected_version.clone());
        by_version
            .entry(v.to_string())
            .or_default()
            .push(s.name.clone());
    }
    by_version
}

/// After run `run_id` succeeded: asks its Data Center's agents for fresh facts, stores a new
/// inventory version with what changed, and records the audit event. Returns the changes made.
pub async fn follow_run(state: &AppState, run_id: &str) -> anyhow::Result<Vec<Change>> {
    let run = state.store.run(run_id).await?;
    let Some(dc) = datacenters::current(&state.pool, &run.inventory).await? else {
        return Ok(Vec::new());
    };
    let inv = dc
        .inventory()
        .map_err(|e| anyhow::anyhow!("{}: {e}", dc.name))?;
    if let Some(c) = &state.site.collector {
        let names: Vec<String> = inv.servers.iter().map(|s| s.name.clone()).collect();
        c.collect(Some(&names)).await?;
    }
    let now = state.clock.now_secs();
    let facts = registry::all_facts(&state.pool).await?;
    let mut text = dc.toml.clone();
    let mut applied = Vec::new();
    let mut refused = Vec::new();
    for c in changes(&inv, &facts, now, state.site.facts_stale_secs) {
        // Each change must leave an inventory that parses (a release the inventory does not
        // know, say), or it is left out and named in the event.
        match set_server_field(&text, &c.server, c.field, &c.new) {
            Some(t) if Inventory::from_toml(&t, &dc.name).is_ok() => {
                text = t;
                applied.push(c);
            }
            _ => refused.push(c),
        }
    }
    if applied.is_empty() && refused.is_empty() {
        return Ok(applied);
    }
    if !applied.is_empty() {
        datacenters::save(&state.pool, &text, ACTOR, now)
            .await?
            .map_err(|e| anyhow::anyhow!("{}: the updated inventory: {e}", dc.name))?;
    }
    let item =
        |c: &Change| json!({ "server": c.server, "field": c.field, "old": c.old, "new": c.new });
    state
        .store
        .record_note(
            run_id,
            ACTOR,
            EVENT_KIND,
            json!({
                "data_center": dc.name,
                "changes": applied.iter().map(item).collect::<Vec<_>>(),
                "not_recorded": refused.iter().map(item).collect::<Vec<_>>(),
            }),
            state.clock.now(),
        )
        .await?;
    Ok(applied)
}

/// Starts the collector (a first collection at once, then every `interval_secs`) and the
/// follower of succeeded runs; both stop when `shutdown` turns true. Returns the state with the
/// collector attached, for the pages' "Refresh facts".
pub fn start(
    state: AppState,
    identity: Identity,
    interval_secs: u64,
    stale_secs: u64,
    shutdown: watch::Receiver<bool>,
) -> (AppState, Vec<tokio::task::JoinHandle<()>>) {
    let clock = state.clock.clone();
    let collector = Arc::new(Collector::new(
        state.pool.clone(),
        identity,
        Arc::new(move || clock.now_secs()),
    ));
    let state = state.with_collector(collector.clone(), stale_secs);
    let collecting = collector.spawn(Duration::from_secs(interval_secs), shutdown.clone());
    let following = tokio::spawn(follow(state.clone(), shutdown));
    (state, vec![collecting, following])
}

/// Watches committed events for runs that succeed.
async fn follow(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut events = state.store.subscribe();
    loop {
        let e = tokio::select! {
            r = events.recv() => match r {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "estate follower fell behind the event stream");
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        };
        let succeeded =
            e.kind.is_run() && e.payload.get("to").and_then(|v| v.as_str()) == Some("succeeded");
        let Some(run_id) = e.run_id.filter(|_| succeeded) else {
            continue;
        };
        match follow_run(&state, &run_id).await {
            Ok(c) if !c.is_empty() => {
                tracing::info!(run = %run_id, changes = c.len(), "recorded versions updated from facts")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(run = %run_id, error = %e, "updating recorded versions failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = "name = \"X\"\n\n[[servers]]\nname = \"DC1\"\nconnected_version = \"8.8.6\"\n\n[servers.facts]\nname = \"not a server\"\n\n[[servers]]\nname = \"WEB1\"\nconnected_version = \"8.8.6\"\n";

    #[test]
    fn a_field_is_set_in_the_named_servers_block_only() {
        let t = set_server_field(TOML, "WEB1", "connected_version", "8.11").unwrap();
        assert!(t.contains("name = \"DC1\"\nconnected_version = \"8.8.6\""));
        assert!(t.contains("name = \"WEB1\"\nconnected_version = \"8.11\"\n"));
        let t = set_server_field(TOML, "DC1", "sql_server", "2016").unwrap();
        assert!(t.contains("name = \"DC1\"\nsql_server = \"2016\"\nconnected_version"));
        assert_eq!(
            set_server_field(TOML, "not a server", "windows", "2016"),
            None
        );
        assert_eq!(set_server_field(TOML, "DC9", "windows", "2016"), None);
        // A value from a remote agent cannot break out of its string or its line.
        assert_eq!(
            set_server_field(TOML, "DC1", "windows", "2016\nagent = \"x\""),
            None
        );
        let t = set_server_field(TOML, "DC1", "windows", "2016\" agent = \"x").unwrap();
        let doc: toml::Table = toml::from_str(&t).unwrap();
        let dc1 = &doc["servers"].as_array().unwrap()[0];
        assert_eq!(dc1["windows"].as_str(), Some("2016\" agent = \"x"));
        assert!(dc1.get("agent").is_none());
    }
}
