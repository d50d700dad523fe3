//! The settings file, read and parsed once: one `toml` parse into one struct holding every
//! section, unknown keys refused (`deny_unknown_fields`) at every level. Each section's struct
//! lives with the section (`server`, `site`, `notify`, `oidc`, `metrics`); this module holds
//! the whole, where each value sits (for an error's line), and the helpers every section uses to
//! pick a value from the environment, the file or the default.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::{FileLine, SettingsError};

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
    pub agents: Option<super::server::AgentsFile>,
    pub simulated_site: Option<bool>,
    pub sql: Option<super::site::SqlFile>,
    pub probes: Option<super::site::ProbesFile>,
    pub notify: Option<super::notify::FileNotify>,
    pub oidc: Option<super::oidc::FileOidc>,
    pub metrics: Option<super::metrics::FileMetrics>,
}

/// The settings file: where it is, its text (to turn a value's position into a line) and what
/// it says. No file: an empty one, so every setting takes its default.
#[derive(Debug, Default)]
pub struct SettingsFile {
    path: Option<PathBuf>,
    text: String,
    pub(crate) doc: FileSettings,
}

impl SettingsFile {
    /// Reads and parses `path`; `None` is an empty file.
    pub fn read(path: Option<&Path>) -> Result<SettingsFile, SettingsError> {
        let Some(path) = path else {
            return Ok(SettingsFile::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            SettingsError::new(
                path.display().to_string(),
                format!("cannot read the settings file: {e}"),
            )
        })?;
        let mut file = SettingsFile {
            path: Some(path.to_path_buf()),
            text,
            doc: FileSettings::default(),
        };
        // The one parse of the settings file.
        match toml::from_str::<FileSettings>(&file.text) {
            Ok(doc) => file.doc = doc,
            Err(e) => {
                let setting = e
                    .span()
                    .and_then(|s| key_at(&file.text, s.start))
                    .unwrap_or_else(|| "settings file".to_string());
                let at = e.span().and_then(|s| file.line(&s));
                return Err(SettingsError::new(setting, e.message().trim()).at(at));
            }
        }
        Ok(file)
    }

    /// The file and line of a span of the text (`None` without a file).
    pub(crate) fn line(&self, span: &Range<usize>) -> Option<FileLine> {
        let file = self.path.clone()?;
        let end = span.start.min(self.text.len());
        let line = self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        Some(FileLine { file, line })
    }

    /// An error about a value written in the file at `span`.
    pub(crate) fn error_at(
        &self,
        setting: impl Into<String>,
        span: &Range<usize>,
        message: impl Into<String>,
    ) -> SettingsError {
        SettingsError::new(setting, message).at(self.line(span))
    }

    /// An error about a value, wherever it came from: named by its variable when from the
    /// environment, by its key (and line) when from the file, by its key when a default.
    pub(crate) fn refuse(
        &self,
        key: &str,
        origin: &Origin,
        message: impl Into<String>,
    ) -> SettingsError {
        match origin {
            Origin::Env(var) => SettingsError::new(var.clone(), message),
            Origin::File(span) => self.error_at(key, span, message),
            Origin::Default => SettingsError::new(key, message),
        }
    }

    /// Whether the file sets `key` (`table.key` for a key in a table, e.g.
    /// `agents.facts_stale_secs`): the parsed file written back as a table, so `config check`
    /// can say where each value came from without parsing the text again.
    pub fn sets(&self, key: &str) -> bool {
        let Ok(toml::Value::Table(table)) = toml::Value::try_from(&self.doc) else {
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

/// Where a value came from, to name it in an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    Default,
    /// Written in the file at this span.
    File(Range<usize>),
    /// The environment variable of this name.
    Env(String),
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Got<T> {
    pub value: T,
    pub origin: Origin,
}

/// The one number helper: a whole number from the environment variable `var` when set, else
/// from the file (`key`), else `default`. A variable that is not a whole number is named.
pub(crate) fn number<T: Copy + Into<u64>>(
    env: &dyn Fn(&str) -> Option<String>,
    key: &str,
    var: &str,
    file: Option<&Spanned<T>>,
    default: u64,
) -> Result<Got<u64>, SettingsError> {
    if let Some(v) = env(var) {
        let value = v
            .trim()
            .parse::<u64>()
            .map_err(|_| SettingsError::new(var, format!("`{v}` is not a whole number ({key})")))?;
        return Ok(Got {
            value,
            origin: Origin::Env(var.to_string()),
        });
    }
    Ok(match file {
        Some(s) => Got {
            value: (*s.get_ref()).into(),
            origin: Origin::File(s.span()),
        },
        None => Got {
            value: default,
            origin: Origin::Default,
        },
    })
}

/// A yes/no environment variable.
pub(crate) fn parse_bool(var: &str, v: &str) -> Result<bool, SettingsError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(SettingsError::new(
            var,
            format!("`{v}` is not valid: expected true or false"),
        )),
    }
}

/// The key written on the line holding `offset`, inside its table (`notify.timeout_secs`), to
/// name the setting in a parse error; the table alone when the line is its header. Only for
/// messages: `None` when the line says neither.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("").trim();
    let header = |l: &str| {
        let l = l.trim();
        l.starts_with('[').then(|| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
    };
    if let Some(table) = header(line) {
        return Some(table);
    }
    let key = line.split_once('=')?.0.trim().trim_matches('"').to_string();
    let table = text[..start].lines().rev().find_map(header);
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<SettingsFile, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lockstep.toml");
        std::fs::write(&path, text).unwrap();
        SettingsFile::read(Some(&path))
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
