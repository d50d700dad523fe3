//! A step's evidence as tables a person reads: DBCC CHECKDB as one row per database with its
//! allocation and consistency errors, a probe as URL / status / version found / certificate,
//! backups as file / size / verified, and anything else as labelled facts and tables — never
//! raw JSON.
//!
//! Evidence is whatever the executors recorded (see `executors/sql.rs`, `executors/probe.rs`,
//! the agent's wire types); shapes grow as the product does, so the generic rendering below
//! handles any JSON: objects become "label: value" facts, arrays of objects become tables with
//! one column per key, nested values become short "key value" text.

use serde::Serialize;
use serde_json::{Map, Value};

/// One readable block of a step's evidence.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Block {
    /// What the block shows ("DBCC CHECKDB", "Probe", "Backups", "Messages", a key in words).
    pub title: String,
    /// Label/value pairs (empty when the block is a table).
    #[schema(value_type = Vec<Vec<String>>)]
    pub facts: Vec<(String, String)>,
    /// Column headings of the table (empty when the block is facts only).
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Block {
    fn facts(title: impl Into<String>, facts: Vec<(String, String)>) -> Block {
        Block {
            title: title.into(),
            facts,
            headers: Vec::new(),
            rows: Vec::new(),
        }
    }

    fn table(title: impl Into<String>, headers: &[&str], rows: Vec<Vec<String>>) -> Block {
        Block {
            title: title.into(),
            facts: Vec::new(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows,
        }
    }
}

/// The most nested levels drawn as their own blocks; deeper values become short text.
const MAX_DEPTH: usize = 3;

/// A JSON key in words: `found_version` → "Found version".
pub fn label(key: &str) -> String {
    let words = key.replace(['_', '-'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A value as short text for a table cell: scalars as they are, lists joined with commas,
/// objects as "key value; key value" — still no braces or quotes.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{} {}", label(k), text(v)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Bytes in the units people use (`1.5 GB`).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `CHECKDB found 0 allocation errors and 0 consistency errors in database 'Registry'.` →
/// (database, allocation errors, consistency errors).
pub fn checkdb_line(message: &str) -> Option<(String, u64, u64)> {
    let rest = message.split("CHECKDB found ").nth(1)?;
    let (alloc, rest) = rest.split_once(" allocation errors and ")?;
    let (consistency, rest) = rest.split_once(" consistency errors in database '")?;
    let (db, _) = rest.split_once('\'')?;
    Some((
        db.to_string(),
        alloc.trim().parse().ok()?,
        consistency.trim().parse().ok()?,
    ))
}

/// Every readable block of one step's evidence.
pub fn blocks(evidence: &Value) -> Vec<Block> {
    let mut out = Vec::new();
    walk("Evidence", evidence, 0, &mut out);
    out
}

fn walk(title: &str, v: &Value, depth: usize, out: &mut Vec<Block>) {
    match v {
        Value::Null => {}
        Value::Object(map) => object(title, map, depth, out),
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            // One server's evidence each (SQL steps), or rows of a table.
            if items
                .iter()
                .all(|i| i.get("server").is_some() && depth < MAX_DEPTH)
            {
                for item in items {
                    let name = item.get("server").map(text).unwrap_or_default();
                    walk(&format!("{title} — {name}"), item, depth + 1, out);
                }
            } else {
                out.push(generic_table(title, items));
            }
        }
        other => out.push(Block::facts(title, vec![(label(title), text(other))])),
    }
}

fn object(title: &str, map: &Map<String, Value>, depth: usize, out: &mut Vec<Block>) {
    if map.contains_key("probe") && map.contains_key("url") {
        out.push(probe(map));
        return;
    }
    let checkdb: Vec<(String, u64, u64)> = map
        .get("messages")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|m| m.get("text").and_then(Value::as_str))
                .filter_map(checkdb_line)
                .collect()
        })
        .unwrap_or_default();
    let mut facts = Vec::new();
    let mut nested = Vec::new();
    for (k, v) in map {
        match (k.as_str(), v) {
            ("backups", Value::Array(items)) => nested.push(backups(items)),
            ("messages", Value::Array(items)) if !checkdb.is_empty() => {
                let _ = items; // the CHECKDB table below says what the messages say
            }
            ("messages", Value::Array(items)) if !items.is_empty() => {
                nested.push(messages(items));
            }
            (_, Value::Object(_) | Value::Array(_)) if depth < MAX_DEPTH && !is_flat(v) => {
                let mut sub = Vec::new();
                walk(&label(k), v, depth + 1, &mut sub);
                nested.extend(sub);
            }
            (_, Value::Array(a)) if a.is_empty() => {}
            _ => facts.push((label(k), text(v))),
        }
    }
    if !facts.is_empty() {
        out.push(Block::facts(title, facts));
    }
    if !checkdb.is_empty() {
        out.push(Block::table(
            "DBCC CHECKDB",
            &["Database", "Allocation errors", "Consistency errors"],
            checkdb
                .into_iter()
                .map(|(db, a, c)| vec![db, a.to_string(), c.to_string()])
                .collect(),
        ));
    }
    out.extend(nested);
}

