//! Pure pieces of the agent executor: which registry keys a redirect probes (SEED-NOTES 1, 2),
//! which spelling to use, how the redirected value is computed, and how read-only conditions
//! are judged from the agent's evidence.

use lockstep_protocol::evidence::{RegistryValue, ServiceRunState};
use lockstep_protocol::{EventLevel, Evidence};

use crate::knowledge::inventory::Version;
use crate::knowledge::operation::RedirectValue;

/// The keys that may hold the value, in the spellings the guide uses, and the value's name.
pub fn redirect_candidates(value: RedirectValue) -> (Vec<&'static str>, &'static str) {
    match value {
        RedirectValue::RegistryConnect => (
            vec![
                r"HKLM\SOFTWARE\Wow6432Node\SupportCenter",
                r"HKLM\SOFTWARE\Connected\WoW6432Node\SupportCenter",
                r"HKLM\SOFTWARE\Wow6432Node\Connected\SupportCenter",
            ],
            "RegistryConnect",
        ),
        // "Prefered" with one r: the product's spelling (SEED-NOTES 2).
        RedirectValue::DbPreferedRegistry => (
            vec![
                r"HKLM\SOFTWARE\Wow6432Node\Outflow",
                r"HKLM\SOFTWARE\Wow6432Node\Connected\Outflow",
            ],
            "DB_PreferedRegistry",
        ),
    }
}

/// The one probed key that holds the value, or a message naming what was found.
pub fn choose_spelling<'a>(
    probes: &'a [RegistryValue],
    name: &str,
) -> Result<&'a RegistryValue, String> {
    let present: Vec<&RegistryValue> = probes.iter().filter(|p| p.value.is_some()).collect();
    match present.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "{name} exists under none of {}; check the Web Services installation on this server",
            probes.iter().map(|p| p.key.as_str()).collect::<Vec<_>>().join(", ")
        )),
        many => Err(format!(
            "{name} exists under several keys ({}); refusing to guess which one the applications read",
            many.iter().map(|p| p.key.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The redirected value: `SERVER=` replaced in a RegistryConnect connection string, or the whole
/// server name for DB_PreferedRegistry.
pub fn redirected(value: RedirectValue, old: &str, to_server: &str) -> Result<String, String> {
    match value {
        RedirectValue::DbPreferedRegistry => Ok(to_server.to_string()),
        RedirectValue::RegistryConnect => {
            let mut out = Vec::new();
            let mut found = 0;
            for part in old.split(';') {
                let (k, _) = part.split_once('=').unwrap_or((part, ""));
                if k.trim().eq_ignore_ascii_case("SERVER") {
                    found += 1;
                    out.push(format!("{}={to_server}", k));
                } else {
                    out.push(part.to_string());
                }
            }
            match found {
                1 => Ok(out.join(";")),
                0 => Err(format!(
                    "RegistryConnect `{old}` has no SERVER= part to redirect"
                )),
                _ => Err(format!("RegistryConnect `{old}` has several SERVER= parts")),
            }
        }
    }
}

/// Whether every service is running; the message names those that are not.
pub fn all_running(ev: &Evidence) -> Result<(), String> {
    let Evidence::Services { services, .. } = ev else {
        return Err("the agent returned no service states".into());
    };
    let bad: Vec<String> = services
        .iter()
        .filter(|s| s.state != ServiceRunState::Running)
        .map(|s| format!("{} is {:?}", s.name, s.state))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join(", "))
    }
}

/// Installed version equals `expect`, compared numerically (8.11 = 8.11.0.0).
pub fn version_is(ev: &Evidence, expect: &str) -> Result<(), String> {
    let Evidence::ProductVersion { version, component } = ev else {
        return Err("the agent returned no product version".into());
    };
    let want: Version = expect.parse()?;
    // Name the component whose record was read, so a Management API left behind is not
    // mistaken for the Data Center (and the other way round).
    let whose = component
        .map(|c| format!("{} ", c.label()))
        .unwrap_or_default();
    match version {
        None if whose.is_empty() => Err("no Connected Backup version is installed".into()),
        None => Err(format!("no {whose}is installed on this server")),
        Some(v) => match v.parse::<Version>() {
            Ok(got) if got.cmp(&want) == std::cmp::Ordering::Equal => Ok(()),
            Ok(_) => Err(format!(
                "installed {whose}version is {v}, expected {expect}"
            )),
            Err(e) => Err(format!("the installed {whose}version reads `{v}`: {e}")),
        },
    }
}

/// `found` names the same release as `expected`, or a later service pack of it ("2016 SP1"
/// satisfies "2016"; "2012 R2" does not satisfy "2012").
pub fn release_matches(found: &str, expected: &str) -> bool {
    found == expected
        || found
            .strip_prefix(expected)
            .is_some_and(|rest| rest.starts_with(" SP"))
}

pub fn os_is(ev: &Evidence, windows: Option<&str>, sql: Option<&str>) -> Result<(), String> {
    let Evidence::OsVersion {
        windows: w,
        sql_server: s,
    } = ev
    else {
        return Err("the agent returned no OS version".into());
    };
    if let Some(want) = windows {
        if !release_matches(w, want) {
            return Err(format!("Windows Server {w} is installed, expected {want}"));
        }
    }
    if let Some(want) = sql {
        match s {
            Some(got) if release_matches(got, want) => {}
            Some(got) => return Err(format!("SQL Server {got} is installed, expected {want}")),
            None => return Err(format!("SQL Server is not installed, expected {want}")),
        }
    }
    Ok(())
}

/// No warning, error or critical event.
pub fn events_clean(ev: &Evidence) -> Result<(), String> {
    let Evidence::Events { events, log, .. } = ev else {
        return Err("the agent returned no events".into());
    };
    let bad: Vec<String> = events
        .iter()
        .filter(|e| e.level <= EventLevel::Warning)
        .take(5)
        .map(|e| format!("{:?} {} {}: {}", e.level, e.source, e.event_id, e.message))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{log} log has warnings or errors: {}",
            bad.join(" | ")
        ))
    }
}

