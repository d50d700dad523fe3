//! The simulated side of manual tasks. A person performs these on a real Data Center (the Setup
//! wizard, an in-place Windows or SQL Server upgrade); on a simulated one, performing the task
//! means changing the simulated host the way the real work would, so that the step's
//! post-condition is checked against something that actually changed. Used by rehearsals
//! (the rehearsal operator performs the task) and by `lockstep demo` (a person claims the task in
//! the browser, and the simulated host does the work).

use lockstep_agent::backend::simulated::SimulatedHost;
use lockstep_simulator::sql::SqlInstance;

use lockstep_protocol::Component;

use crate::knowledge::operation::{Operation, WaitCondition};
use crate::knowledge::plan::{PlannedStep, StepKind};

/// What a Setup that stops half-way did to the Registry database before it stopped (its
/// schema-upgrade scripts had rewritten the DataTransfer nodes), so a restore has something
/// real to put back.
const HALF_RUN_SETUP_SQL: &str = "DELETE FROM Registry.dbo.OutflowServices
INSERT INTO Registry.dbo.OutflowServices (ServerId, Url, secureFlag) VALUES (9999, N'setup-8.11-incomplete', 0)";

/// What performing a manual task changed on the simulated host, in words for the step's note.
/// An automated step handed to a person (e.g. a drain wait without session counters) is
/// confirmed from what the simulated host shows, labelled as the stand-in's confirmation.
/// `sql` is the server's simulated SQL Server, if it has one (a half-run Setup alters it).
pub fn perform(
    host: &SimulatedHost,
    sql: Option<&SqlInstance>,
    step: &PlannedStep,
) -> anyhow::Result<String> {
    if step.kind != StepKind::Manual {
        return confirm_handed_over(host, step);
    }
    let Some(post) = &step.postcondition else {
        return Ok("performed on the simulated Data Center (nothing on the host to change)".into());
    };
    let mut half_run = false;
    let note = host.update(|s| match post {
        Operation::ProductVersion {
            expect,
            component: Some(c @ Component::ManagementApi),
        } => {
            // The Management API has its own installer; Data Center Setup does the rest.
            if s.faults.component_setup_fails.contains(c) {
                let was = s
                    .components
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| "none".into());
                format!(
                    "ran the {} installer on the simulated host: it failed (simulated fault), \
                     the {} stays at {was}",
                    c.label(),
                    c.label()
                )
            } else {
                s.components.insert(*c, expect.clone());
                format!(
                    "ran the {} installer on the simulated host: version {expect} installed",
                    c.label()
                )
            }
        }
        Operation::ProductVersion { expect, .. } if s.faults.setup_fails_midway => {
            s.faults.setup_fails_midway = false;
            half_run = true;
            s.product_version = None;
            s.set_registry(
                r"HKLM\SOFTWARE\Wow6432Node\Connected\DataCenter",
                "Version",
                expect,
            );
            format!("Setup stopped half-way on the simulated host: no version installed, the Version value already reads {expect}")
        }
        Operation::ProductVersion { expect, .. } => {
            // The Setup wizard (the Data Center's, which also upgrades the Web Services
            // applications); a "wrong version after Setup" fault leaves another version.
            let installed = s
                .faults
                .version_after_setup
                .clone()
                .unwrap_or_else(|| expect.clone());
            s.product_version = Some(installed.clone());
            s.set_registry(
                r"HKLM\SOFTWARE\Wow6432Node\Connected\DataCenter",
                "Version",
                &installed,
            );
            // Setup also upgrades the Web Services applications installed here; the Management
            // API has its own installer (its own step).
            for (c, v) in s.components.iter_mut() {
                if *c != Component::ManagementApi {
                    *v = installed.clone();
                }
            }
            format!("ran Setup on the simulated host: version {installed} installed")
        }
        Operation::OsVersion {
            windows,
            sql_server,
        } => {
            let mut done = Vec::new();
            if let Some(w) = windows {
                s.windows = w.clone();
                done.push(format!("Windows Server {w}"));
            }
            if let Some(q) = sql_server {
                s.sql_server = Some(q.clone());
                done.push(format!("SQL Server {q}"));
            }
            format!("upgraded the simulated host to {}", done.join(" and "))
        }
        _ => "performed on the simulated Data Center".to_string(),
    })?;
    if half_run {
        if let Some(sql) = sql.filter(|q| q.database("Registry").is_some()) {
            sql.run_as_setup(HALF_RUN_SETUP_SQL)
                .map_err(|e| anyhow::anyhow!("the half-run Setup could not alter Registry: {e}"))?;
            return Ok(format!(
                "{note}; the Registry database was left half-upgraded"
            ));
        }
    }
    Ok(note)
}

/// The stand-in's confirmation of a step its executor handed to a person, from the simulated
/// host's own state (what a person would see in the DCMC).
fn confirm_handed_over(host: &SimulatedHost, step: &PlannedStep) -> anyhow::Result<String> {
    let s = host.read()?;
    Ok(match &step.operation {
        Operation::Wait {
            condition: WaitCondition::BackupSessionsLow { max, .. },
            ..
        } => {
            let open = s.backup_sessions + s.restore_sessions;
            format!(
                "stand-in for the person watching sessions (no counters for the agent): {open} \
                 session(s) open on the simulated host ({} backups, {} restores), at most {max} \
                 wanted; confirmed",
                s.backup_sessions, s.restore_sessions
            )
        }
        _ => "stand-in confirmed the step handed to a person on the simulated Data Center".into(),
    })
}
