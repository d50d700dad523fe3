//! Campaign planning: the order of the guide's procedures from an estate to a target.
//!
//! The property test draws estates from every topology (the example Data Centers with Connected
//! Backup versions, Windows Server and SQL Server releases drawn from what the guide covers) and
//! targets, and checks each campaign against an oracle written here from the public preflight:
//! every stage's preflight passes on the estate projected by the stages before it, no stage
//! leaves a server in a combination the guide does not support (but for the SQL Server upgrade
//! that follows a Windows upgrade in the same window), the last estate is the target, and no
//! valid order stops the sides fewer times. A refused target is one the oracle cannot reach
//! either, and the refusal names a rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use lockstep::knowledge::campaign::{
    self, estate_of, parse_target, project, short_of, ServerState, StageKind, Target,
};
use lockstep::knowledge::inventory::{Inventory, SqlServerVersion, Version, WindowsVersion};
use lockstep::knowledge::preflight::{compat, preflight, Outcome, Severity};
use proptest::prelude::*;

fn example(topology: &str) -> Inventory {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{topology}.toml"));
    Inventory::load(&path).unwrap()
}

fn target(items: &[&str]) -> Target {
    parse_target(items).unwrap()
}

fn full_target() -> Target {
    target(&["connected=8.11", "windows=2016", "sql=2016"])
}

/// `inv` with every server at these releases (Data Center servers get `sql`).
fn at(inv: &Inventory, version: &str, windows: WindowsVersion, sql: SqlServerVersion) -> Inventory {
    let mut inv = inv.clone();
    for s in &mut inv.servers {
        s.connected_version = version.parse().unwrap();
        s.windows = windows;
        if s.has_database() {
            s.sql_server = Some(sql);
        }
    }
    inv
}

fn runbooks(c: &campaign::Campaign) -> Vec<String> {
    c.stages
        .iter()
        .map(|s| match s.params.get("target") {
            Some(t) => format!("{} {t}", s.runbook),
            None => s.runbook.clone(),
        })
        .collect()
}

#[test]
fn the_issues_team_upgrades_connected_backup_first_because_sql_server_2016_needs_8_8_6() {
    let inv = at(
        &example("mirrored"),
        "8.8.3",
        WindowsVersion::W2012R2,
        SqlServerVersion::S2014Sp2,
    );
    let c = campaign::plan(&inv, &full_target()).unwrap();
    assert_eq!(
        runbooks(&c),
        [
            "upgrade-8.11",
            "upgrade-windows-server 2016",
            "upgrade-sql-server 2016"
        ]
    );
    let first = &c.stages[0].reason;
    assert!(
        first.contains("SQL Server 2016 needs Connected Backup 8.8.6 or later on every server")
            && first.contains("the 8.11 upgrade comes first"),
        "{first}"
    );
    assert!(
        first.contains("\"Upgrade Mirrored Data Center Servers to SQL Server\""),
        "{first}"
    );
    assert!(
        c.stages[2].reason.contains("chapter order"),
        "{}",
        c.stages[2].reason
    );
    assert!(c.stages.iter().all(|s| s.estimate_secs > 0));
    assert_eq!(c.total_stops(), 6, "{}", c.why);
}

#[test]
fn windows_server_2008_r2_goes_through_2012_r2_with_the_sql_server_upgrade_in_the_same_window() {
    let inv = at(
        &example("clustered"),
        "8.8.6.1",
        WindowsVersion::W2008R2,
        SqlServerVersion::S2008R2Sp3,
    );
    let c = campaign::plan(&inv, &full_target()).unwrap();
    assert_eq!(
        runbooks(&c),
        [
            "upgrade-8.11",
            "upgrade-windows-server 2012 R2",
            "upgrade-sql-server 2016",
            "upgrade-windows-server 2016"
        ]
    );
    let windows = &c.stages[1].reason;
    assert!(windows.contains("in the same window"), "{windows}");
    assert!(windows.contains("one release at a time"), "{windows}");
    assert!(
        c.stages[2]
            .reason
            .contains("Windows Server 2016 does not support SQL Server 2008 R2 SP3"),
        "{}",
        c.stages[2].reason
    );
}

#[test]
fn an_estate_at_the_target_needs_no_stage() {
    let inv = at(
        &example("standalone"),
        "8.11",
        WindowsVersion::W2016,
        SqlServerVersion::S2016,
    );
    let c = campaign::plan(&inv, &full_target()).unwrap();
    assert!(c.stages.is_empty());
    assert!(c.why.contains("nothing to do"), "{}", c.why);
}

