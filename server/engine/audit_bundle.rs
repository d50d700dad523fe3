//! The self-contained audit export an auditor verifies offline, without Lockstep's database:
//! every event of the chain from the first (each with its Ed25519 signature `sig`, as stored),
//! the chain head when it was exported (signed at export by the server that holds the key),
//! the public signing key, and the signed checkpoints sent out so far.
//! `lockstep audit verify --export FILE [--key KEY.pub]` checks it and names the first bad event.
//!
//! Why the whole chain: each event names its predecessor's hash, so only a chain that starts at
//! the genesis can show that nothing before it was removed. Why the head: without it an event
//! appended at the end (or the last one removed) would leave a chain that is still consistent.
//! Why signatures: someone who edits an event and rebuilds every hash after it produces a
//! consistent chain, but cannot sign it — each event's signature is checked (the same walk as
//! `lockstep audit verify` on the database, `audit/verify.rs`), so the first re-hashed event is
//! named. Why checkpoints: a signed head sent out earlier shows the log went at least that far,
//! so an export cut short before it is caught even where its own head was re-signed.
//!
//! What the file cannot prove alone: that its `signing_key` is the server's. Someone who
//! rewrites everything with a key of their own makes a file that verifies under that key, so the
//! verdict names the key's fingerprint (its id) to compare with the one obtained out of band, and
//! `--key` checks the file against a public key the auditor holds.

use serde::{Deserialize, Serialize};

use super::audit::verify::{self, Checkpoint, Progress};
use super::audit::{self, AuditEvent, ChainHead, ChainProblem, VerifyingKey};

/// The format tag every bundle carries; other files are refused with a clear message.
pub const FORMAT: &str = "lockstep-audit-export-v1";

/// The largest export `verify` reads (an auditor's file is input from outside).
pub const MAX_BYTES: u64 = 512 * 1024 * 1024;

/// The most checkpoints an export carries (the newest ones: each covers every event before it).
pub const MAX_CHECKPOINTS: usize = 10_000;

/// The key the chain's signatures verify under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, base64 (as in the server's `audit-signing.key.pub`).
    pub public_key: String,
    /// Its fingerprint: the first 8 bytes of its SHA-256, hex (the id every signature names).
    pub key_id: String,
}

impl SigningKey {
    pub fn of(key: &VerifyingKey) -> SigningKey {
        SigningKey {
            algorithm: "ed25519".into(),
            public_key: key.public_base64(),
            key_id: key.key_id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    /// RFC 3339, UTC.
    pub exported_at: String,
    pub exported_by: String,
    /// The newest event when exported, signed by the server at export when it holds the key;
    /// `None` for an empty log.
    pub head: Option<ChainHead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SigningKey>,
    /// Signed heads the server sent out before the export (`audit-checkpoints.jsonl`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<Checkpoint>,
    /// Every event exactly as stored, its signature (`sig`) included.
    pub events: Vec<AuditEvent>,
}

impl Bundle {
    /// An unsigned bundle of the whole chain `events` (id order, from the first); the store's
    /// `audit_bundle` adds the key, the head's signature and the checkpoints.
    pub fn new(events: Vec<AuditEvent>, exported_at: String, exported_by: &str) -> Bundle {
        Bundle {
            format: FORMAT.into(),
            exported_at,
            exported_by: exported_by.into(),
            head: events.last().map(|e| ChainHead {
                id: e.id,
                hash: e.hash.clone(),
                sig: None,
            }),
            signing_key: None,
            checkpoints: Vec::new(),
            events,
        }
    }

    /// Reads a bundle; the error says what is wrong with the file, never panics.
    pub fn parse(text: &str) -> Result<Bundle, String> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("the file is not JSON: {e}"))?;
        match v.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(format!(
                    "format is `{other}`; this version of Lockstep reads `{FORMAT}`"
                ))
            }
            None => {
                return Err(format!(
                    "the file has no `format` field: it is not a Lockstep audit export (`{FORMAT}`; a JSON Lines or CSV export cannot be verified offline)"
                ))
            }
        }
        let b: Bundle =
            serde_json::from_value(v).map_err(|e| format!("the export is malformed: {e}"))?;
        if b.checkpoints.len() > MAX_CHECKPOINTS {
            return Err(format!(
                "the export holds {} checkpoints, more than the {MAX_CHECKPOINTS} an export may",
                b.checkpoints.len()
            ));
        }
        Ok(b)
    }
}

