//! Parsers for the outputs of the commands in [`super::commands`], tested against samples of an
//! English-language Windows Server, and of a German one wherever a translated word could appear.
//!
//! Absence and success are never decided from a translated sentence: a missing service by sc's
//! error number, a missing registry key by its parent's listing ([`reg_subkey_listed`]), a
//! running task by its result number and its fields by CSV column, an `iisreset` by its exit
//! status; registry values are read from `reg export` files ([`super::regfile`]). sc's field
//! labels (`STATE`, `START_TYPE`) are read as printed by an English server.

use lockstep_protocol::evidence::{Binding, CertificateInfo, EventRecord, ServiceRunState};
use lockstep_protocol::{EventLevel, StartupType};
use serde::Deserialize;

/// `sc query NAME` → the service state. Error 1060 (the service does not exist) means not
/// installed.
pub fn sc_state(out: &str) -> Result<ServiceRunState, String> {
    if sc_error(out) == Some(SC_NOT_INSTALLED) {
        return Ok(ServiceRunState::NotInstalled);
    }
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("STATE"))
        .ok_or_else(|| format!("no STATE line in sc query output: {}", first_line(out)))?;
    let code = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| format!("unreadable STATE line `{}`", line.trim()))?;
    Ok(match code {
        1 => ServiceRunState::Stopped,
        2 => ServiceRunState::StartPending,
        3 => ServiceRunState::StopPending,
        4 => ServiceRunState::Running,
        5 => ServiceRunState::ContinuePending,
        6 => ServiceRunState::PausePending,
        7 => ServiceRunState::Paused,
        n => return Err(format!("unknown service state {n}")),
    })
}

/// ERROR_SERVICE_DOES_NOT_EXIST: sc's exit code, and the number in its error line.
pub const SC_NOT_INSTALLED: u32 = 1060;

/// The error number of sc's `[SC] Function FAILED 1060:` line. The word before the number is
/// translated (`FAILED`, `FEHLER`, `ÉCHEC`), so only the number is read.
fn sc_error(out: &str) -> Option<u32> {
    out.lines()
        .map(str::trim)
        .find(|l| l.starts_with("[SC]"))?
        .strip_suffix(':')?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// `sc qc NAME` → the start type (`2 AUTO_START (DELAYED)` is delayed automatic).
pub fn sc_start_type(out: &str) -> Result<StartupType, String> {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("START_TYPE"))
        .ok_or_else(|| format!("no START_TYPE line in sc qc output: {}", first_line(out)))?;
    let rest = line.split_once(':').map(|x| x.1).unwrap_or("");
    let code = rest
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<u32>().ok());
    match code {
        Some(2) if rest.contains("DELAYED") => Ok(StartupType::DelayedAutomatic),
        Some(2) => Ok(StartupType::Automatic),
        Some(3) => Ok(StartupType::Manual),
        Some(4) => Ok(StartupType::Disabled),
        _ => Err(format!("unreadable START_TYPE line `{}`", line.trim())),
    }
}

/// One value line of `reg query`: `    Name    REG_SZ    data`.
fn reg_value_line(line: &str) -> Option<(String, String, String)> {
    let body = line.strip_prefix("    ")?;
    let pos = body.find("    REG_")?;
    let name = body[..pos].to_string();
    let rest = &body[pos + 4..];
    let (ty, data) = match rest.find("    ") {
        Some(p) => (&rest[..p], &rest[p + 4..]),
        None => (rest.trim_end(), ""),
    };
    Some((
        name,
        ty.to_string(),
        data.trim_end_matches(['\r']).to_string(),
    ))
}

/// `reg query KEY /v NAME` → the value's data (string types only).
pub fn reg_value(out: &str, name: &str) -> Result<Option<String>, String> {
    for line in out.lines() {
        if let Some((n, ty, data)) = reg_value_line(line) {
            if n.eq_ignore_ascii_case(name) {
                return match ty.as_str() {
                    "REG_SZ" | "REG_EXPAND_SZ" => Ok(Some(data)),
                    other => Err(format!("value {n} is {other}, not a string")),
                };
            }
        }
    }
    Ok(None)
}

/// `reg query KEY` → every value directly in the key (subkeys are listed as key lines, skipped).
pub fn reg_values(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(reg_value_line)
        .map(|(n, _, d)| (n, d))
        .collect()
}

