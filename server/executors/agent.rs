//! The agent executor: runs a step's operation as allowlisted actions on the host's agent over
//! HTTPS with mutual TLS (the orchestrator's client certificate; only the agent's pinned
//! certificate accepted, no public roots).
//!
//! Action ids derive from the idempotency key: the change an operation makes is sent as
//! `<run>/<step>/<attempt>` (files of a multi-file edit as `…#2`, `…#3`), reads it needs first as
//! `…#probe-N`. So [`Executor::status`] can ask the agent about a key with no local state, and on
//! any doubt (timeout, reset) the client asks by id instead of sending again
//! ([`lockstep_agent::client::AgentClient::drive`]). An unreachable agent makes the step wait
//! until its timeout, then report outcome unknown — nothing was sent, so status reads not-found.

pub mod collector;
pub mod identity;
pub mod mapping;
/// The agents table (enrolment, heartbeats, facts): it lives beside the store that owns the
/// database; the executors reach it by this name.
pub use crate::engine::store::agents as registry;

pub use identity::{orchestrator_identity, Identity};

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use lockstep_agent::client::{AgentClient, Driven};
use lockstep_protocol::tls::Thumbprint;
use lockstep_protocol::{
    Action, ActionId, ActionRequest, ActionState, EventLevel, Evidence, ServiceSelector,
    StartupType, TextEdit,
};
use serde_json::{json, Value};

use crate::engine::executor::{ActionStatus, Dispatch, Executor, IdempotencyKey, Outcome};
use crate::executors::words;
use crate::knowledge::operation::{Operation, ServiceSet, WaitCondition};

/// How long a request stays valid for the agent to start it.
const REQUEST_LIFETIME_SECS: i64 = 300;
/// The IIS site the guide binds certificates on.
const IIS_SITE: &str = "Default Web Site";

/// Where one server's agent listens and the certificate it must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEndpoint {
    pub url: String,
    pub thumbprint: Thumbprint,
}

pub struct AgentExecutor {
    identity: Identity,
    clients: RwLock<HashMap<String, (AgentEndpoint, AgentClient)>>,
    /// Per-request timeout (a status long-poll adds its wait on top).
    request_timeout: Duration,
    /// Keep connections alive between requests (off only in fault-injection tests, so that
    /// every request gets its own connection to cut).
    pooled: bool,
    /// When this executor first saw each run: "since the step began" for event-log checks.
    run_seen: Mutex<HashMap<String, i64>>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn ev_json(ev: &Evidence) -> Value {
    serde_json::to_value(ev).unwrap_or(Value::Null)
}

fn failed(message: impl Into<String>, evidence: Value) -> Outcome {
    Outcome::Failed {
        message: message.into(),
        evidence,
    }
}

fn id(s: String) -> Result<ActionId, Outcome> {
    ActionId::new(s).map_err(|e| {
        failed(
            format!("this step's key cannot be an agent action id: {e}"),
            Value::Null,
        )
    })
}

fn selector(s: &ServiceSet) -> ServiceSelector {
    match s {
        ServiceSet::Connected => ServiceSelector::Connected,
        ServiceSet::Named { names } => ServiceSelector::Named {
            names: names.clone(),
        },
    }
}

impl AgentExecutor {
    pub fn new(identity: Identity) -> AgentExecutor {
        AgentExecutor {
            identity,
            clients: RwLock::new(HashMap::new()),
            request_timeout: Duration::from_secs(30),
            pooled: true,
            run_seen: Mutex::new(HashMap::new()),
        }
    }

    /// Shorter per-request timeouts (tests with proxies that drop connections).
    pub fn with_request_timeout(mut self, t: Duration) -> AgentExecutor {
        self.request_timeout = t;
        self
    }

    /// A new connection per request (for proxies that inject faults per connection). Call
    /// before [`AgentExecutor::add`].
    pub fn with_fresh_connections(mut self) -> AgentExecutor {
        self.pooled = false;
        self
    }

