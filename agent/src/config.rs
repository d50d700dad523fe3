//! The agent's configuration file (TOML): where it listens, where it keeps its key, pins and
//! journal, which backend it drives, and the allowlists every action's arguments must fit.
//!
//! Parsing is strict (unknown fields are errors). Defaults follow the vendor guide: the registry
//! keys it names, the WeeklyMaint/DailyMaint tasks, the Connected services group.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Which backend performs the actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Real Windows commands (sc.exe, reg.exe, schtasks.exe, PowerShell, iisreset.exe).
    #[default]
    Windows,
    /// A model of a Data Center server kept in a JSON file (see [`crate::backend::simulated`]).
    Simulated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Address and port to listen on, e.g. `0.0.0.0:9443`.
    pub listen: SocketAddr,
    /// Holds `agent.key.pem`, `agent.cert.pem`, `trusted.txt` (pins) and `journal.jsonl`.
    pub state_dir: PathBuf,
    #[serde(default)]
    pub backend: BackendKind,
    /// The simulated backend's state file (default `<state_dir>/simulated.json`).
    #[serde(default)]
    pub simulated_state: Option<PathBuf>,
    /// Short names of the Connected Backup services (SEED-NOTES "What is not public").
    #[serde(default = "default_connected_services")]
    pub connected_services: Vec<String>,
    /// The Data Center installation folder; bare file names (e.g. `DailyMaint.cmd`) resolve here.
    #[serde(default = "default_data_center_dir")]
    pub data_center_dir: String,
    /// Where the Data Center records its installed version (Windows backend).
    #[serde(default = "default_product_version_key")]
    pub product_version_key: String,
    #[serde(default = "default_product_version_value")]
    pub product_version_value: String,
    /// How each Connected component other than the Data Center is found among the installed
    /// programs (Windows backend): a `-like` pattern on the uninstall record's DisplayName, whose
    /// DisplayVersion is the component's own version. Defaults are assumptions (the product
    /// names are not in the guide; docs/SEED-ASSUMPTIONS.md); a site overrides them here.
    #[serde(default = "default_component_programs")]
    pub component_programs: std::collections::BTreeMap<lockstep_protocol::Component, String>,
    /// Performance counters summed for "current backup sessions" (Windows backend), if the site
    /// has them; without any, the backup-sessions action fails with a clear message.
    #[serde(default)]
    pub backup_session_counters: Vec<String>,
    #[serde(default)]
    pub allow: Allowlists,
}

/// What actions may touch. Everything outside is refused before anything runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Allowlists {
    /// Registry keys (and everything below them) that may be read or changed.
    pub registry_prefixes: Vec<String>,
    /// Folders whose files may be edited or run as SQL scripts.
    pub file_roots: Vec<String>,
    pub scheduled_tasks: Vec<String>,
    /// Services that may be named individually, besides the Connected group.
    pub services: Vec<String>,
    pub event_logs: Vec<String>,
    pub iis_sites: Vec<String>,
    pub installers: Vec<InstallerEntry>,
    /// SQL scripts that may run (the vendor's `DBMaint.sql`, …), each with the SHA-256 of the
    /// file as shipped: a script edited since is refused.
    pub sql_scripts: Vec<HashedFile>,
    /// `host:port` pairs the HTTP probe may reach; nothing else (loopback included).
    pub probe_targets: Vec<String>,
}

/// A file the agent may use as it is: its path and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashedFile {
    pub path: String,
    pub sha256: String,
}

/// An installer the agent may run: the exact file, its SHA-256 and its fixed arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallerEntry {
    pub path: String,
    pub sha256: String,
    #[serde(default)]
    pub args: Vec<String>,
}

