//! The audit chain: canonical encoding, event hashes, the chain-head file kept next to the
//! database, and verification that names the first bad event.
//!
//! Each event's hash is SHA-256 over `lockstep-audit-v1\n` followed by the canonical JSON (keys
//! sorted, no whitespace) of `{id, run_id, step_id, actor, at, kind, payload, prev_hash}`. The
//! first event's `prev_hash` is 64 zeros. Because the id is hashed, moving a row is caught where it
//! lands; because each row names its predecessor's hash, deleting or editing one breaks the next.
//! The head file (`<db>.audit-head`) records the newest event's id and hash after each commit, so
//! truncating the log or rebuilding every row with fresh hashes no longer matches it. The store
//! writes it in place without an fsync on the commit path and flushes it in the background
//! (`engine/store/head.rs` states what a crash or a power cut can leave); a head that lags the
//! log is accepted as long as the event at its id carries its hash.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::machine::Millis;

pub mod kind;
pub mod signing;
pub mod verify;

pub use kind::EventKind;
pub use signing::{SigningKey, VerifyingKey};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One row of the audit log, as stored and as published to live views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Monotonically increasing; SSE uses it as the event id (resume with Last-Event-ID).
    pub id: i64,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub actor: String,
    pub at: Millis,
    /// What happened; stored as its word (see [`EventKind`]).
    #[schema(value_type = String)]
    pub kind: EventKind,
    pub payload: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
    /// `ed25519:<key id>:<base64>` over the hash, by the signing key kept outside the database
    /// (see `audit/signing.rs`); `None` only for events recorded before signing began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

/// The audit export formats, written the same way by `lockstep audit export` and the dashboard's
/// `/audit/export.*` downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One event object per line, exactly as stored (re-verifiable with [`verify_chain`]).
    Jsonl,
    /// A header row, then one row per event; for spreadsheets (see [`spreadsheet_safe`]).
    Csv,
    /// One JSON document holding the whole chain and its head, verifiable offline
    /// (`lockstep audit verify --export FILE`, see `super::audit_bundle`, which also writes every
    /// format: `audit_bundle::export`).
    Bundle,
}

impl ExportFormat {
    /// `jsonl` or `csv`; anything else is refused with the accepted names.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "jsonl" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            "bundle" => Ok(Self::Bundle),
            other => Err(format!("`{other}` is not one of jsonl, csv, bundle")),
        }
    }
}

/// The CSV header row (without the line break).
/// `at_utc` is the same instant as `at_ms`, as ISO 8601 in UTC with milliseconds, for people.
pub const CSV_HEADER: &str = "id,at_ms,at_utc,run_id,step_id,actor,kind,payload,prev_hash,hash";

/// Milliseconds since the epoch as ISO 8601 in UTC (`2026-12-06T10:15:00.123Z`).
pub fn iso_utc(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            ms.rem_euclid(1000)
        ),
        Err(_) => String::new(),
    }
}

/// A CSV cell's text made safe for a spreadsheet: a leading `= + - @`, tab or carriage return is
/// prefixed with `'` so a spreadsheet never evaluates text from the log (a server name or a
/// comment) as a formula. Quoting is the `csv` crate's job (see `audit_bundle::export`); this
/// guard is ours, because no CSV writer knows which cells a spreadsheet would evaluate.
pub fn spreadsheet_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Canonical JSON: object keys sorted, no insignificant whitespace, serde_json number/string form.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k.as_str()).unwrap_or_default());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The hash an event must carry, computed from its fields (the stored `hash` is ignored).
pub fn event_hash(e: &AuditEvent) -> String {
    event_hash_with_payload(e, &canonical_json(&e.payload))
}

