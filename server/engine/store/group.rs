//! Group commit of the driver's step events: when several steps finish together (answers from
//! many hosts at once), their transitions share one transaction and so one fsync.
//!
//! Callers queue their event and take turns as the committer; the one whose turn it is commits
//! everything queued so far in one `BEGIN IMMEDIATE … COMMIT` and answers every caller in it.
//! A caller alone pays nothing extra; callers arriving while a commit is on disk ride the next
//! one. Durability is unchanged: nobody gets an answer before the transaction holding its event
//! has committed with `synchronous=FULL`. Each event is still a compare-and-set with its own
//! audit event; a refusal or conflict is answered to its caller alone and writes nothing. If the
//! transaction as a whole fails (disk full, I/O error) nothing of it was written, and each event
//! is applied again in a transaction of its own so one bad item cannot fail the others.
//!
//! The driver's events also carry its concurrency limits: when a step leaves flight (succeeded,
//! failed, skipped), the same transaction claims the run's next ready steps (unblock, start within
//! the limits and host locks), so a step costs one durable commit instead of two. The steps so
//! started are handed to the driver through [`Store::take_claimed`] *before* the commit's events
//! are published: the driver wakes on those events and finds them waiting, and never mistakes a
//! freshly dispatched step for one left behind. A crash between that commit and the dispatch
//! leaves a dispatched step that the next start reconciles, exactly as after the driver's own claim.
//!
//! And the lines the step's executor said while it ran ([`Unwritten`]) are inserted in the same
//! transaction, before the step's own event, so a remote step's log costs no transaction of its
//! own on the writer; they are published before the commit's events, as when they had a commit
//! of their own. Lines are kept whatever their step's transition answers (a late answer refused,
//! a lost compare-and-set): they say what the host did.

use std::sync::Mutex;

use tokio::sync::oneshot;

use super::claim::{Claimed, DriveLimits};
use super::queries::{load_run, load_step};
use super::{EngineError, Result, Store};
use crate::engine::machine::{Millis, StepAction, StepEvent, StepState};
use crate::engine::steplog::{StepLog, Unwritten};

/// The queue of driver events waiting for a commit, and whose turn it is to commit them.
#[derive(Default)]
pub(super) struct Group {
    queue: Mutex<Vec<Pending>>,
    /// Held by the caller committing a batch (tokio's mutex is fair: callers commit in order).
    turn: tokio::sync::Mutex<()>,
    /// Steps started by the claim folded into a batch, waiting for the driver to carry them out.
    claimed: Mutex<Vec<(String, Claimed)>>,
    /// Transactions this path has begun (tests check that events shared one).
    #[cfg(test)]
    batches: std::sync::atomic::AtomicU64,
}

struct Pending {
    run_id: String,
    step_id: String,
    event: StepEvent,
    now: Millis,
    /// The driver's limits: claim the run's next steps in the same commit.
    claim: Option<DriveLimits>,
    /// The step log lines to insert in the same commit.
    lines: Option<Unwritten>,
    reply: oneshot::Sender<ItemResult>,
}

impl Store {
    /// Applies a driver event (no acting person) to one step, committed together with the other
    /// driver events waiting at the same moment. Same answer as [`Store::apply_step_event`].
    /// Events of people go through `apply_step_event` (they can reopen a failed run).
    pub async fn apply_driver_event(
        &self,
        run_id: &str,
        step_id: &str,
        event: &StepEvent,
        now: Millis,
    ) -> Result<(StepState, Vec<StepAction>)> {
        self.grouped(run_id, step_id, event, now, None, None).await
    }

    /// [`Store::apply_driver_event`], and when the step leaves flight, the claim of the run's next
    /// ready steps within `limits` in the same commit; the steps it starts wait in
    /// [`Store::take_claimed`] for the driver.
    pub async fn apply_driver_event_and_claim(
        &self,
        run_id: &str,
        step_id: &str,
        event: &StepEvent,
        now: Millis,
        limits: DriveLimits,
    ) -> Result<(StepState, Vec<StepAction>)> {
        self.grouped(run_id, step_id, event, now, Some(limits), None)
            .await
    }

    /// [`Store::apply_driver_event`] (and, with `limits`, the claim of the run's next steps) with
    /// the lines the step's executor said, inserted in the same commit (see the module docs).
    pub async fn apply_driver_event_logged(
        &self,
        run_id: &str,
        step_id: &str,
        event: &StepEvent,
        now: Millis,
        limits: Option<DriveLimits>,
        lines: Unwritten,
    ) -> Result<(StepState, Vec<StepAction>)> {
        let lines = Some(lines).filter(|l| !l.is_empty());
        self.grouped(run_id, step_id, event, now, limits, lines)
            .await
    }

