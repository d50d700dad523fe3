//! The site as found: what the agents reported, how old it is, and the inventory corrected by it.
//!
//! A rule asks [`LiveFacts::seen`] for a server and gets fresh facts (answer pass or fail from
//! them, naming the fact and its age), stale facts (stay "unknown" and say how old they are), or
//! nothing. [`as_found`] copies the inventory with the releases and versions the agents report in
//! place of the ones typed in it — the site as found wins (DESIGN "The site as found") — and says
//! so in an `inventory-matches-site` finding wherever the two disagree.

use lockstep_protocol::{Component, SiteFacts};

use super::{Findings, LiveFacts, Rule, ServerFacts, Severity};
use crate::knowledge::inventory::{Inventory, Server, SqlServerVersion, Version, WindowsVersion};

/// What the agents told us about one server.
pub(super) enum Seen<'a> {
    /// Younger than the staleness limit: rules answer from these.
    Fresh(&'a ServerFacts),
    /// Too old to trust; the age in seconds, for the "unknown" message.
    Stale(i64),
    /// No agent facts for this server at all.
    Absent,
}

impl LiveFacts {
    /// Whether (and how freshly) the agent of `server` reported facts.
    pub(super) fn seen(&self, server: &str) -> Seen<'_> {
        match (self.fresh(server), self.get(server)) {
            (Some(f), _) => Seen::Fresh(f),
            (None, Some(f)) => Seen::Stale(f.age_secs),
            (None, None) => Seen::Absent,
        }
    }

    /// "the agent's facts are 20 min old (older than 180 s, not trusted)" when `server`'s facts
    /// are stale, for the end of an "unknown" message; empty otherwise.
    pub(super) fn stale_note(&self, server: &str) -> String {
        match self.seen(server) {
            Seen::Stale(age) => format!(
                "; {server}'s agent last reported facts {} ago, older than the {} s preflight trusts",
                ago(age),
                self.stale_after_secs
            ),
            _ => String::new(),
        }
    }
}

/// `reported by NWDIR1A's agent 40 s ago`.
pub(super) fn by(server: &str, f: &ServerFacts) -> String {
    format!("reported by {server}'s agent {} ago", ago(f.age_secs))
}

/// An age in words a change manager reads at a glance: `40 s`, `12 min`, `3 h`, `2 days`.
pub(super) fn ago(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

/// A Windows release as an agent spells it ("2016", "Windows Server 2012 R2").
pub(super) fn parse_windows(text: &str) -> Option<WindowsVersion> {
    let t = strip(text, "windows server");
    [
        WindowsVersion::W2008R2,
        WindowsVersion::W2012R2,
        WindowsVersion::W2016,
    ]
    .into_iter()
    .find(|v| v.as_str().eq_ignore_ascii_case(t))
}

/// A SQL Server release as an agent spells it ("2014 SP2", "SQL Server 2016").
pub(super) fn parse_sql(text: &str) -> Option<SqlServerVersion> {
    let t = strip(text, "sql server");
    [
        SqlServerVersion::S2008R2Sp3,
        SqlServerVersion::S2012Sp4,
        SqlServerVersion::S2014Sp2,
        SqlServerVersion::S2016,
    ]
    .into_iter()
    .find(|v| v.as_str().eq_ignore_ascii_case(t))
}

fn strip<'a>(text: &'a str, prefix: &str) -> &'a str {
    let t = text.trim();
    match t.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => t[prefix.len()..].trim(),
        _ => t,
    }
}

/// The Connected Backup version a server runs, from the component records its agent reported:
/// the Data Center's own where it is installed, else the first Web Services application's, else
/// the Management API's. `None` when no component reported a readable version.
pub(super) fn connected_version(f: &SiteFacts) -> Option<(Component, Version)> {
    Component::ALL.into_iter().find_map(|c| {
        f.version_of(c)
            .and_then(|v| v.trim().parse::<Version>().ok())
            .map(|v| (c, v))
    })
}

/// The inventory with every release and version a fresh agent reported in place of the typed
/// one, and a finding per server saying whether the two agree.
pub(super) fn as_found(inv: &Inventory, live: &LiveFacts, out: &mut Findings) -> Inventory {
    let rule = Rule::new("inventory-matches-site", "Upgrade Requirements");
    let mut found = inv.clone();
    for s in &mut found.servers {
        let Some(sf) = live.fresh(&s.name) else {
            continue;
        };
        let typed = s.clone();
        let mut differs = Vec::new();
        let mut kept = Vec::new();
        correct(s, &sf.facts, &mut differs, &mut kept);
        let from = by(&s.name, sf);
        let agreed = differs.is_empty() && kept.is_empty();
        for what in kept {
            out.fail(
                &rule,
                Severity::Warning,
                Some(&typed),
                format!("{what} ({from}); preflight keeps the inventory's value"),
            );
        }
        if agreed {
            out.pass(
                &rule,
                Some(&typed),
                format!(
                    "the inventory matches what was {from}: Connected Backup {}, {}{}",
                    typed.connected_version,
                    typed.windows,
                    typed
                        .sql_server
                        .map(|v| format!(", {v}"))
                        .unwrap_or_default()
                ),
            );
        } else if !differs.is_empty() {
            out.fail(
                &rule,
                Severity::Warning,
                Some(&typed),
                format!(
                    "{} ({from}); preflight uses what the site reports — update the inventory",
                    differs.join("; ")
                ),
            );
        }
    }
    found
}

/// Replaces `s`'s releases and version with what `f` reports; records each difference.
fn correct(s: &mut Server, f: &SiteFacts, differs: &mut Vec<String>, kept: &mut Vec<String>) {
    if let Some(text) = &f.windows {
        match parse_windows(text) {
            Some(w) if w != s.windows => {
                differs.push(format!(
                    "the inventory says {} but the server runs {w}",
                    s.windows
                ));
                s.windows = w;
            }
            Some(_) => {}
            None => kept.push(format!(
                "the server runs Windows \"{text}\", a release the guide does not name"
            )),
        }
    }
    match (&f.sql_server, s.sql_server) {
        (Some(text), typed) => match parse_sql(text) {
            Some(v) if Some(v) != typed => {
                differs.push(match typed {
                    Some(t) => format!("the inventory says {t} but the server runs {v}"),
                    None => format!("the inventory lists no SQL Server but the server runs {v}"),
                });
                s.sql_server = Some(v);
            }
            Some(_) => {}
            None => kept.push(format!(
                "the server runs SQL Server \"{text}\", a release the guide does not name"
            )),
        },
        // An agent that could not read the SQL Server release says so in `errors`; only a clean
        // report without SQL Server contradicts an inventory that lists one.
        (None, Some(t)) if !f.errors.iter().any(|e| e.starts_with("sql_server")) => {
            kept.push(format!(
                "the inventory says {t} but the agent found no SQL Server"
            ));
        }
        (None, _) => {}
    }
    match connected_version(f) {
        Some((c, v)) if v != s.connected_version => {
            differs.push(format!(
                "the inventory says Connected Backup {} but the {} record says {v}",
                s.connected_version,
                c.label()
            ));
            s.connected_version = v;
        }
        Some(_) => {}
        None => {
            if let Some(text) = f.components.first().map(|c| c.version.as_str()) {
                kept.push(format!(
                    "the Connected Backup version \"{text}\" is not a version Lockstep reads"
                ));
            }
        }
    }
}
