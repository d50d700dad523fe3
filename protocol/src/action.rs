//! The action catalog: every thing an agent can be asked to do, as typed arguments.
//!
//! There is no "run this command" action. Each variant is one allowlisted operation on a Data
//! Center server; the agent checks its arguments against its own allowlists (registry key
//! prefixes, file roots, task names, installer hashes) before anything runs.

use serde::{Deserialize, Serialize};

pub use crate::windows::{EventLevel, StartupType};

/// Which services an action concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "set", rename_all = "snake_case")]
pub enum ServiceSelector {
    /// The Connected Backup services group, as named in the agent's configuration.
    Connected,
    /// Named Windows services (short names, e.g. `W3SVC`).
    Named { names: Vec<String> },
}

/// A text edit on an allowlisted file: a typed operation of the guide, never free text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
pub enum TextEdit {
    /// Replace every `Microsoft SQL Server\NNN\Tools\BINN\OSQL.EXE` (any NNN, any case) with the
    /// given tools folder, e.g. `130` (SEED-NOTES 8).
    OsqlToolsFolder { folder: String },
    // No free-text edit: the agent builds every new content itself from a typed operation the
    // guide needs, so a compromised orchestrator cannot write a line of its own into a script
    // that an allowlisted task later runs (issue #20).
}

/// One action. Long ones (services, scheduled task, installer, SQL script) are accepted at once
/// and polled; the rest usually finish within the start request's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    ServicesStatus {
        services: ServiceSelector,
    },
    /// Stop, then wait until every service reports Stopped or `timeout_secs` passes.
    ServicesStop {
        services: ServiceSelector,
        timeout_secs: u64,
    },
    /// Start, then wait until every service reports Running or `timeout_secs` passes.
    ServicesStart {
        services: ServiceSelector,
        timeout_secs: u64,
    },
    ServiceSetStartup {
        service: String,
        startup: StartupType,
    },
    /// Read one value (`HKLM\...` key). Evidence says whether the key and the value exist.
    RegistryGet {
        key: String,
        name: String,
    },
    /// Write a string value (creating the key if needed); evidence carries the previous value.
    RegistrySet {
        key: String,
        name: String,
        value: String,
    },
    /// Delete a value (`name` given) or a whole key (`name` absent); evidence carries what was there.
    RegistryDelete {
        key: String,
        name: Option<String>,
    },
    /// Edit a text file under an allowlisted folder; a backup copy is kept and the diff returned.
    FileReplace {
        path: String,
        edit: TextEdit,
    },
    /// Run a scheduled task by name and wait for it to finish (e.g. `WeeklyMaint`).
    ScheduledTaskRun {
        task: String,
        timeout_secs: u64,
    },
    /// Run an installer whose path and SHA-256 are both in the agent's allowlist; the agent
    /// hashes the file itself and refuses on any mismatch. Arguments come from the allowlist.
    InstallerRun {
        path: String,
        sha256: String,
        timeout_secs: u64,
    },
    /// Free space on a drive or volume (e.g. `C:`).
    DiskFree {
        drive: String,
    },
    /// The installed version of a Connected component, read from that component's own record;
    /// without `component` (older orchestrators), the Data Center's.
    ProductVersion {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        component: Option<crate::windows::Component>,
    },
    /// Windows and SQL Server releases installed.
    OsVersion {},
    /// Backup and restore sessions currently open on this Data Center server.
    BackupSessions {},
    /// Events at `min_level` or more severe in `log` since `since` (unix seconds).
    EventLogQuery {
        log: String,
        min_level: EventLevel,
        since: i64,
    },
    IisReset {},
    /// Make sure `site` has an HTTPS binding on `port` with the certificate whose subject CN is
    /// `common_name` in LocalMachine\My; evidence carries the bindings before and after.
    IisHttpsBindingEnsure {
        site: String,
        port: u16,
        common_name: String,
    },
    IisBindingList {
        site: String,
    },
    /// Certificates in LocalMachine\My.
    CertificateList {},
    /// GET a URL from this host (for checks that must run "on a computer that does not host the
    /// component"); evidence carries status code and the start of the body.
    HttpProbe {
        url: String,
        timeout_secs: u64,
    },
    /// Run a `.sql` file under an allowlisted folder with the local `sqlcmd` (sites that prefer it).
    SqlScript {
        path: String,
        database: Option<String>,
        timeout_secs: u64,
    },
}

