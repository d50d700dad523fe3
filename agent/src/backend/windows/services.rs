//! Service actions on Windows: `sc query`/`sc qc` to read, `sc start`/`sc stop`/`sc config` to
//! act, then polling until every chosen service reports the state asked for.

use std::time::{Duration, Instant};

use lockstep_protocol::evidence::{ServiceInfo, ServiceRunState};
use lockstep_protocol::{Evidence, ServiceSelector, StartupType};

use super::{commands, parse, WindowsBackend};
use crate::backend::select::{self, Selection};
use crate::backend::{ActionCtx, Failure};

impl WindowsBackend {
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

    /// Each service's state and start type. sc's exit code 1060 (or the number in its error
    /// line, see [`parse::sc_state`]) means the service is not installed.
    pub(super) async fn service_infos(
        &self,
        names: &[String],
        ctx: &ActionCtx,
    ) -> Result<Vec<ServiceInfo>, Failure> {
        let mut v = Vec::new();
        for n in names {
            let q = self
                .exec(&commands::sc_query(n), Duration::from_secs(30), ctx)
                .await?;
            let state = if q.code == parse::SC_NOT_INSTALLED as i32 {
                ServiceRunState::NotInstalled
            } else {
                parse::sc_state(&q.stdout).map_err(Failure::msg)?
            };
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

    pub(super) async fn services_status(
        &self,
        services: &ServiceSelector,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let chosen = self.choose(services, true, ctx).await?;
        Ok(Evidence::Services {
            services: self.service_infos(&chosen.act, ctx).await?,
            before: Vec::new(),
            absent: chosen.absent,
            notes: chosen.notes,
        })
    }

    pub(super) async fn service_set_startup(
        &self,
        service: &str,
        startup: StartupType,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let before = self.ok(&commands::sc_qc(service), ctx).await?;
        let previous = parse::sc_start_type(&before).ok();
        self.ok(&commands::sc_config_start(service, startup), ctx)
            .await?;
        Ok(Evidence::StartupChanged {
            service: service.to_string(),
            previous,
            now: startup,
        })
    }

    /// Starts or stops the chosen services, then waits until they all report the target state.
    pub(super) async fn services_to(
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
        let refused = self.send_to_all(&names, start, ctx).await?;
        let deadline = Instant::now() + Duration::from_secs(timeout_secs);
        loop {
            let infos = self.service_infos(&names, ctx).await?;
            if infos.iter().all(|i| i.state == target) {
                return Ok(evidence(infos));
            }
            let dead = refused_and_stopped(&infos, &refused);
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

    /// Sends `sc start` (or `sc stop`) to each service; returns the services whose start command
    /// was refused (e.g. 1053, 1058 disabled, 1069 logon) with sc's exit code.
    async fn send_to_all(
        &self,
        names: &[String],
        start: bool,
        ctx: &ActionCtx,
    ) -> Result<Vec<(String, i32)>, Failure> {
        let mut refused = Vec::new();
        for n in names {
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
        Ok(refused)
    }
}

/// A service whose start was refused and that is stopped (not start-pending) will not come up by
/// waiting: the caller fails now rather than at the timeout.
fn refused_and_stopped(infos: &[ServiceInfo], refused: &[(String, i32)]) -> Vec<String> {
    infos
        .iter()
        .filter(|i| i.state == ServiceRunState::Stopped)
        .filter_map(|i| {
            refused
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&i.name))
                .map(|(n, code)| format!("{n} (sc start exit {code})"))
        })
        .collect()
}
