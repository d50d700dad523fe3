//! The Windows backend: runs the argument vectors of [`commands`] and reads their outputs with
//! [`parse`]. Everything except the process spawn is unit-tested on any platform; the spawn
//! itself only works on a Windows server.
//!
//! This file holds the process runner and the dispatcher; each family of actions lives in its
//! own module (services, registry, files, scheduled tasks, programs, host facts, IIS).

pub mod commands;
pub mod facts;
mod files;
mod host;
mod iis;
pub mod parse;
mod programs;
pub mod regfile;
mod registry;
mod services;
mod tasks;

use std::time::Duration;

use lockstep_protocol::{Action, Evidence, SiteFacts};

use self::commands::Cmd;
use super::{http_probe, ActionCtx, Backend, Failure};
use crate::config::AgentConfig;

pub struct WindowsBackend {
    config: AgentConfig,
}

/// A finished process.
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl WindowsBackend {
    pub fn new(config: &AgentConfig) -> WindowsBackend {
        WindowsBackend {
            config: config.clone(),
        }
    }

    async fn exec(&self, c: &Cmd, timeout: Duration, ctx: &ActionCtx) -> Result<Output, Failure> {
        let mut cmd = tokio::process::Command::new(&c.program);
        cmd.args(&c.args)
            .kill_on_drop(true)
            .stdin(std::process::Stdio::null());
        for (k, v) in &c.env {
            cmd.env(k, v);
        }
        tracing::debug!(id = %ctx.id, program = %c.program, args = ?c.args, "running");
        let out = tokio::time::timeout(timeout, cmd.output())
            .await
            .map_err(|_| {
                Failure::msg(format!(
                    "{} did not finish within {} s",
                    c.program,
                    timeout.as_secs()
                ))
            })?
            .map_err(|e| Failure::msg(format!("could not start {}: {e}", c.program)))?;
        Ok(Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs and requires exit code 0.
    async fn ok(&self, c: &Cmd, ctx: &ActionCtx) -> Result<String, Failure> {
        let o = self.exec(c, Duration::from_secs(120), ctx).await?;
        if o.code != 0 {
            return Err(Failure::msg(format!(
                "{} {} exited {}: {}{}",
                c.program,
                c.args.first().map(String::as_str).unwrap_or(""),
                o.code,
                o.stdout.trim(),
                o.stderr.trim()
            )));
        }
        Ok(o.stdout)
    }

    async fn powershell(
        &self,
        script: &str,
        env: &[(&str, &str)],
        ctx: &ActionCtx,
    ) -> Result<String, Failure> {
        self.ok(&commands::powershell(script, env), ctx).await
    }
}

#[async_trait::async_trait]
impl Backend for WindowsBackend {
    fn name(&self) -> &'static str {
        "windows"
    }

    async fn facts(&self) -> SiteFacts {
        let now = crate::core::unix_now();
        let env = facts::facts_env(
            &self.config.connected_services,
            &self.config.component_version_records(),
            &self.config.backup_session_counters,
        );
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let ctx = ActionCtx::detached("facts");
        match self
            .exec(
                &commands::powershell(facts::PS_FACTS, &env),
                Duration::from_secs(120),
                &ctx,
            )
            .await
        {
            Ok(o) if o.code == 0 => {
                facts::parse_facts(&o.stdout, &self.config.connected_services, now)
            }
            Ok(o) => {
                let mut f = SiteFacts::empty("unknown", now);
                f.errors.push(format!(
                    "facts: powershell exited {}: {}",
                    o.code,
                    o.stderr.trim()
                ));
                f
            }
            Err(Failure::Failed { message, .. } | Failure::Cancelled(message)) => {
                let mut f = SiteFacts::empty("unknown", now);
                f.errors.push(format!("facts: {message}"));
                f
            }
        }
    }

    async fn run(&self, action: &Action, ctx: &ActionCtx) -> Result<Evidence, Failure> {
        match action {
            Action::ServicesStatus { services } => self.services_status(services, ctx).await,
            Action::ServicesStop {
                services,
                timeout_secs,
            } => self.services_to(services, false, *timeout_secs, ctx).await,
            Action::ServicesStart {
                services,
                timeout_secs,
            } => self.services_to(services, true, *timeout_secs, ctx).await,
            Action::ServiceSetStartup { service, startup } => {
                self.service_set_startup(service, *startup, ctx).await
            }
            Action::RegistryGet { key, name } => Ok(Evidence::Registry {
                value: self.reg_get(key, name, ctx).await?,
            }),
            Action::RegistrySet { key, name, value } => {
                self.registry_set(key, name, value, ctx).await
            }
            Action::RegistryDelete { key, name } => {
                self.registry_delete(key, name.as_deref(), ctx).await
            }
            Action::FileReplace { path, edit } => self.file_replace(path, edit, ctx),
            Action::ScheduledTaskRun { task, timeout_secs } => {
                self.scheduled_task_run(task, *timeout_secs, ctx).await
            }
            Action::InstallerRun {
                path,
                sha256,
                timeout_secs,
            } => self.installer_run(path, sha256, *timeout_secs, ctx).await,
            Action::SqlScript {
                path,
                database,
                timeout_secs,
            } => {
                self.sql_script(path, database.as_deref(), *timeout_secs, ctx)
                    .await
            }
            Action::DiskFree { drive } => self.disk_free(drive, ctx).await,
            Action::ProductVersion { component } => self.component_version(*component, ctx).await,
            Action::OsVersion {} => self.os_version(ctx).await,
            Action::BackupSessions {} => self.backup_sessions(ctx).await,
            Action::EventLogQuery {
                log,
                min_level,
                since,
            } => self.event_log_query(log, *min_level, *since, ctx).await,
            Action::IisReset {} => self.iis_reset(ctx).await,
            Action::IisHttpsBindingEnsure {
                site,
                port,
                common_name,
            } => {
                self.https_binding_ensure(site, *port, common_name, ctx)
                    .await
            }
            Action::IisBindingList { site } => self.binding_list(site, ctx).await,
            Action::CertificateList {} => self.certificate_list(ctx).await,
            Action::HttpProbe { url, timeout_secs } => http_probe(url, *timeout_secs, ctx).await,
        }
    }
}