/// The name of an action's variant, for logs, fault injection and allowlists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    ServicesStatus,
    ServicesStop,
    ServicesStart,
    ServiceSetStartup,
    RegistryGet,
    RegistrySet,
    RegistryDelete,
    FileReplace,
    ScheduledTaskRun,
    InstallerRun,
    DiskFree,
    ProductVersion,
    OsVersion,
    BackupSessions,
    EventLogQuery,
    IisReset,
    IisHttpsBindingEnsure,
    IisBindingList,
    CertificateList,
    HttpProbe,
    SqlScript,
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::ServicesStatus { .. } => ActionKind::ServicesStatus,
            Action::ServicesStop { .. } => ActionKind::ServicesStop,
            Action::ServicesStart { .. } => ActionKind::ServicesStart,
            Action::ServiceSetStartup { .. } => ActionKind::ServiceSetStartup,
            Action::RegistryGet { .. } => ActionKind::RegistryGet,
            Action::RegistrySet { .. } => ActionKind::RegistrySet,
            Action::RegistryDelete { .. } => ActionKind::RegistryDelete,
            Action::FileReplace { .. } => ActionKind::FileReplace,
            Action::ScheduledTaskRun { .. } => ActionKind::ScheduledTaskRun,
            Action::InstallerRun { .. } => ActionKind::InstallerRun,
            Action::DiskFree { .. } => ActionKind::DiskFree,
            Action::ProductVersion { .. } => ActionKind::ProductVersion,
            Action::OsVersion {} => ActionKind::OsVersion,
            Action::BackupSessions {} => ActionKind::BackupSessions,
            Action::EventLogQuery { .. } => ActionKind::EventLogQuery,
            Action::IisReset {} => ActionKind::IisReset,
            Action::IisHttpsBindingEnsure { .. } => ActionKind::IisHttpsBindingEnsure,
            Action::IisBindingList { .. } => ActionKind::IisBindingList,
            Action::CertificateList {} => ActionKind::CertificateList,
            Action::HttpProbe { .. } => ActionKind::HttpProbe,
            Action::SqlScript { .. } => ActionKind::SqlScript,
        }
    }

    /// Whether the action changes the host (reads may be repeated freely; changes may not).
    pub fn is_change(&self) -> bool {
        !matches!(
            self.kind(),
            ActionKind::ServicesStatus
                | ActionKind::RegistryGet
                | ActionKind::DiskFree
                | ActionKind::ProductVersion
                | ActionKind::OsVersion
                | ActionKind::BackupSessions
                | ActionKind::EventLogQuery
                | ActionKind::IisBindingList
                | ActionKind::CertificateList
                | ActionKind::HttpProbe
        )
    }

    /// Whether a running instance may be cancelled (waiting phases only; never half a write).
    pub fn is_cancellable(&self) -> bool {
        matches!(
            self.kind(),
            ActionKind::ServicesStop
                | ActionKind::ServicesStart
                | ActionKind::ScheduledTaskRun
                | ActionKind::HttpProbe
        )
    }
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::ServicesStatus => "services_status",
            ActionKind::ServicesStop => "services_stop",
            ActionKind::ServicesStart => "services_start",
            ActionKind::ServiceSetStartup => "service_set_startup",
            ActionKind::RegistryGet => "registry_get",
            ActionKind::RegistrySet => "registry_set",
            ActionKind::RegistryDelete => "registry_delete",
            ActionKind::FileReplace => "file_replace",
            ActionKind::ScheduledTaskRun => "scheduled_task_run",
            ActionKind::InstallerRun => "installer_run",
            ActionKind::DiskFree => "disk_free",
            ActionKind::ProductVersion => "product_version",
            ActionKind::OsVersion => "os_version",
            ActionKind::BackupSessions => "backup_sessions",
            ActionKind::EventLogQuery => "event_log_query",
            ActionKind::IisReset => "iis_reset",
            ActionKind::IisHttpsBindingEnsure => "iis_https_binding_ensure",
            ActionKind::IisBindingList => "iis_binding_list",
            ActionKind::CertificateList => "certificate_list",
            ActionKind::HttpProbe => "http_probe",
            ActionKind::SqlScript => "sql_script",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_match_the_wire_names() {
        let a = Action::IisHttpsBindingEnsure {
            site: "Default Web Site".into(),
            port: 443,
            common_name: "dc1".into(),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["action"], a.kind().as_str());
        assert_eq!(serde_json::to_value(a.kind()).unwrap(), a.kind().as_str());
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let e = serde_json::from_str::<Action>(r#"{"action":"iis_reset","command":"del *"}"#);
        assert!(e.is_err());
        let e = serde_json::from_str::<Action>(r#"{"action":"disk_free","drive":"C:","x":1}"#);
        assert!(e.is_err());
        let e = serde_json::from_str::<Action>(r#"{"action":"shell","command":"del *"}"#);
        assert!(e.unwrap_err().to_string().contains("unknown variant"));
    }

    #[test]
    fn startup_types_parse_from_sc_and_human_spellings() {
        assert_eq!(StartupType::parse("auto").unwrap(), StartupType::Automatic);
        assert_eq!(
            StartupType::parse("Delayed-Automatic").unwrap(),
            StartupType::DelayedAutomatic
        );
        assert_eq!(StartupType::parse("demand").unwrap(), StartupType::Manual);
        assert!(StartupType::parse("sometimes").is_err());
    }
}