pub fn default_connected_services() -> Vec<String> {
    [
        "BackupServer",
        "IndexServer",
        "PoolServer",
        "ReplicationServer",
        "Compactor",
        "DCAlerter",
        "dctomcat",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn default_component_programs(
) -> std::collections::BTreeMap<lockstep_protocol::Component, String> {
    use lockstep_protocol::Component;
    [
        (Component::SupportCenter, "*Connected*Support Center*"),
        (
            Component::AccountManagementWebsite,
            "*Connected*Account Management*",
        ),
        (Component::DatatransferApi, "*Connected*DataTransfer*"),
        (Component::ManagementApi, "*Connected*Management API*"),
    ]
    .into_iter()
    .map(|(c, p)| (c, p.to_string()))
    .collect()
}

pub fn default_data_center_dir() -> String {
    r"C:\Program Files\Connected\DataCenter".into()
}

fn default_product_version_key() -> String {
    r"HKLM\SOFTWARE\Wow6432Node\Connected\DataCenter".into()
}

fn default_product_version_value() -> String {
    "Version".into()
}

/// The keys the vendor guide has Lockstep touch, in every spelling it uses (SEED-NOTES 1, 2).
pub fn default_registry_prefixes() -> Vec<String> {
    [
        r"HKLM\SOFTWARE\Wow6432Node\SupportCenter",
        r"HKLM\SOFTWARE\Connected\WoW6432Node\SupportCenter",
        r"HKLM\SOFTWARE\Wow6432Node\Connected\SupportCenter",
        r"HKLM\SOFTWARE\Wow6432Node\Outflow",
        r"HKLM\SOFTWARE\Wow6432Node\Connected\Outflow",
        r"HKLM\SOFTWARE\Wow6432Node\Connected\MAPI",
        r"HKLM\SOFTWARE\Wow6432Node\Connected\SSWS",
        r"HKLM\SOFTWARE\Wow6432Node\Connected\DataCenter",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Default for Allowlists {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Allowlists {
            registry_prefixes: default_registry_prefixes(),
            file_roots: vec![default_data_center_dir()],
            scheduled_tasks: s(&["WeeklyMaint", "DailyMaint"]),
            services: s(&["W3SVC", "IISADMIN", "WAS", "MSSQLSERVER", "SQLSERVERAGENT"]),
            event_logs: s(&["Application", "System"]),
            iis_sites: s(&["Default Web Site"]),
            installers: Vec::new(),
            sql_scripts: Vec::new(),
            probe_targets: Vec::new(),
        }
    }
}

impl AgentConfig {
    /// A configuration with every default, listening on `listen` and keeping state in `state_dir`.
    pub fn new(listen: SocketAddr, state_dir: impl Into<PathBuf>, backend: BackendKind) -> Self {
        AgentConfig {
            listen,
            state_dir: state_dir.into(),
            backend,
            simulated_state: None,
            connected_services: default_connected_services(),
            data_center_dir: default_data_center_dir(),
            product_version_key: default_product_version_key(),
            product_version_value: default_product_version_value(),
            component_programs: default_component_programs(),
            backup_session_counters: Vec::new(),
            allow: Allowlists::default(),
        }
    }

    pub fn load(path: &Path) -> anyhow::Result<AgentConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let mut cfg: AgentConfig =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // Relative paths are relative to the configuration file, not the working directory.
        if let Some(base) = path.parent() {
            if cfg.state_dir.is_relative() {
                cfg.state_dir = base.join(&cfg.state_dir);
            }
            if let Some(p) = &cfg.simulated_state {
                if p.is_relative() {
                    cfg.simulated_state = Some(base.join(p));
                }
            }
        }
        for (i, inst) in cfg.allow.installers.iter().enumerate() {
            if inst.sha256.len() != 64 || hex::decode(&inst.sha256).is_err() {
                anyhow::bail!(
                    "{}: allow.installers[{i}].sha256 must be 64 hex digits",
                    path.display()
                );
            }
        }
        Ok(cfg)
    }

    pub fn simulated_state_path(&self) -> PathBuf {
        self.simulated_state
            .clone()
            .unwrap_or_else(|| self.state_dir.join("simulated.json"))
    }

    /// Where each Connected component records its own installed version (registry key, value
    /// name). The Data Center's is the configured product version; the others are assumptions
    /// written down in `docs/SEED-ASSUMPTIONS.md` (the guide names no version record for them).
    pub fn component_version_records(&self) -> Vec<(lockstep_protocol::Component, String, String)> {
        use lockstep_protocol::Component as C;
        let connected = r"HKLM\SOFTWARE\Wow6432Node\Connected";
        vec![
            (
                C::DataCenter,
                self.product_version_key.clone(),
                self.product_version_value.clone(),
            ),
            (
                C::SupportCenter,
                format!(r"{connected}\SupportCenter"),
                "Version".into(),
            ),
            (
                C::AccountManagementWebsite,
                format!(r"{connected}\SSWS"),
                "Version".into(),
            ),
            (
                C::DatatransferApi,
                format!(r"{connected}\DataTransferAPI"),
                "Version".into(),
            ),
            (
                C::ManagementApi,
                format!(r"{connected}\MAPI"),
                "Version".into(),
            ),
        ]
    }

    pub fn journal_path(&self) -> PathBuf {
        self.state_dir.join("journal.jsonl")
    }

    pub fn pins_path(&self) -> PathBuf {
        pins_path(&self.state_dir)
    }
}

/// Creates `dir` if needed and makes it private to the agent's account (0700 on Unix): it holds
/// the key, the pins and the journal (old and new registry values).
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

pub fn pins_path(state_dir: &Path) -> PathBuf {
    state_dir.join("trusted.txt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_file_gets_the_guides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:9443\"\nstate_dir = \"state\"\n").unwrap();
        let cfg = AgentConfig::load(&p).unwrap();
        assert_eq!(cfg.backend, BackendKind::Windows);
        assert_eq!(cfg.state_dir, dir.path().join("state"));
        assert!(cfg.connected_services.contains(&"BackupServer".to_string()));
        assert!(cfg
            .allow
            .registry_prefixes
            .iter()
            .any(|p| p.ends_with(r"Connected\MAPI")));
    }

    #[test]
    fn unknown_fields_and_bad_installer_hashes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(
            &p,
            "listen = \"127.0.0.1:1\"\nstate_dir = \"s\"\nshell = true\n",
        )
        .unwrap();
        assert!(AgentConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("shell"));
        std::fs::write(
            &p,
            "listen = \"127.0.0.1:1\"\nstate_dir = \"s\"\n[[allow.installers]]\npath = 'C:\\\\x.exe'\nsha256 = 'abc'\n",
        )
        .unwrap();
        assert!(AgentConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("sha256"));
    }
}
