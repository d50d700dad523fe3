//! The journaling executor: an in-process [`Executor`] that records every action it runs, for
//! tests, the benchmark and the crash test. With a journal file, each entry is appended and
//! fsynced, so a process killed at any point leaves a journal that tells what really ran.
//!
//! Like a real agent it is idempotent per key (a repeated key returns the first result), and an
//! action interrupted by a crash (started, never finished) reports `Unknown` when asked.
//! Tests script per-step behaviour: fail, lose the result, hang, refuse or accept cancels.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support (the `testkit` feature): a broken journal must stop the test that uses it"
)]

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::executor::{ActionStatus, Dispatch, Executor, IdempotencyKey, Outcome};

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// `run/step/attempt`.
    pub key: String,
    pub step_id: String,
    pub attempt: u32,
    /// `start` (the side effect begins), `done`, `check`, `undo`, `cancel`.
    pub phase: String,
    #[serde(default)]
    pub outcome: Option<Outcome>,
    #[serde(default)]
    pub before: Option<serde_json::Value>,
}

/// What the executor does for one attempt of a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Behavior {
    Succeed,
    Fail(String),
    /// The action ran but its result is lost; `status` reports it as unknown too.
    LoseResult(String),
    /// Never answers (the engine's timeout decides).
    Hang,
}

#[derive(Default)]
struct State {
    entries: Vec<JournalEntry>,
    /// Finished actions by key.
    done: HashMap<String, Outcome>,
    /// Keys whose action started (the side effect happened or was under way).
    started: HashMap<String, ()>,
    /// Keys whose action is under way in this process (lost on a crash: then `Unknown`).
    running: HashSet<String>,
    /// Remaining scripted behaviours per step id (front first).
    script: HashMap<String, Vec<Behavior>>,
    /// Remaining scripted check answers per step id (front first); default: holds.
    checks: HashMap<String, Vec<bool>>,
}

pub struct JournalExecutor {
    state: Mutex<State>,
    file: Option<(PathBuf, Mutex<std::fs::File>)>,
    /// How long the side effect takes (between `start` and `done`).
    effect: Duration,
    /// Whether `cancel` succeeds for an action that has not finished.
    cancellable: bool,
}

impl JournalExecutor {
    pub fn in_memory() -> JournalExecutor {
        JournalExecutor {
            state: Mutex::new(State::default()),
            file: None,
            effect: Duration::ZERO,
            cancellable: false,
        }
    }

    /// Opens (or creates) a journal file and loads what it already records.
    pub fn open(path: &Path) -> std::io::Result<JournalExecutor> {
        let mut state = State::default();
        for entry in read_journal(path)? {
            state.absorb(entry);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(JournalExecutor {
            state: Mutex::new(state),
            file: Some((path.to_path_buf(), Mutex::new(file))),
            effect: Duration::ZERO,
            cancellable: false,
        })
    }

    pub fn with_effect(mut self, effect: Duration) -> Self {
        self.effect = effect;
        self
    }

    pub fn with_cancellable(mut self, cancellable: bool) -> Self {
        self.cancellable = cancellable;
        self
    }

    /// Behaviours for the next attempts of `step_id`, in order; afterwards it succeeds.
    pub fn script(&self, step_id: &str, behaviours: Vec<Behavior>) {
        self.lock().script.insert(step_id.to_string(), behaviours);
    }

    /// Answers for the next checks of `step_id`, in order; afterwards the condition holds.
    pub fn script_checks(&self, step_id: &str, answers: Vec<bool>) {
        self.lock().checks.insert(step_id.to_string(), answers);
    }

    pub fn entries(&self) -> Vec<JournalEntry> {
        self.lock().entries.clone()
    }

    /// Entries of one phase, in the order they happened.
    pub fn phase(&self, phase: &str) -> Vec<JournalEntry> {
        self.entries()
            .into_iter()
            .filter(|e| e.phase == phase)
            .collect()
    }

    /// How many times the side effect of `step_id` started (all attempts).
    pub fn executions(&self, step_id: &str) -> usize {
        self.phase("start")
            .iter()
            .filter(|e| e.step_id == step_id)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, entry: JournalEntry) {
        if let Some((path, file)) = &self.file {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            let line = serde_json::to_string(&entry).unwrap_or_default();
            // The journal is the test's ground truth: losing a line would hide a double run.
            if let Err(e) = writeln!(f, "{line}").and_then(|_| f.sync_data()) {
                panic!("cannot append to the journal {}: {e}", path.display());
            }
        }
        self.lock().absorb(entry);
    }

    fn entry(key: &IdempotencyKey, phase: &str, outcome: Option<Outcome>) -> JournalEntry {
        JournalEntry {
            key: key.as_string(),
            step_id: key.step_id.clone(),
            attempt: key.attempt,
            phase: phase.to_string(),
            outcome,
            before: None,
        }
    }

    async fn run_action(
        &self,
        dispatch: &Dispatch,
        phase: &str,
        before: Option<&serde_json::Value>,
    ) -> Outcome {
        let key = dispatch.key.as_string();
        let behaviour = {
            let mut st = self.lock();
            if let Some(outcome) = st.done.get(&key) {
                return outcome.clone();
            }
            if st.started.contains_key(&key) {
                return Outcome::Unknown {
                    reason: "the action was interrupted before it finished".into(),
                };
            }
            match st.script.get_mut(&dispatch.key.step_id) {
                Some(list) if !list.is_empty() => list.remove(0),
                _ => Behavior::Succeed,
            }
        };
        let mut start = Self::entry(&dispatch.key, "start", None);
        start.before = before.cloned();
        self.record(start);
        self.lock().running.insert(key.clone());
        let _running = Running(self, key.clone());
        if !self.effect.is_zero() {
            tokio::time::sleep(self.effect).await;
        }
        let outcome = match behaviour {
            Behavior::Succeed => Outcome::Succeeded {
                evidence: serde_json::json!({ "journal": key, "phase": phase, "before": { "value": format!("before:{}", dispatch.key.step_id) } }),
            },
            Behavior::Fail(message) => Outcome::Failed {
                message,
                evidence: serde_json::json!({ "journal": key }),
            },
            Behavior::LoseResult(reason) => {
                // The side effect happened; nobody learns how it ended.
                return Outcome::Unknown { reason };
            }
            Behavior::Hang => std::future::pending().await,
        };
        self.record(Self::entry(&dispatch.key, "done", Some(outcome.clone())));
        outcome
    }
}

/// Marks an action as no longer under way when its future ends, however it ends.
struct Running<'a>(&'a JournalExecutor, String);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.lock().running.remove(&self.1);
    }
}

