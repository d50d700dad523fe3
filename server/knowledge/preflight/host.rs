//! Rules about each server's host — Registry free space per volume, the SQL Server and SQL
//! Server Agent accounts, the SCHANNEL protocols — answered from fresh agent facts first, then
//! from the inventory's `[servers.facts]`, and "unknown" (saying how old any facts are) only when
//! neither knows.

use std::collections::{BTreeMap, BTreeSet};

use lockstep_protocol::facts::DatabaseFileKind;
use lockstep_protocol::SiteFacts;

use super::live::{by, Seen};
use super::{names, Findings, LiveFacts, Rule, Severity};
use crate::knowledge::inventory::{Inventory, Server, ServerRole, WindowsVersion};

const GUIDELINES: &str = "Review Upgrade Guidelines and Recommendations";
const TLS: &str = "Enable the TLS Protocol";

/// "Free disk space in the amount of 10% of the current size of the Registry transaction log"
/// and of the database file. Log and data files may live on different volumes, so the agent's
/// facts are checked volume by volume; the inventory's single `free_disk_mb` is the fallback.
pub fn registry_free_space(inv: &Inventory, live: &LiveFacts, out: &mut Findings) {
    let rule = Rule::new("registry-free-space", GUIDELINES);
    for s in inv.with_role(ServerRole::Registry) {
        let mut note = live.stale_note(&s.name);
        if let Seen::Fresh(sf) = live.seen(&s.name) {
            match per_volume(&sf.facts) {
                Ok((true, detail)) => {
                    out.pass(
                        &rule,
                        Some(s),
                        format!("free space {}: {detail}", by(&s.name, sf)),
                    );
                    continue;
                }
                Ok((false, detail)) => {
                    out.fail(
                        &rule,
                        Severity::Error,
                        Some(s),
                        format!(
                            "free space {}: {detail}: do not upgrade without that free space",
                            by(&s.name, sf)
                        ),
                    );
                    continue;
                }
                Err(missing) => note = format!("; {missing} ({})", by(&s.name, sf)),
            }
        }
        let f = &s.facts;
        let (Some(free), Some(mdf), Some(ldf)) =
            (f.free_disk_mb, f.registry_mdf_mb, f.registry_ldf_mb)
        else {
            out.unknown(
                &rule,
                Some(s),
                format!("free space on {} needs facts free_disk_mb, registry_mdf_mb and registry_ldf_mb (10% of each file must be free){note}", s.name),
            );
            continue;
        };
        // 10% of each file, rounded up, in MB.
        let needed = mdf.div_ceil(10) + ldf.div_ceil(10);
        let msg = format!("{} has {free} MB free; 10% of Registry.mdf ({mdf} MB) and Registry.ldf ({ldf} MB) is {needed} MB", s.name);
        if free >= needed {
            out.pass(&rule, Some(s), msg);
        } else {
            out.fail(
                &rule,
                Severity::Error,
                Some(s),
                format!("{msg}: do not upgrade without that free space"),
            );
        }
    }
}

/// Each volume holding a Registry file against 10% of the Registry files on it: whether all have
/// enough, and the figures. `Err` names the fact the agent did not report.
fn per_volume(f: &SiteFacts) -> Result<(bool, String), String> {
    let mut on: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for file in f
        .database_files
        .iter()
        .filter(|d| d.database.eq_ignore_ascii_case("Registry"))
    {
        let name = file
            .path
            .rsplit(['\\', '/'])
            .next()
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| match file.kind {
                DatabaseFileKind::Data => "Registry.mdf".into(),
                DatabaseFileKind::Log => "Registry.ldf".into(),
            });
        on.entry(drive(&file.drive))
            .or_default()
            .push((name, file.size_mb));
    }
    if on.is_empty() {
        return Err("the agent reported no Registry database files".into());
    }
    let mut ok = true;
    let mut parts = Vec::new();
    for (d, files) in &on {
        let volume = f
            .volumes
            .iter()
            .find(|v| drive(&v.drive) == *d)
            .ok_or_else(|| {
                format!("the agent reported Registry files on {d} but not that volume's free space")
            })?;
        let needed: u64 = files.iter().map(|(_, mb)| mb.div_ceil(10)).sum();
        let of: Vec<String> = files
            .iter()
            .map(|(n, mb)| format!("{n} ({mb} MB)"))
            .collect();
        let enough = volume.free_mb >= needed;
        ok &= enough;
        parts.push(format!(
            "{d} has {} MB free, {} 10% of {} = {needed} MB",
            volume.free_mb,
            if enough { "at least" } else { "LESS than" },
            of.join(" + ")
        ));
    }
    Ok((ok, parts.join("; ")))
}

/// `e:\` and `E:` are the same volume.
fn drive(d: &str) -> String {
    d.trim().trim_end_matches(['\\', '/']).to_ascii_uppercase()
}