#[test]
fn unreachable_targets_are_refused_naming_the_rule() {
    let mirrored = example("mirrored");
    let cases: Vec<(Inventory, Target, &str, bool)> = vec![
        (
            at(
                &mirrored,
                "8.7",
                WindowsVersion::W2012R2,
                SqlServerVersion::S2014Sp2,
            ),
            full_target(),
            "direct-upgrade",
            true,
        ),
        (
            at(
                &mirrored,
                "8.8.3",
                WindowsVersion::W2012R2,
                SqlServerVersion::S2014Sp2,
            ),
            target(&["windows=2016"]),
            "windows-target-minimum-version",
            false,
        ),
        (
            mirrored.clone(),
            target(&["windows=2016", "sql=2012 SP4"]),
            "supported-windows-sql-combination",
            false,
        ),
        (
            at(
                &mirrored,
                "8.8.6",
                WindowsVersion::W2016,
                SqlServerVersion::S2016,
            ),
            target(&["windows=2012 R2"]),
            "target-not-older-than-current",
            false,
        ),
        (
            at(
                &mirrored,
                "8.8.6",
                WindowsVersion::W2008R2,
                SqlServerVersion::S2008R2Sp3,
            ),
            target(&["sql=2016"]),
            "sql-upgrade-windows-version",
            false,
        ),
        (
            mirrored.clone(),
            target(&["connected=9.0"]),
            "connected-target-release",
            true,
        ),
    ];
    for (inv, t, rule, outside) in cases {
        let r = campaign::plan(&inv, &t).unwrap_err();
        assert_eq!(r.rule, rule, "{r}");
        assert_eq!(r.outside_guide, outside, "{r}");
        assert!(!r.message.is_empty());
    }
    let r = parse_target(&["windows=2019"]).unwrap_err();
    assert!(
        r.outside_guide && r.rule == "windows-release-covered",
        "{r}"
    );
}

#[test]
fn the_json_has_the_issues_shape() {
    let c = campaign::plan(&example("standalone"), &full_target()).unwrap();
    let v = serde_json::to_value(&c).unwrap();
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&v), ["stages", "target"]);
    assert_eq!(
        keys(&v["stages"][0]),
        [
            "estate_after",
            "estimate_secs",
            "params",
            "reason",
            "runbook",
            "section",
            "servers"
        ]
    );
    assert_eq!(
        keys(&v["stages"][0]["estate_after"][0]),
        ["name", "sql_server", "version", "windows"]
    );
    assert_eq!(v["stages"][1]["params"]["target"], "2016");
    assert_eq!(v["target"]["windows"], "2016");
}

// ------------------------------------------------------------------------------------- oracle

/// Error findings the estate already has before any campaign (the planner may not fix them).
fn baseline(inv: &Inventory) -> BTreeSet<(String, Option<String>)> {
    preflight(inv, None, &BTreeMap::new())
        .into_iter()
        .filter(|f| f.severity == Severity::Error && f.result == Outcome::Fail)
        .map(|f| (f.rule, f.server))
        .collect()
}

fn unsupported(estate: &[ServerState]) -> BTreeSet<String> {
    estate
        .iter()
        .filter(|s| {
            s.sql_server
                .is_some_and(|q| compat::combination(s.windows, q).is_none())
        })
        .map(|s| s.name.clone())
        .collect()
}

/// The estate after `kind`: every server it covers below its release moves to it.
fn apply(inv: &Inventory, estate: &[ServerState], kind: StageKind) -> Vec<ServerState> {
    estate
        .iter()
        .zip(&inv.servers)
        .map(|(s, server)| {
            let mut s = s.clone();
            match kind {
                StageKind::Connected if s.version < Version::new(&[8, 11]) => {
                    s.version = Version::new(&[8, 11])
                }
                StageKind::Windows(w) if s.windows < w => s.windows = w,
                StageKind::Sql(q)
                    if server.has_database() && s.sql_server.is_some_and(|v| v < q) =>
                {
                    s.sql_server = Some(q)
                }
                _ => {}
            }
            s
        })
        .collect()
}

