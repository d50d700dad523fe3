//! Versioned wire types shared by the Lockstep orchestrator and `lockstep-agent`.
//!
//! Every message carries [`PROTOCOL_VERSION`] in its `protocol` field. A receiver first reads only
//! that field ([`parse`]) so a peer speaking another version gets a clear refusal naming both
//! versions instead of a confusing "unknown field" error.
//!
//! Endpoints (all JSON over HTTPS with mutual TLS; paths are versioned too):
//! - `POST /v1/actions`        [`ActionRequest`]  → [`StatusResponse`] (accepted at once)
//! - `POST /v1/actions/status` [`StatusQuery`]    → [`StatusResponse`] (long-polls up to `wait_ms`)
//! - `POST /v1/actions/cancel` [`CancelRequest`]  → [`StatusResponse`]
//! - `GET  /v1/health`                            → [`Health`]
//! - `GET  /v1/facts`                             → [`SiteFacts`] (read-only, never journaled)
//!
//! Any refusal is an [`ErrorResponse`] with an HTTP status from [`ErrorCode::http_status`].
//!
//! Both ends authenticate each other with [`tls`]: pinned certificates, no certificate
//! authorities.

// Production code never unwraps, expects or panics on what it is given (the lint gate, see the
// workspace `Cargo.toml`); unit tests may.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod action;
pub mod evidence;
pub mod facts;
pub mod tls;
pub mod windows;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub use action::{Action, ActionKind, EventLevel, ServiceSelector, StartupType, TextEdit};
pub use evidence::Evidence;
pub use facts::{Component, SiteFacts};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest accepted clock difference between orchestrator and agent, in seconds (±5 minutes).
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Longest lifetime a request may ask for (`expires_at - issued_at`), in seconds.
pub const MAX_REQUEST_LIFETIME_SECS: i64 = 24 * 3600;

/// Longest long-poll a status query may ask for.
pub const MAX_WAIT_MS: u64 = 30_000;

/// An action's id, which is also its idempotency key: the agent runs an id at most once.
///
/// 1–200 characters from `A-Z a-z 0-9 - _ . : / @ #`, so it is safe in logs, file names of
/// evidence and JSON without escaping surprises.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ActionId(String);