/// "Ensure that the SQL Server service and the SQL Server Agent service run as the same Windows
/// service account."
pub fn sql_agent_account(inv: &Inventory, live: &LiveFacts, out: &mut Findings) {
    let rule = Rule::new("sql-agent-same-account", "Perform the Data Center Upgrade");
    for s in inv.data_center_servers() {
        let mut note = live.stale_note(&s.name);
        let mut from = String::new();
        let mut accounts = (
            s.facts.sql_service_account.clone(),
            s.facts.sql_agent_account.clone(),
        );
        if let Seen::Fresh(sf) = live.seen(&s.name) {
            match &sf.facts.sql_accounts {
                Some(a) => {
                    accounts = (Some(a.sql_server.clone()), Some(a.sql_agent.clone()));
                    from = format!(" ({})", by(&s.name, sf));
                }
                None => {
                    note = format!(
                        "; {}'s agent did not report them{}",
                        s.name,
                        reason(&sf.facts, "sql_accounts")
                    )
                }
            }
        }
        match accounts {
            (Some(sql), Some(agent)) if sql.eq_ignore_ascii_case(&agent) => {
                out.pass(&rule, Some(s), format!("SQL Server and SQL Server Agent on {} both run as {sql}{from}", s.name))
            }
            (Some(sql), Some(agent)) => out.fail(
                &rule,
                Severity::Error,
                Some(s),
                format!("on {} SQL Server runs as {sql} but SQL Server Agent as {agent}{from}; they must run as the same Windows account", s.name),
            ),
            _ => out.unknown(
                &rule,
                Some(s),
                format!("the SQL Server and SQL Server Agent service accounts of {} are not in the inventory{note}", s.name),
            ),
        }
    }
}

/// `: <reason>` from the agent's `errors` about `fact`, or nothing.
fn reason(f: &SiteFacts, fact: &str) -> String {
    f.errors
        .iter()
        .find(|e| e.starts_with(fact))
        .map(|e| format!(" ({e})"))
        .unwrap_or_default()
}

/// The TLS versions ("1.0", "1.1", "1.2") SCHANNEL enables on a server, from its agent's facts:
/// an explicit `Enabled` value wins; an unset one means the Windows default (TLS 1.1 and 1.2 are
/// off by default on Windows Server 2008 R2 only). `None` when the agent reported no protocols.
fn tls_enabled(f: &SiteFacts, windows: WindowsVersion) -> Option<Vec<String>> {
    if f.tls_protocols.is_empty() {
        return None;
    }
    let set = ["1.0", "1.1", "1.2"]
        .into_iter()
        .filter(|v| {
            let explicit = f
                .tls_protocols
                .iter()
                .find(|p| protocol(&p.protocol) == format!("TLS {v}"))
                .and_then(|p| p.enabled);
            explicit.unwrap_or(windows != WindowsVersion::W2008R2 || *v == "1.0")
        })
        .map(str::to_owned)
        .collect();
    Some(set)
}

/// "tls 1.2", "TLS1.2" and "TLS 1.2" are one protocol.
fn protocol(p: &str) -> String {
    let p = p.trim().to_ascii_uppercase();
    match p.find(|c: char| c.is_ascii_digit()) {
        Some(i) => format!("{} {}", p[..i].trim(), &p[i..]),
        None => p,
    }
}

/// Each server's enabled TLS versions with where they come from, or `Err` with the stale note.
fn tls_of(s: &Server, live: &LiveFacts) -> Result<(Vec<String>, String), String> {
    if let Some(sf) = live.fresh(&s.name) {
        if let Some(set) = tls_enabled(&sf.facts, s.windows) {
            return Ok((set, format!(" ({})", by(&s.name, sf))));
        }
    }
    match &s.facts.tls_versions {
        Some(v) => Ok((v.clone(), String::new())),
        None => Err(schannel_note(s, live)),
    }
}

/// Why the agent's facts did not answer a SCHANNEL rule: stale, or no protocols reported.
fn schannel_note(s: &Server, live: &LiveFacts) -> String {
    match live.fresh(&s.name) {
        Some(sf) => format!(
            "; {}'s agent reported no SCHANNEL protocol settings{}",
            s.name,
            reason(&sf.facts, "tls_protocols")
        ),
        None => live.stale_note(&s.name),
    }
}

/// "You must enable the same version across all servers."
pub fn tls_same_versions(inv: &Inventory, live: &LiveFacts, out: &mut Findings) {
    let rule = Rule::new("tls-same-versions", TLS);
    let mut missing = Vec::new();
    let mut notes = String::new();
    let mut known = Vec::new();
    for s in &inv.servers {
        match tls_of(s, live) {
            Ok((set, from)) => known.push((s, set, from)),
            Err(note) => {
                missing.push(s);
                notes.push_str(&note);
            }
        }
    }
    let sets: BTreeSet<&Vec<String>> = known.iter().map(|(_, v, _)| v).collect();
    if sets.len() > 1 {
        let listed: Vec<String> = known
            .iter()
            .map(|(s, v, from)| format!("{} TLS {}{from}", s.name, v.join("/")))
            .collect();
        out.fail(
            &rule,
            Severity::Error,
            None,
            format!("servers enable different TLS versions ({}); Connected Backup needs the same versions on all servers", listed.join("; ")),
        );
    } else if missing.is_empty() {
        let v = sets.into_iter().next().cloned().unwrap_or_default();
        let from = if known.iter().any(|(_, _, from)| !from.is_empty()) {
            " (from the agents' SCHANNEL facts where reported)"
        } else {
            ""
        };
        out.pass(
            &rule,
            None,
            format!(
                "every server enables the same TLS versions ({}){from}",
                v.join(", ")
            ),
        );
    } else {
        out.unknown(&rule, None, format!("the TLS versions enabled on {} are not in the inventory; all servers must enable the same versions{notes}", names(missing)));
    }
}

