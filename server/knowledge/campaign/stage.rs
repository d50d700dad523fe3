//! The stages a campaign is made of: the guide's procedures at each release it covers, what each
//! does to an estate (every server it covers below its release moves to it, as the runbooks
//! expand), which sides it stops, and the estate projected into an inventory for preflight and
//! plan expansion to read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::ServerState;
use crate::knowledge::inventory::{
    Inventory, Server, SqlServerVersion, Topology, Version, WindowsVersion,
};
use crate::knowledge::preflight::{compat, sql_section};

pub(super) const CONNECTED: &str = "Upgrade Connected Backup";
pub(super) const WINDOWS: &str = "Upgrade a Data Center Server to Windows Server";
pub(super) const REQUIREMENTS: &str = "Upgrade Requirements";
pub(super) const UPGRADE_SQL: &str = "Upgrade SQL Server";
pub(super) const COMBINATION_RULE: &str = "supported-windows-sql-combination";

/// What a stage does. Ordered as the guide's chapters: Connected Backup, then Windows Server,
/// then SQL Server, each by release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StageKind {
    /// `upgrade-8.11` (chapter 1).
    Connected,
    /// `upgrade-windows-server` with this target (chapter 3).
    Windows(WindowsVersion),
    /// `upgrade-sql-server` with this target (chapter 3).
    Sql(SqlServerVersion),
}

impl StageKind {
    pub fn runbook(self) -> &'static str {
        match self {
            StageKind::Connected => "upgrade-8.11",
            StageKind::Windows(_) => "upgrade-windows-server",
            StageKind::Sql(_) => "upgrade-sql-server",
        }
    }

    /// The runbook parameters: the `target` release.
    pub fn params(self) -> BTreeMap<String, String> {
        let target = match self {
            StageKind::Connected => return BTreeMap::new(),
            StageKind::Windows(w) => w.as_str(),
            StageKind::Sql(q) => q.as_str(),
        };
        BTreeMap::from([("target".to_owned(), target.to_owned())])
    }

    /// The guide's section of the procedure itself.
    pub fn section(self, topology: Topology) -> &'static str {
        match self {
            StageKind::Connected => CONNECTED,
            StageKind::Windows(_) => WINDOWS,
            StageKind::Sql(_) => sql_section(topology),
        }
    }

    /// In words: `the 8.11 upgrade`, `the Windows Server 2016 upgrade`.
    pub fn label(self) -> String {
        match self {
            StageKind::Connected => "the 8.11 upgrade".into(),
            StageKind::Windows(w) => format!("the {w} upgrade"),
            StageKind::Sql(q) => format!("the {q} upgrade"),
        }
    }

    /// `server`'s releases after this stage, or `None` when the stage leaves it as it is.
    pub fn apply(self, server: &Server, now: &ServerState) -> Option<ServerState> {
        let mut after = now.clone();
        match self {
            StageKind::Connected if now.version < compat::target_release() => {
                after.version = compat::target_release();
            }
            StageKind::Windows(w) if now.windows < w => after.windows = w,
            StageKind::Sql(q) if server.has_database() && now.sql_server.is_some_and(|v| v < q) => {
                after.sql_server = Some(q);
            }
            _ => return None,
        }
        Some(after)
    }

    /// The Connected Backup version every server needs before this stage (what an earlier
    /// 8.11 upgrade may be there to provide).
    pub fn needs_version(self) -> Option<Version> {
        match self {
            StageKind::Connected => Some(compat::direct_upgrade_from()),
            StageKind::Windows(w) => compat::minimum_for_windows(w),
            StageKind::Sql(q) => compat::minimum_for_sql(q),
        }
    }
}

/// The inventory with every server's releases replaced by `estate`'s (matched by name): what
/// preflight and plan expansion see after the stages that produced `estate`.
pub fn project(inventory: &Inventory, estate: &[ServerState]) -> Inventory {
    let by_name: HashMap<&str, &ServerState> =
        estate.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut inv = inventory.clone();
    for s in &mut inv.servers {
        if let Some(st) = by_name.get(s.name.as_str()) {
            s.connected_version = st.version.clone();
            s.windows = st.windows;
            s.sql_server = st.sql_server;
        }
    }
    inv
}

/// Servers of `estate` in a Windows / SQL Server combination the guide does not support.
pub(super) fn unsupported(
    estate: &[ServerState],
) -> BTreeSet<(String, WindowsVersion, SqlServerVersion)> {
    estate
        .iter()
        .filter_map(|s| {
            let q = s.sql_server?;
            compat::combination(s.windows, q)
                .is_none()
                .then(|| (s.name.clone(), s.windows, q))
        })
        .collect()
}

/// What a stage does to an estate: the estate after it and the servers it changes (in
/// inventory order), or `None` when it changes nothing.
pub(super) fn step(
    inv: &Inventory,
    estate: &[ServerState],
    kind: StageKind,
) -> Option<(Vec<ServerState>, Vec<usize>)> {
    let mut after = estate.to_vec();
    let mut changed = Vec::new();
    for (i, (server, now)) in inv.servers.iter().zip(estate).enumerate() {
        if let Some(s) = kind.apply(server, now) {
            if let Some(slot) = after.get_mut(i) {
                *slot = s;
            }
            changed.push(i);
        }
    }
    (!changed.is_empty()).then_some((after, changed))
}

/// The sides a stage over `changed` takes out of service, primary first.
pub(super) fn stops(inv: &Inventory, changed: &[usize]) -> Vec<String> {
    if inv.topology == Topology::Standalone {
        return vec!["data center".into()];
    }
    let sides: BTreeSet<&str> = changed
        .iter()
        .filter_map(|i| inv.servers.get(*i))
        .map(|s| s.side.map(|x| x.as_str()).unwrap_or("primary"))
        .collect();
    sides.into_iter().map(String::from).collect()
}

/// An estate found in an unsupported combination is in the middle of a window: a Windows upgrade
/// ran and the SQL Server upgrade the guide has follow it in the same window has not. So the
/// campaign starts with that SQL Server upgrade (a re-plan from a rehearsal or a site as found
/// after a Windows stage must not move on to something else first).
pub(super) fn mid_window(estate: &[ServerState]) -> Vec<String> {
    names_of(&unsupported(estate))
}

pub(super) fn names_of(set: &BTreeSet<(String, WindowsVersion, SqlServerVersion)>) -> Vec<String> {
    set.iter().map(|(n, _, _)| n.clone()).collect()
}
