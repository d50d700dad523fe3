//! A whole simulated Data Center from one description: per server a simulated agent (the
//! agent crate's simulated backend), a TDS endpoint where the server holds a database, and IIS
//! endpoints where it hosts Web Services or the Management API — each server on its own
//! loopback address (127.0.0.x), all sharing one host state so the pieces agree.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lockstep_agent::backend::simulated::{SimState, SimulatedHost, DATA_CENTER_DIR};
use lockstep_agent::config::{AgentConfig, BackendKind};
use lockstep_agent::server::RunningAgent;
use lockstep_agent::simulated_agent::start_simulated_agent;
use lockstep_agent::tls::Thumbprint;
use lockstep_protocol::evidence::{CertificateInfo, ServiceRunState};
use lockstep_protocol::facts::{DatabaseFileFact, DatabaseFileKind};
use lockstep_protocol::Component;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::certs::SimCa;
use crate::description::{Description, ServerDescription};
use crate::iis::{WebEndpoint, WebSpec, REGISTRY_CONNECT_KEYS};
use crate::sql::{InstanceSpec, OutflowRow, SqlInstance};
use crate::tds::{self, TdsHandle};

/// How to start the simulated Data Center.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Agents' identities, journals and host state files live under `dir/<server>/`.
    pub dir: PathBuf,
    /// Orchestrator certificate thumbprints the agents accept.
    pub orchestrator_pins: Vec<Thumbprint>,
    /// First loopback address: server i listens on 127.0.0.(first_ip + i).
    pub first_ip: u8,
    /// The SQL login every simulated SQL Server accepts.
    pub sql_user: String,
    pub sql_password: String,
    /// Start no agents: seed each host's state file and write a `lockstep-agent` configuration
    /// (`dir/<server>/agent.toml`) for a separate agent process to drive it.
    pub external_agents: bool,
}

impl SimOptions {
    pub fn new(dir: impl Into<PathBuf>) -> SimOptions {
        SimOptions {
            dir: dir.into(),
            orchestrator_pins: Vec::new(),
            first_ip: 10,
            sql_user: "lockstep".into(),
            sql_password: "simulated-Passw0rd".into(),
            external_agents: false,
        }
    }
}

/// One simulated server's running parts.
pub struct SimServer {
    pub description: ServerDescription,
    pub ip: IpAddr,
    pub host: Arc<SimulatedHost>,
    pub agent: Option<RunningAgent>,
    pub sql: Option<(SqlInstance, TdsHandle)>,
    pub web: Option<WebEndpoint>,
}

/// Where things are, for configuring Lockstep's executors (printed by `lockstep-sim`).
#[derive(Debug, Clone, Serialize)]
pub struct Endpoints {
    pub name: String,
    /// Server → agent URL and its certificate thumbprint.
    pub agents: BTreeMap<String, AgentEndpoint>,
    /// With external agents: server → the `lockstep-agent` configuration file to run it with.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub agent_configs: BTreeMap<String, PathBuf>,
    /// Server → TDS address (encryption off: the simulator does not do TDS TLS).
    pub sql: BTreeMap<String, SocketAddr>,
    pub sql_user: String,
    pub sql_password: String,
    /// Host names (FQDN and certificate CN) → web endpoint address, for probe resolution.
    pub resolve: BTreeMap<String, SocketAddr>,
    /// The simulated site CA (issuer of `trusted-ca` certificates), PEM.
    pub ca_pem: String,
    /// Self-signed server certificates, PEM, by server (a site would import these to trust them).
    pub self_signed_pem: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentEndpoint {
    pub url: String,
    pub thumbprint: String,
}

pub struct SimulatedDataCenter {
    pub description: Description,
    pub ca: SimCa,
    pub servers: Vec<SimServer>,
    options: SimOptions,
}

fn outflow_rows(d: &Description) -> Vec<OutflowRow> {
    d.servers
        .iter()
        .filter(|s| s.has("datatransfer-api"))
        .enumerate()
        .map(|(i, s)| OutflowRow {
            server_id: i as i32 + 1,
            // Where the CN differs, the previous upgrade's post-installation step left the CN.
            url: format!("{}/ose/OutflowServiceExtension.dll", s.datatransfer_host()),
            secure_flag: s.datatransfer.as_ref().map(|d| d.ssl).unwrap_or(true),
        })
        .collect()
}

fn seed_state(s: &ServerDescription, registry: &str) -> SimState {
    let mut st = SimState::data_center_server(&s.name, &s.connected_version);
    if let Some(w) = &s.windows {
        st.windows = w.clone();
    }
    st.sql_server = s.sql_server.clone();
    if s.hosts_web() {
        let connect = format!(
            "DRIVER={{SQL Server Native Client 11.0}};SERVER={registry};DATABASE=Registry;Trusted_Connection=Yes"
        );
        st.set_registry(REGISTRY_CONNECT_KEYS[0], "RegistryConnect", &connect);
        st.set_registry(
            r"HKLM\SOFTWARE\Wow6432Node\Outflow",
            "DB_PreferedRegistry",
            registry,
        );
    }
    // Each Web Services application and the Management API keeps its own installed version
    // (the Management API may lag behind the Data Center when its installer fails).
    for (role, component) in [
        ("support-center", Component::SupportCenter),
        (
            "account-management-website",
            Component::AccountManagementWebsite,
        ),
        ("datatransfer-api", Component::DatatransferApi),
        ("management-api", Component::ManagementApi),
    ] {
        if s.has(role) {
            st.components.insert(component, s.connected_version.clone());
        }
    }
    for (path, text) in crate::scripts::SITE_SCRIPTS {
        st.files
            .insert(format!(r"{DATA_CENTER_DIR}\{path}"), text.to_string());
    }
    // The databases' files, the sizes the TDS endpoint reports too (all on C:, as seeded).
    let facts = s.facts.clone().unwrap_or_default();
    let file = |database: &str, kind: DatabaseFileKind, ext: &str, size_mb: u64| DatabaseFileFact {
        database: database.into(),
        kind,
        path: format!(r"C:\Program Files\Microsoft SQL Server\MSSQL\DATA\{database}.{ext}"),
        drive: "C:".into(),
        size_mb,
    };
    if s.has("registry") {
        st.database_files.push(file(
            "Registry",
            DatabaseFileKind::Data,
            "mdf",
            facts.registry_mdf_mb.unwrap_or(2048),
        ));
        st.database_files.push(file(
            "Registry",
            DatabaseFileKind::Log,
            "ldf",
            facts.registry_ldf_mb.unwrap_or(512),
        ));
    }
    if s.has("directory") {
        st.database_files
            .push(file("Directory", DatabaseFileKind::Data, "mdf", 1024));
        st.database_files
            .push(file("Directory", DatabaseFileKind::Log, "ldf", 256));
    }
    if !s.has_database() {
        st.sql_accounts = None;
    }
    st
}

/// Seeds a host's state file and writes the configuration a `lockstep-agent` process runs it
/// with: the simulated backend on that file, listening on the server's loopback address.
fn external_agent(
    dir: &Path,
    listen: SocketAddr,
    seed: &SimState,
) -> anyhow::Result<Arc<SimulatedHost>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let mut config = AgentConfig::new(listen, dir, BackendKind::Simulated);
    config.simulated_state = Some(dir.join("simulated.json"));
    let host = SimulatedHost::create(config.simulated_state_path(), seed)?;
    let text = toml::to_string(&config)?;
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Arc::new(host))
}

