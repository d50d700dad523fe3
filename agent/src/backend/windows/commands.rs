//! The exact command lines the Windows backend runs, as argument vectors.
//!
//! Never a shell string: each argument is passed to `CreateProcess` as its own element (Rust
//! quotes it). PowerShell scripts are constants; their inputs arrive in `LOCKSTEP_*` environment
//! variables, so no value can change what a script does. Arguments were checked by
//! [`crate::policy`] before they get here.

use lockstep_protocol::StartupType;

/// One process to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

fn cmd(program: &str, args: &[&str]) -> Cmd {
    Cmd {
        program: program.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
    }
}

pub fn sc_query(service: &str) -> Cmd {
    cmd("sc.exe", &["query", service])
}

pub fn sc_qc(service: &str) -> Cmd {
    cmd("sc.exe", &["qc", service])
}

pub fn sc_stop(service: &str) -> Cmd {
    cmd("sc.exe", &["stop", service])
}

pub fn sc_start(service: &str) -> Cmd {
    cmd("sc.exe", &["start", service])
}

/// `sc config NAME start= auto` — sc.exe wants `start=` and the value as separate arguments.
pub fn sc_config_start(service: &str, startup: StartupType) -> Cmd {
    let v = match startup {
        StartupType::Automatic => "auto",
        StartupType::DelayedAutomatic => "delayed-auto",
        StartupType::Manual => "demand",
        StartupType::Disabled => "disabled",
    };
    cmd("sc.exe", &["config", service, "start=", v])
}

pub fn reg_query_value(key: &str, name: &str) -> Cmd {
    cmd("reg.exe", &["query", key, "/v", name])
}

pub fn reg_query_key(key: &str) -> Cmd {
    cmd("reg.exe", &["query", key])
}

/// The key and everything below it, written to `file` as UTF-16 `.reg` text (`/y`: overwrite).
pub fn reg_export(key: &str, file: &str) -> Cmd {
    cmd("reg.exe", &["export", key, file, "/y"])
}

pub fn reg_add(key: &str, name: &str, value: &str) -> Cmd {
    cmd(
        "reg.exe",
        &["add", key, "/v", name, "/t", "REG_SZ", "/d", value, "/f"],
    )
}

pub fn reg_delete_value(key: &str, name: &str) -> Cmd {
    cmd("reg.exe", &["delete", key, "/v", name, "/f"])
}

pub fn reg_delete_key(key: &str) -> Cmd {
    cmd("reg.exe", &["delete", key, "/f"])
}

pub fn schtasks_run(task: &str) -> Cmd {
    cmd("schtasks.exe", &["/Run", "/TN", task])
}

pub fn schtasks_query(task: &str) -> Cmd {
    cmd(
        "schtasks.exe",
        &["/Query", "/TN", task, "/FO", "CSV", "/V", "/NH"],
    )
}

pub fn iisreset() -> Cmd {
    cmd("iisreset.exe", &[])
}

pub fn sqlcmd(path: &str, database: Option<&str>) -> Cmd {
    let mut c = cmd("sqlcmd.exe", &["-E", "-b", "-S", ".", "-i", path]);
    if let Some(db) = database {
        c.args.push("-d".into());
        c.args.push(db.into());
    }
    c
}

/// A PowerShell script (a constant below) with its inputs in the environment.
pub fn powershell(script: &str, env: &[(&str, &str)]) -> Cmd {
    let mut c = cmd(
        "powershell.exe",
        &[
            "-NoProfile",
            "-NonInteractive",
            "-ExecutionPolicy",
            "Bypass",
            "-Command",
            script,
        ],
    );
    c.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c
}

pub const PS_DISK_FREE: &str = "$d = [System.IO.DriveInfo]::new($env:LOCKSTEP_DRIVE); \
ConvertTo-Json -Compress -InputObject @{ free = $d.AvailableFreeSpace; total = $d.TotalSize }";

pub const PS_OS_VERSION: &str = "$os = (Get-CimInstance Win32_OperatingSystem).Caption; $sql = $null; $sp = $null; \
$inst = Get-ItemProperty 'HKLM:\\SOFTWARE\\Microsoft\\Microsoft SQL Server\\Instance Names\\SQL' -ErrorAction SilentlyContinue; \
if ($inst -and $inst.MSSQLSERVER) { $setup = Get-ItemProperty ('HKLM:\\SOFTWARE\\Microsoft\\Microsoft SQL Server\\' + $inst.MSSQLSERVER + '\\Setup'); \
$sql = $setup.Version; $sp = $setup.SP }; \
ConvertTo-Json -Compress -InputObject @{ caption = $os; sql_version = $sql; sql_sp = $sp }";