    /// Every agent in the registry.
    pub async fn from_registry(
        pool: &sqlx::SqlitePool,
        identity: Identity,
    ) -> anyhow::Result<AgentExecutor> {
        let ex = AgentExecutor::new(identity);
        for r in registry::list(pool).await? {
            ex.add(
                &r.server,
                AgentEndpoint {
                    url: r.url,
                    thumbprint: r.thumbprint,
                },
            )?;
        }
        Ok(ex)
    }

    pub fn add(&self, server: &str, endpoint: AgentEndpoint) -> anyhow::Result<()> {
        let client = AgentClient::with_pool(
            &endpoint.url,
            &self.identity,
            endpoint.thumbprint,
            self.request_timeout,
            self.pooled,
        )?;
        self.clients
            .write()
            .map_err(|_| anyhow::anyhow!("agent table lock poisoned"))?
            .insert(server.to_string(), (endpoint, client));
        Ok(())
    }

    fn client(&self, host: Option<&str>) -> Result<AgentClient, Outcome> {
        let Some(host) = host else {
            return Err(failed("an agent step needs a host", Value::Null));
        };
        self.clients
            .read()
            .ok()
            .and_then(|m| m.get(host).map(|(_, c)| c.clone()))
            .ok_or_else(|| {
                failed(
                    format!("no agent is registered for server {host}; run `lockstep agent add --server {host} --url … --thumbprint …`"),
                    Value::Null,
                )
            })
    }

    /// Sends one action and follows it; `Ok(evidence)` only when the agent says it succeeded.
    async fn run(
        &self,
        client: &AgentClient,
        id: ActionId,
        action: Action,
        deadline: Duration,
    ) -> Result<Evidence, Outcome> {
        let req = ActionRequest::new(id.clone(), action, now(), REQUEST_LIFETIME_SECS);
        crate::engine::steplog::detail(format!("agent action {id} sent"));
        let sent = tokio::time::Instant::now();
        let driven = client.drive(&req, deadline).await;
        // What happened on the server, in words (from the evidence), then the technical line.
        let action = &req.action;
        crate::engine::steplog::line(match &driven {
            Driven::Finished(r) => match &r.state {
                ActionState::Succeeded { evidence } => {
                    words::agent_success(action, evidence, sent.elapsed())
                }
                ActionState::Failed { message, .. } => words::agent_failure(action, message),
                ActionState::Cancelled { message } => {
                    words::agent_failure(action, &format!("cancelled: {message}"))
                }
                ActionState::Unknown { reason } => {
                    words::agent_failure(action, &format!("the agent does not know: {reason}"))
                }
                ActionState::NotFound | ActionState::Running => {
                    words::agent_failure(action, "the agent gave no final state")
                }
            },
            Driven::Refused(e) => words::agent_failure(action, &format!("refused: {}", e.message)),
            Driven::Unknown { reason } => {
                words::agent_failure(action, &format!("no answer: {reason}"))
            }
        });
        crate::engine::steplog::detail(match &driven {
            Driven::Finished(r) => match &r.state {
                ActionState::Succeeded { .. } => format!("agent action {id} succeeded"),
                ActionState::Failed { message, .. } => {
                    format!("agent action {id} failed: {message}")
                }
                ActionState::Cancelled { message } => {
                    format!("agent action {id} cancelled: {message}")
                }
                ActionState::Unknown { reason } => format!("agent action {id} unknown: {reason}"),
                ActionState::NotFound | ActionState::Running => {
                    format!("agent action {id}: no final state")
                }
            },
            Driven::Refused(e) => format!("agent refused {id}: {}", e.message),
            Driven::Unknown { reason } => format!("agent action {id}: {reason}"),
        });
        match driven {
            Driven::Finished(r) => match r.state {
                ActionState::Succeeded { evidence } => Ok(evidence),
                ActionState::Failed { message, evidence } => Err(failed(
                    message,
                    json!({ "action_id": id, "evidence": evidence.as_ref().map(ev_json) }),
                )),
                ActionState::Cancelled { message } => Err(failed(
                    format!("cancelled: {message}"),
                    json!({ "action_id": id }),
                )),
                ActionState::Unknown { reason } => Err(Outcome::Unknown {
                    reason: format!("agent reports {id} unknown: {reason}"),
                }),
                ActionState::NotFound | ActionState::Running => Err(Outcome::Unknown {
                    reason: format!("agent gave no final state for {id}"),
                }),
            },
            Driven::Refused(e) => Err(failed(
                format!("agent refused {id}: {}", e.message),
                json!({ "action_id": id, "code": e.code }),
            )),
            Driven::Unknown { reason } => Err(Outcome::Unknown {
                reason: format!("{id}: {reason}"),
            }),
        }
    }

