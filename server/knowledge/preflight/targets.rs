//! Rules that depend on the procedure: minimum Connected Backup versions for a Windows or SQL
//! Server target, the upgrade paths the seed describes, the combination a server ends up in, a
//! target no older than what runs now, and components an uninstall needs.

use std::collections::BTreeMap;

use super::compat;
use super::{names, Findings, Procedure, Rule, Severity};
use crate::knowledge::inventory::{
    Inventory, Server, ServerRole, SqlServerVersion, Topology, Version, WindowsVersion,
};

const WINDOWS: &str = "Upgrade a Data Center Server to Windows Server";

pub fn check(inv: &Inventory, p: Procedure, params: &BTreeMap<String, String>, out: &mut Findings) {
    match p {
        Procedure::Estate => {}
        Procedure::Upgrade811 => connected_target(inv, out),
        Procedure::UninstallManagementApi => installed(
            inv,
            ServerRole::ManagementApi,
            "Uninstall the Management API",
            out,
        ),
        Procedure::UninstallDatatransferApi => match params.get("server") {
            Some(name) => datatransfer_node(inv, name, out),
            None => installed(
                inv,
                ServerRole::DatatransferApi,
                "Uninstall the DataTransfer API",
                out,
            ),
        },
        Procedure::UpgradeWindows(target) => {
            synchronized(inv, out);
            minimum(
                inv,
                Rule::new("windows-target-minimum-version", WINDOWS),
                compat::minimum_for_windows(target),
                &format!("{target}"),
                out,
            );
            windows_path(inv, target, out);
        }
        Procedure::UpgradeSql(target) => {
            let section = sql_section(inv.topology);
            synchronized(inv, out);
            minimum(
                inv,
                Rule::new("sql-target-minimum-version", section),
                compat::minimum_for_sql(target),
                &format!("{target}"),
                out,
            );
            sql_path(inv, target, section, out);
        }
    }
}

/// The "Upgrade ... Data Center Servers to SQL Server" section for the topology.
pub fn sql_section(t: Topology) -> &'static str {
    match t {
        Topology::Standalone => "Upgrade Stand-Alone Data Center Servers to SQL Server",
        Topology::Mirrored => "Upgrade Mirrored Data Center Servers to SQL Server",
        Topology::Clustered => "Upgrade Clustered Data Center Servers to SQL Server",
    }
}

/// Connected Backup 8.11 is the target: no server may already run something newer.
fn connected_target(inv: &Inventory, out: &mut Findings) {
    let rule = Rule::new("target-not-older-than-current", "Upgrade Connected Backup");
    let target = Version::new(&[8, 11]);
    let mut fine = Vec::new();
    for s in &inv.servers {
        if s.connected_version > target {
            out.fail(
                &rule,
                Severity::Error,
                Some(s),
                format!(
                    "{} runs Connected Backup {}, newer than the target 8.11",
                    s.name, s.connected_version
                ),
            );
        } else if s.connected_version == target {
            out.pass(&rule, Some(s), format!("{} already runs 8.11; Setup reinstalls it (DataTransfer URLs carrying a CN are reset to the FQDN first)", s.name));
        } else {
            fine.push(s);
        }
    }
    if !fine.is_empty() {
        out.pass(
            &rule,
            None,
            format!(
                "{} run versions older than 8.11 and will be upgraded",
                names(fine)
            ),
        );
    }
}

/// An uninstall needs the component to be installed somewhere.
fn installed(inv: &Inventory, role: ServerRole, section: &'static str, out: &mut Findings) {
    let rule = Rule::new("component-installed", section);
    let hosts: Vec<_> = inv.with_role(role).collect();
    if hosts.is_empty() {
        out.fail(
            &rule,
            Severity::Error,
            None,
            format!(
                "no server in the inventory has the \"{role}\" role; there is nothing to uninstall"
            ),
        );
    } else {
        for s in hosts {
            out.pass(
                &rule,
                Some(s),
                format!("{} hosts the {role} component to uninstall", s.name),
            );
        }
    }
}

/// `uninstall-datatransfer-api` with `server=NAME`: that server exists and hosts the DataTransfer
/// API; removing the last node leaves the Management API without one.
fn datatransfer_node(inv: &Inventory, name: &str, out: &mut Findings) {
    let rule = Rule::new("component-installed", "Uninstall the DataTransfer API");
    let Some(s) = inv.server(name) else {
        out.fail(
            &rule,
            Severity::Error,
            None,
            format!("server={name}: no server of that name is in the inventory"),
        );
        return;
    };
    if !s.has(ServerRole::DatatransferApi) {
        out.fail(
            &rule,
            Severity::Error,
            Some(s),
            format!("{name} does not host the DataTransfer API; there is nothing to uninstall"),
        );
        return;
    }
    out.pass(
        &rule,
        Some(s),
        format!("{name} hosts the DataTransfer API to uninstall"),
    );
    if inv.with_role(ServerRole::DatatransferApi).count() == 1 {
        out.fail(
            &rule.named("last-datatransfer-node"),
            Severity::Warning,
            Some(s),
            format!("{name} is the only DataTransfer API node; after the uninstall the Management API has none to retrieve files through"),
        );
    }
}

/// "All servers in your Connected Backup configuration must have version 8.8.1 or later
/// installed before you upgrade any Data Center servers."
fn synchronized(inv: &Inventory, out: &mut Findings) {
    minimum(
        inv,
        Rule::new("connected-version-synchronized", "Upgrade Requirements"),
        Some(compat::synchronized_minimum()),
        "any Windows Server or SQL Server upgrade",
        out,
    );
}

