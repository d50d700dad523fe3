//! The vocabulary of what a step does, with every argument resolved for one host.
//!
//! Runbooks write operations with selectors ("the other Registry server"); plan expansion resolves
//! them into these concrete values. Executors translate them into agent protocol actions, SQL or
//! HTTP probes. Everything here is plain data (serde), so it can be hashed for content-bound
//! approvals and stored with the run.

use serde::{Deserialize, Serialize};

/// Which Windows services an operation concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "set", rename_all = "snake_case")]
pub enum ServiceSet {
    /// Every Connected Backup service on the host (configurable names; SEED-NOTES "What is not public").
    Connected,
    /// Named services, e.g. ["W3SVC", "IISADMIN"].
    Named { names: Vec<String> },
}

/// The registry value a redirect changes (SEED-NOTES 1, 2, 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedirectValue {
    /// `RegistryConnect` under one of the three SupportCenter keys the seed names.
    RegistryConnect,
    /// `DB_PreferedRegistry` under `Wow6432Node\Outflow` or `Wow6432Node\Connected\Outflow`.
    DbPreferedRegistry,
}

/// An SQL database probe or change.
///
/// Where a plan step runs one of these: `CheckDb`, `UpdateStats` and `RunScript` act on the
/// databases of the step's `host`. `OutflowUrlHost` and `SecureFlagOff` act on the
/// OutflowServices table of EVERY Registry database in the inventory (primary and secondary,
/// SEED-NOTES 10); their step's `host` is the DataTransfer node whose row changes, which is not
/// where the SQL runs. `OutflowRead` reads every Registry database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "sql", rename_all = "snake_case")]
pub enum SqlOperation {
    /// DBCC CHECKDB for each named database that exists on the server (SEED-NOTES 9).
    CheckDb { databases: Vec<String> },
    /// sp_updatestats for each named database that exists on the server.
    UpdateStats { databases: Vec<String> },
    /// Run a site script from the Data Center folder, batch by batch on `GO`.
    RunScript { path: String },
    /// Rewrite an OutflowServices URL host (`<host>/ose/OutflowServiceExtension.dll`) in every
    /// Registry database, matched by host and suffix (SEED-NOTES 3, 10).
    OutflowUrlHost { from_host: String, to_host: String },
    /// `secureFlag = 0` for all nodes, or for the node whose URL host is `host`.
    SecureFlagOff { host: Option<String> },
    /// Read OutflowServices (evidence only).
    OutflowRead,
    /// `BACKUP DATABASE … WITH CHECKSUM, INIT` into `folder`, then `RESTORE VERIFYONLY … WITH
    /// CHECKSUM`, for each named database that exists on the server; every backup is recorded
    /// (database, server, file, size, time, verified) so a recovery run can find it.
    BackupVerify {
        databases: Vec<String>,
        folder: String,
    },
    /// `RESTORE DATABASE … WITH REPLACE` from the verified backups of run `from_run` (read
    /// from the store when the step runs), for the databases on the step's server; with
    /// `verify_only`, only `RESTORE VERIFYONLY` (proves the way back before anything stops).
    RestoreFromRun {
        from_run: String,
        #[serde(default)]
        verify_only: bool,
    },
}

/// A verification probe of a web component.
///
/// The probed server is in the URL; the plan step's `host` is the server the seed says to probe
/// FROM (one that does not host the component), or `None` for Lockstep itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "probe", rename_all = "snake_case")]
pub enum ProbeOperation {
    /// Support Center logon page shows `expect_version` at the bottom.
    SupportCenter { url: String, expect_version: String },
    /// `…/ose/OutflowServiceExtension.dll/status` answers well-formed XML.
    DataTransferStatus { url: String },
    /// ManagementService.svc page's first sentence starts "You have created a" (SEED-NOTES 13).
    ManagementService { url: String },
}

/// A condition a wait step polls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "until", rename_all = "snake_case")]
pub enum WaitCondition {
    /// Current backup sessions at or below `max` continuously for `stable_secs`.
    BackupSessionsLow { max: u32, stable_secs: u64 },
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Nothing to execute (approval gates, notes).
    None,
    /// Person-performed work; `verify` lists what is checked before it counts as done.
    Manual {
        instructions: String,
    },
    Wait {
        condition: WaitCondition,
        interval_secs: u64,
        timeout_secs: u64,
    },
    ServicesStop {
        services: ServiceSet,
    },
    ServicesStart {
        services: ServiceSet,
    },
    /// All listed services are running.
    ServicesRunning {
        services: ServiceSet,
    },
    SetStartupType {
        service: String,
        startup: String,
    },
    /// Point a Web Services registry value at another Registry server; the previous value is
    /// captured as evidence for undo. Key spelling is resolved on the host (SEED-NOTES 1, 2).
    Redirect {
        value: RedirectValue,
        to_server: String,
    },
    /// Set a string value under an allowlisted key (previous value captured).
    RegistrySet {
        key: String,
        name: String,
        value: String,
    },
    /// Delete a key (e.g. `...\Connected\MAPI` when uninstalling the Management API).
    RegistryDeleteKey {
        key: String,
    },
    /// Replace any `Microsoft SQL Server\NNN\Tools\BINN\OSQL.EXE` with the target folder (SEED-NOTES 8).
    OsqlPathReplace {
        files: Vec<String>,
        tools_folder: String,
    },
    RunScheduledTask {
        task: String,
    },
    IisReset,
    IisHttpsBinding {
        port: u16,
        common_name: String,
    },
    /// The installed version of a Connected component equals `expect`, read from that
    /// component's own record; without `component`, the Data Center's (the field is left out of
    /// the serialized form then, so plans and content hashes made before it read the same).
    ProductVersion {
        expect: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        component: Option<lockstep_protocol::Component>,
    },
    /// No warning or error in the Application event log since the step began.
    EventLogClean,
    /// A supported Windows / SQL Server release is installed.
    OsVersion {
        windows: Option<String>,
        sql_server: Option<String>,
    },
    Sql(SqlOperation),
    Probe(ProbeOperation),
}
