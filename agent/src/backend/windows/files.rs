//! File edits on Windows: the file is read as bytes, edited as text, backed up beside itself and
//! replaced by a rename, so a failure half-way leaves either the old or the new file.

use lockstep_protocol::{Evidence, TextEdit};

use super::WindowsBackend;
use crate::backend::{edit, ActionCtx, Failure};
use crate::policy::resolve_path;

impl WindowsBackend {
    pub(super) fn file_replace(
        &self,
        path: &str,
        text_edit: &TextEdit,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let p = resolve_path(&self.config, path).map_err(|e| Failure::msg(e.message))?;
        let bytes = std::fs::read(&p).map_err(|e| Failure::msg(format!("reading {p}: {e}")))?;
        let (text, utf8) = decode(&bytes);
        let e = edit::apply(&text, text_edit);
        let backup = if e.replacements > 0 {
            let b = format!(
                "{p}.lockstep-{}.bak",
                ctx.id.as_str().replace(['/', ':', '@', '#'], "_")
            );
            std::fs::write(&b, &bytes)
                .map_err(|e| Failure::msg(format!("writing backup {b}: {e}")))?;
            let tmp = format!("{p}.lockstep-tmp");
            std::fs::write(&tmp, encode(&e.text, utf8))
                .map_err(|e| Failure::msg(format!("writing {tmp}: {e}")))?;
            std::fs::rename(&tmp, &p).map_err(|e| Failure::msg(format!("replacing {p}: {e}")))?;
            Some(b)
        } else {
            None
        };
        Ok(Evidence::FileEdited {
            path: p,
            backup,
            replacements: e.replacements,
            diff: e.diff,
        })
    }
}

/// Files are edited byte-for-byte: UTF-8 when valid, else each byte as one Latin-1 character,
/// so an ANSI maintenance script round-trips unchanged apart from the edit.
fn decode(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), true),
        Err(_) => (bytes.iter().map(|b| *b as char).collect(), false),
    }
}

fn encode(text: &str, utf8: bool) -> Vec<u8> {
    if utf8 {
        text.as_bytes().to_vec()
    } else {
        text.chars().map(|c| c as u32 as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_files_round_trip_byte_for_byte() {
        let bytes = b"rem caf\xe9\r\nC:\\Program Files\\Microsoft SQL Server\\100\\Tools\\BINN\\OSQL.EXE\r\n".to_vec();
        let (text, utf8) = decode(&bytes);
        assert!(!utf8);
        let e = edit::apply(
            &text,
            &lockstep_protocol::TextEdit::OsqlToolsFolder {
                folder: "120".into(),
            },
        );
        let out = encode(&e.text, utf8);
        assert_eq!(out, b"rem caf\xe9\r\nC:\\Program Files\\Microsoft SQL Server\\120\\Tools\\BINN\\OSQL.EXE\r\n".to_vec());
    }
}
