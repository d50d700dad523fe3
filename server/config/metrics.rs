//! Who may read `/metrics` (`crate::web::metrics`): the `[metrics]` table of the settings file,
//! then `LOCKSTEP_METRICS_TOKEN*` environment variables.
//!
//! ```toml
//! [metrics]
//! token_file = "/etc/lockstep/metrics-token"  # LOCKSTEP_METRICS_TOKEN_FILE, or the token in
//!                                             # LOCKSTEP_METRICS_TOKEN; default: none
//! ```
//!
//! The token file follows the one secret rule (`super::secret`); the token, wherever it comes
//! from, is at least 16 visible ASCII characters.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::SettingsError;

/// The `[metrics]` settings.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    pub token: Option<String>,
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The `[metrics]` table as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileMetrics {
    token_file: Option<PathBuf>,
}

/// The `[metrics]` table as written, then the environment through `env`.
pub(crate) fn resolve(
    table: Option<&FileMetrics>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<MetricsConfig, SettingsError> {
    if let Some(t) = env("LOCKSTEP_METRICS_TOKEN").filter(|t| !t.trim().is_empty()) {
        return checked(t.trim().to_string(), "LOCKSTEP_METRICS_TOKEN");
    }
    let path = match env("LOCKSTEP_METRICS_TOKEN_FILE") {
        Some(p) => Some(("LOCKSTEP_METRICS_TOKEN_FILE", PathBuf::from(p))),
        None => table
            .and_then(|m| m.token_file.clone())
            .map(|p| ("metrics.token_file", p)),
    };
    match path {
        None => Ok(MetricsConfig::default()),
        Some((setting, p)) => checked(super::secret::read_file(setting, &p)?, setting),
    }
}

fn checked(token: String, setting: &str) -> Result<MetricsConfig, SettingsError> {
    if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(SettingsError::new(
            setting,
            "the metrics token must be at least 16 visible ASCII characters",
        ));
    }
    Ok(MetricsConfig { token: Some(token) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env_of;

    #[test]
    fn a_short_token_is_refused_naming_where_it_came_from() {
        let e = resolve(None, &env_of(&[("LOCKSTEP_METRICS_TOKEN", "x")])).unwrap_err();
        assert!(e.to_string().contains("LOCKSTEP_METRICS_TOKEN"), "{e}");
        assert_eq!(resolve(None, &env_of(&[])), Ok(MetricsConfig::default()));
    }

    #[test]
    fn the_token_file_follows_the_one_secret_rule() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("metrics-token");
        std::fs::write(&token, "scrape-me-if-you-can-123\n").unwrap();
        let env = [("LOCKSTEP_METRICS_TOKEN_FILE", token.to_str().unwrap())];
        let m = resolve(None, &env_of(&env)).unwrap();
        assert_eq!(m.token.as_deref(), Some("scrape-me-if-you-can-123"));
        std::fs::write(&token, "").unwrap();
        let e = resolve(None, &env_of(&env)).unwrap_err();
        assert_eq!(e.setting, "LOCKSTEP_METRICS_TOKEN_FILE");
        assert!(e.message.contains("is empty"), "{e}");
    }
}
