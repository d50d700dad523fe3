//! Settings for `lockstep serve`: a TOML file, then `LOCKSTEP_*` environment variables, then
//! command-line flags, each overriding the one before. Every setting has a default documented
//! here, so an empty file (or none) is a working configuration for a loopback dashboard.
//!
//! ```toml
//! listen = "127.0.0.1:8080"        # LOCKSTEP_LISTEN
//! data_dir = "lockstep-data"       # LOCKSTEP_DATA_DIR
//! db = "lockstep-data/lockstep.db" # LOCKSTEP_DB (default: <data_dir>/lockstep.db)
//! session_idle_secs = 1800         # LOCKSTEP_SESSION_IDLE_SECS
//! session_absolute_secs = 43200    # LOCKSTEP_SESSION_ABSOLUTE_SECS
//! login_max_failures = 5           # LOCKSTEP_LOGIN_MAX_FAILURES
//! login_lockout_secs = 900         # LOCKSTEP_LOGIN_LOCKOUT_SECS
//! login_max_failures_per_address = 20  # LOCKSTEP_LOGIN_MAX_FAILURES_PER_ADDRESS
//! tls_cert = "/etc/lockstep/cert.pem"  # LOCKSTEP_TLS_CERT
//! tls_key = "/etc/lockstep/key.pem"    # LOCKSTEP_TLS_KEY
//! tls_self_signed = false          # LOCKSTEP_TLS_SELF_SIGNED: make and keep a self-signed cert in data_dir
//!
//! [agents]
//! facts_interval_secs = 60         # LOCKSTEP_FACTS_INTERVAL_SECS: heartbeat + facts of every agent
//! facts_stale_secs = 180           # LOCKSTEP_FACTS_STALE_SECS (default 3 × the interval)
//! ```
//!
//! The site the dashboard drives — `simulated_site`, the `[sql]` and `[probes]` tables — is read
//! by [`site`] (documented there); `[notify]` by `crate::notify::config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod site;
pub use site::SiteConfig;

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
pub const DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS: u32 =
    crate::web::auth::throttle::DEFAULT_MAX_PER_ADDRESS;
/// How long failed logins count, and how long an account stays throttled after too many.
pub const DEFAULT_LOGIN_LOCKOUT_SECS: u64 = 15 * 60;
/// How often `lockstep serve` asks every agent for a heartbeat and its facts.
pub const DEFAULT_FACTS_INTERVAL_SECS: u64 = 60;

/// Agent facts older than this are not trusted by preflight: three collection intervals of a
/// minute, so one missed collection does not turn every finding back to "unknown".
pub const DEFAULT_FACTS_STALE_SECS: u64 = 180;

/// The resolved settings.
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

/// Every section of the settings file, loaded together: what `lockstep serve` (and the demo, and
/// `lockstep config check`) hand to the parts that own each section.
pub struct Settings {
    /// The top level and `[agents]`: listen address, data folder, database, sessions, TLS.
    pub server: Config,
    /// `simulated_site`, `[sql]`, `[probes]`: the site the engine drives.
    pub site: SiteConfig,
    /// `[notify]`: webhooks, e-mail, the change-ticket link.
    pub notify: crate::notify::NotifyConfig,
    /// `[oidc]`: single sign-on, when configured.
    pub oidc: Option<crate::web::auth::oidc::OidcConfig>,
    /// `[metrics]`: who may read `/metrics`.
    pub metrics: crate::web::metrics::MetricsConfig,
}

impl Settings {
    /// Reads `file` (if given), then the environment through `env`, then `overrides`.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> anyhow::Result<Settings> {
        let server = Config::load(file, env, overrides)?;
        let site = SiteConfig::load(file, &server.data_dir, env)?;
        let notify = crate::notify::NotifyConfig::load(file, env)?;
        let oidc = crate::web::auth::oidc::OidcConfig::load(file, env)?;
        let metrics =
            crate::web::metrics::MetricsConfig::load(file, env).map_err(anyhow::Error::msg)?;
        Ok(Settings {
            server,
            site,
            notify,
            oidc,
            metrics,
        })
    }

    /// Reads the process environment.
    pub fn from_process(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Settings> {
        Settings::load(file, &|k| std::env::var(k).ok(), overrides)
    }
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The file as written; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    db: Option<PathBuf>,
    session_idle_secs: Option<u64>,
    session_absolute_secs: Option<u64>,
    login_max_failures: Option<u32>,
    login_lockout_secs: Option<u64>,
    login_max_failures_per_address: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<bool>,
    /// The `[notify]` table, read by `crate::notify::config`; accepted here so the file is one.
    #[allow(dead_code)]
    notify: Option<toml::Value>,
    /// The `[oidc]` table (single sign-on), read by `crate::web::auth::oidc::config`.
    #[allow(dead_code)]
    oidc: Option<toml::Value>,
    /// The `[metrics]` table (Prometheus `/metrics`), read by `crate::web::metrics`.
    #[allow(dead_code)]
    metrics: Option<toml::Value>,
    /// `simulated_site`, `[sql]`, `[probes]`: read by [`SiteConfig::load`]; accepted here.
    #[allow(dead_code)]
    simulated_site: Option<toml::Value>,
    #[allow(dead_code)]
    sql: Option<toml::Value>,
    #[allow(dead_code)]
    probes: Option<toml::Value>,
    agents: Option<AgentsFile>,
}

/// The `[agents]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsFile {
    facts_interval_secs: Option<u64>,
    facts_stale_secs: Option<u64>,
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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {message}")]
    Read { path: String, message: String },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{source_name}: `{value}` is not valid: {message}")]
    Invalid {
        source_name: String,
        value: String,
        message: String,
    },
    #[error(
        "TLS needs both a certificate and a key (got only the {given}); set tls_cert and tls_key"
    )]
    HalfTls { given: &'static str },
    #[error("session_idle_secs and session_absolute_secs must be at least 60, and idle no longer than absolute")]
    SessionTimes,
    #[error("[agents] facts_interval_secs must be 1 to 86400, and facts_stale_secs at least the interval")]
    FactsTimes,
}