    async fn redirect(
        &self,
        client: &AgentClient,
        d: &Dispatch,
        value: crate::knowledge::operation::RedirectValue,
        to_server: &str,
        deadline: Duration,
    ) -> Result<Value, Outcome> {
        let key = d.key.as_string();
        let (keys, name) = mapping::redirect_candidates(value);
        let mut probes = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let ev = self
                .run(
                    client,
                    id(format!("{key}#probe-{i}"))?,
                    Action::RegistryGet {
                        key: k.to_string(),
                        name: name.into(),
                    },
                    deadline,
                )
                .await?;
            let Evidence::Registry { value } = ev else {
                return Err(failed("the agent returned no registry value", Value::Null));
            };
            probes.push(value);
        }
        let probed = serde_json::to_value(&probes).unwrap_or(Value::Null);
        let chosen = mapping::choose_spelling(&probes, name)
            .map_err(|m| failed(m, json!({ "probed": probed })))?;
        let old = chosen.value.clone().unwrap_or_default();
        let new = mapping::redirected(value, &old, to_server)
            .map_err(|m| failed(m, json!({ "probed": probed })))?;
        if new == old {
            return Ok(
                json!({ "key": chosen.key, "name": name, "previous": old, "now": new, "changed": false, "probed": probed }),
            );
        }
        let ev = self
            .run(
                client,
                id(key)?,
                Action::RegistrySet {
                    key: chosen.key.clone(),
                    name: name.into(),
                    value: new.clone(),
                },
                deadline,
            )
            .await?;
        let previous = match &ev {
            Evidence::RegistryChanged { previous, .. } => previous.clone(),
            _ => Some(old),
        };
        Ok(
            json!({ "key": chosen.key, "name": name, "previous": previous, "now": new, "changed": true, "probed": probed, "agent": ev_json(&ev) }),
        )
    }

    fn since_run_began(&self, run_id: &str) -> i64 {
        let mut m = match self.run_seen.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        *m.entry(run_id.to_string()).or_insert_with(now)
    }

    /// Read-only actions for a condition, judged; `id` must be fresh for each evaluation.
    async fn evaluate(
        &self,
        client: &AgentClient,
        d: &Dispatch,
        id: ActionId,
        deadline: Duration,
    ) -> Result<Value, Outcome> {
        let judge = |ev: &Evidence, r: Result<(), String>| match r {
            Ok(()) => Ok(ev_json(ev)),
            Err(m) => Err(failed(m, ev_json(ev))),
        };
        match &d.operation {
            Operation::ServicesRunning { services } => {
                let ev = self
                    .run(
                        client,
                        id,
                        Action::ServicesStatus {
                            services: selector(services),
                        },
                        deadline,
                    )
                    .await?;
                judge(&ev, mapping::all_running(&ev))
            }
            Operation::ProductVersion { expect, component } => {
                let action = Action::ProductVersion {
                    component: *component,
                };
                let ev = self.run(client, id, action, deadline).await?;
                judge(&ev, mapping::version_is(&ev, expect))
            }
            Operation::OsVersion {
                windows,
                sql_server,
            } => {
                let ev = self.run(client, id, Action::OsVersion {}, deadline).await?;
                judge(
                    &ev,
                    mapping::os_is(&ev, windows.as_deref(), sql_server.as_deref()),
                )
            }
            Operation::EventLogClean => {
                let since = self.since_run_began(&d.key.run_id);
                let action = Action::EventLogQuery {
                    log: "Application".into(),
                    min_level: EventLevel::Warning,
                    since,
                };
                let ev = self.run(client, id, action, deadline).await?;
                judge(&ev, mapping::events_clean(&ev))
            }
            Operation::Wait {
                condition: WaitCondition::BackupSessionsLow { max, .. },
                ..
            } => {
                let ev = self
                    .run(client, id, Action::BackupSessions {}, deadline)
                    .await
                    .map_err(|o| hand_over_without_counters(o, *max, &[]))?;
                judge(&ev, mapping::sessions_at_most(&ev, *max).map(|_| ()))
            }
            other => Err(failed(
                format!("{} is not a read-only agent condition", op_name(other)),
                Value::Null,
            )),
        }
    }

