//! Structured evidence: what an action found or changed, in a shape the orchestrator can check
//! (post-conditions) and show (the audit record), one variant per family of actions.

use serde::{Deserialize, Serialize};

pub use crate::windows::ServiceRunState;
use crate::windows::{EventLevel, StartupType};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    pub state: ServiceRunState,
    pub startup: Option<StartupType>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryValue {
    pub key: String,
    pub name: String,
    pub key_exists: bool,
    /// `None` when the value does not exist.
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Unix seconds.
    pub time: i64,
    pub level: EventLevel,
    pub source: String,
    pub event_id: u32,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub protocol: String,
    /// `ip:port:host` as IIS writes it, e.g. `*:443:`.
    pub binding_information: String,
    /// Thumbprint of the bound certificate (HTTPS only).
    pub certificate_thumbprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateInfo {
    pub thumbprint: String,
    pub subject: String,
    pub issuer: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// What an action found or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "evidence", rename_all = "snake_case")]
pub enum Evidence {
    Services {
        services: Vec<ServiceInfo>,
        /// For a stop or start: the same services as they were before it (read first, so the
        /// log can say "Stopped BackupServer (was Running)"); empty for a status read and from
        /// agents older than this field.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        before: Vec<ServiceInfo>,
        /// Services of the Connected group that are not installed on this server (left out of
        /// the action: the agent acts on what is there).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        absent: Vec<String>,
        /// Why a service was left alone (e.g. a disabled DCAlerter, which the guide allows).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    StartupChanged {
        service: String,
        previous: Option<StartupType>,
        now: StartupType,
    },
    Registry {
        value: RegistryValue,
    },
    RegistryChanged {
        key: String,
        name: String,
        previous: Option<String>,
        now: String,
    },
    RegistryDeleted {
        key: String,
        name: Option<String>,
        /// The values that were there (name → data), so the deletion can be undone.
        previous: Vec<(String, String)>,
        existed: bool,
    },
    FileEdited {
        path: String,
        /// Where the original was copied before the edit (`None` when nothing changed).
        backup: Option<String>,
        replacements: u32,
        /// Unified-style diff: `-` old line, `+` new line, with line numbers.
        diff: String,
    },
    TaskRun {
        task: String,
        /// The task's last result code (0 = success).
        last_result: i64,
        duration_ms: u64,
    },
    Installed {
        path: String,
        sha256: String,
        exit_code: i32,
        /// Product version read after the installer finished.
        product_version: Option<String>,
    },
    DiskFree {
        drive: String,
        free_mb: u64,
        total_mb: u64,
    },
    ProductVersion {
        version: Option<String>,
        /// Whose version it is (absent: the Data Center's, as older agents answer).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        component: Option<crate::windows::Component>,
    },
    OsVersion {
        /// e.g. "2016".
        windows: String,
        /// e.g. "2016" or `None` when SQL Server is not installed.
        sql_server: Option<String>,
    },
    BackupSessions {
        backups: u32,
        restores: u32,
    },
    /// The backup-session counters cannot be read on this server (none configured, or the
    /// counters are missing): a person must watch the sessions instead (the drain falls back to
    /// a manual confirmation).
    SessionCountersUnavailable {
        reason: String,
    },
    Events {
        log: String,
        since: i64,
        events: Vec<EventRecord>,
    },
    IisReset {
        output: String,
    },
    Bindings {
        site: String,
        bindings: Vec<Binding>,
        /// For ensure: what was there before (`None` for a plain list).
        before: Option<Vec<Binding>>,
        changed: bool,
    },
    Certificates {
        certificates: Vec<CertificateInfo>,
    },
    HttpProbe {
        url: String,
        status: u16,
        /// The first 4 KiB of the body, lossily decoded.
        body_start: String,
    },
    SqlScript {
        path: String,
        exit_code: i32,
        output: String,
    },
}

impl Evidence {
    /// The variant's name as on the wire (`evidence` tag).
    pub fn name(&self) -> &'static str {
        match self {
            Evidence::Services { .. } => "services",
            Evidence::StartupChanged { .. } => "startup_changed",
            Evidence::Registry { .. } => "registry",
            Evidence::RegistryChanged { .. } => "registry_changed",
            Evidence::RegistryDeleted { .. } => "registry_deleted",
            Evidence::FileEdited { .. } => "file_edited",
            Evidence::TaskRun { .. } => "task_run",
            Evidence::Installed { .. } => "installed",
            Evidence::DiskFree { .. } => "disk_free",
            Evidence::ProductVersion { .. } => "product_version",
            Evidence::OsVersion { .. } => "os_version",
            Evidence::BackupSessions { .. } => "backup_sessions",
            Evidence::SessionCountersUnavailable { .. } => "session_counters_unavailable",
            Evidence::Events { .. } => "events",
            Evidence::IisReset { .. } => "iis_reset",
            Evidence::Bindings { .. } => "bindings",
            Evidence::Certificates { .. } => "certificates",
            Evidence::HttpProbe { .. } => "http_probe",
            Evidence::SqlScript { .. } => "sql_script",
        }
    }
}

/// The one table of which evidence each action produces. The orchestrator believes an answer
/// only when its evidence is of a kind listed here for the action it asked for: a services stop
/// answered with a product version is an answer to some other question.
pub fn evidence_for(kind: crate::ActionKind) -> &'static [&'static str] {
    use crate::ActionKind as K;
    match kind {
        K::ServicesStatus | K::ServicesStop | K::ServicesStart => &["services"],
        K::ServiceSetStartup => &["startup_changed"],
        K::RegistryGet => &["registry"],
        K::RegistrySet => &["registry_changed"],
        K::RegistryDelete => &["registry_deleted"],
        K::FileReplace => &["file_edited"],
        K::ScheduledTaskRun => &["task_run"],
        K::InstallerRun => &["installed"],
        K::DiskFree => &["disk_free"],
        K::ProductVersion => &["product_version"],
        K::OsVersion => &["os_version"],
        K::BackupSessions => &["backup_sessions", "session_counters_unavailable"],
        K::EventLogQuery => &["events"],
        K::IisReset => &["iis_reset"],
        K::IisHttpsBindingEnsure | K::IisBindingList => &["bindings"],
        K::CertificateList => &["certificates"],
        K::HttpProbe => &["http_probe"],
        K::SqlScript => &["sql_script"],
    }
}

#[cfg(test)]
mod binding_tests {
    use super::*;

    #[test]
    fn every_evidence_name_is_its_wire_tag() {
        let e = Evidence::IisReset {
            output: "ok".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["evidence"], e.name());
        assert!(evidence_for(crate::ActionKind::IisReset).contains(&e.name()));
        assert!(!evidence_for(crate::ActionKind::ServicesStop).contains(&"product_version"));
    }
}
