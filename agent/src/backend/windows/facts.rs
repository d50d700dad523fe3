//! Site facts on Windows: one PowerShell script ([`PS_FACTS`]) reads structured sources — CIM
//! objects (`Win32_Service`, `Win32_Volume`, `Win32_OperatingSystem`), registry values through
//! .NET (component versions, SCHANNEL, the SQL Server setup record), the machine certificate
//! store, IIS bindings, and `sys.master_files` through .NET's SqlClient — and writes one JSON
//! document, each section in its own `try` so a failing source becomes an entry in `errors`
//! instead of losing the rest. [`parse_facts`] decodes each section on its own for the same
//! reason.
//!
//! A server without IIS reports no bindings (not an error); one without SQL Server reports no
//! database files.
//!
//! Nothing here depends on the display language except the certificate SAN text
//! (`X509Extension.Format`), whose labels Windows translates ("DNS Name", "DNS-Name", "Nom
//! DNS"); [`sans`] reads the value after the label whatever the label says.

use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::facts::{
    CertificateFact, ComponentVersion, DatabaseFileFact, DatabaseFileKind, ServiceFact,
    SqlAccountsFact, TlsProtocolFact, VolumeFact,
};
use lockstep_protocol::{Component, SiteFacts, StartupType};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::parse::{sql_release, windows_release};

/// The SCHANNEL protocols whose server-side setting is reported.
pub const TLS_PROTOCOLS: [&str; 5] = ["SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2"];

/// Inputs (all `;`-separated, in `LOCKSTEP_*` variables so no value can change the script):
/// `LOCKSTEP_SERVICES` service names, `LOCKSTEP_COMPONENTS` `component|HKEY_…\key|value`
/// triples, `LOCKSTEP_TLS` protocol names, `LOCKSTEP_COUNTERS` backup-session counter paths.
pub const PS_FACTS: &str = "$ErrorActionPreference = 'Stop'; $r = [ordered]@{ errors = @() }; \
$r.hostname = $env:COMPUTERNAME; \
try { $names = @($env:LOCKSTEP_SERVICES -split ';' | Where-Object { $_ }); \
$r.services = @(Get-CimInstance Win32_Service | Where-Object { $names -contains $_.Name } | ForEach-Object { \
@{ name = [string]$_.Name; state = [string]$_.State; start_mode = [string]$_.StartMode; delayed = $_.DelayedAutoStart; start_name = [string]$_.StartName } }) } \
catch { $r.errors += 'services: ' + $_.Exception.Message }; \
try { $r.components = @(foreach ($c in @($env:LOCKSTEP_COMPONENTS -split ';' | Where-Object { $_ })) { $p = $c -split '\\|'; \
$v = [Microsoft.Win32.Registry]::GetValue($p[1], $p[2], $null); if ($null -ne $v) { @{ component = $p[0]; version = [string]$v } } }) } \
catch { $r.errors += 'components: ' + $_.Exception.Message }; \
try { $r.volumes = @(Get-CimInstance Win32_Volume | Where-Object { $_.DriveLetter -and $_.Capacity } | ForEach-Object { \
@{ drive = [string]$_.DriveLetter; free = [long]$_.FreeSpace; capacity = [long]$_.Capacity } }) } \
catch { $r.errors += 'volumes: ' + $_.Exception.Message }; \
try { $r.tls = @(foreach ($t in @($env:LOCKSTEP_TLS -split ';' | Where-Object { $_ })) { \
$e = [Microsoft.Win32.Registry]::GetValue('HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\' + $t + '\\Server', 'Enabled', $null); \
@{ protocol = $t; enabled = $e } }) } \
catch { $r.errors += 'tls: ' + $_.Exception.Message }; \
try { $r.certificates = @(Get-ChildItem Cert:\\LocalMachine\\My | ForEach-Object { $san = $_.Extensions | Where-Object { $_.Oid.Value -eq '2.5.29.17' }; \
@{ thumbprint = $_.Thumbprint; subject = $_.Subject; issuer = $_.Issuer; not_after = ([DateTimeOffset]$_.NotAfter).ToUnixTimeSeconds(); \
san = $(if ($san) { $san.Format($false) } else { '' }) } }) } \
catch { $r.errors += 'certificates: ' + $_.Exception.Message }; \
try { if (Get-Module -ListAvailable -Name WebAdministration) { Import-Module WebAdministration; \
$r.bindings = @(Get-Website | ForEach-Object { $site = $_.Name; $_.bindings.Collection | ForEach-Object { \
@{ site = [string]$site; binding_information = [string]$_.bindingInformation; certificate_hash = [string]$_.certificateHash } } }) } } \
catch { $r.errors += 'bindings: ' + $_.Exception.Message }; \
try { $os = Get-CimInstance Win32_OperatingSystem; $r.os = @{ build = [string]$os.BuildNumber; caption = [string]$os.Caption } } \
catch { $r.errors += 'windows: ' + $_.Exception.Message }; \
try { $inst = [Microsoft.Win32.Registry]::GetValue('HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Microsoft SQL Server\\Instance Names\\SQL', 'MSSQLSERVER', $null); \
if ($inst) { $k = 'HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Microsoft SQL Server\\' + $inst + '\\Setup'; \
$r.sql = @{ version = [string][Microsoft.Win32.Registry]::GetValue($k, 'Version', $null); sp = [Microsoft.Win32.Registry]::GetValue($k, 'SP', $null) } } } \
catch { $r.errors += 'sql_server: ' + $_.Exception.Message }; \
if ($r.sql) { try { $cn = New-Object System.Data.SqlClient.SqlConnection 'Server=.;Integrated Security=SSPI;Connect Timeout=15'; $cn.Open(); \
$cmd = $cn.CreateCommand(); $cmd.CommandText = \"SELECT DB_NAME(database_id) AS db, type, physical_name, size FROM sys.master_files WHERE DB_NAME(database_id) IN ('Registry', 'Directory')\"; \
$rd = $cmd.ExecuteReader(); $files = @(); while ($rd.Read()) { $files += @{ database = [string]$rd['db']; type = [int]$rd['type']; path = [string]$rd['physical_name']; pages = [long]$rd['size'] } }; \
$cn.Close(); $r.database_files = $files } catch { $r.errors += 'database_files: ' + $_.Exception.Message } }; \
$r.counters = $false; if ($env:LOCKSTEP_COUNTERS) { try { $null = Get-Counter -Counter ($env:LOCKSTEP_COUNTERS -split ';') -MaxSamples 1; $r.counters = $true } \
catch { $r.errors += 'session_counters: ' + $_.Exception.Message } }; \
ConvertTo-Json -Compress -Depth 6 -InputObject $r";