impl Config {
    /// Reads `file` (if given), then the environment through `env`, then `overrides`.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let fc = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let listen_text = overrides
            .listen
            .clone()
            .map(|v| ("--listen", v))
            .or_else(|| env("LOCKSTEP_LISTEN").map(|v| ("LOCKSTEP_LISTEN", v)))
            .or_else(|| fc.listen.clone().map(|v| ("listen", v)))
            .unwrap_or(("listen", DEFAULT_LISTEN.to_string()));
        let listen: SocketAddr = listen_text.1.parse().map_err(|_| ConfigError::Invalid {
            source_name: listen_text.0.to_string(),
            value: listen_text.1.clone(),
            message: "expected IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8443".into(),
        })?;
        let data_dir = env("LOCKSTEP_DATA_DIR")
            .map(PathBuf::from)
            .or(fc.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let db = overrides
            .db
            .clone()
            .or_else(|| env("LOCKSTEP_DB").map(PathBuf::from))
            .or(fc.db)
            .unwrap_or_else(|| data_dir.join("lockstep.db"));
        let num =
            |name: &str, var: &str, file: Option<u64>, default: u64| -> Result<u64, ConfigError> {
                match env(var) {
                    Some(v) => v.trim().parse::<u64>().map_err(|_| ConfigError::Invalid {
                        source_name: var.to_string(),
                        value: v.clone(),
                        message: format!("{name} must be a whole number"),
                    }),
                    None => Ok(file.unwrap_or(default)),
                }
            };
        let session_idle_secs = num(
            "session_idle_secs",
            "LOCKSTEP_SESSION_IDLE_SECS",
            fc.session_idle_secs,
            DEFAULT_SESSION_IDLE_SECS,
        )?;
        let session_absolute_secs = num(
            "session_absolute_secs",
            "LOCKSTEP_SESSION_ABSOLUTE_SECS",
            fc.session_absolute_secs,
            DEFAULT_SESSION_ABSOLUTE_SECS,
        )?;
        if session_idle_secs < 60
            || session_absolute_secs < 60
            || session_idle_secs > session_absolute_secs
        {
            return Err(ConfigError::SessionTimes);
        }
        let login_max_failures = num(
            "login_max_failures",
            "LOCKSTEP_LOGIN_MAX_FAILURES",
            fc.login_max_failures.map(u64::from),
            u64::from(DEFAULT_LOGIN_MAX_FAILURES),
        )?
        .clamp(1, 1000) as u32;
        let login_lockout_secs = num(
            "login_lockout_secs",
            "LOCKSTEP_LOGIN_LOCKOUT_SECS",
            fc.login_lockout_secs,
            DEFAULT_LOGIN_LOCKOUT_SECS,
        )?;
        let login_max_failures_per_address = num(
            "login_max_failures_per_address",
            "LOCKSTEP_LOGIN_MAX_FAILURES_PER_ADDRESS",
            fc.login_max_failures_per_address.map(u64::from),
            u64::from(DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS),
        )?
        .clamp(1, 100_000) as u32;
        let agents = fc.agents.unwrap_or_default();
        let facts_interval_secs = num(
            "facts_interval_secs",
            "LOCKSTEP_FACTS_INTERVAL_SECS",
            agents.facts_interval_secs,
            DEFAULT_FACTS_INTERVAL_SECS,
        )?;
        let facts_stale_secs = num(
            "facts_stale_secs",
            "LOCKSTEP_FACTS_STALE_SECS",
            agents.facts_stale_secs,
            facts_interval_secs.saturating_mul(3),
        )?;
        if !(1..=86_400).contains(&facts_interval_secs) || facts_stale_secs < facts_interval_secs {
            return Err(ConfigError::FactsTimes);
        }
        let cert = overrides
            .tls_cert
            .clone()
            .or_else(|| env("LOCKSTEP_TLS_CERT").map(PathBuf::from))
            .or(fc.tls_cert);
        let key = overrides
            .tls_key
            .clone()
            .or_else(|| env("LOCKSTEP_TLS_KEY").map(PathBuf::from))
            .or(fc.tls_key);
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::HalfTls {
                    given: "certificate",
                })
            }
            (None, Some(_)) => return Err(ConfigError::HalfTls { given: "key" }),
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
            session_idle_secs,
            session_absolute_secs,
            login_max_failures,
            login_lockout_secs,
            login_max_failures_per_address,
            tls,
            tls_self_signed,
            facts_interval_secs,
            facts_stale_secs,
        })
    }

    /// Reads the process environment.
    pub fn from_process(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        Config::load(file, &|k| std::env::var(k).ok(), overrides)
    }

    /// Whether the dashboard will speak TLS.
    pub fn serves_tls(&self) -> bool {
        self.tls.is_some() || self.tls_self_signed
    }
}

fn parse_bool(var: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::Invalid {
            source_name: var.to_string(),
            value: v.to_string(),
            message: "expected true or false".into(),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An environment of just these variables (shared by the tests of every settings table).
    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

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
            Config::load(None, &env_of(&[]), &o).unwrap_err(),
            ConfigError::HalfTls {
                given: "certificate"
            }
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
            Config::load(None, &env, &Overrides::default()).unwrap_err(),
            ConfigError::FactsTimes
        );
        std::fs::write(&path, "[agents]\nfacts_every = 10\n").unwrap();
        let err = Config::load(Some(&path), &env_of(&[]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("facts_every"), "{err}");
    }
}