/// The checkpoints in the text of a checkpoints file, the newest [`MAX_CHECKPOINTS`] (lines that
/// are not checkpoints are left out: the file is the server's own, verification re-checks each).
pub fn parse_checkpoints(text: &str) -> Vec<Checkpoint> {
    let all: Vec<Checkpoint> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let skip = all.len().saturating_sub(MAX_CHECKPOINTS);
    all.into_iter().skip(skip).collect()
}

/// The checkpoints file `serve` writes for the database at `db` (`LOCKSTEP_AUDIT_CHECKPOINTS`,
/// else `audit-checkpoints.jsonl` beside it), read for an export; empty when there is none.
pub fn checkpoints_beside(db: &std::path::Path) -> Vec<Checkpoint> {
    let file = match std::env::var("LOCKSTEP_AUDIT_CHECKPOINTS") {
        Ok(v) if v == "off" => return Vec::new(),
        Ok(v) if !v.is_empty() => std::path::PathBuf::from(v),
        _ => match db.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => d.join("audit-checkpoints.jsonl"),
            None => std::path::PathBuf::from("audit-checkpoints.jsonl"),
        },
    };
    std::fs::read_to_string(file)
        .map(|t| parse_checkpoints(&t))
        .unwrap_or_default()
}

/// What verification of a bundle found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub events: u64,
    pub signed: u64,
    pub head: Option<ChainHead>,
    /// The fingerprint of the key the signatures were checked with.
    pub key_id: Option<String>,
    /// Whether that key is the one the auditor holds (`--key`), not only the file's own.
    pub key_held: bool,
    pub head_signed: bool,
    /// Checkpoints checked against the events.
    pub checkpoints: u64,
    /// Breaks an admin acknowledged (each starts a new signed segment; they stay listed).
    pub acknowledged: Vec<verify::Acknowledged>,
    /// The first bad event and what is wrong; `None` when the export verifies.
    pub problem: Option<ChainProblem>,
}

impl Verdict {
    /// One line for people.
    pub fn line(&self) -> String {
        match (&self.problem, &self.head) {
            (Some(p), _) if p.event_id > 0 => {
                format!("audit export BROKEN at event {}: {}", p.event_id, p.what)
            }
            (Some(p), _) => format!("audit export BROKEN: {}", p.what),
            (None, Some(h)) => {
                let sigs = match &self.key_id {
                    None => "unsigned (the chain alone: compare the head hash with the one kept elsewhere)"
                        .to_string(),
                    Some(id) => {
                        let whose = if self.key_held {
                            "the key you hold"
                        } else {
                            "the export's own key; compare this fingerprint with the server's, or pass --key"
                        };
                        let count = if self.signed == self.events {
                            format!("all {} signatures valid", self.signed)
                        } else {
                            format!(
                                "{} signatures valid, the first {} events recorded before signing began",
                                self.signed,
                                self.events - self.signed
                            )
                        };
                        format!(
                            "{count}, signed by key {id} ({whose}); head {}{}",
                            if self.head_signed { "signed" } else { "unsigned" },
                            match self.checkpoints {
                                0 => String::new(),
                                n => format!("; {n} checkpoints agree"),
                            }
                        )
                    }
                };
                let acks = match self.acknowledged.len() {
                    0 => String::new(),
                    n => format!("; {n} acknowledged breaks"),
                };
                format!(
                    "audit export ok: {} events, head #{} {}; {sigs}{acks}",
                    self.events, h.id, h.hash
                )
            }
            (None, None) => "audit export ok: empty".to_string(),
        }
    }
}

