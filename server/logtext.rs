//! Text from people and remote hosts, made safe to log: control characters (newlines, escape
//! sequences, NUL) are escaped, so an account name such as `"ann\n2026-12-07 INFO logged in"`
//! cannot forge a log line or drive the terminal of whoever reads the log, and the text is cut
//! to a length a log line can hold.

use std::fmt;

/// The longest user text written to one log field, in characters.
pub const MAX_LOGGED_CHARS: usize = 200;

/// `text` for a log field: control characters as `\n`, `\u{1b}` and so on, at most
/// [`MAX_LOGGED_CHARS`] characters (then `…`). Use it wherever user text reaches `tracing`:
/// `tracing::info!(account = %escaped(&name), ...)`.
pub fn escaped(text: &str) -> Escaped<'_> {
    Escaped(text)
}

/// Displays its text escaped (see [`escaped`]); allocates nothing.
pub struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, c) in self.0.chars().enumerate() {
            if n == MAX_LOGGED_CHARS {
                return f.write_str("…");
            }
            if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
            {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        assert_eq!(
            escaped("ann\n2026 INFO logged in\u{1b}[2J\0").to_string(),
            "ann\\n2026 INFO logged in\\u{1b}[2J\\u{0}"
        );
        assert_eq!(escaped("Zoë O'Neil").to_string(), "Zoë O'Neil");
        assert_eq!(escaped("a\u{202e}b").to_string(), "a\\u{202e}b");
        let long = "x".repeat(500);
        assert_eq!(
            escaped(&long).to_string().chars().count(),
            MAX_LOGGED_CHARS + 1
        );
    }
}
