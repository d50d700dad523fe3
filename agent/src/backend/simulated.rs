//! The simulated backend: performs actions on a [`SimState`] the way a Windows Data Center server
//! would answer them, with the configured delays and injected faults.
//!
//! Faithful where the orchestrator can tell: services pass through pending states and are waited
//! for, registry values return their previous data, file edits keep a backup and return a diff,
//! scheduled tasks take time and record their result, installers are hashed before they run and
//! change the product version, and each change is recorded in the state's `history`.

pub mod facts;
mod files;
mod host;
mod iis;
mod programs;
mod registry;
mod services;
pub mod state;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use lockstep_protocol::{Action, Evidence, SiteFacts};

pub use state::{
    read_state, IoCounts, SimDisk, SimEvent, SimExecution, SimFaults, SimInstaller, SimService,
    SimState, SimTask, SimulatedHost, DATA_CENTER_DIR,
};

use super::{http_probe, ActionCtx, Backend, Failure};
use crate::config::AgentConfig;
use crate::journal::now_ms;

pub struct SimulatedBackend {
    host: Arc<SimulatedHost>,
    connected: Vec<String>,
    product_version_key: String,
    product_version_value: String,
    config: AgentConfig,
}

impl SimulatedBackend {
    pub fn new(host: Arc<SimulatedHost>, config: &AgentConfig) -> SimulatedBackend {
        SimulatedBackend {
            host,
            connected: config.connected_services.clone(),
            product_version_key: config.product_version_key.clone(),
            product_version_value: config.product_version_value.clone(),
            config: config.clone(),
        }
    }

    pub fn host(&self) -> &Arc<SimulatedHost> {
        &self.host
    }

    fn update<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> Result<R, Failure> {
        self.host
            .update(f)
            .map_err(|e| Failure::msg(format!("simulated host state: {e}")))
    }

    /// Looks at the state without copying all of it.
    fn inspect<R>(&self, f: impl FnOnce(&SimState) -> R) -> Result<R, Failure> {
        self.host
            .inspect(f)
            .map_err(|e| Failure::msg(format!("simulated host state: {e}")))
    }

    fn record(s: &mut SimState, ctx: &ActionCtx, action: &Action) {
        s.history.push(SimExecution {
            id: ctx.id.to_string(),
            kind: action.kind(),
            at_ms: now_ms(),
        });
    }

    /// Performs one action on the state; each family of actions lives in its own module.
    async fn perform(&self, action: &Action, ctx: &ActionCtx) -> Result<Evidence, Failure> {
        match action {
            Action::ServicesStatus { services } => self.services_status(services),
            Action::ServicesStop {
                services,
                timeout_secs,
            } => {
                self.services_to(action, services, false, *timeout_secs, ctx)
                    .await
            }
            Action::ServicesStart {
                services,
                timeout_secs,
            } => {
                self.services_to(action, services, true, *timeout_secs, ctx)
                    .await
            }
            Action::ServiceSetStartup { service, startup } => {
                self.service_set_startup(action, service, *startup, ctx)
            }
            Action::RegistryGet { key, name } => self.registry_get(key, name),
            Action::RegistrySet { key, name, value } => {
                self.registry_set(action, key, name, value, ctx)
            }
            Action::RegistryDelete { key, name } => {
                self.registry_delete(action, key, name.as_deref(), ctx)
            }
            Action::FileReplace { path, edit } => self.file_replace(action, path, edit, ctx),
            Action::ScheduledTaskRun { task, timeout_secs } => {
                self.scheduled_task_run(action, task, *timeout_secs, ctx)
                    .await
            }
            Action::InstallerRun { path, sha256, .. } => {
                self.installer_run(action, path, sha256, ctx).await
            }
            Action::SqlScript { path, .. } => self.sql_script(action, path, ctx),
            Action::DiskFree { drive } => self.disk_free(drive),
            Action::ProductVersion { component } => self.component_version(*component),
            Action::OsVersion {} => self.os_version(),
            Action::BackupSessions {} => self.backup_sessions(),
            Action::EventLogQuery {
                log,
                min_level,
                since,
            } => self.event_log_query(log, *min_level, *since),
            Action::IisReset {} => self.iis_reset(action, ctx),
            Action::IisHttpsBindingEnsure {
                site,
                port,
                common_name,
            } => self.https_binding_ensure(action, site, *port, common_name, ctx),
            Action::IisBindingList { site } => self.binding_list(site),
            Action::CertificateList {} => self.certificate_list(),
            Action::HttpProbe { url, timeout_secs } => http_probe(url, *timeout_secs, ctx).await,
        }
    }
}

/// The CN of an X.500 subject such as `CN=dc1.contoso.local, O=Contoso`.
pub fn cn_of(subject: &str) -> Option<&str> {
    subject.split(',').map(str::trim).find_map(|part| {
        part.strip_prefix("CN=")
            .or_else(|| part.strip_prefix("cn="))
    })
}

#[async_trait::async_trait]
impl Backend for SimulatedBackend {
    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn run(&self, action: &Action, ctx: &ActionCtx) -> Result<Evidence, Failure> {
        let faults = self.inspect(|s| s.faults.clone())?;
        let kind = action.kind();
        if faults.crash.contains(&kind) {
            // "Crash mid-action": the id is journaled, nothing was done, the process dies.
            tracing::error!(id = %ctx.id, ?kind, "simulated crash (fault injection)");
            std::process::abort();
        }
        if let Some(ms) = faults.delay_ms.get(&kind) {
            ctx.pause(Duration::from_millis(*ms)).await?;
        }
        if faults.hang.contains(&kind) {
            ctx.log("hanging (fault injection)");
            loop {
                ctx.pause(Duration::from_secs(3600)).await?;
            }
        }
        if let Some(message) = faults.fail.get(&kind) {
            return Err(Failure::msg(format!("{message} (fault injection)")));
        }
        self.perform(action, ctx).await
    }

    async fn facts(&self) -> SiteFacts {
        let now = crate::core::unix_now();
        match self
            .host
            .inspect(|s| facts::facts_of(s, &self.connected, now))
        {
            Ok(facts) => facts,
            Err(e) => {
                let mut f = SiteFacts::empty("unknown", now);
                f.errors.push(format!("simulated host state: {e}"));
                f
            }
        }
    }
}