/// A list of scalars, or an object of scalars, reads well as one cell.
fn is_flat(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter().all(|i| !i.is_object() && !i.is_array()),
        Value::Object(map) => {
            map.len() <= 3 && map.values().all(|i| !i.is_object() && !i.is_array())
        }
        _ => true,
    }
}

fn probe(map: &Map<String, Value>) -> Block {
    let get = |k: &str| map.get(k).map(text);
    let mut facts = vec![
        ("URL".to_string(), get("url").unwrap_or_default()),
        (
            "Status".to_string(),
            get("status")
                .or_else(|| get("error"))
                .unwrap_or_else(|| "no answer".into()),
        ),
    ];
    if let Some(found) = get("found_version") {
        let expected = get("expected_version")
            .map(|e| format!(" (expected {e})"))
            .unwrap_or_default();
        facts.push(("Version found".into(), format!("{found}{expected}")));
    }
    if let Some(s) = get("first_sentence") {
        facts.push(("Page says".into(), s));
    }
    if let Some(root) = get("xml_root") {
        facts.push(("XML".into(), format!("well-formed, root <{root}>")));
    }
    if let Some(e) = get("xml_error") {
        facts.push(("XML error".into(), e));
    }
    match map.get("tls") {
        Some(Value::Object(t)) => {
            let g = |k: &str| t.get(k).map(text).unwrap_or_default();
            facts.push((
                "Certificate".into(),
                format!(
                    "CN {}, issued by {}, valid until {} ({}, {})",
                    g("certificate_cn"),
                    g("issuer"),
                    g("not_after"),
                    if t.get("trusted").and_then(Value::as_bool) == Some(true) {
                        "trusted"
                    } else {
                        "NOT trusted"
                    },
                    g("protocol"),
                ),
            ));
        }
        _ => {
            if let Some(e) = get("tls_error") {
                facts.push(("Certificate".into(), format!("not read: {e}")));
            }
        }
    }
    let probe = get("probe").unwrap_or_default();
    Block::facts(format!("Probe: {}", label(&probe)), facts)
}

fn backups(items: &[Value]) -> Block {
    Block::table(
        "Backups",
        &["Database", "Server", "File", "Size", "Verified"],
        items
            .iter()
            .map(|b| {
                let g = |k: &str| b.get(k).map(text).unwrap_or_default();
                vec![
                    g("database"),
                    g("server"),
                    g("file"),
                    b.get("size_bytes")
                        .and_then(Value::as_u64)
                        .map(size)
                        .unwrap_or_else(|| "not recorded".into()),
                    if b.get("verified").and_then(Value::as_bool) == Some(true) {
                        "yes (RESTORE VERIFYONLY)".into()
                    } else {
                        "NO".into()
                    },
                ]
            })
            .collect(),
    )
}

