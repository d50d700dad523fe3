//! The inventory: one Data Center described in one TOML file.
//!
//! The file format is a contract that other tools and people write, so parsing is strict: unknown
//! fields, bad enum values and impossible shapes are errors that name the file, line and field.
//! Once parsed, an [`Inventory`] can only hold a Data Center that could exist.
//!
//! Parsing runs in two passes over a TOML tree that keeps every key's position (`tree.rs`): the
//! fields one by one (`parse.rs`), then the rules that span servers — topology shapes, unique
//! names, fields only some servers may have (`shape.rs`). Both passes report every problem, not
//! the first. Helpers at the end ([`Inventory::other_registry`], [`Inventory::directory_pairs`],
//! [`Inventory::stop_with_registry`], ...) answer the questions plan expansion and preflight ask.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod parse;
mod shape;
mod tree;

pub use parse::{check_fqdn, check_label};

/// The largest inventory file accepted, in bytes. A 2,000-server Data Center written out with
/// certificates and facts is under 1 MiB.
pub const MAX_INVENTORY_BYTES: usize = 2 * 1024 * 1024;
/// The most servers one inventory may list: plans, preflight and the drawing stay responsive up
/// to here (a 2,003-server estate plans in seconds; see `tests/plan_scale.rs`).
pub const MAX_SERVERS: usize = 5_000;
/// The longest text field (inventory name, pair, certificate name, accounts), in characters.
/// Host names and FQDNs have DNS's own limits (63 and 253).
pub const MAX_TEXT_CHARS: usize = 256;

/// TLS protocol versions Connected Backup 8.11 supports ("Enable the TLS Protocol").
pub const TLS_VERSIONS: [&str; 3] = ["1.0", "1.1", "1.2"];

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
pub enum ServerRole {
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

impl ServerRole {
    pub const ALL: [ServerRole; 7] = [
        ServerRole::Registry,
        ServerRole::Directory,
        ServerRole::SupportCenter,
        ServerRole::AccountManagementWebsite,
        ServerRole::DatatransferApi,
        ServerRole::ManagementApi,
        ServerRole::ReportingServices,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServerRole::Registry => "registry",
            ServerRole::Directory => "directory",
            ServerRole::SupportCenter => "support-center",
            ServerRole::AccountManagementWebsite => "account-management-website",
            ServerRole::DatatransferApi => "datatransfer-api",
            ServerRole::ManagementApi => "management-api",
            ServerRole::ReportingServices => "reporting-services",
        }
    }

    /// Connected Web Services applications (the ones a redirect covers).
    pub fn is_web_service(self) -> bool {
        matches!(
            self,
            ServerRole::SupportCenter
                | ServerRole::AccountManagementWebsite
                | ServerRole::DatatransferApi
        )
    }

    /// Roles that put a SQL Server database on the server.
    pub fn has_database(self) -> bool {
        matches!(self, ServerRole::Registry | ServerRole::Directory)
    }
}

impl fmt::Display for ServerRole {
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

impl Issuer {
    pub fn as_str(self) -> &'static str {
        match self {
            Issuer::TrustedCa => "trusted-ca",
            Issuer::SelfSigned => "self-signed",
        }
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub common_name: String,
    pub issuer: Issuer,
    /// The port of the IIS https binding, when known. The seed requires 443 on any server hosting
    /// the DataTransfer API; a server with only the Management API may use any port.
    #[serde(default)]
    pub port: Option<u16>,
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
    pub roles: BTreeSet<ServerRole>,
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
    pub fn has(&self, role: ServerRole) -> bool {
        self.roles.contains(&role)
    }
    pub fn has_database(&self) -> bool {
        self.roles.iter().any(|r| r.has_database())
    }
    pub fn hosts_web_services(&self) -> bool {
        self.roles.iter().any(|r| r.is_web_service())
    }

    /// Whether this server's DataTransfer API uses SSL: `None` when it hosts no DataTransfer API.
    /// Without a `[servers.datatransfer]` table the product default applies: SSL on ("By default,
    /// the DataTransfer API supports SSL", Upgrade Connected Backup, step 8).
    pub fn datatransfer_ssl(&self) -> Option<bool> {
        self.has(ServerRole::DatatransferApi)
            .then(|| self.datatransfer.as_ref().is_none_or(|d| d.ssl))
    }

    /// The certificate CN, when this is a DataTransfer node with SSL whose certificate CN is not
    /// its FQDN. The OutflowServices URL must then be reset to the FQDN before (re)installing and
    /// set to this CN afterwards ("Update the Data Transfer API URL in the Registry Database").
    pub fn outflow_cn_differs(&self) -> Option<&str> {
        if self.datatransfer_ssl() != Some(true) {
            return None;
        }
        let cert = self.certificate.as_ref()?;
        (!cert.common_name.eq_ignore_ascii_case(&self.fqdn)).then_some(cert.common_name.as_str())
    }
}

/// One problem in an inventory file: the line (when known), the field path such as
/// `servers[2].side`, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

/// Why an inventory was refused: every problem found, in file order where practical.
/// Displays as one `file:line: field: message` line per problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, p) in self.problems.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.file)?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if !p.field.is_empty() {
                write!(f, ": {}", p.field)?;
            }
            write!(f, ": {}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for InventoryError {}

/// A Data Center. Built by [`Inventory::from_toml`] (or checked by [`Inventory::validate`]);
/// deliberately not `Deserialize`, so no path skips the shape rules. Serializes to the file format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inventory {
    pub name: String,
    pub topology: Topology,
    pub servers: Vec<Server>,
}

