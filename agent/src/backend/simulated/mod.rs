//! The simulated backend: performs actions on a [`SimState`] the way a Windows Data Center server
//! would answer them, with the configured delays and injected faults.
//!
//! Faithful where the orchestrator can tell: services pass through pending states and are waited
//! for, registry values return their previous data, file edits keep a backup and return a diff,
//! scheduled tasks take time and record their result, installers are hashed before they run and
//! change the product version, and each change is recorded in the state's `history`.

pub mod facts;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use lockstep_protocol::evidence::{Binding, RegistryValue, ServiceInfo, ServiceRunState};
use lockstep_protocol::{Action, Component, Evidence, ServiceSelector, SiteFacts};

pub use state::{
    read_state, SimDisk, SimEvent, SimExecution, SimFaults, SimInstaller, SimService, SimState,
    SimTask, SimulatedHost, DATA_CENTER_DIR,
};

use super::select::{self, Selection};
use super::{edit, http_probe, ActionCtx, Backend, Failure};
use crate::config::AgentConfig;
use crate::journal::now_ms;
use crate::policy::{is_under, normalize_path, normalize_registry_key, resolve_path};

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

    fn read(&self) -> Result<SimState, Failure> {
        self.host
            .read()
            .map_err(|e| Failure::msg(format!("simulated host state: {e}")))
    }

    /// The services an action acts on: named ones as given; of the Connected group, the ones
    /// installed here ([`select::connected`]), with what was left out and why.
    fn choose(&self, sel: &ServiceSelector, starting: bool) -> Result<Selection, Failure> {
        match sel {
            ServiceSelector::Connected => {
                let s = self.read()?;
                Ok(select::connected(
                    &Self::service_infos(&s, &self.connected),
                    starting,
                ))
            }
            ServiceSelector::Named { names } => Ok(Selection {
                act: names.clone(),
                ..Selection::default()
            }),
        }
    }

    fn services_evidence(
        services: Vec<ServiceInfo>,
        before: &[ServiceInfo],
        chosen: &Selection,
    ) -> Evidence {
        Evidence::Services {
            services,
            before: before.to_vec(),
            absent: chosen.absent.clone(),
            notes: chosen.notes.clone(),
        }
    }

    fn record(s: &mut SimState, ctx: &ActionCtx, action: &Action) {
        s.history.push(SimExecution {
            id: ctx.id.to_string(),
            kind: action.kind(),
            at_ms: now_ms(),
        });
    }

    fn service_infos(s: &SimState, names: &[String]) -> Vec<ServiceInfo> {
        names
            .iter()
            .map(
                |n| match s.services.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)) {
                    Some((k, svc)) => ServiceInfo {
                        name: k.clone(),
                        state: svc.state,
                        startup: Some(svc.startup),
                    },
                    None => ServiceInfo {
                        name: n.clone(),
                        state: ServiceRunState::NotInstalled,
                        startup: None,
                    },
                },
            )
            .collect()
    }

    /// Moves services through the pending state to `target`, then waits until they report it.
    async fn services_to(
        &self,
        action: &Action,
        sel: &ServiceSelector,
        start: bool,
        timeout_secs: u64,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let chosen = self.choose(sel, start)?;
        let names = chosen.act.clone();
        let (pending, target) = if start {
            (ServiceRunState::StartPending, ServiceRunState::Running)
        } else {
            (ServiceRunState::StopPending, ServiceRunState::Stopped)
        };
        let (transition, before) = self.update(|s| {
            // Read before write: the states as they were, for the evidence.
            let before = Self::service_infos(s, &names);
            Self::record(s, ctx, action);
            for n in &names {
                if let Some((_, svc)) = s
                    .services
                    .iter_mut()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                {
                    if svc.state != target {
                        svc.state = pending;
                    }
                }
            }
            (s.service_transition_ms, before)
        })?;
        ctx.log(format!(
            "{} {} service(s): {}",
            if start { "starting" } else { "stopping" },
            names.len(),
            names.join(", ")
        ));
        ctx.pause(Duration::from_millis(transition)).await?;
        let (evidence, refused) = self.update(|s| {
            let mut refused = Vec::new();
            for n in &names {
                let fails = start
                    && s.faults
                        .services_fail_to_start
                        .iter()
                        .any(|f| f.eq_ignore_ascii_case(n));
                if let Some((k, svc)) = s
                    .services
                    .iter_mut()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                {
                    svc.state = if fails {
                        refused.push(k.clone());
                        ServiceRunState::Stopped
                    } else {
                        target
                    };
                }
            }
            (Self::service_infos(s, &names), refused)
        })?;
        // As on Windows: a start that was refused leaves the service stopped, and waiting for
        // it until the timeout would only delay the failure.
        if !refused.is_empty() {
            return Err(Failure::Failed {
                message: format!(
                    "did not start and stays stopped: {} (the service refused to start)",
                    refused.join(", ")
                ),
                evidence: Some(Self::services_evidence(evidence, &before, &chosen)),
            });
        }
        let missing: Vec<&ServiceInfo> = evidence.iter().filter(|i| i.state != target).collect();
        if missing.is_empty() {
            return Ok(Self::services_evidence(evidence, &before, &chosen));
        }
        // Wait for the rest the way the Windows backend polls, until the timeout.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_secs);
        loop {
            let now = self.read()?;
            let infos = Self::service_infos(&now, &names);
            if infos.iter().all(|i| i.state == target) {
                return Ok(Self::services_evidence(infos, &before, &chosen));
            }
            if tokio::time::Instant::now() >= deadline {
                let late: Vec<String> = infos
                    .iter()
                    .filter(|i| i.state != target)
                    .map(|i| format!("{} ({:?})", i.name, i.state))
                    .collect();
                return Err(Failure::Failed {
                    message: format!(
                        "not {:?} within {timeout_secs} s: {}",
                        target,
                        late.join(", ")
                    ),
                    evidence: Some(Self::services_evidence(infos, &before, &chosen)),
                });
            }
            ctx.pause(Duration::from_millis(500)).await?;
        }
    }

    async fn perform(&self, action: &Action, ctx: &ActionCtx) -> Result<Evidence, Failure> {
        match action {
            Action::ServicesStatus { services } => {
                let chosen = self.choose(services, true)?;
                let s = self.read()?;
                Ok(Self::services_evidence(Self::service_infos(&s, &chosen.act), &[], &chosen))
            }
            Action::ServicesStop { services, timeout_secs } => {
                self.services_to(action, services, false, *timeout_secs, ctx).await
            }
            Action::ServicesStart { services, timeout_secs } => {
                self.services_to(action, services, true, *timeout_secs, ctx).await
            }
            Action::ServiceSetStartup { service, startup } => self.update(|s| {
                Self::record(s, ctx, action);
                match s.services.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(service)) {
                    Some((_, svc)) => {
                        let previous = svc.startup;
                        svc.startup = *startup;
                        Ok(Evidence::StartupChanged {
                            service: service.clone(),
                            previous: Some(previous),
                            now: *startup,
                        })
                    }
                    None => Err(Failure::msg(format!("service `{service}` is not installed"))),
                }
            })?,
            Action::RegistryGet { key, name } => {
                let k = normalize_registry_key(key).map_err(|e| Failure::msg(e.message))?;
                let s = self.read()?;
                Ok(Evidence::Registry {
                    value: RegistryValue {
                        key: k.clone(),
                        name: name.clone(),
                        key_exists: s.registry_key(&k).is_some(),
                        value: s.registry_value(&k, name).cloned(),
                    },
                })
            }
            Action::RegistrySet { key, name, value } => {
                let k = normalize_registry_key(key).map_err(|e| Failure::msg(e.message))?;
                self.update(|s| {
                    Self::record(s, ctx, action);
                    let stored = s.registry_key(&k).cloned().unwrap_or(k.clone());
                    let values = s.registry.entry(stored).or_default();
                    let existing = values.keys().find(|n| n.eq_ignore_ascii_case(name)).cloned();
                    let previous = existing.as_ref().and_then(|n| values.remove(n));
                    values.insert(existing.unwrap_or(name.clone()), value.clone());
                    Evidence::RegistryChanged {
                        key: k.clone(),
                        name: name.clone(),
                        previous,
                        now: value.clone(),
                    }
                })
            }
            Action::RegistryDelete { key, name } => {
                let k = normalize_registry_key(key).map_err(|e| Failure::msg(e.message))?;
                self.update(|s| {
                    Self::record(s, ctx, action);
                    match name {
                        Some(n) => {
                            let stored = s.registry_key(&k).cloned();
                            let removed = stored.and_then(|sk| {
                                let values = s.registry.get_mut(&sk)?;
                                let vn = values.keys().find(|x| x.eq_ignore_ascii_case(n)).cloned()?;
                                values.remove(&vn).map(|v| (vn, v))
                            });
                            Evidence::RegistryDeleted {
                                key: k.clone(),
                                name: Some(n.clone()),
                                existed: removed.is_some(),
                                previous: removed.into_iter().collect(),
                            }
                        }
                        None => {
                            // The key and every key below it, as `reg delete KEY /f` does.
                            let doomed: Vec<String> =
                                s.registry.keys().filter(|x| is_under(x, &k)).cloned().collect();
                            let mut previous = Vec::new();
                            for d in &doomed {
                                if let Some(values) = s.registry.remove(d) {
                                    previous.extend(values);
                                }
                            }
                            Evidence::RegistryDeleted {
                                key: k.clone(),
                                name: None,
                                previous,
                                existed: !doomed.is_empty(),
                            }
                        }
                    }
                })
            }
            Action::FileReplace { path, edit } => {
                let p = resolve_path(&self.config, path).map_err(|e| Failure::msg(e.message))?;
                self.update(|s| {
                    let Some((stored, text)) =
                        s.files.iter().find(|(k, _)| k.eq_ignore_ascii_case(&p)).map(|(k, v)| (k.clone(), v.clone()))
                    else {
                        return Err(Failure::msg(format!("file `{p}` does not exist")));
                    };
                    Self::record(s, ctx, action);
                    let e = edit::apply(&text, edit);
                    let backup = if e.replacements > 0 {
                        let b = format!("{stored}.lockstep-{}.bak", ctx.id.as_str().replace(['/', ':', '@', '#'], "_"));
                        s.files.insert(b.clone(), text);
                        s.files.insert(stored.clone(), e.text.clone());
                        Some(b)
                    } else {
                        None
                    };
                    Ok(Evidence::FileEdited {
                        path: stored,
                        backup,
                        replacements: e.replacements,
                        diff: e.diff,
                    })
                })?
            }
            Action::ScheduledTaskRun { task, timeout_secs } => {
                let started = std::time::Instant::now();
                let duration = self.update(|s| {
                    Self::record(s, ctx, action);
                    s.scheduled_tasks
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(task))
                        .map(|(_, t)| t.duration_ms)
                })?;
                let Some(duration) = duration else {
                    return Err(Failure::msg(format!("scheduled task `{task}` does not exist")));
                };
                ctx.log(format!("task {task} running"));
                if duration > timeout_secs * 1000 {
                    ctx.pause(Duration::from_secs(*timeout_secs)).await?;
                    return Err(Failure::msg(format!("task {task} still running after {timeout_secs} s")));
                }
                ctx.pause(Duration::from_millis(duration)).await?;
                let result = self.update(|s| {
                    let t = s.scheduled_tasks.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(task)).map(|(_, t)| t);
                    t.map(|t| {
                        t.runs += 1;
                        t.last_run = Some(now_ms() / 1000);
                        t.result
                    })
                    .unwrap_or(-1)
                })?;
                let ev = Evidence::TaskRun {
                    task: task.clone(),
                    last_result: result,
                    duration_ms: started.elapsed().as_millis() as u64,
                };
                if result == 0 {
                    Ok(ev)
                } else {
                    Err(Failure::Failed { message: format!("task {task} ended with result {result}"), evidence: Some(ev) })
                }
            }
            Action::InstallerRun { path, sha256, .. } => {
                let p = normalize_path(path).map_err(|e| Failure::msg(e.message))?;
                let s = self.read()?;
                let Some(inst) = s.installers.iter().find(|(k, _)| k.eq_ignore_ascii_case(&p)).map(|(_, v)| v.clone()) else {
                    return Err(Failure::msg(format!("installer `{p}` is not on this host")));
                };
                // The file on disk must hash to what was allowlisted and requested.
                if !inst.sha256.eq_ignore_ascii_case(sha256) {
                    return Err(Failure::msg(format!(
                        "installer `{p}` hashes to {} on this host, not {sha256}; not run",
                        inst.sha256
                    )));
                }
                self.update(|s| Self::record(s, ctx, action))?;
                ctx.log(format!("running {p}"));
                ctx.pause(Duration::from_millis(inst.duration_ms)).await?;
                let version = self.update(|s| {
                    if inst.exit_code == 0 {
                        let v = s.faults.version_after_setup.clone().unwrap_or(inst.installs_version.clone());
                        s.product_version = Some(v.clone());
                        let key = self.product_version_key.clone();
                        let k = s.registry_key(&key).cloned().unwrap_or(key);
                        s.registry.entry(k).or_default().insert(self.product_version_value.clone(), v);
                    }
                    s.product_version.clone()
                })?;
                let ev = Evidence::Installed {
                    path: p.clone(),
                    sha256: inst.sha256.clone(),
                    exit_code: inst.exit_code,
                    product_version: version,
                };
                if inst.exit_code == 0 {
                    Ok(ev)
                } else {
                    Err(Failure::Failed { message: format!("installer exited with {}", inst.exit_code), evidence: Some(ev) })
                }
            }
            Action::DiskFree { drive } => {
                let s = self.read()?;
                match s.disks.iter().find(|(k, _)| k.eq_ignore_ascii_case(drive)) {
                    Some((k, d)) => Ok(Evidence::DiskFree { drive: k.clone(), free_mb: d.free_mb, total_mb: d.total_mb }),
                    None => Err(Failure::msg(format!("drive {drive} does not exist"))),
                }
            }
            Action::ProductVersion { component } => {
                let s = self.read()?;
                // The Data Center's own record is `product_version`; every other component
                // keeps its own (absent: not installed on this host).
                let version = match component {
                    None | Some(Component::DataCenter) => s.product_version,
                    Some(c) => s.components.get(c).cloned(),
                };
                Ok(Evidence::ProductVersion { version, component: *component })
            }
            Action::OsVersion {} => {
                let s = self.read()?;
                Ok(Evidence::OsVersion { windows: s.windows, sql_server: s.sql_server })
            }
            Action::BackupSessions {} if !self.read()?.session_counters => Err(Failure::Failed {
                message: "backup-session counters unavailable on this server: a person must watch the sessions in the DCMC".into(),
                evidence: Some(Evidence::SessionCountersUnavailable {
                    reason: "the simulated server publishes no backup-session counters".into(),
                }),
            }),
            Action::BackupSessions {} => self.update(|s| {
                if !s.session_counters {
                    return Err(Failure::msg("backup-session counters are unavailable on this host"));
                }
                let ev = Evidence::BackupSessions { backups: s.backup_sessions, restores: s.restore_sessions };
                s.backup_sessions = s.backup_sessions.saturating_sub(s.sessions_drain_per_query);
                Ok(ev)
            })?,
            Action::EventLogQuery { log, min_level, since } => {
                let s = self.read()?;
                let events = s
                    .events
                    .into_iter()
                    .filter(|e| e.log.eq_ignore_ascii_case(log) && e.record.time >= *since && e.record.level <= *min_level)
                    .map(|e| e.record)
                    .collect();
                Ok(Evidence::Events { log: log.clone(), since: *since, events })
            }
            Action::IisReset {} => self.update(|s| {
                Self::record(s, ctx, action);
                s.iis_resets += 1;
                // iisreset stops, then starts the Internet services — stopped ones included.
                for name in ["IISADMIN", "WAS", "W3SVC"] {
                    if let Some(svc) = s.services.get_mut(name) {
                        svc.state = ServiceRunState::Running;
                    }
                }
                Evidence::IisReset {
                    output: "Attempting stop...\r\nInternet services successfully stopped\r\nAttempting start...\r\nInternet services successfully restarted".into(),
                }
            }),
            Action::IisHttpsBindingEnsure { site, port, common_name } => self.update(|s| {
                let cert = s
                    .certificates
                    .iter()
                    .find(|c| cn_of(&c.subject).is_some_and(|cn| cn.eq_ignore_ascii_case(common_name)))
                    .cloned();
                let Some(cert) = cert else {
                    return Err(Failure::msg(format!(
                        "no certificate with CN={common_name} in LocalMachine\\My; install it first"
                    )));
                };
                let Some((site_name, bindings)) = s.iis_sites.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(site)) else {
                    return Err(Failure::msg(format!("IIS site `{site}` does not exist")));
                };
                let site_name = site_name.clone();
                let before = bindings.clone();
                let info = format!("*:{port}:");
                let mut changed = false;
                match bindings.iter_mut().find(|b| b.protocol == "https" && b.binding_information == info) {
                    Some(b) if b.certificate_thumbprint.as_deref() == Some(cert.thumbprint.as_str()) => {}
                    Some(b) => {
                        b.certificate_thumbprint = Some(cert.thumbprint.clone());
                        changed = true;
                    }
                    None => {
                        bindings.push(Binding {
                            protocol: "https".into(),
                            binding_information: info,
                            certificate_thumbprint: Some(cert.thumbprint.clone()),
                        });
                        changed = true;
                    }
                }
                let after = bindings.clone();
                if changed {
                    Self::record(s, ctx, action);
                }
                Ok(Evidence::Bindings { site: site_name, bindings: after, before: Some(before), changed })
            })?,
            Action::IisBindingList { site } => {
                let s = self.read()?;
                match s.iis_sites.iter().find(|(k, _)| k.eq_ignore_ascii_case(site)) {
                    Some((k, b)) => Ok(Evidence::Bindings { site: k.clone(), bindings: b.clone(), before: None, changed: false }),
                    None => Err(Failure::msg(format!("IIS site `{site}` does not exist"))),
                }
            }
            Action::CertificateList {} => Ok(Evidence::Certificates { certificates: self.read()?.certificates }),
            Action::HttpProbe { url, timeout_secs } => http_probe(url, *timeout_secs, ctx).await,
            Action::SqlScript { path, .. } => {
                let p = resolve_path(&self.config, path).map_err(|e| Failure::msg(e.message))?;
                let config = &self.config;
                self.update(|s| {
                    let Some(text) = s.files.iter().find(|(k, _)| k.eq_ignore_ascii_case(&p)).map(|(_, v)| v.clone()) else {
                        return Err(Failure::msg(format!("script `{p}` does not exist")));
                    };
                    super::check_script_hash(config, &p, text.as_bytes())?;
                    Self::record(s, ctx, action);
                    Ok(Evidence::SqlScript { path: p.clone(), exit_code: 0, output: "(simulated) script ran".into() })
                })?
            }
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
        let faults = self.read()?.faults;
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
        match self.host.read() {
            Ok(s) => facts::facts_of(&s, &self.connected, now),
            Err(e) => {
                let mut f = SiteFacts::empty("unknown", now);
                f.errors.push(format!("simulated host state: {e}"));
                f
            }
        }
    }
}
