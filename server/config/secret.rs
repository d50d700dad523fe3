//! The one rule for a file holding a secret (`[sql] password_file`, `[oidc] client_secret_file`,
//! `[metrics] token_file`, and their `LOCKSTEP_*_FILE` variables):
//!
//! - the secret is the **whole file**, with **one** trailing line break (`\n` or `\r\n`) removed,
//!   as editors and `echo` add one;
//! - an **empty** file is refused (a secret store that failed to write is caught at start);
//! - a file of **more than one line** is refused: a second line is either a mistake or a second
//!   secret, and guessing which (the first line? all of it?) is how one file came to mean three
//!   things;
//! - a file **longer than [`MAX_SECRET_BYTES`]** is refused: no password, client secret or token
//!   is that long, and a wrongly named file (a certificate, a log) is not read into memory.
//!
//! Every refusal names the setting and the file, never the content.

use std::io::Read as _;
use std::path::Path;

use super::error::SettingsError;

/// The longest secret accepted, in bytes (the line break not counted).
pub const MAX_SECRET_BYTES: usize = 4096;

/// Reads the secret in `path` for `setting` by the rule above.
pub fn read_file(setting: &str, path: &Path) -> Result<String, SettingsError> {
    let refuse = |why: String| SettingsError::new(setting, format!("{}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| refuse(format!("cannot read it: {e}")))?;
    // One byte more than the longest secret and its line break tells "too long" apart.
    let mut bytes = Vec::new();
    file.take((MAX_SECRET_BYTES + 3) as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("cannot read it: {e}")))?;
    let secret = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(&bytes);
    // Length before text: a long file cut by `take` may end inside a character, and it should be
    // refused as too long, not as "not UTF-8".
    if secret.len() > MAX_SECRET_BYTES {
        return Err(refuse(format!(
            "is longer than {MAX_SECRET_BYTES} bytes (a secret file holds one secret on one line)"
        )));
    }
    let secret = std::str::from_utf8(secret).map_err(|_| refuse("is not UTF-8 text".into()))?;
    if secret.contains(['\n', '\r']) {
        return Err(refuse(
            "has more than one line (a secret file holds one secret on one line)".into(),
        ));
    }
    if secret.is_empty() {
        return Err(refuse("is empty (it must hold the secret)".into()));
    }
    Ok(secret.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(content: &[u8]) -> Result<String, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, content).unwrap();
        read_file("metrics.token_file", &path)
    }

    #[test]
    fn one_trailing_newline_is_trimmed_and_nothing_else() {
        assert_eq!(read(b"s3cret\n").unwrap(), "s3cret");
        assert_eq!(read(b"s3cret\r\n").unwrap(), "s3cret");
        assert_eq!(read(b"s3cret").unwrap(), "s3cret");
        assert_eq!(read(b" s3 cret ").unwrap(), " s3 cret ");
    }

    #[test]
    fn a_two_line_file_is_refused_naming_the_setting_not_the_secret() {
        let e = read(b"first\nsecond\n").unwrap_err();
        assert_eq!(e.setting, "metrics.token_file");
        assert!(e.message.contains("more than one line"), "{e}");
        assert!(!e.to_string().contains("first"), "{e}");
        assert!(
            read(b"s3cret\n\n").is_err(),
            "a blank second line is a second line"
        );
    }

    #[test]
    fn an_empty_file_is_refused() {
        for content in [&b""[..], b"\n", b"\r\n"] {
            let e = read(content).unwrap_err();
            assert!(e.message.contains("is empty"), "{e}");
        }
    }

    #[test]
    fn a_file_longer_than_the_limit_is_refused() {
        assert!(read(&vec![b'a'; MAX_SECRET_BYTES]).is_ok());
        let e = read(&vec![b'a'; MAX_SECRET_BYTES + 1]).unwrap_err();
        assert!(e.message.contains("longer than"), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = read_file("oidc.client_secret_file", Path::new("/no/such/secret")).unwrap_err();
        assert!(e.to_string().contains("/no/such/secret"), "{e}");
    }

    #[test]
    fn a_long_file_of_many_byte_characters_is_refused_as_too_long() {
        let e = read("é".repeat(MAX_SECRET_BYTES).as_bytes()).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
    }
}
