//! The Windows backend: runs the argument vectors of [`commands`] and reads their outputs with
//! [`parse`]. Everything except the process spawn is unit-tested on any platform; the spawn
//! itself only works on a Windows server.

pub mod commands;
pub mod facts;
pub mod parse;

use std::time::{Duration, Instant};

use lockstep_protocol::evidence::{RegistryValue, ServiceInfo, ServiceRunState};
use lockstep_protocol::{Action, Component, Evidence, ServiceSelector, SiteFacts};
use sha2::{Digest, Sha256};

use self::commands::Cmd;
use super::select::{self, Selection};
use super::{edit, http_probe, ActionCtx, Backend, Failure};
use crate::config::AgentConfig;
use crate::policy::{normalize_path, normalize_registry_key, resolve_path};

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

    /// Named services as given; of the Connected group, the ones installed here
    /// ([`select::connected`]), read with `sc query`/`sc qc` first.
    async fn choose(
        &self,
        sel: &ServiceSelector,
        starting: bool,
        ctx: &ActionCtx,
    ) -> Result<Selection, Failure> {
        match sel {
            ServiceSelector::Connected => {
                let found = self
                    .service_infos(&self.config.connected_services, ctx)
                    .await?;
                Ok(select::connected(&found, starting))
            }
            ServiceSelector::Named { names } => Ok(Selection {
                act: names.clone(),
                ..Selection::default()
            }),
        }
    }

    async fn service_infos(
        &self,
        names: &[String],
        ctx: &ActionCtx,
    ) -> Result<Vec<ServiceInfo>, Failure> {
        let mut v = Vec::new();
        for n in names {
            let q = self
                .exec(&commands::sc_query(n), Duration::from_secs(30), ctx)
                .await?;
            let state = parse::sc_state(&q.stdout).map_err(Failure::msg)?;
            let startup = if state == ServiceRunState::NotInstalled {
                None
            } else {
                let qc = self
                    .exec(&commands::sc_qc(n), Duration::from_secs(30), ctx)
                    .await?;
                parse::sc_start_type(&qc.stdout).ok()
            };
            v.push(ServiceInfo {
                name: n.clone(),
                state,
                startup,
            });
        }
        Ok(v)
    }

    async fn services_to(
        &self,
        sel: &ServiceSelector,
        start: bool,
        timeout_secs: u64,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let chosen = self.choose(sel, start, ctx).await?;
        let names = chosen.act.clone();
        // Read before write: the states as they were, for the evidence.
        let before = self.service_infos(&names, ctx).await?;
        let evidence = |services: Vec<ServiceInfo>| Evidence::Services {
            services,
            before: before.clone(),
            absent: chosen.absent.clone(),
            notes: chosen.notes.clone(),
        };
        let target = if start {
            ServiceRunState::Running
        } else {
            ServiceRunState::Stopped
        };
        // Services whose start command was refused (e.g. 1053, 1058 disabled, 1069 logon).
        let mut refused: Vec<(String, i32)> = Vec::new();
        for n in &names {
            let c = if start {
                commands::sc_start(n)
            } else {
                commands::sc_stop(n)
            };
            // 1056 "already running" and 1062 "not started" mean the state is already reached.
            let o = self.exec(&c, Duration::from_secs(60), ctx).await?;
            if o.code != 0 && o.code != 1056 && o.code != 1062 {
                ctx.log(format!(
                    "{} {n}: exit {} {}",
                    if start { "start" } else { "stop" },
                    o.code,
                    o.stdout.trim()
                ));
                if start {
                    refused.push((n.clone(), o.code));
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(timeout_secs);
        loop {
            let infos = self.service_infos(&names, ctx).await?;
            if infos.iter().all(|i| i.state == target) {
                return Ok(evidence(infos));
            }
            // A service whose start was refused and that is stopped (not start-pending) will not
            // come up by waiting: fail now rather than at the timeout.
            let dead: Vec<String> = infos
                .iter()
                .filter(|i| i.state == ServiceRunState::Stopped)
                .filter_map(|i| {
                    refused
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(&i.name))
                        .map(|(n, code)| format!("{n} (sc start exit {code})"))
                })
                .collect();
            if !dead.is_empty() {
                return Err(Failure::Failed {
                    message: format!("did not start and stays stopped: {}", dead.join(", ")),
                    evidence: Some(evidence(infos)),
                });
            }
            if Instant::now() >= deadline {
                let late: Vec<String> = infos
                    .iter()
                    .filter(|i| i.state != target)
                    .map(|i| format!("{} ({:?})", i.name, i.state))
                    .collect();
                return Err(Failure::Failed {
                    message: format!(
                        "not {target:?} within {timeout_secs} s: {}",
                        late.join(", ")
                    ),
                    evidence: Some(evidence(infos)),
                });
            }
            ctx.pause(Duration::from_secs(2)).await?;
        }
    }

    async fn reg_get(
        &self,
        key: &str,
        name: &str,
        ctx: &ActionCtx,
    ) -> Result<RegistryValue, Failure> {
        let k = normalize_registry_key(key).map_err(|e| Failure::msg(e.message))?;
        let key_out = self
            .exec(&commands::reg_query_key(&k), Duration::from_secs(30), ctx)
            .await?;
        if key_out.code != 0 {
            if parse::reg_not_found(&key_out.stderr) {
                return Ok(RegistryValue {
                    key: k,
                    name: name.into(),
                    key_exists: false,
                    value: None,
                });
            }
            return Err(Failure::msg(format!(
                "reg query {k}: {}",
                key_out.stderr.trim()
            )));
        }
        let o = self
            .exec(
                &commands::reg_query_value(&k, name),
                Duration::from_secs(30),
                ctx,
            )
            .await?;
        let value = if o.code == 0 {
            parse::reg_value(&o.stdout, name).map_err(Failure::msg)?
        } else {
            None
        };
        Ok(RegistryValue {
            key: k,
            name: name.into(),
            key_exists: true,
            value,
        })
    }

    async fn task_info(&self, task: &str, ctx: &ActionCtx) -> Result<parse::TaskInfo, Failure> {
        let out = self.ok(&commands::schtasks_query(task), ctx).await?;
        parse::schtasks_info(&out).map_err(Failure::msg)
    }

    async fn powershell(
        &self,
        script: &str,
        env: &[(&str, &str)],
        ctx: &ActionCtx,
    ) -> Result<String, Failure> {
        self.ok(&commands::powershell(script, env), ctx).await
    }

    async fn product_version(&self, ctx: &ActionCtx) -> Result<Option<String>, Failure> {
        let (k, v) = (
            self.config.product_version_key.clone(),
            self.config.product_version_value.clone(),
        );
        Ok(self.reg_get(&k, &v, ctx).await?.value)
    }
}

/// Files are edited byte-for-byte: UTF-8 when valid, else each byte as one Latin-1 character,
/// so an ANSI maintenance script round-trips unchanged apart from the edit.
fn decode(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), true),
        Err(_) => (bytes.iter().map(|b| *b as char).collect(), false),
    }
}