impl SimulatedDataCenter {
    /// Starts every part. Fails with the server and part that could not start.
    pub async fn start(
        description: Description,
        options: SimOptions,
    ) -> anyhow::Result<SimulatedDataCenter> {
        let ca = SimCa::new(&format!("{} Issuing CA", description.name))?;
        let registry = description
            .primary_registry()
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let rows = outflow_rows(&description);
        let mut servers = Vec::new();
        for (i, s) in description.servers.iter().enumerate() {
            let ip = IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                options.first_ip.saturating_add(i as u8),
            ));
            let dir = options.dir.join(&s.name);
            let seed = seed_state(s, &registry);
            let (agent, host) = if options.external_agents {
                let host = external_agent(&dir, SocketAddr::new(ip, 0), &seed)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", s.name))?;
                (None, host)
            } else {
                let (agent, host) = start_simulated_agent(
                    &dir,
                    SocketAddr::new(ip, 0),
                    Some(&seed),
                    options.orchestrator_pins.clone(),
                    |_| {},
                )
                .await
                .map_err(|e| {
                    anyhow::anyhow!("{}: the simulated agent did not start: {e}", s.name)
                })?;
                (Some(agent), host)
            };
            let sql = if s.has_database() {
                let facts = s.facts.clone().unwrap_or_default();
                let inst = SqlInstance::new(InstanceSpec {
                    server_name: s.name.clone(),
                    has_registry: s.has("registry"),
                    has_directory: s.has("directory"),
                    outflow: if s.has("registry") {
                        rows.clone()
                    } else {
                        vec![]
                    },
                    registry_mdf_mb: facts.registry_mdf_mb.unwrap_or(2048),
                    registry_ldf_mb: facts.registry_ldf_mb.unwrap_or(512),
                    logins: vec![(options.sql_user.clone(), options.sql_password.clone())],
                })?;
                let l = TcpListener::bind(SocketAddr::new(ip, 0))
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "{}: the TDS endpoint could not listen on {ip}: {e}",
                            s.name
                        )
                    })?;
                let service = host.clone();
                let available: tds::Availability = Arc::new(move || {
                    service
                        .read()
                        .ok()
                        .and_then(|st| {
                            st.services
                                .get("MSSQLSERVER")
                                .map(|s| s.state == ServiceRunState::Running)
                        })
                        .unwrap_or(true)
                });
                let h = tds::spawn_gated(l, inst.clone(), available)?;
                Some((inst, h))
            } else {
                None
            };
            let web = if s.has("support-center")
                || s.has("datatransfer-api")
                || s.has("management-api")
            {
                let spec = WebSpec {
                    name: s.name.clone(),
                    fqdn: s.fqdn.clone(),
                    certificate_cn: s.certificate.as_ref().map(|c| c.common_name.clone()),
                    trusted: s
                        .certificate
                        .as_ref()
                        .map(|c| c.issuer == "trusted-ca")
                        .unwrap_or(false),
                    support_center: s.has("support-center"),
                    datatransfer: s.has("datatransfer-api"),
                    management_api: s.has("management-api"),
                };
                let l = TcpListener::bind(SocketAddr::new(ip, 0))
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "{}: the web endpoint could not listen on {ip}: {e}",
                            s.name
                        )
                    })?;
                let ep = WebEndpoint::start(l, spec, &ca, host.clone())?;
                // The certificate IIS binds is in the machine's store, where the agent finds it.
                if let (Some(der), Some(c)) = (ep.certificate_der(), &s.certificate) {
                    let subject = format!("CN={}", c.common_name);
                    let issuer = if c.issuer == "trusted-ca" {
                        format!("CN={} Issuing CA", description.name)
                    } else {
                        subject.clone()
                    };
                    let info = CertificateInfo {
                        thumbprint: Thumbprint::of(der).to_string(),
                        subject,
                        issuer,
                        not_after: (time::OffsetDateTime::now_utc() + time::Duration::days(365))
                            .unix_timestamp(),
                    };
                    // rcgen puts the CN in the SAN extension too (certs::leaf_params).
                    let sans = vec![c.common_name.clone()];
                    host.update(|st| {
                        st.certificate_sans.insert(info.thumbprint.clone(), sans);
                        // IIS serves it already (the web endpoint above answers HTTPS with it):
                        // bound on 443 as the previous installation left it, so preflight sees
                        // the site as it is.
                        let https = lockstep_protocol::evidence::Binding {
                            protocol: "https".into(),
                            binding_information: "*:443:".into(),
                            certificate_thumbprint: Some(info.thumbprint.clone()),
                        };
                        let site = st.iis_sites.entry("Default Web Site".into()).or_default();
                        if !site.iter().any(|b| b.protocol == "https") {
                            site.push(https);
                        }
                        st.certificates.push(info);
                    })?;
                }
                Some(ep)
            } else {
                None
            };
            servers.push(SimServer {
                description: s.clone(),
                ip,
                host,
                agent,
                sql,
                web,
            });
        }
        Ok(SimulatedDataCenter {
            description,
            ca,
            servers,
            options,
        })
    }

    /// Parses an inventory file and starts it.
    pub async fn start_file(
        path: &Path,
        options: SimOptions,
    ) -> anyhow::Result<SimulatedDataCenter> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let d =
            Description::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::start(d, options).await
    }

    pub fn server(&self, name: &str) -> Option<&SimServer> {
        self.servers
            .iter()
            .find(|s| s.description.name.eq_ignore_ascii_case(name))
    }

    pub fn sql(&self, name: &str) -> Option<&SqlInstance> {
        self.server(name)
            .and_then(|s| s.sql.as_ref().map(|(i, _)| i))
    }

    pub fn web(&self, name: &str) -> Option<&WebEndpoint> {
        self.server(name).and_then(|s| s.web.as_ref())
    }

    pub fn host(&self, name: &str) -> Option<&Arc<SimulatedHost>> {
        self.server(name).map(|s| &s.host)
    }

    pub fn endpoints(&self) -> Endpoints {
        let mut e = Endpoints {
            name: self.description.name.clone(),
            agents: BTreeMap::new(),
            agent_configs: BTreeMap::new(),
            sql: BTreeMap::new(),
            sql_user: self.options.sql_user.clone(),
            sql_password: self.options.sql_password.clone(),
            resolve: BTreeMap::new(),
            ca_pem: self.ca.pem(),
            self_signed_pem: BTreeMap::new(),
        };
        for s in &self.servers {
            let n = s.description.name.clone();
            if let Some(a) = &s.agent {
                e.agents.insert(
                    n.clone(),
                    AgentEndpoint {
                        url: a.url(),
                        thumbprint: a.thumbprint.to_string(),
                    },
                );
            }
            if self.options.external_agents {
                e.agent_configs
                    .insert(n.clone(), self.options.dir.join(&n).join("agent.toml"));
            }
            if let Some((_, h)) = &s.sql {
                e.sql.insert(n.clone(), h.addr);
            }
            if let Some(w) = &s.web {
                e.resolve
                    .insert(s.description.fqdn.to_ascii_lowercase(), w.addr);
                e.resolve
                    .insert(s.description.name.to_ascii_lowercase(), w.addr);
                if let Some(c) = &s.description.certificate {
                    e.resolve.insert(c.common_name.to_ascii_lowercase(), w.addr);
                    if c.issuer != "trusted-ca" {
                        if let Some(pem) = w.certificate_pem() {
                            e.self_signed_pem.insert(n.clone(), pem.to_string());
                        }
                    }
                }
            }
        }
        e
    }

    /// Stops the agents; the TDS and web endpoints close when this value is dropped.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for s in &mut self.servers {
            if let Some(a) = s.agent.take() {
                a.stop().await?;
            }
        }
        Ok(())
    }
}
