//! Step log lines in words: what was done on which server and what came back, read from the
//! answer's evidence ("Stopped BackupServer, IndexServer in 2.1 s", "Set HKLM\…\Foo = 1 (was 0)",
//! "CHECKDB on Registry: 0 allocation, 0 consistency errors", "Probe https://…/ManagementService.svc
//! → 200, version 8.11"). The executors write these with [`crate::engine::steplog::line`] and the
//! technical line behind each (action ids, raw server messages) with
//! [`crate::engine::steplog::detail`], so a person reads what happened and an engineer can still
//! see what was sent. Pure functions, one per family of executor.

use std::time::Duration;

use lockstep_protocol::evidence::{Evidence, ServiceInfo, ServiceRunState};
use lockstep_protocol::{Action, ServiceSelector};
use serde_json::Value;

use crate::engine::executor::Outcome;
use crate::knowledge::operation::ProbeOperation;

/// "2.1 s", "850 ms", "3 min 05 s".
pub fn took(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {:02} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

fn state_words(s: ServiceRunState) -> &'static str {
    match s {
        ServiceRunState::Stopped => "Stopped",
        ServiceRunState::StartPending => "Starting",
        ServiceRunState::StopPending => "Stopping",
        ServiceRunState::Running => "Running",
        ServiceRunState::ContinuePending => "Resuming",
        ServiceRunState::PausePending => "Pausing",
        ServiceRunState::Paused => "Paused",
        ServiceRunState::NotInstalled => "not installed",
    }
}

