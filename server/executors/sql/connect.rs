//! Reaching a SQL Server: per-server targets (address, SQL login, secret from configuration or
//! environment, encryption), the tiberius connection, and the capture of every INFO and ERROR
//! message the server sends.
//!
//! tiberius (0.13) does not hand INFO tokens to the caller; it reports them as `tracing` events.
//! [`capture`] runs a piece of SQL work under its own subscriber and keeps those events, so the
//! evidence holds what SQL Server printed (CHECKDB's summary, sp_updatestats, BACKUP progress).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use tracing::instrument::WithSubscriber;

/// Encryption of the TDS connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlEncryption {
    /// TLS required, verified against `ca_file` (or the system's anchors).
    #[default]
    Required,
    /// No TLS at all: only when explicitly configured for a lab or the simulator.
    Off,
}

/// How to reach one server's SQL Server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlTarget {
    /// `host` or `host:port` (1433 when absent).
    pub address: String,
    pub user: String,
    /// The password itself (configuration file) …
    #[serde(default)]
    pub password: Option<String>,
    /// … or the environment variable holding it.
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub encrypt: SqlEncryption,
    /// CA certificate (PEM or DER file) that signed SQL Server's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl SqlTarget {
    fn password(&self, server: &str) -> Result<String, String> {
        match (&self.password, &self.password_env) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                format!("SQL password for {server}: environment variable {var} is not set")
            }),
            (None, None) => Err(format!(
                "SQL password for {server}: set `password` or `password_env`"
            )),
        }
    }

    fn host_port(&self) -> Result<(String, u16), String> {
        match self.address.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() => p
                .parse::<u16>()
                .map(|p| (h.trim_matches(['[', ']']).to_string(), p))
                .map_err(|_| format!("SQL address `{}`: `{p}` is not a port", self.address)),
            _ if !self.address.is_empty() => Ok((self.address.clone(), 1433)),
            _ => Err("SQL address is empty".to_string()),
        }
    }

    /// What the run page shows about this connection's encryption.
    pub fn encryption_note(&self) -> &'static str {
        match self.encrypt {
            SqlEncryption::Required => "required",
            SqlEncryption::Off => "off (explicitly configured)",
        }
    }
}

pub type SqlClient = Client<Compat<TcpStream>>;

/// Why SQL work failed.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlError {
    /// The configuration cannot work (no password, bad address): nothing was sent.
    Config(String),
    /// No session was established: nothing ran.
    Connect(String),
    /// SQL Server answered an error: the statement did not complete.
    Server {
        code: u32,
        class: u8,
        line: u32,
        message: String,
    },
    /// The connection broke mid-request: whether it took effect is unknown.
    Transport(String),
    /// Lockstep refuses to go on (e.g. no matching row).
    Refused(String),
}

impl SqlError {
    /// Names what was being done in a SQL Server error's message (`"{what}: {message}"`), so the
    /// step's error says which database and file; other errors are returned as they are.
    pub fn during(self, what: impl std::fmt::Display) -> SqlError {
        match self {
            SqlError::Server {
                code,
                class,
                line,
                message,
            } => SqlError::Server {
                code,
                class,
                line,
                message: format!("{what}: {message}"),
            },
            other => other,
        }
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlError::Config(m)
            | SqlError::Connect(m)
            | SqlError::Transport(m)
            | SqlError::Refused(m) => f.write_str(m),
            SqlError::Server {
                code,
                class,
                line,
                message,
            } => {
                write!(
                    f,
                    "SQL Server error {code} (severity {class}, line {line}): {message}"
                )
            }
        }
    }
}

pub fn classify(e: tiberius::error::Error) -> SqlError {
    match e {
        tiberius::error::Error::Server(t) => SqlError::Server {
            code: t.code(),
            class: t.class(),
            line: t.line(),
            message: t.message().to_string(),
        },
        other => SqlError::Transport(other.to_string()),
    }
}

