//! The site a `lockstep serve` drives: where the Data Center's SQL Servers are and how to log in
//! to them (`[sql]`), how the verification probes reach and trust the web servers (`[probes]`),
//! and whether the site is a simulated one (`simulated_site`). Agents are not here: they are
//! enrolled one by one with `lockstep agent add`, each with its pinned certificate.
//!
//! ```toml
//! simulated_site = false                  # LOCKSTEP_SIMULATED_SITE: lockstep-sim, never a real site
//!
//! [sql]                                   # defaults for every server below
//! user = "lockstep"                       # LOCKSTEP_SQL_USER (default "lockstep")
//! password_env = "LOCKSTEP_SQL_PASSWORD"  # the variable holding the password (this is the default)
//! # password_file = "/run/secrets/sql"    # … or a file holding it (instead of password_env; one
//!                                         # line, see `super::secret`)
//! encrypt = "required"                    # "required" (TLS, verified) or "off" (a lab, the simulator)
//! # ca_file = "/etc/lockstep/sql-ca.pem"  # CA of the SQL Servers' certificates (default: system anchors)
//! scripts_dir = "lockstep-data/scripts"   # LOCKSTEP_SQL_SCRIPTS_DIR (default <data_dir>/scripts):
//!                                         # copies of the Data Center folder's SQL scripts,
//!                                         # DIR/<server>/Scripts/… or shared DIR/Scripts/…
//! [sql.servers.DC1]                       # by inventory server name: every Registry/Directory server
//! address = "dc1.example.com:1433"        # host or host:port (1433)
//! # user, password_env, password_file, encrypt, ca_file: override the [sql] defaults per server
//!
//! [probes]
//! ca_files = ["/etc/lockstep/site-ca.pem"]  # LOCKSTEP_PROBES_CA_FILES (comma-separated): trust
//!                                           # anchors for HTTPS probes; none = HTTPS probes fail
//! timeout_secs = 30                         # upper bound per probe (1–600)
//! [probes.resolve]                          # names DNS does not know (a lab): host → IP:PORT
//! "dc1.example.com" = "10.0.0.5:443"
//! ```
//!
//! Passwords are never written in the file itself: a config file is copied, diffed and pasted
//! into tickets; a secret store fills an environment variable or a file instead.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::SettingsError;
use super::file::{parse_bool, SettingsFile};
use crate::executors::probe::{ProbeConfig, ProbeExecutor};
use crate::executors::sql::connect::{SqlEncryption, SqlTarget};
use crate::executors::sql::SqlConfig;

/// The login used when neither the file nor `LOCKSTEP_SQL_USER` names one.
pub const DEFAULT_SQL_USER: &str = "lockstep";
/// The environment variable holding the SQL password when the file names no source.
pub const DEFAULT_SQL_PASSWORD_ENV: &str = "LOCKSTEP_SQL_PASSWORD";
/// Upper bound of one probe unless the file says otherwise.
pub const DEFAULT_PROBE_TIMEOUT_SECS: u64 = 30;

/// The resolved site settings. Not `Debug`: it holds SQL passwords.
#[derive(Clone, Default)]
pub struct SiteConfig {
    /// Every configured SQL Server, its password already read from its source.
    pub sql: SqlConfig,
    /// Where the SQL scripts the runbooks run (DBMaint.sql, database_backup.sql) are read from.
    pub scripts_dir: PathBuf,
    pub probes: ProbeConfig,
    /// The CA files the probe anchors came from (for `config check`).
    pub probe_ca_files: Vec<PathBuf>,
    /// A simulated Data Center: drain waits are shortened (see `Plan::for_simulated_site`).
    pub simulated_site: bool,
}

/// `[sql]`: login defaults, the scripts folder and the servers. (The login fields are spelled
/// out here and in [`ServerFile`]: serde cannot refuse unknown keys through `flatten`.)
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SqlFile {
    user: Option<String>,
    password: Option<Spanned<toml::Value>>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    encrypt: Option<SqlEncryption>,
    ca_file: Option<PathBuf>,
    scripts_dir: Option<PathBuf>,
    #[serde(default)]
    servers: BTreeMap<String, ServerFile>,
}

