//! Rules about the estate as it stands: supported combinations, where the APIs may live, their
//! certificates and ports, the OutflowServices URL, weak ciphers; and, from [`host`] and
//! [`site`], Registry free space, SQL Server accounts, TLS, services and certificates as found.
//! Which of them run depends on the procedure (an uninstall does not check the certificate of the
//! component it removes).

use super::{compat, host, site};
use super::{names, Findings, LiveFacts, Procedure, Rule, Severity};
use crate::knowledge::inventory::{Inventory, Issuer, ServerRole, Topology};

const GUIDELINES: &str = "Review Upgrade Guidelines and Recommendations";

pub fn check(inv: &Inventory, p: Procedure, live: &LiveFacts, out: &mut Findings) {
    supported_combinations(inv, out);
    if p != Procedure::UninstallManagementApi {
        one_management_api(inv, out);
    }
    if p != Procedure::UninstallDatatransferApi {
        datatransfer_alone(inv, out);
    }
    if p != Procedure::UninstallManagementApi {
        management_api_certificate(inv, live, out);
    }
    if p != Procedure::UninstallDatatransferApi {
        datatransfer_certificate(inv, out);
        datatransfer_port(inv, live, out);
        outflow_cn(inv, out);
    }
    if matches!(p, Procedure::Estate | Procedure::Upgrade811) {
        host::registry_free_space(inv, live, out);
        host::sql_agent_account(inv, live, out);
    }
    host::tls_same_versions(inv, live, out);
    host::legacy_ssl(inv, live, out);
    host::management_api_tls12(inv, live, out);
    weak_ciphers(inv, out);
    if !matches!(
        p,
        Procedure::UninstallManagementApi | Procedure::UninstallDatatransferApi
    ) {
        site::services_missing(inv, live, out);
    }
    site::certificates(inv, live, out);
    site::mixed_versions(inv, live, out);
}

/// Every server with SQL Server runs a combination the seed supports.
fn supported_combinations(inv: &Inventory, out: &mut Findings) {
    let rule = Rule::new("supported-windows-sql-combination", "Upgrade SQL Server");
    for s in &inv.servers {
        let Some(sql) = s.sql_server else { continue };
        match compat::combination(s.windows, sql) {
            Some(row) if row.interim => out.pass(
                &rule.at(row.section),
                Some(s),
                format!("{} with {sql} is supported while the remaining servers are upgraded; the vendor recommends completing the upgrade in a timely manner", s.windows),
            ),
            Some(row) => out.pass(
                &rule.at(row.section),
                Some(s),
                format!("{} with {sql} is a supported combination", s.windows),
            ),
            None => {
                let with: Vec<String> = compat::sql_for(s.windows).iter().map(|v| v.to_string()).collect();
                out.fail(
                    &rule,
                    Severity::Error,
                    Some(s),
                    format!(
                        "{} with {sql} is not a combination Connected Backup supports; with {} it supports {}",
                        s.windows,
                        s.windows,
                        if with.is_empty() { "no SQL Server release".to_owned() } else { with.join(", ") }
                    ),
                );
            }
        }
    }
}

/// "You must install only one instance of the Management API per cluster or stand-alone
/// configuration."
fn one_management_api(inv: &Inventory, out: &mut Findings) {
    let rule = Rule::new("one-management-api", GUIDELINES);
    let hosts: Vec<_> = inv.with_role(ServerRole::ManagementApi).collect();
    match hosts.as_slice() {
        [] => out.pass(
            &rule,
            None,
            "no Management API is installed; the upgrade offers to install it on one server".into(),
        ),
        [one] => out.pass(
            &rule,
            Some(one),
            format!("the Management API is installed once, on {}", one.name),
        ),
        [_, rest @ ..] => {
            for s in rest {
                out.fail(
                    &rule,
                    Severity::Error,
                    Some(s),
                    format!(
                        "the Management API is on {}; only one instance is allowed per {}",
                        names(hosts.iter().copied()),
                        if inv.topology == Topology::Standalone {
                            "stand-alone configuration"
                        } else {
                            "Data Center"
                        }
                    ),
                );
            }
        }
    }
}

