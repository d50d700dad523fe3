//! Simulated scheduled tasks: a run takes the task's configured duration and records its result;
//! a task longer than the timeout fails as still running.

use std::time::Duration;

use lockstep_protocol::{Action, Evidence};

use super::SimulatedBackend;
use crate::backend::{ActionCtx, Failure};
use crate::journal::now_ms;

impl SimulatedBackend {
    pub(super) async fn scheduled_task_run(
        &self,
        action: &Action,
        task: &str,
        timeout_secs: u64,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let started = std::time::Instant::now();
        let duration = self.update(|s| {
            Self::record(s, ctx, action);
            s.scheduled_tasks
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(task))
                .map(|(_, t)| t.duration_ms)
        })?;
        let Some(duration) = duration else {
            return Err(Failure::msg(format!(
                "scheduled task `{task}` does not exist"
            )));
        };
        ctx.log(format!("task {task} running"));
        if duration > timeout_secs * 1000 {
            ctx.pause(Duration::from_secs(timeout_secs)).await?;
            return Err(Failure::msg(format!(
                "task {task} still running after {timeout_secs} s"
            )));
        }
        ctx.pause(Duration::from_millis(duration)).await?;
        let result = self.update(|s| {
            let t = s
                .scheduled_tasks
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(task))
                .map(|(_, t)| t);
            t.map(|t| {
                t.runs += 1;
                t.last_run = Some(now_ms() / 1000);
                t.result
            })
            .unwrap_or(-1)
        })?;
        let ev = Evidence::TaskRun {
            task: task.to_string(),
            last_result: result,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        if result == 0 {
            Ok(ev)
        } else {
            Err(Failure::Failed {
                message: format!("task {task} ended with result {result}"),
                evidence: Some(ev),
            })
        }
    }
}
