//! Settings: one TOML file, then `LOCKSTEP_*` environment variables, then command-line flags,
//! each overriding the one before. Every setting has a default, so an empty file (or none) is a
//! working configuration for a loopback dashboard.
//!
//! The file is read ([`file`]) and parsed once ([`document`]) into one struct holding every
//! section; each section is then handed its own tables and resolved into the typed settings its
//! owner takes, all held by [`Settings`]:
//!
//! - [`server`]: the top level and `[agents]` (listen address, data folder, database,
//!   sessions, login throttling, TLS, agent facts);
//! - [`site`]: `simulated_site`, `[sql]`, `[probes]` (the site the engine drives);
//! - [`notify`]: `[notify]` (webhooks, e-mail, the change-ticket link);
//! - [`oidc`]: `[oidc]` (single sign-on);
//! - [`metrics`]: `[metrics]` (who may read `/metrics`).
//!
//! Every problem is one [`SettingsError`] naming the setting and, for a value from the file, the
//! file and line. Every file holding a secret is read by one rule ([`secret::read_file`]).

use std::path::Path;

pub mod document;
pub mod error;
pub mod file;
pub mod metrics;
pub mod notify;
pub mod oidc;
pub mod secret;
pub mod server;
pub mod site;

pub use document::Document;
pub use error::{FileLine, SettingsError};
pub use server::{
    Config, Overrides, TlsFiles, DEFAULT_DATA_DIR, DEFAULT_FACTS_INTERVAL_SECS,
    DEFAULT_FACTS_STALE_SECS, DEFAULT_LISTEN, DEFAULT_LOGIN_LOCKOUT_SECS,
    DEFAULT_LOGIN_MAX_FAILURES, DEFAULT_LOGIN_MAX_FAILURES_PER_ADDRESS,
    DEFAULT_SESSION_ABSOLUTE_SECS, DEFAULT_SESSION_IDLE_SECS,
};
pub use site::SiteConfig;

/// Every section of the settings file, resolved together: what `lockstep serve` (and the demo,
/// and `lockstep config check`) hand to the parts that own each section.
pub struct Settings {
    /// The top level and `[agents]`: listen address, data folder, database, sessions, TLS.
    pub server: Config,
    /// `simulated_site`, `[sql]`, `[probes]`: the site the engine drives.
    pub site: SiteConfig,
    /// `[notify]`: webhooks, e-mail, the change-ticket link.
    pub notify: notify::NotifyConfig,
    /// `[oidc]`: single sign-on, when configured.
    pub oidc: Option<oidc::OidcConfig>,
    /// `[metrics]`: who may read `/metrics`.
    pub metrics: metrics::MetricsConfig,
}

impl Settings {
    /// Reads `file` (if given), then the environment through `env`, then `overrides`.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Settings, SettingsError> {
        Settings::resolve(&Document::read(file)?, env, overrides)
    }

    /// [`Settings::load`] with the process environment.
    pub fn from_process(
        file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<Settings, SettingsError> {
        Settings::load(file, &|k| std::env::var(k).ok(), overrides)
    }

    /// Every section of an already parsed `document` (`lockstep config check` keeps it to say
    /// where each value came from), each handed its own tables.
    pub fn resolve(
        document: &Document,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Settings, SettingsError> {
        let (file, doc) = (&document.file, &document.settings);
        let server = server::resolve(file, doc, env, overrides)?;
        let site = site::resolve(
            file,
            doc.simulated_site,
            doc.sql.as_ref(),
            doc.probes.as_ref(),
            &server.data_dir,
            env,
        )?;
        Ok(Settings {
            notify: notify::resolve(file, doc.notify.as_ref(), env)?,
            oidc: oidc::resolve(file, doc.oidc.as_ref(), env)?,
            metrics: metrics::resolve(doc.metrics.as_ref(), env)?,
            server,
            site,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An environment of just these variables (shared by the tests of every settings section).
    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lockstep.toml");
        std::fs::write(&path, text).unwrap();
        Settings::load(Some(&path), &env_of(env), &Overrides::default())
    }

    #[test]
    fn one_file_holds_every_section() {
        let s = load(
            "listen = \"127.0.0.1:9000\"\n[notify]\nmax_attempts = 3\n[metrics]\n\
             [probes]\ntimeout_secs = 5\n[agents]\nfacts_interval_secs = 10\n",
            &[],
        )
        .unwrap();
        assert_eq!(s.server.listen.port(), 9000);
        assert_eq!(s.server.facts_interval_secs, 10);
        assert_eq!(s.notify.max_attempts, 3);
        assert_eq!(
            s.site.probes.timeout,
            Some(std::time::Duration::from_secs(5))
        );
        assert!(s.oidc.is_none() && s.metrics.token.is_none());
    }

    #[test]
    fn an_error_in_any_section_names_the_setting_the_file_and_the_line() {
        let e = load(
            "listen = \"127.0.0.1:9000\"\n\n[notify]\nmax_attempts = 3\ntimeout_secs = 0\n",
            &[],
        )
        .err()
        .expect("refused");
        assert_eq!(e.setting, "notify.timeout_secs");
        assert_eq!(e.at.as_ref().map(|a| a.line), Some(5));
        assert!(
            e.to_string()
                .ends_with("lockstep.toml:5: notify.timeout_secs: must be at least 1"),
            "{e}"
        );
        let e = load("[oidc]\nissuer = \"http://idp.example\"\n", &[])
            .err()
            .expect("refused");
        assert_eq!(
            (e.setting.as_str(), e.at.map(|a| a.line)),
            ("oidc.issuer", Some(2))
        );
    }

    #[test]
    fn a_value_from_the_environment_is_named_by_its_variable_without_a_line() {
        let e = load(
            "session_idle_secs = 600\n",
            &[("LOCKSTEP_SESSION_IDLE_SECS", "soon")],
        )
        .err()
        .expect("refused");
        assert_eq!(e.setting, "LOCKSTEP_SESSION_IDLE_SECS");
        assert!(e.at.is_none());
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let e = Settings::load(
            Some(Path::new("/nonexistent/lockstep.toml")),
            &env_of(&[]),
            &Overrides::default(),
        )
        .err()
        .expect("refused");
        assert!(e.to_string().contains("/nonexistent/lockstep.toml"), "{e}");
    }
}