/// The SQL Server services whose accounts are reported.
const SQL_SERVICES: [&str; 2] = ["MSSQLSERVER", "SQLSERVERAGENT"];

/// The environment [`PS_FACTS`] runs with.
pub fn facts_env(
    services: &[String],
    components: &[(Component, String, String)],
    counters: &[String],
) -> Vec<(&'static str, String)> {
    let components = components
        .iter()
        .map(|(c, key, value)| format!("{}|{}|{value}", c.as_str(), dotnet_key(key)))
        .collect::<Vec<_>>()
        .join(";");
    vec![
        (
            "LOCKSTEP_SERVICES",
            services
                .iter()
                .map(String::as_str)
                .chain(SQL_SERVICES)
                .collect::<Vec<_>>()
                .join(";"),
        ),
        ("LOCKSTEP_COMPONENTS", components),
        ("LOCKSTEP_TLS", TLS_PROTOCOLS.join(";")),
        ("LOCKSTEP_COUNTERS", counters.join(";")),
    ]
}

/// `HKLM\…` → `HKEY_LOCAL_MACHINE\…` (what .NET's `Registry.GetValue` takes).
fn dotnet_key(key: &str) -> String {
    match key.get(..5) {
        Some(p) if p.eq_ignore_ascii_case(r"HKLM\") => format!(r"HKEY_LOCAL_MACHINE\{}", &key[5..]),
        _ => key.to_string(),
    }
}

#[derive(Deserialize)]
struct RawService {
    name: String,
    state: String,
    start_mode: Option<String>,
    delayed: Option<bool>,
    start_name: Option<String>,
}

#[derive(Deserialize)]
struct RawVolume {
    drive: String,
    free: u64,
    capacity: u64,
}

#[derive(Deserialize)]
struct RawTls {
    protocol: String,
    enabled: Option<i64>,
}

#[derive(Deserialize)]
struct RawCert {
    thumbprint: String,
    subject: String,
    issuer: String,
    not_after: i64,
    #[serde(default)]
    san: String,
}

#[derive(Deserialize)]
struct RawBinding {
    site: String,
    binding_information: String,
    certificate_hash: Option<String>,
}

#[derive(Deserialize)]
struct RawOs {
    build: String,
    caption: String,
}

#[derive(Deserialize)]
struct RawSql {
    version: String,
    sp: Option<u32>,
}

#[derive(Deserialize)]
struct RawFile {
    database: String,
    /// `sys.master_files.type`: 0 rows (data), 1 log.
    #[serde(rename = "type")]
    kind: i32,
    path: String,
    /// 8-KB pages.
    pages: u64,
}

/// `Win32_Service.State` → the run state (CIM values are not translated).
pub fn cim_state(state: &str) -> Option<ServiceRunState> {
    Some(match state {
        "Running" => ServiceRunState::Running,
        "Stopped" => ServiceRunState::Stopped,
        "Start Pending" => ServiceRunState::StartPending,
        "Stop Pending" => ServiceRunState::StopPending,
        "Continue Pending" => ServiceRunState::ContinuePending,
        "Pause Pending" => ServiceRunState::PausePending,
        "Paused" => ServiceRunState::Paused,
        _ => return None,
    })
}

/// `Win32_Service.StartMode` (+ `DelayedAutoStart`) → the startup type.
pub fn cim_start_mode(mode: &str, delayed: bool) -> Option<StartupType> {
    Some(match mode {
        "Auto" if delayed => StartupType::DelayedAutomatic,
        "Auto" => StartupType::Automatic,
        "Manual" => StartupType::Manual,
        "Disabled" => StartupType::Disabled,
        _ => return None,
    })
}

/// Windows build number → release (the caption is translated; the build is not).
pub fn windows_build_release(build: &str) -> Option<&'static str> {
    Some(match build.trim().parse::<u32>().ok()? {
        7600 => "2008 R2",
        7601 => "2008 R2",
        9200 => "2012",
        9600 => "2012 R2",
        14393 => "2016",
        17763 => "2019",
        20348 => "2022",
        _ => return None,
    })
}