/// Whether `reg query PARENT` lists `child` (`HKLM\…`) among its subkeys. Subkeys are the
/// unindented lines naming a full key; the layout and the key names are the same in every
/// Windows language (only the default value's `(Default)`/`(Standard)` label and reg's
/// messages are translated, and neither is read here), so this decides whether a key exists
/// without reading any sentence.
pub fn reg_subkey_listed(out: &str, child: &str) -> bool {
    out.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with("HKEY_"))
        .any(|l| super::regfile::same_key(l, child))
}

/// `schtasks /Query /TN T /FO CSV /V /NH` → (status, last result, last run time text).
///
/// The CSV columns come in the same order in every Windows language (only the header, left out
/// with `/NH`, and the status words are translated), so fields are read by position; whether the
/// task is still running is its last result 0x41301 (SCHED_S_TASK_RUNNING), a number, not the
/// status word, which is kept for messages only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub status: String,
    pub last_result: i64,
    pub last_run_time: String,
}

/// SCHED_S_TASK_RUNNING: the last result of a task while it runs.
pub const TASK_RUNNING: i64 = 0x41301;

impl TaskInfo {
    pub fn running(&self) -> bool {
        self.last_result == TASK_RUNNING
    }
}

/// Columns of `/V` CSV: HostName, TaskName, Next Run Time, Status, Logon Mode, Last Run Time,
/// Last Result, ...
const STATUS: usize = 3;
const LAST_RUN_TIME: usize = 5;
const LAST_RESULT: usize = 6;

pub fn schtasks_info(out: &str) -> Result<TaskInfo, String> {
    // A task with several triggers has one row per trigger; the task's own fields repeat.
    let row = out
        .lines()
        .map(csv_row)
        .find(|r| r.len() > LAST_RESULT)
        .ok_or_else(|| format!("no task row in schtasks output: {}", first_line(out)))?;
    let last = row[LAST_RESULT].trim();
    Ok(TaskInfo {
        status: row[STATUS].trim().to_string(),
        last_result: last
            .parse()
            .map_err(|_| format!("Last Result `{last}` is not a number"))?,
        last_run_time: row[LAST_RUN_TIME].trim().to_string(),
    })
}

/// One line of schtasks' CSV: every field quoted, `""` inside a field is one quote.
fn csv_row(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut chars = line.trim().chars().peekable();
    while chars.peek() == Some(&'"') {
        chars.next();
        let mut field = String::new();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    break;
                }
            } else {
                field.push(c);
            }
        }
        fields.push(field);
        if chars.next() != Some(',') {
            break;
        }
    }
    fields
}

#[derive(Deserialize)]
struct Disk {
    free: u64,
    total: u64,
}

/// [`super::commands::PS_DISK_FREE`] → (free MB, total MB).
pub fn disk_free(out: &str) -> Result<(u64, u64), String> {
    let d: Disk = serde_json::from_str(out.trim()).map_err(|e| format!("disk output: {e}"))?;
    Ok((d.free / (1024 * 1024), d.total / (1024 * 1024)))
}

#[derive(Deserialize)]
struct Os {
    caption: String,
    sql_version: Option<String>,
    sql_sp: Option<u32>,
}

/// "Microsoft Windows Server 2012 R2 Standard" → "2012 R2".
pub fn windows_release(caption: &str) -> Option<String> {
    let after = caption.split("Windows Server").nth(1)?.trim();
    let mut words = after.split_whitespace();
    let year = words.next()?.to_string();
    Some(match words.next() {
        Some("R2") => format!("{year} R2"),
        _ => year,
    })
}

/// SQL Server `Setup\Version` (and SP level) → the release name the inventory uses.
pub fn sql_release(version: &str, sp: Option<u32>) -> Option<String> {
    let mut parts = version.split('.');
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next()?.parse().ok()?;
    let base = match (major, minor) {
        (10, m) if m >= 50 => "2008 R2",
        (10, _) => "2008",
        (11, _) => "2012",
        (12, _) => "2014",
        (13, _) => "2016",
        (14, _) => "2017",
        (15, _) => "2019",
        _ => return None,
    };
    Some(match sp {
        Some(n) if n > 0 => format!("{base} SP{n}"),
        _ => base.to_string(),
    })
}

/// [`super::commands::PS_OS_VERSION`] → (Windows release, SQL Server release).
pub fn os_version(out: &str) -> Result<(String, Option<String>), String> {
    let os: Os = serde_json::from_str(out.trim()).map_err(|e| format!("OS output: {e}"))?;
    let windows = windows_release(&os.caption)
        .ok_or_else(|| format!("`{}` is not a Windows Server caption", os.caption))?;
    let sql = match os.sql_version {
        Some(v) => Some(
            sql_release(&v, os.sql_sp).ok_or_else(|| format!("unknown SQL Server version {v}"))?,
        ),
        None => None,
    };
    Ok((windows, sql))
}

