//! The self-contained audit export an auditor verifies offline, without Lockstep's database:
//! every event of the chain from the first, the chain head when it was exported, and — when the
//! chain is signed — the public key and each event's Ed25519 signature.
//! `lockstep audit verify --export FILE` checks it and names the first bad event.
//!
//! Why the whole chain: each event names its predecessor's hash, so only a chain that starts at
//! the genesis can show that nothing before it was removed. Why the head: without it an event
//! appended at the end (or the last one removed) would leave a chain that is still consistent.
//! What it cannot show unsigned: someone who rewrites every event *and* the head in the file
//! produces a consistent file; the verdict therefore prints the head hash to compare with one
//! kept elsewhere (the change record, the ticket), and signatures close that gap when present.
//!
//! Signatures: an event's `signature` is Ed25519 (hex) over the ASCII bytes of its `hash`, under
//! `signing_key.public_key` (hex, 32 bytes). Events without a signature are reported as unsigned,
//! never as failures, so exports from an unsigned chain verify on the chain alone.

use serde::{Deserialize, Serialize};

use super::audit::{self, AuditEvent, ChainHead};

/// The format tag every bundle carries; other files are refused with a clear message.
pub const FORMAT: &str = "lockstep-audit-export-v1";

/// The largest export `verify` reads (an auditor's file is input from outside).
pub const MAX_BYTES: u64 = 512 * 1024 * 1024;

/// The key the chain's signatures verify under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// Always `ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, hex.
    pub public_key: String,
}

/// One event as exported: exactly as stored, plus its signature when the chain is signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleEvent {
    #[serde(flatten)]
    pub event: AuditEvent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub format: String,
    /// RFC 3339, UTC.
    pub exported_at: String,
    pub exported_by: String,
    /// The newest event when exported; `None` for an empty log.
    pub head: Option<ChainHead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SigningKey>,
    pub events: Vec<BundleEvent>,
}

impl Bundle {
    /// A bundle of the whole chain `events` (id order, from the first).
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
            events: events
                .into_iter()
                .map(|event| BundleEvent {
                    event,
                    signature: None,
                })
                .collect(),
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
        serde_json::from_value(v).map_err(|e| format!("the export is malformed: {e}"))
    }
}

/// What verification of a bundle found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub events: u64,
    pub signed: u64,
    pub head: Option<ChainHead>,
    /// The first bad event and what is wrong; `None` when the export verifies.
    pub problem: Option<audit::ChainProblem>,
}

impl Verdict {
    /// One line for people.
    pub fn line(&self) -> String {
        match (&self.problem, &self.head) {
            (Some(p), _) => format!("audit export BROKEN at event {}: {}", p.event_id, p.what),
            (None, Some(h)) => {
                let sigs = if self.signed == self.events {
                    format!("all {} signatures valid", self.signed)
                } else if self.signed == 0 {
                    "unsigned (the chain alone: compare the head hash with the one kept elsewhere)"
                        .to_string()
                } else {
                    format!(
                        "{} signatures valid, {} events unsigned",
                        self.signed,
                        self.events - self.signed
                    )
                };
                format!(
                    "audit export ok: {} events, head #{} {}; {sigs}",
                    self.events, h.id, h.hash
                )
            }
            (None, None) => "audit export ok: empty".to_string(),
        }
    }
}

fn problem(event_id: i64, what: impl Into<String>) -> Option<audit::ChainProblem> {
    Some(audit::ChainProblem::new(event_id, "export", what))
}

/// Checks the chain from the genesis, the head recorded at export, and every signature present.
pub fn verify(b: &Bundle) -> Verdict {
    let events: Vec<AuditEvent> = b.events.iter().map(|e| e.event.clone()).collect();
    let mut verdict = Verdict {
        events: events.len() as u64,
        signed: 0,
        head: b.head.clone(),
        problem: None,
    };
    // The chain against itself first (its own last event stands in for the head file, which an
    // export does not have); the bundle's recorded head is compared after.
    let own_end = events.last().map(|e| ChainHead {
        id: e.id,
        hash: e.hash.clone(),
        sig: None,
    });
    if let Some(p) = audit::verify_chain(&events, own_end.as_ref()).problem {
        verdict.problem = Some(p);
        return verdict;
    }
    let last = events.last().map(|e| (e.id, e.hash.clone()));
    verdict.problem = match (&b.head, last) {
        (None, None) => None,
        (None, Some((id, _))) => problem(
            1,
            format!("the export records no head but holds {id} events (the head was removed)"),
        ),
        (Some(h), None) => problem(
            1,
            format!("the export holds no events but its head is event {}", h.id),
        ),
        (Some(h), Some((id, _))) if id > h.id => problem(
            h.id + 1,
            format!(
                "event {} comes after the export's head (event {}): it was appended",
                h.id + 1,
                h.id
            ),
        ),
        (Some(h), Some((id, _))) if id < h.id => problem(
            id + 1,
            format!(
                "the export ends at event {id} but its head is event {}: event {} and later were removed",
                h.id,
                id + 1
            ),
        ),
        (Some(h), Some((id, hash))) if hash != h.hash => problem(
            id,
            "its hash differs from the export's head (the events were rewritten)",
        ),
        _ => None,
    };
    if verdict.problem.is_some() {
        return verdict;
    }
    match signatures(b) {
        Ok(n) => verdict.signed = n,
        Err(p) => verdict.problem = Some(p),
    }
    verdict
}