pub fn sessions_at_most(ev: &Evidence, max: u32) -> Result<u32, String> {
    let Evidence::BackupSessions { backups, restores } = ev else {
        return Err("the agent returned no session count".into());
    };
    let n = backups + restores;
    if n <= max {
        Ok(n)
    } else {
        Err(format!("{n} sessions open (at most {max} wanted)"))
    }
}

/// Whether a failed action's evidence says the backup-session counters cannot be read here
/// (the drain wait then hands over to a person instead of failing).
pub fn counters_unavailable(evidence: &serde_json::Value) -> Option<String> {
    let inner = evidence.get("evidence")?;
    match serde_json::from_value::<Evidence>(inner.clone()).ok()? {
        Evidence::SessionCountersUnavailable { reason } => Some(reason),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(key: &str, value: Option<&str>) -> RegistryValue {
        RegistryValue {
            key: key.into(),
            name: "RegistryConnect".into(),
            key_exists: value.is_some(),
            value: value.map(String::from),
        }
    }

    #[test]
    fn the_one_spelling_that_exists_is_used_and_none_or_several_fail_clearly() {
        let (keys, name) = redirect_candidates(RedirectValue::RegistryConnect);
        assert_eq!(keys.len(), 3);
        let probes = vec![
            probe(keys[0], None),
            probe(keys[1], Some("SERVER=A")),
            probe(keys[2], None),
        ];
        assert_eq!(choose_spelling(&probes, name).unwrap().key, keys[1]);
        let none = vec![
            probe(keys[0], None),
            probe(keys[1], None),
            probe(keys[2], None),
        ];
        assert!(choose_spelling(&none, name)
            .unwrap_err()
            .contains("none of"));
        let two = vec![
            probe(keys[0], Some("x")),
            probe(keys[1], None),
            probe(keys[2], Some("y")),
        ];
        let e = choose_spelling(&two, name).unwrap_err();
        assert!(
            e.contains("several") && e.contains(keys[0]) && e.contains(keys[2]),
            "{e}"
        );
        assert_eq!(
            redirect_candidates(RedirectValue::DbPreferedRegistry).1,
            "DB_PreferedRegistry"
        );
    }

    #[test]
    fn a_connection_string_is_redirected_by_its_server_part_only() {
        let old = "DRIVER={SQL Server Native Client 11.0};SERVER=SERVER1;DATABASE=Registry;Trusted_Connection=Yes";
        assert_eq!(
            redirected(RedirectValue::RegistryConnect, old, "SERVER2").unwrap(),
            "DRIVER={SQL Server Native Client 11.0};SERVER=SERVER2;DATABASE=Registry;Trusted_Connection=Yes"
        );
        assert!(redirected(
            RedirectValue::RegistryConnect,
            "DRIVER=x;DATABASE=Registry",
            "S2"
        )
        .is_err());
        assert_eq!(
            redirected(RedirectValue::DbPreferedRegistry, "SERVER1", "SERVER2").unwrap(),
            "SERVER2"
        );
    }

    #[test]
    fn versions_compare_numerically_and_releases_by_word() {
        let ev = Evidence::ProductVersion {
            version: Some("8.11.0".into()),
            component: None,
        };
        assert!(version_is(&ev, "8.11").is_ok());
        assert!(version_is(&ev, "8.8.6")
            .unwrap_err()
            .contains("expected 8.8.6"));
        let mapi = Evidence::ProductVersion {
            version: Some("8.8.6".into()),
            component: Some(lockstep_protocol::Component::ManagementApi),
        };
        let e = version_is(&mapi, "8.11").unwrap_err();
        assert!(e.contains("Management API version is 8.8.6"), "{e}");
        assert!(release_matches("2016 SP1", "2016"));
        assert!(!release_matches("2012 R2", "2012"));
        assert!(release_matches("2012 R2", "2012 R2"));
    }
}
