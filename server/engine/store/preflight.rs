//! Preflight that gates a start: run again, inside the engine, when a run is submitted and when
//! its start is approved, with the Data Center's stored inventory and the freshest facts the
//! agents reported — whichever page, API route or command asked. The findings are kept with the
//! run (a `run.preflight` event); the run machine refuses the start while an error stands that
//! no approver other than the requester overrode (`machine::gating`).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::queries::RunRecord;
use super::{EngineError, Result, Store};
use crate::engine::machine::gating::{self, GateFinding, Preflight};
use crate::engine::machine::Millis;
use crate::knowledge::inventory::Inventory;

pub(super) fn default_stale_secs() -> Arc<AtomicI64> {
    Arc::new(AtomicI64::new(
        i64::try_from(crate::knowledge::preflight::DEFAULT_FACTS_STALE_SECS).unwrap_or(i64::MAX),
    ))
}

/// The finding when the stored inventory no longer parses: an error (overridable, like any).
fn unparsable(run: &RunRecord, e: impl std::fmt::Display) -> GateFinding {
    GateFinding {
        key: "preflight-inventory".into(),
        rule: "preflight-inventory".into(),
        severity: "error".into(),
        result: "fail".into(),
        server: None,
        message: format!(
            "the stored inventory of `{}` no longer parses, so preflight cannot check it: {e}",
            run.inventory
        ),
    }
}

impl Store {
    /// How old agent facts may be before the gating preflight stops trusting them.
    pub fn set_facts_stale_secs(&self, secs: u64) {
        self.facts_stale_secs
            .store(i64::try_from(secs).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// The run's preflight now: the current inventory of its Data Center, its runbook and
    /// parameters, and the agents' latest facts with their age at `now`.
    pub(super) async fn fresh_preflight(
        &self,
        run: &RunRecord,
        now: Millis,
    ) -> Result<Option<Preflight>> {
        let toml: Option<String> = sqlx::query_scalar(
            "SELECT toml FROM data_centers WHERE name = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(&run.inventory)
        .fetch_optional(&self.pool)
        .await?;
        let Some(toml) = toml else {
            // A plan made without a stored Data Center (`engine run-local`, tests): there is no
            // estate to check, and nothing is recorded. Runs from the pages and the API always
            // name a stored Data Center (the plan is expanded from it), and one is never deleted.
            return Ok(None);
        };
        let inv = match Inventory::from_toml(&toml, &run.inventory) {
            Ok(inv) => inv,
            Err(e) => {
                return Ok(Some(Preflight {
                    checked_at: now,
                    findings: vec![unparsable(run, e)],
                }))
            }
        };
        let facts = super::agents::all_facts(&self.pool)
            .await
            .map_err(|e| EngineError::Invalid(format!("agent facts: {e}")))?;
        let live = super::agents::live_facts_of(
            facts,
            now.div_euclid(1000),
            self.facts_stale_secs.load(Ordering::Relaxed),
        );
        let findings = crate::knowledge::preflight::preflight_live(
            &inv,
            Some(&run.runbook),
            &run.params,
            &live,
        );
        Ok(Some(gating::keep(&findings, now)))
    }
}