/// "BackupServer, IndexServer (were Running)", "BackupServer (was Running), IndexServer (was
/// Stopped)", or the names alone when the states before are not known.
fn names(services: &[ServiceInfo], before: &[ServiceInfo]) -> String {
    let was = |name: &str| {
        before
            .iter()
            .find(|b| b.name.eq_ignore_ascii_case(name))
            .map(|b| state_words(b.state))
    };
    let all: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    let states: Vec<Option<&str>> = all.iter().map(|n| was(n)).collect();
    match states.first() {
        Some(Some(first)) if states.iter().all(|s| *s == Some(*first)) => format!(
            "{} ({} {first})",
            all.join(", "),
            if all.len() == 1 { "was" } else { "were" }
        ),
        _ => all
            .iter()
            .zip(states)
            .map(|(n, s)| match s {
                Some(s) => format!("{n} (was {s})"),
                None => n.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// What an action sets out to do, for a failure ("Stopping the Connected services failed: …").
fn doing(action: &Action) -> String {
    let set = |s: &ServiceSelector| match s {
        ServiceSelector::Connected => "the Connected services".to_string(),
        ServiceSelector::Named { names } => names.join(", "),
    };
    match action {
        Action::ServicesStatus { services } => format!("Reading the state of {}", set(services)),
        Action::ServicesStop { services, .. } => format!("Stopping {}", set(services)),
        Action::ServicesStart { services, .. } => format!("Starting {}", set(services)),
        Action::ServiceSetStartup { service, .. } => format!("Setting how {service} starts"),
        Action::RegistryGet { key, name } => format!("Reading {key}\\{name}"),
        Action::RegistrySet { key, name, .. } => format!("Setting {key}\\{name}"),
        Action::RegistryDelete { key, .. } => format!("Deleting {key}"),
        Action::FileReplace { path, .. } => format!("Editing {path}"),
        Action::ScheduledTaskRun { task, .. } => format!("Running the scheduled task {task}"),
        Action::InstallerRun { path, .. } => format!("Running the installer {path}"),
        Action::DiskFree { drive } => format!("Reading the free space on {drive}"),
        Action::ProductVersion { .. } => "Reading the installed version".into(),
        Action::OsVersion {} => "Reading the Windows and SQL Server releases".into(),
        Action::BackupSessions {} => "Counting backup sessions".into(),
        Action::EventLogQuery { log, .. } => format!("Reading the {log} event log"),
        Action::IisReset {} => "Restarting IIS".into(),
        Action::IisHttpsBindingEnsure { site, port, .. } => {
            format!("Binding HTTPS on port {port} of {site}")
        }
        Action::IisBindingList { site } => format!("Listing the bindings of {site}"),
        Action::CertificateList {} => "Listing the certificates".into(),
        Action::HttpProbe { url, .. } => format!("Probing {url}"),
        Action::SqlScript { path, .. } => format!("Running the script {path}"),
    }
}

/// A failed, refused or unanswered action, in words.
pub fn agent_failure(action: &Action, why: &str) -> String {
    format!("{} failed: {why}", doing(action))
}

/// A succeeded action, from its evidence, with how long it took.
pub fn agent_success(action: &Action, evidence: &Evidence, d: Duration) -> String {
    let t = took(d);
    match evidence {
        Evidence::Services {
            services,
            before,
            absent,
            notes,
        } => {
            let mut out = match action {
                Action::ServicesStop { .. } => {
                    format!("Stopped {} in {t}", names(services, before))
                }
                Action::ServicesStart { .. } => {
                    format!("Started {} in {t}", names(services, before))
                }
                _ => services
                    .iter()
                    .map(|s| format!("{} {}", s.name, state_words(s.state)))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            if services.is_empty() {
                out = "No service of the group is installed here".into();
            }
            if !absent.is_empty() {
                out.push_str(&format!("; not installed here: {}", absent.join(", ")));
            }
            for n in notes {
                out.push_str(&format!("; {n}"));
            }
            out
        }
        Evidence::StartupChanged {
            service,
            previous,
            now,
        } => match previous {
            Some(p) if p == now => format!("{service} already starts {}", now.as_str()),
            Some(p) => format!(
                "Set {service} to start {} (was {})",
                now.as_str(),
                p.as_str()
            ),
            None => format!("Set {service} to start {}", now.as_str()),
        },
        Evidence::Registry { value } => match (&value.value, value.key_exists) {
            (Some(v), _) => format!("Read {}\\{} = {v}", value.key, value.name),
            (None, true) => format!("{}\\{} is not set", value.key, value.name),
            (None, false) => format!("{} does not exist", value.key),
        },
        Evidence::RegistryChanged {
            key,
            name,
            previous,
            now,
        } => match previous {
            Some(p) if p == now => format!("{key}\\{name} was already {now}"),
            Some(p) => format!("Set {key}\\{name} = {now} (was {p})"),
            None => format!("Set {key}\\{name} = {now} (was not set)"),
        },
        Evidence::RegistryDeleted {
            key,
            name,
            previous,
            existed,
        } => match (existed, name) {
            (false, _) => format!("{key} was already gone"),
            (true, Some(n)) => format!("Deleted {key}\\{n}"),
            (true, None) => format!("Deleted {key} ({} values kept for undo)", previous.len()),
        },
        Evidence::FileEdited {
            path,
            backup,
            replacements,
            ..
        } => match (replacements, backup) {
            (0, _) => format!("{path} needed no change"),
            (n, Some(b)) => format!("Edited {path}: {n} replaced (original kept as {b})"),
            (n, None) => format!("Edited {path}: {n} replaced"),
        },
        Evidence::TaskRun {
            task,
            last_result,
            duration_ms,
        } => format!(
            "Ran the scheduled task {task}: result {last_result} in {}",
            took(Duration::from_millis(*duration_ms))
        ),
        Evidence::Installed {
            path,
            exit_code,
            product_version,
            ..
        } => match product_version {
            Some(v) => format!("Ran {path}: exit {exit_code}, version now {v}, in {t}"),
            None => format!("Ran {path}: exit {exit_code}, in {t}"),
        },
        Evidence::DiskFree {
            drive,
            free_mb,
            total_mb,
        } => format!("{drive} has {free_mb} MB free of {total_mb} MB"),
        Evidence::ProductVersion { version, component } => {
            let whose = component.map_or("Data Center", |c| c.label());
            match version {
                Some(v) => format!("{whose} version {v} is installed"),
                None => format!("{whose} is not installed"),
            }
        }
        Evidence::OsVersion {
            windows,
            sql_server,
        } => match sql_server {
            Some(s) => format!("Windows Server {windows}, SQL Server {s}"),
            None => format!("Windows Server {windows}, no SQL Server"),
        },
        Evidence::BackupSessions { backups, restores } => {
            format!("{backups} backup and {restores} restore sessions open")
        }
        Evidence::SessionCountersUnavailable { reason } => {
            format!("Backup-session counters unavailable: {reason}")
        }
        Evidence::Events { log, events, .. } => match events.first() {
            None => format!("No warnings or errors in the {log} event log since the run began"),
            Some(e) => format!(
                "{} warnings or errors in the {log} event log; first: {} {}: {}",
                events.len(),
                e.source,
                e.event_id,
                e.message
            ),
        },
        Evidence::IisReset { .. } => format!("Restarted IIS in {t}"),
        Evidence::Bindings {
            site,
            bindings,
            before,
            changed,
        } => {
            let list = bindings
                .iter()
                .map(|b| format!("{} {}", b.protocol, b.binding_information))
                .collect::<Vec<_>>()
                .join(", ");
            match (before, changed) {
                (Some(_), true) => format!("Bound HTTPS on {site}: now {list}"),
                (Some(_), false) => format!("{site} already had the HTTPS binding: {list}"),
                (None, _) => format!("{site} has {} bindings: {list}", bindings.len()),
            }
        }
        Evidence::Certificates { certificates } => {
            format!("{} certificates in LocalMachine\\My", certificates.len())
        }
        Evidence::HttpProbe { url, status, .. } => format!("GET {url} → {status}"),
        Evidence::SqlScript {
            path, exit_code, ..
        } => format!("Ran {path} with sqlcmd: exit {exit_code}, in {t}"),
    }
}

/// A SQL Server message in words, when it is one a person needs (CHECKDB's verdict, a backup's
/// or restore's summary, an error); `None` for the rest, which stay technical lines.
pub fn sql_message(kind: &str, code: Option<u64>, text: &str) -> Option<String> {
    if kind == "error" {
        return Some(match code {
            Some(c) => format!("SQL Server error {c}: {text}"),
            None => format!("SQL Server error: {text}"),
        });
    }
    if let Some(rest) = text.strip_prefix("CHECKDB found ") {
        // "CHECKDB found 0 allocation errors and 0 consistency errors in database 'Registry'."
        let nums: Vec<&str> = rest
            .split_whitespace()
            .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
            .collect();
        let db = rest
            .split('\'')
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| "the database".into());
        if let [alloc, consistency, ..] = nums.as_slice() {
            return Some(format!(
                "CHECKDB on {db}: {alloc} allocation, {consistency} consistency errors"
            ));
        }
    }
    for (prefix, verb) in [
        ("BACKUP DATABASE successfully processed ", "Backed up"),
        ("RESTORE DATABASE successfully processed ", "Restored"),
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            // "… processed 450 pages in 0.120 seconds (29.296 MB/sec)."
            return Some(format!("{verb}: {}", rest.trim_end_matches('.')));
        }
    }
    if text.starts_with("Statistics for all tables have been updated") {
        return Some("sp_updatestats: statistics updated for every table".into());
    }
    None
}

/// A probe's answer in words: the URL, the status code and what the page showed.
pub fn probe(op: &ProbeOperation, outcome: &Outcome) -> String {
    let url = match op {
        ProbeOperation::SupportCenter { url, .. }
        | ProbeOperation::DataTransferStatus { url }
        | ProbeOperation::ManagementService { url } => url,
    };
    let status = |ev: &Value| {
        ev.get("status")
            .and_then(Value::as_u64)
            .map(|s| format!(" → {s}"))
            .unwrap_or_default()
    };
    let found = |ev: &Value| -> String {
        if let Some(v) = ev.get("found_version").and_then(Value::as_str) {
            return format!(", version {v}");
        }
        if let Some(r) = ev.get("xml_root").and_then(Value::as_str) {
            return format!(", well-formed XML <{r}>");
        }
        if let Some(s) = ev.get("first_sentence").and_then(Value::as_str) {
            return format!(", “{s}”");
        }
        String::new()
    };
    match outcome {
        Outcome::Succeeded { evidence } => {
            format!("Probe {url}{}{}", status(evidence), found(evidence))
        }
        Outcome::Failed { message, evidence } => {
            format!(
                "Probe {url}{}{}: {message}",
                status(evidence),
                found(evidence)
            )
        }
        Outcome::Unknown { reason } => format!("Probe {url}: no answer: {reason}"),
        Outcome::NeedsPerson { reason, .. } => format!("Probe {url}: handed to a person: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockstep_protocol::evidence::RegistryValue;
    use lockstep_protocol::StartupType;
    use serde_json::json;

    fn svc(name: &str, state: ServiceRunState) -> ServiceInfo {
        ServiceInfo {
            name: name.into(),
            state,
            startup: None,
        }
    }

    #[test]
    fn services_say_what_was_stopped_started_or_found_and_how_long_it_took() {
        let stop = Action::ServicesStop {
            services: ServiceSelector::Connected,
            timeout_secs: 60,
        };
        let ev = Evidence::Services {
            services: vec![
                svc("BackupServer", ServiceRunState::Stopped),
                svc("IndexServer", ServiceRunState::Stopped),
            ],
            before: vec![],
            absent: vec!["DCAlerter".into()],
            notes: vec![],
        };
        assert_eq!(
            agent_success(&stop, &ev, Duration::from_millis(2100)),
            "Stopped BackupServer, IndexServer in 2.1 s; not installed here: DCAlerter",
            "an older agent says nothing of before"
        );
        let one = Evidence::Services {
            services: vec![svc("BackupServer", ServiceRunState::Stopped)],
            before: vec![svc("BackupServer", ServiceRunState::Running)],
            absent: vec![],
            notes: vec![],
        };
        assert_eq!(
            agent_success(&stop, &one, Duration::from_millis(2100)),
            "Stopped BackupServer (was Running) in 2.1 s"
        );
        let two = Evidence::Services {
            services: vec![
                svc("BackupServer", ServiceRunState::Stopped),
                svc("IndexServer", ServiceRunState::Stopped),
            ],
            before: vec![
                svc("BackupServer", ServiceRunState::Running),
                svc("IndexServer", ServiceRunState::Stopped),
            ],
            absent: vec![],
            notes: vec![],
        };
        assert_eq!(
            agent_success(&stop, &two, Duration::from_millis(900)),
            "Stopped BackupServer (was Running), IndexServer (was Stopped) in 900 ms"
        );
        let status = Action::ServicesStatus {
            services: ServiceSelector::Connected,
        };
        let ev = Evidence::Services {
            services: vec![svc("BackupServer", ServiceRunState::Running)],
            before: vec![],
            absent: vec![],
            notes: vec![],
        };
        assert_eq!(
            agent_success(&status, &ev, Duration::from_millis(40)),
            "BackupServer Running"
        );
        assert_eq!(
            agent_failure(&stop, "BackupServer (StopPending) after 60 s"),
            "Stopping the Connected services failed: BackupServer (StopPending) after 60 s"
        );
    }

    #[test]
    fn registry_changes_show_the_value_before_and_after() {
        let set = Action::RegistrySet {
            key: r"HKLM\SOFTWARE\Connected\Foo".into(),
            name: "Bar".into(),
            value: "1".into(),
        };
        let changed = |previous: Option<&str>| Evidence::RegistryChanged {
            key: r"HKLM\SOFTWARE\Connected\Foo".into(),
            name: "Bar".into(),
            previous: previous.map(str::to_string),
            now: "1".into(),
        };
        let d = Duration::from_millis(5);
        assert_eq!(
            agent_success(&set, &changed(Some("0")), d),
            r"Set HKLM\SOFTWARE\Connected\Foo\Bar = 1 (was 0)"
        );
        assert_eq!(
            agent_success(&set, &changed(None), d),
            r"Set HKLM\SOFTWARE\Connected\Foo\Bar = 1 (was not set)"
        );
        assert_eq!(
            agent_success(&set, &changed(Some("1")), d),
            r"HKLM\SOFTWARE\Connected\Foo\Bar was already 1"
        );
        let get = Action::RegistryGet {
            key: r"HKLM\X".into(),
            name: "Y".into(),
        };
        let read = Evidence::Registry {
            value: RegistryValue {
                key: r"HKLM\X".into(),
                name: "Y".into(),
                key_exists: false,
                value: None,
            },
        };
        assert_eq!(agent_success(&get, &read, d), r"HKLM\X does not exist");
        let startup = Evidence::StartupChanged {
            service: "DCAlerter".into(),
            previous: Some(StartupType::Disabled),
            now: StartupType::Automatic,
        };
        assert_eq!(
            agent_success(&get, &startup, d),
            "Set DCAlerter to start automatic (was disabled)"
        );
    }

    #[test]
    fn checkdb_and_backups_are_worded_and_chatter_stays_technical() {
        assert_eq!(
            sql_message(
                "info",
                Some(8989),
                "CHECKDB found 0 allocation errors and 0 consistency errors in database 'Registry'."
            )
            .as_deref(),
            Some("CHECKDB on Registry: 0 allocation, 0 consistency errors")
        );
        assert_eq!(
            sql_message(
                "info",
                Some(3014),
                "BACKUP DATABASE successfully processed 450 pages in 0.120 seconds (29.296 MB/sec)."
            )
            .as_deref(),
            Some("Backed up: 450 pages in 0.120 seconds (29.296 MB/sec)")
        );
        assert_eq!(
            sql_message("info", Some(2536), "DBCC results for 'Registry'."),
            None
        );
        assert_eq!(
            sql_message(
                "error",
                Some(8928),
                "Object ID 5: page could not be processed."
            )
            .as_deref(),
            Some("SQL Server error 8928: Object ID 5: page could not be processed.")
        );
    }

    #[test]
    fn probes_say_the_status_and_what_the_page_showed() {
        let op = ProbeOperation::ManagementService {
            url: "https://nwweb1:443/ManagementAPI/ManagementService.svc".into(),
        };
        let ok = Outcome::Succeeded {
            evidence: json!({ "status": 200, "first_sentence": "You have created a service." }),
        };
        assert_eq!(
            probe(&op, &ok),
            "Probe https://nwweb1:443/ManagementAPI/ManagementService.svc → 200, “You have created a service.”"
        );
        let sc = ProbeOperation::SupportCenter {
            url: "https://nwweb1/supportcenter".into(),
            expect_version: "8.11".into(),
        };
        let wrong = Outcome::Failed {
            message: "the page shows version 8.8.6, not 8.11".into(),
            evidence: json!({ "status": 200, "found_version": "8.8.6" }),
        };
        assert_eq!(
            probe(&sc, &wrong),
            "Probe https://nwweb1/supportcenter → 200, version 8.8.6: the page shows version 8.8.6, not 8.11"
        );
        let ok = Outcome::Succeeded {
            evidence: json!({ "status": 200, "found_version": "8.11" }),
        };
        assert_eq!(
            probe(&sc, &ok),
            "Probe https://nwweb1/supportcenter → 200, version 8.11"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(took(Duration::from_millis(850)), "850 ms");
        assert_eq!(took(Duration::from_millis(2100)), "2.1 s");
        assert_eq!(took(Duration::from_secs(185)), "3 min 05 s");
    }
}
