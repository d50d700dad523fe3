//! The one settings error. Whatever is wrong — a key the file should not have, a number that is
//! not one, a secret file with two lines — it names the setting as the reader wrote it
//! (`notify.webhook[1].url`, `LOCKSTEP_SESSION_IDLE_SECS`, `--listen`) and, when the value was
//! written in the settings file, the file and line, so `lockstep config check` and
//! `lockstep serve` point at the exact place to fix.

use std::fmt;
use std::path::PathBuf;

/// A setting that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// A file key (`notify.webhook[1].url`), an environment variable or a flag; for a file that
    /// cannot be read, the file itself.
    pub setting: String,
    /// What is wrong, in words that say what to do. Never echoes a secret.
    pub message: String,
    /// Where the value is written, when it came from the settings file.
    pub at: Option<FileLine>,
}

/// A line of the settings file (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLine {
    pub file: PathBuf,
    pub line: usize,
}

impl SettingsError {
    /// An error about a value that did not come from the file (environment, flag, default), or
    /// about settings taken together.
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> SettingsError {
        SettingsError {
            setting: setting.into(),
            message: message.into(),
            at: None,
        }
    }

    /// The same error, pointing at a line of the settings file.
    pub(crate) fn at(mut self, at: Option<FileLine>) -> SettingsError {
        self.at = at;
        self
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `file:line:` first, as compilers do, so editors and terminals can jump to it.
        if let Some(at) = &self.at {
            write!(f, "{}:{}: ", at.file.display(), at.line)?;
        }
        write!(f, "{}: {}", self.setting, self.message)
    }
}

impl std::error::Error for SettingsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_and_line_come_first_then_the_setting() {
        let e =
            SettingsError::new("notify.timeout_secs", "must be at least 1").at(Some(FileLine {
                file: "lockstep.toml".into(),
                line: 7,
            }));
        assert_eq!(
            e.to_string(),
            "lockstep.toml:7: notify.timeout_secs: must be at least 1"
        );
        let e = SettingsError::new("LOCKSTEP_LISTEN", "`x` is not valid");
        assert_eq!(e.to_string(), "LOCKSTEP_LISTEN: `x` is not valid");
    }
}
