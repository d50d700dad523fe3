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
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::refuse::unreachable;
use super::stage::{
    mid_window, names_of, project, step, stops, unsupported, StageKind, COMBINATION_RULE,
    REQUIREMENTS, UPGRADE_SQL,
};
use super::{estate_of, short_of, Refusal, ServerState, Target};
use crate::knowledge::inventory::{Inventory, SqlServerVersion, WindowsVersion};
use crate::knowledge::preflight::{preflight, Finding, Outcome, Severity};

/// More stages than any estate the guide covers needs (2008 R2 → 2016 with every SQL Server
/// release in between is six); a bound so the search's cost never depends on luck.
const MAX_STAGES: usize = 8;

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
    // the SQL Server upgrade in the same window; any other stage must leave none.
    unsupported(after).into_iter().next().map(|(name, w, q)| {
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
    let mut same_window = mid_window(&estate);
    let mut total = 0;
    for &kind in kinds {
        if !same_window.is_empty() && !matches!(kind, StageKind::Sql(_)) {
            return Err(Refusal::new(
                COMBINATION_RULE,
                UPGRADE_SQL,
                format!(
                    "{} would run in a Windows / SQL Server combination the guide does not support through {}; the guide has their SQL Server upgraded in the same window as their Windows Server",
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
        same_window = left_unsupported(kind, &after);
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

/// Servers a Windows upgrade left in a combination the guide does not support (to be fixed by
/// the SQL Server upgrade in the same window); none for other stages, which may leave none.
fn left_unsupported(kind: StageKind, after: &[ServerState]) -> Vec<String> {
    if !matches!(kind, StageKind::Windows(_)) {
        return Vec::new();
    }
    names_of(&unsupported(after))
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
        same_window: mid_window(&estate_of(inv)),
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
            let same_window = left_unsupported(kind, &after);
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
