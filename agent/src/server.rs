//! The HTTPS server: a TLS accept loop (rustls, client certificate required and pinned) feeding
//! an axum router whose handlers parse the versioned protocol and call [`AgentCore`].
//!
//! Start it in-process with [`serve`] (any listener, a shutdown future) or [`spawn`] (binds the
//! configured address and returns a [`RunningAgent`] handle); the binary's `run` uses [`serve`].

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use lockstep_protocol::{parse, ActionRequest, CancelRequest, ErrorResponse, StatusQuery};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::backend::simulated::{SimulatedBackend, SimulatedHost};
use crate::backend::windows::WindowsBackend;
use crate::backend::Backend;
use crate::config::{AgentConfig, BackendKind};
use crate::core::{unix_now, AgentCore};
use crate::journal::Journal;
use crate::tls::{self, Identity, Thumbprint};

/// Everything an agent needs to serve.
pub struct AgentSetup {
    pub config: AgentConfig,
    pub identity: Identity,
    /// Orchestrator certificates accepted (one, or two during rotation).
    pub client_pins: Vec<Thumbprint>,
    pub backend: Arc<dyn Backend>,
}

/// Reads the pinned orchestrator thumbprints (`trusted.txt`, one per line; `#` comments).
pub fn load_pins(state_dir: &Path) -> anyhow::Result<Vec<Thumbprint>> {
    let path = crate::config::pins_path(state_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, l)| {
            Thumbprint::parse(l)
                .map_err(|e| anyhow::anyhow!("{} entry {}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// SHA-256 of empty input: what a tool prints when it hashed nothing (a missing file, an empty
/// paste). No certificate has it.
const EMPTY_INPUT_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Refuses thumbprints that cannot be a real certificate's digest.
fn check_real_digest(t: &Thumbprint) -> anyhow::Result<()> {
    if t.0.iter().all(|b| *b == t.0[0]) {
        anyhow::bail!("thumbprint {t} is one byte repeated, not a certificate's SHA-256; copy it from `lockstep agent identity`");
    }
    if hex::encode(t.0) == EMPTY_INPUT_SHA256 {
        anyhow::bail!("thumbprint {t} is the SHA-256 of nothing (an empty file or paste), not a certificate's; copy it from `lockstep agent identity`");
    }
    Ok(())
}

/// Pins `thumbprint`, keeping at most two (the newest two, for a certificate rotation); returns
/// the pins now in force. Dropping a pin to make room is refused unless `replace` says the
/// person means it (the message names the pin that would go).
pub fn trust(
    state_dir: &Path,
    thumbprint: Thumbprint,
    replace: bool,
) -> anyhow::Result<Vec<Thumbprint>> {
    check_real_digest(&thumbprint)?;
    let mut pins = load_pins(state_dir)?;
    pins.retain(|p| *p != thumbprint);
    pins.push(thumbprint);
    if pins.len() > 2 && !replace {
        anyhow::bail!(
            "two orchestrator certificates are pinned already; trusting {thumbprint} would drop {} — run again with --replace if that is meant",
            pins[0]
        );
    }
    while pins.len() > 2 {
        pins.remove(0);
    }
    crate::config::ensure_private_dir(state_dir)?;
    let text: String = pins.iter().map(|p| format!("{p}\n")).collect();
    let path = crate::config::pins_path(state_dir);
    let tmp = path.with_extension("tmp");
    crate::tls::write_private(&tmp, text.as_bytes())?;
    std::fs::rename(&tmp, &path)?;
    Ok(pins)
}

impl AgentSetup {
    /// Loads the identity and pins from `state_dir` and builds the configured backend.
    pub fn from_config(config: AgentConfig) -> anyhow::Result<AgentSetup> {
        let identity = Identity::load(&config.state_dir, "agent").map_err(|e| {
            anyhow::anyhow!(
                "{e:#}; run `lockstep-agent init --state-dir {}` first",
                config.state_dir.display()
            )
        })?;
        let client_pins = load_pins(&config.state_dir)?;
        if client_pins.is_empty() {
            anyhow::bail!(
                "no orchestrator certificate is trusted; run `lockstep-agent trust THUMBPRINT --state-dir {}`",
                config.state_dir.display()
            );
        }
        let backend: Arc<dyn Backend> = match config.backend {
            BackendKind::Windows => Arc::new(WindowsBackend::new(&config)),
            BackendKind::Simulated => {
                let host = Arc::new(SimulatedHost::open(config.simulated_state_path())?);
                Arc::new(SimulatedBackend::new(host, &config))
            }
        };
        Ok(AgentSetup {
            config,
            identity,
            client_pins,
            backend,
        })
    }
}

fn error(e: ErrorResponse) -> Response {
    let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    (status, Json(e)).into_response()
}

async fn start(State(core): State<Arc<AgentCore>>, body: Bytes) -> Response {
    let result = match parse::<ActionRequest>(&body) {
        Ok(r) => core.start_and_wait(r, unix_now()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(e),
    }
}

async fn status(State(core): State<Arc<AgentCore>>, body: Bytes) -> Response {
    match parse::<StatusQuery>(&body) {
        Ok(q) => Json(core.status(q).await).into_response(),
        Err(e) => error(e),
    }
}

async fn cancel(State(core): State<Arc<AgentCore>>, body: Bytes) -> Response {
    match parse::<CancelRequest>(&body).and_then(|r| core.cancel(r)) {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(e),
    }
}

async fn health(State(core): State<Arc<AgentCore>>) -> Response {
    Json(core.health()).into_response()
}

/// The server's facts (read-only, never journaled; same mutual TLS and pins as every route).
async fn facts(State(core): State<Arc<AgentCore>>) -> Response {
    Json(core.facts().await).into_response()
}

/// The largest request body read (an action request is a few KiB).
const BODY_LIMIT: usize = 1 << 20;
/// How long a request body may take to arrive: a pinned client sending one byte every few
/// seconds would otherwise hold a connection and its task for ever.
const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the whole body within [`BODY_DEADLINE`] and [`BODY_LIMIT`] before any handler runs.
async fn read_body_in_time(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(parts, bytes.into()))
                .await
        }
        Ok(Err(e)) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(ErrorResponse::new(
                lockstep_protocol::ErrorCode::Malformed,
                format!("request body larger than {BODY_LIMIT} bytes or cut off: {e}"),
            )),
        )
            .into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            Json(ErrorResponse::new(
                lockstep_protocol::ErrorCode::Malformed,
                format!(
                    "the request body did not arrive within {} s; nothing was run",
                    BODY_DEADLINE.as_secs()
                ),
            )),
        )
            .into_response(),
    }
}

