//! The simulated Data Center server's state: services, registry, files, installed version, disks,
//! event log, IIS bindings, certificates, backup sessions, scheduled tasks, installers — plus the
//! faults to inject and a history of every action that changed something.
//!
//! [`SimulatedHost`] keeps the state in one JSON file that every process sees (`file`): a
//! simulator in this process or another can seed it, inject faults and read it back while an
//! agent drives it; `file` explains how that stays cheap per action.

mod file;
mod lock;

pub use file::{read_state, IoCounts, SimulatedHost};

use std::collections::{BTreeMap, BTreeSet};

use lockstep_protocol::evidence::{Binding, CertificateInfo, EventRecord, ServiceRunState};
use lockstep_protocol::facts::{DatabaseFileFact, SqlAccountsFact};
use lockstep_protocol::{ActionKind, Component, StartupType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimService {
    pub state: ServiceRunState,
    pub startup: StartupType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimDisk {
    pub free_mb: u64,
    pub total_mb: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimTask {
    /// Result code recorded after each run (0 = success).
    pub result: i64,
    pub runs: u32,
    /// How long a run takes.
    pub duration_ms: u64,
    /// Unix seconds of the last completed run.
    pub last_run: Option<i64>,
}

/// An installer file present on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimInstaller {
    /// SHA-256 of the file as the agent would compute it.
    pub sha256: String,
    /// The product version this installer leaves installed.
    pub installs_version: String,
    pub exit_code: i32,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimEvent {
    pub log: String,
    pub record: EventRecord,
}

/// An action that changed the host, in the order the simulated backend ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimExecution {
    pub id: String,
    pub kind: ActionKind,
    pub at_ms: i64,
}

/// Faults to inject. All default to "none".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimFaults {
    /// Extra time an action of this kind takes before it acts.
    pub delay_ms: BTreeMap<ActionKind, u64>,
    /// Actions of this kind fail with this message (before changing anything).
    pub fail: BTreeMap<ActionKind, String>,
    /// Actions of this kind never finish (until cancelled or the process stops).
    pub hang: BTreeSet<ActionKind>,
    /// Actions of this kind abort the agent process after they were journaled, before acting.
    pub crash: BTreeSet<ActionKind>,
    /// Services that refuse to start (stay Stopped).
    pub services_fail_to_start: BTreeSet<String>,
    /// After an installer runs, this version is installed instead of the installer's own
    /// ("wrong version after Setup").
    pub version_after_setup: Option<String>,
    /// Components whose installer (a person's manual task in the simulator) fails: they stay
    /// at the version they had ("the Management API's Setup fails").
    pub component_setup_fails: BTreeSet<Component>,
    /// The next Setup stops half-way: the old version is gone, the new one is not installed,
    /// and the Version value already names the new one. Once only: the reinstall that follows
    /// works.
    pub setup_fails_midway: bool,
}

/// A Data Center server as the simulated backend sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimState {
    pub hostname: String,
    pub services: BTreeMap<String, SimService>,
    /// Canonical key (`HKLM\...`) → value name → string data.
    pub registry: BTreeMap<String, BTreeMap<String, String>>,
    /// Canonical path (`C:\...`) → text content.
    pub files: BTreeMap<String, String>,
    pub product_version: Option<String>,
    /// e.g. "2012 R2".
    pub windows: String,
    /// e.g. "2014 SP2"; `None` when SQL Server is not installed.
    pub sql_server: Option<String>,
    pub disks: BTreeMap<String, SimDisk>,
    pub events: Vec<SimEvent>,
    /// Site name → bindings.
    pub iis_sites: BTreeMap<String, Vec<Binding>>,
    pub iis_resets: u32,
    pub certificates: Vec<CertificateInfo>,
    pub backup_sessions: u32,
    pub restore_sessions: u32,
    /// Each backup-sessions query lowers open backup sessions by this much (sessions draining).
    pub sessions_drain_per_query: u32,
    pub scheduled_tasks: BTreeMap<String, SimTask>,
    /// Canonical path → installer.
    pub installers: BTreeMap<String, SimInstaller>,
    /// How long a service takes to change state.
    pub service_transition_ms: u64,
    pub faults: SimFaults,
    pub history: Vec<SimExecution>,
    /// Installed versions of the components other than the Data Center, each from its own record
    /// (the Management API and the Web Services applications have their own installers). The
    /// Data Center's own version is `product_version`, which Setup changes.
    pub components: BTreeMap<Component, String>,
    /// SQL Server data and log files on this host (Registry, Directory), with their volume.
    pub database_files: Vec<DatabaseFileFact>,
    /// The accounts SQL Server and SQL Server Agent run under; `None` without SQL Server.
    pub sql_accounts: Option<SqlAccountsFact>,
    /// SCHANNEL `Protocols\<name>\Server` `Enabled` settings; a protocol not listed is not set.
    pub schannel: BTreeMap<String, bool>,
    /// Subject alternative names of the certificates in `certificates`, by thumbprint.
    pub certificate_sans: BTreeMap<String, Vec<String>>,
    /// Whether the backup-session counters can be read on this host (the drain wait needs them).
    pub session_counters: bool,
}