    async fn execute_inner(&self, d: &Dispatch) -> Result<Value, Outcome> {
        let client = self.client(d.host.as_deref())?;
        let deadline = Duration::from_secs(d.timeout_secs.max(1));
        let key = d.key.as_string();
        let single = |action: Action| {
            let (client, key) = (client.clone(), key.clone());
            async move {
                let ev = self.run(&client, id(key)?, action, deadline).await?;
                Ok(ev_json(&ev))
            }
        };
        let action_timeout = d.timeout_secs.clamp(1, 86_400);
        match &d.operation {
            Operation::ServicesStop { services } => {
                single(Action::ServicesStop {
                    services: selector(services),
                    timeout_secs: action_timeout,
                })
                .await
            }
            Operation::ServicesStart { services } => {
                single(Action::ServicesStart {
                    services: selector(services),
                    timeout_secs: action_timeout,
                })
                .await
            }
            Operation::SetStartupType { service, startup } => {
                let startup = StartupType::parse(startup).map_err(|m| failed(m, Value::Null))?;
                single(Action::ServiceSetStartup {
                    service: service.clone(),
                    startup,
                })
                .await
            }
            Operation::Redirect { value, to_server } => {
                let client = self.client(d.host.as_deref())?;
                self.redirect(&client, d, *value, to_server, deadline).await
            }
            Operation::RegistrySet {
                key: k,
                name,
                value,
            } => {
                single(Action::RegistrySet {
                    key: k.clone(),
                    name: name.clone(),
                    value: value.clone(),
                })
                .await
            }
            Operation::RegistryDeleteKey { key: k } => {
                single(Action::RegistryDelete {
                    key: k.clone(),
                    name: None,
                })
                .await
            }
            Operation::OsqlPathReplace {
                files,
                tools_folder,
            } => {
                let client = self.client(d.host.as_deref())?;
                let mut edits = Vec::new();
                for (i, f) in files.iter().enumerate() {
                    let aid = if i == 0 {
                        key.clone()
                    } else {
                        format!("{key}#{}", i + 1)
                    };
                    let action = Action::FileReplace {
                        path: f.clone(),
                        edit: TextEdit::OsqlToolsFolder {
                            folder: tools_folder.clone(),
                        },
                    };
                    edits.push(ev_json(
                        &self.run(&client, id(aid)?, action, deadline).await?,
                    ));
                }
                Ok(json!({ "files": edits }))
            }
            Operation::RunScheduledTask { task } => {
                single(Action::ScheduledTaskRun {
                    task: task.clone(),
                    timeout_secs: action_timeout,
                })
                .await
            }
            Operation::IisReset => single(Action::IisReset {}).await,
            Operation::IisHttpsBinding { port, common_name } => {
                single(Action::IisHttpsBindingEnsure {
                    site: IIS_SITE.into(),
                    port: *port,
                    common_name: common_name.clone(),
                })
                .await
            }
            Operation::ServicesRunning { .. }
            | Operation::ProductVersion { .. }
            | Operation::OsVersion { .. }
            | Operation::EventLogClean => {
                let client = self.client(d.host.as_deref())?;
                self.evaluate(&client, d, id(key)?, deadline).await
            }
            Operation::Wait {
                condition: WaitCondition::BackupSessionsLow { max, stable_secs },
                interval_secs,
                timeout_secs,
            } => {
                let client = self.client(d.host.as_deref())?;
                self.wait_sessions(
                    &client,
                    d,
                    *max,
                    *stable_secs,
                    *interval_secs,
                    *timeout_secs,
                )
                .await
            }
            other => Err(failed(
                format!("{} does not run on an agent", op_name(other)),
                Value::Null,
            )),
        }
    }