/// Login settings: the `[sql]` defaults, or one server's overrides.
#[derive(Debug, Default, Clone)]
struct LoginFile {
    user: Option<String>,
    /// Refused with advice: see the module doc.
    password: Option<Spanned<toml::Value>>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    encrypt: Option<SqlEncryption>,
    ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    address: Spanned<String>,
    user: Option<String>,
    password: Option<Spanned<toml::Value>>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    encrypt: Option<SqlEncryption>,
    ca_file: Option<PathBuf>,
}

impl SqlFile {
    fn login(&self) -> LoginFile {
        LoginFile {
            user: self.user.clone(),
            password: self.password.clone(),
            password_env: self.password_env.clone(),
            password_file: self.password_file.clone(),
            encrypt: self.encrypt,
            ca_file: self.ca_file.clone(),
        }
    }
}

impl ServerFile {
    fn login(&self) -> LoginFile {
        LoginFile {
            user: self.user.clone(),
            password: self.password.clone(),
            password_env: self.password_env.clone(),
            password_file: self.password_file.clone(),
            encrypt: self.encrypt,
            ca_file: self.ca_file.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProbesFile {
    #[serde(default)]
    ca_files: Vec<PathBuf>,
    timeout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    resolve: BTreeMap<String, Spanned<String>>,
}

/// "`value` is not valid: why", naming `setting`.
fn invalid(setting: &str, value: impl Into<String>, message: impl Into<String>) -> SettingsError {
    SettingsError::new(
        setting,
        format!("`{}` is not valid: {}", value.into(), message.into()),
    )
}

/// `simulated_site`, `[sql]` and `[probes]` as written in `file`, then the environment through
/// `env`; relative defaults are under `data_dir`. Every error names the setting.
pub(crate) fn resolve(
    file: &SettingsFile,
    simulated_site: Option<bool>,
    sql: Option<&SqlFile>,
    probes: Option<&ProbesFile>,
    data_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SiteConfig, SettingsError> {
    let simulated_site = match env("LOCKSTEP_SIMULATED_SITE") {
        Some(v) => parse_bool("LOCKSTEP_SIMULATED_SITE", &v)?,
        None => simulated_site.unwrap_or(false),
    };
    let empty_sql = SqlFile::default();
    let sql_file = sql.unwrap_or(&empty_sql);
    let scripts_dir = match env("LOCKSTEP_SQL_SCRIPTS_DIR") {
        Some(v) => Some(("LOCKSTEP_SQL_SCRIPTS_DIR", PathBuf::from(v))),
        None => sql_file.scripts_dir.clone().map(|p| ("sql.scripts_dir", p)),
    };
    let scripts_dir = match scripts_dir {
        Some((source, dir)) => {
            if !dir.is_dir() {
                return Err(invalid(
                    source,
                    dir.display().to_string(),
                    "no such folder (copy the Data Center folder's SQL scripts there)",
                ));
            }
            dir
        }
        None => data_dir.join("scripts"),
    };
    let mut servers = BTreeMap::new();
    let defaults = sql_file.login();
    for (name, server) in &sql_file.servers {
        let target = sql_target(file, name, server, &defaults, env)?;
        servers.insert(name.clone(), target);
    }
    let empty_probes = ProbesFile::default();
    let probes_file = probes.unwrap_or(&empty_probes);
    let (ca_source, ca_files) = match env("LOCKSTEP_PROBES_CA_FILES") {
        Some(v) => (
            "LOCKSTEP_PROBES_CA_FILES",
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
        ),
        None => ("probes.ca_files", probes_file.ca_files.clone()),
    };
    let mut trusted_pem = Vec::new();
    for path in &ca_files {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                ca_source,
                path.display().to_string(),
                format!("cannot read it: {e}"),
            )
        })?;
        trusted_pem.push(pem);
    }
    let timeout_secs = match &probes_file.timeout_secs {
        Some(t) => {
            if !(1..=600).contains(t.get_ref()) {
                return Err(invalid(
                    "probes.timeout_secs",
                    t.get_ref().to_string(),
                    "expected 1 to 600 seconds",
                )
                .at(file.line(&t.span())));
            }
            *t.get_ref()
        }
        None => DEFAULT_PROBE_TIMEOUT_SECS,
    };
    let mut resolve = BTreeMap::new();
    for (host, addr) in &probes_file.resolve {
        let parsed: SocketAddr = addr.get_ref().trim().parse().map_err(|_| {
            invalid(
                &format!("probes.resolve.\"{host}\""),
                addr.get_ref().clone(),
                "expected IP:PORT, e.g. 10.0.0.5:443",
            )
            .at(file.line(&addr.span()))
        })?;
        resolve.insert(host.trim().to_ascii_lowercase(), parsed);
    }
    let probes = ProbeConfig {
        trusted_pem,
        resolve,
        timeout: Some(Duration::from_secs(timeout_secs)),
    };
    // The probe runner parses the anchors; a bad one is named here, before serving.
    if let Err(e) = ProbeExecutor::new(probes.clone()) {
        let which = match &e {
            crate::executors::probe::ProbeConfigError::BadPem { index, .. } => ca_files
                .get(*index)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        };
        return Err(invalid(ca_source, which, e.to_string()));
    }
    Ok(SiteConfig {
        sql: SqlConfig { servers },
        scripts_dir,
        probes,
        probe_ca_files: ca_files,
        simulated_site,
    })
}

/// One server's target: its own settings over the `[sql]` defaults, the password read now so a
/// missing secret is reported at start, not in the middle of a change window.
fn sql_target(
    file: &SettingsFile,
    name: &str,
    server: &ServerFile,
    defaults: &LoginFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SqlTarget, SettingsError> {
    let here = format!("sql.servers.{name}");
    let own = &server.login();
    for (source, login) in [("sql", defaults), (here.as_str(), own)] {
        if let Some(written) = &login.password {
            return Err(invalid(
                &format!("{source}.password"),
                "(hidden)",
                "passwords are not kept in the config file; set password_env (an environment \
                 variable) or password_file (a file readable only by Lockstep)",
            )
            .at(file.line(&written.span())));
        }
        if login.password_env.is_some() && login.password_file.is_some() {
            return Err(invalid(
                source,
                "password_env and password_file",
                "give one password source, not both",
            ));
        }
    }
    let address = server.address.get_ref().trim();
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => (h, Some(p)),
        _ => (address, None),
    };
    if host.is_empty()
        || host.chars().any(char::is_whitespace)
        || port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0))
    {
        return Err(invalid(
            &format!("{here}.address"),
            address,
            "expected host or host:port, e.g. dc1.example.com:1433",
        )
        .at(file.line(&server.address.span())));
    }
    let user = own
        .user
        .clone()
        .or_else(|| env("LOCKSTEP_SQL_USER"))
        .or_else(|| defaults.user.clone())
        .unwrap_or_else(|| DEFAULT_SQL_USER.to_string());
    if user.trim().is_empty() {
        return Err(invalid(&format!("{here}.user"), user, "the login is empty"));
    }
    // The server's own source wins; else the defaults'; else the default variable.
    let (source, source_name) = if own.password_env.is_some() || own.password_file.is_some() {
        (own, here.as_str())
    } else {
        (defaults, "sql")
    };
    let password = match (&source.password_file, &source.password_env) {
        (Some(path), _) => super::secret::read_file(&format!("{source_name}.password_file"), path)?,
        (None, var) => {
            let var = var.as_deref().unwrap_or(DEFAULT_SQL_PASSWORD_ENV);
            env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                invalid(
                    &format!("{here}.password_env"),
                    var,
                    format!("the environment variable {var} is not set (it holds the SQL password for {name})"),
                )
            })?
        }
    };
    let encrypt = own.encrypt.or(defaults.encrypt).unwrap_or_default();
    let ca_file = own.ca_file.clone().or_else(|| defaults.ca_file.clone());
    if let Some(ca) = &ca_file {
        if !ca.is_file() {
            return Err(invalid(
                &format!("{here}.ca_file"),
                ca.display().to_string(),
                "no such file",
            ));
        }
    }
    Ok(SqlTarget {
        address: address.to_string(),
        user,
        password: Some(password),
        password_env: None,
        encrypt,
        ca_file,
    })
}