fn problem(event_id: i64, kind: &str, what: impl Into<String>) -> ChainProblem {
    ChainProblem::new(event_id, kind, what)
}

/// The key to check signatures with: the file's own, which must be the one the auditor holds
/// (`held`) when they hold one.
fn key_of(b: &Bundle, held: Option<&VerifyingKey>) -> Result<Option<VerifyingKey>, ChainProblem> {
    let own = match &b.signing_key {
        None => None,
        Some(k) => {
            if k.algorithm != "ed25519" {
                return Err(problem(
                    0,
                    "signing_key",
                    format!(
                        "signing_key.algorithm is `{}`; only ed25519 is known",
                        k.algorithm
                    ),
                ));
            }
            let key = VerifyingKey::from_base64(&k.public_key).ok_or_else(|| {
                problem(
                    0,
                    "signing_key",
                    "signing_key.public_key is not base64 of a 32-byte key",
                )
            })?;
            if key.key_id != k.key_id {
                return Err(problem(
                    0,
                    "signing_key",
                    format!(
                        "signing_key.key_id is `{}` but the key's fingerprint is {}",
                        k.key_id, key.key_id
                    ),
                ));
            }
            Some(key)
        }
    };
    match (own, held) {
        (own, None) => Ok(own),
        (None, Some(h)) => Err(problem(
            0,
            "signing_key",
            format!(
                "the export carries no signing key, but you hold key {}: its signatures were removed or it is not this server's",
                h.key_id
            ),
        )),
        (Some(own), Some(h)) if own != *h => Err(problem(
            0,
            "other_key",
            format!(
                "the export is signed by key {}, not by the key you hold ({})",
                own.key_id, h.key_id
            ),
        )),
        (Some(own), Some(_)) => Ok(Some(own)),
    }
}

/// Checks the chain from the genesis (links, hashes and, with a key, every signature), the
/// head recorded at export and its signature, and the checkpoints against the events. `held`
/// is the public key the auditor obtained out of band, if any.
pub fn verify(b: &Bundle, held: Option<&VerifyingKey>) -> Verdict {
    let mut verdict = Verdict {
        events: b.events.len() as u64,
        signed: b.events.iter().filter(|e| e.sig.is_some()).count() as u64,
        head: b.head.clone(),
        key_id: None,
        key_held: held.is_some(),
        head_signed: false,
        checkpoints: 0,
        acknowledged: Vec::new(),
        problem: None,
    };
    let key = match key_of(b, held) {
        Ok(k) => k,
        Err(p) => {
            verdict.problem = Some(p);
            return verdict;
        }
    };
    verdict.key_id = key.as_ref().map(|k| k.key_id.clone());
    verdict.problem = match &key {
        Some(key) => {
            // The same walk as the database's verification: link, hash, signature, no unsigned
            // event after a signed one, breaks skipped only to a signed acknowledgement.
            let mut p = Progress::start();
            let found = verify::walk(&mut p, &b.events, key);
            verdict.acknowledged = p.acknowledged;
            found
        }
        None => match b.events.iter().find(|e| e.sig.is_some()) {
            Some(e) => Some(problem(
                e.id,
                "signature",
                "it carries a signature but the export has no signing_key to check it with",
            )),
            None => {
                // The chain against itself (its own last event stands in for the head file,
                // which an export does not have); the recorded head is compared below.
                let own_end = b.events.last().map(|e| ChainHead {
                    id: e.id,
                    hash: e.hash.clone(),
                    sig: None,
                });
                audit::verify_chain(&b.events, own_end.as_ref()).problem
            }
        },
    };
    if verdict.problem.is_some() {
        return verdict;
    }
    verdict.problem = check_head(b, key.as_ref());
    if verdict.problem.is_some() {
        return verdict;
    }
    verdict.head_signed = b.head.as_ref().is_some_and(|h| h.sig.is_some());
    if let Some(key) = &key {
        let lines: Vec<String> = b
            .checkpoints
            .iter()
            .filter_map(|c| serde_json::to_string(c).ok())
            .collect();
        let hash_at = |id: i64| {
            b.events
                .binary_search_by_key(&id, |e| e.id)
                .ok()
                .map(|i| b.events[i].hash.clone())
        };
        verdict.problem = verify::check_checkpoints(&lines.join("\n"), key, &hash_at)
            .into_iter()
            .next();
        verdict.checkpoints = b.checkpoints.len() as u64;
    } else if !b.checkpoints.is_empty() {
        verdict.problem = Some(problem(
            b.checkpoints[0].id,
            "checkpoint",
            "the export carries signed checkpoints but no signing_key to check them with",
        ));
    }
    verdict
}

