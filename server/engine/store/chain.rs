//! The store's side of the signed chain: verifying it (in full, or incrementally from where the
//! last verification got), refusing every state change while it is broken (`serve` turns this
//! on), an admin's acknowledgement that starts a new signed segment, and signed checkpoints
//! sent out to a file that can be held elsewhere.
//!
//! Incremental verification remembers the last good event and its hash; the next call first
//! checks that the event still carries that hash (else it verifies everything again) and then
//! walks only the newer events. Before each write transaction of an enforcing store the log's
//! tail is compared with what this store last committed or verified: an event someone appended
//! or removed behind its back is verified (or found missing) before anything is written after it.

use std::path::Path;
use std::sync::Mutex;

use const_format::concatcp;
use rusqlite::{Connection, OptionalExtension};

use super::queries::{all, EVENT_COLUMNS};
use super::{queries, raw, EngineError, Result, Store};
use crate::engine::audit::verify::{self, Checkpoint, Progress, ACK_KIND};
use crate::engine::audit::{AuditEvent, ChainHead, ChainProblem, VerifyReport};
use crate::engine::machine::{Millis, Refusal};

/// Whether state changes are refused, and how far the chain was verified.
#[derive(Default)]
pub(super) struct ChainGuard {
    state: Mutex<GuardState>,
}

#[derive(Default)]
struct GuardState {
    /// Refuse writes on a broken chain (`serve`); other users of the store only verify.
    enforce: bool,
    /// What is wrong, while the chain is broken and not acknowledged.
    broken: Option<Vec<ChainProblem>>,
    /// The last good event as verified or committed here.
    progress: Option<Progress>,
}

impl ChainGuard {
    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The message every refused change carries.
fn refusal(problems: &[ChainProblem]) -> String {
    let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    format!(
        "the audit chain is broken ({}); nothing can change until an admin acknowledges the break (Audit page, POST /api/v1/audit/acknowledge or `lockstep audit acknowledge`)",
        list.join("; ")
    )
}

/// The events after `after`, in order, up to the first whose payload no longer parses (its id
/// is the second value: everything before it is walked, it is the break).
fn rows_after(db: &Connection, after: i64) -> Result<(Vec<AuditEvent>, Option<i64>)> {
    let mut st = db.prepare_cached(concatcp!(
        "SELECT ",
        EVENT_COLUMNS,
        " FROM events WHERE id > ? ORDER BY id"
    ))?;
    let mut rows = st.query([after])?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        match queries::event_from_row(row) {
            Ok(e) => events.push(e),
            Err(_) => return Ok((events, Some(row.get("id")?))),
        }
    }
    Ok((events, None))
}

impl Store {
    /// Turns on refusal of state changes while the chain is broken, after verifying it in full.
    /// `serve` calls this at start.
    pub async fn enforce_chain(&self) -> Result<VerifyReport> {
        self.chain.lock().enforce = true;
        self.recheck_chain(true).await
    }

    /// The break that blocks writes, as one sentence (`None` when the chain is intact).
    pub fn chain_break(&self) -> Option<String> {
        self.chain.lock().broken.as_deref().map(refusal)
    }

    /// Verifies (in full or from the remembered progress) and updates the guard.
    pub async fn recheck_chain(&self, full: bool) -> Result<VerifyReport> {
        let report = if full {
            self.verify_audit().await?
        } else {
            self.verify_audit_incremental().await?
        };
        let mut g = self.chain.lock();
        g.broken = (!report.problems.is_empty()).then(|| report.problems.clone());
        Ok(report)
    }

    /// Verifies the whole chain, the signed head file and the guard triggers.
    pub async fn verify_audit(&self) -> Result<VerifyReport> {
        self.verify_from(Progress::start()).await
    }

    /// Verifies only what was added since the last verification (keyed by the hash of the last
    /// good event; everything again if that event changed).
    pub async fn verify_audit_incremental(&self) -> Result<VerifyReport> {
        let remembered = self.chain.lock().progress.clone();
        let start = match remembered {
            Some(p) if p.id > 0 => {
                let still: Option<String> = self
                    .read(|db| {
                        Ok(db
                            .prepare_cached("SELECT hash FROM events WHERE id = ?")?
                            .query_row([p.id], |r| r.get(0))
                            .optional()?)
                    })
                    .await?;
                if still.as_deref() == Some(p.hash.as_str()) {
                    p
                } else {
                    Progress::start()
                }
            }
            _ => Progress::start(),
        };
        self.verify_from(start).await
    }