impl ActionId {
    pub fn new(s: impl Into<String>) -> Result<ActionId, String> {
        let s = s.into();
        if s.is_empty() || s.len() > 200 {
            return Err(format!(
                "action id must be 1 to 200 characters, got {}",
                s.len()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-_.:/@#".contains(*c)))
        {
            return Err(format!(
                "action id `{}` contains `{}`; allowed are letters, digits and - _ . : / @ #",
                s.escape_debug(),
                c.escape_debug()
            ));
        }
        Ok(ActionId(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ActionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ActionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ActionId::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Start an action. The id is the idempotency key: sending the same request again returns the
/// journaled status; sending a different action under a used id is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    pub protocol: u32,
    pub id: ActionId,
    /// Unix seconds at which the orchestrator built the request.
    pub issued_at: i64,
    /// Unix seconds after which the agent must not start it.
    pub expires_at: i64,
    pub action: Action,
}

impl ActionRequest {
    pub fn new(id: ActionId, action: Action, now: i64, lifetime_secs: i64) -> ActionRequest {
        ActionRequest {
            protocol: PROTOCOL_VERSION,
            id,
            issued_at: now,
            expires_at: now + lifetime_secs,
            action,
        }
    }

    /// Whether an agent whose clock reads `now` may start this request; the error says why not.
    pub fn check_time(&self, now: i64) -> Result<(), ErrorResponse> {
        // abs_diff: a hostile issued_at (i64::MIN) must be refused, not overflow.
        if self.issued_at.abs_diff(now) > MAX_CLOCK_SKEW_SECS.unsigned_abs() {
            return Err(ErrorResponse::new(
                ErrorCode::ClockSkew,
                format!(
                    "request issued at {} but the agent's clock reads {now}: more than {MAX_CLOCK_SKEW_SECS} s apart; fix the clocks",
                    self.issued_at
                ),
            ));
        }
        if self.expires_at <= self.issued_at
            || self.expires_at.abs_diff(self.issued_at) > MAX_REQUEST_LIFETIME_SECS.unsigned_abs()
        {
            return Err(ErrorResponse::new(
                ErrorCode::Malformed,
                format!(
                    "expires_at must be after issued_at and at most {MAX_REQUEST_LIFETIME_SECS} s later"
                ),
            ));
        }
        if now >= self.expires_at {
            return Err(ErrorResponse::new(
                ErrorCode::Expired,
                format!(
                    "request expired at {} (agent clock {now}); nothing was run",
                    self.expires_at
                ),
            ));
        }
        Ok(())
    }
}

/// Ask what became of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    pub protocol: u32,
    pub id: ActionId,
    /// Wait up to this long for the action to finish before answering (capped at [`MAX_WAIT_MS`]).
    #[serde(default)]
    pub wait_ms: u64,
    /// Return log lines from this index on (lines already seen are not sent again).
    #[serde(default)]
    pub log_from: usize,
}

/// Ask the agent to stop an action that allows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub protocol: u32,
    pub id: ActionId,
}

/// Where an action stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ActionState {
    /// The agent has never seen this id: it is safe to send it.
    NotFound,
    /// Journaled and running.
    Running,
    Succeeded {
        evidence: Evidence,
    },
    Failed {
        message: String,
        evidence: Option<Evidence>,
    },
    /// Stopped on request before completing; `evidence` tells how far it got.
    Cancelled {
        message: String,
    },
    /// Journaled but its outcome is not known (the agent restarted while it ran). Never re-run.
    Unknown {
        reason: String,
    },
}

impl ActionState {
    pub fn is_terminal(&self) -> bool {
        !matches!(self, ActionState::Running | ActionState::NotFound)
    }
    pub fn name(&self) -> &'static str {
        match self {
            ActionState::NotFound => "not_found",
            ActionState::Running => "running",
            ActionState::Succeeded { .. } => "succeeded",
            ActionState::Failed { .. } => "failed",
            ActionState::Cancelled { .. } => "cancelled",
            ActionState::Unknown { .. } => "unknown",
        }
    }
}

/// One line of an action's progress log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub text: String,
}

/// The answer to a start, status or cancel request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub protocol: u32,
    pub id: ActionId,
    #[serde(flatten)]
    pub state: ActionState,
    /// True when a start request named an id the journal already held: nothing new was run.
    #[serde(default)]
    pub replayed: bool,
    /// Whether [`CancelRequest`] may still stop it.
    #[serde(default)]
    pub cancellable: bool,
    /// Log lines from the query's `log_from` on.
    #[serde(default)]
    pub log: Vec<LogLine>,
    /// Index of the first line in `log` (equal to the query's `log_from`).
    #[serde(default)]
    pub log_from: usize,
}

/// What `GET /v1/health` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub protocol: u32,
    pub agent_version: String,
    /// "windows" or "simulated".
    pub backend: String,
    pub hostname: String,
    /// Unix seconds on the agent's clock (lets the orchestrator see skew).
    pub now: i64,
    pub running_actions: usize,
}