/// The export's recorded head against its last event, and the head's signature.
fn check_head(b: &Bundle, key: Option<&VerifyingKey>) -> Option<ChainProblem> {
    let last = b.events.last().map(|e| (e.id, e.hash.clone()));
    let found = match (&b.head, last) {
        (None, None) => None,
        (None, Some((id, _))) => Some(problem(
            1,
            "head_missing",
            format!("the export records no head but holds {id} events (the head was removed)"),
        )),
        (Some(h), None) => Some(problem(
            1,
            "truncated",
            format!("the export holds no events but its head is event {}", h.id),
        )),
        (Some(h), Some((id, _))) if id > h.id => Some(problem(
            h.id + 1,
            "appended",
            format!(
                "event {} comes after the export's head (event {}): it was appended",
                h.id + 1,
                h.id
            ),
        )),
        (Some(h), Some((id, _))) if id < h.id => Some(problem(
            id + 1,
            "truncated",
            format!(
                "the export ends at event {id} but its head is event {}: event {} and later were removed",
                h.id,
                id + 1
            ),
        )),
        (Some(h), Some((id, hash))) if hash != h.hash => Some(problem(
            id,
            "rebuilt",
            "its hash differs from the export's head (the events were rewritten)",
        )),
        _ => None,
    };
    if found.is_some() {
        return found;
    }
    let (Some(h), Some(key)) = (&b.head, key) else {
        return None;
    };
    let sig = h.sig.as_deref()?;
    key.check_head(h.id, &h.hash, sig).err().map(|_| {
        problem(
            h.id,
            "head_signature",
            "the export's head signature does not match it (the head was rewritten without the signing key)",
        )
    })
}