/// [`event_hash`] with the payload's canonical JSON already at hand (the store writes the same
/// text to the `payload` column, so it is encoded once per event).
///
/// Writes the canonical JSON of `{id, run_id, step_id, actor, at, kind, payload, prev_hash}`
/// directly, keys in sorted order, byte for byte what [`canonical_json`] makes of that object
/// (a test holds the two together) — without cloning the payload into a new value first.
pub fn event_hash_with_payload(e: &AuditEvent, payload_canonical: &str) -> String {
    fn string(out: &mut String, s: &str) {
        out.push_str(&serde_json::Value::from(s).to_string());
    }
    fn optional(out: &mut String, s: Option<&str>) {
        match s {
            Some(s) => string(out, s),
            None => out.push_str("null"),
        }
    }
    let mut text = String::with_capacity(200 + payload_canonical.len());
    text.push_str("lockstep-audit-v1\n");
    text.push_str("{\"actor\":");
    string(&mut text, &e.actor);
    text.push_str(&format!(",\"at\":{},\"id\":{},\"kind\":", e.at, e.id));
    string(&mut text, e.kind.as_str());
    text.push_str(",\"payload\":");
    text.push_str(payload_canonical);
    text.push_str(",\"prev_hash\":");
    string(&mut text, &e.prev_hash);
    text.push_str(",\"run_id\":");
    optional(&mut text, e.run_id.as_deref());
    text.push_str(",\"step_id\":");
    optional(&mut text, e.step_id.as_deref());
    text.push('}');
    sha256_hex(text.as_bytes())
}

/// SHA-256 over the canonical JSON of what an approval approves: operation, host, postcondition.
pub fn content_hash(step: &crate::knowledge::plan::PlannedStep) -> String {
    let body = serde_json::json!({
        "operation": step.operation,
        "host": step.host,
        "postcondition": step.postcondition,
    });
    sha256_hex(canonical_json(&body).as_bytes())
}

/// The newest event's id and hash, as recorded outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainHead {
    pub id: i64,
    pub hash: String,
    /// The signing key's signature over `(id, hash)` (a head message, never an event's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

/// Where the head file of a database lives.
pub fn head_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".audit-head");
    PathBuf::from(name)
}

pub fn read_head(path: &Path) -> anyhow::Result<Option<ChainHead>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!("the audit head file {} is unreadable: {e}", path.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// Writes the head durably: a temporary file, fsync, rename over the old one (backups; the live
/// store keeps its head file open and overwrites it in place, see `store/head.rs`).
pub fn write_head(path: &Path, head: &ChainHead) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(
            serde_json::to_string(head)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default, utoipa::ToSchema)]
pub struct VerifyReport {
    pub events: u64,
    pub last: Option<ChainHead>,
    /// The first of [`VerifyReport::problems`]: `None` means the record verifies.
    pub problem: Option<ChainProblem>,
    /// Everything found wrong: the first break in the chain, the head file, each guard trigger.
    #[serde(default)]
    pub problems: Vec<ChainProblem>,
    /// Breaks an admin acknowledged, each starting a new signed segment (they stay listed).
    #[serde(default)]
    pub acknowledged: Vec<verify::Acknowledged>,
    /// The first signed event (events before it were recorded before signing began).
    #[serde(default)]
    pub signed_from: Option<i64>,
    /// The id of the key the signatures were checked with.
    #[serde(default)]
    pub key_id: Option<String>,
}

/// The first place the record stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainProblem {
    /// The first bad event (for a truncated log: the first missing one); 0 for a problem that
    /// is not tied to one event (a dropped guard trigger).
    pub event_id: i64,
    /// What kind of break: `missing`, `link`, `altered`, `unsigned`, `signature`, `other_key`,
    /// `head_missing`, `head_unsigned`, `head_signature`, `truncated`, `rebuilt`,
    /// `guard_dropped`, `guard_altered`, `checkpoint`.
    #[serde(default)]
    pub kind: String,
    pub what: String,
}

