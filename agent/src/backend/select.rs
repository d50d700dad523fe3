//! Which services of the Connected group an action acts on: the ones installed on this server,
//! in the configured order (the defaults follow the guide's list, SEED-NOTES "What is not
//! public"), so that a site whose service set differs from the guessed default is neither
//! failed nor waited on for a service it does not have. Both backends call this with the states
//! they read, so the agent's configuration stays the one authority on what "Connected" means.
//!
//! A DCAlerter whose startup type is disabled is left alone when services start (and when they
//! are checked running), with a note: the guide says a DCAlerter that is not enabled gives an
//! error when started, which may be ignored.

use lockstep_protocol::evidence::{ServiceInfo, ServiceRunState};
use lockstep_protocol::StartupType;

/// The service the guide allows to be left stopped when it is not enabled.
pub const DCALERTER: &str = "DCAlerter";

/// What a Connected-group action acts on, and what it leaves out and why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Installed services to act on, in the configured order.
    pub act: Vec<String>,
    /// Configured services that are not installed here.
    pub absent: Vec<String>,
    /// One sentence per service left alone.
    pub notes: Vec<String>,
}

/// Chooses from `found` (every configured Connected service as read on the host, in the
/// configured order). `starting` is true for a start or a running check, false for a stop.
pub fn connected(found: &[ServiceInfo], starting: bool) -> Selection {
    let mut sel = Selection::default();
    for s in found {
        if s.state == ServiceRunState::NotInstalled {
            sel.absent.push(s.name.clone());
            continue;
        }
        let disabled = s.startup == Some(StartupType::Disabled);
        let alerter = s.name.eq_ignore_ascii_case(DCALERTER);
        // Stopping a disabled, stopped DCAlerter does nothing; starting one fails by design.
        let leave = alerter && disabled && (starting || s.state == ServiceRunState::Stopped);
        if leave {
            sel.notes.push(format!(
                "{} is disabled (startup type disabled) and was left alone: the guide says a \
                 DCAlerter that is not enabled may be ignored",
                s.name
            ));
            continue;
        }
        sel.act.push(s.name.clone());
    }
    sel
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, state: ServiceRunState, startup: Option<StartupType>) -> ServiceInfo {
        ServiceInfo {
            name: name.into(),
            state,
            startup,
        }
    }

    #[test]
    fn installed_services_are_chosen_in_order_and_missing_ones_listed_as_absent() {
        let found = [
            svc(
                "BackupServer",
                ServiceRunState::Running,
                Some(StartupType::Automatic),
            ),
            svc("PoolServer", ServiceRunState::NotInstalled, None),
            svc(
                "IndexServer",
                ServiceRunState::Stopped,
                Some(StartupType::Manual),
            ),
        ];
        let s = connected(&found, false);
        assert_eq!(s.act, ["BackupServer", "IndexServer"]);
        assert_eq!(s.absent, ["PoolServer"]);
        assert!(s.notes.is_empty());
    }

    #[test]
    fn a_disabled_dcalerter_is_left_alone_with_a_note_when_starting() {
        let found = [
            svc(
                "BackupServer",
                ServiceRunState::Stopped,
                Some(StartupType::Automatic),
            ),
            svc(
                "DCAlerter",
                ServiceRunState::Stopped,
                Some(StartupType::Disabled),
            ),
        ];
        let s = connected(&found, true);
        assert_eq!(s.act, ["BackupServer"]);
        assert_eq!(s.notes.len(), 1);
        assert!(
            s.notes[0].contains("DCAlerter is disabled"),
            "{:?}",
            s.notes
        );
        // Stopped and disabled: nothing to stop either.
        assert_eq!(connected(&found, false).act, ["BackupServer"]);
    }

    #[test]
    fn an_enabled_dcalerter_and_other_disabled_services_are_still_acted_on() {
        let found = [
            svc(
                "DCAlerter",
                ServiceRunState::Stopped,
                Some(StartupType::Automatic),
            ),
            svc(
                "Compactor",
                ServiceRunState::Stopped,
                Some(StartupType::Disabled),
            ),
        ];
        assert_eq!(connected(&found, true).act, ["DCAlerter", "Compactor"]);
        // A disabled DCAlerter that somehow runs is still stopped.
        let running = [svc(
            "DCAlerter",
            ServiceRunState::Running,
            Some(StartupType::Disabled),
        )];
        assert_eq!(connected(&running, false).act, ["DCAlerter"]);
    }
}
