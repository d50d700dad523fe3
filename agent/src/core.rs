//! The agent's core, independent of HTTP: admit a request (allowlist, replay, clock), journal it,
//! run it in the background on the backend, answer status with log lines, cancel on request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockstep_protocol::{
    ActionId, ActionRequest, ActionState, CancelRequest, ErrorCode, ErrorResponse, Health,
    StatusQuery, StatusResponse, MAX_WAIT_MS, PROTOCOL_VERSION,
};
use tokio::sync::{watch, Notify};

use crate::backend::{ActionCtx, Backend, Failure};
use crate::config::AgentConfig;
use crate::journal::{Admission, Journal};
use crate::policy;

/// How long a start waits for its action to finish before answering `running`.
pub const START_WAIT: Duration = Duration::from_millis(50);

pub struct AgentCore {
    config: AgentConfig,
    journal: Arc<Journal>,
    backend: Arc<dyn Backend>,
    /// Cancel switches of running actions.
    cancels: Mutex<HashMap<ActionId, watch::Sender<bool>>>,
    /// Woken whenever an action finishes, so long-polls answer at once.
    finished: Notify,
    hostname: String,
}

fn internal(e: impl std::fmt::Display) -> ErrorResponse {
    tracing::error!(error = %e, "agent internal error");
    ErrorResponse::new(ErrorCode::Internal, format!("agent error: {e}"))
}

pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl AgentCore {
    pub fn new(
        config: AgentConfig,
        journal: Arc<Journal>,
        backend: Arc<dyn Backend>,
        hostname: String,
    ) -> Arc<Self> {
        Arc::new(AgentCore {
            config,
            journal,
            backend,
            cancels: Mutex::new(HashMap::new()),
            finished: Notify::new(),
            hostname,
        })
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    fn response(&self, id: &ActionId, replayed: bool, log_from: usize) -> StatusResponse {
        match self.journal.get(id) {
            None => StatusResponse {
                protocol: PROTOCOL_VERSION,
                id: id.clone(),
                state: ActionState::NotFound,
                replayed,
                cancellable: false,
                log: Vec::new(),
                log_from,
            },
            Some(e) => StatusResponse {
                protocol: PROTOCOL_VERSION,
                id: id.clone(),
                cancellable: e.state == ActionState::Running && e.action.is_cancellable(),
                state: e.state,
                replayed,
                log: e.log.into_iter().skip(log_from).collect(),
                log_from,
            },
        }
    }

    /// Starts an action, or returns the journaled status of an id already used.
    pub fn start(
        self: &Arc<Self>,
        req: ActionRequest,
        now: i64,
    ) -> Result<StatusResponse, ErrorResponse> {
        policy::check(&self.config, &req.action)?;
        if let Some(e) = self.journal.get(&req.id) {
            if e.digest != crate::journal::digest(&req.action) {
                return Err(ErrorResponse::new(
                    ErrorCode::IdConflict,
                    format!(
                        "action id {} was already used for a different action",
                        req.id
                    ),
                ));
            }
            return Ok(self.response(&req.id, true, 0));
        }
        req.check_time(now)?;
        match self.journal.admit(&req.id, &req.action).map_err(internal)? {
            Admission::Replay(_) => return Ok(self.response(&req.id, true, 0)),
            Admission::Conflict => {
                return Err(ErrorResponse::new(
                    ErrorCode::IdConflict,
                    format!(
                        "action id {} was already used for a different action",
                        req.id
                    ),
                ))
            }
            Admission::Unavailable(why) => {
                tracing::warn!(id = %req.id, %why, "action refused: the journal cannot take it");
                return Err(ErrorResponse::new(ErrorCode::Unavailable, why));
            }
            Admission::New => {}
        }
        let (tx, rx) = watch::channel(false);
        if let Ok(mut c) = self.cancels.lock() {
            c.insert(req.id.clone(), tx);
        }
        let me = Arc::clone(self);
        let id = req.id.clone();
        let action = req.action.clone();
        tokio::spawn(async move {
            let ctx = ActionCtx::new(id.clone(), Some(me.journal.clone()), rx);
            ctx.log(format!("started {}", action.kind().as_str()));
            let backend = me.backend.clone();
            let run = tokio::spawn(async move { backend.run(&action, &ctx).await });
            let state = match run.await {
                Ok(Ok(evidence)) => ActionState::Succeeded { evidence },
                Ok(Err(Failure::Failed { message, evidence })) => {
                    ActionState::Failed { message, evidence }
                }
                Ok(Err(Failure::Cancelled(message))) => ActionState::Cancelled { message },
                Err(e) => ActionState::Failed {
                    message: format!("the action panicked in the agent: {e}"),
                    evidence: None,
                },
            };
            if let Err(e) = me.journal.finish(&id, state) {
                tracing::error!(%id, error = %e, "could not journal the result; it will read as unknown after restart");
            }
            if let Ok(mut c) = me.cancels.lock() {
                c.remove(&id);
            }
            me.finished.notify_waiters();
        });
        Ok(self.response(&req.id, false, 0))
    }

    /// [`AgentCore::start`], then a short wait for the action to finish: most actions (reads,
    /// small edits) end within milliseconds, and their result then rides on the start's answer,
    /// saving the orchestrator a second round trip. A longer action is answered `running` after
    /// [`START_WAIT`], as before; a replayed or refused start is answered at once. The answer is
    /// the same `StatusResponse` either way, so orchestrators of any version understand it.
    pub async fn start_and_wait(
        self: &Arc<Self>,
        req: ActionRequest,
        now: i64,
    ) -> Result<StatusResponse, ErrorResponse> {
        let started = self.start(req, now)?;
        if started.replayed || started.state != ActionState::Running {
            return Ok(started);
        }
        let waited = self
            .status(StatusQuery {
                protocol: PROTOCOL_VERSION,
                id: started.id.clone(),
                wait_ms: START_WAIT.as_millis() as u64,
                log_from: 0,
            })
            .await;
        Ok(waited)
    }

    /// The journaled state of an id, waiting up to `wait_ms` for it to finish.
    pub async fn status(&self, q: StatusQuery) -> StatusResponse {
        let wait = Duration::from_millis(q.wait_ms.min(MAX_WAIT_MS));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let r = self.response(&q.id, false, q.log_from);
            if r.state != ActionState::Running || tokio::time::Instant::now() >= deadline {
                return r;
            }
            // Wake on finish, or every second to pass on fresh log lines' existence cheaply.
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_secs(1)),
                notified,
            )
            .await;
        }
    }

    pub fn cancel(&self, req: CancelRequest) -> Result<StatusResponse, ErrorResponse> {
        let Some(e) = self.journal.get(&req.id) else {
            return Err(ErrorResponse::new(
                ErrorCode::NotFound,
                format!("no action {} in the journal", req.id),
            ));
        };
        if e.state != ActionState::Running || !e.action.is_cancellable() {
            let why = if e.state == ActionState::Running {
                format!(
                    "is a {} action, which cannot be cancelled",
                    e.action.kind().as_str()
                )
            } else {
                format!("has already ended ({})", e.state.name())
            };
            return Err(ErrorResponse::new(
                ErrorCode::NotCancellable,
                format!("action {} {why}", req.id),
            ));
        }
        if let Ok(c) = self.cancels.lock() {
            if let Some(tx) = c.get(&req.id) {
                let _ = tx.send(true);
            }
        }
        self.journal.log(&req.id, "cancel requested");
        Ok(self.response(&req.id, false, 0))
    }

    /// What the backend finds on this server now. Read-only: nothing is journaled.
    pub async fn facts(&self) -> lockstep_protocol::SiteFacts {
        self.backend.facts().await
    }

    pub fn health(&self) -> Health {
        Health {
            protocol: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            backend: self.backend.name().to_string(),
            hostname: self.hostname.clone(),
            now: unix_now(),
            running_actions: self.journal.running(),
        }
    }
}