    /// Steps started by a claim folded into a step's commit, not yet carried out (the driver takes
    /// them at the start of each pass).
    pub fn take_claimed(&self) -> Vec<(String, Claimed)> {
        std::mem::take(&mut *self.group.claimed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    async fn grouped(
        &self,
        run_id: &str,
        step_id: &str,
        event: &StepEvent,
        now: Millis,
        claim: Option<DriveLimits>,
        lines: Option<Unwritten>,
    ) -> Result<(StepState, Vec<StepAction>)> {
        if event.actor().is_some() {
            if let Some(lines) = lines {
                lines.write(&self.log).await;
            }
            return self.apply_step_event(run_id, step_id, event, now).await;
        }
        let (reply, mut answer) = oneshot::channel();
        self.group
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Pending {
                run_id: run_id.to_string(),
                step_id: step_id.to_string(),
                event: event.clone(),
                now,
                claim,
                lines,
                reply,
            });
        let turn = self.group.turn.lock().await;
        // The caller before us may have committed our event with its own.
        if let Ok(result) = answer.try_recv() {
            return result;
        }
        let batch =
            std::mem::take(&mut *self.group.queue.lock().unwrap_or_else(|p| p.into_inner()));
        self.commit_batch(batch).await;
        drop(turn);
        answer.await.unwrap_or_else(|_| {
            Err(EngineError::Conflict(format!(
                "step {step_id} of run {run_id} (its commit was interrupted)"
            )))
        })
    }

    /// Commits a batch in one transaction and answers every caller in it.
    async fn commit_batch(&self, batch: Vec<Pending>) {
        match self.try_batch(&batch).await {
            Ok(Ok(results)) => {
                for (p, r) in batch.into_iter().zip(results) {
                    let _ = p.reply.send(r);
                }
            }
            // Committed, but the head file could not be written: every caller hears of it.
            Ok(Err(message)) => {
                for p in batch {
                    let _ = p.reply.send(Err(EngineError::Audit(message.clone())));
                }
            }
            // Nothing was written: each event again in a transaction of its own.
            Err(_) if batch.len() > 1 => {
                for p in batch {
                    self.write_alone(p.lines).await;
                    let r = self
                        .apply_step_event(&p.run_id, &p.step_id, &p.event, p.now)
                        .await;
                    let _ = p.reply.send(r);
                }
            }
            Err(e) => {
                if let Some(p) = batch.into_iter().next() {
                    self.write_alone(p.lines).await;
                    let _ = p.reply.send(Err(e));
                }
            }
        }
    }

    /// Lines whose transition's commit failed: still kept, in a transaction of their own.
    async fn write_alone(&self, lines: Option<Unwritten>) {
        if let Some(lines) = lines {
            lines.write(&self.log).await;
        }
    }

    /// The batch in one transaction: `Err` if nothing was written, `Ok(Err)` if it committed but
    /// the head file could not be written, otherwise each caller's answer.
    async fn try_batch(&self, batch: &[Pending]) -> Result<Result<Vec<ItemResult>, String>> {
        #[cfg(test)]
        self.group
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Before the writer, as every writer of lines does (see `StepLog::order`).
        let order = match batch.iter().any(|p| p.lines.is_some()) {
            true => Some(self.log.order().await),
            false => None,
        };
        let written = self
            .write(true, |w| {
                let mut results = Vec::with_capacity(batch.len());
                let mut lines = Vec::new();
                // Runs with a step that left flight, and the limits to claim their next steps within.
                let mut to_claim: Vec<(&str, DriveLimits)> = Vec::new();
                for p in batch {
                    if let Some(u) = &p.lines {
                        lines.extend(StepLog::insert_in(w.db, &u.key, &u.lines, u.dropped)?);
                    }
                    let item = load_run(w.db, &p.run_id).and_then(|run| {
                        let step = load_step(w.db, &p.run_id, &p.step_id)?;
                        w.step_transition(run.state.requester_person(), &step, &p.event, p.now)
                    });
                    match item {
                        Ok(r) => {
                            if let Some(limits) = p.claim.filter(|_| !r.0.status.is_in_flight()) {
                                if !to_claim.iter().any(|(run, _)| *run == p.run_id) {
                                    to_claim.push((&p.run_id, limits));
                                }
                            }
                            results.push(Ok(r))
                        }
                        // Refused, lost the compare-and-set, or no such step: nothing was written
                        // for it, and the answer is this caller's alone.
                        Err(
                            e @ (EngineError::Refused(_)
                            | EngineError::Conflict(_)
                            | EngineError::NotFound(_)),
                        ) => results.push(Err(e)),
                        Err(e) => return Err(e),
                    }
                }
                let now = batch.iter().map(|p| p.now).max().unwrap_or_default();
                let mut claimed = Vec::new();
                for (run_id, limits) in to_claim {
                    let run = load_run(w.db, run_id)?;
                    if run.status.is_driving() {
                        // An error here fails the batch; each event is then applied on its own,
                        // unclaimed, and the driver's next pass claims instead.
                        let (started, _) = w.claim_ready(&self.scans, &run, limits, now)?;
                        claimed.extend(started.into_iter().map(|c| (run_id.to_string(), c)));
                    }
                }
                Ok((results, lines, claimed))
            })
            .await?;
        let (results, lines, claimed) = written.value;
        self.log.publish(&lines);
        drop(order);
        if !claimed.is_empty() {
            self.group
                .claimed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(claimed);
        }
        Ok(self
            .commit(written.appended, &written.scanned)
            .map(|_| results)
            .map_err(|e| match e {
                EngineError::Audit(message) => message,
                other => other.to_string(),
            }))
    }
}

type ItemResult = Result<(StepState, Vec<StepAction>)>;

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use crate::engine::executor::Outcome;
    use crate::engine::machine::StepStatus;
    use crate::engine::testkit::noop_plan;

