//! What the simulated host reports about itself: disks, versions, backup sessions (which drain a
//! little with every query, as sessions end during a real stop) and event log entries.

use lockstep_protocol::{Component, EventLevel, Evidence};

use super::SimulatedBackend;
use crate::backend::Failure;

impl SimulatedBackend {
    pub(super) fn disk_free(&self, drive: &str) -> Result<Evidence, Failure> {
        self.inspect(
            |s| match s.disks.iter().find(|(k, _)| k.eq_ignore_ascii_case(drive)) {
                Some((k, d)) => Ok(Evidence::DiskFree {
                    drive: k.clone(),
                    free_mb: d.free_mb,
                    total_mb: d.total_mb,
                }),
                None => Err(Failure::msg(format!("drive {drive} does not exist"))),
            },
        )?
    }

    pub(super) fn component_version(
        &self,
        component: Option<Component>,
    ) -> Result<Evidence, Failure> {
        // The Data Center's own record is `product_version`; every other component
        // keeps its own (absent: not installed on this host).
        let version = self.inspect(|s| match component {
            None | Some(Component::DataCenter) => s.product_version.clone(),
            Some(c) => s.components.get(&c).cloned(),
        })?;
        Ok(Evidence::ProductVersion { version, component })
    }

    pub(super) fn os_version(&self) -> Result<Evidence, Failure> {
        self.inspect(|s| Evidence::OsVersion {
            windows: s.windows.clone(),
            sql_server: s.sql_server.clone(),
        })
    }

    pub(super) fn backup_sessions(&self) -> Result<Evidence, Failure> {
        if !self.inspect(|s| s.session_counters)? {
            return Err(Failure::Failed {
                message: "backup-session counters unavailable on this server: a person must watch the sessions in the DCMC".into(),
                evidence: Some(Evidence::SessionCountersUnavailable {
                    reason: "the simulated server publishes no backup-session counters".into(),
                }),
            });
        }
        self.update(|s| {
            if !s.session_counters {
                return Err(Failure::msg(
                    "backup-session counters are unavailable on this host",
                ));
            }
            let ev = Evidence::BackupSessions {
                backups: s.backup_sessions,
                restores: s.restore_sessions,
            };
            s.backup_sessions = s.backup_sessions.saturating_sub(s.sessions_drain_per_query);
            Ok(ev)
        })?
    }

    pub(super) fn event_log_query(
        &self,
        log: &str,
        min_level: EventLevel,
        since: i64,
    ) -> Result<Evidence, Failure> {
        let events = self.inspect(|s| {
            s.events
                .iter()
                .filter(|e| {
                    e.log.eq_ignore_ascii_case(log)
                        && e.record.time >= since
                        && e.record.level <= min_level
                })
                .map(|e| e.record.clone())
                .collect()
        })?;
        Ok(Evidence::Events {
            log: log.to_string(),
            since,
            events,
        })
    }
}