pub const PS_EVENTS: &str = "$since = [DateTimeOffset]::FromUnixTimeSeconds([long]$env:LOCKSTEP_SINCE).UtcDateTime; \
$ev = Get-WinEvent -FilterHashtable @{ LogName = $env:LOCKSTEP_LOG; Level = 1..([int]$env:LOCKSTEP_MAX_LEVEL); StartTime = $since } -ErrorAction SilentlyContinue; \
ConvertTo-Json -Compress -InputObject @($ev | ForEach-Object { @{ time = ([DateTimeOffset]$_.TimeCreated).ToUnixTimeSeconds(); \
level = [int]$_.Level; source = [string]$_.ProviderName; id = [int]$_.Id; message = [string]$_.Message } })";

pub const PS_BINDINGS: &str = "Import-Module WebAdministration; \
ConvertTo-Json -Compress -InputObject @(Get-WebBinding -Name $env:LOCKSTEP_SITE | ForEach-Object { \
@{ protocol = [string]$_.protocol; binding_information = [string]$_.bindingInformation; certificate_hash = [string]$_.certificateHash } })";

pub const PS_BINDING_ENSURE: &str = "Import-Module WebAdministration; $site = $env:LOCKSTEP_SITE; $port = [int]$env:LOCKSTEP_PORT; $cn = $env:LOCKSTEP_CN; \
$cert = Get-ChildItem Cert:\\LocalMachine\\My | Where-Object { $_.GetNameInfo('SimpleName', $false) -eq $cn } | Sort-Object NotAfter -Descending | Select-Object -First 1; \
if (-not $cert) { [Console]::Error.WriteLine(\"no certificate with CN=$cn in LocalMachine\\My\"); exit 3 }; \
$b = Get-WebBinding -Name $site -Protocol https -Port $port; \
if (-not $b) { New-WebBinding -Name $site -Protocol https -Port $port | Out-Null; $b = Get-WebBinding -Name $site -Protocol https -Port $port }; \
if ($b.certificateHash -ne $cert.Thumbprint) { $b.AddSslCertificate($cert.Thumbprint, 'My') }; \
Write-Output $cert.Thumbprint";

pub const PS_CERTIFICATES: &str = "ConvertTo-Json -Compress -InputObject @(Get-ChildItem Cert:\\LocalMachine\\My | ForEach-Object { \
@{ thumbprint = $_.Thumbprint; subject = $_.Subject; issuer = $_.Issuer; not_after = ([DateTimeOffset]$_.NotAfter).ToUnixTimeSeconds() } })";

/// Installed programs whose uninstall record's DisplayName is `-like` LOCKSTEP_PROGRAM, from the
/// 64-bit and the 32-bit (Wow6432Node) Uninstall keys: the record Windows Installer writes for
/// every product, so a component's version comes from its own installation, not the Data
/// Center's value.
pub const PS_PROGRAM_VERSION: &str = "$keys = 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*', 'HKLM:\\SOFTWARE\\Wow6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*'; \
$p = Get-ItemProperty -Path $keys -ErrorAction SilentlyContinue | Where-Object { $_.DisplayName -like $env:LOCKSTEP_PROGRAM }; \
ConvertTo-Json -Compress -InputObject @($p | ForEach-Object { @{ name = [string]$_.DisplayName; version = [string]$_.DisplayVersion } })";

pub const PS_COUNTERS: &str = "$s = Get-Counter -Counter ($env:LOCKSTEP_COUNTERS -split ';') -ErrorAction Stop; \
ConvertTo-Json -Compress -InputObject @($s.CounterSamples | ForEach-Object { @{ path = $_.Path; value = $_.CookedValue } })";

#[cfg(test)]
mod tests {
    use super::*;

