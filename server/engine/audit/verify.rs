//! Verification of the signed chain: each event's link, hash and signature, the signed head
//! file, the append-only guard triggers, acknowledged breaks, and checkpoints held elsewhere.
//!
//! The walk is resumable ([`Progress`]): the store remembers how far it verified, keyed by the
//! hash of the last good event, so a page view checks only the events added since instead of the
//! whole log. A break that an admin acknowledged is skipped to the acknowledgement event (which
//! names the break's event and kind and is itself signed) and stays listed in
//! [`VerifyReport::acknowledged`](super::VerifyReport).

use serde::{Deserialize, Serialize};

use super::signing::{SigFault, VerifyingKey};
use super::{event_hash, AuditEvent, ChainHead, ChainProblem, EventKind, GENESIS_HASH};

/// The kind of the event an admin appends to acknowledge a break and start a new segment.
pub const ACK_KIND: &str = "audit_break_acknowledged";
/// The kind of the event that starts signing on a log recorded before signing existed.
pub const SIGNING_STARTED_KIND: &str = "audit_signing_started";
/// The append-only guard triggers a healthy database holds (see the engine migration).
pub const GUARDS: [(&str, &str); 2] = [
    ("events_no_update", "BEFORE UPDATE ON events"),
    ("events_no_delete", "BEFORE DELETE ON events"),
];

/// A break an admin acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Acknowledged {
    /// The acknowledgement event (the first event of the new segment).
    pub ack_event: i64,
    pub by: String,
    pub reason: String,
    /// The break as it was found.
    #[serde(rename = "break")]
    pub problem: ChainProblem,
}

/// How far a walk got: the last good event and what was learnt on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The last event verified (0: none).
    pub id: i64,
    /// Its hash (the genesis hash for none).
    pub hash: String,
    /// The first signed event; after it every event must be signed.
    pub signed_from: Option<i64>,
    pub acknowledged: Vec<Acknowledged>,
}

impl Progress {
    pub fn start() -> Progress {
        Progress {
            hash: GENESIS_HASH.to_string(),
            ..Progress::default()
        }
    }
}

/// The first thing wrong with `e`, given the event before it.
fn check(e: &AuditEvent, p: &Progress, key: &VerifyingKey) -> Option<ChainProblem> {
    let expected = p.id + 1;
    if e.id != expected {
        return Some(ChainProblem::new(
            expected.min(e.id),
            "missing",
            format!(
                "expected event {expected} here but found event {} (events missing or moved)",
                e.id
            ),
        ));
    }
    if e.prev_hash != p.hash {
        return Some(ChainProblem::new(e.id, "link", "its previous-hash does not match the event before it (an event was removed, moved or altered)"));
    }
    if event_hash(e) != e.hash {
        return Some(ChainProblem::new(
            e.id,
            "altered",
            "its content does not match its hash (the event was altered)",
        ));
    }
    match &e.sig {
        None if p.signed_from.is_some() => Some(ChainProblem::new(
            e.id,
            "unsigned",
            "it carries no signature though the events before it are signed (it was written without the signing key)",
        )),
        None => None,
        Some(sig) => match key.check_event(&e.hash, sig) {
            Ok(()) => None,
            Err(SigFault::OtherKey(id)) => Some(ChainProblem::new(
                e.id,
                "other_key",
                format!("it is signed by key {id}, not by this server's key {} (the signing key was replaced)", key.key_id),
            )),
            Err(_) => Some(ChainProblem::new(
                e.id,
                "signature",
                "its signature does not match it (forged or altered without the signing key)",
            )),
        },
    }
}

/// Whether `ack` is a valid acknowledgement of `problem`.
fn acknowledges(ack: &AuditEvent, problem: &ChainProblem, key: &VerifyingKey) -> bool {
    let names = ack.payload.get("break").and_then(|b| {
        Some((
            b.get("event_id")?.as_i64()?,
            b.get("kind")?.as_str()?.to_string(),
        ))
    });
    ack.kind == EventKind::AuditBreakAcknowledged
        && names == Some((problem.event_id, problem.kind.clone()))
        && event_hash(ack) == ack.hash
        && ack
            .sig
            .as_deref()
            .is_some_and(|s| key.check_event(&ack.hash, s).is_ok())
}

/// Walks `events` (the events after `p.id`, in id order) and advances `p` past every good one.
/// Returns the first break no later acknowledgement covers.
pub fn walk(p: &mut Progress, events: &[AuditEvent], key: &VerifyingKey) -> Option<ChainProblem> {
    let mut i = 0;
    while i < events.len() {
        let e = &events[i];
        match check(e, p, key) {
            None => {
                if e.sig.is_some() && p.signed_from.is_none() {
                    p.signed_from = Some(e.id);
                }
                // A break found at the head (truncation, a missing head file) leaves nothing
                // to skip; its acknowledgement is listed from the event itself.
                if e.kind == EventKind::AuditBreakAcknowledged
                    && !p.acknowledged.iter().any(|a| a.ack_event == e.id)
                {
                    if let Some(problem) = e
                        .payload
                        .get("break")
                        .and_then(|b| serde_json::from_value::<ChainProblem>(b.clone()).ok())
                    {
                        p.acknowledged.push(Acknowledged {
                            ack_event: e.id,
                            by: e.actor.clone(),
                            reason: reason(e),
                            problem,
                        });
                    }
                }
                p.id = e.id;
                p.hash = e.hash.clone();
                i += 1;
            }
            Some(problem) => {
                let Some(j) =
                    (i + 1..events.len()).find(|&j| acknowledges(&events[j], &problem, key))
                else {
                    return Some(problem);
                };
                let ack = &events[j];
                p.acknowledged.push(Acknowledged {
                    ack_event: ack.id,
                    by: ack.actor.clone(),
                    reason: reason(ack),
                    problem,
                });
                // The new segment starts at the acknowledgement, chained to the log as found.
                p.id = ack.id - 1;
                p.hash = ack.prev_hash.clone();
                i = j;
            }
        }
    }
    None
}