/// "The server that hosts each instance [of the DataTransfer API] must not host any other
/// Connected component except for possibly the Management API."
fn datatransfer_alone(inv: &Inventory, out: &mut Findings) {
    let rule = Rule::new("datatransfer-api-dedicated-server", GUIDELINES);
    for s in inv.with_role(ServerRole::DatatransferApi) {
        let others: Vec<&str> = s
            .roles
            .iter()
            .filter(|r| !matches!(r, ServerRole::DatatransferApi | ServerRole::ManagementApi))
            .map(|r| r.as_str())
            .collect();
        if others.is_empty() {
            out.pass(&rule, Some(s), format!("{} hosts the DataTransfer API and no other Connected component but possibly the Management API", s.name));
        } else {
            out.fail(
                &rule,
                Severity::Error,
                Some(s),
                format!("{} hosts the DataTransfer API together with {}; a DataTransfer API server may host nothing else but the Management API", s.name, others.join(", ")),
            );
        }
    }
}

/// The Management API requires SSL with a certificate from a third-party trusted CA; a server
/// with both APIs uses one such certificate on port 443.
fn management_api_certificate(inv: &Inventory, live: &LiveFacts, out: &mut Findings) {
    let rule = Rule::new("management-api-certificate", "Install the SSL Certificate");
    for s in inv.with_role(ServerRole::ManagementApi) {
        let both = s.has(ServerRole::DatatransferApi);
        let what = if both {
            "a server hosting both the Management API and the DataTransfer API needs one certificate from a third-party trusted CA, bound on port 443"
        } else {
            "the Management API requires SSL with a certificate from a third-party trusted CA"
        };
        match &s.certificate {
            None => out.fail(&rule, Severity::Error, Some(s), format!("{} has no HTTPS certificate; {what}", s.name)),
            Some(c) if c.issuer == Issuer::SelfSigned => out.fail(
                &rule,
                Severity::Error,
                Some(s),
                format!("{}'s certificate ({}) is self-signed; {what}", s.name, c.common_name),
            ),
            Some(c) if both && c.port.is_some_and(|p| p != 443) => out.fail(
                &rule,
                Severity::Error,
                Some(s),
                format!("{}'s certificate is bound on port {}; {what}", s.name, c.port.unwrap_or_default()),
            ),
            Some(c) if both && c.port.is_none() => match site::bound_ports(s, live) {
                Some((ports, from)) if ports.contains(&443) => out.pass(
                    &rule,
                    Some(s),
                    format!("{} has a trusted-CA certificate ({}) bound on port 443 ({from})", s.name, c.common_name),
                ),
                Some((ports, from)) => out.fail(
                    &rule,
                    Severity::Error,
                    Some(s),
                    format!("{}'s certificates are bound on port {} ({from}); {what}", s.name, join_ports(&ports)),
                ),
                None => out.unknown(
                    &rule,
                    Some(s),
                    format!("{}'s certificate is from a trusted CA; the https port is not in the inventory (both APIs need 443){}", s.name, live.stale_note(&s.name)),
                ),
            },
            Some(c) => out.pass(
                &rule,
                Some(s),
                format!("{} has a trusted-CA certificate ({}){}", s.name, c.common_name, if both { " on port 443" } else { "" }),
            ),
        }
    }
}

/// A DataTransfer API node with SSL needs a certificate (trusted CA or self-signed).
fn datatransfer_certificate(inv: &Inventory, out: &mut Findings) {
    let rule = Rule::new(
        "datatransfer-api-certificate",
        "Configure Security Settings",
    );
    for s in inv.with_role(ServerRole::DatatransferApi) {
        match (s.datatransfer_ssl(), &s.certificate) {
            (Some(false), _) => out.pass(
                &rule,
                Some(s),
                format!("{}'s DataTransfer API has SSL disabled; the plan sets its secureFlag to 0 in OutflowServices", s.name),
            ),
            (_, Some(c)) => {
                let issuer = match c.issuer {
                    Issuer::TrustedCa => "trusted-CA",
                    Issuer::SelfSigned => "self-signed",
                };
                let msg = format!("{}'s DataTransfer API uses SSL with a {issuer} certificate", s.name);
                out.pass(&rule, Some(s), msg)
            }
            (_, None) => out.fail(
                &rule,
                Severity::Error,
                Some(s),
                format!("{}'s DataTransfer API uses SSL (the default) but has no certificate; install a trusted or self-signed certificate, or set [servers.datatransfer] ssl = false", s.name),
            ),
        }
    }
}

