//! Rules only the site as found can answer: the direct-upgrade source version, a Data Center
//! left with mixed Connected versions, Connected services the agents report missing, and the
//! certificates actually bound in IIS (names, expiry, port).
//!
//! Rules that need facts the inventory never holds (services, bound certificates) stay silent
//! for a server whose agent reported nothing — the `agent-ready` finding says that — and answer
//! "unknown" with the age when the facts are stale.

use std::collections::BTreeMap;

use lockstep_protocol::facts::CertificateFact;

use super::compat;
use super::live::{ago, by, Seen};
use super::{Findings, LiveFacts, Rule, Severity};
use crate::knowledge::certname::{self, NameMatch};
use crate::knowledge::inventory::{Inventory, Server, ServerRole, Version};

/// A certificate expiring sooner than this after the agent read it is a warning.
const EXPIRY_WARNING_SECS: i64 = 30 * 86_400;

/// Where a server's Connected version came from, for messages.
fn source(s: &Server, live: &LiveFacts) -> String {
    match live.fresh(&s.name) {
        Some(sf) if super::live::connected_version(&sf.facts).is_some() => {
            format!(" ({})", by(&s.name, sf))
        }
        _ => " (inventory)".into(),
    }
}

/// "Upgrade your Connected Backup environment to a version that this release supports for direct
/// upgrades": every server below 8.11 runs at least [`compat::direct_upgrade_from`]. `inv` is the
/// inventory as found, so a version an agent reported wins over the typed one.
pub fn direct_upgrade(inv: &Inventory, live: &LiveFacts, out: &mut Findings) {
    let rule = Rule::new("direct-upgrade", "Upgrade Connected Backup");
    let from = compat::direct_upgrade_from();
    let target = compat::target_release();
    let mut behind = 0;
    for s in inv.servers.iter().filter(|s| s.connected_version < from) {
        behind += 1;
        out.fail(
            &rule,
            Severity::Error,
            Some(s),
            format!(
                "{} runs Connected Backup {}{}; 8.11 upgrades directly only from {from} or later (Lockstep's reading of the release notes the guide refers to, docs/SEED-ASSUMPTIONS.md): upgrade it to {from} or later first",
                s.name,
                s.connected_version,
                source(s, live)
            ),
        );
    }
    if behind == 0 {
        let to_upgrade = inv
            .servers
            .iter()
            .filter(|s| s.connected_version < target)
            .count();
        out.pass(
            &rule,
            None,
            format!("every server below {target} runs {from} or later ({to_upgrade} to upgrade), which 8.11 upgrades directly"),
        );
    }
}

/// "We recommend that you complete the upgrade of the remaining servers ... in a timely manner":
/// servers running different Connected versions are a partial upgrade.
pub fn mixed_versions(inv: &Inventory, live: &LiveFacts, out: &mut Findings) {
    let rule = Rule::new("mixed-versions", "Upgrade Requirements");
    let mut by_version: BTreeMap<&Version, Vec<String>> = BTreeMap::new();
    for s in &inv.servers {
        by_version
            .entry(&s.connected_version)
            .or_default()
            .push(format!("{}{}", s.name, source(s, live)));
    }
    match by_version.len() {
        0 => {}
        1 => {
            let v = by_version
                .keys()
                .next()
                .map(|v| v.to_string())
                .unwrap_or_default();
            out.pass(
                &rule,
                None,
                format!("every server runs Connected Backup {v}"),
            );
        }
        _ => {
            let listed: Vec<String> = by_version
                .iter()
                .rev()
                .map(|(v, servers)| format!("{v} on {}", servers.join(", ")))
                .collect();
            out.fail(
                &rule,
                Severity::Warning,
                None,
                format!("the servers run different Connected Backup versions ({}): a partial upgrade; the guide asks to complete upgrades in a timely manner", listed.join("; ")),
            );
        }
    }
}