pub fn router(core: Arc<AgentCore>) -> Router {
    Router::new()
        .route("/v1/actions", post(start))
        .route("/v1/actions/status", post(status))
        .route("/v1/actions/cancel", post(cancel))
        .route("/v1/health", get(health))
        .route("/v1/facts", get(facts))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(read_body_in_time))
        .with_state(core)
}

fn hostname() -> String {
    std::env::var("COMPUTERNAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Opens the journal (marking interrupted actions unknown) and builds the core.
pub fn build_core(setup: &AgentSetup) -> anyhow::Result<Arc<AgentCore>> {
    let journal = Arc::new(Journal::open(&setup.config.journal_path())?);
    Ok(AgentCore::new(
        setup.config.clone(),
        journal,
        setup.backend.clone(),
        hostname(),
    ))
}

/// Serves HTTPS with mutual TLS on `listener` until `shutdown` completes.
pub async fn serve(
    setup: AgentSetup,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let core = build_core(&setup)?;
    serve_core(core, &setup, listener, shutdown).await
}

/// What identifies a version of the pins file: its modification time and length (`None` when
/// it does not exist).
fn pins_stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// A TLS acceptor for the pins now in the pins file; `None` when the file names none (an agent
/// never drops to accepting nobody because a file was emptied by mistake).
fn reload_acceptor(setup: &AgentSetup) -> anyhow::Result<Option<TlsAcceptor>> {
    let pins = load_pins(&setup.config.state_dir)?;
    if pins.is_empty() {
        return Ok(None);
    }
    Ok(Some(TlsAcceptor::from(Arc::new(tls::server_config(
        &setup.identity,
        pins,
    )?))))
}

/// Like [`serve`] with a core already built by [`build_core`] (so the journal is open and
/// recovered before the caller announces the agent).
pub async fn serve_core(
    core: Arc<AgentCore>,
    setup: &AgentSetup,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut acceptor = TlsAcceptor::from(Arc::new(tls::server_config(
        &setup.identity,
        setup.client_pins.clone(),
    )?));
    // Pins can change while the agent runs (`lockstep-agent trust NEW` during a certificate
    // rotation): the pins file is looked at before each handshake and, when it has changed,
    // later handshakes use what it says. Connections already open keep their peer.
    let pins_file = crate::config::pins_path(&setup.config.state_dir);
    let mut pins_seen = pins_stamp(&pins_file);
    // The pins in force, watched by every open connection: a connection whose client's pin is
    // removed is closed at once rather than kept until it goes idle. Also looked at every
    // second, so a removal takes effect without waiting for the next handshake.
    let (pins_tx, pins_rx) = tokio::sync::watch::channel(setup.client_pins.clone());
    let pins_tx = Arc::new(pins_tx);
    let watcher = {
        let (tx, dir, file) = (
            pins_tx.clone(),
            setup.config.state_dir.clone(),
            pins_file.clone(),
        );
        tokio::spawn(async move {
            let mut seen = pins_stamp(&file);
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let stamp = pins_stamp(&file);
                if stamp != seen {
                    seen = stamp;
                    if let Ok(pins) = load_pins(&dir) {
                        if !pins.is_empty() {
                            tx.send_replace(pins);
                        }
                    }
                }
            }
        })
    };
    let app = router(core);
    let mut accept_errors = AcceptErrors::default();
    tracing::info!(addr = %listener.local_addr()?, thumbprint = %setup.identity.thumbprint(), "agent listening");
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => {
                    accept_errors.clear();
                    x
                }
                Err(e) => {
                    // Out of file descriptors (or memory), accepting again at once fails again at
                    // once: pause, longer each time, and log once per interval.
                    let pause = accept_errors.failed(&e);
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
        };
        let stamp = pins_stamp(&pins_file);
        if stamp != pins_seen {
            pins_seen = stamp;
            match reload_acceptor(setup) {
                Ok(Some(a)) => {
                    acceptor = a;
                    if let Ok(pins) = load_pins(&setup.config.state_dir) {
                        pins_tx.send_replace(pins);
                    }
                    tracing::info!(file = %pins_file.display(), "orchestrator pins reloaded");
                }
                Ok(None) => tracing::warn!(
                    file = %pins_file.display(),
                    "pins file is empty or gone; keeping the pins in force"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "pins file unreadable; keeping the pins in force")
                }
            }
        }
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut pins_rx = pins_rx.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let client = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Thumbprint::of(c.as_ref()));
            let svc = TowerToHyperService::new(app);
            // A peer that opens a connection and dribbles its headers is cut off.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(15))
                .serve_connection(TokioIo::new(tls), svc);
            let unpinned = pins_rx.wait_for(|pins| client.is_none_or(|c| !pins.contains(&c)));
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                _ = unpinned => tracing::info!(%peer, "client's pin was removed; connection closed"),
            }
        });
    }
    watcher.abort();
    Ok(())
}