    /// Polls backup sessions until they stay at or below `max` for `stable_secs`.
    async fn wait_sessions(
        &self,
        client: &AgentClient,
        d: &Dispatch,
        max: u32,
        stable_secs: u64,
        interval_secs: u64,
        timeout_secs: u64,
    ) -> Result<Value, Outcome> {
        let key = d.key.as_string();
        let start = tokio::time::Instant::now();
        let mut low_since: Option<tokio::time::Instant> = None;
        let mut samples = Vec::new();
        for n in 0.. {
            let polled = self
                .run(
                    client,
                    id(format!("{key}#poll-{n}"))?,
                    Action::BackupSessions {},
                    Duration::from_secs(60),
                )
                .await;
            let ev = match polled {
                Ok(ev) => ev,
                Err(o) => return Err(hand_over_without_counters(o, max, &samples)),
            };
            let count = match mapping::sessions_at_most(&ev, max) {
                Ok(c) => {
                    low_since.get_or_insert_with(tokio::time::Instant::now);
                    c
                }
                Err(_) => {
                    low_since = None;
                    match &ev {
                        Evidence::BackupSessions { backups, restores } => backups + restores,
                        _ => 0,
                    }
                }
            };
            samples.push(count);
            if low_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(stable_secs)) {
                return Ok(json!({ "sessions": samples, "max": max, "stable_secs": stable_secs }));
            }
            if start.elapsed() >= Duration::from_secs(timeout_secs) {
                return Err(failed(format!("sessions did not stay at or below {max} for {stable_secs} s within {timeout_secs} s"), json!({ "sessions": samples })));
            }
            tokio::time::sleep(Duration::from_secs(interval_secs.max(1))).await;
        }
        unreachable!("the loop returns")
    }
}

/// A backup-sessions read that failed because the server has no session counters becomes a
/// task for a person (who watches the sessions in the DCMC and confirms the count they see, as
/// the guide has them do); any other failure stays a failure.
fn hand_over_without_counters(o: Outcome, max: u32, samples: &[u32]) -> Outcome {
    let Outcome::Failed { message, evidence } = o else {
        return o;
    };
    match mapping::counters_unavailable(&evidence) {
        Some(reason) => Outcome::NeedsPerson {
            reason: format!(
                "backup-session counters are unavailable on this server ({reason}): watch the \
                 current sessions of BackupServer in the DCMC and confirm, with the count you \
                 see, once it is zero or stays at {max} or fewer"
            ),
            evidence: json!({ "counters": "unavailable", "agent": evidence, "sessions": samples }),
        },
        None => Outcome::Failed { message, evidence },
    }
}

fn op_name(op: &Operation) -> String {
    serde_json::to_value(op)
        .ok()
        .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(String::from))
        .unwrap_or_else(|| "this operation".into())
}

fn done(r: Result<Value, Outcome>) -> Outcome {
    match r {
        Ok(evidence) => Outcome::Succeeded { evidence },
        Err(o) => o,
    }
}

fn status_of(state: ActionState) -> ActionStatus {
    match state {
        ActionState::NotFound => ActionStatus::NotFound,
        ActionState::Running => ActionStatus::Running,
        ActionState::Succeeded { evidence } => ActionStatus::Finished {
            outcome: Outcome::Succeeded {
                evidence: ev_json(&evidence),
            },
        },
        ActionState::Failed { message, evidence } => ActionStatus::Finished {
            outcome: Outcome::Failed {
                message,
                evidence: evidence.as_ref().map(ev_json).unwrap_or(Value::Null),
            },
        },
        ActionState::Cancelled { message } => ActionStatus::Finished {
            outcome: Outcome::Failed {
                message: format!("cancelled: {message}"),
                evidence: Value::Null,
            },
        },
        ActionState::Unknown { reason } => ActionStatus::Unknown { reason },
    }
}