impl State {
    fn absorb(&mut self, entry: JournalEntry) {
        match entry.phase.as_str() {
            "start" => {
                self.started.insert(entry.key.clone(), ());
            }
            "done" => {
                if let Some(o) = &entry.outcome {
                    self.done.insert(entry.key.clone(), o.clone());
                }
            }
            _ => {}
        }
        self.entries.push(entry);
    }
}

/// Reads a journal file (missing file: empty). A torn last line (killed mid-write) is ignored.
pub fn read_journal(path: &Path) -> std::io::Result<Vec<JournalEntry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[async_trait::async_trait]
impl Executor for JournalExecutor {
    async fn execute(&self, dispatch: &Dispatch) -> Outcome {
        self.run_action(dispatch, "execute", None).await
    }

    async fn status(&self, key: &IdempotencyKey, _host: Option<&str>) -> ActionStatus {
        let st = self.lock();
        let k = key.as_string();
        if let Some(outcome) = st.done.get(&k) {
            ActionStatus::Finished {
                outcome: outcome.clone(),
            }
        } else if st.running.contains(&k) {
            ActionStatus::Running
        } else if st.started.contains_key(&k) {
            ActionStatus::Unknown {
                reason: "the journal shows the action started but not how it ended".into(),
            }
        } else {
            ActionStatus::NotFound
        }
    }

    async fn cancel(&self, key: &IdempotencyKey, _host: Option<&str>) -> bool {
        let finished = self.lock().done.contains_key(&key.as_string());
        let cancelled = self.cancellable && !finished;
        self.record(Self::entry(
            key,
            "cancel",
            cancelled.then(|| Outcome::Failed {
                message: "cancelled".into(),
                evidence: serde_json::Value::Null,
            }),
        ));
        if cancelled {
            let outcome = Outcome::Failed {
                message: "cancelled".into(),
                evidence: serde_json::Value::Null,
            };
            self.lock().done.insert(key.as_string(), outcome);
        }
        cancelled
    }

    async fn check(&self, dispatch: &Dispatch) -> Outcome {
        let holds = {
            let mut st = self.lock();
            match st.checks.get_mut(&dispatch.key.step_id) {
                Some(list) if !list.is_empty() => list.remove(0),
                _ => true,
            }
        };
        self.record(Self::entry(&dispatch.key, "check", None));
        if holds {
            Outcome::Succeeded {
                evidence: serde_json::json!({ "holds": true }),
            }
        } else {
            Outcome::Failed {
                message: "the condition does not hold".into(),
                evidence: serde_json::json!({ "holds": false }),
            }
        }
    }

    async fn undo(&self, dispatch: &Dispatch, before: &serde_json::Value) -> Outcome {
        self.run_action(dispatch, "undo", Some(before)).await
    }
}