/// The DNS names and IP addresses in a SAN extension's `Format($false)` text, e.g.
/// `DNS Name=a.contoso.local, DNS Name=b, IP Address=10.0.0.1` — or with translated labels
/// (`DNS-Name=…`, `Nom DNS=…`). Entries without `=` (e.g. an unreadable `Other Name:`) are
/// skipped.
pub fn sans(text: &str) -> Vec<String> {
    text.split([',', '\r', '\n'])
        .filter_map(|entry| entry.split_once('=').map(|(_, v)| v.trim()))
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// One section of the document as `T`, or `None` with the reason added to `errors`. A missing
/// section is `None` without an error (the script already named why, when it failed).
fn section<T: DeserializeOwned>(doc: &Value, name: &str, errors: &mut Vec<String>) -> Option<T> {
    let v = doc.get(name).filter(|v| !v.is_null())?;
    serde_json::from_value(v.clone())
        .map_err(|e| errors.push(format!("{name}: unreadable ({e})")))
        .ok()
}

/// A list section. Windows PowerShell 5.1 writes a one-element array held in a hashtable as
/// the element itself, so a lone object is read as a list of one.
fn list<T: DeserializeOwned>(doc: &Value, name: &str, errors: &mut Vec<String>) -> Vec<T> {
    let Some(v) = doc.get(name).filter(|v| !v.is_null()) else {
        return Vec::new();
    };
    let v = match v {
        Value::Array(_) => v.clone(),
        other => Value::Array(vec![other.clone()]),
    };
    serde_json::from_value(v)
        .map_err(|e| errors.push(format!("{name}: unreadable ({e})")))
        .unwrap_or_default()
}

/// Decodes [`PS_FACTS`]'s output. `connected` is the Connected service group in the guide's
/// stop order; the SQL Server accounts are read from `MSSQLSERVER` and `SQLSERVERAGENT`.
pub fn parse_facts(out: &str, connected: &[String], now: i64) -> SiteFacts {
    let mut f = SiteFacts::empty("unknown", now);
    let doc: Value = match serde_json::from_str(out.trim()) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            f.errors
                .push("facts: the script did not write a JSON object".into());
            return f;
        }
        Err(e) => {
            f.errors
                .push(format!("facts: the script's output is not JSON ({e})"));
            return f;
        }
    };
    let reported: Vec<String> = list(&doc, "errors", &mut f.errors);
    f.errors.extend(reported);
    if let Some(h) = doc.get("hostname").and_then(Value::as_str) {
        f.hostname = h.to_string();
    }
    // One reader per section, in the order the errors have always been listed.
    services_facts(&doc, connected, &mut f);
    component_facts(&doc, &mut f);
    volume_and_tls_facts(&doc, &mut f);
    certificate_facts(&doc, &mut f);
    release_facts(&doc, &mut f);
    database_file_facts(&doc, &mut f);
    f.session_counters = doc
        .get("counters")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    f
}

