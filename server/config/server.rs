//! The server's own settings: the top level of the file and `[agents]` — listen address, data
//! folder, database, sessions, login throttling, TLS, and how often agents are asked for facts.
//!
//! ```toml
//! listen = "127.0.0.1:8080"        # LOCKSTEP_LISTEN, --listen
//! data_dir = "lockstep-data"       # LOCKSTEP_DATA_DIR
//! db = "lockstep-data/lockstep.db" # LOCKSTEP_DB, --db (default: <data_dir>/lockstep.db)
//! session_idle_secs = 1800         # LOCKSTEP_SESSION_IDLE_SECS
//! session_absolute_secs = 43200    # LOCKSTEP_SESSION_ABSOLUTE_SECS
//! login_max_failures = 5           # LOCKSTEP_LOGIN_MAX_FAILURES
//! login_lockout_secs = 900         # LOCKSTEP_LOGIN_LOCKOUT_SECS
//! login_max_failures_per_address = 20  # LOCKSTEP_LOGIN_MAX_FAILURES_PER_ADDRESS
//! tls_cert = "/etc/lockstep/cert.pem"  # LOCKSTEP_TLS_CERT, --tls-cert
//! tls_key = "/etc/lockstep/key.pem"    # LOCKSTEP_TLS_KEY, --tls-key
//! tls_self_signed = false          # LOCKSTEP_TLS_SELF_SIGNED, --tls-self-signed: make and keep a
//!                                  # self-signed cert in data_dir
//!
//! [agents]
//! facts_interval_secs = 60         # LOCKSTEP_FACTS_INTERVAL_SECS: heartbeat + facts of every agent
//! facts_stale_secs = 180           # LOCKSTEP_FACTS_STALE_SECS (default 3 × the interval)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::document::{Document, FileSettings};
use super::error::SettingsError;
use super::file::{number, parse_bool, Origin, SettingsFile};

/// Default listen address: loopback only, so a fresh install is never reachable from the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default folder for the database and generated files, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "lockstep-data";
/// A session unused this long ends (30 minutes, NIST 800-63B AAL2 guidance).
pub const DEFAULT_SESSION_IDLE_SECS: u64 = 30 * 60;
/// A session ends this long after login however active it is (12 hours: one change window).
pub const DEFAULT_SESSION_ABSOLUTE_SECS: u64 = 12 * 60 * 60;
/// Failed logins for one account within the lockout period before further attempts are refused.
pub const DEFAULT_LOGIN_MAX_FAILURES: u32 = 5;
/// Failed logins from one client address (whatever the names) within the lockout period.
pub const DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS: u32 = 20;
/// How long failed logins count, and how long an account stays throttled after too many.
pub const DEFAULT_LOGIN_LOCKOUT_SECS: u64 = 15 * 60;
/// How often `lockstep serve` asks every agent for a heartbeat and its facts.
pub const DEFAULT_FACTS_INTERVAL_SECS: u64 = 60;
/// Agent facts older than this are not trusted by preflight (defined beside the preflight that
/// trusts them).
pub use crate::knowledge::preflight::DEFAULT_FACTS_STALE_SECS;

/// The resolved server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub db: PathBuf,
    pub session_idle_secs: u64,
    pub session_absolute_secs: u64,
    pub login_max_failures: u32,
    pub login_lockout_secs: u64,
    pub login_max_failures_per_address: u32,
    pub tls: Option<TlsFiles>,
    pub tls_self_signed: bool,
    /// Seconds between two collections of every agent's heartbeat and facts (`[agents]`).
    pub facts_interval_secs: u64,
    /// Facts older than this are not trusted by preflight (default 3 × the interval).
    pub facts_stale_secs: u64,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Overrides given on the command line (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub db: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: bool,
}

impl Config {
    /// The server settings alone, for the commands that need only the database or the listen
    /// address (`lockstep user`, `agent`, `inventory`, `demo`): the same one parse of `file`,
    /// without resolving (and so without requiring) the site's passwords or the other tables.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Config, SettingsError> {
        let document = Document::read(file)?;
        resolve(&document.file, &document.settings, env, overrides)
    }

    /// [`Config::load`] with the process environment.
    pub fn from_process(
        file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Config, SettingsError> {
        Config::load(file, &|k| std::env::var(k).ok(), overrides)
    }

    /// Whether the dashboard will speak TLS.
    pub fn serves_tls(&self) -> bool {
        self.tls.is_some() || self.tls_self_signed
    }
}