/// Why a request was refused. Refusals never run anything and never touch the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The `protocol` field names a version this peer does not speak.
    UnsupportedVersion,
    /// Not valid JSON or not the expected shape; the message names the field.
    Malformed,
    /// Arguments outside the agent's allowlists (key prefix, path, task, installer hash…).
    NotAllowed,
    Expired,
    ClockSkew,
    /// The id was already used for a different action.
    IdConflict,
    /// Cancel asked for an action that cannot be cancelled (or is finished).
    NotCancellable,
    NotFound,
    /// The agent failed in a way that is not the action's fault (e.g. journal write failed).
    Internal,
    /// The agent cannot take an action now (its journal's disk is full, too many running):
    /// nothing was recorded and nothing ran; the same request may be sent again later.
    Unavailable,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::UnsupportedVersion | ErrorCode::Malformed => 400,
            ErrorCode::NotAllowed => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::IdConflict | ErrorCode::NotCancellable => 409,
            ErrorCode::Expired | ErrorCode::ClockSkew => 422,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ErrorResponse {
    pub protocol: u32,
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorResponse {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorResponse {
        ErrorResponse {
            protocol: PROTOCOL_VERSION,
            code,
            message: message.into(),
        }
    }
}

/// Parses any message of this protocol: checks the `protocol` field first, so a different
/// version is refused with [`ErrorCode::UnsupportedVersion`] before the shape is looked at.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ErrorResponse> {
    #[derive(Deserialize)]
    struct VersionOnly {
        protocol: Option<serde_json::Value>,
    }
    let probe: VersionOnly = serde_json::from_slice(bytes).map_err(|e| {
        ErrorResponse::new(
            ErrorCode::Malformed,
            format!("body is not a JSON object: {e}"),
        )
    })?;
    match probe.protocol {
        None => {
            return Err(ErrorResponse::new(
                ErrorCode::Malformed,
                "missing field `protocol` (the protocol version)",
            ))
        }
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(PROTOCOL_VERSION as u64) => {}
        Some(other) => {
            return Err(ErrorResponse::new(
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {other} is not supported; this side speaks version {PROTOCOL_VERSION}"
                ),
            ))
        }
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ErrorResponse::new(ErrorCode::Malformed, format!("invalid message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_json(protocol: &str) -> String {
        format!(
            r#"{{"protocol":{protocol},"id":"run1/stop@dc1/1","issued_at":100,"expires_at":400,
               "action":{{"action":"product_version"}}}}"#
        )
    }

    #[test]
    fn a_request_of_this_version_parses() {
        let r: ActionRequest = parse(request_json("1").as_bytes()).unwrap();
        assert_eq!(r.id.as_str(), "run1/stop@dc1/1");
        assert_eq!(r.action, Action::ProductVersion { component: None });
    }

    #[test]
    fn an_unknown_protocol_version_is_refused_naming_both_versions() {
        let e = parse::<ActionRequest>(request_json("2").as_bytes()).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedVersion);
        assert!(e.message.contains("version 2"), "{}", e.message);
        assert!(e.message.contains("version 1"), "{}", e.message);
    }

    #[test]
    fn a_missing_protocol_field_is_malformed() {
        let e = parse::<ActionRequest>(br#"{"id":"a"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::Malformed);
        assert!(e.message.contains("protocol"));
    }

    #[test]
    fn ids_with_spaces_or_backslashes_are_refused() {
        assert!(ActionId::new("run 1").is_err());
        assert!(ActionId::new("a\\b").is_err());
        assert!(ActionId::new("").is_err());
        assert!(ActionId::new("r-1/s.t@h:x#2").is_ok());
        let bad = request_json("1").replace("run1/stop@dc1/1", "a b");
        let e = parse::<ActionRequest>(bad.as_bytes()).unwrap_err();
        assert!(e.message.contains("action id"), "{}", e.message);
    }

    #[test]
    fn time_checks_refuse_skew_expiry_and_absurd_lifetimes() {
        let id = ActionId::new("x").unwrap();
        let r = ActionRequest::new(id, Action::ProductVersion { component: None }, 1_000, 60);
        assert!(r.check_time(1_000).is_ok());
        assert!(r.check_time(1_000 + MAX_CLOCK_SKEW_SECS).is_err());
        assert_eq!(
            r.check_time(1_000 + MAX_CLOCK_SKEW_SECS + 1)
                .unwrap_err()
                .code,
            ErrorCode::ClockSkew
        );
        assert_eq!(
            r.check_time(1_000 - 301).unwrap_err().code,
            ErrorCode::ClockSkew
        );
        assert_eq!(r.check_time(1_060).unwrap_err().code, ErrorCode::Expired);
        let mut long = r.clone();
        long.expires_at = long.issued_at + MAX_REQUEST_LIFETIME_SECS + 1;
        assert_eq!(
            long.check_time(1_000).unwrap_err().code,
            ErrorCode::Malformed
        );
    }

    #[test]
    fn status_responses_round_trip_with_their_state_flattened() {
        let s = StatusResponse {
            protocol: PROTOCOL_VERSION,
            id: ActionId::new("a").unwrap(),
            state: ActionState::Unknown {
                reason: "agent restarted".into(),
            },
            replayed: true,
            cancellable: false,
            log: vec![LogLine {
                at_ms: 5,
                text: "hi".into(),
            }],
            log_from: 0,
        };
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""state":"unknown""#), "{text}");
        let back: StatusResponse = parse(text.as_bytes()).unwrap();
        assert_eq!(back, s);
    }
}