/// The Connected services (missing ones listed as such) and the SQL Server accounts.
fn services_facts(doc: &Value, connected: &[String], f: &mut SiteFacts) {
    let errors = &mut f.errors;
    let services: Vec<RawService> = list(doc, "services", errors);
    if doc.get("services").is_none() {
        return;
    }
    for name in connected {
        match services.iter().find(|s| s.name.eq_ignore_ascii_case(name)) {
            None => f.services_missing.push(name.clone()),
            Some(s) => match cim_state(&s.state) {
                Some(state) => f.services.push(ServiceFact {
                    name: s.name.clone(),
                    state,
                    startup: s
                        .start_mode
                        .as_deref()
                        .and_then(|m| cim_start_mode(m, s.delayed.unwrap_or(false))),
                }),
                None => errors.push(format!(
                    "services: {} reports the unknown state `{}`",
                    s.name, s.state
                )),
            },
        }
    }
    let account = |n: &str| {
        services
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(n))
            .and_then(|s| s.start_name.clone())
    };
    if let (Some(sql_server), Some(sql_agent)) =
        (account(SQL_SERVICES[0]), account(SQL_SERVICES[1]))
    {
        f.sql_accounts = Some(SqlAccountsFact {
            sql_server,
            sql_agent,
        });
    }
}

fn component_facts(doc: &Value, f: &mut SiteFacts) {
    #[derive(Deserialize)]
    struct RawComponent {
        component: Component,
        version: String,
    }
    for c in list::<RawComponent>(doc, "components", &mut f.errors) {
        f.components.push(ComponentVersion {
            component: c.component,
            version: c.version,
        });
    }
}

fn volume_and_tls_facts(doc: &Value, f: &mut SiteFacts) {
    const MB: u64 = 1024 * 1024;
    for v in list::<RawVolume>(doc, "volumes", &mut f.errors) {
        f.volumes.push(VolumeFact {
            drive: v.drive.trim_end_matches('\\').to_string(),
            free_mb: v.free / MB,
            total_mb: v.capacity / MB,
        });
    }
    for t in list::<RawTls>(doc, "tls", &mut f.errors) {
        f.tls_protocols.push(TlsProtocolFact {
            protocol: t.protocol,
            enabled: t.enabled.map(|e| e != 0),
        });
    }
}

/// Certificates with the IIS bindings that use each.
fn certificate_facts(doc: &Value, f: &mut SiteFacts) {
    let bindings: Vec<RawBinding> = list(doc, "bindings", &mut f.errors);
    for c in list::<RawCert>(doc, "certificates", &mut f.errors) {
        f.certificates.push(CertificateFact {
            subject_cn: super::super::simulated::cn_of(&c.subject)
                .unwrap_or(&c.subject)
                .to_string(),
            sans: sans(&c.san),
            issuer: c.issuer,
            not_after: c.not_after,
            bindings: bindings
                .iter()
                .filter(|b| {
                    b.certificate_hash
                        .as_deref()
                        .is_some_and(|h| h.eq_ignore_ascii_case(&c.thumbprint))
                })
                .map(|b| format!("{} {}", b.site, b.binding_information))
                .collect(),
            thumbprint: c.thumbprint,
        });
    }
}

