//! The change window's warning: when the forecast finish of a running run passes the window's
//! end, one `run.window_warning` event says so (once per end: an extension that is again too
//! short warns again). The driver asks on its passes; the run page and the attention strip show
//! the warning the event recorded.

use sqlx::Row;

use super::queries::load_run;
use super::{Result, Store};
use crate::engine::machine::gating;
use crate::engine::machine::{Millis, RunEvent, RunStatus};

impl Store {
    /// Records the forecast-overrun warning for `run_id` if it is due and not yet recorded.
    /// Returns whether it recorded one.
    pub async fn watch_window(&self, run_id: &str, now: Millis) -> Result<bool> {
        let run = self.run(run_id).await?;
        let Some(end) = gating::window_end(&run.state, run.window_end) else {
            return Ok(false);
        };
        if !matches!(run.status, RunStatus::Running | RunStatus::Paused)
            || run.state.window_warned == Some(end)
            || gating::scheduled(run.status, run.window_start, now)
        {
            return Ok(false);
        }
        // The plan's remaining estimates and the pace so far, in one pass over the steps.
        let row = sqlx::query(
            "SELECT
               COALESCE(SUM(CASE WHEN status NOT IN ('succeeded', 'skipped', 'cancelled')
                   THEN json_extract(spec, '$.estimate_secs') END), 0),
               COALESCE(SUM(CASE WHEN status = 'succeeded' AND json_extract(state, '$.dispatched_at') IS NOT NULL
                   THEN MAX(updated_at - json_extract(state, '$.dispatched_at'), 0) END), 0),
               COALESCE(SUM(CASE WHEN status = 'succeeded' AND json_extract(state, '$.dispatched_at') IS NOT NULL
                   THEN json_extract(spec, '$.estimate_secs') * 1000 END), 0)
             FROM steps WHERE run_id = ? AND undo_of IS NULL",
        )
        .bind(run_id)
        .fetch_one(&self.pool)
        .await?;
        let forecast = gating::forecast_finish(now, row.get(0), row.get(1), row.get(2));
        if forecast <= end {
            return Ok(false);
        }
        let mut w = self.begin().await?;
        let run = load_run(&mut w.tx, run_id).await?;
        w.run_transition(&run, &RunEvent::WindowWarning { forecast, end }, now)
            .await?;
        self.commit(w).await?;
        Ok(true)
    }
}
