//! The simulator's own reading of an inventory file: only the fields it needs, without the
//! strictness of Lockstep's inventory parser (which the simulator must not depend on). Lockstep
//! checks inventories; the simulator builds whatever a checked inventory describes.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Description {
    pub name: String,
    pub topology: String,
    pub servers: Vec<ServerDescription>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerDescription {
    pub name: String,
    pub fqdn: String,
    #[serde(default)]
    pub side: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub connected_version: String,
    #[serde(default)]
    pub windows: Option<String>,
    #[serde(default)]
    pub sql_server: Option<String>,
    #[serde(default)]
    pub certificate: Option<CertificateDescription>,
    #[serde(default)]
    pub datatransfer: Option<DataTransferDescription>,
    #[serde(default)]
    pub facts: Option<FactsDescription>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CertificateDescription {
    pub common_name: String,
    /// `trusted-ca` or `self-signed`.
    pub issuer: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DataTransferDescription {
    pub ssl: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FactsDescription {
    #[serde(default)]
    pub registry_mdf_mb: Option<u64>,
    #[serde(default)]
    pub registry_ldf_mb: Option<u64>,
    #[serde(default)]
    pub free_disk_mb: Option<u64>,
}

impl ServerDescription {
    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
    pub fn has_database(&self) -> bool {
        self.has("registry") || self.has("directory")
    }
    pub fn hosts_web(&self) -> bool {
        [
            "support-center",
            "account-management-website",
            "datatransfer-api",
            "management-api",
        ]
        .iter()
        .any(|r| self.has(r))
    }
    /// The name the DataTransfer API is reached by: the certificate CN with SSL, else the FQDN.
    pub fn datatransfer_host(&self) -> &str {
        match (&self.certificate, &self.datatransfer) {
            (Some(c), Some(d)) if d.ssl => &c.common_name,
            (Some(c), None) => &c.common_name,
            _ => &self.fqdn,
        }
    }
}

impl Description {
    pub fn parse(toml_text: &str) -> Result<Description, String> {
        let d: Description = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        if d.servers.is_empty() {
            return Err("the inventory describes no servers".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &d.servers {
            if !names.insert(s.name.to_ascii_lowercase()) {
                return Err(format!("server `{}` appears twice", s.name));
            }
        }
        Ok(d)
    }

    /// The primary Registry server (stand-alone: the only one).
    pub fn primary_registry(&self) -> Option<&ServerDescription> {
        let regs: Vec<&ServerDescription> =
            self.servers.iter().filter(|s| s.has("registry")).collect();
        regs.iter()
            .find(|s| s.side.as_deref() == Some("primary"))
            .or(regs.first())
            .copied()
    }
}