/// Every server runs `min` or later before moving to `what`.
fn minimum(inv: &Inventory, rule: Rule, min: Option<Version>, what: &str, out: &mut Findings) {
    let Some(min) = min else { return };
    let behind: Vec<&Server> = inv
        .servers
        .iter()
        .filter(|s| s.connected_version < min)
        .collect();
    for s in &behind {
        out.fail(
            &rule,
            Severity::Error,
            Some(s),
            format!(
                "{} runs Connected Backup {}; every server must run {min} or later before {what}",
                s.name, s.connected_version
            ),
        );
    }
    if behind.is_empty() {
        out.pass(
            &rule,
            None,
            format!("every server runs Connected Backup {min} or later, as {what} requires"),
        );
    }
}

/// A target that no server is below: the run would change nothing, which is not what a change
/// request means.
fn nothing_to_upgrade(rule: &Rule, target: &str, out: &mut Findings) {
    out.fail(
        rule,
        Severity::Error,
        None,
        format!("no server runs a release older than {target}; there is nothing to upgrade"),
    );
}

/// Each server's Windows upgrade: the path the seed describes, a target no older than now, and
/// a supported combination with its SQL Server afterwards.
fn windows_path(inv: &Inventory, target: WindowsVersion, out: &mut Findings) {
    let path = Rule::new("windows-upgrade-path", WINDOWS);
    let older = Rule::new("target-not-older-than-current", WINDOWS);
    let combo = Rule::new("target-combination-supported", "Upgrade SQL Server");
    if inv.servers.iter().all(|s| s.windows >= target) {
        nothing_to_upgrade(&older, &format!("{target}"), out);
    }
    for s in &inv.servers {
        if s.windows == target {
            out.pass(
                &older,
                Some(s),
                format!("{} already runs {target}; nothing to upgrade", s.name),
            );
            continue;
        }
        if s.windows > target {
            out.fail(
                &older,
                Severity::Warning,
                Some(s),
                format!(
                    "{} runs {}, newer than the target {target}; the runbook leaves it as it is",
                    s.name, s.windows
                ),
            );
            continue;
        }
        if compat::windows_upgrade_supported(s.windows, target) {
            out.pass(
                &path,
                Some(s),
                format!(
                    "{} moves from {} to {target}, an upgrade the vendor describes",
                    s.name, s.windows
                ),
            );
        } else {
            out.fail(
                &path,
                Severity::Error,
                Some(s),
                format!("{} runs {}; the vendor describes upgrades from 2008 R2 to 2012 R2 and from 2012 R2 to 2016 only, so upgrade it to Windows Server 2012 R2 first", s.name, s.windows),
            );
        }
        let Some(sql) = s.sql_server else { continue };
        if compat::combination(target, sql).is_none() {
            let with: Vec<String> = compat::sql_for(target)
                .iter()
                .map(|v| v.to_string())
                .collect();
            out.fail(
                &combo,
                Severity::Warning,
                Some(s),
                format!("after the upgrade {} would run {target} with {sql}, which Connected Backup does not support; upgrade SQL Server to {} in the same window", s.name, with.join(" or ")),
            );
        } else {
            out.pass(
                &combo,
                Some(s),
                format!(
                    "{} will run {target} with {sql}, a supported combination",
                    s.name
                ),
            );
        }
    }
}

/// Each Data Center server's SQL Server upgrade: Windows 2012 R2 or 2016, a target no older than
/// now, and a supported combination afterwards.
fn sql_path(inv: &Inventory, target: SqlServerVersion, section: &'static str, out: &mut Findings) {
    let windows = Rule::new("sql-upgrade-windows-version", section);
    let older = Rule::new("target-not-older-than-current", "Upgrade SQL Server");
    let combo = Rule::new("target-combination-supported", "Upgrade SQL Server");
    if inv
        .data_center_servers()
        .all(|s| s.sql_server.is_some_and(|v| v >= target))
    {
        nothing_to_upgrade(&older, &format!("{target}"), out);
    }
    for s in inv.data_center_servers() {
        let Some(sql) = s.sql_server else { continue };
        if sql == target {
            out.pass(
                &older,
                Some(s),
                format!("{} already runs {target}; nothing to upgrade", s.name),
            );
            continue;
        }
        if sql > target {
            out.fail(
                &older,
                Severity::Warning,
                Some(s),
                format!(
                    "{} runs {sql}, newer than the target {target}; the runbook leaves it as it is",
                    s.name
                ),
            );
            continue;
        }
        if matches!(s.windows, WindowsVersion::W2012R2 | WindowsVersion::W2016) {
            out.pass(
                &windows,
                Some(s),
                format!(
                    "{} runs {}, as a SQL Server upgrade requires",
                    s.name, s.windows
                ),
            );
        } else {
            out.fail(
                &windows,
                Severity::Error,
                Some(s),
                format!("{} runs {}; upgrade it to Windows Server 2012 R2 or 2016 before upgrading SQL Server", s.name, s.windows),
            );
        }
        if compat::combination(s.windows, target).is_none() {
            out.fail(
                &combo,
                Severity::Error,
                Some(s),
                format!("after the upgrade {} would run {} with {target}, which Connected Backup does not support", s.name, s.windows),
            );
        } else {
            out.pass(
                &combo,
                Some(s),
                format!(
                    "{} will run {} with {target}, a supported combination",
                    s.name, s.windows
                ),
            );
        }
    }
}