    fn line(c: &Cmd) -> Vec<&str> {
        std::iter::once(c.program.as_str())
            .chain(c.args.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn service_command_lines() {
        assert_eq!(
            line(&sc_query("BackupServer")),
            ["sc.exe", "query", "BackupServer"]
        );
        assert_eq!(line(&sc_qc("W3SVC")), ["sc.exe", "qc", "W3SVC"]);
        assert_eq!(
            line(&sc_stop("IndexServer")),
            ["sc.exe", "stop", "IndexServer"]
        );
        assert_eq!(line(&sc_start("dctomcat")), ["sc.exe", "start", "dctomcat"]);
        assert_eq!(
            line(&sc_config_start(
                "PoolServer",
                StartupType::DelayedAutomatic
            )),
            ["sc.exe", "config", "PoolServer", "start=", "delayed-auto"]
        );
        assert_eq!(
            line(&sc_config_start("x", StartupType::Manual))[4],
            "demand"
        );
        assert_eq!(
            line(&sc_config_start("x", StartupType::Disabled))[4],
            "disabled"
        );
        assert_eq!(
            line(&sc_config_start("x", StartupType::Automatic))[4],
            "auto"
        );
    }

    #[test]
    fn registry_command_lines_keep_values_with_spaces_and_semicolons_as_one_argument() {
        let k = r"HKLM\SOFTWARE\Wow6432Node\SupportCenter";
        let v = "DRIVER={SQL Server Native Client 11.0};SERVER=SERVER2;DATABASE=Registry;Trusted_Connection=Yes";
        assert_eq!(
            line(&reg_query_value(k, "RegistryConnect")),
            ["reg.exe", "query", k, "/v", "RegistryConnect"]
        );
        assert_eq!(line(&reg_query_key(k)), ["reg.exe", "query", k]);
        assert_eq!(
            line(&reg_add(k, "RegistryConnect", v)),
            [
                "reg.exe",
                "add",
                k,
                "/v",
                "RegistryConnect",
                "/t",
                "REG_SZ",
                "/d",
                v,
                "/f"
            ]
        );
        let mapi = r"HKLM\SOFTWARE\Wow6432Node\Connected\MAPI";
        assert_eq!(
            line(&reg_delete_key(mapi)),
            ["reg.exe", "delete", mapi, "/f"]
        );
        assert_eq!(
            line(&reg_delete_value(mapi, "PublicServerName")),
            ["reg.exe", "delete", mapi, "/v", "PublicServerName", "/f"]
        );
    }

    #[test]
    fn task_iis_and_sql_command_lines() {
        assert_eq!(
            line(&schtasks_run("WeeklyMaint")),
            ["schtasks.exe", "/Run", "/TN", "WeeklyMaint"]
        );
        assert_eq!(
            line(&schtasks_query("WeeklyMaint")),
            [
                "schtasks.exe",
                "/Query",
                "/TN",
                "WeeklyMaint",
                "/FO",
                "CSV",
                "/V",
                "/NH"
            ]
        );
        assert_eq!(line(&iisreset()), ["iisreset.exe"]);
        let p = r"C:\Program Files\Connected\DataCenter\DRProcs\database_backup.sql";
        assert_eq!(
            line(&sqlcmd(p, None)),
            ["sqlcmd.exe", "-E", "-b", "-S", ".", "-i", p]
        );
        assert_eq!(line(&sqlcmd(p, Some("Registry")))[7..], ["-d", "Registry"]);
    }

    #[test]
    fn powershell_runs_constant_scripts_with_inputs_only_in_the_environment() {
        let c = powershell(
            PS_BINDING_ENSURE,
            &[
                ("LOCKSTEP_SITE", "Default Web Site"),
                ("LOCKSTEP_PORT", "443"),
                ("LOCKSTEP_CN", "dc1.contoso.local"),
            ],
        );
        assert_eq!(
            line(&c)[..6],
            [
                "powershell.exe",
                "-NoProfile",
                "-NonInteractive",
                "-ExecutionPolicy",
                "Bypass",
                "-Command"
            ]
        );
        assert_eq!(
            c.args[5], PS_BINDING_ENSURE,
            "the script text is the constant, untouched"
        );
        assert!(!c.args[5].contains("dc1.contoso.local"));
        assert_eq!(
            c.env[2],
            ("LOCKSTEP_CN".to_string(), "dc1.contoso.local".to_string())
        );
        for script in [
            PS_DISK_FREE,
            PS_OS_VERSION,
            PS_EVENTS,
            PS_BINDINGS,
            PS_BINDING_ENSURE,
            PS_CERTIFICATES,
            PS_COUNTERS,
            PS_PROGRAM_VERSION,
        ] {
            assert!(
                !script.contains('\n'),
                "one line, so -Command gets it whole"
            );
        }
    }
}
