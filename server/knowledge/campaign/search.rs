//! The search for an order: which stage may come next on a projected estate, and the cheapest
//! sequence of them that reaches the target.
//!
//! The stages are the guide's procedures at each release it covers: the 8.11 upgrade, Windows
//! Server 2012 R2 and 2016, SQL Server 2012 SP4, 2014 SP2 and 2016 — each over every server still
//! below that release, as the runbooks expand. A stage may come next when it changes something,
//! does not overshoot the target, and its preflight (the real one, on the projected estate) has no
//! error that the estate did not already have before the campaign. The cheapest sequence is
//! found by uniform-cost search: cost is the stops of the Data Center's sides, then the number of
//! stages, then the guide's chapter order (Connected Backup, Windows Server, SQL Server), so the
//! answer is deterministic. The estates reachable are few (each stage moves every server it
//! touches to one release), so the search sees each at most once.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use super::{estate_of, short_of, Refusal, ServerState, Target};
use crate::knowledge::inventory::{
    Inventory, Server, SqlServerVersion, Topology, Version, WindowsVersion,
};
use crate::knowledge::preflight::{compat, preflight, sql_section, Finding, Outcome, Severity};

/// More stages than any estate the guide covers needs (2008 R2 → 2016 with every SQL Server
/// release in between is six); a bound so the search's cost never depends on luck.
const MAX_STAGES: usize = 8;

pub(super) const CONNECTED: &str = "Upgrade Connected Backup";
pub(super) const WINDOWS: &str = "Upgrade a Data Center Server to Windows Server";
pub(super) const REQUIREMENTS: &str = "Upgrade Requirements";
pub(super) const UPGRADE_SQL: &str = "Upgrade SQL Server";
const COMBINATION_RULE: &str = "supported-windows-sql-combination";

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

/// The errors preflight finds for `kind` on `before` (an estate the stages before it projected).
/// `same_window` are servers the Windows upgrade just before left with an unsupported SQL Server
/// combination: the guide says to upgrade their SQL Server "in the same window", which is this
/// stage, so that finding about them does not block it.
pub fn stage_blockers(before: &Inventory, kind: StageKind, same_window: &[String]) -> Vec<Finding> {
    preflight(before, Some(kind.runbook()), &kind.params())
        .into_iter()
        .filter(|f| f.severity == Severity::Error && f.result == Outcome::Fail)
        .filter(|f| {
            !(f.rule == COMBINATION_RULE
                && matches!(kind, StageKind::Sql(_))
                && f.server.as_ref().is_some_and(|s| same_window.contains(s)))
        })
        .collect()
}