/// The top level and `[agents]` of `fc` (read from `file`), then the environment, then
/// `overrides`.
pub(crate) fn resolve(
    file: &SettingsFile,
    fc: &FileSettings,
    env: &dyn Fn(&str) -> Option<String>,
    overrides: &Overrides,
) -> Result<Config, SettingsError> {
    let (listen_text, origin) = match (&overrides.listen, env("LOCKSTEP_LISTEN"), &fc.listen) {
        (Some(v), _, _) => (v.clone(), Origin::Env("--listen".into())),
        (None, Some(v), _) => (v, Origin::Env("LOCKSTEP_LISTEN".into())),
        (None, None, Some(v)) => (v.get_ref().clone(), Origin::File(v.span())),
        (None, None, None) => (DEFAULT_LISTEN.to_string(), Origin::Default),
    };
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        file.refuse(
            "listen",
            &origin,
            format!(
                "`{listen_text}` is not valid: expected IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8443"
            ),
        )
    })?;
    let data_dir = env("LOCKSTEP_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| fc.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let db = overrides
        .db
        .clone()
        .or_else(|| env("LOCKSTEP_DB").map(PathBuf::from))
        .or_else(|| fc.db.clone())
        .unwrap_or_else(|| data_dir.join("lockstep.db"));
    let idle = number(
        env,
        "session_idle_secs",
        "LOCKSTEP_SESSION_IDLE_SECS",
        fc.session_idle_secs.as_ref(),
        DEFAULT_SESSION_IDLE_SECS,
    )?;
    let absolute = number(
        env,
        "session_absolute_secs",
        "LOCKSTEP_SESSION_ABSOLUTE_SECS",
        fc.session_absolute_secs.as_ref(),
        DEFAULT_SESSION_ABSOLUTE_SECS,
    )?;
    const SESSION_TIMES: &str = "session_idle_secs and session_absolute_secs must be at least 60, \
                                 and idle no longer than absolute";
    if idle.value < 60 || idle.value > absolute.value {
        return Err(file.refuse("session_idle_secs", &idle.origin, SESSION_TIMES));
    }
    if absolute.value < 60 {
        return Err(file.refuse("session_absolute_secs", &absolute.origin, SESSION_TIMES));
    }
    let login_max_failures = number(
        env,
        "login_max_failures",
        "LOCKSTEP_LOGIN_MAX_FAILURES",
        fc.login_max_failures.as_ref(),
        u64::from(DEFAULT_LOGIN_MAX_FAILURES),
    )?
    .value
    .clamp(1, 1000) as u32;
    let login_lockout_secs = number(
        env,
        "login_lockout_secs",
        "LOCKSTEP_LOGIN_LOCKOUT_SECS",
        fc.login_lockout_secs.as_ref(),
        DEFAULT_LOGIN_LOCKOUT_SECS,
    )?
    .value;
    let login_max_failures_per_address = number(
        env,
        "login_max_failures_per_address",
        "LOCKSTEP_LOGIN_MAX_FAILURES_PER_ADDRESS",
        fc.login_max_failures_per_address.as_ref(),
        u64::from(DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS),
    )?
    .value
    .clamp(1, 100_000) as u32;
    let agents = fc.agents.as_ref();
    let interval = number(
        env,
        "agents.facts_interval_secs",
        "LOCKSTEP_FACTS_INTERVAL_SECS",
        agents.and_then(|a| a.facts_interval_secs.as_ref()),
        DEFAULT_FACTS_INTERVAL_SECS,
    )?;
    let stale = number(
        env,
        "agents.facts_stale_secs",
        "LOCKSTEP_FACTS_STALE_SECS",
        agents.and_then(|a| a.facts_stale_secs.as_ref()),
        interval.value.saturating_mul(3),
    )?;
    const FACTS_TIMES: &str =
        "[agents] facts_interval_secs must be 1 to 86400, and facts_stale_secs at least the interval";
    if !(1..=86_400).contains(&interval.value) {
        return Err(file.refuse("agents.facts_interval_secs", &interval.origin, FACTS_TIMES));
    }
    if stale.value < interval.value {
        return Err(file.refuse("agents.facts_stale_secs", &stale.origin, FACTS_TIMES));
    }
    let cert = overrides
        .tls_cert
        .clone()
        .or_else(|| env("LOCKSTEP_TLS_CERT").map(PathBuf::from))
        .or_else(|| fc.tls_cert.clone());
    let key = overrides
        .tls_key
        .clone()
        .or_else(|| env("LOCKSTEP_TLS_KEY").map(PathBuf::from))
        .or_else(|| fc.tls_key.clone());
    let half = |given: &str, missing: &str| {
        SettingsError::new(
            missing,
            format!(
                "TLS needs both a certificate and a key (got only the {given}); set tls_cert and tls_key"
            ),
        )
    };
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        (Some(_), None) => return Err(half("certificate", "tls_key")),
        (None, Some(_)) => return Err(half("key", "tls_cert")),
    };
    let tls_self_signed = overrides.tls_self_signed
        || match env("LOCKSTEP_TLS_SELF_SIGNED") {
            Some(v) => parse_bool("LOCKSTEP_TLS_SELF_SIGNED", &v)?,
            None => fc.tls_self_signed.unwrap_or(false),
        };
    Ok(Config {
        listen,
        data_dir,
        db,
        session_idle_secs: idle.value,
        session_absolute_secs: absolute.value,
        login_max_failures,
        login_lockout_secs,
        login_max_failures_per_address,
        tls,
        tls_self_signed,
        facts_interval_secs: interval.value,
        facts_stale_secs: stale.value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;

    #[test]
    fn no_file_and_no_environment_gives_the_documented_defaults() {
        let c = Config::load(None, &env_of(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.db, PathBuf::from("lockstep-data/lockstep.db"));
        assert_eq!(c.session_idle_secs, DEFAULT_SESSION_IDLE_SECS);
        assert!(c.tls.is_none());
    }

    #[test]
    fn environment_overrides_the_file_and_flags_override_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lockstep.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nsession_idle_secs = 600\ndata_dir = \"/d\"\n",
        )
        .unwrap();
        let env = env_of(&[
            ("LOCKSTEP_LISTEN", "127.0.0.1:9001"),
            ("LOCKSTEP_SESSION_IDLE_SECS", "300"),
        ]);
        let c = Config::load(Some(&path), &env, &Overrides::default()).unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.session_idle_secs, 300);
        assert_eq!(c.db, PathBuf::from("/d/lockstep.db"));
        let flags = Overrides {
            listen: Some("127.0.0.1:9002".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::load(Some(&path), &env, &flags)
                .unwrap()
                .listen
                .port(),
            9002
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Config::load(Some(&path), &env_of(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn a_bad_listen_address_names_where_it_came_from() {
        let err = Config::load(
            None,
            &env_of(&[("LOCKSTEP_LISTEN", "everywhere")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("LOCKSTEP_LISTEN"), "{err}");
    }

    #[test]
    fn a_bad_value_in_the_file_names_the_key_and_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "data_dir = \"/d\"\nlisten = \"everywhere\"\n").unwrap();
        let err = Config::load(Some(&path), &env_of(&[]), &Overrides::default()).unwrap_err();
        assert_eq!(err.setting, "listen");
        assert_eq!(err.at.as_ref().map(|a| a.line), Some(2));
        std::fs::write(&path, "\n\nsession_idle_secs = 10\n").unwrap();
        let err = Config::load(Some(&path), &env_of(&[]), &Overrides::default()).unwrap_err();
        assert!(
            err.to_string().ends_with(
                ":3: session_idle_secs: session_idle_secs and session_absolute_secs must be \
                 at least 60, and idle no longer than absolute"
            ),
            "{err}"
        );
    }

    #[test]
    fn facts_stale_secs_defaults_to_180_and_is_read_from_the_agents_table() {
        let c = Config::load(None, &env_of(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.facts_stale_secs, DEFAULT_FACTS_STALE_SECS);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[agents]\nfacts_stale_secs = 600\n").unwrap();
        let c = Config::load(Some(&path), &env_of(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.facts_stale_secs, 600);
        let env = env_of(&[("LOCKSTEP_FACTS_STALE_SECS", "soon")]);
        let err = Config::load(Some(&path), &env, &Overrides::default()).unwrap_err();
        assert!(
            err.to_string().contains("LOCKSTEP_FACTS_STALE_SECS"),
            "{err}"
        );
        std::fs::write(&path, "[agents]\nfacts_stale_secs = 0\n").unwrap();
        let err = Config::load(Some(&path), &env_of(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("facts_stale_secs"), "{err}");
    }

    #[test]
    fn a_certificate_without_a_key_is_refused() {
        let o = Overrides {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::load(None, &env_of(&[]), &o).unwrap_err().message,
            "TLS needs both a certificate and a key (got only the certificate); set tls_cert and tls_key"
        );
    }

    #[test]
    fn facts_collection_defaults_to_a_minute_stale_after_three_and_the_environment_overrides_it() {
        let c = Config::load(None, &env_of(&[]), &Overrides::default()).unwrap();
        assert_eq!((c.facts_interval_secs, c.facts_stale_secs), (60, 180));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[agents]\nfacts_interval_secs = 10\n").unwrap();
        let c = Config::load(Some(&path), &env_of(&[]), &Overrides::default()).unwrap();
        assert_eq!((c.facts_interval_secs, c.facts_stale_secs), (10, 30));
        let env = env_of(&[("LOCKSTEP_FACTS_STALE_SECS", "45")]);
        let c = Config::load(Some(&path), &env, &Overrides::default()).unwrap();
        assert_eq!((c.facts_interval_secs, c.facts_stale_secs), (10, 45));
        let env = env_of(&[("LOCKSTEP_FACTS_INTERVAL_SECS", "0")]);
        assert_eq!(
            Config::load(None, &env, &Overrides::default())
                .unwrap_err()
                .message,
            "[agents] facts_interval_secs must be 1 to 86400, and facts_stale_secs at least the interval"
        );
        std::fs::write(&path, "[agents]\nfacts_every = 10\n").unwrap();
        let err = Config::load(Some(&path), &env_of(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("facts_every"), "{err}");
    }
}
