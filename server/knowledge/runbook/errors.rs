//! Turning serde/TOML errors into [`RunbookError`]s that name the line and the field.

use super::{RunbookError, RunbookErrorKind as K};

/// 1-based line of a byte offset.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Turns a serde/TOML error into a [`RunbookError`] naming the line and field.
pub(super) fn serde_error(file: &str, text: &str, e: &toml::de::Error) -> RunbookError {
    let message = e.message().trim().to_string();
    let span = e.span().unwrap_or(0..0);
    let line = line_of(text, span.start);
    let quoted = message.split('`').nth(1).map(str::to_string);
    let (kind, field) = if message.starts_with("unknown field") {
        (K::UnknownField, quoted.unwrap_or_else(|| "-".into()))
    } else if message.starts_with("missing field") {
        (K::MissingField, quoted.unwrap_or_else(|| "-".into()))
    } else if message.contains("unknown variant")
        || message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.contains("invalid length")
    {
        (K::BadValue, key_before(text, span.start))
    } else {
        (K::Syntax, key_before(text, span.start))
    };
    RunbookError {
        file: file.to_string(),
        line,
        field,
        kind,
        message,
    }
}

/// The key whose value starts near `offset` (the word before the last `=` on that line).
fn key_before(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map(|p| p + 1).unwrap_or(0);
    let before = &text[line_start..offset];
    match before.rfind('=') {
        Some(eq) => {
            let key: String = before[..eq]
                .trim_end()
                .chars()
                .rev()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-' || *c == '.')
                .collect();
            let key: String = key.chars().rev().collect();
            if key.is_empty() {
                "-".into()
            } else {
                key
            }
        }
        None => {
            let rest = &text[line_start..];
            let key: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if key.is_empty() {
                "-".into()
            } else {
                key
            }
        }
    }
}