impl ChainProblem {
    pub fn new(event_id: i64, kind: &str, what: impl Into<String>) -> ChainProblem {
        ChainProblem {
            event_id,
            kind: kind.to_string(),
            what: what.into(),
        }
    }
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.event_id > 0 {
            write!(f, "event {} [{}]: {}", self.event_id, self.kind, self.what)
        } else {
            write!(f, "[{}]: {}", self.kind, self.what)
        }
    }
}

/// Checks a log (in id order) against itself and against the head file's record.
pub fn verify_chain(events: &[AuditEvent], head: Option<&ChainHead>) -> VerifyReport {
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut expected_id = 1i64;
    let mut report = VerifyReport {
        events: events.len() as u64,
        last: events.last().map(|e| ChainHead {
            id: e.id,
            hash: e.hash.clone(),
            sig: None,
        }),
        ..VerifyReport::default()
    };
    for e in events {
        let problem = if e.id != expected_id {
            Some((
                "missing",
                format!(
                "expected event {expected_id} here but found event {} (events missing or moved)",
                e.id
            ),
            ))
        } else if e.prev_hash != prev_hash {
            Some(("link", "its previous-hash does not match the event before it (an event was removed, moved or altered)".to_string()))
        } else if event_hash(e) != e.hash {
            Some((
                "altered",
                "its content does not match its hash (the event was altered)".to_string(),
            ))
        } else {
            None
        };
        if let Some((kind, what)) = problem {
            report.set(ChainProblem::new(expected_id.min(e.id), kind, what));
            return report;
        }
        prev_hash = e.hash.clone();
        expected_id += 1;
    }
    let last_id = expected_id - 1;
    match head {
        None if last_id > 0 => report.set(ChainProblem::new(
            1,
            "head_missing",
            "the audit head file is missing; the log cannot be shown to be complete",
        )),
        None => {}
        Some(h) if h.id > last_id => report.set(ChainProblem::new(
            last_id + 1,
            "truncated",
            format!("the log ends at event {last_id} but the head file records event {} (the log was truncated)", h.id),
        )),
        Some(h) if h.id < 1 => {}
        Some(h) => {
            let at = &events[(h.id - 1) as usize];
            if at.hash != h.hash {
                report.set(ChainProblem::new(
                    h.id,
                    "rebuilt",
                    "the event's hash differs from the one in the head file (the log was rebuilt)",
                ));
            }
        }
    }
    report
}

