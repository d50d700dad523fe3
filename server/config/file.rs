//! The settings file as text: where it is and what it says, to turn a value's position into a
//! file and line, and the helpers every section uses to pick a value from the environment, the
//! file or the default. Nothing here knows the sections: the one parse into every section's
//! struct is `super::document`'s, so the sections can import this module without a circle.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::{FileLine, SettingsError};

/// The settings file: where it is and its text (to turn a value's position into a line). No
/// file: an empty one, so every setting takes its default.
#[derive(Debug, Default)]
pub struct SettingsFile {
    path: Option<PathBuf>,
    text: String,
}

impl SettingsFile {
    /// Reads `path`; `None` is an empty file.
    pub(crate) fn read(path: Option<&Path>) -> Result<SettingsFile, SettingsError> {
        let Some(path) = path else {
            return Ok(SettingsFile::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            SettingsError::new(
                path.display().to_string(),
                format!("cannot read the settings file: {e}"),
            )
        })?;
        Ok(SettingsFile {
            path: Some(path.to_path_buf()),
            text,
        })
    }

    /// The text as written (for the one parse, `super::document`).
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The error for a parse of this text that failed: named by the key written where it failed
    /// (its table's name on a header line), pointing at that line.
    pub(crate) fn parse_error(&self, e: &toml::de::Error) -> SettingsError {
        let setting = e
            .span()
            .and_then(|s| key_at(&self.text, s.start))
            .unwrap_or_else(|| "settings file".to_string());
        let at = e.span().and_then(|s| self.line(&s));
        SettingsError::new(setting, e.message().trim()).at(at)
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
