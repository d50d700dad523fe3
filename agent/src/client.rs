//! A client for one agent: HTTPS with this side's client certificate, accepting only the agent's
//! pinned certificate (no public roots). It distinguishes a refusal (the agent answered: nothing
//! ran) from a transport failure (no answer: a start's outcome is unknown and must be asked for
//! by id, never re-sent blindly).

use std::time::Duration;

use lockstep_protocol::facts::MAX_FACTS_BYTES;
use lockstep_protocol::{
    parse, ActionId, ActionRequest, CancelRequest, ErrorResponse, Health, SiteFacts, StatusQuery,
    StatusResponse, PROTOCOL_VERSION,
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
        self.post("/v1/actions", req, self.timeout).await
    }

    /// Asks for an action's state, waiting up to `wait` on the agent for it to finish.
    pub async fn status(
        &self,
        id: &ActionId,
        wait: Duration,
        log_from: usize,
    ) -> Result<StatusResponse, ClientError> {
        let q = StatusQuery {
            protocol: PROTOCOL_VERSION,
            id: id.clone(),
            wait_ms: wait.as_millis() as u64,
            log_from,
        };
        self.post("/v1/actions/status", &q, self.timeout + wait)
            .await
    }

    pub async fn cancel(&self, id: &ActionId) -> Result<StatusResponse, ClientError> {
        let r = CancelRequest {
            protocol: PROTOCOL_VERSION,
            id: id.clone(),
        };
        self.post("/v1/actions/cancel", &r, self.timeout).await
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
        let mut doubt = match self.start(req).await {
            Ok(r) if r.state.is_terminal() => return Driven::Finished(r),
            Ok(_) => None,
            Err(ClientError::Refused(e)) => return Driven::Refused(e),
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
                .status(&req.id, left.min(Duration::from_secs(10)), 0)
                .await
            {
                Ok(r) if r.state.is_terminal() => return Driven::Finished(r),
                Ok(r) if r.state == lockstep_protocol::ActionState::NotFound => {
                    // The start never reached the journal: sending it now cannot run it twice.
                    match self.start(req).await {
                        Ok(r) if r.state.is_terminal() => return Driven::Finished(r),
                        Ok(_) => doubt = None,
                        Err(ClientError::Refused(e)) => return Driven::Refused(e),
                        Err(e) => doubt = Some(e.to_string()),
                    }
                }
                Ok(_) => {}
                Err(ClientError::Refused(e)) => return Driven::Refused(e),
                Err(e) => {
                    doubt = Some(e.to_string());
                    tokio::time::sleep(backoff.min(left)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

async fn decode<R: DeserializeOwned>(resp: reqwest::Response) -> Result<R, ClientError> {
    let ok = resp.status().is_success();
    let code = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ClientError::Transport(chain(&e)))?;
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