fn sides(inv: &Inventory, before: &[ServerState], after: &[ServerState]) -> usize {
    if inv.topology == lockstep::knowledge::inventory::Topology::Standalone {
        return 1;
    }
    let changed: BTreeSet<_> = inv
        .servers
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| b != a)
        .map(|(s, _)| s.side)
        .collect();
    changed.len()
}

/// Whether `kind` may come next on `estate` (`same_window`: servers the Windows upgrade just
/// before left unsupported); `Ok(next same_window)` if it may, `Err(rule)` if not.
fn may_follow(
    inv: &Inventory,
    base: &BTreeSet<(String, Option<String>)>,
    estate: &[ServerState],
    kind: StageKind,
    same_window: &BTreeSet<String>,
) -> Result<BTreeSet<String>, String> {
    if !same_window.is_empty() && !matches!(kind, StageKind::Sql(_)) {
        return Err("same-window".into());
    }
    let after = apply(inv, estate, kind);
    if after == estate {
        return Err("changes nothing".into());
    }
    let before = project(inv, estate);
    for f in preflight(&before, Some(kind.runbook()), &kind.params()) {
        let error = f.severity == Severity::Error && f.result == Outcome::Fail;
        let known = base.contains(&(f.rule.clone(), f.server.clone()));
        let fixed_now = f.rule == "supported-windows-sql-combination"
            && f.server.as_ref().is_some_and(|s| same_window.contains(s));
        if error && !known && !fixed_now {
            return Err(f.rule);
        }
    }
    let left = unsupported(&after);
    match kind {
        StageKind::Windows(_) => Ok(left),
        _ if left.is_empty() => Ok(BTreeSet::new()),
        _ => Err("supported-windows-sql-combination".into()),
    }
}

const KINDS: [StageKind; 6] = [
    StageKind::Connected,
    StageKind::Windows(WindowsVersion::W2012R2),
    StageKind::Windows(WindowsVersion::W2016),
    StageKind::Sql(SqlServerVersion::S2012Sp4),
    StageKind::Sql(SqlServerVersion::S2014Sp2),
    StageKind::Sql(SqlServerVersion::S2016),
];

/// Does the stage stay within the target (never past it, never on an axis the target leaves)?
fn within(t: &Target, kind: StageKind) -> bool {
    match kind {
        StageKind::Connected => t.connected.is_some(),
        StageKind::Windows(w) => t.windows.is_some_and(|x| w <= x),
        StageKind::Sql(q) => t.sql_server.is_some_and(|x| q <= x),
    }
}

/// The fewest stops of any valid order reaching `t`, by exhaustive search (None: unreachable).
fn fewest_stops(inv: &Inventory, t: &Target) -> Option<usize> {
    let base = baseline(inv);
    let mut best: Option<usize> = None;
    let start = estate_of(inv);
    let mut stack = vec![(start.clone(), unsupported(&start), 0usize, 0usize)];
    while let Some((estate, same_window, stops, depth)) = stack.pop() {
        if best.is_some_and(|b| stops >= b) {
            continue;
        }
        if same_window.is_empty() && short_of(inv, &estate, t).is_empty() {
            best = Some(stops);
            continue;
        }
        if depth == 6 {
            continue;
        }
        for kind in KINDS.into_iter().filter(|k| within(t, *k)) {
            if let Ok(next) = may_follow(inv, &base, &estate, kind, &same_window) {
                let after = apply(inv, &estate, kind);
                let cost = stops + sides(inv, &estate, &after);
                stack.push((after, next, cost, depth + 1));
            }
        }
    }
    best
}

// ------------------------------------------------------------------------------ generation

const SQLS: [SqlServerVersion; 4] = [
    SqlServerVersion::S2008R2Sp3,
    SqlServerVersion::S2012Sp4,
    SqlServerVersion::S2014Sp2,
    SqlServerVersion::S2016,
];

const VERSIONS: [&str; 5] = ["8.8.1", "8.8.3", "8.8.6", "8.8.6.1", "8.11"];

/// One server's draw: a version, a supported combination (Data Center servers) or a Windows
/// release (the others).
#[derive(Debug, Clone)]
struct Draw {
    version: usize,
    combination: usize,
    windows: usize,
}