impl Inventory {
    /// Parses and validates an inventory. `file` names the source in error messages
    /// (`examples/bad.toml:14: servers[2].side: ...`). Every problem is reported, not the first.
    pub fn from_toml(text: &str, file: &str) -> Result<Inventory, InventoryError> {
        let refuse = |problems| InventoryError {
            file: file.to_owned(),
            problems,
        };
        // Checked before parsing, so an oversized upload costs nothing but this comparison.
        if text.len() > MAX_INVENTORY_BYTES {
            return Err(refuse(vec![Problem {
                line: None,
                field: String::new(),
                message: format!(
                    "the inventory is {} bytes; the limit is {MAX_INVENTORY_BYTES} bytes (2 MiB)",
                    text.len()
                ),
            }]));
        }
        let root = tree::parse(text).map_err(|e| {
            refuse(vec![Problem {
                line: e.span.map(|s| tree::line_of(text, s.start)),
                field: String::new(),
                message: e.message,
            }])
        })?;
        let (inv, mut problems, lines) = parse::walk(text, &root);
        let Some(inv) = inv else {
            return Err(refuse(problems));
        };
        for p in shape::problems(&inv) {
            problems.push(Problem {
                line: Some(lines.of(&p.field)),
                field: p.field,
                message: p.message,
            });
        }
        if problems.is_empty() {
            Ok(inv)
        } else {
            problems.sort_by_key(|p| p.line);
            Err(refuse(problems))
        }
    }

    /// [`Inventory::from_toml`] for text without a file name (errors say `inventory`).
    pub fn parse(text: &str) -> Result<Inventory, InventoryError> {
        Inventory::from_toml(text, "inventory")
    }

    /// Reads and parses an inventory file; errors name the path as given.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError {
            file: file.clone(),
            problems: vec![Problem {
                line: None,
                field: String::new(),
                message: format!("cannot read the inventory: {e}"),
            }],
        })?;
        Inventory::from_toml(&text, &file)
    }

    /// Checks the cross-field rules (topology shapes, unique names, fields only some servers
    /// may have) on an inventory built in code. Problems carry no line.
    pub fn validate(self) -> Result<Inventory, InventoryError> {
        let problems: Vec<Problem> = shape::problems(&self)
            .into_iter()
            .map(|p| Problem {
                line: None,
                field: p.field,
                message: p.message,
            })
            .collect();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(InventoryError {
                file: "inventory".into(),
                problems,
            })
        }
    }

    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// Servers holding a Registry database (Registration Masters in a cluster), primary first.
    pub fn registry_servers(&self) -> Vec<&Server> {
        let mut v: Vec<&Server> = self
            .servers
            .iter()
            .filter(|s| s.has(ServerRole::Registry))
            .collect();
        v.sort_by_key(|s| (s.side.map(|x| x as u8).unwrap_or(0), s.name.clone()));
        v
    }

    /// The Registry server on a side (stand-alone: the one Registry server, whatever `side`).
    pub fn registry_on(&self, side: Option<Side>) -> Option<&Server> {
        self.servers.iter().find(|s| {
            s.has(ServerRole::Registry) && (self.topology == Topology::Standalone || s.side == side)
        })
    }

    /// The Registry server on the other side from `server` — where Web Services are redirected
    /// while `server`'s side is upgraded. `None` on a stand-alone Data Center or for a server
    /// without a side.
    pub fn other_registry(&self, server: &Server) -> Option<&Server> {
        if self.topology == Topology::Standalone {
            return None;
        }
        self.registry_on(Some(server.side?.other()))
    }

    /// Servers with `role`, in file order.
    pub fn with_role(&self, role: ServerRole) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(move |s| s.has(role))
    }

    /// Servers on `side`, in file order (none on a stand-alone Data Center).
    pub fn on_side(&self, side: Side) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(move |s| s.side == Some(side))
    }

    /// Data Center servers (holding a Registry or Directory database), in file order.
    pub fn data_center_servers(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(|s| s.has_database())
    }

    /// Data Center servers on `side` that stop and start with that side's Registration Master
    /// ("Upgrade the Data Center", step 1): the Registry server and every directory server on the
    /// side. Stand-alone (`side` ignored): the one Data Center server.
    pub fn stop_with_registry(&self, side: Option<Side>) -> Vec<&Server> {
        self.data_center_servers()
            .filter(|s| self.topology == Topology::Standalone || s.side == side)
            .collect()
    }

    /// Servers hosting a Connected Web Services application (Support Center, Account Management
    /// Website, DataTransfer API), in file order.
    pub fn web_servers(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().filter(|s| s.hosts_web_services())
    }

    /// Directory server pairs of a clustered Data Center, by pair name: (primary, secondary).
    pub fn directory_pairs(&self) -> Vec<(&str, &Server, &Server)> {
        let mut names: Vec<&str> = self
            .servers
            .iter()
            .filter_map(|s| s.pair.as_deref())
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|p| {
                let member = |side| {
                    self.servers
                        .iter()
                        .find(|s| s.pair.as_deref() == Some(p) && s.side == Some(side))
                };
                Some((p, member(Side::Primary)?, member(Side::Secondary)?))
            })
            .collect()
    }

    /// The other member of `server`'s directory pair (clustered only).
    pub fn pair_partner(&self, server: &Server) -> Option<&Server> {
        let pair = server.pair.as_deref()?;
        self.servers
            .iter()
            .find(|s| s.pair.as_deref() == Some(pair) && s.side != server.side)
    }

    /// The server hosting the Management API, if any (the vendor allows one per Data Center).
    pub fn management_api_server(&self) -> Option<&Server> {
        self.with_role(ServerRole::ManagementApi).next()
    }
}