/// The service the guide lets a Data Center run without: "If the DCAlerter is not enabled for
/// your environment, the DCMC displays an error ... You can ignore this error".
const OPTIONAL: &str = "DCAlerter";
/// The Account Management Website's Tomcat service, stopped and started by name where AMWS runs.
const TOMCAT: &str = "dctomcat";
/// Services every Data Center server runs: the guide names BackupServer (session restrictions,
/// the version check, "accepting backups"), and IndexServer is a known service name (issue #15);
/// the other default names are guesses (SEED-NOTES "What is not public").
const REQUIRED: [&str; 2] = ["BackupServer", "IndexServer"];

/// A Connected service the agent was configured with but found not installed, as a finding now
/// rather than a step that times out later. On a Data Center server: BackupServer or IndexServer
/// missing is an error; the DCAlerter is allowed to be absent (info); any other configured name
/// is a warning (the steps act on the services installed; the name may be a wrong guess).
/// `dctomcat` missing is an error where the Account Management Website runs, nothing elsewhere.
pub fn services_missing(inv: &Inventory, live: &LiveFacts, out: &mut Findings) {
    let rule = Rule::new("service-missing", "Stop Data Center Services");
    let optional = Rule::new("service-missing", "Start the Upgraded Data Center");
    for s in &inv.servers {
        let amws = s.has(ServerRole::AccountManagementWebsite);
        if !s.has_database() && !amws {
            continue;
        }
        let sf = match live.seen(&s.name) {
            Seen::Fresh(sf) => sf,
            Seen::Stale(_) => {
                out.unknown(
                    &rule,
                    Some(s),
                    format!(
                        "which Connected services are installed on {} is not known{}",
                        s.name,
                        live.stale_note(&s.name)
                    ),
                );
                continue;
            }
            Seen::Absent => continue,
        };
        let from = by(&s.name, sf);
        let is = |name: &str, known: &str| name.eq_ignore_ascii_case(known);
        let (mut needed, mut unexpected) = (Vec::new(), Vec::new());
        for name in &sf.facts.services_missing {
            let name = name.as_str();
            if amws && is(name, TOMCAT) {
                needed.push(name);
            } else if !s.has_database() || is(name, TOMCAT) {
                // Not a service of this server's roles.
            } else if is(name, OPTIONAL) {
                out.pass(&optional, Some(s), format!("{OPTIONAL} is not installed on {} ({from}); the guide lets a Data Center run without it, so the start steps leave it alone", s.name));
            } else if REQUIRED.iter().any(|r| is(name, r)) {
                needed.push(name);
            } else {
                unexpected.push(name);
            }
        }
        let plural = |v: &[&str]| {
            if v.len() == 1 {
                ("is", "it")
            } else {
                ("are", "them")
            }
        };
        if !needed.is_empty() {
            let (verb, them) = plural(&needed);
            out.fail(&rule, Severity::Error, Some(s), format!("{} {verb} not installed on {} ({from}); the steps stop, start and verify {them} on this server: install {them}, or correct the inventory's roles", needed.join(", "), s.name));
        }
        if !unexpected.is_empty() {
            let (verb, them) = plural(&unexpected);
            out.fail(&rule, Severity::Warning, Some(s), format!("{} {verb} in the agent's connected_services but not installed on {} ({from}); the stop and start steps leave {them} out — check that the configuration names this site's services", unexpected.join(", "), s.name));
        }
        if needed.is_empty() && unexpected.is_empty() {
            let installed: Vec<&str> = sf.facts.services.iter().map(|x| x.name.as_str()).collect();
            out.pass(&rule, Some(s), format!("the Connected services the steps stop and start on {} are installed ({}; {from})", s.name, if installed.is_empty() { "none reported".into() } else { installed.join(", ") }));
        }
    }
}

/// The port of an IIS binding such as `Default Web Site *:443` or `*:8443:api.contoso.com`.
pub fn binding_port(binding: &str) -> Option<u16> {
    binding
        .split_whitespace()
        .rev()
        .find(|t| t.contains(':'))
        .and_then(|t| t.split(':').nth(1))
        .and_then(|p| p.parse().ok())
}

