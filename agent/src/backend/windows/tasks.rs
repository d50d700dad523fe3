//! Scheduled tasks on Windows: `schtasks /run`, then polling `schtasks /query` until the task has
//! a new last run time and is no longer running (its last result is no longer 0x41301, see
//! [`parse::schtasks_info`]).

use std::time::{Duration, Instant};

use lockstep_protocol::Evidence;

use super::{commands, parse, WindowsBackend};
use crate::backend::{ActionCtx, Failure};

impl WindowsBackend {
    async fn task_info(&self, task: &str, ctx: &ActionCtx) -> Result<parse::TaskInfo, Failure> {
        let out = self.ok(&commands::schtasks_query(task), ctx).await?;
        parse::schtasks_info(&out).map_err(Failure::msg)
    }

    pub(super) async fn scheduled_task_run(
        &self,
        task: &str,
        timeout_secs: u64,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let before = self.task_info(task, ctx).await?;
        let started = Instant::now();
        self.ok(&commands::schtasks_run(task), ctx).await?;
        ctx.log(format!("task {task} started"));
        let deadline = started + Duration::from_secs(timeout_secs);
        loop {
            ctx.pause(Duration::from_secs(5)).await?;
            let now = self.task_info(task, ctx).await?;
            if !now.running() && now.last_run_time != before.last_run_time {
                let ev = Evidence::TaskRun {
                    task: task.to_string(),
                    last_result: now.last_result,
                    duration_ms: started.elapsed().as_millis() as u64,
                };
                return if now.last_result == 0 {
                    Ok(ev)
                } else {
                    Err(Failure::Failed {
                        message: format!("task {task} ended with result {}", now.last_result),
                        evidence: Some(ev),
                    })
                };
            }
            if Instant::now() >= deadline {
                return Err(Failure::msg(format!(
                    "task {task} still {} after {timeout_secs} s",
                    now.status
                )));
            }
        }
    }
}