    async fn verify_from(&self, mut p: Progress) -> Result<VerifyReport> {
        let Some(key) = self.verifier.clone() else {
            return Err(EngineError::Audit(format!(
                "no audit signing key to check signatures with (looked for {}); give its path with --key or LOCKSTEP_AUDIT_KEY",
                self.key_path.display()
            )));
        };
        // The head first: read before the log, it can only lag the log, never run ahead of it.
        let head = queries::read_head_settled(self.head.path()).await?;
        let from = p.id;
        let read = self
            .read(|db| {
                raw::snapshot(db, || {
                    let (events, unparseable) = rows_after(db, from)?;
                    let count: i64 = db
                        .prepare_cached("SELECT COUNT(*) FROM events")?
                        .query_row([], |r| r.get(0))?;
                    let last: Option<(i64, String)> = db
                        .prepare_cached("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")?
                        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    let at_head: Option<String> = match &head {
                        Some(h) => db
                            .prepare_cached("SELECT hash FROM events WHERE id = ?")?
                            .query_row([h.id], |r| r.get(0))
                            .optional()?,
                        None => None,
                    };
                    let triggers: Vec<(String, String)> = all(
                        db,
                        "SELECT name, COALESCE(sql, '') FROM sqlite_master
                         WHERE type = 'trigger' AND tbl_name = 'events'",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    Ok((events, unparseable, count, last, at_head, triggers))
                })
            })
            .await?;
        let (events, unparseable, count, last, at_head, triggers) = read;
        let mut report = VerifyReport {
            key_id: Some(key.key_id.clone()),
            ..VerifyReport::default()
        };
        let mut chain_problem = verify::walk(&mut p, &events, &key);
        if chain_problem.is_none() {
            if let Some(id) = unparseable {
                chain_problem = Some(ChainProblem::new(
                    id,
                    "altered",
                    "its payload is not valid JSON (the event was altered)",
                ));
            }
        }
        if let Some(problem) = chain_problem {
            report.set(problem);
        }
        let last_id = last.as_ref().map_or(0, |l| l.0);
        if let Some(problem) = verify::check_head(head.as_ref(), last_id, at_head.as_deref(), &key)
        {
            report.set(problem);
        }
        for problem in verify::check_guards(&triggers) {
            report.set(problem);
        }
        report.events = u64::try_from(count).unwrap_or(0);
        report.last = last.map(|(id, hash)| ChainHead {
            id,
            hash,
            sig: None,
        });
        report.signed_from = p.signed_from;
        report.acknowledged = p.acknowledged.clone();
        self.chain.lock().progress = Some(p);
        Ok(report)
    }

    /// Called at the start of every write transaction of an enforcing store: refuses while the
    /// chain is broken, and verifies any tail this store did not write itself.
    pub(super) fn guard_write(&self, db: &Connection, tail: &(i64, String)) -> Result<()> {
        let progress = {
            let g = self.chain.lock();
            if !g.enforce {
                return Ok(());
            }
            if let Some(problems) = &g.broken {
                return Err(EngineError::ChainBroken(refusal(problems)));
            }
            match &g.progress {
                Some(p) if (p.id, &p.hash) == (tail.0, &tail.1) => return Ok(()),
                other => other.clone(),
            }
        };
        let Some(key) = self.verifier.clone() else {
            return Ok(());
        };
        let mut p = progress.unwrap_or_else(Progress::start);
        let problem = if tail.0 < p.id {
            Some(ChainProblem::new(
                tail.0 + 1,
                "truncated",
                format!("the log ends at event {} but event {} was written before (the newest events were deleted)", tail.0, p.id),
            ))
        } else {
            let (events, unparseable) = rows_after(db, p.id)?;
            verify::walk(&mut p, &events, &key).or_else(|| {
                unparseable.map(|id| {
                    ChainProblem::new(
                        id,
                        "altered",
                        "its payload is not valid JSON (the event was altered)",
                    )
                })
            })
        };
        let mut g = self.chain.lock();
        match problem {
            None => {
                g.progress = Some(p);
                Ok(())
            }
            Some(problem) => {
                tracing::error!(problem = %problem, "the audit chain is broken; refusing state changes");
                let problems = vec![problem];
                let message = refusal(&problems);
                g.broken = Some(problems);
                Err(EngineError::ChainBroken(message))
            }
        }
    }

    /// After a commit of this store: its own signed events extend the verified chain.
    pub(super) fn advance_verified(&self, appended: &[AuditEvent]) {
        let mut g = self.chain.lock();
        if let (Some(p), Some(last)) = (g.progress.as_mut(), appended.last()) {
            if p.id + appended.len() as i64 == last.id {
                p.id = last.id;
                p.hash = last.hash.clone();
                if p.signed_from.is_none() && last.sig.is_some() {
                    p.signed_from = appended.iter().find(|e| e.sig.is_some()).map(|e| e.id);
                }
            } else {
                g.progress = None;
            }
        }
    }

    /// An admin acknowledges the chain's break: one signed event recording what was found
    /// (and recreating dropped guard triggers), after which the chain is a new segment and
    /// changes are allowed again. The break stays listed by verification as acknowledged.
    pub async fn acknowledge_break(
        &self,
        actor: &str,
        reason: &str,
        now: Millis,
    ) -> Result<AuditEvent> {
        if reason.trim().is_empty() {
            return Err(Refusal::ReasonRequired.into());
        }
        let report = self.verify_audit().await?;
        let Some(problem) = report.problem.clone() else {
            return Err(EngineError::Invalid(
                "the audit chain verifies; there is no break to acknowledge".into(),
            ));
        };
        let key_id = self.signer.as_ref().map(|k| k.verifying().key_id.clone());
        let written = self
            .write(false, |w| {
                let dropped = report
                    .problems
                    .iter()
                    .any(|p| p.kind == "guard_dropped" || p.kind == "guard_altered");
                if dropped {
                    for (name, on) in verify::GUARDS {
                        // Names and clauses are the constants of `verify::GUARDS`.
                        w.db.execute_batch(&format!(
                            "DROP TRIGGER IF EXISTS {name};
                             CREATE TRIGGER {name} {on} BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
                        ))?;
                    }
                }
                let tail = serde_json::json!({"id": w.last.0, "hash": w.last.1});
                w.append(
                    None,
                    None,
                    actor,
                    now,
                    ACK_KIND,
                    serde_json::json!({
                        "break": problem,
                        "problems": report.problems,
                        "reason": reason,
                        "key_id": key_id,
                        "tail": tail,
                    }),
                )
            })
            .await?;
        // The head moves to the acknowledgement even if it had recorded a later (deleted) event.
        self.head.reset();
        let mut events = self.commit(written.appended, &written.scanned)?;
        let report = self.recheck_chain(true).await?;
        if let Some(p) = report.problem {
            tracing::error!(problem = %p, "the audit chain is still broken after the acknowledgement");
        }
        events
            .pop()
            .ok_or_else(|| EngineError::Audit("the acknowledgement was not recorded".into()))
    }

    /// Appends a signed checkpoint of the current head to `file` (JSON lines, for syslog or a
    /// copy held elsewhere) when the head moved since `last`. Returns the head written.
    pub async fn write_checkpoint(
        &self,
        file: &Path,
        last: Option<i64>,
        now: Millis,
    ) -> Result<Option<i64>> {
        let Some(signer) = self.signer.clone() else {
            return Ok(None);
        };
        let tail: Option<(i64, String)> = self
            .read(|db| {
                Ok(db
                    .prepare_cached("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")?
                    .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?)
            })
            .await?;
        let Some((id, hash)) = tail else {
            return Ok(None);
        };
        if last == Some(id) || self.chain_break().is_some() {
            return Ok(None);
        }
        let cp = Checkpoint {
            sig: signer.sign_head(id, &hash),
            id,
            hash,
            at: now,
        };
        let line = serde_json::to_string(&cp).map_err(|e| EngineError::Audit(e.to_string()))?;
        append_line(file, &line).map_err(|e| {
            EngineError::Audit(format!(
                "cannot write the checkpoint to {}: {e}",
                file.display()
            ))
        })?;
        Ok(Some(id))
    }

    /// `serve`'s watch: every `every`, re-verify what was added and send out a checkpoint of
    /// the head when it moved (to `checkpoints`, if any). Ends when `stop` turns true.
    pub async fn watch_chain(
        self,
        checkpoints: Option<std::path::PathBuf>,
        every: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut last = None;
        loop {
            if let Err(e) = self.recheck_chain(false).await {
                tracing::error!(error = %e, "cannot verify the audit chain");
            }
            if let Some(file) = &checkpoints {
                let now =
                    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as Millis;
                match self.write_checkpoint(file, last, now).await {
                    Ok(Some(id)) => last = Some(id),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "cannot send out an audit checkpoint"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Checks checkpoints held elsewhere (the text of a checkpoints file) against the log.
    pub async fn verify_checkpoints(&self, text: &str) -> Result<Vec<ChainProblem>> {
        let Some(key) = self.verifier.clone() else {
            return Err(EngineError::Audit(
                "no audit signing key to check checkpoints with".into(),
            ));
        };
        let hashes: Vec<(i64, String)> = self
            .read(|db| {
                all(db, "SELECT id, hash FROM events ORDER BY id", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .await?;
        let lookup = |id: i64| {
            hashes
                .binary_search_by_key(&id, |(i, _)| *i)
                .ok()
                .map(|i| hashes[i].1.clone())
        };
        Ok(verify::check_checkpoints(text, &key, &lookup))
    }
}

/// Appends one line to a file created 0600.
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(format!("{line}\n").as_bytes())
}