fn messages(items: &[Value]) -> Block {
    Block::table(
        "Messages",
        &["Kind", "Code", "Text"],
        items
            .iter()
            .map(|m| {
                let g = |k: &str| m.get(k).map(text).unwrap_or_default();
                vec![g("kind"), g("code"), g("text")]
            })
            .collect(),
    )
}

fn generic_table(title: &str, items: &[Value]) -> Block {
    let mut keys: Vec<String> = Vec::new();
    for item in items {
        if let Some(map) = item.as_object() {
            for k in map.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    Block {
        title: title.to_string(),
        facts: Vec::new(),
        headers: keys.iter().map(|k| label(k)).collect(),
        rows: items
            .iter()
            .map(|i| {
                keys.iter()
                    .map(|k| i.get(k).map(text).unwrap_or_default())
                    .collect()
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all_text(blocks: &[Block]) -> String {
        let mut s = String::new();
        for b in blocks {
            s.push_str(&b.title);
            for (k, v) in &b.facts {
                s.push_str(&format!("\n{k}: {v}"));
            }
            s.push_str(&format!("\n{}", b.headers.join(" | ")));
            for r in &b.rows {
                s.push_str(&format!("\n{}", r.join(" | ")));
            }
            s.push('\n');
        }
        s
    }

    #[test]
    fn checkdb_messages_become_one_row_per_database() {
        let ev = json!({"servers": [{"server": "DC1", "encryption": "required",
        "databases": ["Registry", "Directory"],
        "messages": [
          {"kind": "info", "code": 8989, "text": "CHECKDB found 0 allocation errors and 0 consistency errors in database 'Registry'."},
          {"kind": "info", "code": 8989, "text": "CHECKDB found 0 allocation errors and 2 consistency errors in database 'Directory'."}
        ]}]});
        let b = blocks(&ev);
        let t = b
            .iter()
            .find(|b| b.title == "DBCC CHECKDB")
            .expect("a CHECKDB table");
        assert_eq!(
            t.rows,
            vec![
                vec!["Registry".to_string(), "0".into(), "0".into()],
                vec!["Directory".to_string(), "0".into(), "2".into()],
            ]
        );
        assert!(!all_text(&b).contains('{'), "{}", all_text(&b));
    }

    #[test]
    fn a_probe_shows_url_status_version_and_certificate() {
        let ev = json!({"probe": "support_center", "url": "https://web1/supportcenter/", "status": 200,
            "found_version": "8.11", "expected_version": "8.11", "matched": true,
            "tls": {"protocol": "TLSv1.2", "certificate_cn": "web1", "issuer": "Lab CA",
                    "not_after": "2027-01-01", "trusted": true}});
        let text = all_text(&blocks(&ev));
        for want in [
            "URL: https://web1/supportcenter/",
            "Status: 200",
            "Version found: 8.11 (expected 8.11)",
            "Certificate: CN web1, issued by Lab CA, valid until 2027-01-01 (trusted, TLSv1.2)",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
    }

    #[test]
    fn backups_show_file_size_and_verification() {
        let ev = json!({"servers": [{"server": "DC1", "backups": [
            {"database": "Registry", "server": "DC1", "file": "D:\\b\\Registry-r.bak",
             "size_bytes": 3_145_728u64, "finished_at": "2026-12-06T10:00:00Z", "verified": true}],
            "messages": []}]});
        let text = all_text(&blocks(&ev));
        assert!(
            text.contains(
                "Registry | DC1 | D:\\b\\Registry-r.bak | 3.0 MB | yes (RESTORE VERIFYONLY)"
            ),
            "{text}"
        );
    }

    #[test]
    fn any_other_shape_reads_without_braces_or_quotes() {
        let ev = json!({"polls": 3, "last": {"service": "BackupServer", "state": "running",
            "detail": {"pid": 5, "names": ["a", "b"], "deep": {"x": {"y": 1}}}}});
        let text = all_text(&blocks(&ev));
        assert!(!text.contains('{') && !text.contains('"'), "{text}");
        assert!(
            text.contains("Polls: 3") && text.contains("BackupServer"),
            "{text}"
        );
    }
}