impl VerifyReport {
    /// Records a problem (the first one recorded stays [`VerifyReport::problem`]).
    pub fn set(&mut self, p: ChainProblem) {
        if self.problem.is_none() {
            self.problem = Some(p.clone());
        }
        self.problems.push(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(actor: &str, payload: serde_json::Value) -> AuditEvent {
        AuditEvent {
            id: 7,
            run_id: Some("run-1".into()),
            step_id: None,
            actor: actor.into(),
            at: 1_700_000_000_000,
            kind: "comment".into(),
            payload,
            prev_hash: GENESIS_HASH.into(),
            hash: "ab".repeat(32),
            sig: None,
        }
    }

    fn csv(events: &[AuditEvent]) -> String {
        let mut out = Vec::new();
        crate::engine::audit_bundle::export(events, ExportFormat::Csv, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised() {
        let text = csv(&[event(
            "=HYPERLINK(\"http://x\")",
            serde_json::json!({"b": 1, "a": "-2"}),
        )]);
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains(r#""'=HYPERLINK(""http://x"")""#), "{row}");
        assert!(
            row.contains(r#""{""a"":""-2"",""b"":1}""#),
            "canonical payload: {row}"
        );
        assert_eq!(spreadsheet_safe("-1"), "'-1");
        assert_eq!(spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("plain"), "plain");
        let row = csv(&[event("-1", serde_json::json!(null))]);
        assert!(row.contains(",\"'-1\","), "{row}");
    }

    #[test]
    fn csv_has_the_header_and_one_row_per_event_even_with_line_breaks_in_text() {
        let text = csv(&[
            event("olga", serde_json::json!("a\nb")),
            event("ivan", serde_json::json!(1)),
        ]);
        assert!(text.starts_with(&format!("{CSV_HEADER}\n")));
        assert_eq!(text.matches("\"ivan\"").count(), 1);
        assert_eq!(text.matches("\"7\",\"1700000000000\"").count(), 2);
    }

    #[test]
    fn tricky_cells_come_back_from_a_csv_reader_as_written_but_for_the_formula_guard() {
        let actors = [
            "say \"hi\", then leave",
            "two\nlines\r\nand a CR",
            "=cmd|' /C calc'!A0",
            "+1",
            "-1",
            "@SUM(A1)",
            "\tindented",
            "\rreturn",
            "a,b,,c",
            "\"",
            "",
            "ünïcødé ✓",
        ];
        let events: Vec<AuditEvent> = actors
            .iter()
            .map(|a| event(a, serde_json::json!({"note": a})))
            .collect();
        let text = csv(&events);
        let mut reader = ::csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header.join(","), CSV_HEADER);
        let rows: Vec<::csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), actors.len());
        for (row, (actor, e)) in rows.iter().zip(actors.iter().zip(&events)) {
            assert_eq!(row.len(), 10, "{row:?}");
            assert_eq!(&row[5], spreadsheet_safe(actor).as_ref(), "{row:?}");
            assert_eq!(&row[7], canonical_json(&e.payload), "{row:?}");
            assert_eq!(&row[9], e.hash, "{row:?}");
            assert!(
                !row.iter()
                    .any(|c| c.starts_with(['=', '+', '-', '@', '\t', '\r'])),
                "a cell a spreadsheet would evaluate: {row:?}"
            );
        }
    }

    #[test]
    fn jsonl_export_round_trips_every_event_exactly() {
        let events = vec![
            event("olga", serde_json::json!({"x": [1, 2]})),
            event("=ivan", serde_json::json!(null)),
        ];
        let mut out = Vec::new();
        crate::engine::audit_bundle::export(&events, ExportFormat::Jsonl, &mut out).unwrap();
        let back: Vec<AuditEvent> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, events);
    }

    /// The hash as first defined: canonical JSON of a generic object holding the fields.
    fn reference_hash(e: &AuditEvent) -> String {
        let body = serde_json::json!({
            "id": e.id,
            "run_id": e.run_id,
            "step_id": e.step_id,
            "actor": e.actor,
            "at": e.at,
            "kind": e.kind,
            "payload": e.payload,
            "prev_hash": e.prev_hash,
        });
        sha256_hex(format!("lockstep-audit-v1\n{}", canonical_json(&body)).as_bytes())
    }

    #[test]
    fn the_direct_event_encoding_hashes_exactly_as_the_generic_canonical_form() {
        let mut e = event(
            "o\"lga\u{1}é\\",
            serde_json::json!({"z": [1, 2.5, "x\ny"], "a": {"c": null, "b": true}}),
        );
        assert_eq!(event_hash(&e), reference_hash(&e));
        e.step_id = Some("s-1 \u{2028}".into());
        e.run_id = None;
        e.at = -5;
        e.id = i64::MAX;
        assert_eq!(event_hash(&e), reference_hash(&e));
        let e = event("", serde_json::Value::Null);
        assert_eq!(event_hash(&e), reference_hash(&e));
    }

    #[test]
    fn an_unknown_export_format_is_refused_naming_the_choices() {
        assert_eq!(ExportFormat::parse("csv"), Ok(ExportFormat::Csv));
        assert_eq!(ExportFormat::parse("bundle"), Ok(ExportFormat::Bundle));
        assert_eq!(iso_utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        let err = ExportFormat::parse("xml").unwrap_err();
        assert!(err.contains("xml") && err.contains("jsonl, csv"), "{err}");
    }
}