/// "Servers that host the DataTransfer API must use port 443 for SSL connections."
fn datatransfer_port(inv: &Inventory, live: &LiveFacts, out: &mut Findings) {
    let rule = Rule::new("datatransfer-api-port-443", "Install the SSL Certificate");
    for s in inv.with_role(ServerRole::DatatransferApi) {
        if s.datatransfer_ssl() != Some(true) {
            continue;
        }
        let Some(c) = &s.certificate else { continue };
        match c.port {
            Some(443) => out.pass(&rule, Some(s), format!("{}'s https binding is on port 443", s.name)),
            Some(p) => out.fail(
                &rule,
                Severity::Error,
                Some(s),
                format!("{}'s https binding is on port {p}; a server hosting the DataTransfer API must use 443 for SSL", s.name),
            ),
            None => match site::bound_ports(s, live) {
                Some((ports, from)) if ports.contains(&443) => out.pass(&rule, Some(s), format!("{}'s https binding is on port 443 ({from})", s.name)),
                Some((ports, from)) => out.fail(
                    &rule,
                    Severity::Error,
                    Some(s),
                    format!("{}'s https binding is on port {} ({from}); a server hosting the DataTransfer API must use 443 for SSL", s.name, join_ports(&ports)),
                ),
                None => out.unknown(&rule, Some(s), format!("the https port of {} is not in the inventory (it must be 443){}", s.name, live.stale_note(&s.name))),
            },
        }
    }
}

/// A DataTransfer node with SSL whose certificate CN is not its FQDN: the plan must reset the
/// OutflowServices URL to the FQDN before Setup and set it to the CN after.
fn outflow_cn(inv: &Inventory, out: &mut Findings) {
    let rule = Rule::new(
        "datatransfer-cn-matches-fqdn",
        "Update the Data Transfer API URL in the Registry Database",
    );
    for s in inv.with_role(ServerRole::DatatransferApi) {
        if s.datatransfer_ssl() != Some(true) || s.certificate.is_none() {
            continue;
        }
        match s.outflow_cn_differs() {
            None => out.pass(&rule, Some(s), format!("{}'s certificate CN is its FQDN ({})", s.name, s.fqdn)),
            Some(cn) if cn.starts_with("*.") => out.fail(
                &rule,
                Severity::Error,
                Some(s),
                format!("{}'s certificate CN is the wildcard {cn}; the Management API reaches a DataTransfer node by the name in the OutflowServices URL, which cannot be a wildcard: use a certificate whose CN is {}", s.name, s.fqdn),
            ),
            Some(cn) => out.fail(
                &rule,
                Severity::Warning,
                Some(s),
                format!("{}'s certificate CN ({cn}) differs from its FQDN ({}); the plan resets its OutflowServices URL to the FQDN before Setup runs and sets it to the CN afterwards", s.name, s.fqdn),
            ),
        }
    }
}

/// "Disable any weak and vulnerable cipher having a block size of 64-bits, such as Triple DES, in
/// a system on which you have installed the AMWS or Support Center."
fn weak_ciphers(inv: &Inventory, out: &mut Findings) {
    let rule = Rule::new("weak-ciphers-disabled", "Configure IIS with SSL");
    let mut missing = Vec::new();
    for s in inv
        .servers
        .iter()
        .filter(|s| s.has(ServerRole::SupportCenter) || s.has(ServerRole::AccountManagementWebsite))
    {
        match s.facts.weak_ciphers_disabled {
            Some(true) => out.pass(&rule, Some(s), format!("64-bit-block ciphers such as Triple DES are disabled on {}", s.name)),
            Some(false) => out.fail(
                &rule,
                Severity::Error,
                Some(s),
                format!("64-bit-block ciphers such as Triple DES are enabled on {}, which hosts the Support Center or Account Management Website; disable them", s.name),
            ),
            None => missing.push(s),
        }
    }
    if !missing.is_empty() {
        out.unknown(&rule, None, format!("whether 64-bit-block ciphers (Triple DES) are disabled on {} is not in the inventory", names(missing)));
    }
}

/// `8443 and 444`.
fn join_ports(ports: &[u16]) -> String {
    let v: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    v.join(" and ")
}
