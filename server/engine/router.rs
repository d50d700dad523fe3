//! Chooses the executor for a step by its kind: agent steps to the agent client, SQL steps to the
//! SQL executor, probes to the probe runner. Tests route every kind to the journaling executor.

use std::collections::HashMap;
use std::sync::Arc;

use super::executor::Executor;
use crate::knowledge::plan::StepKind;

#[derive(Clone, Default)]
pub struct Router {
    by_kind: HashMap<StepKind, Arc<dyn Executor>>,
    /// Used for kinds without their own executor (and for post-conditions of manual steps).
    fallback: Option<Arc<dyn Executor>>,
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Every kind goes to `executor`.
    pub fn all(executor: Arc<dyn Executor>) -> Router {
        Router {
            by_kind: HashMap::new(),
            fallback: Some(executor),
        }
    }

    pub fn route(mut self, kind: StepKind, executor: Arc<dyn Executor>) -> Router {
        self.by_kind.insert(kind, executor);
        self
    }

    pub fn fallback(mut self, executor: Arc<dyn Executor>) -> Router {
        self.fallback = Some(executor);
        self
    }

    pub fn for_kind(&self, kind: StepKind) -> Option<Arc<dyn Executor>> {
        self.by_kind.get(&kind).or(self.fallback.as_ref()).cloned()
    }
}