pub async fn connect(server: &str, t: &SqlTarget) -> Result<SqlClient, SqlError> {
    let (host, port) = t.host_port().map_err(SqlError::Config)?;
    let password = t.password(server).map_err(SqlError::Config)?;
    let mut cfg = Config::new();
    cfg.host(&host);
    cfg.port(port);
    cfg.application_name("Lockstep");
    cfg.authentication(AuthMethod::sql_server(&t.user, password));
    // tiberius 0.13 fails a command after 30 s without a token; BACKUP and CHECKDB of a large
    // database are silent longer than that. The step's own timeout (`sql.rs`) bounds the work.
    cfg.command_timeout(None);
    match t.encrypt {
        SqlEncryption::Required => {
            cfg.encryption(EncryptionLevel::Required);
            if let Some(ca) = &t.ca_file {
                cfg.trust_cert_ca(ca.to_string_lossy());
            }
        }
        SqlEncryption::Off => cfg.encryption(EncryptionLevel::NotSupported),
    }
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| {
            SqlError::Connect(format!(
                "could not connect to SQL Server on {server} ({host}:{port}): {e}"
            ))
        })?;
    let _ = tcp.set_nodelay(true);
    Client::connect(cfg, tcp.compat_write())
        .await
        .map_err(|e| match classify(e) {
            SqlError::Server { code, message, .. } => SqlError::Connect(format!(
                "SQL Server on {server} refused the login (error {code}): {message}"
            )),
            other => SqlError::Connect(format!(
                "could not open a SQL session on {server} ({host}:{port}): {other}"
            )),
        })
}

/// A message SQL Server sent, as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `info`, `error`, or `environment` (database/packet-size changes tiberius reported).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u64>,
    pub text: String,
}

#[derive(Default)]
struct Capture {
    messages: Mutex<Vec<Message>>,
}

struct MessageVisitor {
    text: String,
    code: Option<u64>,
}

impl tracing::field::Visit for MessageVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.text = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.text = value.to_string();
        }
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "code" {
            self.code = Some(value);
        }
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        if field.name() == "code" {
            self.code = Some(value as u64);
        }
    }
}

/// Texts tiberius logs beside INFO tokens (at DEBUG) that are not server messages.
fn is_environment(text: &str) -> bool {
    [
        "Database change from",
        "Packet size change",
        "SQL collation change",
        "Begin transaction",
        "Commit transaction",
        "Rollback transaction",
        "Fallback mirror",
        "Ignored env change",
        "Server requested routing",
        "FeatureExtAck",
    ]
    .iter()
    .any(|p| text.starts_with(p))
        || text.contains(" version ") && text.starts_with("Microsoft SQL Server")
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        // 0.13 logs INFO tokens at DEBUG (0.12 did at INFO); ERROR tokens stay at ERROR.
        m.target().starts_with("tiberius") && *m.level() <= tracing::Level::DEBUG
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        if !e.metadata().target().starts_with("tiberius::tds::stream") {
            return;
        }
        let mut v = MessageVisitor {
            text: String::new(),
            code: None,
        };
        e.record(&mut v);
        let kind = if *e.metadata().level() == tracing::Level::ERROR {
            "error"
        } else if is_environment(&v.text) {
            "environment"
        } else {
            "info"
        };
        if let Ok(mut m) = self.messages.lock() {
            m.push(Message {
                kind,
                code: v.code,
                text: v.text,
            });
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Runs `work`, returning its result and every message SQL Server sent meanwhile.
pub async fn capture<T>(work: impl std::future::Future<Output = T>) -> (T, Vec<Message>) {
    let cap = Arc::new(Capture::default());
    let dispatch = tracing::Dispatch::from(cap.clone());
    let out = work.with_subscriber(dispatch).await;
    let messages = cap.messages.lock().map(|m| m.clone()).unwrap_or_default();
    (out, messages)
}
