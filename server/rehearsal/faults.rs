//! Faults a rehearsal can inject into its simulated Data Center, named as a change manager would
//! say them (`--fault SERVER:KIND`). Each maps onto the simulator's or the simulated agent's own
//! fault injection; nothing here pretends a fault happened.

use lockstep_agent::backend::simulated::SimulatedHost;
use lockstep_protocol::ActionKind;
use lockstep_simulator::iis::WebFaults;
use lockstep_simulator::sql::SqlFaults;
use lockstep_simulator::SimulatedDataCenter;

/// The kinds of fault a rehearsal knows, with what each one simulates.
pub const KINDS: &[(&str, &str)] = &[
    (
        "checkdb-error",
        "DBCC CHECKDB reports a consistency error in the Registry database",
    ),
    (
        "tds-drop",
        "the SQL Server drops every connection after a request arrives",
    ),
    (
        "probe-old-version",
        "Support Center keeps showing the version installed before the upgrade",
    ),
    (
        "status-not-xml",
        "the DataTransfer API status page answers a truncated document",
    ),
    (
        "service-fails-to-start",
        "the BackupServer service refuses to start",
    ),
    (
        "stop-refused",
        "the agent refuses to stop services (the action fails)",
    ),
    (
        "setup-wrong-version",
        "Setup leaves version 8.10 installed instead of the target",
    ),
    (
        "backup-unrestorable",
        "the SQL Server writes damaged backup files: RESTORE VERIFYONLY fails",
    ),
    (
        "setup-fails-midway",
        "Setup stops half-way: no version installed, the Version value and the Registry database half-changed",
    ),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub server: String,
    pub kind: String,
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        let known = || KINDS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ");
        let Some((server, kind)) = s.split_once(':') else {
            return Err(format!(
                "--fault `{s}` is not SERVER:KIND (e.g. DC1:checkdb-error); kinds: {}",
                known()
            ));
        };
        let (server, kind) = (server.trim(), kind.trim());
        if server.is_empty() {
            return Err(format!("--fault `{s}` names no server"));
        }
        if kind == "agent-crash" {
            return Err(
                "--fault agent-crash aborts the agent's process; a rehearsal runs its agents \
                 inside this process, so it cannot simulate it (the agent crate's crash tests do)"
                    .into(),
            );
        }
        if !KINDS.iter().any(|(k, _)| *k == kind) {
            return Err(format!(
                "--fault `{s}`: unknown fault `{kind}`; kinds: {}",
                known()
            ));
        }
        Ok(Fault {
            server: server.to_string(),
            kind: kind.to_string(),
        })
    }
}

impl Fault {
    pub fn describe(&self) -> String {
        let what = KINDS
            .iter()
            .find(|(k, _)| *k == self.kind)
            .map(|(_, d)| *d)
            .unwrap_or("");
        format!("{}: {what}", self.server)
    }

    /// Injects the fault. Fails when the server does not have the part the fault needs.
    pub fn inject(&self, dc: &SimulatedDataCenter) -> anyhow::Result<()> {
        self.set(dc, true)
    }

    /// Clears the fault (the site fixed the problem).
    pub fn clear(&self, dc: &SimulatedDataCenter) -> anyhow::Result<()> {
        self.set(dc, false)
    }

    fn set(&self, dc: &SimulatedDataCenter, on: bool) -> anyhow::Result<()> {
        let name = &self.server;
        let missing = |part: &str| {
            anyhow::anyhow!(
                "--fault {}:{}: server {name} has no {part} in this Data Center",
                name,
                self.kind
            )
        };
        match self.kind.as_str() {
            "checkdb-error" | "tds-drop" | "backup-unrestorable" => {
                let sql = dc.sql(name).ok_or_else(|| missing("SQL Server database"))?;
                let mut f: SqlFaults = sql.faults();
                match self.kind.as_str() {
                    "tds-drop" => f.drop_connection = on,
                    "backup-unrestorable" => f.backup_unrestorable = on,
                    _ => f.checkdb_error_in = on.then(|| "Registry".to_string()),
                }
                sql.set_faults(f);
            }
            "probe-old-version" | "status-not-xml" => {
                let web = dc.web(name).ok_or_else(|| missing("web endpoint"))?;
                let mut f: WebFaults = web.faults();
                if self.kind == "status-not-xml" {
                    f.status_not_xml = on;
                } else {
                    let host = dc.host(name).ok_or_else(|| missing("host"))?;
                    let before = host.read()?.product_version;
                    f.shown_version = if on { before } else { None };
                }
                web.set_faults(f);
            }
            _ => {
                let host = dc.host(name).ok_or_else(|| missing("host"))?;
                set_host_fault(host, &self.kind, on)?;
            }
        }
        Ok(())
    }
}

fn set_host_fault(host: &SimulatedHost, kind: &str, on: bool) -> anyhow::Result<()> {
    host.update(|s| {
        let f = &mut s.faults;
        match kind {
            "service-fails-to-start" if on => {
                f.services_fail_to_start.insert("BackupServer".into());
            }
            "service-fails-to-start" => {
                f.services_fail_to_start.remove("BackupServer");
            }
            "stop-refused" if on => {
                f.fail.insert(
                    ActionKind::ServicesStop,
                    "Access is denied: the services could not be stopped (simulated fault)".into(),
                );
            }
            "stop-refused" => {
                f.fail.remove(&ActionKind::ServicesStop);
            }
            "setup-wrong-version" => {
                f.version_after_setup = on.then(|| "8.10".to_string());
            }
            "setup-fails-midway" => {
                f.setup_fails_midway = on;
            }
            _ => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_names_a_server_and_a_known_kind() {
        let f: Fault = "DC1:checkdb-error".parse().unwrap();
        assert_eq!(f.server, "DC1");
        assert_eq!(f.kind, "checkdb-error");
    }

    #[test]
    fn malformed_and_unknown_faults_are_refused_with_the_known_kinds() {
        let e = "DC1".parse::<Fault>().unwrap_err();
        assert!(e.contains("SERVER:KIND"), "{e}");
        let e = "DC1:melt".parse::<Fault>().unwrap_err();
        assert!(
            e.contains("unknown fault `melt`") && e.contains("checkdb-error"),
            "{e}"
        );
        let e = ":tds-drop".parse::<Fault>().unwrap_err();
        assert!(e.contains("names no server"), "{e}");
    }

    #[test]
    fn an_agent_crash_is_refused_in_process_with_the_reason() {
        let e = "DC1:agent-crash".parse::<Fault>().unwrap_err();
        assert!(e.contains("inside this process"), "{e}");
    }
}
