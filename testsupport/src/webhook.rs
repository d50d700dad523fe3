//! A signed-webhook receiver on loopback, as a site's change-management system or chat bridge
//! would run one: every request's signature is checked (and replays refused) by a check the test
//! passes in; accepted bodies are kept in arrival order, refusals with their reason. It can be
//! told to answer 503 to the first requests, or to all of them, to exercise retries.
//!
//! The check is passed in rather than written here so that this crate does not depend on the
//! orchestrator: the notification tests hand it `lockstep::notify::verify_signature` and a
//! `ReplayGuard`, exactly what the documentation tells a receiver to use.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;

/// Checks one request (headers, body, now in Unix seconds): `Err` names why it is refused. It
/// may keep state (a replay guard); a fresh one is made whenever the receiver "goes down".
pub type Check = Box<dyn FnMut(&HeaderMap, &[u8], i64) -> Result<(), String> + Send>;

/// Makes a fresh [`Check`] (at start, and after each answer of 503).
pub type NewCheck = Box<dyn Fn() -> Check + Send>;

/// What the receiver answers to correctly signed requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Requests to refuse (with 503) before accepting.
    pub fail_first: usize,
    /// Refuse every request with 503.
    pub always_fail: bool,
}

/// What the receiver has seen so far.
pub struct Receiver {
    behaviour: Behaviour,
    new_check: NewCheck,
    check: Check,
    /// Requests received, whatever their answer.
    pub seen: usize,
    /// Bodies of accepted requests, in arrival order.
    pub accepted: Vec<serde_json::Value>,
    /// Why requests were refused as unsigned, badly signed or replayed.
    pub refused: Vec<String>,
}

/// The receiver, shared between its server task and the test.
pub type Shared = Arc<Mutex<Receiver>>;

async fn receive(
    State(r): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let mut guard = r.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let r = &mut *guard;
    r.seen += 1;
    if let Err(e) = (r.check)(&headers, &body, now) {
        r.refused.push(e);
        return StatusCode::UNAUTHORIZED;
    }
    if r.behaviour.always_fail || r.seen <= r.behaviour.fail_first {
        // Signed correctly but the receiver is down: it forgets the id, so the retry is accepted.
        r.check = (r.new_check)();
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match serde_json::from_slice(&body) {
        Ok(json) => {
            r.accepted.push(json);
            StatusCode::OK
        }
        Err(e) => {
            r.refused.push(format!("the body is not JSON: {e}"));
            StatusCode::BAD_REQUEST
        }
    }
}

/// Starts a receiver answering POST on `path` of a loopback port; returns it and its URL.
pub async fn start(
    path: &str,
    behaviour: Behaviour,
    new_check: impl Fn() -> Check + Send + 'static,
) -> (Shared, reqwest::Url) {
    let new_check: NewCheck = Box::new(new_check);
    let shared: Shared = Arc::new(Mutex::new(Receiver {
        behaviour,
        check: new_check(),
        new_check,
        seen: 0,
        accepted: Vec::new(),
        refused: Vec::new(),
    }));
    let app = Router::new()
        .route(path, post(receive))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("the bound address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}{path}")
        .parse()
        .expect("a loopback URL");
    (shared, url)
}
