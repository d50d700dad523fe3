//! Faults a rehearsal can inject into its simulated Data Center, named as a change manager would
//! say them (`--fault SERVER:KIND`). Each maps onto the simulator's or the simulated agent's own
//! fault injection; nothing here pretends a fault happened.

use lockstep_agent::backend::select::DCALERTER;
use lockstep_agent::backend::simulated::{SimService, SimulatedHost};
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::{ActionKind, Component, StartupType};
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
        "dcalerter-disabled",
        "DCAlerter is not enabled here (startup type disabled, stopped): it is left alone",
    ),
    (
        "mapi-setup-fails",
        "the Management API's installer fails: it stays at the old version",
    ),
    (
        "no-session-counters",
        "the server publishes no backup-session counters: a person watches the drain",
    ),
    (
        "service-missing",
        "a Connected service the guide names (ReplicationServer) is not installed",
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

/// The service the `service-missing` fault uninstalls: one of the guessed names (SEED-NOTES
/// "What is not public"), so a site without it is the likely case.
pub const MISSING_SERVICE: &str = "ReplicationServer";

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

    /// Injects a fault that lives in the simulated host's own state (service, version, counter
    /// and host-action faults) into one host's state, e.g. a state file an agent process drives.
    /// Fails for the kinds that live in the simulator's SQL or web endpoints.
    pub fn inject_into_host(&self, host: &SimulatedHost) -> anyhow::Result<()> {
        if matches!(
            self.kind.as_str(),
            "checkdb-error" | "tds-drop" | "probe-old-version" | "status-not-xml"
        ) {
            anyhow::bail!(
                "--fault {}:{} lives in the simulator's endpoints, not in the host's state",
                self.server,
                self.kind
            );
        }
        set_host_fault(host, &self.kind, true)
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
            "mapi-setup-fails" => {
                let host = dc.host(name).ok_or_else(|| missing("host"))?;
                if !host
                    .read()?
                    .components
                    .contains_key(&Component::ManagementApi)
                {
                    return Err(missing("Management API"));
                }
                set_host_fault(host, &self.kind, on)?;
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
            "mapi-setup-fails" if on => {
                f.component_setup_fails.insert(Component::ManagementApi);
            }
            "mapi-setup-fails" => {
                f.component_setup_fails.remove(&Component::ManagementApi);
            }
            // The site as it is, not an injected failure: the host's own state changes.
            "dcalerter-disabled" => {
                let (state, startup) = if on {
                    (ServiceRunState::Stopped, StartupType::Disabled)
                } else {
                    (ServiceRunState::Running, StartupType::Automatic)
                };
                s.services
                    .insert(DCALERTER.into(), SimService { state, startup });
            }
            "no-session-counters" => s.session_counters = !on,
            "service-missing" if on => {
                s.services.remove(MISSING_SERVICE);
            }
            "service-missing" => {
                s.services.insert(
                    MISSING_SERVICE.into(),
                    SimService {
                        state: ServiceRunState::Running,
                        startup: StartupType::Automatic,
                    },
                );
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
    fn a_site_variance_fault_changes_the_host_state_itself_and_clears_back() {
        let dir = tempfile::tempdir().unwrap();
        let seed = lockstep_agent::backend::simulated::SimState::data_center_server("DC1", "8.8.6");
        let host = SimulatedHost::create(dir.path().join("dc1.json"), &seed).unwrap();
        for kind in [
            "dcalerter-disabled",
            "no-session-counters",
            "service-missing",
        ] {
            let f: Fault = format!("DC1:{kind}").parse().unwrap();
            f.inject_into_host(&host).unwrap();
        }
        let s = host.read().unwrap();
        assert_eq!(s.services[DCALERTER].startup, StartupType::Disabled);
        assert_eq!(s.services[DCALERTER].state, ServiceRunState::Stopped);
        assert!(!s.session_counters);
        assert!(!s.services.contains_key(MISSING_SERVICE));
        for kind in [
            "dcalerter-disabled",
            "no-session-counters",
            "service-missing",
        ] {
            set_host_fault(&host, kind, false).unwrap();
        }
        let s = host.read().unwrap();
        assert_eq!(s.services[DCALERTER].startup, StartupType::Automatic);
        assert!(s.session_counters);
        assert!(s.services.contains_key(MISSING_SERVICE));
        // Endpoint faults do not live in a host's state.
        let e = "DC1:tds-drop"
            .parse::<Fault>()
            .unwrap()
            .inject_into_host(&host)
            .unwrap_err();
        assert!(e.to_string().contains("simulator's endpoints"), "{e}");
    }

    #[test]
    fn an_agent_crash_is_refused_in_process_with_the_reason() {
        let e = "DC1:agent-crash".parse::<Fault>().unwrap_err();
        assert!(e.contains("inside this process"), "{e}");
    }
}
