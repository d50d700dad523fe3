//! The allowlist check every action passes before it is journaled or run.
//!
//! Checks are textual and strict: registry keys must sit under an allowlisted prefix (on a key
//! boundary), files under an allowlisted folder with no `.`/`..` segments, tasks, services, logs,
//! sites and installers must be named in the configuration, and free-text arguments may not carry
//! control characters. A refusal names the argument and the rule; nothing has run.

use lockstep_protocol::{Action, ErrorCode, ErrorResponse, ServiceSelector, TextEdit};

use crate::config::AgentConfig;

fn refuse(msg: impl Into<String>) -> ErrorResponse {
    ErrorResponse::new(ErrorCode::NotAllowed, msg)
}

/// The longest registry key accepted, in bytes.
pub const MAX_REGISTRY_KEY_LEN: usize = 512;
/// The most levels a registry key may have (`HKLM` counts as one).
pub const MAX_REGISTRY_KEY_DEPTH: usize = 16;

/// Canonical registry key: `HKLM\` root, backslashes, no empty or dot segments.
pub fn normalize_registry_key(key: &str) -> Result<String, ErrorResponse> {
    // Bounded before anything else looks at it: the guide's keys are under 100 characters and 8
    // levels deep (Windows itself allows 255 characters per name and 512 levels).
    if key.len() > MAX_REGISTRY_KEY_LEN {
        return Err(refuse(format!(
            "registry key of {} bytes is longer than the {MAX_REGISTRY_KEY_LEN} allowed",
            key.len()
        )));
    }
    let depth = key.matches('\\').count() + 1;
    if depth > MAX_REGISTRY_KEY_DEPTH {
        return Err(refuse(format!(
            "registry key with {depth} levels is deeper than the {MAX_REGISTRY_KEY_DEPTH} allowed"
        )));
    }
    let k = key.trim();
    let rest = strip_prefix_ci(k, r"HKEY_LOCAL_MACHINE\")
        .or_else(|| strip_prefix_ci(k, r"HKLM\"))
        .ok_or_else(|| refuse(format!("registry key `{key}` must start with HKLM\\")))?;
    let mut parts = Vec::new();
    for seg in rest.split('\\') {
        if seg.is_empty() || seg == "." || seg == ".." || seg.contains('/') || has_control(seg) {
            return Err(refuse(format!(
                "registry key `{}` has an empty, `.`, `..` or malformed segment",
                key.escape_debug()
            )));
        }
        parts.push(seg);
    }
    Ok(format!(r"HKLM\{}", parts.join("\\")))
}

/// Canonical Windows path: drive letter, backslashes, no empty or dot segments.
pub fn normalize_path(path: &str) -> Result<String, ErrorResponse> {
    let p = path.trim().replace('/', "\\");
    let bytes = p.as_bytes();
    if bytes.len() < 3 || !bytes[0].is_ascii_alphabetic() || bytes[1] != b':' || bytes[2] != b'\\' {
        return Err(refuse(format!(
            "path `{}` must be absolute with a drive letter (e.g. C:\\...)",
            path.escape_debug()
        )));
    }
    let mut parts = vec![format!("{}:", (bytes[0] as char).to_ascii_uppercase())];
    for seg in p[3..].split('\\') {
        if seg.is_empty()
            || seg == "."
            || seg == ".."
            || has_control(seg)
            || seg.contains(['<', '>', '"', '|', '?', '*', ':'])
        {
            return Err(refuse(format!(
                "path `{}` has an empty, `.`, `..` or malformed segment",
                path.escape_debug()
            )));
        }
        parts.push(seg.to_string());
    }
    Ok(parts.join("\\"))
}

/// A bare file name (`DailyMaint.cmd`) resolves in the Data Center folder; anything else must be
/// an absolute path. Both backends and the allowlist use this, so they agree on the file.
pub fn resolve_path(cfg: &AgentConfig, path: &str) -> Result<String, ErrorResponse> {
    let bare = !path.is_empty() && !path.contains(['\\', '/', ':']) && path != "." && path != "..";
    if bare {
        normalize_path(&format!(
            "{}\\{path}",
            cfg.data_center_dir.trim_end_matches('\\')
        ))
    } else {
        normalize_path(path)
    }
}

/// Whether `child` equals `parent` or lies below it (case-insensitive, on a segment boundary).
pub fn is_under(child: &str, parent: &str) -> bool {
    let c = child.to_ascii_lowercase();
    let p = parent.trim_end_matches('\\').to_ascii_lowercase();
    c == p || c.starts_with(&format!("{p}\\"))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // `get`, not indexing: the prefix's length may fall inside a multi-byte character of a
    // hostile key (found by fuzzing: `ߤ!ߤ0` panicked the request handler).
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

fn plain_name(what: &str, s: &str, max: usize) -> Result<(), ErrorResponse> {
    if s.is_empty() || s.len() > max || has_control(s) {
        return Err(refuse(format!(
            "{what} `{}` must be 1 to {max} characters without control characters",
            s.escape_debug()
        )));
    }
    Ok(())
}

fn in_list(what: &str, s: &str, list: &[String]) -> Result<(), ErrorResponse> {
    if list.iter().any(|x| x.eq_ignore_ascii_case(s)) {
        Ok(())
    } else {
        Err(refuse(format!(
            "{what} `{}` is not in the agent's allowlist ({})",
            s.escape_debug(),
            list.join(", ")
        )))
    }
}

fn timeout(secs: u64) -> Result<(), ErrorResponse> {
    if (1..=86_400).contains(&secs) {
        Ok(())
    } else {
        Err(ErrorResponse::new(
            ErrorCode::Malformed,
            format!("timeout_secs must be 1 to 86400, got {secs}"),
        ))
    }
}

fn registry_key(cfg: &AgentConfig, key: &str) -> Result<String, ErrorResponse> {
    let k = normalize_registry_key(key)?;
    for prefix in &cfg.allow.registry_prefixes {
        if let Ok(p) = normalize_registry_key(prefix) {
            if is_under(&k, &p) {
                return Ok(k);
            }
        }
    }
    Err(refuse(format!(
        "registry key `{k}` is not under an allowlisted prefix"
    )))
}

fn file_under_roots(cfg: &AgentConfig, path: &str) -> Result<String, ErrorResponse> {
    let p = resolve_path(cfg, path)?;
    for root in &cfg.allow.file_roots {
        if let Ok(r) = normalize_path(root) {
            if is_under(&p, &r) && p.len() > r.trim_end_matches('\\').len() {
                return Ok(p);
            }
        }
    }
    Err(refuse(format!(
        "path `{p}` is not under an allowlisted folder"
    )))
}

fn services(cfg: &AgentConfig, sel: &ServiceSelector) -> Result<(), ErrorResponse> {
    match sel {
        ServiceSelector::Connected => Ok(()),
        ServiceSelector::Named { names } => {
            if names.is_empty() {
                return Err(ErrorResponse::new(ErrorCode::Malformed, "no service named"));
            }
            let mut all = cfg.connected_services.clone();
            all.extend(cfg.allow.services.iter().cloned());
            for n in names {
                if !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.$".contains(c))
                {
                    return Err(refuse(format!(
                        "service name `{}` is malformed",
                        n.escape_debug()
                    )));
                }
                in_list("service", n, &all)?;
            }
            Ok(())
        }
    }
}

/// A probe reaches only a `host:port` named in `allow.probe_targets` (loopback included: it is
/// refused unless named there), so a compromised orchestrator cannot use the agent to reach
/// services bound to this host or to the network behind it.
fn probe_target(cfg: &AgentConfig, url: &str) -> Result<(), ErrorResponse> {
    let u = reqwest::Url::parse(url)
        .ok()
        .filter(|u| (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some())
        .ok_or_else(|| {
            refuse(format!(
                "probe URL `{}` must be an http(s) URL",
                url.escape_debug()
            ))
        })?;
    let host = u.host_str().unwrap_or_default().trim_end_matches('.');
    let port = u.port_or_known_default().unwrap_or(0);
    let target = format!("{host}:{port}");
    if cfg
        .allow
        .probe_targets
        .iter()
        .any(|t| t.trim_end_matches('.').eq_ignore_ascii_case(&target))
    {
        Ok(())
    } else {
        Err(refuse(format!(
            "probe target `{}` is not in the agent's probe_targets",
            target.escape_debug()
        )))
    }
}

/// The catalog entry of a SQL script: only scripts listed with their SHA-256 may run (the hash
/// is checked against the file on disk right before it runs, in the backend).
pub fn script_in_catalog<'a>(
    cfg: &'a AgentConfig,
    path: &str,
) -> Result<&'a crate::config::HashedFile, ErrorResponse> {
    cfg.allow
        .sql_scripts
        .iter()
        .find(|e| {
            resolve_path(cfg, &e.path)
                .map(|x| x.eq_ignore_ascii_case(path))
                .unwrap_or(false)
        })
        .ok_or_else(|| refuse(format!("SQL script `{path}` is not in the agent's catalog")))
}

/// Checks an action against the configuration. `Ok` means it may be journaled and run.
pub fn check(cfg: &AgentConfig, action: &Action) -> Result<(), ErrorResponse> {
    match action {
        Action::ServicesStatus { services: s } => services(cfg, s),
        Action::ServicesStop {
            services: s,
            timeout_secs,
        }
        | Action::ServicesStart {
            services: s,
            timeout_secs,
        } => {
            timeout(*timeout_secs)?;
            services(cfg, s)
        }
        Action::ServiceSetStartup { service, .. } => services(
            cfg,
            &ServiceSelector::Named {
                names: vec![service.clone()],
            },
        ),
        Action::RegistryGet { key, name } => {
            registry_key(cfg, key)?;
            plain_name("value name", name, 255)
        }
        Action::RegistrySet { key, name, value } => {
            registry_key(cfg, key)?;
            plain_name("value name", name, 255)?;
            if value.len() > 4096 || value.contains('\0') || value.contains(['\r', '\n']) {
                return Err(refuse(
                    "registry value data must be one line of at most 4096 bytes",
                ));
            }
            Ok(())
        }
        Action::RegistryDelete { key, name } => {
            registry_key(cfg, key)?;
            if let Some(n) = name {
                plain_name("value name", n, 255)?;
            }
            Ok(())
        }
        Action::FileReplace { path, edit } => {
            file_under_roots(cfg, path)?;
            match edit {
                TextEdit::OsqlToolsFolder { folder } => {
                    if folder.len() != 3 || !folder.chars().all(|c| c.is_ascii_digit()) {
                        return Err(refuse(format!(
                            "SQL Server tools folder `{}` must be three digits (e.g. 130)",
                            folder.escape_debug()
                        )));
                    }
                    Ok(())
                }
            }
        }
        Action::ScheduledTaskRun { task, timeout_secs } => {
            timeout(*timeout_secs)?;
            in_list("scheduled task", task, &cfg.allow.scheduled_tasks)
        }
        Action::InstallerRun {
            path,
            sha256,
            timeout_secs,
        } => {
            timeout(*timeout_secs)?;
            let p = normalize_path(path)?;
            let entry = cfg
                .allow
                .installers
                .iter()
                .find(|e| {
                    normalize_path(&e.path)
                        .map(|x| x.eq_ignore_ascii_case(&p))
                        .unwrap_or(false)
                })
                .ok_or_else(|| {
                    refuse(format!("installer `{p}` is not in the agent's allowlist"))
                })?;
            if !entry.sha256.eq_ignore_ascii_case(sha256) {
                return Err(refuse(format!(
                    "installer `{p}`: SHA-256 {sha256} does not match the allowlisted {}",
                    entry.sha256
                )));
            }
            Ok(())
        }
        Action::DiskFree { drive } => {
            let b = drive.as_bytes();
            if b.len() == 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
                Ok(())
            } else {
                Err(refuse(format!(
                    "drive `{}` must look like C:",
                    drive.escape_debug()
                )))
            }
        }
        Action::ProductVersion { .. }
        | Action::OsVersion {}
        | Action::BackupSessions {}
        | Action::IisReset {}
        | Action::CertificateList {} => Ok(()),
        Action::EventLogQuery { log, .. } => in_list("event log", log, &cfg.allow.event_logs),
        Action::IisHttpsBindingEnsure {
            site,
            port,
            common_name,
        } => {
            in_list("IIS site", site, &cfg.allow.iis_sites)?;
            if *port == 0 {
                return Err(refuse("port 0 is not a port"));
            }
            if common_name.is_empty()
                || common_name.len() > 253
                || !common_name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.*_".contains(c))
            {
                return Err(refuse(format!(
                    "common name `{}` is not a host name",
                    common_name.escape_debug()
                )));
            }
            Ok(())
        }
        Action::IisBindingList { site } => in_list("IIS site", site, &cfg.allow.iis_sites),
        Action::HttpProbe { url, timeout_secs } => {
            timeout(*timeout_secs)?;
            probe_target(cfg, url)
        }
        Action::SqlScript {
            path,
            database,
            timeout_secs,
        } => {
            timeout(*timeout_secs)?;
            let p = file_under_roots(cfg, path)?;
            if !p.to_ascii_lowercase().ends_with(".sql") {
                return Err(refuse(format!("`{p}` is not a .sql file")));
            }
            script_in_catalog(cfg, &p)?;
            if let Some(db) = database {
                if db.is_empty() || !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(refuse(format!(
                        "database name `{}` is malformed",
                        db.escape_debug()
                    )));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendKind, InstallerEntry};

    fn cfg() -> AgentConfig {
        let mut c = AgentConfig::new(
            "127.0.0.1:1".parse().unwrap(),
            "/tmp/x",
            BackendKind::Simulated,
        );
        c.allow.installers.push(InstallerEntry {
            path: r"D:\Media\Setup.exe".into(),
            sha256: "ab".repeat(32),
            args: vec![],
        });
        c
    }

    fn refused(a: Action) -> String {
        let e = check(&cfg(), &a).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotAllowed, "{}", e.message);
        e.message
    }

    #[test]
    fn registry_changes_under_the_guides_keys_are_allowed_in_any_spelling() {
        for key in [
            r"HKLM\SOFTWARE\Wow6432Node\SupportCenter",
            r"HKEY_LOCAL_MACHINE\SOFTWARE\Connected\WoW6432Node\SupportCenter",
            r"hklm\software\wow6432node\connected\mapi",
            r"HKLM\SOFTWARE\Wow6432Node\Connected\SSWS",
        ] {
            let a = Action::RegistrySet {
                key: key.into(),
                name: "X".into(),
                value: "v".into(),
            };
            assert!(check(&cfg(), &a).is_ok(), "{key}");
        }
    }

    #[test]
    fn registry_keys_outside_the_prefixes_or_climbing_out_are_refused() {
        let m = refused(Action::RegistrySet {
            key: r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run".into(),
            name: "x".into(),
            value: "evil.exe".into(),
        });
        assert!(m.contains("not under an allowlisted prefix"), "{m}");
        refused(Action::RegistryDelete {
            key: r"HKLM\SOFTWARE\Wow6432Node\Connected\MAPI\..\..\..".into(),
            name: None,
        });
        // A sibling that merely shares the prefix text is not under it.
        refused(Action::RegistryDelete {
            key: r"HKLM\SOFTWARE\Wow6432Node\Connected\MAPIX".into(),
            name: None,
        });
        refused(Action::RegistryDelete {
            key: r"HKLM\SOFTWARE\Wow6432Node\Connected".into(),
            name: None,
        });
        refused(Action::RegistryGet {
            key: r"HKCU\Software\Wow6432Node\Outflow".into(),
            name: "a".into(),
        });
    }

    #[test]
    fn file_edits_outside_the_data_center_folder_or_with_traversal_are_refused() {
        let ok = Action::FileReplace {
            path: r"C:\Program Files\Connected\DataCenter\DailyMaint.cmd".into(),
            edit: TextEdit::OsqlToolsFolder {
                folder: "130".into(),
            },
        };
        assert!(check(&cfg(), &ok).is_ok());
        let m = refused(Action::FileReplace {
            path: r"C:\Program Files\Connected\DataCenter\..\..\Windows\win.ini".into(),
            edit: TextEdit::OsqlToolsFolder {
                folder: "130".into(),
            },
        });
        assert!(m.contains(".."), "{m}");
        refused(Action::FileReplace {
            path: r"C:\Windows\System32\drivers\etc\hosts".into(),
            edit: TextEdit::OsqlToolsFolder {
                folder: "130".into(),
            },
        });
        let bare = Action::FileReplace {
            path: "WeeklyMaint.cmd".into(),
            edit: TextEdit::OsqlToolsFolder {
                folder: "130".into(),
            },
        };
        assert!(
            check(&cfg(), &bare).is_ok(),
            "bare names resolve in the Data Center folder"
        );
        assert_eq!(
            resolve_path(&cfg(), "WeeklyMaint.cmd").unwrap(),
            r"C:\Program Files\Connected\DataCenter\WeeklyMaint.cmd"
        );
        refused(Action::FileReplace {
            path: r"DataCenter\DailyMaint.cmd".into(),
            edit: TextEdit::OsqlToolsFolder {
                folder: "130".into(),
            },
        });
        refused(Action::FileReplace {
            path: r"C:\Program Files\Connected\DataCenter\DailyMaint.cmd".into(),
            edit: TextEdit::OsqlToolsFolder {
                folder: r"..\x".into(),
            },
        });
    }

    #[test]
    fn installers_need_both_the_allowlisted_path_and_its_hash() {
        let good = Action::InstallerRun {
            path: r"d:\media\setup.exe".into(),
            sha256: "AB".repeat(32),
            timeout_secs: 60,
        };
        assert!(check(&cfg(), &good).is_ok());
        let m = refused(Action::InstallerRun {
            path: r"D:\Media\Setup.exe".into(),
            sha256: "cd".repeat(32),
            timeout_secs: 60,
        });
        assert!(m.contains("does not match"), "{m}");
        refused(Action::InstallerRun {
            path: r"D:\Media\Other.exe".into(),
            sha256: "ab".repeat(32),
            timeout_secs: 60,
        });
    }

    #[test]
    fn unlisted_tasks_services_sites_and_logs_are_refused() {
        refused(Action::ScheduledTaskRun {
            task: "EvilTask".into(),
            timeout_secs: 10,
        });
        refused(Action::ServicesStop {
            services: ServiceSelector::Named {
                names: vec!["WinDefend".into()],
            },
            timeout_secs: 10,
        });
        refused(Action::IisBindingList {
            site: "Other Site".into(),
        });
        refused(Action::EventLogQuery {
            log: "Security".into(),
            min_level: lockstep_protocol::EventLevel::Warning,
            since: 0,
        });
        refused(Action::HttpProbe {
            url: "file:///etc/passwd".into(),
            timeout_secs: 5,
        });
        refused(Action::SqlScript {
            path: r"C:\Program Files\Connected\DataCenter\DRProcs\x.cmd".into(),
            database: None,
            timeout_secs: 5,
        });
    }

    #[test]
    fn allowed_named_services_pass() {
        let a = Action::ServicesStop {
            services: ServiceSelector::Named {
                names: vec!["w3svc".into(), "BackupServer".into()],
            },
            timeout_secs: 60,
        };
        assert!(check(&cfg(), &a).is_ok());
    }

    #[test]
    fn registry_keys_too_long_or_too_deep_are_refused() {
        let long = format!(r"HKLM\SOFTWARE\{}", "a".repeat(100_000));
        let e = normalize_registry_key(&long).unwrap_err();
        assert!(e.message.contains("longer than"), "{}", e.message);
        let deep = format!(r"HKLM\SOFTWARE{}", r"\a".repeat(20_000));
        let e = normalize_registry_key(&deep).unwrap_err();
        assert!(
            e.message.contains("longer than") || e.message.contains("deeper"),
            "{}",
            e.message
        );
        let deep = format!(r"HKLM\SOFTWARE{}", r"\a".repeat(20));
        let e = normalize_registry_key(&deep).unwrap_err();
        assert!(e.message.contains("deeper than"), "{}", e.message);
        assert!(normalize_registry_key(r"HKLM\SOFTWARE\Wow6432Node\SupportCenter").is_ok());
    }
}
