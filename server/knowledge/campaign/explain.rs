//! From an order of stages to the campaign people read: each stage's servers, projected estate,
//! estimate (its runbook expanded over the estate the stages before it leave) and the reason it
//! comes where it is, in plain words with the guide's sections.
//!
//! A reason names the rule that forces the order ("SQL Server 2016 needs Connected Backup 8.8.6
//! or later on every server: the 8.11 upgrade comes first"). Where no rule orders two neighbouring
//! stages, the swapped order is tried against the same rules: if it is as good, the reason says
//! the guide's chapter order decided; if it is not, the reason quotes the rule the swap broke.

use std::collections::BTreeSet;

use super::search::replay;
use super::stage::{project, step, stops, StageKind, CONNECTED, UPGRADE_SQL, WINDOWS};
use super::{estate_of, Campaign, Refusal, ServerState, Stage, Target};
use crate::knowledge::expand::expand;
use crate::knowledge::inventory::{Inventory, Topology, WindowsVersion};
use crate::knowledge::preflight::compat;
use crate::knowledge::runbook::Catalog;

/// Where the guide says the primary side goes first, per procedure.
const SECONDARY_811: &str = "Upgrade the Data Center on Secondary Servers";

/// One stage while it is being explained.
struct Draft {
    kind: StageKind,
    before: Vec<ServerState>,
    after: Vec<ServerState>,
    changed: Vec<usize>,
    /// Sentences, each with the section it cites.
    why: Vec<(String, &'static str)>,
}

/// Builds the campaign for `kinds`, an order [`super::search::best_order`] found.
pub(super) fn campaign(
    inv: &Inventory,
    target: &Target,
    kinds: &[StageKind],
) -> Result<Campaign, Refusal> {
    let mut drafts = Vec::new();
    let mut estate = estate_of(inv);
    for &kind in kinds {
        let Some((after, changed)) = step(inv, &estate, kind) else {
            continue;
        };
        drafts.push(Draft {
            kind,
            before: estate.clone(),
            after: after.clone(),
            changed,
            why: Vec::new(),
        });
        estate = after;
    }
    let ordered = dependencies(inv, &mut drafts);
    neighbours(inv, target, &ordered, &mut drafts);
    let catalog = Catalog::builtin().map_err(|e| {
        let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        Refusal::new("runbook-catalog", "", text.join("; "))
    })?;
    let mut stages = Vec::new();
    for d in drafts {
        stages.push(stage(inv, &catalog, d)?);
    }
    let why = overall(&stages);
    Ok(Campaign {
        target: target.clone(),
        stages,
        why,
    })
}

/// The finished stage: its estimate from the expanded runbook, its reason and section.
fn stage(inv: &Inventory, catalog: &Catalog, d: Draft) -> Result<Stage, Refusal> {
    let runbook = catalog.get(d.kind.runbook()).ok_or_else(|| {
        Refusal::new(
            "runbook-catalog",
            "",
            format!("the built-in runbook `{}` is missing", d.kind.runbook()),
        )
    })?;
    let before = project(inv, &d.before);
    let plan = expand(runbook, &before, &d.kind.params()).map_err(|e| {
        Refusal::new(
            "runbook-expansion",
            d.kind.section(inv.topology),
            format!(
                "{} cannot be planned on the projected estate: {e}",
                d.kind.label()
            ),
        )
    })?;
    let stops = stops(inv, &d.changed);
    let servers: Vec<String> = d
        .changed
        .iter()
        .filter_map(|i| inv.servers.get(*i))
        .map(|s| s.name.clone())
        .collect();
    let mut sentences = vec![purpose(d.kind, &servers)];
    sentences.extend(d.why.iter().map(|(s, _)| s.clone()));
    sentences.push(downtime(inv.topology, d.kind, &stops));
    let section = d
        .why
        .first()
        .map(|(_, s)| *s)
        .unwrap_or_else(|| d.kind.section(inv.topology));
    Ok(Stage {
        runbook: d.kind.runbook().to_owned(),
        params: d.kind.params(),
        servers,
        reason: sentences.join(" "),
        section: section.to_owned(),
        estimate_secs: plan.critical_path_secs(),
        estate_after: d.after,
        kind: d.kind,
        stops,
    })
}

/// What the stage does.
fn purpose(kind: StageKind, servers: &[String]) -> String {
    let on = few(servers);
    match kind {
        StageKind::Connected => format!("Upgrades Connected Backup to 8.11 on {on}."),
        StageKind::Windows(w) => format!(
            "Upgrades Windows Server in place to {} on {on}, with the Post2012UpgradeFix restoring the security settings the upgrade changes.",
            w.as_str()
        ),
        StageKind::Sql(q) => format!("Upgrades SQL Server to {} on {on}.", q.as_str()),
    }
}

/// Which sides stop, primary first, and where the guide says so.
fn downtime(topology: Topology, kind: StageKind, stops: &[String]) -> String {
    if topology == Topology::Standalone {
        return "The Data Center is out of service while it runs.".into();
    }
    let section = match kind {
        StageKind::Connected => SECONDARY_811,
        _ => kind.section(topology),
    };
    match stops {
        [one] => format!("It stops the {one} side only."),
        _ => format!(
            "It stops the primary side, then the secondary side, once each (primary first: \"{section}\")."
        ),
    }
}

/// Sentences for the rules that put an earlier stage before a later one, attached to the earlier;
/// returns the pairs (earlier, later) a rule orders.
fn dependencies(inv: &Inventory, drafts: &mut [Draft]) -> BTreeSet<(usize, usize)> {
    let mut ordered = BTreeSet::new();
    let start = estate_of(inv);
    let lowest = start.iter().map(|s| s.version.clone()).min();
    let mut notes: Vec<Vec<(String, &'static str)>> = drafts.iter().map(|_| Vec::new()).collect();
    for (i, a) in drafts.iter().enumerate() {
        for (j, b) in drafts.iter().enumerate().skip(i + 1) {
            let note = match (a.kind, b.kind) {
                (StageKind::Connected, later) => later
                    .needs_version()
                    .filter(|v| lowest.as_ref().is_some_and(|low| low < v))
                    .map(|v| {
                        let (what, section) = match later {
                            StageKind::Windows(w) => (w.to_string(), WINDOWS),
                            StageKind::Sql(q) => (q.to_string(), later.section(inv.topology)),
                            StageKind::Connected => ("8.11".into(), CONNECTED),
                        };
                        (format!("{what} needs Connected Backup {v} or later on every server (\"{section}\"): the 8.11 upgrade comes first."), section)
                    }),
                (StageKind::Windows(w1), StageKind::Windows(w2)) if w1 < w2 => Some((
                    format!("Windows Server upgrades in place one release at a time (2008 R2, then 2012 R2, then 2016: \"{WINDOWS}\"): {} comes before {}.", w1.as_str(), w2.as_str()),
                    WINDOWS,
                )),
                (StageKind::Windows(_), StageKind::Sql(_)) => {
                    windows_before_sql(inv, a, b, j == i + 1)
                }
                (StageKind::Sql(q), StageKind::Windows(w)) => {
                    let blocked: Vec<String> = a
                        .changed
                        .iter()
                        .filter_map(|k| a.before.get(*k))
                        .filter_map(|s| s.sql_server)
                        .filter(|s0| compat::combination(w, *s0).is_none())
                        .map(|s0| s0.to_string())
                        .collect();
                    blocked.first().map(|s0| {
                        (format!("{w} does not support {s0} (\"{UPGRADE_SQL}\"): the SQL Server upgrade to {} comes first.", q.as_str()), UPGRADE_SQL)
                    })
                }
                _ => None,
            };
            if let (Some(n), Some(slot)) = (note, notes.get_mut(i)) {
                ordered.insert((i, j));
                if !slot.contains(&n) {
                    slot.push(n);
                }
            }
        }
    }
    for (d, n) in drafts.iter_mut().zip(notes) {
        d.why.extend(n);
    }
    ordered
}

/// Why a Windows upgrade comes before a SQL Server upgrade: the SQL Server upgrade needs Windows
/// Server 2012 R2 or later, and a Windows upgrade that leaves an unsupported combination is
/// followed by the SQL Server upgrade in the same window.
fn windows_before_sql(
    inv: &Inventory,
    a: &Draft,
    b: &Draft,
    next: bool,
) -> Option<(String, &'static str)> {
    let section = b.kind.section(inv.topology);
    let on_2008 = b
        .changed
        .iter()
        .filter_map(|k| a.before.get(*k))
        .any(|s| s.windows == WindowsVersion::W2008R2);
    if !on_2008 {
        return None;
    }
    let mut text = format!("A SQL Server upgrade needs the server on Windows Server 2012 R2 or 2016 (\"{section}\"): this Windows upgrade comes first.");
    let left: Vec<String> = a
        .after
        .iter()
        .filter(|s| {
            s.sql_server
                .is_some_and(|q| compat::combination(s.windows, q).is_none())
        })
        .map(|s| s.name.clone())
        .collect();
    if next && !left.is_empty() {
        text.push_str(&format!(" It leaves {} in a Windows / SQL Server combination Connected Backup does not support (\"{UPGRADE_SQL}\"), so {} follows in the same window.", few(&left), b.kind.label()));
    }
    Some((text, section))
}

/// Neighbours no rule ordered: the swap is tried; as good means the chapter order decided.
fn neighbours(
    inv: &Inventory,
    target: &Target,
    ordered: &BTreeSet<(usize, usize)>,
    drafts: &mut [Draft],
) {
    let kinds: Vec<StageKind> = drafts.iter().map(|d| d.kind).collect();
    let Ok(chosen) = replay(inv, target, &kinds) else {
        return;
    };
    for i in 1..kinds.len() {
        if ordered.contains(&(i - 1, i)) {
            continue;
        }
        let (Some(&a), Some(&b)) = (kinds.get(i - 1), kinds.get(i)) else {
            continue;
        };
        let mut swapped = kinds.clone();
        swapped.swap(i - 1, i);
        let note = match replay(inv, target, &swapped) {
            Ok(cost) if cost <= chosen => format!(
                "No rule of the guide orders it against {}: the other order stops each side as often, and Lockstep keeps the guide's chapter order (Connected Backup, then Windows Server, then SQL Server).",
                a.label()
            ),
            Ok(_) => format!("Before {} it would stop the sides more often.", a.label()),
            Err(r) => format!(
                "It cannot come before {}: {}.",
                a.label(),
                r.message.trim_end_matches('.')
            ),
        };
        if let Some(d) = drafts.get_mut(i) {
            d.why.push((note, b.section(inv.topology)));
        }
    }
}

/// Why this order, for the whole campaign.
fn overall(stages: &[Stage]) -> String {
    if stages.is_empty() {
        return "The estate is at the target already: there is nothing to do.".into();
    }
    let total: usize = stages.iter().map(|s| s.stops.len()).sum();
    let per: Vec<String> = stages
        .iter()
        .map(|s| format!("{} {}", s.runbook, s.stops.join(" and ")))
        .collect();
    format!(
        "{} stage{}, stopping the Data Center's sides {total} time{} in all ({}): the fewest of any order the guide's rules allow.",
        stages.len(),
        if stages.len() == 1 { "" } else { "s" },
        if total == 1 { "" } else { "s" },
        per.join("; ")
    )
}

/// Up to six names, then how many more: `DC1, DC2 and 3 more servers`.
fn few(names: &[String]) -> String {
    const SHOWN: usize = 6;
    match names {
        [] => "no server".into(),
        [one] => one.clone(),
        _ if names.len() <= SHOWN => {
            let (last, init) = names
                .split_last()
                .map(|(l, i)| (l.clone(), i.join(", ")))
                .unwrap_or_default();
            format!("{init} and {last}")
        }
        _ => format!(
            "{} and {} more servers",
            names
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            names.len() - SHOWN
        ),
    }
}