fn reason(ack: &AuditEvent) -> String {
    ack.payload
        .get("reason")
        .and_then(|r| r.as_str())
        .unwrap_or_default()
        .to_string()
}

/// The head file against the log: present, signed by the key, not beyond the log's end, and
/// naming an event that carries its hash. `at_head` is the hash of the log's event at the
/// head's id, if there is one.
pub fn check_head(
    head: Option<&ChainHead>,
    last_id: i64,
    at_head: Option<&str>,
    key: &VerifyingKey,
) -> Option<ChainProblem> {
    let Some(h) = head else {
        return (last_id > 0).then(|| {
            ChainProblem::new(
                last_id,
                "head_missing",
                "the audit head file is missing; the newest events cannot be shown complete (they may have been deleted)",
            )
        });
    };
    let Some(sig) = &h.sig else {
        return Some(ChainProblem::new(
            h.id,
            "head_unsigned",
            "the audit head file is not signed (it was written without the signing key)",
        ));
    };
    if let Err(fault) = key.check_head(h.id, &h.hash, sig) {
        let what = match fault {
            SigFault::OtherKey(id) => format!(
                "the audit head file is signed by key {id}, not by this server's key {}",
                key.key_id
            ),
            _ => {
                "the audit head file's signature does not match it (forged without the signing key)"
                    .to_string()
            }
        };
        return Some(ChainProblem::new(h.id, "head_signature", what));
    }
    if h.id > last_id {
        return Some(ChainProblem::new(
            last_id + 1,
            "truncated",
            format!("the log ends at event {last_id} but the signed head records event {} (the log was truncated: the newest events were deleted)", h.id),
        ));
    }
    match at_head {
        Some(hash) if hash == h.hash => None,
        _ if h.id == 0 => None,
        _ => Some(ChainProblem::new(
            h.id,
            "rebuilt",
            "the event's hash differs from the one in the signed head file (the log was rebuilt)",
        )),
    }
}

/// The guard triggers as found (`name`, `sql` from `sqlite_master`) against [`GUARDS`].
pub fn check_guards(found: &[(String, String)]) -> Vec<ChainProblem> {
    let mut problems = Vec::new();
    for (name, on) in GUARDS {
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        match found.iter().find(|(n, _)| n == name) {
            None => problems.push(ChainProblem::new(
                0,
                "guard_dropped",
                format!("the append-only guard trigger `{name}` was dropped: events can be changed or deleted without an error"),
            )),
            Some((_, sql)) => {
                let sql = norm(sql);
                if !sql.contains(on) || !sql.contains("RAISE(ABORT") {
                    problems.push(ChainProblem::new(
                        0,
                        "guard_altered",
                        format!("the append-only guard trigger `{name}` was replaced by one that no longer refuses the change"),
                    ));
                }
            }
        }
    }
    problems
}

/// One line of the checkpoints file: a signed head with the time it was sent out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub id: i64,
    pub hash: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub sig: String,
}

/// Checks checkpoints held elsewhere against the log: each must be signed by the key, and the
/// log must still hold its event with its hash. `hash_at(id)` reads the log.
pub fn check_checkpoints(
    text: &str,
    key: &VerifyingKey,
    hash_at: &dyn Fn(i64) -> Option<String>,
) -> Vec<ChainProblem> {
    let mut problems = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line_no = n + 1;
        let cp: Checkpoint = match serde_json::from_str(line) {
            Ok(cp) => cp,
            Err(e) => {
                problems.push(ChainProblem::new(
                    0,
                    "checkpoint",
                    format!("checkpoints line {line_no} is not a checkpoint: {e}"),
                ));
                continue;
            }
        };
        if key.check_head(cp.id, &cp.hash, &cp.sig).is_err() {
            problems.push(ChainProblem::new(
                cp.id,
                "checkpoint",
                format!(
                    "checkpoints line {line_no} is not signed by this server's key {}",
                    key.key_id
                ),
            ));
            continue;
        }
        match hash_at(cp.id) {
            None => problems.push(ChainProblem::new(cp.id, "checkpoint", format!("checkpoint of line {line_no} records event {} but the log no longer holds it (the log was truncated)", cp.id))),
            Some(h) if h != cp.hash => problems.push(ChainProblem::new(cp.id, "checkpoint", format!("event {} differs from the checkpoint of line {line_no} sent out at {} ms (the log was rewritten, even if re-signed)", cp.id, cp.at))),
            Some(_) => {}
        }
    }
    problems
}
