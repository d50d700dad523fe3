//! The inventory: one Data Center described in one TOML file.
//!
//! The file format is a contract that other tools and people write, so parsing is strict: unknown
//! fields, bad enum values and impossible shapes are errors that name the file, line and field.
//! Once parsed, an [`Inventory`] can only hold a Data Center that could exist.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How the Data Center's servers are arranged (seed, chapter 1 "How the Upgrade Process Affects Users").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    Standalone,
    Mirrored,
    Clustered,
}

impl Topology {
    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Standalone => "standalone",
            Topology::Mirrored => "mirrored",
            Topology::Clustered => "clustered",
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The side of a mirrored or clustered Data Center a server belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Primary,
    Secondary,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Secondary => "secondary",
        }
    }
    pub fn other(self) -> Side {
        match self {
            Side::Primary => Side::Secondary,
            Side::Secondary => Side::Primary,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a server hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Holds a Registry database (the Registration Master in a cluster).
    Registry,
    /// Holds a Directory database.
    Directory,
    SupportCenter,
    AccountManagementWebsite,
    DatatransferApi,
    ManagementApi,
    ReportingServices,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Registry,
        Role::Directory,
        Role::SupportCenter,
        Role::AccountManagementWebsite,
        Role::DatatransferApi,
        Role::ManagementApi,
        Role::ReportingServices,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Registry => "registry",
            Role::Directory => "directory",
            Role::SupportCenter => "support-center",
            Role::AccountManagementWebsite => "account-management-website",
            Role::DatatransferApi => "datatransfer-api",
            Role::ManagementApi => "management-api",
            Role::ReportingServices => "reporting-services",
        }
    }

    /// Connected Web Services applications (the ones a redirect covers).
    pub fn is_web_service(self) -> bool {
        matches!(
            self,
            Role::SupportCenter | Role::AccountManagementWebsite | Role::DatatransferApi
        )
    }

    /// Roles that put a SQL Server database on the server.
    pub fn has_database(self) -> bool {
        matches!(self, Role::Registry | Role::Directory)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dotted Connected Backup version such as `8.8.6.1`. Compared numerically, missing parts are 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(Vec<u32>);

impl Version {
    pub fn new(parts: &[u32]) -> Version {
        Version(parts.to_vec())
    }
    pub fn parts(&self) -> &[u32] {
        &self.0
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let n = self.0.len().max(other.0.len());
        for i in 0..n {
            let a = self.0.get(i).copied().unwrap_or(0);
            let b = other.0.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                std::cmp::Ordering::Equal => continue,
                o => return o,
            }
        }
        std::cmp::Ordering::Equal
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for Version {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Result<Vec<u32>, _> = s.split('.').map(|p| p.parse::<u32>()).collect();
        match parts {
            Ok(p) if (2..=4).contains(&p.len()) => Ok(Version(p)),
            _ => Err(format!(
                "`{s}` is not a Connected Backup version (expected 2 to 4 dot-separated numbers, e.g. \"8.8.6\")"
            )),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s: Vec<String> = self.0.iter().map(|p| p.to_string()).collect();
        f.write_str(&s.join("."))
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Windows Server releases the seed names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WindowsVersion {
    #[serde(rename = "2008 R2")]
    W2008R2,
    #[serde(rename = "2012 R2")]
    W2012R2,
    #[serde(rename = "2016")]
    W2016,
}

impl WindowsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowsVersion::W2008R2 => "2008 R2",
            WindowsVersion::W2012R2 => "2012 R2",
            WindowsVersion::W2016 => "2016",
        }
    }
}

impl fmt::Display for WindowsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Windows Server {}", self.as_str())
    }
}

/// SQL Server releases the seed names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SqlServerVersion {
    #[serde(rename = "2008 R2 SP3")]
    S2008R2Sp3,
    #[serde(rename = "2012 SP4")]
    S2012Sp4,
    #[serde(rename = "2014 SP2")]
    S2014Sp2,
    #[serde(rename = "2016")]
    S2016,
}

impl SqlServerVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SqlServerVersion::S2008R2Sp3 => "2008 R2 SP3",
            SqlServerVersion::S2012Sp4 => "2012 SP4",
            SqlServerVersion::S2014Sp2 => "2014 SP2",
            SqlServerVersion::S2016 => "2016",
        }
    }

    /// The `Microsoft SQL Server\NNN\Tools\BINN` folder number of this release (SEED-NOTES 8).
    pub fn tools_folder(self) -> &'static str {
        match self {
            SqlServerVersion::S2008R2Sp3 => "100",
            SqlServerVersion::S2012Sp4 => "110",
            SqlServerVersion::S2014Sp2 => "120",
            SqlServerVersion::S2016 => "130",
        }
    }
}

impl fmt::Display for SqlServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SQL Server {}", self.as_str())
    }
}

/// Who issued the HTTPS certificate bound in IIS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Issuer {
    TrustedCa,
    SelfSigned,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub common_name: String,
    pub issuer: Issuer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataTransfer {
    /// `false` means "Disable DataTransfer API Support for SSL".
    pub ssl: bool,
}

/// Facts about a server that preflight rules need; gathered live by agents or SQL when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    pub free_disk_mb: Option<u64>,
    pub registry_mdf_mb: Option<u64>,
    pub registry_ldf_mb: Option<u64>,
    pub sql_service_account: Option<String>,
    pub sql_agent_account: Option<String>,
    /// TLS protocol versions enabled on the server, e.g. ["1.2"].
    pub tls_versions: Option<Vec<String>>,
    /// Whether SSL 2.0 / 3.0 are disabled.
    pub legacy_ssl_disabled: Option<bool>,
    /// Whether 64-bit-block ciphers (3DES) are disabled.
    pub weak_ciphers_disabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Host name as typed in the seed's dialogs (no domain); unique in the inventory.
    pub name: String,
    pub fqdn: String,
    pub side: Option<Side>,
    pub pair: Option<String>,
    pub roles: BTreeSet<Role>,
    pub connected_version: Version,
    pub windows: WindowsVersion,
    pub sql_server: Option<SqlServerVersion>,
    /// Where the server's agent listens, e.g. `https://dc1.contoso.local:9443`.
    pub agent: Option<String>,
    pub certificate: Option<Certificate>,
    pub datatransfer: Option<DataTransfer>,
    #[serde(default)]
    pub facts: Facts,
}

impl Server {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
    pub fn has_database(&self) -> bool {
        self.roles.iter().any(|r| r.has_database())
    }
    pub fn hosts_web_services(&self) -> bool {
        self.roles.iter().any(|r| r.is_web_service())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub name: String,
    pub topology: Topology,
    pub servers: Vec<Server>,
}

impl Inventory {
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// Servers holding a Registry database (Registration Masters in a cluster), primary first.
    pub fn registry_servers(&self) -> Vec<&Server> {
        let mut v: Vec<&Server> = self.servers.iter().filter(|s| s.has(Role::Registry)).collect();
        v.sort_by_key(|s| (s.side.map(|x| x as u8).unwrap_or(0), s.name.clone()));
        v
    }

    /// The Registry server on a side (stand-alone: the one Registry server).
    pub fn registry_on(&self, side: Option<Side>) -> Option<&Server> {
        self.servers
            .iter()
            .find(|s| s.has(Role::Registry) && (self.topology == Topology::Standalone || s.side == side))
    }
}
