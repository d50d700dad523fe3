//! Site scripts (DBMaint.sql, database_backup.sql): where their text comes from, and splitting
//! them into batches on `GO` lines the way sqlcmd and SSMS do (GO is a client-side separator,
//! never sent to the server).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Reads a script named relative to a server's Data Center folder (e.g. `Scripts\DBMaint.sql`).
#[async_trait::async_trait]
pub trait ScriptSource: Send + Sync + 'static {
    async fn read(&self, host: &str, path: &str) -> Result<String, String>;
}

/// Scripts held in memory, by path (tests, the simulator).
#[derive(Debug, Clone, Default)]
pub struct FixedScripts(pub BTreeMap<String, String>);

#[async_trait::async_trait]
impl ScriptSource for FixedScripts {
    async fn read(&self, host: &str, path: &str) -> Result<String, String> {
        let norm = |p: &str| p.replace('/', "\\").to_ascii_lowercase();
        self.0
            .iter()
            .find(|(k, _)| norm(k) == norm(path))
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("script `{path}` is not available for {host}"))
    }
}

/// Scripts copied from the Data Center folder into a local directory, one subfolder per host
/// when present (`DIR/<host>/Scripts/DBMaint.sql`), else shared (`DIR/Scripts/DBMaint.sql`).
#[derive(Debug, Clone)]
pub struct DirScripts(pub PathBuf);

#[async_trait::async_trait]
impl ScriptSource for DirScripts {
    async fn read(&self, host: &str, path: &str) -> Result<String, String> {
        let rel: PathBuf = path.split(['\\', '/']).filter(|p| !p.is_empty()).collect();
        if rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "script path `{path}` must stay inside the Data Center folder"
            ));
        }
        for candidate in [self.0.join(host).join(&rel), self.0.join(&rel)] {
            if let Ok(bytes) = tokio::fs::read(&candidate).await {
                return decode(&bytes).map_err(|e| format!("{}: {e}", candidate.display()));
            }
        }
        Err(format!(
            "script `{path}` for {host} not found under {}",
            self.0.display()
        ))
    }
}

/// UTF-8 (with or without BOM) or UTF-16LE with BOM, as SSMS saves scripts.
pub fn decode(bytes: &[u8]) -> Result<String, String> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16(&units).map_err(|_| "not valid UTF-16".to_string());
    }
    let b = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    String::from_utf8(b.to_vec()).map_err(|_| "not valid UTF-8".to_string())
}

/// One batch and the script line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub first_line: usize,
    pub text: String,
}

/// Splits on lines holding only `GO` (any case, optional count `GO 2` repeats the batch).
/// Empty batches are dropped.
pub fn split_batches(script: &str) -> Result<Vec<Batch>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut first = 1;
    let flush = |cur: &mut String, first: usize, times: usize, out: &mut Vec<Batch>| {
        if !cur.trim().is_empty() {
            for _ in 0..times {
                out.push(Batch {
                    first_line: first,
                    text: cur.trim_end().to_string(),
                });
            }
        }
        cur.clear();
    };
    for (i, line) in script.lines().enumerate() {
        let t = line.trim();
        let mut words = t.split_whitespace();
        if words
            .next()
            .map(|w| w.eq_ignore_ascii_case("go"))
            .unwrap_or(false)
        {
            let times = match words.next() {
                None => 1,
                Some(n) => n.parse::<usize>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                    format!("line {}: `{t}` is not a batch separator (GO takes a count from 1 to 1000)", i + 1)
                })?,
            };
            if words.next().is_some() {
                return Err(format!("line {}: `{t}` has text after GO", i + 1));
            }
            flush(&mut cur, first, times, &mut out);
            first = i + 2;
        } else {
            if cur.is_empty() {
                if t.is_empty() {
                    continue; // leading blank lines belong to no batch
                }
                first = i + 1;
            }
            cur.push_str(line);
            cur.push('\n');
        }
    }
    flush(&mut cur, first, 1, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_lines_separate_batches_and_are_not_sent() {
        let b =
            split_batches("USE Master\nGO\nDBCC CHECKDB\n  go  \n\nUSE Registry\nGO 2\n").unwrap();
        let texts: Vec<&str> = b.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(
            texts,
            ["USE Master", "DBCC CHECKDB", "USE Registry", "USE Registry"]
        );
        assert_eq!((b[1].first_line, b[2].first_line), (3, 6));
    }

    #[test]
    fn a_word_starting_with_go_is_not_a_separator() {
        let b = split_batches("SELECT 1\nGOTO done\n").unwrap();
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn a_bad_go_count_names_the_line() {
        assert_eq!(
            split_batches("SELECT 1\nGO x\n").unwrap_err(),
            "line 2: `GO x` is not a batch separator (GO takes a count from 1 to 1000)"
        );
    }

    #[test]
    fn utf16_scripts_are_read() {
        let mut b = vec![0xFF, 0xFE];
        for u in "GO".encode_utf16() {
            b.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode(&b).unwrap(), "GO");
    }
}
