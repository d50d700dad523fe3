//! What each agent last reported about its server (`GET /v1/facts`, collected by
//! [`crate::executors::agent::collector`]), shaped for the Agents and Data Center pages: tables
//! per server (versions, releases, services, volumes with the database files on them, SQL
//! Server accounts, TLS protocols, certificates, errors) and how old the facts are. Text from
//! agents is escaped by askama like any other.

use std::collections::BTreeMap;

use askama::Template;
use lockstep_protocol::facts::DatabaseFileKind;

use crate::executors::agent::registry::StoredFacts;
use crate::web::views::{fmt_duration, fmt_time};

pub struct ComponentRow {
    pub label: &'static str,
    pub version: String,
}

pub struct ServiceRow {
    pub name: String,
    pub state: String,
    pub startup: String,
}

pub struct VolumeRow {
    pub drive: String,
    pub free: String,
    pub total: String,
    /// "Registry data 2048 MB", one per database file on this volume.
    pub files: Vec<String>,
}

pub struct CertRow {
    pub cn: String,
    pub sans: String,
    pub issuer: String,
    pub expires: String,
    pub bindings: String,
}

pub struct ServerFacts {
    pub server: String,
    pub age: String,
    /// Older than the staleness limit: preflight does not trust them.
    pub stale: bool,
    pub components: Vec<ComponentRow>,
    pub windows: String,
    pub sql_server: String,
    pub services: Vec<ServiceRow>,
    pub services_missing: String,
    pub volumes: Vec<VolumeRow>,
    pub sql_accounts: String,
    pub tls: Vec<(String, String)>,
    pub certificates: Vec<CertRow>,
    pub session_counters: &'static str,
    pub errors: Vec<String>,
}

/// The facts of every server in `servers` (in that order) that has any.
#[derive(Template)]
#[template(path = "partials/site_facts.html")]
pub struct SiteFactsPartial {
    pub servers: Vec<ServerFacts>,
    /// Shown when no server has facts yet.
    pub empty: String,
}

fn mb(n: u64) -> String {
    if n >= 10 * 1024 {
        format!("{:.1} GB", n as f64 / 1024.0)
    } else {
        format!("{n} MB")
    }
}

fn view(s: &StoredFacts, now: i64, stale_secs: i64) -> ServerFacts {
    let f = &s.facts;
    let age = s.age_secs(now);
    let volumes = f
        .volumes
        .iter()
        .map(|v| VolumeRow {
            drive: v.drive.clone(),
            free: mb(v.free_mb),
            total: mb(v.total_mb),
            files: f
                .database_files
                .iter()
                .filter(|d| d.drive.eq_ignore_ascii_case(&v.drive))
                .map(|d| {
                    let kind = match d.kind {
                        DatabaseFileKind::Data => "data",
                        DatabaseFileKind::Log => "log",
                    };
                    format!("{} {kind} {}", d.database, mb(d.size_mb))
                })
                .collect(),
        })
        .collect();
    ServerFacts {
        server: s.server.clone(),
        age: fmt_duration(age),
        stale: age > stale_secs,
        components: f
            .components
            .iter()
            .map(|c| ComponentRow {
                label: c.component.label(),
                version: c.version.clone(),
            })
            .collect(),
        windows: f.windows.clone().unwrap_or_else(|| "unknown".into()),
        sql_server: f
            .sql_server
            .clone()
            .unwrap_or_else(|| "not installed".into()),
        services: f
            .services
            .iter()
            .map(|sv| ServiceRow {
                name: sv.name.clone(),
                state: format!("{:?}", sv.state),
                startup: sv
                    .startup
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        services_missing: f.services_missing.join(", "),
        volumes,
        sql_accounts: f
            .sql_accounts
            .as_ref()
            .map(|a| {
                format!(
                    "SQL Server {} · SQL Server Agent {}",
                    a.sql_server, a.sql_agent
                )
            })
            .unwrap_or_else(|| "unknown".into()),
        tls: f
            .tls_protocols
            .iter()
            .map(|t| {
                let setting = match t.enabled {
                    Some(true) => "enabled",
                    Some(false) => "disabled",
                    None => "not set (Windows default)",
                };
                (t.protocol.clone(), setting.to_string())
            })
            .collect(),
        certificates: f
            .certificates
            .iter()
            .map(|c| CertRow {
                cn: c.subject_cn.clone(),
                sans: c.sans.join(", "),
                issuer: c.issuer.clone(),
                expires: fmt_time(c.not_after),
                bindings: if c.bindings.is_empty() {
                    "none".into()
                } else {
                    c.bindings.join(", ")
                },
            })
            .collect(),
        session_counters: if f.session_counters {
            "available"
        } else {
            "unavailable (the drain is watched by a person)"
        },
        errors: f.errors.clone(),
    }
}

/// The partial for `servers` (inventory order), from every server's stored facts.
pub fn partial(
    servers: &[String],
    all: &BTreeMap<String, StoredFacts>,
    now: i64,
    stale_secs: i64,
) -> SiteFactsPartial {
    let servers = servers
        .iter()
        .filter_map(|name| {
            all.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, s)| view(s, now, stale_secs))
        })
        .collect();
    SiteFactsPartial {
        servers,
        empty: "No agent has reported facts yet.".into(),
    }
}
