//! A client for one agent: HTTPS with this side's client certificate, accepting only the agent's
//! pinned certificate (no public roots). It distinguishes a refusal (the agent answered: nothing
//! ran) from a transport failure (no answer: a start's outcome is unknown and must be asked for
//! by id, never re-sent blindly).
//!
//! Every answer is bound to its question: a status must name the id asked about, and a final
//! state's evidence must be of a kind the action produces ([`evidence_for`]); anything else is a
//! [`ClientError::Violation`] (logged as a protocol violation), which [`AgentClient::drive`]
//! reports as outcome unknown — never as succeeded. Bodies are read up to [`MAX_ANSWER_BYTES`].

use std::time::Duration;

use lockstep_protocol::evidence::evidence_for;
use lockstep_protocol::facts::MAX_FACTS_BYTES;
use lockstep_protocol::{
    parse, ActionId, ActionKind, ActionRequest, ActionState, CancelRequest, ErrorResponse, Health,
    SiteFacts, StatusQuery, StatusResponse, PROTOCOL_VERSION,
};
use serde::{de::DeserializeOwned, Serialize};

use crate::tls::{client_config, Identity, Thumbprint};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The agent answered with a protocol error: the request was refused, nothing ran.
    #[error("agent refused: {0}")]
    Refused(ErrorResponse),
    /// No usable answer (connect, TLS, timeout, reset). For a start, the outcome is unknown.
    #[error("no answer from the agent: {0}")]
    Transport(String),
    /// An answer that is not this protocol.
    #[error("unexpected answer from the agent: {0}")]
    BadAnswer(String),
    /// A well-formed answer to another question (another id, evidence another action makes):
    /// whatever it says about our action cannot be believed.
    #[error("protocol violation by the agent: {0}")]
    Violation(String),
}

/// The largest answer read from an agent (a status with its log and evidence is a few KiB;
/// the journal caps a result at 32 KiB). A larger one is refused without reading the rest.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Checks that `r` answers the question asked: about `asked`, and (for a final state with
/// evidence) with evidence of a kind `kind` produces.
pub fn check_answer(
    asked: &ActionId,
    kind: Option<ActionKind>,
    r: &StatusResponse,
) -> Result<(), ClientError> {
    let violation = |why: String| {
        tracing::warn!(target: "protocol_violation", id = %asked, "{why}");
        Err(ClientError::Violation(why))
    };
    if r.id != *asked {
        return violation(format!(
            "asked about action {asked}, the agent answered about {}",
            r.id
        ));
    }
    let evidence = match &r.state {
        ActionState::Succeeded { evidence } => Some(evidence),
        ActionState::Failed { evidence, .. } => evidence.as_ref(),
        _ => None,
    };
    if let (Some(kind), Some(ev)) = (kind, evidence) {
        let allowed = evidence_for(kind);
        if !allowed.contains(&ev.name()) {
            return violation(format!(
                "action {asked} is a {} action, which produces {} evidence; the agent answered with {} evidence",
                kind.as_str(),
                allowed.join(" or "),
                ev.name()
            ));
        }
    }
    Ok(())
}

#[derive(Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl AgentClient {
    /// `base_url` like `https://dc1.contoso.local:9443`; `agent_pin` is the agent's thumbprint.
    pub fn new(
        base_url: &str,
        identity: &Identity,
        agent_pin: Thumbprint,
        timeout: Duration,
    ) -> anyhow::Result<AgentClient> {
        Self::with_pool(base_url, identity, agent_pin, timeout, true)
    }

    /// Like [`AgentClient::new`]; `pooled = false` opens a new connection per request (each
    /// request then has its own TLS handshake, which fault-injection tests rely on).
    pub fn with_pool(
        base_url: &str,
        identity: &Identity,
        agent_pin: Thumbprint,
        timeout: Duration,
        pooled: bool,
    ) -> anyhow::Result<AgentClient> {
        let url = reqwest::Url::parse(base_url)
            .map_err(|e| anyhow::anyhow!("agent URL `{base_url}`: {e}"))?;
        if url.scheme() != "https" {
            anyhow::bail!("agent URL `{base_url}` must use https");
        }
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(client_config(identity, vec![agent_pin])?)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(if pooled { 2 } else { 0 })
            .build()?;
        Ok(AgentClient {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            timeout,
        })
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<R, ClientError> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| ClientError::Transport(chain(&e)))?;
        decode(resp).await
    }

    pub async fn start(&self, req: &ActionRequest) -> Result<StatusResponse, ClientError> {
        let r = self.post("/v1/actions", req, self.timeout).await?;
        check_answer(&req.id, Some(req.action.kind()), &r)?;
        Ok(r)
    }

    /// Asks for an action's state, waiting up to `wait` on the agent for it to finish.
    pub async fn status(
        &self,
        id: &ActionId,
        wait: Duration,
        log_from: usize,
    ) -> Result<StatusResponse, ClientError> {
        self.status_of(id, None, wait, log_from).await
    }

    /// [`AgentClient::status`], also checking the evidence against `kind` when it is known.
    async fn status_of(
        &self,
        id: &ActionId,
        kind: Option<ActionKind>,
        wait: Duration,
        log_from: usize,
    ) -> Result<StatusResponse, ClientError> {
        let q = StatusQuery {
            protocol: PROTOCOL_VERSION,
            id: id.clone(),
            wait_ms: wait.as_millis() as u64,
            log_from,
        };
        let r = self
            .post("/v1/actions/status", &q, self.timeout + wait)
            .await?;
        check_answer(id, kind, &r)?;
        Ok(r)
    }

    pub async fn cancel(&self, id: &ActionId) -> Result<StatusResponse, ClientError> {
        let r = CancelRequest {
            protocol: PROTOCOL_VERSION,
            id: id.clone(),
        };
        let answer = self.post("/v1/actions/cancel", &r, self.timeout).await?;
        check_answer(id, None, &answer)?;
        Ok(answer)
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        let resp = self
            .http
            .get(format!("{}/v1/health", self.base))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| ClientError::Transport(chain(&e)))?;
        decode(resp).await
    }
}

