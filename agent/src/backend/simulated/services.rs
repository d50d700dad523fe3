//! Simulated services: a start or stop moves each chosen service through its pending state for
//! the configured transition time, then to the target — or, for a service the faults say refuses
//! to start, back to stopped — and waits for the rest the way the Windows backend polls. With no
//! transition time (rehearsals) the services reach the end in the update that records the
//! action, one write of the state file instead of two.

use std::time::Duration;

use lockstep_protocol::evidence::{ServiceInfo, ServiceRunState};
use lockstep_protocol::{Action, Evidence, ServiceSelector, StartupType};

use super::{SimState, SimulatedBackend};
use crate::backend::select::{self, Selection};
use crate::backend::{ActionCtx, Failure};

impl SimulatedBackend {
    /// The services an action acts on: named ones as given; of the Connected group, the ones
    /// installed here ([`select::connected`]), with what was left out and why.
    fn choose(&self, sel: &ServiceSelector, starting: bool) -> Result<Selection, Failure> {
        match sel {
            ServiceSelector::Connected => {
                let infos = self.inspect(|s| service_infos(s, &self.connected))?;
                Ok(select::connected(&infos, starting))
            }
            ServiceSelector::Named { names } => Ok(Selection {
                act: names.clone(),
                ..Selection::default()
            }),
        }
    }

    pub(super) fn services_status(&self, services: &ServiceSelector) -> Result<Evidence, Failure> {
        let chosen = self.choose(services, true)?;
        let infos = self.inspect(|s| service_infos(s, &chosen.act))?;
        Ok(services_evidence(infos, &[], &chosen))
    }

    pub(super) fn service_set_startup(
        &self,
        action: &Action,
        service: &str,
        startup: StartupType,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        self.update(|s| {
            Self::record(s, ctx, action);
            match s
                .services
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(service))
            {
                Some((_, svc)) => {
                    let previous = svc.startup;
                    svc.startup = startup;
                    Ok(Evidence::StartupChanged {
                        service: service.to_string(),
                        previous: Some(previous),
                        now: startup,
                    })
                }
                None => Err(Failure::msg(format!(
                    "service `{service}` is not installed"
                ))),
            }
        })?
    }

    /// Moves services through the pending state to `target`, then waits until they report it.
    pub(super) async fn services_to(
        &self,
        action: &Action,
        sel: &ServiceSelector,
        start: bool,
        timeout_secs: u64,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let chosen = self.choose(sel, start)?;
        let names = &chosen.act;
        let target = if start {
            ServiceRunState::Running
        } else {
            ServiceRunState::Stopped
        };
        let (begun, before) = self.begin_transition(action, names, start, ctx)?;
        ctx.log(format!(
            "{} {} service(s): {}",
            if start { "starting" } else { "stopping" },
            names.len(),
            names.join(", ")
        ));
        let (infos, refused) = match begun {
            Begun::Pending { transition_ms } => {
                ctx.pause(Duration::from_millis(transition_ms)).await?;
                self.update(|s| finish(s, names, start))?
            }
            Begun::Done { infos, refused } => (infos, refused),
        };
        // As on Windows: a start that was refused leaves the service stopped, and waiting for
        // it until the timeout would only delay the failure.
        if !refused.is_empty() {
            return Err(Failure::Failed {
                message: format!(
                    "did not start and stays stopped: {} (the service refused to start)",
                    refused.join(", ")
                ),
                evidence: Some(services_evidence(infos, &before, &chosen)),
            });
        }
        if infos.iter().all(|i| i.state == target) {
            return Ok(services_evidence(infos, &before, &chosen));
        }
        self.wait_for(&chosen, &before, target, timeout_secs, ctx)
            .await
    }

    /// Records the action and puts every chosen service not yet at the target into its pending
    /// state; returns how the transition went on and the states as they were, for the evidence.
    /// A host whose services change state at once (no transition time, as in rehearsals) goes
    /// straight to the end in the same update: a pending state that lasts no time is not worth a
    /// second write of the state file.
    fn begin_transition(
        &self,
        action: &Action,
        names: &[String],
        start: bool,
        ctx: &ActionCtx,
    ) -> Result<(Begun, Vec<ServiceInfo>), Failure> {
        let (pending, target) = if start {
            (ServiceRunState::StartPending, ServiceRunState::Running)
        } else {
            (ServiceRunState::StopPending, ServiceRunState::Stopped)
        };
        self.update(|s| {
            // Read before write: the states as they were, for the evidence.
            let before = service_infos(s, names);
            Self::record(s, ctx, action);
            if s.service_transition_ms == 0 {
                let (infos, refused) = finish(s, names, start);
                return (Begun::Done { infos, refused }, before);
            }
            for n in names {
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
            let transition_ms = s.service_transition_ms;
            (Begun::Pending { transition_ms }, before)
        })
    }

    /// Waits for the rest the way the Windows backend polls, until the timeout.
    async fn wait_for(
        &self,
        chosen: &Selection,
        before: &[ServiceInfo],
        target: ServiceRunState,
        timeout_secs: u64,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_secs);
        loop {
            let infos = self.inspect(|s| service_infos(s, &chosen.act))?;
            if infos.iter().all(|i| i.state == target) {
                return Ok(services_evidence(infos, before, chosen));
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
                    evidence: Some(services_evidence(infos, before, chosen)),
                });
            }
            ctx.pause(Duration::from_millis(500)).await?;
        }
    }
}

/// Where a start or stop stands once the action is recorded.
enum Begun {
    /// The services are pending for this long.
    Pending { transition_ms: u64 },
    /// They already reached the end: the states now, and the services that refused to start.
    Done {
        infos: Vec<ServiceInfo>,
        refused: Vec<String>,
    },
}

/// Ends the pending state: each service reaches the target, except those the faults say refuse
/// to start (returned by name), which fall back to stopped.
fn finish(s: &mut SimState, names: &[String], start: bool) -> (Vec<ServiceInfo>, Vec<String>) {
    let target = if start {
        ServiceRunState::Running
    } else {
        ServiceRunState::Stopped
    };
    let mut refused = Vec::new();
    for n in names {
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
    (service_infos(s, names), refused)
}

pub(super) fn service_infos(s: &SimState, names: &[String]) -> Vec<ServiceInfo> {
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

#[cfg(test)]
mod tests;
