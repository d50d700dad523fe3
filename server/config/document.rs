//! The settings file, parsed once: one `toml` parse into `FileSettings`, the struct holding
//! every section's table as written, unknown keys refused (`deny_unknown_fields`) at every
//! level; [`Document`] keeps it beside the file's text, for the lines of errors.
//!
//! Imports run one way. This module imports the sections' table structs (`site`, `notify`,
//! `oidc`, `metrics`) and `super::file`; a section takes positions and helpers from
//! `super::file` and is handed its own tables by `super::Settings::resolve`, so none imports
//! this module back. The one exception is `super::server`, which resolves the top level and
//! reads the file for `Config::load`: that is why the `[agents]` table it resolves is defined
//! here, not there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::SettingsError;
use super::file::SettingsFile;

/// The file as written: every key optional. The top-level keys are the server's (see
/// `super::server`); the tables belong to their sections.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSettings {
    pub listen: Option<Spanned<String>>,
    pub data_dir: Option<PathBuf>,
    pub db: Option<PathBuf>,
    pub session_idle_secs: Option<Spanned<u64>>,
    pub session_absolute_secs: Option<Spanned<u64>>,
    pub login_max_failures: Option<Spanned<u32>>,
    pub login_lockout_secs: Option<Spanned<u64>>,
    pub login_max_failures_per_address: Option<Spanned<u32>>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: Option<bool>,
    pub agents: Option<AgentsFile>,
    pub simulated_site: Option<bool>,
    pub sql: Option<super::site::SqlFile>,
    pub probes: Option<super::site::ProbesFile>,
    pub notify: Option<super::notify::FileNotify>,
    pub oidc: Option<super::oidc::FileOidc>,
    pub metrics: Option<super::metrics::FileMetrics>,
}

/// The `[agents]` table as written (resolved by `super::server`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentsFile {
    pub facts_interval_secs: Option<Spanned<u64>>,
    pub facts_stale_secs: Option<Spanned<u64>>,
}

/// The settings file and what it says. No file: an empty one, so every setting takes its
/// default.
#[derive(Debug, Default)]
pub struct Document {
    /// The text, to turn a value's position into a line.
    pub(crate) file: SettingsFile,
    /// Every section as written.
    pub(crate) settings: FileSettings,
}

impl Document {
    /// Reads and parses `path`; `None` is an empty file.
    pub fn read(path: Option<&Path>) -> Result<Document, SettingsError> {
        let file = SettingsFile::read(path)?;
        // The one parse of the settings file.
        let settings =
            toml::from_str::<FileSettings>(file.text()).map_err(|e| file.parse_error(&e))?;
        Ok(Document { file, settings })
    }

    /// Whether the file sets `key` (`table.key` for a key in a table, e.g.
    /// `agents.facts_stale_secs`): the parsed file written back as a table, so `config check`
    /// can say where each value came from without parsing the text again.
    pub fn sets(&self, key: &str) -> bool {
        let Ok(toml::Value::Table(table)) = toml::Value::try_from(&self.settings) else {
            return false;
        };
        match key.split_once('.') {
            Some((t, k)) => table
                .get(t)
                .and_then(toml::Value::as_table)
                .is_some_and(|t| t.contains_key(k)),
            None => table.contains_key(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Document, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lockstep.toml");
        std::fs::write(&path, text).unwrap();
        Document::read(Some(&path))
    }

    #[test]
    fn a_value_of_the_wrong_type_names_the_setting_and_its_line() {
        let e = read("listen = \"127.0.0.1:1\"\n\n[notify]\ntimeout_secs = \"ten\"\n").unwrap_err();
        assert_eq!(e.setting, "notify.timeout_secs");
        assert_eq!(e.at.as_ref().map(|a| a.line), Some(4));
        assert!(e.to_string().contains("lockstep.toml:4: "), "{e}");
    }

    #[test]
    fn an_unknown_key_names_itself_and_its_line() {
        let e = read("[agents]\nfacts_interval_secs = 10\nfacts_every = 10\n").unwrap_err();
        assert_eq!(e.at.as_ref().map(|a| a.line), Some(3));
        assert!(e.to_string().contains("facts_every"), "{e}");
    }

    #[test]
    fn the_parsed_file_says_which_keys_it_sets() {
        let f = read("listen = \"127.0.0.1:1\"\n[agents]\nfacts_stale_secs = 600\n").unwrap();
        assert!(f.sets("listen") && f.sets("agents.facts_stale_secs"));
        assert!(!f.sets("db") && !f.sets("agents.facts_interval_secs") && !f.sets("notify"));
    }
}