/// PowerShell writes nothing for an empty array and an object for a one-element one.
fn json_list<T: for<'de> Deserialize<'de>>(out: &str, what: &str) -> Result<Vec<T>, String> {
    let t = out.trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    if t.starts_with('[') {
        serde_json::from_str(t).map_err(|e| format!("{what} output: {e}"))
    } else {
        serde_json::from_str(t)
            .map(|x| vec![x])
            .map_err(|e| format!("{what} output: {e}"))
    }
}

#[derive(Deserialize)]
struct Event {
    time: i64,
    level: u8,
    source: String,
    id: u32,
    message: String,
}

pub fn events(out: &str) -> Result<Vec<EventRecord>, String> {
    json_list::<Event>(out, "event log")?
        .into_iter()
        .map(|e| {
            Ok(EventRecord {
                time: e.time,
                level: EventLevel::from_number(e.level)
                    .ok_or_else(|| format!("unknown event level {}", e.level))?,
                source: e.source,
                event_id: e.id,
                message: e.message,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct RawBinding {
    protocol: String,
    binding_information: String,
    certificate_hash: Option<String>,
}

pub fn bindings(out: &str) -> Result<Vec<Binding>, String> {
    Ok(json_list::<RawBinding>(out, "bindings")?
        .into_iter()
        .map(|b| Binding {
            protocol: b.protocol,
            binding_information: b.binding_information,
            certificate_thumbprint: b.certificate_hash.filter(|h| !h.is_empty()),
        })
        .collect())
}

#[derive(Deserialize)]
struct RawCert {
    thumbprint: String,
    subject: String,
    issuer: String,
    not_after: i64,
}

pub fn certificates(out: &str) -> Result<Vec<CertificateInfo>, String> {
    Ok(json_list::<RawCert>(out, "certificates")?
        .into_iter()
        .map(|c| CertificateInfo {
            thumbprint: c.thumbprint,
            subject: c.subject,
            issuer: c.issuer,
            not_after: c.not_after,
        })
        .collect())
}

#[derive(Deserialize)]
struct Sample {
    #[allow(dead_code)]
    path: String,
    value: f64,
}

/// Sum of the counters' cooked values, rounded.
pub fn counters_sum(out: &str) -> Result<u32, String> {
    let s = json_list::<Sample>(out, "counters")?;
    Ok(s.iter().map(|x| x.value).sum::<f64>().round().max(0.0) as u32)
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(empty)")
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SC_QUERY_RUNNING: &str = "\r\nSERVICE_NAME: W3SVC \r\n        TYPE               : 20  WIN32_SHARE_PROCESS  \r\n        STATE              : 4  RUNNING \r\n                                (STOPPABLE, PAUSABLE, ACCEPTS_SHUTDOWN)\r\n        WIN32_EXIT_CODE    : 0  (0x0)\r\n        SERVICE_EXIT_CODE  : 0  (0x0)\r\n        CHECKPOINT         : 0x0\r\n        WAIT_HINT          : 0x0\r\n";
    const SC_QUERY_STOP_PENDING: &str = "\r\nSERVICE_NAME: BackupServer \r\n        TYPE               : 10  WIN32_OWN_PROCESS  \r\n        STATE              : 3  STOP_PENDING \r\n                                (NOT_STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)\r\n        WIN32_EXIT_CODE    : 0  (0x0)\r\n        SERVICE_EXIT_CODE  : 0  (0x0)\r\n        CHECKPOINT         : 0x1\r\n        WAIT_HINT          : 0x7530\r\n";
    const SC_QUERY_MISSING: &str = "[SC] EnumQueryServicesStatus:OpenService FAILED 1060:\r\n\r\nThe specified service does not exist as an installed service.\r\n\r\n";
    const SC_QUERY_MISSING_DE: &str = "[SC] EnumQueryServicesStatus:OpenService FEHLER 1060:\r\n\r\nDer angegebene Dienst ist kein installierter Dienst.\r\n\r\n";
    const SC_QUERY_DENIED_DE: &str = "[SC] OpenService FEHLER 5:\r\n\r\nZugriff verweigert\r\n\r\n";
    const SC_QC_DELAYED: &str = "[SC] QueryServiceConfig SUCCESS\r\n\r\nSERVICE_NAME: PoolServer\r\n        TYPE               : 10  WIN32_OWN_PROCESS \r\n        START_TYPE         : 2   AUTO_START  (DELAYED)\r\n        ERROR_CONTROL      : 1   NORMAL\r\n        BINARY_PATH_NAME   : \"C:\\Program Files\\Connected\\DataCenter\\PoolServer.exe\"\r\n        LOAD_ORDER_GROUP   : \r\n        TAG                : 0\r\n        DISPLAY_NAME       : PoolServer\r\n        DEPENDENCIES       : \r\n        SERVICE_START_NAME : CONTOSO\\svc-connected\r\n";
    const SC_QC_DEMAND: &str = "[SC] QueryServiceConfig SUCCESS\r\n\r\nSERVICE_NAME: dctomcat\r\n        TYPE               : 10  WIN32_OWN_PROCESS \r\n        START_TYPE         : 3   DEMAND_START\r\n        ERROR_CONTROL      : 1   NORMAL\r\n";
    const REG_QUERY_VALUE: &str = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Wow6432Node\\SupportCenter\r\n    RegistryConnect    REG_SZ    DRIVER={SQL Server Native Client 11.0};SERVER=SERVER1;DATABASE=Registry;Trusted_Connection=Yes\r\n\r\n";
    const REG_QUERY_KEY: &str = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Wow6432Node\\Connected\\MAPI\r\n    PublicServerName    REG_SZ    https://www.example.com\r\n    Empty Value    REG_SZ    \r\n    Port    REG_DWORD    0x1bb\r\n\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Wow6432Node\\Connected\\MAPI\\Sub\r\n";
    /// `reg query HKLM\SOFTWARE\Wow6432Node` on an English and on a German Windows Server:
    /// the same subkey lines, a translated default-value line.
    const REG_QUERY_PARENT_EN: &str = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Wow6432Node\r\n    (Default)    REG_SZ    (value not set)\r\n\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Wow6432Node\\Classes\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Wow6432Node\\SupportCenter\r\n";
    const REG_QUERY_PARENT_DE: &str = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Wow6432Node\r\n    (Standard)    REG_SZ    (Wert nicht festgelegt)\r\n\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Wow6432Node\\Classes\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Wow6432Node\\SupportCenter\r\n";
    const SCHTASKS_RUNNING: &str = "\"DC1\",\"\\WeeklyMaint\",\"11/29/2026 2:00:00 AM\",\"Running\",\"Interactive/Background\",\"11/27/2026 9:15:02 PM\",\"267009\",\"DC1\\Administrator\",\"C:\\Program Files\\Connected\\DataCenter\\WeeklyMaint.cmd\"\r\n";
    const SCHTASKS_READY: &str = "\"DC1\",\"\\WeeklyMaint\",\"11/29/2026 2:00:00 AM\",\"Ready\",\"Interactive/Background\",\"11/27/2026 9:15:02 PM\",\"0\",\"DC1\\Administrator\",\"C:\\Program Files\\Connected\\DataCenter\\WeeklyMaint.cmd\"\r\n";
    /// A German Windows Server: translated status words and dates, same columns.
    const SCHTASKS_RUNNING_DE: &str = "\"DC1\",\"\\WeeklyMaint\",\"29.11.2026 02:00:00\",\"Wird ausgeführt\",\"Interaktiv/Hintergrund\",\"27.11.2026 21:15:02\",\"267009\",\"DC1\\Administrator\",\"C:\\Program Files\\Connected\\DataCenter\\WeeklyMaint.cmd\"\r\n\"DC1\",\"\\WeeklyMaint\",\"29.11.2026 02:00:00\",\"Wird ausgeführt\",\"Interaktiv/Hintergrund\",\"27.11.2026 21:15:02\",\"267009\",\"DC1\\Administrator\",\"C:\\Program Files\\Connected\\DataCenter\\WeeklyMaint.cmd\"\r\n";
    const SCHTASKS_READY_DE: &str = "\"DC1\",\"\\WeeklyMaint\",\"29.11.2026 02:00:00\",\"Bereit\",\"Interaktiv/Hintergrund\",\"28.11.2026 09:00:10\",\"1\",\"DC1\\Administrator\",\"C:\\Program Files\\Connected\\DataCenter\\WeeklyMaint.cmd\"\r\n";

    #[test]
    fn sc_query_states_including_a_missing_service() {
        assert_eq!(
            sc_state(SC_QUERY_RUNNING).unwrap(),
            ServiceRunState::Running
        );
        assert_eq!(
            sc_state(SC_QUERY_STOP_PENDING).unwrap(),
            ServiceRunState::StopPending
        );
        assert_eq!(
            sc_state(SC_QUERY_MISSING).unwrap(),
            ServiceRunState::NotInstalled
        );
        assert!(sc_state("Access is denied.")
            .unwrap_err()
            .contains("Access is denied"));
    }

    #[test]
    fn a_missing_service_is_known_by_its_error_number_in_any_language() {
        assert_eq!(
            sc_state(SC_QUERY_MISSING_DE).unwrap(),
            ServiceRunState::NotInstalled
        );
        // Another error in German is an error, not an absent service.
        assert!(sc_state(SC_QUERY_DENIED_DE)
            .unwrap_err()
            .contains("FEHLER 5"));
    }

    #[test]
    fn sc_qc_start_types_including_delayed() {
        assert_eq!(
            sc_start_type(SC_QC_DELAYED).unwrap(),
            StartupType::DelayedAutomatic
        );
        assert_eq!(sc_start_type(SC_QC_DEMAND).unwrap(), StartupType::Manual);
        assert_eq!(
            sc_start_type(&SC_QC_DEMAND.replace("3   DEMAND_START", "2   AUTO_START")).unwrap(),
            StartupType::Automatic
        );
        assert_eq!(
            sc_start_type(&SC_QC_DEMAND.replace("3   DEMAND_START", "4   DISABLED")).unwrap(),
            StartupType::Disabled
        );
    }

    #[test]
    fn reg_query_values_keep_spaces_semicolons_and_empty_data() {
        assert_eq!(
            reg_value(REG_QUERY_VALUE, "registryconnect").unwrap().unwrap(),
            "DRIVER={SQL Server Native Client 11.0};SERVER=SERVER1;DATABASE=Registry;Trusted_Connection=Yes"
        );
        assert_eq!(reg_value(REG_QUERY_VALUE, "Other").unwrap(), None);
        assert_eq!(
            reg_values(REG_QUERY_KEY),
            vec![
                (
                    "PublicServerName".to_string(),
                    "https://www.example.com".to_string()
                ),
                ("Empty Value".to_string(), String::new()),
                ("Port".to_string(), "0x1bb".to_string()),
            ]
        );
        assert!(reg_value(REG_QUERY_KEY, "Port")
            .unwrap_err()
            .contains("REG_DWORD"));
    }

    #[test]
    fn a_subkey_is_found_in_its_parents_listing_in_english_and_in_german() {
        for out in [REG_QUERY_PARENT_EN, REG_QUERY_PARENT_DE] {
            assert!(reg_subkey_listed(
                out,
                r"HKLM\SOFTWARE\Wow6432Node\SupportCenter"
            ));
            assert!(reg_subkey_listed(
                out,
                r"HKLM\software\wow6432node\supportcenter"
            ));
            assert!(!reg_subkey_listed(
                out,
                r"HKLM\SOFTWARE\Wow6432Node\Connected"
            ));
            // A name that only begins like a listed subkey is not that subkey.
            assert!(!reg_subkey_listed(
                out,
                r"HKLM\SOFTWARE\Wow6432Node\Support"
            ));
        }
    }

    #[test]
    fn schtasks_status_and_last_result() {
        let r = schtasks_info(SCHTASKS_RUNNING).unwrap();
        assert_eq!((r.status.as_str(), r.last_result), ("Running", 267009));
        let d = schtasks_info(SCHTASKS_READY).unwrap();
        assert_eq!((d.status.as_str(), d.last_result), ("Ready", 0));
        assert_eq!(d.last_run_time, "11/27/2026 9:15:02 PM");
        assert!(schtasks_info("ERROR: The system cannot find the file specified.").is_err());
        assert!(r.running() && !d.running());
    }

    #[test]
    fn a_german_task_reads_by_column_and_runs_by_its_result_number() {
        let r = schtasks_info(SCHTASKS_RUNNING_DE).unwrap();
        assert!(r.running());
        assert_eq!(r.status, "Wird ausgeführt");
        let d = schtasks_info(SCHTASKS_READY_DE).unwrap();
        assert!(!d.running());
        assert_eq!(
            (d.last_result, d.last_run_time.as_str()),
            (1, "28.11.2026 09:00:10")
        );
        assert!(
            schtasks_info("FEHLER: Das System kann die angegebene Datei nicht finden.").is_err()
        );
    }

    #[test]
    fn powershell_json_outputs() {
        assert_eq!(
            disk_free(r#"{"free":53687091200,"total":136365211648}"#).unwrap(),
            (51200, 130048)
        );
        assert_eq!(
            os_version(r#"{"caption":"Microsoft Windows Server 2012 R2 Standard","sql_version":"11.4.7001.0","sql_sp":4}"#).unwrap(),
            ("2012 R2".to_string(), Some("2012 SP4".to_string()))
        );
        assert_eq!(
            os_version(r#"{"caption":"Microsoft Windows Server 2016 Datacenter","sql_version":"10.53.6000.34","sql_sp":3}"#).unwrap(),
            ("2016".to_string(), Some("2008 R2 SP3".to_string()))
        );
        assert_eq!(
            os_version(r#"{"caption":"Microsoft Windows Server 2016 Standard","sql_version":null,"sql_sp":null}"#).unwrap().1,
            None
        );
        let ev = events(r#"{"time":1795900000,"level":2,"source":"BackupServer","id":1001,"message":"Database connection lost"}"#).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].level, EventLevel::Error);
        assert_eq!(events("").unwrap(), vec![]);
        let b = bindings(r#"[{"protocol":"http","binding_information":"*:80:","certificate_hash":""},{"protocol":"https","binding_information":"*:443:","certificate_hash":"3A5F9C"}]"#).unwrap();
        assert_eq!(b[0].certificate_thumbprint, None);
        assert_eq!(b[1].certificate_thumbprint.as_deref(), Some("3A5F9C"));
        let c = certificates(r#"{"thumbprint":"3A5F9C","subject":"CN=dc1.contoso.local","issuer":"CN=Contoso CA","not_after":1890000000}"#).unwrap();
        assert_eq!(c[0].subject, "CN=dc1.contoso.local");
        assert_eq!(
            counters_sum(
                r#"[{"path":"\\\\dc1\\a","value":2.0},{"path":"\\\\dc1\\b","value":1.4}]"#
            )
            .unwrap(),
            3
        );
        assert!(disk_free("Get-CimInstance : Access denied").is_err());
    }
}

#[derive(Deserialize)]
struct Program {
    name: String,
    version: String,
}

/// The version of the one installed program `PS_PROGRAM_VERSION` found: `None` when none is
/// installed; an error when several with different versions match (refusing to guess).
pub fn program_version(out: &str, pattern: &str) -> Result<Option<String>, String> {
    let text = out.trim();
    if text.is_empty() {
        return Ok(None);
    }
    // PowerShell 5 writes a one-element array as the object itself.
    let programs: Vec<Program> = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => vec![serde_json::from_str::<Program>(text)
            .map_err(|e| format!("installed programs output: {e}"))?],
    };
    let mut versions: Vec<&str> = programs
        .iter()
        .map(|p| p.version.trim())
        .filter(|v| !v.is_empty())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    match versions.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.to_string())),
        many => Err(format!(
            "several installed programs match `{pattern}` with different versions ({}: {}); set component_programs in the agent configuration",
            programs.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "),
            many.join(", ")
        )),
    }
}

#[cfg(test)]
mod program_tests {
    use super::program_version;

    #[test]
    fn one_program_or_an_array_gives_its_version_and_none_gives_none() {
        let one = r#"{"name":"Connected Management API","version":"8.11.0.12"}"#;
        assert_eq!(
            program_version(one, "*").unwrap().as_deref(),
            Some("8.11.0.12")
        );
        let arr = r#"[{"name":"Connected Management API","version":"8.8.6"},{"name":"Connected Management API (x64)","version":"8.8.6"}]"#;
        assert_eq!(program_version(arr, "*").unwrap().as_deref(), Some("8.8.6"));
        assert_eq!(program_version("", "*").unwrap(), None);
        assert_eq!(program_version("[]", "*").unwrap(), None);
    }

    #[test]
    fn conflicting_versions_and_garbage_are_clear_errors() {
        let two = r#"[{"name":"A","version":"8.8.6"},{"name":"B","version":"8.11"}]"#;
        let e = program_version(two, "*Connected*").unwrap_err();
        assert!(
            e.contains("several") && e.contains("8.8.6") && e.contains("8.11"),
            "{e}"
        );
        let e = program_version("Zugriff verweigert", "*").unwrap_err();
        assert!(e.contains("installed programs output"), "{e}");
    }
}