/// Servers of `estate` in a Windows / SQL Server combination the guide does not support.
fn unsupported(estate: &[ServerState]) -> BTreeSet<(String, WindowsVersion, SqlServerVersion)> {
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

/// Refusals a target earns before any search: releases the guide has no procedure towards.
pub(super) fn check_target(inv: &Inventory, target: &Target) -> Result<(), Refusal> {
    if target.connected.is_none() && target.windows.is_none() && target.sql_server.is_none() {
        return Err(Refusal::new(
            "campaign-target",
            "",
            "no target given; name at least one of connected=, windows= or sql=".into(),
        ));
    }
    let release = compat::target_release();
    if let Some(v) = target.connected.as_ref().filter(|v| **v != release) {
        return Err(Refusal::new(
            "connected-target-release",
            CONNECTED,
            format!(
                "connected={v}: the guide describes the upgrade to Connected Backup {release} only"
            ),
        )
        .outside());
    }
    newer_than_target(inv, target)?;
    if let (Some(w), Some(q)) = (target.windows, target.sql_server) {
        if compat::combination(w, q).is_none() {
            let with: Vec<String> = compat::sql_for(w).iter().map(|v| v.to_string()).collect();
            return Err(Refusal::new(
                COMBINATION_RULE,
                UPGRADE_SQL,
                format!(
                    "Connected Backup does not support {w} with {q}; with {w} it supports {}",
                    if with.is_empty() {
                        "no SQL Server release".into()
                    } else {
                        with.join(", ")
                    }
                ),
            ));
        }
    }
    let estate = estate_of(inv);
    if short_of(inv, &estate, target).is_empty() {
        return Ok(());
    }
    let from = compat::direct_upgrade_from();
    let behind: Vec<String> = inv
        .servers
        .iter()
        .filter(|s| s.connected_version < from)
        .map(|s| format!("{} runs {}", s.name, s.connected_version))
        .collect();
    if !behind.is_empty() {
        let (rule, section) = match target.connected {
            Some(_) => ("direct-upgrade", CONNECTED),
            None => ("connected-version-synchronized", REQUIREMENTS),
        };
        return Err(Refusal::new(
            rule,
            section,
            format!(
                "{}; 8.11 upgrades directly only from {from} or later, and every Windows or SQL Server upgrade needs {from} on every server. The way forward is an intermediate Connected Backup release ({from} or later) installed by its own documentation, which this guide does not describe; plan again once every server runs {from} or later",
                behind.join(", ")
            ),
        )
        .outside());
    }
    Ok(())
}

/// The guide has no downgrades: a server already past the target cannot reach it.
fn newer_than_target(inv: &Inventory, target: &Target) -> Result<(), Refusal> {
    let rule = "target-not-older-than-current";
    for s in &inv.servers {
        if let Some(v) = target
            .connected
            .as_ref()
            .filter(|v| s.connected_version > **v)
        {
            return Err(Refusal::new(rule, CONNECTED, format!("{} runs Connected Backup {}, newer than the target {v}; the guide describes no downgrade", s.name, s.connected_version)));
        }
        if let Some(w) = target.windows.filter(|w| s.windows > *w) {
            return Err(Refusal::new(
                rule,
                WINDOWS,
                format!(
                    "{} runs {}, newer than the target {w}; the guide describes no downgrade",
                    s.name, s.windows
                ),
            ));
        }
        if let (Some(q), Some(now), true) = (target.sql_server, s.sql_server, s.has_database()) {
            if now > q {
                return Err(Refusal::new(rule, UPGRADE_SQL, format!("{} runs {now}, newer than the target {q}; the guide describes no downgrade", s.name)));
            }
        }
    }
    Ok(())
}

/// The stages that may be tried: every release up to the target on each axis the target names.
fn candidates(target: &Target) -> Vec<StageKind> {
    let mut out = Vec::new();
    if target.connected.is_some() {
        out.push(StageKind::Connected);
    }
    if let Some(w) = target.windows {
        out.extend(
            [WindowsVersion::W2012R2, WindowsVersion::W2016]
                .into_iter()
                .filter(|v| *v <= w)
                .map(StageKind::Windows),
        );
    }
    if let Some(q) = target.sql_server {
        out.extend(
            [
                SqlServerVersion::S2012Sp4,
                SqlServerVersion::S2014Sp2,
                SqlServerVersion::S2016,
            ]
            .into_iter()
            .filter(|v| *v <= q)
            .map(StageKind::Sql),
        );
    }
    out
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

/// A sequence found so far, ordered by what it costs.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Path {
    stops: usize,
    stages: Vec<StageKind>,
    estate: Vec<ServerState>,
    /// Servers the last stage (a Windows upgrade) left in an unsupported combination.
    same_window: Vec<String>,
}

/// Why a stage may not come next on `before`, if it may not.
fn refused(
    inv: &Inventory,
    before: &[ServerState],
    after: &[ServerState],
    kind: StageKind,
    same_window: &[String],
    baseline: &BTreeSet<(String, Option<String>)>,
) -> Option<Refusal> {
    let projected = project(inv, before);
    let blocking = stage_blockers(&projected, kind, same_window)
        .into_iter()
        .find(|f| !baseline.contains(&(f.rule.clone(), f.server.clone())));
    if let Some(f) = blocking {
        return Some(Refusal::new(&f.rule, &f.section, f.message));
    }
    if matches!(kind, StageKind::Windows(_)) {
        return None;
    }
    // A combination the guide does not support may only follow a Windows upgrade, and only until
    // the SQL Server upgrade in the same window; any other stage must leave none it did not find.
    let found = unsupported(&estate_of(inv));
    let left = unsupported(after);
    left.difference(&found).next().map(|(name, w, q)| {
        Refusal::new(
            COMBINATION_RULE,
            UPGRADE_SQL,
            format!(
                "after {} {name} would run {w} with {q}, which Connected Backup does not support",
                kind.label()
            ),
        )
    })
}

/// The errors the estate has before the campaign, by rule and server: a campaign neither causes
/// nor can fix them, so they do not block its stages (preflight still shows them to each run).
fn baseline(inv: &Inventory) -> BTreeSet<(String, Option<String>)> {
    preflight(inv, None, &BTreeMap::new())
        .into_iter()
        .filter(|f| f.severity == Severity::Error && f.result == Outcome::Fail)
        .map(|f| (f.rule, f.server))
        .collect()
}

/// Checks `kinds` as an order by the same rules the search uses, and returns its stops; a stage
/// that changes nothing, may not come where it is, or an end short of the target is refused.
pub(super) fn replay(
    inv: &Inventory,
    target: &Target,
    kinds: &[StageKind],
) -> Result<usize, Refusal> {
    let baseline = baseline(inv);
    let mut estate = estate_of(inv);
    let mut same_window: Vec<String> = Vec::new();
    let mut total = 0;
    for &kind in kinds {
        if !same_window.is_empty() && !matches!(kind, StageKind::Sql(_)) {
            return Err(Refusal::new(
                COMBINATION_RULE,
                UPGRADE_SQL,
                format!(
                    "{} would run in an unsupported Windows / SQL Server combination until {}",
                    same_window.join(", "),
                    kind.label()
                ),
            ));
        }
        let Some((after, changed)) = step(inv, &estate, kind) else {
            return Err(Refusal::new(
                "campaign-reachable",
                kind.section(inv.topology),
                format!("{} would change nothing", kind.label()),
            ));
        };
        if let Some(r) = refused(inv, &estate, &after, kind, &same_window, &baseline) {
            return Err(r);
        }
        same_window = left_unsupported(kind, &estate, &after);
        total += stops(inv, &changed).len();
        estate = after;
    }
    let short = short_of(inv, &estate, target);
    if !same_window.is_empty() || !short.is_empty() {
        return Err(Refusal::new(
            "campaign-reachable",
            REQUIREMENTS,
            format!("the order ends short of the target ({})", short.join("; ")),
        ));
    }
    Ok(total)
}

/// Servers a Windows upgrade left in a combination they were not in before (to be fixed by the
/// SQL Server upgrade in the same window); none for other stages.
fn left_unsupported(kind: StageKind, before: &[ServerState], after: &[ServerState]) -> Vec<String> {
    if !matches!(kind, StageKind::Windows(_)) {
        return Vec::new();
    }
    let found = unsupported(before);
    unsupported(after)
        .difference(&found)
        .map(|(n, _, _)| n.clone())
        .collect()
}

/// The cheapest order of stages from `inv` to `target` (empty when it is there already).
pub(super) fn best_order(inv: &Inventory, target: &Target) -> Result<Vec<StageKind>, Refusal> {
    let baseline = baseline(inv);
    let kinds = candidates(target);
    let mut heap = BinaryHeap::new();
    heap.push(Reverse(Path {
        stops: 0,
        stages: Vec::new(),
        estate: estate_of(inv),
        same_window: Vec::new(),
    }));
    let mut seen = BTreeSet::new();
    let mut first_refusal: Option<Refusal> = None;
    while let Some(Reverse(path)) = heap.pop() {
        if !seen.insert((path.estate.clone(), path.same_window.clone())) {
            continue;
        }
        if path.same_window.is_empty() && short_of(inv, &path.estate, target).is_empty() {
            return Ok(path.stages);
        }
        if path.stages.len() >= MAX_STAGES {
            continue;
        }
        for &kind in &kinds {
            if !path.same_window.is_empty() && !matches!(kind, StageKind::Sql(_)) {
                continue;
            }
            let Some((after, changed)) = step(inv, &path.estate, kind) else {
                continue;
            };
            if let Some(r) = refused(
                inv,
                &path.estate,
                &after,
                kind,
                &path.same_window,
                &baseline,
            ) {
                first_refusal.get_or_insert(r);
                continue;
            }
            let same_window = left_unsupported(kind, &path.estate, &after);
            let mut stages = path.stages.clone();
            stages.push(kind);
            heap.push(Reverse(Path {
                stops: path.stops + stops(inv, &changed).len(),
                stages,
                estate: after,
                same_window,
            }));
        }
    }
    Err(unreachable(inv, target, first_refusal))
}

/// The refusal when no order reaches the target: the first rule that stopped a stage, with the
/// way forward where the target left a release unnamed.
fn unreachable(inv: &Inventory, target: &Target, first: Option<Refusal>) -> Refusal {
    let short = short_of(inv, &estate_of(inv), target);
    let Some(mut r) = first else {
        return Refusal::new(
            "campaign-reachable",
            REQUIREMENTS,
            format!(
                "no procedure of the guide moves the estate towards the target ({})",
                short.join("; ")
            ),
        );
    };
    r.message = format!(
        "no order of the guide's procedures reaches the target: {}",
        r.message
    );
    if r.rule.ends_with("minimum-version") && target.connected.is_none() {
        r.message
            .push_str("; add --target connected=8.11 so that the 8.11 upgrade can come first");
    }
    if r.rule == "sql-upgrade-windows-version" && target.windows.is_none() {
        r.message.push_str("; add --target windows=2012 R2 (or 2016) so that the Windows Server upgrade can come first");
    }
    r
}
