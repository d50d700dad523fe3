//! The change window's warning: when the forecast finish of a running run passes the window's
//! end, one `run.window_warning` event says so (once per end: an extension that is again too
//! short warns again). The driver asks on its passes; the run page and the attention strip show
//! the warning the event recorded.

use super::queries::load_run;
use super::{Result, Store};
use crate::engine::forecast;
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
        // Along the critical path from now, with the pace so far: the run page's forecast
        // (`engine::forecast`), so the page and the recorded warning agree.
        let steps = self.steps(run_id).await?;
        let forecast = forecast::forecast(&forecast::tasks_of(&steps), now).finish;
        if forecast <= end {
            return Ok(false);
        }
        self.transact(|w| {
            let run = load_run(w.db, run_id)?;
            w.run_transition(&run, &RunEvent::WindowWarning { forecast, end }, now)
        })
        .await?;
        Ok(true)
    }
}