/// The Windows Server and SQL Server releases.
fn release_facts(doc: &Value, f: &mut SiteFacts) {
    let errors = &mut f.errors;
    if let Some(os) = section::<RawOs>(doc, "os", errors) {
        f.windows = windows_build_release(&os.build)
            .map(str::to_string)
            .or_else(|| windows_release(&os.caption));
        if f.windows.is_none() {
            errors.push(format!(
                "windows: build {} (`{}`) is not a Windows Server release Lockstep knows",
                os.build, os.caption
            ));
        }
    }
    if let Some(sql) = section::<RawSql>(doc, "sql", errors) {
        f.sql_server = sql_release(&sql.version, sql.sp);
        if f.sql_server.is_none() {
            errors.push(format!(
                "sql_server: unknown SQL Server version {}",
                sql.version
            ));
        }
    }
}

fn database_file_facts(doc: &Value, f: &mut SiteFacts) {
    for file in list::<RawFile>(doc, "database_files", &mut f.errors) {
        let kind = match file.kind {
            0 => DatabaseFileKind::Data,
            1 => DatabaseFileKind::Log,
            // FILESTREAM and full-text files hold no Registry rows; not reported.
            _ => continue,
        };
        let drive = match file.path.get(..2) {
            Some(d) if d.ends_with(':') => d.to_ascii_uppercase(),
            _ => {
                f.errors.push(format!(
                    "database_files: `{}` has no drive letter",
                    file.path
                ));
                continue;
            }
        };
        f.database_files.push(DatabaseFileFact {
            database: file.database,
            kind,
            path: file.path,
            drive,
            size_mb: file.pages * 8 / 1024,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_connected_services;

    const EN: &str = include_str!("samples/facts-en.json");
    const DE: &str = include_str!("samples/facts-de.json");
    const PARTIAL: &str = include_str!("samples/facts-partial.json");

    #[test]
    fn an_english_server_reads_every_fact() {
        let f = parse_facts(EN, &default_connected_services(), 1_700_000_000);
        assert_eq!(f.errors, Vec::<String>::new());
        assert_eq!(f.hostname, "DC1");
        let names: Vec<&str> = f.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "BackupServer",
                "IndexServer",
                "PoolServer",
                "ReplicationServer",
                "Compactor",
                "DCAlerter"
            ],
            "the guide's order, not CIM's"
        );
        assert_eq!(f.services_missing, vec!["dctomcat".to_string()]);
        let alerter = f.service("DCAlerter").unwrap();
        assert_eq!(alerter.state, ServiceRunState::Stopped);
        assert_eq!(alerter.startup, Some(StartupType::Disabled));
        assert_eq!(
            f.service("PoolServer").unwrap().startup,
            Some(StartupType::DelayedAutomatic)
        );
        assert_eq!(f.version_of(Component::DataCenter), Some("8.8.6.12"));
        assert_eq!(f.version_of(Component::ManagementApi), Some("8.8.6.3"));
        assert_eq!(f.version_of(Component::SupportCenter), None);
        assert_eq!(
            f.volumes,
            vec![
                VolumeFact {
                    drive: "C:".into(),
                    free_mb: 40_960,
                    total_mb: 102_400
                },
                VolumeFact {
                    drive: "E:".into(),
                    free_mb: 5_120,
                    total_mb: 512_000
                },
            ]
        );
        assert_eq!(
            f.database_files[0],
            DatabaseFileFact {
                database: "Registry".into(),
                kind: DatabaseFileKind::Data,
                path: r"E:\SQLData\Registry.mdf".into(),
                drive: "E:".into(),
                size_mb: 2048,
            }
        );
        assert_eq!(f.database_files[1].kind, DatabaseFileKind::Log);
        assert_eq!(f.database_files[1].drive, "L:");
        assert_eq!(
            f.sql_accounts,
            Some(SqlAccountsFact {
                sql_server: r"CONTOSO\svc-sql".into(),
                sql_agent: r"CONTOSO\svc-sqlagent".into(),
            })
        );
        assert_eq!(
            f.tls_protocols
                .iter()
                .map(|t| (t.protocol.as_str(), t.enabled))
                .collect::<Vec<_>>(),
            [
                ("SSL 3.0", Some(false)),
                ("TLS 1.0", None),
                ("TLS 1.2", Some(true))
            ]
        );
        let c = &f.certificates[0];
        assert_eq!(c.subject_cn, "dc1.contoso.local");
        assert_eq!(c.sans, ["dc1.contoso.local", "dc1", "10.0.0.11"]);
        assert_eq!(c.issuer, "CN=Contoso Issuing CA, DC=contoso, DC=local");
        assert_eq!(c.not_after, 1_767_225_600);
        assert_eq!(c.bindings, ["Default Web Site *:443:"]);
        assert!(f.certificates[1].bindings.is_empty());
        assert_eq!(f.windows.as_deref(), Some("2016"));
        assert_eq!(f.sql_server.as_deref(), Some("2016 SP2"));
        assert!(f.session_counters);
    }

    #[test]
    fn a_german_server_reads_the_same_facts_from_its_translated_texts() {
        let f = parse_facts(DE, &default_connected_services(), 0);
        assert_eq!(f.errors, Vec::<String>::new());
        // The build number decides the release, whatever language the caption is in.
        assert_eq!(f.windows.as_deref(), Some("2012 R2"));
        // SAN labels are translated ("DNS-Name", "IP-Adresse"); the values are not.
        assert_eq!(
            f.certificates[0].sans,
            ["web1.contoso.local", "support.contoso.com", "10.0.0.21"]
        );
        // A single service and a single volume arrive as objects, not one-element arrays.
        assert_eq!(f.services.len(), 1);
        assert_eq!(f.volumes.len(), 1);
        assert_eq!(f.services[0].state, ServiceRunState::Running);
        assert!(!f.session_counters);
        assert_eq!(f.sql_server, None);
    }

    #[test]
    fn a_failed_source_is_an_error_for_that_fact_only() {
        let f = parse_facts(PARTIAL, &default_connected_services(), 0);
        assert!(
            f.errors
                .iter()
                .any(|e| e.starts_with("database_files: Login failed")),
            "{:?}",
            f.errors
        );
        assert!(
            f.errors
                .iter()
                .any(|e| e.starts_with("volumes: unreadable")),
            "{:?}",
            f.errors
        );
        assert!(
            f.errors
                .iter()
                .any(|e| e.contains("unknown state `Unknown`")),
            "{:?}",
            f.errors
        );
        assert!(f
            .errors
            .iter()
            .any(|e| e.starts_with("windows: build 99999")));
        // The rest is still read.
        assert_eq!(f.version_of(Component::DataCenter), Some("8.11"));
        assert_eq!(f.services.len(), 1);
        assert!(f.volumes.is_empty());
        assert_eq!(f.windows, None);
    }

    #[test]
    fn output_that_is_not_a_json_object_is_one_clear_error() {
        for out in ["", "Zugriff verweigert", "[1,2]"] {
            let f = parse_facts(out, &default_connected_services(), 5);
            assert_eq!(f.errors.len(), 1, "{out}: {:?}", f.errors);
            assert!(f.errors[0].starts_with("facts: "));
            assert_eq!(f.collected_at, 5);
        }
    }

    #[test]
    fn the_script_takes_its_inputs_from_the_environment_only() {
        assert!(!PS_FACTS.contains('\n'));
        let env = facts_env(
            &["BackupServer".into(), "DCAlerter".into()],
            &[(
                Component::ManagementApi,
                r"HKLM\SOFTWARE\Wow6432Node\Connected\MAPI".into(),
                "Version".into(),
            )],
            &[],
        );
        assert_eq!(
            env[0],
            (
                "LOCKSTEP_SERVICES",
                "BackupServer;DCAlerter;MSSQLSERVER;SQLSERVERAGENT".into()
            )
        );
        assert_eq!(
            env[1].1,
            r"management_api|HKEY_LOCAL_MACHINE\SOFTWARE\Wow6432Node\Connected\MAPI|Version"
        );
        assert_eq!(env[2].1, "SSL 2.0;SSL 3.0;TLS 1.0;TLS 1.1;TLS 1.2");
    }
}