/// Verifies every signature present; returns how many there were.
fn signatures(b: &Bundle) -> Result<u64, audit::ChainProblem> {
    let signed: Vec<&BundleEvent> = b.events.iter().filter(|e| e.signature.is_some()).collect();
    if signed.is_empty() {
        return Ok(0);
    }
    let bad = |id: i64, what: String| audit::ChainProblem::new(id, "signature", what);
    let Some(key) = &b.signing_key else {
        return Err(bad(
            signed[0].event.id,
            "it carries a signature but the export has no signing_key to check it with".into(),
        ));
    };
    if key.algorithm != "ed25519" {
        return Err(bad(
            signed[0].event.id,
            format!(
                "signing_key.algorithm is `{}`; only ed25519 is known",
                key.algorithm
            ),
        ));
    }
    let public = hex::decode(&key.public_key)
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            bad(
                signed[0].event.id,
                "signing_key.public_key is not 32 bytes of hex".into(),
            )
        })?;
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public);
    for e in &signed {
        let sig = e
            .signature
            .as_deref()
            .and_then(|s| hex::decode(s).ok())
            .ok_or_else(|| bad(e.event.id, "its signature is not hex".into()))?;
        key.verify(e.event.hash.as_bytes(), &sig).map_err(|_| {
            bad(
                e.event.id,
                "its signature does not verify under the export's signing key".into(),
            )
        })?;
    }
    Ok(signed.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEvent> {
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
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn bundle(n: i64) -> Bundle {
        Bundle::new(chain(n), "2026-12-06T12:00:00Z".into(), "vera")
    }

    #[test]
    fn a_fresh_bundle_verifies_and_round_trips_through_json() {
        let b = bundle(5);
        let text = serde_json::to_string(&b).unwrap();
        let back = Bundle::parse(&text).unwrap();
        assert_eq!(back, b);
        let v = verify(&back);
        assert_eq!(v.problem, None, "{}", v.line());
        assert!(v.line().starts_with("audit export ok: 5 events, head #5"));
    }

    #[test]
    fn an_edited_event_is_named() {
        let mut b = bundle(5);
        b.events[2].event.payload = serde_json::json!({"text": "changed"});
        assert_eq!(verify(&b).problem.unwrap().event_id, 3);
    }

    #[test]
    fn a_removed_event_is_named_in_the_middle_and_at_the_end() {
        let mut b = bundle(5);
        b.events.remove(1);
        assert_eq!(verify(&b).problem.unwrap().event_id, 2);
        let mut b = bundle(5);
        b.events.pop();
        let p = verify(&b).problem.unwrap();
        assert_eq!(p.event_id, 5, "{}", p.what);
    }

    #[test]
    fn an_appended_event_is_named_even_when_its_hash_is_right() {
        let mut b = bundle(5);
        let mut longer = chain(6);
        b.events.push(BundleEvent {
            event: longer.pop().unwrap(),
            signature: None,
        });
        let p = verify(&b).problem.unwrap();
        assert_eq!(p.event_id, 6);
        assert!(p.what.contains("appended"), "{}", p.what);
    }

    #[test]
    fn signatures_present_are_checked_and_a_bad_one_is_named() {
        use ring::signature::KeyPair;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let mut b = bundle(3);
        b.signing_key = Some(SigningKey {
            algorithm: "ed25519".into(),
            public_key: hex::encode(pair.public_key().as_ref()),
        });
        for e in &mut b.events {
            e.signature = Some(hex::encode(pair.sign(e.event.hash.as_bytes()).as_ref()));
        }
        let v = verify(&b);
        assert_eq!((v.problem.clone(), v.signed), (None, 3), "{}", v.line());
        b.events[1].signature = b.events[0].signature.clone();
        assert_eq!(verify(&b).problem.unwrap().event_id, 2);
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
    }
}
