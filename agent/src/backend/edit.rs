//! Text edits on maintenance scripts, as a pure function: new text, number of replacements and a
//! line diff for the evidence. Both backends use it; only where the bytes live differs.

use lockstep_protocol::TextEdit;

/// The outcome of applying an edit to a file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub text: String,
    pub replacements: u32,
    pub diff: String,
}

const OSQL_HEAD: &str = "microsoft sql server\\";
const OSQL_TAIL: &str = "\\tools\\binn\\osql.exe";

/// Replaces every `Microsoft SQL Server\NNN\Tools\BINN\OSQL.EXE` (any three digits, any case)
/// with `folder`, keeping the rest of each line as it was (SEED-NOTES 8).
fn osql(text: &str, folder: &str) -> (String, u32) {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    let mut i = 0;
    while let Some(pos) = lower[i..].find(OSQL_HEAD) {
        let start = i + pos;
        let digits = start + OSQL_HEAD.len();
        let tail = digits + 3;
        let matches = lower.len() >= tail + OSQL_TAIL.len()
            && lower.as_bytes()[digits..tail]
                .iter()
                .all(|b| b.is_ascii_digit())
            && &lower[tail..tail + OSQL_TAIL.len()] == OSQL_TAIL;
        if matches {
            out.push_str(&text[i..digits]);
            out.push_str(folder);
            if &text[digits..tail] != folder {
                n += 1;
            }
            i = tail;
        } else {
            out.push_str(&text[i..digits]);
            i = digits;
        }
    }
    out.push_str(&text[i..]);
    (out, n)
}

pub fn apply(text: &str, edit: &TextEdit) -> Edited {
    let (new, replacements) = match edit {
        TextEdit::OsqlToolsFolder { folder } => osql(text, folder),
    };
    Edited {
        diff: line_diff(text, &new),
        text: new,
        replacements,
    }
}

/// Lines that differ, as `-N old` / `+N new` pairs (edits here never add or remove lines).
pub fn line_diff(old: &str, new: &str) -> String {
    let mut out = String::new();
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i), b.get(i));
        if x != y {
            if let Some(x) = x {
                out.push_str(&format!("-{} {}\n", i + 1, x));
            }
            if let Some(y) = y {
                out.push_str(&format!("+{} {}\n", i + 1, y));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAILY: &str = "@echo off\r\n\"C:\\Program Files\\Microsoft SQL Server\\100\\Tools\\BINN\\OSQL.EXE\" -E -i daily.sql\r\nrem done\r\n";

    #[test]
    fn the_osql_path_moves_to_the_target_tools_folder() {
        let e = apply(
            DAILY,
            &TextEdit::OsqlToolsFolder {
                folder: "130".into(),
            },
        );
        assert_eq!(e.replacements, 1);
        assert!(e
            .text
            .contains(r"Microsoft SQL Server\130\Tools\BINN\OSQL.EXE"));
        assert!(!e.text.contains(r"\100\"));
        assert!(e.text.ends_with("rem done\r\n"), "line endings kept");
        assert_eq!(
            e.diff,
            "-2 \"C:\\Program Files\\Microsoft SQL Server\\100\\Tools\\BINN\\OSQL.EXE\" -E -i daily.sql\n+2 \"C:\\Program Files\\Microsoft SQL Server\\130\\Tools\\BINN\\OSQL.EXE\" -E -i daily.sql\n"
        );
    }

    #[test]
    fn any_version_folder_and_case_is_replaced_and_other_paths_are_left_alone() {
        let t = "a microsoft sql server\\110\\tools\\binn\\osql.exe b\nMicrosoft SQL Server\\120\\Tools\\Binn\\SQLCMD.EXE\nMicrosoft SQL Server\\1x0\\Tools\\BINN\\OSQL.EXE";
        let e = apply(
            t,
            &TextEdit::OsqlToolsFolder {
                folder: "130".into(),
            },
        );
        assert_eq!(e.replacements, 1);
        assert!(e
            .text
            .starts_with("a microsoft sql server\\130\\tools\\binn\\osql.exe b\n"));
        assert!(e.text.contains("\\120\\Tools\\Binn\\SQLCMD.EXE"));
        assert!(e.text.contains("\\1x0\\"));
    }

    #[test]
    fn an_already_edited_file_reports_no_replacements_and_no_diff() {
        let once = apply(
            DAILY,
            &TextEdit::OsqlToolsFolder {
                folder: "130".into(),
            },
        );
        let twice = apply(
            &once.text,
            &TextEdit::OsqlToolsFolder {
                folder: "130".into(),
            },
        );
        assert_eq!(twice.replacements, 0);
        assert_eq!(twice.diff, "");
        assert_eq!(twice.text, once.text);
    }
}