impl AgentClient {
    /// The server's facts (`GET /v1/facts`). The body is read up to [`MAX_FACTS_BYTES`]: a
    /// larger answer is refused without reading the rest, and one that is not a facts document
    /// is a [`ClientError::BadAnswer`] naming what is wrong.
    pub async fn facts(&self) -> Result<SiteFacts, ClientError> {
        let mut resp = self
            .http
            .get(format!("{}/v1/facts", self.base))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| ClientError::Transport(chain(&e)))?;
        let too_big = || {
            ClientError::BadAnswer(format!(
                "the facts answer is larger than {MAX_FACTS_BYTES} bytes; not read"
            ))
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_FACTS_BYTES as u64)
        {
            return Err(too_big());
        }
        let code = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ClientError::Transport(chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_FACTS_BYTES {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        if !code.is_success() {
            return match parse::<ErrorResponse>(&body) {
                Ok(e) => Err(ClientError::Refused(e)),
                Err(_) => Err(ClientError::BadAnswer(format!(
                    "HTTP {code}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ))),
            };
        }
        parse::<SiteFacts>(&body)
            .map_err(|e| ClientError::BadAnswer(format!("facts: {}", e.message)))
    }
}

/// How a driven action ended, from the orchestrator's point of view.
#[derive(Debug, Clone, PartialEq)]
pub enum Driven {
    /// The agent reported a final state (succeeded, failed, cancelled, or its own "unknown").
    Finished(StatusResponse),
    /// The agent refused the request: nothing ran.
    Refused(ErrorResponse),
    /// No final answer before the deadline: the action may or may not have run. Never re-sent;
    /// ask [`AgentClient::status`] later.
    Unknown { reason: String },
}

impl AgentClient {
    /// Sends `req` once and follows it to a final state. On any doubt (timeout, reset, garbled
    /// answer) it asks for the status by id instead of sending again; it re-sends the start only
    /// when the agent says it has never seen the id (so nothing can have run), and the agent's
    /// journal would turn a duplicate into a replay anyway.
    pub async fn drive(&self, req: &ActionRequest, deadline: Duration) -> Driven {
        let until = tokio::time::Instant::now() + deadline;
        let kind = Some(req.action.kind());
        let mut doubt = match self.start(req).await {
            Ok(r) if r.state.is_terminal() => return Driven::Finished(r),
            Ok(_) => None,
            Err(ClientError::Refused(e)) => return Driven::Refused(e),
            Err(e @ ClientError::Violation(_)) => return unknown(e),
            Err(e) => Some(e.to_string()),
        };
        let mut backoff = Duration::from_millis(20);
        loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Driven::Unknown {
                    reason: doubt
                        .unwrap_or_else(|| format!("still running after {} s", deadline.as_secs())),
                };
            }
            match self
                .status_of(&req.id, kind, left.min(Duration::from_secs(10)), 0)
                .await
            {
                Ok(r) if r.state.is_terminal() => return Driven::Finished(r),
                Ok(r) if r.state == lockstep_protocol::ActionState::NotFound => {
                    // The start never reached the journal: sending it now cannot run it twice.
                    match self.start(req).await {
                        Ok(r) if r.state.is_terminal() => return Driven::Finished(r),
                        Ok(_) => doubt = None,
                        Err(ClientError::Refused(e)) => return Driven::Refused(e),
                        Err(e @ ClientError::Violation(_)) => return unknown(e),
                        Err(e) => doubt = Some(e.to_string()),
                    }
                }
                Ok(_) => {}
                Err(ClientError::Refused(e)) => return Driven::Refused(e),
                Err(e @ ClientError::Violation(_)) => return unknown(e),
                Err(e) => {
                    doubt = Some(e.to_string());
                    tokio::time::sleep(backoff.min(left)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// An answer that cannot be believed ends the drive as unknown at once: asking again would only
/// ask the same agent that just answered another question.
fn unknown(e: ClientError) -> Driven {
    Driven::Unknown {
        reason: e.to_string(),
    }
}

/// Reads a body of at most `limit` bytes; a larger one is refused without reading the rest.
async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, ClientError> {
    let too_big = || {
        ClientError::BadAnswer(format!(
            "the agent's answer is larger than {limit} bytes; not read"
        ))
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ClientError::Transport(chain(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn decode<R: DeserializeOwned>(resp: reqwest::Response) -> Result<R, ClientError> {
    let ok = resp.status().is_success();
    let code = resp.status();
    let bytes = read_limited(resp, MAX_ANSWER_BYTES).await?;
    if ok {
        return parse::<R>(&bytes).map_err(|e| ClientError::BadAnswer(e.message));
    }
    match parse::<ErrorResponse>(&bytes) {
        Ok(e) => Err(ClientError::Refused(e)),
        Err(_) => Err(ClientError::BadAnswer(format!(
            "HTTP {code}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ))),
    }
}

/// The error with its causes, e.g. "error sending request: … : connection reset".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
