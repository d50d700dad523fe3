//! Site facts: what an agent finds on its server, reported on a schedule and on demand
//! (`GET /v1/facts`), so preflight and the steps act on the site as found rather than on what the
//! inventory or the runbook assumed (DESIGN "The site as found").
//!
//! Every field is optional or a list: a backend that cannot read one fact reports it as missing
//! (`None`, with the reason in [`SiteFacts::errors`]) rather than guessing. The Windows backend
//! reads structured sources (CIM objects and .NET APIs converted to JSON by PowerShell) so that
//! nothing depends on the language of the server; the simulated backend reads the simulated host.

use serde::{Deserialize, Serialize};

pub use crate::windows::Component;
use crate::windows::{ServiceRunState, StartupType};

/// Largest facts document an orchestrator reads, in bytes.
pub const MAX_FACTS_BYTES: usize = 1024 * 1024;

/// One installed component and its version, as its own record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentVersion {
    pub component: Component,
    /// e.g. "8.8.6" or "8.11".
    pub version: String,
}

/// A Windows service of the Connected group (or one the facts were asked about).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFact {
    pub name: String,
    pub state: ServiceRunState,
    pub startup: Option<StartupType>,
}

/// A volume and what of SQL Server lives on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeFact {
    /// e.g. "C:" or "E:".
    pub drive: String,
    pub free_mb: u64,
    pub total_mb: u64,
}

/// A SQL Server database file (data or log) and where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseFileFact {
    /// e.g. "Registry" or "Directory".
    pub database: String,
    /// "data" (`.mdf`) or "log" (`.ldf`).
    pub kind: DatabaseFileKind,
    /// Full path on the server.
    pub path: String,
    /// The volume that holds it (matches a [`VolumeFact::drive`]).
    pub drive: String,
    pub size_mb: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseFileKind {
    Data,
    Log,
}

/// The accounts SQL Server and SQL Server Agent run under (the guide: the same account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqlAccountsFact {
    pub sql_server: String,
    pub sql_agent: String,
}

/// One SCHANNEL protocol's setting (`...\SCHANNEL\Protocols\<name>\Server`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsProtocolFact {
    /// e.g. "TLS 1.2".
    pub protocol: String,
    /// `None` when the registry does not set it (the Windows default applies).
    pub enabled: Option<bool>,
}

/// A certificate in LocalMachine\My.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateFact {
    pub thumbprint: String,
    pub subject_cn: String,
    #[serde(default)]
    pub sans: Vec<String>,
    pub issuer: String,
    /// Unix seconds.
    pub not_after: i64,
    /// IIS bindings that use it, e.g. "Default Web Site *:443".
    #[serde(default)]
    pub bindings: Vec<String>,
}

/// Everything an agent reports about its server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteFacts {
    pub protocol: u32,
    pub hostname: String,
    /// Unix seconds on the agent's clock when the facts were read.
    pub collected_at: i64,
    /// Connected services installed on this server, in the order the guide stops them.
    #[serde(default)]
    pub services: Vec<ServiceFact>,
    /// Names of the Connected services the agent was configured with that are NOT installed.
    #[serde(default)]
    pub services_missing: Vec<String>,
    #[serde(default)]
    pub components: Vec<ComponentVersion>,
    #[serde(default)]
    pub volumes: Vec<VolumeFact>,
    #[serde(default)]
    pub database_files: Vec<DatabaseFileFact>,
    pub sql_accounts: Option<SqlAccountsFact>,
    #[serde(default)]
    pub tls_protocols: Vec<TlsProtocolFact>,
    #[serde(default)]
    pub certificates: Vec<CertificateFact>,
    /// e.g. "2016"; `None` when unreadable.
    pub windows: Option<String>,
    /// e.g. "2016"; `None` when SQL Server is not installed.
    pub sql_server: Option<String>,
    /// Whether the backup-session counters can be read here (the drain wait needs them).
    #[serde(default)]
    pub session_counters: bool,
    /// Facts that could not be read, each "fact: reason".
    #[serde(default)]
    pub errors: Vec<String>,
}

impl SiteFacts {
    /// Facts with nothing read yet (a backend fills in what it can and lists the rest in
    /// `errors`).
    pub fn empty(hostname: impl Into<String>, collected_at: i64) -> SiteFacts {
        SiteFacts {
            protocol: crate::PROTOCOL_VERSION,
            hostname: hostname.into(),
            collected_at,
            services: Vec::new(),
            services_missing: Vec::new(),
            components: Vec::new(),
            volumes: Vec::new(),
            database_files: Vec::new(),
            sql_accounts: None,
            tls_protocols: Vec::new(),
            certificates: Vec::new(),
            windows: None,
            sql_server: None,
            session_counters: false,
            errors: Vec::new(),
        }
    }

    /// The installed version of `component`, from its own record.
    pub fn version_of(&self, component: Component) -> Option<&str> {
        self.components
            .iter()
            .find(|c| c.component == component)
            .map(|c| c.version.as_str())
    }

    pub fn service(&self, name: &str) -> Option<&ServiceFact> {
        self.services
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }
}