/// The https ports the certificates bound on `s` use, with where that came from; `None` without
/// fresh facts or without any bound certificate.
pub fn bound_ports(s: &Server, live: &LiveFacts) -> Option<(Vec<u16>, String)> {
    let sf = live.fresh(&s.name)?;
    let ports: Vec<u16> = sf
        .facts
        .certificates
        .iter()
        .flat_map(|c| c.bindings.iter().filter_map(|b| binding_port(b)))
        .collect();
    (!ports.is_empty()).then(|| (ports, by(&s.name, sf)))
}

/// The certificates IIS actually binds on a server that has or needs one: the name the inventory
/// gives (CN) and the server's FQDN among its CN and SANs, and its expiry.
pub fn certificates(inv: &Inventory, live: &LiveFacts, out: &mut Findings) {
    let rule = Rule::new("certificate-as-found", "Install the SSL Certificate");
    for s in &inv.servers {
        let needs = s.certificate.is_some()
            || s.has(ServerRole::ManagementApi)
            || s.datatransfer_ssl() == Some(true);
        if !needs {
            continue;
        }
        let sf = match live.seen(&s.name) {
            Seen::Fresh(sf) => sf,
            Seen::Stale(_) => {
                out.unknown(
                    &rule,
                    Some(s),
                    format!(
                        "the certificates bound on {} are not known{}",
                        s.name,
                        live.stale_note(&s.name)
                    ),
                );
                continue;
            }
            Seen::Absent => continue,
        };
        let from = by(&s.name, sf);
        let bound: Vec<&CertificateFact> = sf
            .facts
            .certificates
            .iter()
            .filter(|c| !c.bindings.is_empty())
            .collect();
        if bound.is_empty() {
            out.fail(&rule, Severity::Error, Some(s), format!("no certificate in LocalMachine\\My is bound to an IIS https binding on {} ({from}); the Management API and an SSL DataTransfer API need one", s.name));
            continue;
        }
        let read_at = sf.facts.collected_at;
        for c in bound {
            let mut errors = Vec::new();
            let mut warnings = Vec::new();
            let left = c.not_after - read_at;
            if left <= 0 {
                errors.push(format!("expired {} before the agent read it", ago(-left)));
            } else if left < EXPIRY_WARNING_SECS {
                warnings.push(format!("expires in {}", ago(left)));
            }
            // The name the Management API connects to is the FQDN; a SAN naming it is what a
            // TLS client checks, so it passes even when the CN differs (`knowledge::certname`).
            let naming = certname::names_host(Some(&c.subject_cn), &c.sans, &s.fqdn);
            if naming.is_err() {
                let fqdn = format!("the FQDN {}", s.fqdn);
                warnings.push(certname::miss(&fqdn, Some(&c.subject_cn), &c.sans));
            }
            if let Some(typed) = &s.certificate {
                if !c.subject_cn.eq_ignore_ascii_case(&typed.common_name) {
                    warnings.push(format!("has CN {} where the inventory says {}; the site as found wins — update the inventory", c.subject_cn, typed.common_name));
                }
            }
            let what = format!(
                "the certificate CN={} ({}) bound to {} on {} ({from})",
                c.subject_cn,
                c.thumbprint,
                c.bindings.join(", "),
                s.name
            );
            match (errors.is_empty(), warnings.is_empty()) {
                (true, true) => out.pass(
                    &rule,
                    Some(s),
                    format!(
                        "{what} names {}{} and is valid for {}",
                        s.fqdn,
                        match naming {
                            Ok(NameMatch::San(san)) if !san.eq_ignore_ascii_case(&c.subject_cn) =>
                                format!(" in its SAN {san}"),
                            _ => String::new(),
                        },
                        ago(left)
                    ),
                ),
                (true, false) => out.fail(
                    &rule,
                    Severity::Warning,
                    Some(s),
                    format!("{what} {}", warnings.join("; ")),
                ),
                (false, _) => {
                    errors.extend(warnings);
                    out.fail(
                        &rule,
                        Severity::Error,
                        Some(s),
                        format!("{what} {}", errors.join("; ")),
                    )
                }
            }
        }
    }
}