    async fn started(store: &Store, steps: usize) -> String {
        started_plan(store, noop_plan(steps, false, &[])).await
    }

    async fn started_plan(store: &Store, plan: crate::knowledge::plan::Plan) -> String {
        crate::engine::testkit::started_run(store, plan, "CHG-1").await
    }

    fn finished() -> StepEvent {
        StepEvent::Finished {
            outcome: Outcome::Succeeded {
                evidence: serde_json::Value::Null,
            },
        }
    }

    /// Holds the committer's turn until `n` events are queued, then lets them go.
    async fn queued(
        store: &Store,
        n: usize,
        calls: Vec<tokio::task::JoinHandle<ItemResult>>,
    ) -> Vec<ItemResult> {
        let turn = store.group.turn.lock().await;
        while store.group.queue.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(turn);
        let mut answers = Vec::new();
        for c in calls {
            answers.push(c.await.unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn driver_events_waiting_together_share_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("g.db")).await.unwrap();
        let run_id = started(&store, 10).await;
        for i in 0..10 {
            let id = format!("s{i:04}");
            store
                .apply_step_event(&run_id, &id, &StepEvent::Unblock, 1)
                .await
                .unwrap();
            store
                .apply_step_event(&run_id, &id, &StepEvent::Start, 1)
                .await
                .unwrap();
        }
        let calls = (0..10)
            .map(|i| {
                let (store, run_id) = (store.clone(), run_id.clone());
                tokio::spawn(async move {
                    store
                        .apply_driver_event(&run_id, &format!("s{i:04}"), &finished(), 2)
                        .await
                })
            })
            .collect();
        let answers = queued(&store, 10, calls).await;
        for a in answers {
            assert_eq!(a.unwrap().0.status, StepStatus::Succeeded);
        }
        assert_eq!(
            store.group.batches.load(Ordering::SeqCst),
            1,
            "one transaction for ten events"
        );
        let report = store.verify_audit().await.unwrap();
        assert_eq!(report.problem, None);
        assert_eq!(report.last.unwrap().id, report.events as i64);
    }

    #[tokio::test]
    async fn a_refused_event_in_a_group_is_answered_alone_and_the_others_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("g.db")).await.unwrap();
        let run_id = started(&store, 3).await;
        for id in ["s0000", "s0001"] {
            store
                .apply_step_event(&run_id, id, &StepEvent::Unblock, 1)
                .await
                .unwrap();
            store
                .apply_step_event(&run_id, id, &StepEvent::Start, 1)
                .await
                .unwrap();
        }
        // s0002 is still pending: it cannot have finished.
        let calls = ["s0000", "s0002", "s0001", "no-such-step"]
            .into_iter()
            .map(|id| {
                let (store, run_id) = (store.clone(), run_id.clone());
                tokio::spawn(
                    async move { store.apply_driver_event(&run_id, id, &finished(), 2).await },
                )
            })
            .collect();
        let answers = queued(&store, 4, calls).await;
        assert!(answers[0].is_ok());
        assert!(
            matches!(answers[1], Err(EngineError::Refused(_))),
            "{:?}",
            answers[1]
        );
        assert!(answers[2].is_ok());
        assert!(
            matches!(answers[3], Err(EngineError::NotFound(_))),
            "{:?}",
            answers[3]
        );
        assert_eq!(
            store.step(&run_id, "s0002").await.unwrap().status,
            StepStatus::Pending
        );
        assert_eq!(
            store.step(&run_id, "s0001").await.unwrap().status,
            StepStatus::Succeeded
        );
        assert_eq!(store.verify_audit().await.unwrap().problem, None);
    }

    #[tokio::test]
    async fn a_finished_step_and_the_start_of_the_next_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("g.db")).await.unwrap();
        let run_id = started_plan(&store, noop_plan(3, true, &["dc1"])).await;
        let limits = DriveLimits::default();
        let (first, _) = store.claim(&run_id, limits, 1).await.unwrap();
        assert_eq!(first.len(), 1, "only the chain's first step can start");
        let (state, _) = store
            .apply_driver_event_and_claim(&run_id, "s0000", &finished(), 2, limits)
            .await
            .unwrap();
        assert_eq!(state.status, StepStatus::Succeeded);
        assert_eq!(store.group.batches.load(Ordering::SeqCst), 1, "one commit");
        let handed = store.take_claimed();
        assert_eq!(handed.len(), 1, "{handed:?}");
        assert_eq!(
            (handed[0].0.as_str(), handed[0].1.step.id.as_str()),
            (run_id.as_str(), "s0001")
        );
        assert_eq!(handed[0].1.step.status, StepStatus::Dispatched);
        assert_eq!(
            store.step(&run_id, "s0001").await.unwrap().status,
            StepStatus::Dispatched,
            "the next step's start is durable with the finished step"
        );
        assert!(store.take_claimed().is_empty(), "handed over once");
        // The driver's own pass finds nothing more to start, and the chain of events holds.
        assert!(store.claim(&run_id, limits, 3).await.unwrap().0.is_empty());
        assert_eq!(store.verify_audit().await.unwrap().problem, None);
    }

    #[tokio::test]
    async fn without_limits_a_finished_step_claims_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("g.db")).await.unwrap();
        let run_id = started_plan(&store, noop_plan(2, true, &["dc1"])).await;
        store
            .claim(&run_id, DriveLimits::default(), 1)
            .await
            .unwrap();
        store
            .apply_driver_event(&run_id, "s0000", &finished(), 2)
            .await
            .unwrap();
        assert!(store.take_claimed().is_empty());
        assert_eq!(
            store.step(&run_id, "s0001").await.unwrap().status,
            StepStatus::Pending
        );
    }

    #[tokio::test]
    async fn a_step_s_lines_ride_the_commit_of_its_result_and_are_published_before_its_event() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("g.db")).await.unwrap();
        let run_id = started_plan(&store, noop_plan(2, true, &["dc1"])).await;
        let limits = DriveLimits::default();
        store.claim(&run_id, limits, 1).await.unwrap();
        let mut lines = store.step_log().subscribe();
        let mut events = store.subscribe();
        let said = Unwritten {
            key: crate::engine::executor::IdempotencyKey {
                run_id: run_id.clone(),
                step_id: "s0000".into(),
                attempt: 1,
            },
            lines: vec![(2, "product version 8.8.6".into(), false)],
            dropped: 0,
        };
        let (state, _) = store
            .apply_driver_event_logged(&run_id, "s0000", &finished(), 2, Some(limits), said)
            .await
            .unwrap();
        assert_eq!(state.status, StepStatus::Succeeded);
        assert_eq!(
            store.group.batches.load(Ordering::SeqCst),
            1,
            "the lines, the result and the next step's start: one commit"
        );
        let tail = store.step_log().tail(&run_id, "s0000", 10).await.unwrap();
        assert_eq!(tail.lines[0].text, "product version 8.8.6");
        assert_eq!(lines.try_recv().unwrap().text, "product version 8.8.6");
        assert_eq!(events.try_recv().unwrap().step_id.as_deref(), Some("s0000"));
        assert_eq!(store.take_claimed().len(), 1);
        assert_eq!(store.verify_audit().await.unwrap().problem, None);
    }

    #[tokio::test]
    async fn lines_of_an_answer_that_is_refused_are_kept_all_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("g.db")).await.unwrap();
        let run_id = started(&store, 1).await;
        let said = Unwritten {
            key: crate::engine::executor::IdempotencyKey {
                run_id: run_id.clone(),
                step_id: "s0000".into(),
                attempt: 1,
            },
            lines: vec![(2, "late".into(), false)],
            dropped: 3,
        };
        // s0000 is still pending: it cannot have finished.
        let refused = store
            .apply_driver_event_logged(&run_id, "s0000", &finished(), 2, None, said)
            .await;
        assert!(
            matches!(refused, Err(EngineError::Refused(_))),
            "{refused:?}"
        );
        let tail = store.step_log().tail(&run_id, "s0000", 10).await.unwrap();
        let texts: Vec<&str> = tail.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["late", crate::engine::steplog::DROPPED_NOTICE]);
        assert_eq!(
            store.step(&run_id, "s0000").await.unwrap().status,
            StepStatus::Pending
        );
    }
}