#[async_trait::async_trait]
impl Executor for AgentExecutor {
    async fn execute(&self, d: &Dispatch) -> Outcome {
        done(self.execute_inner(d).await)
    }

    /// Asks the agent about the key's change action (and the further files of a multi-file edit).
    async fn status(&self, key: &IdempotencyKey, host: Option<&str>) -> ActionStatus {
        let client = match self.client(host) {
            Ok(c) => c,
            Err(_) => {
                return ActionStatus::Unknown {
                    reason: format!("no agent registered for {host:?}"),
                }
            }
        };
        let main = match ActionId::new(key.as_string()) {
            Ok(i) => i,
            Err(e) => return ActionStatus::Unknown { reason: e },
        };
        let first = match client.status(&main, Duration::ZERO, 0).await {
            Ok(r) => r.state,
            Err(e) => {
                return ActionStatus::Unknown {
                    reason: format!("agent unreachable: {e}"),
                }
            }
        };
        let mut status = status_of(first);
        // Further files of a multi-file edit: all must have finished well for the whole to have.
        for n in 2.. {
            let ActionStatus::Finished {
                outcome: Outcome::Succeeded { .. },
            } = status
            else {
                break;
            };
            let Ok(next) = ActionId::new(format!("{}#{n}", key.as_string())) else {
                break;
            };
            match client.status(&next, Duration::ZERO, 0).await {
                Ok(r) if r.state == ActionState::NotFound => break,
                Ok(r) => {
                    let s = status_of(r.state);
                    if !matches!(
                        s,
                        ActionStatus::Finished {
                            outcome: Outcome::Succeeded { .. }
                        }
                    ) {
                        status = s;
                    }
                }
                Err(e) => {
                    return ActionStatus::Unknown {
                        reason: format!("agent unreachable: {e}"),
                    }
                }
            }
        }
        status
    }

    async fn cancel(&self, key: &IdempotencyKey, host: Option<&str>) -> bool {
        let (Ok(client), Ok(id)) = (self.client(host), ActionId::new(key.as_string())) else {
            return false;
        };
        match client.cancel(&id).await {
            Ok(_) => matches!(
                client
                    .status(&id, Duration::from_secs(10), 0)
                    .await
                    .map(|r| r.state),
                Ok(ActionState::Cancelled { .. })
            ),
            Err(_) => false,
        }
    }

    async fn check(&self, d: &Dispatch) -> Outcome {
        let client = match self.client(d.host.as_deref()) {
            Ok(c) => c,
            Err(o) => return o,
        };
        // A fresh id per evaluation: checks are reads and are asked again and again.
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let aid = match id(format!("{}#check-{}", d.key.as_string(), &nonce[..12])) {
            Ok(i) => i,
            Err(o) => return o,
        };
        done(
            self.evaluate(
                &client,
                d,
                aid,
                Duration::from_secs(d.timeout_secs.clamp(1, 300)),
            )
            .await,
        )
    }

    /// Restores exactly the value a redirect or registry change recorded as `previous`.
    async fn undo(&self, d: &Dispatch, before: &Value) -> Outcome {
        let restorable = matches!(
            d.operation,
            Operation::Redirect { .. } | Operation::RegistrySet { .. }
        );
        let key = before.get("key").and_then(Value::as_str);
        let name = before.get("name").and_then(Value::as_str);
        let previous = before.get("previous").and_then(Value::as_str);
        match (restorable, key, name, previous) {
            (true, Some(k), Some(n), Some(p)) => {
                let client = match self.client(d.host.as_deref()) {
                    Ok(c) => c,
                    Err(o) => return o,
                };
                let aid = match id(d.key.as_string()) {
                    Ok(i) => i,
                    Err(o) => return o,
                };
                let action = Action::RegistrySet {
                    key: k.into(),
                    name: n.into(),
                    value: p.into(),
                };
                done(
                    self.run(
                        &client,
                        aid,
                        action,
                        Duration::from_secs(d.timeout_secs.max(1)),
                    )
                    .await
                    .map(|e| ev_json(&e)),
                )
            }
            _ => self.execute(d).await,
        }
    }
}