fn encode(text: &str, utf8: bool) -> Vec<u8> {
    if utf8 {
        text.as_bytes().to_vec()
    } else {
        text.chars().map(|c| c as u32 as u8).collect()
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
            Action::ServicesStatus { services } => {
                let chosen = self.choose(services, true, ctx).await?;
                Ok(Evidence::Services {
                    services: self.service_infos(&chosen.act, ctx).await?,
                    before: Vec::new(),
                    absent: chosen.absent,
                    notes: chosen.notes,
                })
            }
            Action::ServicesStop {
                services,
                timeout_secs,
            } => self.services_to(services, false, *timeout_secs, ctx).await,
            Action::ServicesStart {
                services,
                timeout_secs,
            } => self.services_to(services, true, *timeout_secs, ctx).await,
            Action::ServiceSetStartup { service, startup } => {
                let before = self.ok(&commands::sc_qc(service), ctx).await?;
                let previous = parse::sc_start_type(&before).ok();
                self.ok(&commands::sc_config_start(service, *startup), ctx)
                    .await?;
                Ok(Evidence::StartupChanged {
                    service: service.clone(),
                    previous,
                    now: *startup,
                })
            }
            Action::RegistryGet { key, name } => Ok(Evidence::Registry {
                value: self.reg_get(key, name, ctx).await?,
            }),
            Action::RegistrySet { key, name, value } => {
                let before = self.reg_get(key, name, ctx).await?;
                self.ok(&commands::reg_add(&before.key, name, value), ctx)
                    .await?;
                let after = self.reg_get(key, name, ctx).await?;
                if after.value.as_deref() != Some(value.as_str()) {
                    return Err(Failure::msg(format!(
                        "{}\\{name} reads {:?} after setting it",
                        after.key, after.value
                    )));
                }
                Ok(Evidence::RegistryChanged {
                    key: before.key,
                    name: name.clone(),
                    previous: before.value,
                    now: value.clone(),
                })
            }
            Action::RegistryDelete { key, name } => {
                let k = normalize_registry_key(key).map_err(|e| Failure::msg(e.message))?;
                let q = self
                    .exec(&commands::reg_query_key(&k), Duration::from_secs(30), ctx)
                    .await?;
                if q.code != 0 {
                    return Ok(Evidence::RegistryDeleted {
                        key: k,
                        name: name.clone(),
                        previous: vec![],
                        existed: false,
                    });
                }
                let all = parse::reg_values(&q.stdout);
                let previous: Vec<(String, String)> = match name {
                    Some(n) => all
                        .into_iter()
                        .filter(|(x, _)| x.eq_ignore_ascii_case(n))
                        .collect(),
                    None => all,
                };
                let existed = name.is_none() || !previous.is_empty();
                if existed {
                    let c = match name {
                        Some(n) => commands::reg_delete_value(&k, n),
                        None => commands::reg_delete_key(&k),
                    };
                    self.ok(&c, ctx).await?;
                }
                Ok(Evidence::RegistryDeleted {
                    key: k,
                    name: name.clone(),
                    previous,
                    existed,
                })
            }
            Action::FileReplace { path, edit } => {
                let p = resolve_path(&self.config, path).map_err(|e| Failure::msg(e.message))?;
                let bytes =
                    std::fs::read(&p).map_err(|e| Failure::msg(format!("reading {p}: {e}")))?;
                let (text, utf8) = decode(&bytes);
                let e = edit::apply(&text, edit);
                let backup = if e.replacements > 0 {
                    let b = format!(
                        "{p}.lockstep-{}.bak",
                        ctx.id.as_str().replace(['/', ':', '@', '#'], "_")
                    );
                    std::fs::write(&b, &bytes)
                        .map_err(|e| Failure::msg(format!("writing backup {b}: {e}")))?;
                    let tmp = format!("{p}.lockstep-tmp");
                    std::fs::write(&tmp, encode(&e.text, utf8))
                        .map_err(|e| Failure::msg(format!("writing {tmp}: {e}")))?;
                    std::fs::rename(&tmp, &p)
                        .map_err(|e| Failure::msg(format!("replacing {p}: {e}")))?;
                    Some(b)
                } else {
                    None
                };
                Ok(Evidence::FileEdited {
                    path: p,
                    backup,
                    replacements: e.replacements,
                    diff: e.diff,
                })
            }
            Action::ScheduledTaskRun { task, timeout_secs } => {
                let before = self.task_info(task, ctx).await?;
                let started = Instant::now();
                self.ok(&commands::schtasks_run(task), ctx).await?;
                ctx.log(format!("task {task} started"));
                let deadline = started + Duration::from_secs(*timeout_secs);
                loop {
                    ctx.pause(Duration::from_secs(5)).await?;
                    let now = self.task_info(task, ctx).await?;
                    if now.status != "Running" && now.last_run_time != before.last_run_time {
                        let ev = Evidence::TaskRun {
                            task: task.clone(),
                            last_result: now.last_result,
                            duration_ms: started.elapsed().as_millis() as u64,
                        };
                        return if now.last_result == 0 {
                            Ok(ev)
                        } else {
                            Err(Failure::Failed {
                                message: format!(
                                    "task {task} ended with result {}",
                                    now.last_result
                                ),
                                evidence: Some(ev),
                            })
                        };
                    }
                    if Instant::now() >= deadline {
                        return Err(Failure::msg(format!(
                            "task {task} still {} after {timeout_secs} s",
                            now.status
                        )));
                    }
                }
            }
            Action::InstallerRun {
                path,
                sha256,
                timeout_secs,
            } => {
                let p = normalize_path(path).map_err(|e| Failure::msg(e.message))?;
                let bytes =
                    std::fs::read(&p).map_err(|e| Failure::msg(format!("reading {p}: {e}")))?;
                let actual = hex::encode(Sha256::digest(&bytes));
                if !actual.eq_ignore_ascii_case(sha256) {
                    return Err(Failure::msg(format!(
                        "installer {p} hashes to {actual}, not {sha256}; not run"
                    )));
                }
                let args = self
                    .config
                    .allow
                    .installers
                    .iter()
                    .find(|e| e.path.eq_ignore_ascii_case(&p))
                    .map(|e| e.args.clone())
                    .unwrap_or_default();
                let c = Cmd {
                    program: p.clone(),
                    args,
                    env: vec![],
                };
                let o = self
                    .exec(&c, Duration::from_secs(*timeout_secs), ctx)
                    .await?;
                let ev = Evidence::Installed {
                    path: p,
                    sha256: actual,
                    exit_code: o.code,
                    product_version: self.product_version(ctx).await?,
                };
                if o.code == 0 {
                    Ok(ev)
                } else {
                    Err(Failure::Failed {
                        message: format!("installer exited with {}", o.code),
                        evidence: Some(ev),
                    })
                }
            }
            Action::DiskFree { drive } => {
                let out = self
                    .powershell(
                        commands::PS_DISK_FREE,
                        &[("LOCKSTEP_DRIVE", &format!("{drive}\\"))],
                        ctx,
                    )
                    .await?;
                let (free_mb, total_mb) = parse::disk_free(&out).map_err(Failure::msg)?;
                Ok(Evidence::DiskFree {
                    drive: drive.clone(),
                    free_mb,
                    total_mb,
                })
            }
            Action::ProductVersion { component } => {
                let version = match component {
                    None | Some(Component::DataCenter) => self.product_version(ctx).await?,
                    Some(c) => {
                        let Some(pattern) = self.config.component_programs.get(c) else {
                            return Err(Failure::msg(format!(
                                "no component_programs entry for the {} in the agent configuration",
                                c.label()
                            )));
                        };
                        let out = self
                            .powershell(
                                commands::PS_PROGRAM_VERSION,
                                &[("LOCKSTEP_PROGRAM", pattern)],
                                ctx,
                            )
                            .await?;
                        parse::program_version(&out, pattern).map_err(Failure::msg)?
                    }
                };
                Ok(Evidence::ProductVersion {
                    version,
                    component: *component,
                })
            }
            Action::OsVersion {} => {
                let out = self.powershell(commands::PS_OS_VERSION, &[], ctx).await?;
                let (windows, sql_server) = parse::os_version(&out).map_err(Failure::msg)?;
                Ok(Evidence::OsVersion {
                    windows,
                    sql_server,
                })
            }
            Action::BackupSessions {} => {
                if self.config.backup_session_counters.is_empty() {
                    let reason = "no backup_session_counters configured for this agent; the Data Center does not publish a documented session count";
                    return Err(Failure::Failed {
                        message: format!("backup-session counters unavailable: {reason}"),
                        evidence: Some(Evidence::SessionCountersUnavailable {
                            reason: reason.into(),
                        }),
                    });
                }
                let joined = self.config.backup_session_counters.join(";");
                // A configured counter the server does not publish (Get-Counter fails) is as
                // unavailable as none configured: a person watches the sessions instead.
                let out = self
                    .powershell(
                        commands::PS_COUNTERS,
                        &[("LOCKSTEP_COUNTERS", &joined)],
                        ctx,
                    )
                    .await
                    .map_err(|f| match f {
                        Failure::Failed { message, .. } => Failure::Failed {
                            message: format!("backup-session counters unavailable: {message}"),
                            evidence: Some(Evidence::SessionCountersUnavailable {
                                reason: message,
                            }),
                        },
                        other => other,
                    })?;
                Ok(Evidence::BackupSessions {
                    backups: parse::counters_sum(&out).map_err(Failure::msg)?,
                    restores: 0,
                })
            }
            Action::EventLogQuery {
                log,
                min_level,
                since,
            } => {
                let (s, l) = (since.to_string(), min_level.number().to_string());
                let out = self
                    .powershell(
                        commands::PS_EVENTS,
                        &[
                            ("LOCKSTEP_LOG", log),
                            ("LOCKSTEP_SINCE", &s),
                            ("LOCKSTEP_MAX_LEVEL", &l),
                        ],
                        ctx,
                    )
                    .await?;
                Ok(Evidence::Events {
                    log: log.clone(),
                    since: *since,
                    events: parse::events(&out).map_err(Failure::msg)?,
                })
            }
            Action::IisReset {} => {
                let out = self.ok(&commands::iisreset(), ctx).await?;
                if !parse::iisreset_ok(&out) {
                    return Err(Failure::msg(format!(
                        "iisreset did not report a restart: {}",
                        out.trim()
                    )));
                }
                Ok(Evidence::IisReset {
                    output: out.trim().to_string(),
                })
            }
            Action::IisHttpsBindingEnsure {
                site,
                port,
                common_name,
            } => {
                let before = parse::bindings(
                    &self
                        .powershell(commands::PS_BINDINGS, &[("LOCKSTEP_SITE", site)], ctx)
                        .await?,
                )
                .map_err(Failure::msg)?;
                let p = port.to_string();
                self.powershell(
                    commands::PS_BINDING_ENSURE,
                    &[
                        ("LOCKSTEP_SITE", site),
                        ("LOCKSTEP_PORT", &p),
                        ("LOCKSTEP_CN", common_name),
                    ],
                    ctx,
                )
                .await?;
                let after = parse::bindings(
                    &self
                        .powershell(commands::PS_BINDINGS, &[("LOCKSTEP_SITE", site)], ctx)
                        .await?,
                )
                .map_err(Failure::msg)?;
                Ok(Evidence::Bindings {
                    site: site.clone(),
                    changed: before != after,
                    bindings: after,
                    before: Some(before),
                })
            }
            Action::IisBindingList { site } => {
                let out = self
                    .powershell(commands::PS_BINDINGS, &[("LOCKSTEP_SITE", site)], ctx)
                    .await?;
                Ok(Evidence::Bindings {
                    site: site.clone(),
                    bindings: parse::bindings(&out).map_err(Failure::msg)?,
                    before: None,
                    changed: false,
                })
            }
            Action::CertificateList {} => {
                let out = self.powershell(commands::PS_CERTIFICATES, &[], ctx).await?;
                Ok(Evidence::Certificates {
                    certificates: parse::certificates(&out).map_err(Failure::msg)?,
                })
            }
            Action::HttpProbe { url, timeout_secs } => http_probe(url, *timeout_secs, ctx).await,
            Action::SqlScript {
                path,
                database,
                timeout_secs,
            } => {
                let p = resolve_path(&self.config, path).map_err(|e| Failure::msg(e.message))?;
                let bytes = std::fs::read(&p)
                    .map_err(|e| Failure::msg(format!("reading SQL script `{p}`: {e}")))?;
                super::check_script_hash(&self.config, &p, &bytes)?;
                let o = self
                    .exec(
                        &commands::sqlcmd(&p, database.as_deref()),
                        Duration::from_secs(*timeout_secs),
                        ctx,
                    )
                    .await?;
                let output: String = format!("{}{}", o.stdout, o.stderr)
                    .chars()
                    .take(16_384)
                    .collect();
                let ev = Evidence::SqlScript {
                    path: p,
                    exit_code: o.code,
                    output,
                };
                if o.code == 0 {
                    Ok(ev)
                } else {
                    Err(Failure::Failed {
                        message: format!("sqlcmd exited with {}", o.code),
                        evidence: Some(ev),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_files_round_trip_byte_for_byte() {
        let bytes = b"rem caf\xe9\r\nC:\\Program Files\\Microsoft SQL Server\\100\\Tools\\BINN\\OSQL.EXE\r\n".to_vec();
        let (text, utf8) = decode(&bytes);
        assert!(!utf8);
        let e = edit::apply(
            &text,
            &lockstep_protocol::TextEdit::OsqlToolsFolder {
                folder: "120".into(),
            },
        );
        let out = encode(&e.text, utf8);
        assert_eq!(out, b"rem caf\xe9\r\nC:\\Program Files\\Microsoft SQL Server\\120\\Tools\\BINN\\OSQL.EXE\r\n".to_vec());
    }
}