impl SiteConfig {
    /// The settings as `key = value` lines for `lockstep config check` (no secrets).
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut out = vec![
            (
                "simulated_site".to_string(),
                self.simulated_site.to_string(),
            ),
            (
                "sql.scripts_dir".to_string(),
                self.scripts_dir.display().to_string(),
            ),
        ];
        if self.sql.servers.is_empty() {
            out.push((
                "sql.servers".to_string(),
                "(none: SQL steps fail with \"no SQL connection is configured\")".to_string(),
            ));
        }
        for (name, t) in &self.sql.servers {
            out.push((
                format!("sql.servers.{name}"),
                format!(
                    "{} as {} (encryption {}{}; password set)",
                    t.address,
                    t.user,
                    t.encryption_note(),
                    t.ca_file
                        .as_ref()
                        .map(|c| format!(", CA {}", c.display()))
                        .unwrap_or_default()
                ),
            ));
        }
        out.push((
            "probes.ca_files".to_string(),
            if self.probe_ca_files.is_empty() {
                "(none: HTTPS probes cannot trust any certificate)".to_string()
            } else {
                self.probe_ca_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ));
        out.push((
            "probes.timeout_secs".to_string(),
            self.probes
                .timeout
                .map(|t| t.as_secs())
                .unwrap_or(DEFAULT_PROBE_TIMEOUT_SECS)
                .to_string(),
        ));
        for (host, addr) in &self.probes.resolve {
            out.push((format!("probes.resolve.\"{host}\""), addr.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;
    use crate::config::Document;

    fn load(
        text: &str,
        env: &[(&str, &str)],
    ) -> (Result<SiteConfig, SettingsError>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lockstep.toml");
        std::fs::write(&path, text).unwrap();
        let r = Document::read(Some(&path)).and_then(|d| {
            let s = &d.settings;
            resolve(
                &d.file,
                s.simulated_site,
                s.sql.as_ref(),
                s.probes.as_ref(),
                Path::new("/data"),
                &env_of(env),
            )
        });
        (r, dir)
    }

    fn error(text: &str, env: &[(&str, &str)]) -> String {
        match load(text, env).0 {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn no_site_tables_give_a_real_site_without_sql_servers_or_anchors() {
        let site = resolve(
            &SettingsFile::default(),
            None,
            None,
            None,
            Path::new("/data"),
            &env_of(&[]),
        )
        .unwrap();
        assert!(!site.simulated_site);
        assert!(site.sql.servers.is_empty());
        assert!(site.probes.trusted_pem.is_empty());
        assert_eq!(site.scripts_dir, PathBuf::from("/data/scripts"));
        assert_eq!(
            site.probes.timeout,
            Some(Duration::from_secs(DEFAULT_PROBE_TIMEOUT_SECS))
        );
    }

    #[test]
    fn a_server_takes_the_sql_defaults_and_its_password_from_the_default_variable() {
        let (site, _d) = load(
            "[sql]\nuser = \"svc\"\n[sql.servers.DC1]\naddress = \"dc1.example.com:1433\"\n[sql.servers.DC2]\naddress = \"dc2\"\nuser = \"other\"\nencrypt = \"off\"\n",
            &[("LOCKSTEP_SQL_PASSWORD", "s3cret")],
        );
        let site = site.unwrap();
        let dc1 = &site.sql.servers["DC1"];
        assert_eq!(dc1.user, "svc");
        assert_eq!(dc1.password.as_deref(), Some("s3cret"));
        assert_eq!(dc1.encrypt, SqlEncryption::Required);
        let dc2 = &site.sql.servers["DC2"];
        assert_eq!(
            (dc2.user.as_str(), dc2.encrypt),
            ("other", SqlEncryption::Off)
        );
    }

    #[test]
    fn a_password_file_is_read_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("sql-password");
        std::fs::write(&secret, "from-file\n").unwrap();
        let text = format!(
            "[sql]\npassword_file = \"{}\"\n[sql.servers.DC1]\naddress = \"dc1\"\n",
            secret.display()
        );
        let site = load(&text, &[]).0.unwrap();
        assert_eq!(
            site.sql.servers["DC1"].password.as_deref(),
            Some("from-file")
        );
    }

    #[test]
    fn a_two_line_password_file_is_refused_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("sql-password");
        std::fs::write(&secret, "one\ntwo\n").unwrap();
        let text = format!(
            "[sql.servers.DC1]\naddress = \"dc1\"\npassword_file = \"{}\"\n",
            secret.display()
        );
        let e = load(&text, &[]).0.err().expect("refused");
        assert_eq!(e.setting, "sql.servers.DC1.password_file");
        assert!(e.message.contains("more than one line"), "{e}");
    }

    #[test]
    fn a_bad_address_points_at_its_line() {
        let e = error(
            "[sql]\nuser = \"svc\"\n\n[sql.servers.DC1]\naddress = \"dc1:0\"\n",
            &[("LOCKSTEP_SQL_PASSWORD", "x")],
        );
        assert!(
            e.contains("lockstep.toml:5: sql.servers.DC1.address"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_password_variable_is_named_with_the_server() {
        let e = error(
            "[sql.servers.DC1]\naddress = \"dc1\"\npassword_env = \"DC1_PW\"\n",
            &[],
        );
        assert!(e.contains("DC1_PW") && e.contains("DC1"), "{e}");
    }

    #[test]
    fn a_password_written_in_the_file_is_refused_without_echoing_it() {
        let e = error(
            "[sql.servers.DC1]\naddress = \"dc1\"\npassword = \"hunter2\"\n",
            &[("LOCKSTEP_SQL_PASSWORD", "x")],
        );
        assert!(
            e.contains("sql.servers.DC1.password") && e.contains("password_env"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn bad_addresses_encryption_and_unknown_keys_are_named() {
        let env = [("LOCKSTEP_SQL_PASSWORD", "x")];
        let e = error("[sql.servers.DC1]\naddress = \"dc1:notaport\"\n", &env);
        assert!(e.contains("sql.servers.DC1.address"), "{e}");
        let e = error(
            "[sql.servers.DC1]\naddress = \"dc1\"\nencrypt = \"maybe\"\n",
            &env,
        );
        assert!(e.contains("maybe"), "{e}");
        let e = error(
            "[sql.servers.DC1]\naddress = \"dc1\"\nadress = \"x\"\n",
            &env,
        );
        assert!(e.contains("adress"), "{e}");
        let e = error("[probes]\ntimeout_secs = 0\n", &env);
        assert!(e.contains("probes.timeout_secs"), "{e}");
        let e = error(
            "[probes.resolve]\n\"dc1.example.com\" = \"nowhere\"\n",
            &env,
        );
        assert!(e.contains("dc1.example.com"), "{e}");
    }

    #[test]
    fn a_probe_anchor_that_is_not_a_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        let e = error(
            &format!("[probes]\nca_files = [\"{}\"]\n", bad.display()),
            &[],
        );
        assert!(e.contains("ca.pem") && e.contains("probes.ca_files"), "{e}");
        let e = error("[probes]\nca_files = [\"/no/such/ca.pem\"]\n", &[]);
        assert!(e.contains("/no/such/ca.pem"), "{e}");
    }

    #[test]
    fn the_environment_overrides_simulated_site_and_the_default_login() {
        let (site, _d) = load(
            "simulated_site = false\n[sql.servers.DC1]\naddress = \"dc1\"\n",
            &[
                ("LOCKSTEP_SIMULATED_SITE", "true"),
                ("LOCKSTEP_SQL_USER", "envuser"),
                ("LOCKSTEP_SQL_PASSWORD", "x"),
            ],
        );
        let site = site.unwrap();
        assert!(site.simulated_site);
        assert_eq!(site.sql.servers["DC1"].user, "envuser");
    }

    #[test]
    fn the_description_for_config_check_never_shows_a_password() {
        let (site, _d) = load(
            "[sql.servers.DC1]\naddress = \"dc1\"\n",
            &[("LOCKSTEP_SQL_PASSWORD", "topsecret")],
        );
        let lines = site.unwrap().describe();
        assert!(lines.iter().any(|(k, _)| k == "sql.servers.DC1"));
        assert!(lines.iter().all(|(_, v)| !v.contains("topsecret")));
    }
}
