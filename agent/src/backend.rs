//! Backends perform actions that have passed the allowlist and been journaled.
//!
//! - [`windows`]: real commands, built as argument vectors, outputs parsed by tested functions;
//! - [`simulated`]: a model of a Data Center server kept in a JSON file, with fault injection.
//!
//! Shared pieces live here: the context an action runs with (log lines, cancellation), the text
//! edit used by both backends, and the HTTP probe (which is the same on any host).

pub mod edit;
pub mod select;
// `Failure` carries evidence; see its doc for why a large `Err` is accepted here.
#[allow(clippy::result_large_err)]
pub mod simulated;
#[allow(clippy::result_large_err)]
pub mod windows;

use std::sync::Arc;
use std::time::Duration;

use lockstep_protocol::{Action, ActionId, Evidence, SiteFacts};
use tokio::sync::watch;

use crate::journal::Journal;

/// How an action ended when it did not succeed.
///
/// It carries the evidence the failed action gathered (services as found, a task's result),
/// which makes it larger than clippy likes in a `Result`; it is returned once per action, never
/// in a hot loop, so it is not boxed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    Failed {
        message: String,
        evidence: Option<Evidence>,
    },
    /// Stopped on request during a waiting phase.
    Cancelled(String),
}

impl Failure {
    pub fn msg(message: impl Into<String>) -> Failure {
        Failure::Failed {
            message: message.into(),
            evidence: None,
        }
    }
}

/// What an action runs with.
#[derive(Clone)]
pub struct ActionCtx {
    pub id: ActionId,
    journal: Option<Arc<Journal>>,
    cancel: watch::Receiver<bool>,
}

impl ActionCtx {
    pub fn new(id: ActionId, journal: Option<Arc<Journal>>, cancel: watch::Receiver<bool>) -> Self {
        ActionCtx {
            id,
            journal,
            cancel,
        }
    }

    /// A context with no journal and no way to cancel (unit tests).
    #[allow(
        clippy::expect_used,
        reason = "\"detached\" is a constant, valid action id"
    )]
    pub fn detached(id: &str) -> ActionCtx {
        let (_tx, rx) = watch::channel(false);
        ActionCtx {
            id: ActionId::new(id).unwrap_or_else(|_| ActionId::new("detached").expect("valid id")),
            journal: None,
            cancel: rx,
        }
    }

    /// Adds a progress line the orchestrator sees when it polls.
    pub fn log(&self, text: impl Into<String>) {
        let text = text.into();
        tracing::info!(id = %self.id, "{text}");
        if let Some(j) = &self.journal {
            j.log(&self.id, text);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Sleeps, returning early with [`Failure::Cancelled`] if a cancel arrives.
    pub async fn pause(&self, d: Duration) -> Result<(), Failure> {
        if self.is_cancelled() {
            return Err(Failure::Cancelled("cancelled on request".into()));
        }
        let mut rx = self.cancel.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = rx.wait_for(|c| *c) => Err(Failure::Cancelled("cancelled on request".into())),
        }
    }
}

/// Performs actions. Arguments have already passed [`crate::policy::check`].
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// "windows" or "simulated".
    fn name(&self) -> &'static str;
    async fn run(&self, action: &Action, ctx: &ActionCtx) -> Result<Evidence, Failure>;
    /// What this server looks like now (`GET /v1/facts`). Read-only and never journaled; a fact
    /// that cannot be read is left out and named in [`SiteFacts::errors`], never failing the rest.
    async fn facts(&self) -> SiteFacts;
}

/// Refuses to run a SQL script whose bytes on disk are not the catalogued ones (`path` is
/// resolved; the catalog entry was found by the policy check before the action was journaled).
#[allow(clippy::result_large_err)] // see `Failure`
pub fn check_script_hash(
    cfg: &crate::config::AgentConfig,
    path: &str,
    bytes: &[u8],
) -> Result<(), Failure> {
    use sha2::Digest;
    let entry = crate::policy::script_in_catalog(cfg, path).map_err(|e| Failure::msg(e.message))?;
    let found = hex::encode(sha2::Sha256::digest(bytes));
    if !found.eq_ignore_ascii_case(&entry.sha256) {
        return Err(Failure::msg(format!(
            "SQL script `{path}` has SHA-256 {found}, not the catalogued {}: it was changed since it was shipped; not run",
            entry.sha256
        )));
    }
    Ok(())
}

/// GET a URL from this host. Certificates are not verified (self-signed DataTransfer nodes are
/// allowed by the guide); the evidence says so.
pub async fn http_probe(
    url: &str,
    timeout_secs: u64,
    ctx: &ActionCtx,
) -> Result<Evidence, Failure> {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        // A listed target must not bounce the agent to one that is not (the allowlist names
        // where the agent may go; a redirect is reported as the answer, not followed).
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(timeout_secs))
        .build()
        .map_err(|e| Failure::msg(format!("building the HTTP client: {e}")))?;
    ctx.log(format!("GET {url} (certificate not verified)"));
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| Failure::msg(format!("GET {url}: {e}")))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| Failure::msg(format!("reading the body of {url}: {e}")))?;
    let body_start = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
    Ok(Evidence::HttpProbe {
        url: url.to_string(),
        status,
        body_start,
    })
}