/// Data Center servers draw a supported combination nine times in ten; otherwise any pair of the
/// releases the guide names (an estate found in the middle of a window, or simply unsupported).
fn draw() -> impl Strategy<Value = Draw> {
    let combination = prop_oneof![9 => 0..compat::SUPPORTED.len(), 1 => 100..112usize];
    (0..VERSIONS.len(), combination, 0..3usize).prop_map(|(version, combination, windows)| Draw {
        version,
        combination,
        windows,
    })
}

fn estate(topology: usize, draws: &[Draw], uniform: bool) -> Inventory {
    let mut inv = example(["standalone", "mirrored", "clustered"][topology]);
    let windows = [
        WindowsVersion::W2008R2,
        WindowsVersion::W2012R2,
        WindowsVersion::W2016,
    ];
    for (i, s) in inv.servers.iter_mut().enumerate() {
        // A uniform estate (every server alike) is the common case; mixed ones test the rest.
        let d = if uniform {
            &draws[0]
        } else {
            &draws[i % draws.len()]
        };
        s.connected_version = VERSIONS[d.version].parse().unwrap();
        if s.has_database() {
            let (w, q) = match compat::SUPPORTED.get(d.combination) {
                Some(c) => (c.windows, c.sql),
                None => (
                    windows[(d.combination - 100) / 4],
                    SQLS[(d.combination - 100) % 4],
                ),
            };
            s.windows = w;
            s.sql_server = Some(q);
        } else {
            s.windows = windows[d.windows];
        }
    }
    inv
}

fn target_draw() -> impl Strategy<Value = Target> {
    (
        prop::bool::weighted(0.8),
        prop::option::weighted(
            0.8,
            prop::sample::select(vec![WindowsVersion::W2012R2, WindowsVersion::W2016]),
        ),
        prop::option::weighted(
            0.8,
            prop::sample::select(vec![
                SqlServerVersion::S2012Sp4,
                SqlServerVersion::S2014Sp2,
                SqlServerVersion::S2016,
            ]),
        ),
    )
        .prop_filter("at least one release", |(c, w, q)| {
            *c || w.is_some() || q.is_some()
        })
        .prop_map(|(c, windows, sql_server)| Target {
            connected: c.then(|| Version::new(&[8, 11])),
            windows,
            sql_server,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn every_planned_campaign_reaches_the_target_by_stages_whose_preflight_passes(
        topology in 0..3usize,
        draws in prop::collection::vec(draw(), 1..5),
        uniform in prop::bool::weighted(0.6),
        t in target_draw(),
    ) {
        let inv = estate(topology, &draws, uniform);
        let oracle = fewest_stops(&inv, &t);
        match campaign::plan(&inv, &t) {
            Ok(c) => {
                let base = baseline(&inv);
                let mut estate = estate_of(&inv);
                let mut same_window = unsupported(&estate);
                let mut stops = 0;
                for s in &c.stages {
                    let next = may_follow(&inv, &base, &estate, s.kind, &same_window);
                    prop_assert!(next.is_ok(), "{} may not come here: {:?}\n{}", s.runbook, next, c.why);
                    same_window = next.unwrap_or_default();
                    let after = apply(&inv, &estate, s.kind);
                    prop_assert_eq!(&s.estate_after, &after, "{} projects another estate", s.runbook);
                    for (b, a) in estate.iter().zip(&after) {
                        prop_assert!(a.version >= b.version && a.windows >= b.windows && a.sql_server >= b.sql_server, "{} goes backwards on {}", s.runbook, a.name);
                    }
                    let changed: Vec<String> = estate.iter().zip(&after).filter(|(b, a)| b != a).map(|(b, _)| b.name.clone()).collect();
                    prop_assert_eq!(&s.servers, &changed);
                    prop_assert!(!s.reason.is_empty() && !s.section.is_empty());
                    stops += sides(&inv, &estate, &after);
                    estate = after;
                }
                prop_assert!(same_window.is_empty(), "ends with the same-window SQL Server upgrade missing");
                prop_assert!(short_of(&inv, &estate, &t).is_empty(), "ends short of the target: {:?}", short_of(&inv, &estate, &t));
                prop_assert_eq!(Some(stops), oracle, "not the fewest stops: {}", c.why);
                prop_assert_eq!(c.total_stops(), stops);
            }
            Err(r) => {
                prop_assert!(oracle.is_none(), "refused ({r}) though an order with {:?} stops exists", oracle);
                prop_assert!(!r.rule.is_empty() && !r.message.is_empty());
                prop_assert!(r.rule.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{}", r.rule);
            }
        }
    }
}
