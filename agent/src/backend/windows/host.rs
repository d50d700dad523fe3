//! What the host reports about itself: free disk space, installed versions, backup sessions and
//! event log entries — each read by a constant PowerShell script whose inputs travel in the
//! environment, and parsed from JSON.

use lockstep_protocol::{Component, EventLevel, Evidence};

use super::{commands, parse, WindowsBackend};
use crate::backend::{ActionCtx, Failure};

impl WindowsBackend {
    /// The Data Center's version, from its registry record.
    pub(super) async fn product_version(&self, ctx: &ActionCtx) -> Result<Option<String>, Failure> {
        let (k, v) = (
            self.config.product_version_key.clone(),
            self.config.product_version_value.clone(),
        );
        Ok(self.reg_get(&k, &v, ctx).await?.value)
    }

    pub(super) async fn disk_free(
        &self,
        drive: &str,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let out = self
            .powershell(
                commands::PS_DISK_FREE,
                &[("LOCKSTEP_DRIVE", &format!("{drive}\\"))],
                ctx,
            )
            .await?;
        let (free_mb, total_mb) = parse::disk_free(&out).map_err(Failure::msg)?;
        Ok(Evidence::DiskFree {
            drive: drive.to_string(),
            free_mb,
            total_mb,
        })
    }

    /// A component's version: the Data Center's from the registry, any other from the installed
    /// programs list, matched by the pattern the agent configuration gives for it.
    pub(super) async fn component_version(
        &self,
        component: Option<Component>,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let version = match component {
            None | Some(Component::DataCenter) => self.product_version(ctx).await?,
            Some(c) => {
                let Some(pattern) = self.config.component_programs.get(&c) else {
                    return Err(Failure::msg(format!(
                        "no component_programs entry for the {} in the agent configuration",
                        c.label()
                    )));
                };
                let out = self
                    .powershell(
                        commands::PS_PROGRAM_VERSION,
                        &[("LOCKSTEP_PROGRAM", pattern)],
                        ctx,
                    )
                    .await?;
                parse::program_version(&out, pattern).map_err(Failure::msg)?
            }
        };
        Ok(Evidence::ProductVersion { version, component })
    }

    pub(super) async fn os_version(&self, ctx: &ActionCtx) -> Result<Evidence, Failure> {
        let out = self.powershell(commands::PS_OS_VERSION, &[], ctx).await?;
        let (windows, sql_server) = parse::os_version(&out).map_err(Failure::msg)?;
        Ok(Evidence::OsVersion {
            windows,
            sql_server,
        })
    }

    pub(super) async fn backup_sessions(&self, ctx: &ActionCtx) -> Result<Evidence, Failure> {
        if self.config.backup_session_counters.is_empty() {
            let reason = "no backup_session_counters configured for this agent; the Data Center does not publish a documented session count";
            return Err(Failure::Failed {
                message: format!("backup-session counters unavailable: {reason}"),
                evidence: Some(Evidence::SessionCountersUnavailable {
                    reason: reason.into(),
                }),
            });
        }
        let joined = self.config.backup_session_counters.join(";");
        // A configured counter the server does not publish (Get-Counter fails) is as
        // unavailable as none configured: a person watches the sessions instead.
        let out = self
            .powershell(
                commands::PS_COUNTERS,
                &[("LOCKSTEP_COUNTERS", &joined)],
                ctx,
            )
            .await
            .map_err(|f| match f {
                Failure::Failed { message, .. } => Failure::Failed {
                    message: format!("backup-session counters unavailable: {message}"),
                    evidence: Some(Evidence::SessionCountersUnavailable { reason: message }),
                },
                other => other,
            })?;
        Ok(Evidence::BackupSessions {
            backups: parse::counters_sum(&out).map_err(Failure::msg)?,
            restores: 0,
        })
    }

    pub(super) async fn event_log_query(
        &self,
        log: &str,
        min_level: EventLevel,
        since: i64,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let (s, l) = (since.to_string(), min_level.number().to_string());
        let out = self
            .powershell(
                commands::PS_EVENTS,
                &[
                    ("LOCKSTEP_LOG", log),
                    ("LOCKSTEP_SINCE", &s),
                    ("LOCKSTEP_MAX_LEVEL", &l),
                ],
                ctx,
            )
            .await?;
        Ok(Evidence::Events {
            log: log.to_string(),
            since,
            events: parse::events(&out).map_err(Failure::msg)?,
        })
    }
}