/// Accept failures in a row: how long to pause, and when the last one was logged.
#[derive(Default)]
struct AcceptErrors {
    in_a_row: u32,
    logged_at: Option<std::time::Instant>,
    not_logged: u64,
}

impl AcceptErrors {
    /// At most one log line per this interval, however fast accepts fail.
    const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    /// Notes a failure; returns how long to pause before accepting again (10 ms doubling to 1 s).
    fn failed(&mut self, e: &std::io::Error) -> std::time::Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        let due = self
            .logged_at
            .is_none_or(|t| t.elapsed() >= Self::LOG_EVERY);
        if due {
            tracing::warn!(error = %e, failures_not_logged = self.not_logged, "accept failed; pausing");
            self.logged_at = Some(std::time::Instant::now());
            self.not_logged = 0;
        } else {
            self.not_logged += 1;
        }
        std::time::Duration::from_millis(10 << self.in_a_row.min(7))
            .min(std::time::Duration::from_secs(1))
    }

    fn clear(&mut self) {
        self.in_a_row = 0;
    }
}

/// An agent serving in this process.
pub struct RunningAgent {
    pub addr: SocketAddr,
    /// The agent's certificate thumbprint (what `lockstep agent add --thumbprint` records).
    pub thumbprint: Thumbprint,
    pub core: Arc<AgentCore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningAgent {
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await?
    }
}