impl Default for SimState {
    fn default() -> Self {
        SimState {
            hostname: "dc".into(),
            services: BTreeMap::new(),
            registry: BTreeMap::new(),
            files: BTreeMap::new(),
            product_version: None,
            windows: "2012 R2".into(),
            sql_server: None,
            disks: BTreeMap::new(),
            events: Vec::new(),
            iis_sites: BTreeMap::new(),
            iis_resets: 0,
            certificates: Vec::new(),
            backup_sessions: 0,
            restore_sessions: 0,
            sessions_drain_per_query: 0,
            scheduled_tasks: BTreeMap::new(),
            installers: BTreeMap::new(),
            service_transition_ms: 0,
            faults: SimFaults::default(),
            history: Vec::new(),
            components: BTreeMap::new(),
            database_files: Vec::new(),
            sql_accounts: None,
            schannel: BTreeMap::new(),
            certificate_sans: BTreeMap::new(),
            session_counters: true,
        }
    }
}

/// Where the seeded Data Center folder lives (matches the default file allowlist).
pub const DATA_CENTER_DIR: &str = r"C:\Program Files\Connected\DataCenter";

impl SimState {
    /// A typical Data Center server: Connected services running (automatic), the maintenance
    /// scripts calling SQL Server 2008's OSQL, WeeklyMaint/DailyMaint tasks, the product version
    /// in the registry, a C: drive, the Default Web Site with an HTTP binding.
    pub fn data_center_server(hostname: &str, version: &str) -> SimState {
        let mut s = SimState {
            hostname: hostname.to_string(),
            product_version: Some(version.to_string()),
            sql_server: Some("2008 R2 SP3".into()),
            sql_accounts: Some(SqlAccountsFact {
                sql_server: r"CONTOSO\svc-sql".into(),
                sql_agent: r"CONTOSO\svc-sql".into(),
            }),
            // Prepared as the guide asks: SSL 2.0 and 3.0 off, TLS 1.2 on.
            schannel: BTreeMap::from([
                ("SSL 2.0".to_string(), false),
                ("SSL 3.0".to_string(), false),
                ("TLS 1.2".to_string(), true),
            ]),
            ..SimState::default()
        };
        for name in crate::config::default_connected_services() {
            s.services.insert(
                name,
                SimService {
                    state: ServiceRunState::Running,
                    startup: StartupType::Automatic,
                },
            );
        }
        for name in ["W3SVC", "IISADMIN", "WAS", "MSSQLSERVER", "SQLSERVERAGENT"] {
            s.services.insert(
                name.into(),
                SimService {
                    state: ServiceRunState::Running,
                    startup: StartupType::Automatic,
                },
            );
        }
        s.registry.insert(
            r"HKLM\SOFTWARE\Wow6432Node\Connected\DataCenter".into(),
            BTreeMap::from([("Version".to_string(), version.to_string())]),
        );
        for script in ["DailyMaint.cmd", "WeeklyMaint.cmd"] {
            s.files.insert(
                format!(r"{DATA_CENTER_DIR}\{script}"),
                format!(
                    "@echo off\r\nrem Connected Backup {script}\r\n\"C:\\Program Files\\Microsoft SQL Server\\100\\Tools\\BINN\\OSQL.EXE\" -E -S {hostname} -i maint.sql\r\n"
                ),
            );
        }
        for task in ["WeeklyMaint", "DailyMaint"] {
            s.scheduled_tasks.insert(
                task.into(),
                SimTask {
                    result: 0,
                    runs: 0,
                    duration_ms: 0,
                    last_run: None,
                },
            );
        }
        s.disks.insert(
            "C:".into(),
            SimDisk {
                free_mb: 200_000,
                total_mb: 500_000,
            },
        );
        s.iis_sites.insert(
            "Default Web Site".into(),
            vec![Binding {
                protocol: "http".into(),
                binding_information: "*:80:".into(),
                certificate_thumbprint: None,
            }],
        );
        s
    }

    /// Sets one registry value (creating the key), with the key in canonical form.
    pub fn set_registry(&mut self, key: &str, name: &str, value: &str) {
        self.registry
            .entry(key.to_string())
            .or_default()
            .insert(name.to_string(), value.to_string());
    }

    /// The stored spelling of `key`, matched case-insensitively.
    pub fn registry_key(&self, key: &str) -> Option<&String> {
        self.registry.keys().find(|k| k.eq_ignore_ascii_case(key))
    }

    pub fn registry_value(&self, key: &str, name: &str) -> Option<&String> {
        let k = self.registry_key(key)?;
        self.registry
            .get(k)?
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The installed version of `component` as its own record says: the Data Center's is the
    /// product version Setup writes; the others are kept per component.
    pub fn component_version(&self, component: Component) -> Option<&str> {
        match component {
            Component::DataCenter => self.product_version.as_deref(),
            c => self.components.get(&c).map(String::as_str),
        }
    }

    /// How many times an action id changed this host (the at-most-once check).
    pub fn executions_of(&self, id: &str) -> usize {
        self.history.iter().filter(|h| h.id == id).count()
    }
}