/// "SSL 2.0 and 3.0 must be disabled across all servers." From facts, only an explicit
/// `Enabled = 0` counts as disabled: an unset value leaves it to the Windows default, which the
/// guide does not accept as proof.
pub fn legacy_ssl(inv: &Inventory, live: &LiveFacts, out: &mut Findings) {
    let rule = Rule::new("legacy-ssl-disabled", TLS);
    let mut missing = Vec::new();
    let mut notes = String::new();
    for s in &inv.servers {
        if let Some(sf) = live
            .fresh(&s.name)
            .filter(|sf| !sf.facts.tls_protocols.is_empty())
        {
            let not_off: Vec<String> = ["SSL 2.0", "SSL 3.0"]
                .into_iter()
                .filter_map(|p| {
                    let set = sf
                        .facts
                        .tls_protocols
                        .iter()
                        .find(|t| protocol(&t.protocol) == p)
                        .and_then(|t| t.enabled);
                    match set {
                        Some(false) => None,
                        Some(true) => Some(format!("{p} is enabled")),
                        None => Some(format!("{p} is not disabled (no SCHANNEL setting; the Windows default applies)")),
                    }
                })
                .collect();
            if not_off.is_empty() {
                out.pass(
                    &rule,
                    Some(s),
                    format!(
                        "SSL 2.0 and 3.0 are disabled on {} ({})",
                        s.name,
                        by(&s.name, sf)
                    ),
                );
            } else {
                out.fail(&rule, Severity::Error, Some(s), format!("on {} {} ({}); set Enabled = 0 under SCHANNEL\\Protocols\\<protocol>\\Server on every server", s.name, not_off.join(" and "), by(&s.name, sf)));
            }
            continue;
        }
        match s.facts.legacy_ssl_disabled {
            Some(true) => out.pass(
                &rule,
                Some(s),
                format!("SSL 2.0 and 3.0 are disabled on {}", s.name),
            ),
            Some(false) => out.fail(
                &rule,
                Severity::Error,
                Some(s),
                format!(
                    "SSL 2.0 or 3.0 is enabled on {}; they must be disabled on every server",
                    s.name
                ),
            ),
            None => {
                notes.push_str(&schannel_note(s, live));
                missing.push(s)
            }
        }
    }
    if !missing.is_empty() {
        out.unknown(
            &rule,
            None,
            format!(
                "whether SSL 2.0 and 3.0 are disabled on {} is not in the inventory{notes}",
                names(missing)
            ),
        );
    }
}

/// The Management API server has TLS 1.2 enabled (docs/SEED-ASSUMPTIONS.md: the guide lets a
/// site choose TLS 1.0–1.2 as long as every server agrees; Lockstep requires 1.2 where the
/// Management API, reached by Connected Mobility clients, runs). Only from facts: the inventory
/// has no such field, so without facts the rule stays silent rather than adding an "unknown".
pub fn management_api_tls12(inv: &Inventory, live: &LiveFacts, out: &mut Findings) {
    let rule = Rule::new("management-api-tls12", TLS);
    for s in inv.with_role(ServerRole::ManagementApi) {
        match live.seen(&s.name) {
            Seen::Fresh(sf) => match tls_enabled(&sf.facts, s.windows) {
                Some(set) if set.iter().any(|v| v == "1.2") => out.pass(&rule, Some(s), format!("TLS 1.2 is enabled on {}, which hosts the Management API ({})", s.name, by(&s.name, sf))),
                Some(set) => out.fail(&rule, Severity::Error, Some(s), format!("TLS 1.2 is not enabled on {}, which hosts the Management API (enabled: {}; {}); enable it under SCHANNEL\\Protocols\\TLS 1.2\\Server", s.name, if set.is_empty() { "none".into() } else { set.join(", ") }, by(&s.name, sf))),
                None => out.unknown(&rule, Some(s), format!("{}'s agent reported no SCHANNEL protocol settings{} ({})", s.name, reason(&sf.facts, "tls_protocols"), by(&s.name, sf))),
            },
            Seen::Stale(_) => out.unknown(&rule, Some(s), format!("whether TLS 1.2 is enabled on {} is not known{}", s.name, live.stale_note(&s.name))),
            Seen::Absent => {}
        }
    }
}