/// Binds `setup.config.listen` (port 0 picks a free port) and serves in the background.
pub async fn spawn(setup: AgentSetup) -> anyhow::Result<RunningAgent> {
    let listener = TcpListener::bind(setup.config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", setup.config.listen))?;
    let addr = listener.local_addr()?;
    let core = build_core(&setup)?;
    let thumbprint = setup.identity.thumbprint();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let c = core.clone();
    let task = tokio::spawn(async move {
        serve_core(c, &setup, listener, async {
            let _ = rx.await;
        })
        .await
    });
    Ok(RunningAgent {
        addr,
        thumbprint,
        core,
        stop: Some(tx),
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_keeps_the_two_newest_pins_for_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b, c] = [1u8, 2, 3].map(|n| {
            let mut t = [n; 32];
            t[0] = 0xaa;
            Thumbprint(t)
        });
        assert_eq!(trust(dir.path(), a, false).unwrap(), vec![a]);
        assert_eq!(trust(dir.path(), b, false).unwrap(), vec![a, b]);
        assert_eq!(
            trust(dir.path(), a, false).unwrap(),
            vec![b, a],
            "re-trusting moves it to newest"
        );
        // Issue #20: dropping a pin is asked for, not done silently.
        let e = trust(dir.path(), c, false).unwrap_err().to_string();
        assert!(e.contains(&b.to_string()) && e.contains("--replace"), "{e}");
        assert_eq!(load_pins(dir.path()).unwrap(), vec![b, a]);
        assert_eq!(
            trust(dir.path(), c, true).unwrap(),
            vec![a, c],
            "with --replace the oldest pin drops out"
        );
        assert_eq!(load_pins(dir.path()).unwrap(), vec![a, c]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&crate::config::pins_path(dir.path())), 0o600);
            assert_eq!(mode(dir.path()), 0o700);
        }
    }

    #[test]
    fn thumbprints_that_are_no_certificates_digest_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for t in [
            Thumbprint([0; 32]),
            Thumbprint::parse(EMPTY_INPUT_SHA256).unwrap(),
        ] {
            let e = trust(dir.path(), t, false).unwrap_err().to_string();
            assert!(e.contains("not a certificate"), "{e}");
        }
        assert!(load_pins(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn a_malformed_pin_file_names_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            crate::config::pins_path(dir.path()),
            "# pins\nnot-a-thumbprint\n",
        )
        .unwrap();
        let e = load_pins(dir.path()).unwrap_err().to_string();
        assert!(e.contains("entry 1"), "{e}");
    }
}