/// Write `events` in `format`. The payload column of the CSV is the canonical JSON that was hashed.
pub fn export(
    events: &[AuditEvent],
    format: audit::ExportFormat,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match format {
        audit::ExportFormat::Jsonl => {
            for e in events {
                serde_json::to_writer(&mut *out, e)?;
                out.write_all(b"\n")?;
            }
        }
        audit::ExportFormat::Csv => export_csv(events, out)?,
        audit::ExportFormat::Bundle => {
            let bundle = Bundle::new(
                events.to_vec(),
                audit::iso_utc(time::OffsetDateTime::now_utc().unix_timestamp() * 1000),
                "lockstep audit export",
            );
            serde_json::to_writer_pretty(&mut *out, &bundle)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// The CSV export: the fixed header as written, then every cell quoted by the `csv` crate (always
/// quoted, so a reader never has to guess whether `007` was a number) after the formula guard.
/// Rows end in `\n`, as the header does and as the export always has.
fn export_csv(events: &[AuditEvent], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(out, "{}", audit::CSV_HEADER)?;
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    for e in events {
        let cells = [
            e.id.to_string(),
            e.at.to_string(),
            audit::iso_utc(e.at),
            e.run_id.clone().unwrap_or_default(),
            e.step_id.clone().unwrap_or_default(),
            e.actor.clone(),
            e.kind.to_string(),
            audit::canonical_json(&e.payload),
            e.prev_hash.clone(),
            e.hash.clone(),
        ];
        writer.write_record(
            cells
                .iter()
                .map(|c| audit::spreadsheet_safe(c).into_owned()),
        )?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::audit::signing;

    fn key() -> signing::SigningKey {
        let dir = tempfile::tempdir().unwrap();
        signing::SigningKey::load_or_create(&dir.path().join("k"))
            .unwrap()
            .0
    }

    /// `n` events chained from the genesis, signed by `k` when given.
    fn chain(n: i64, k: Option<&signing::SigningKey>) -> Vec<AuditEvent> {
        let mut prev = audit::GENESIS_HASH.to_string();
        (1..=n)
            .map(|id| {
                let mut e = AuditEvent {
                    id,
                    run_id: Some("r".into()),
                    step_id: None,
                    actor: "olga".into(),
                    at: 1_700_000_000_000 + id,
                    kind: "comment".into(),
                    payload: serde_json::json!({"text": format!("note {id}")}),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                    sig: None,
                };
                e.hash = audit::event_hash(&e);
                e.sig = k.map(|k| k.sign_event(&e.hash));
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn bundle(n: i64) -> Bundle {
        Bundle::new(chain(n, None), "2026-12-06T12:00:00Z".into(), "vera")
    }

    /// A bundle as a server holding `k` exports it.
    fn signed(n: i64, k: &signing::SigningKey) -> Bundle {
        let mut b = Bundle::new(chain(n, Some(k)), "2026-12-06T12:00:00Z".into(), "vera");
        b.signing_key = Some(SigningKey::of(k.verifying()));
        if let Some(h) = b.head.as_mut() {
            h.sig = Some(k.sign_head(h.id, &h.hash));
        }
        b
    }

    #[test]
    fn a_fresh_bundle_verifies_and_round_trips_through_json() {
        let b = bundle(5);
        let text = serde_json::to_string(&b).unwrap();
        let back = Bundle::parse(&text).unwrap();
        assert_eq!(back, b);
        let v = verify(&back, None);
        assert_eq!(v.problem, None, "{}", v.line());
        assert!(v.line().starts_with("audit export ok: 5 events, head #5"));
        assert!(v.line().contains("unsigned"), "{}", v.line());
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut b = bundle(5);
        b.events[2].payload = serde_json::json!({"text": "changed"});
        assert_eq!(verify(&b, None).problem.unwrap().event_id, 3);
    }

    #[test]
    fn a_removed_event_is_named_in_the_middle_and_at_the_end() {
        let mut b = bundle(5);
        b.events.remove(1);
        assert_eq!(verify(&b, None).problem.unwrap().event_id, 2);
        let mut b = bundle(5);
        b.events.pop();
        let p = verify(&b, None).problem.unwrap();
        assert_eq!(p.event_id, 5, "{}", p.what);
    }

    #[test]
    fn an_appended_event_is_named_even_when_its_hash_is_right() {
        let mut b = bundle(5);
        b.events.push(chain(6, None).pop().unwrap());
        let p = verify(&b, None).problem.unwrap();
        assert_eq!(p.event_id, 6);
        assert!(p.what.contains("appended"), "{}", p.what);
    }

    #[test]
    fn a_signed_export_verifies_naming_the_key_and_a_rehashed_event_is_named_by_its_signature() {
        let k = key();
        let b = signed(4, &k);
        let v = verify(
            &Bundle::parse(&serde_json::to_string(&b).unwrap()).unwrap(),
            None,
        );
        assert_eq!((v.problem.clone(), v.signed), (None, 4), "{}", v.line());
        assert!(
            v.line()
                .contains(&format!("signed by key {}", k.verifying().key_id))
                && v.line().contains("head signed"),
            "{}",
            v.line()
        );
        // Event 2 edited and every hash after it rebuilt: a consistent chain, without the key.
        let mut forged = b.clone();
        forged.events[1].actor = "mallory".into();
        for i in 1..forged.events.len() {
            forged.events[i].prev_hash = forged.events[i - 1].hash.clone();
            forged.events[i].hash = audit::event_hash(&forged.events[i]);
        }
        let last = forged.events.last().unwrap().hash.clone();
        forged.head.as_mut().unwrap().hash = last;
        let p = verify(&forged, None).problem.unwrap();
        assert_eq!(
            (p.event_id, p.kind.as_str()),
            (2, "signature"),
            "{}",
            p.what
        );
        // Signatures stripped from the forgery: unsigned after signed is named too.
        let mut stripped = forged.clone();
        stripped.events[1].sig = None;
        assert_eq!(verify(&stripped, None).problem.unwrap().event_id, 2);
        // Stripped of every signature and the key: the chain alone holds, so only the key the
        // auditor holds shows it is not the server's record.
        for e in &mut stripped.events {
            e.sig = None;
        }
        stripped.signing_key = None;
        stripped.head.as_mut().unwrap().sig = None;
        assert_eq!(verify(&stripped, None).problem, None);
        let p = verify(&stripped, Some(k.verifying())).problem.unwrap();
        assert!(p.what.contains("carries no signing key"), "{}", p.what);
    }

    #[test]
    fn an_export_re_signed_with_another_key_fails_against_the_key_the_auditor_holds() {
        let (k, other) = (key(), key());
        let b = signed(3, &other);
        assert_eq!(verify(&b, None).problem, None);
        let p = verify(&b, Some(k.verifying())).problem.unwrap();
        assert!(
            p.what.contains(&other.verifying().key_id) && p.what.contains(&k.verifying().key_id),
            "{}",
            p.what
        );
        let v = verify(&signed(3, &k), Some(k.verifying()));
        assert!(v.line().contains("the key you hold"), "{}", v.line());
    }

    #[test]
    fn a_forged_head_signature_and_a_lost_checkpoint_are_named() {
        let k = key();
        let mut b = signed(5, &k);
        b.head.as_mut().unwrap().sig = Some(k.sign_event(&b.events[4].hash));
        assert_eq!(verify(&b, None).problem.unwrap().kind, "head_signature");
        // A checkpoint sent out at event 5; the export cut back to 3 and re-headed (unsigned).
        let mut b = signed(5, &k);
        b.checkpoints.push(Checkpoint {
            id: 5,
            hash: b.events[4].hash.clone(),
            at: 1,
            sig: k.sign_head(5, &b.events[4].hash),
        });
        assert_eq!(verify(&b, None).problem, None);
        assert!(verify(&b, None).line().contains("1 checkpoints agree"));
        b.events.truncate(3);
        b.head = Some(ChainHead {
            id: 3,
            hash: b.events[2].hash.clone(),
            sig: None,
        });
        let p = verify(&b, None).problem.unwrap();
        assert_eq!(
            (p.event_id, p.kind.as_str()),
            (5, "checkpoint"),
            "{}",
            p.what
        );
    }

    #[test]
    fn files_that_are_not_bundles_are_refused_with_a_reason() {
        assert!(Bundle::parse("{\"id\":1}")
            .unwrap_err()
            .contains("no `format`"));
        assert!(Bundle::parse("not json").unwrap_err().contains("not JSON"));
        assert!(Bundle::parse("{\"format\":\"x\"}")
            .unwrap_err()
            .contains("`x`"));
        let mut b = serde_json::to_value(bundle(1)).unwrap();
        b["signing_key"] =
            serde_json::json!({"algorithm": "ed25519", "public_key": "AAAA", "key_id": "x"});
        let v = verify(&Bundle::parse(&b.to_string()).unwrap(), None);
        assert!(
            v.line().contains("not base64 of a 32-byte key"),
            "{}",
            v.line()
        );
    }
}
