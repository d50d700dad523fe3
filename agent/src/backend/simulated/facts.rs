//! The simulated host's facts, read from the same [`SimState`] the actions change: a service a
//! fault removed is missing here too, a DCAlerter set to disabled reports disabled, a Management
//! API whose Setup failed reports its old version. Nothing here describes the host separately.

use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::facts::{
    CertificateFact, ComponentVersion, ServiceFact, TlsProtocolFact, VolumeFact,
};
use lockstep_protocol::{Component, SiteFacts, PROTOCOL_VERSION};

use super::cn_of;
use super::state::SimState;

/// What the agent reports about `s`: `connected` is the agent's configured Connected service
/// group (in the guide's stop order), `now` the agent's clock in Unix seconds.
pub fn facts_of(s: &SimState, connected: &[String], now: i64) -> SiteFacts {
    let (services, services_missing) = services_of(s, connected);
    let components = Component::ALL
        .into_iter()
        .filter_map(|c| {
            s.component_version(c).map(|v| ComponentVersion {
                component: c,
                version: v.to_string(),
            })
        })
        .collect();
    let volumes = s
        .disks
        .iter()
        .map(|(drive, d)| VolumeFact {
            drive: drive.clone(),
            free_mb: d.free_mb,
            total_mb: d.total_mb,
        })
        .collect();
    let tls_protocols = s
        .schannel
        .iter()
        .map(|(p, on)| TlsProtocolFact {
            protocol: p.clone(),
            enabled: Some(*on),
        })
        .collect();
    let certificates = certificates_of(s);
    SiteFacts {
        protocol: PROTOCOL_VERSION,
        hostname: s.hostname.clone(),
        collected_at: now,
        services,
        services_missing,
        components,
        volumes,
        database_files: s.database_files.clone(),
        sql_accounts: s.sql_accounts.clone(),
        tls_protocols,
        certificates,
        windows: Some(s.windows.clone()),
        sql_server: s.sql_server.clone(),
        session_counters: s.session_counters,
        errors: Vec::new(),
    }
}

/// The Connected services installed here, and the configured ones that are not.
fn services_of(s: &SimState, connected: &[String]) -> (Vec<ServiceFact>, Vec<String>) {
    let mut services = Vec::new();
    let mut services_missing = Vec::new();
    for name in connected {
        match s
            .services
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some((k, svc)) if svc.state != ServiceRunState::NotInstalled => {
                services.push(ServiceFact {
                    name: k.clone(),
                    state: svc.state,
                    startup: Some(svc.startup),
                })
            }
            _ => services_missing.push(name.clone()),
        }
    }
    (services, services_missing)
}

/// Certificates with their SANs and the IIS bindings that use each.
fn certificates_of(s: &SimState) -> Vec<CertificateFact> {
    s.certificates
        .iter()
        .map(|c| CertificateFact {
            thumbprint: c.thumbprint.clone(),
            subject_cn: cn_of(&c.subject).unwrap_or(&c.subject).to_string(),
            sans: s
                .certificate_sans
                .get(&c.thumbprint)
                .cloned()
                .unwrap_or_default(),
            issuer: c.issuer.clone(),
            not_after: c.not_after,
            bindings: s
                .iis_sites
                .iter()
                .flat_map(|(site, bs)| {
                    bs.iter()
                        .filter(|b| {
                            b.certificate_thumbprint
                                .as_deref()
                                .is_some_and(|t| t.eq_ignore_ascii_case(&c.thumbprint))
                        })
                        .map(move |b| format!("{site} {}", b.binding_information))
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::simulated::{SimulatedBackend, SimulatedHost};
    use crate::backend::{ActionCtx, Backend};
    use crate::config::{default_connected_services, AgentConfig, BackendKind};
    use lockstep_protocol::{Action, ServiceSelector, StartupType};
    use std::sync::Arc;

    fn backend(dir: &std::path::Path, st: &SimState) -> SimulatedBackend {
        let host = Arc::new(SimulatedHost::create(dir.join("sim.json"), st).unwrap());
        let cfg = AgentConfig::new("127.0.0.1:0".parse().unwrap(), dir, BackendKind::Simulated);
        SimulatedBackend::new(host, &cfg)
    }

    #[test]
    fn a_seeded_server_reports_its_services_versions_and_sql_server() {
        let mut st = SimState::data_center_server("DC1", "8.8.6");
        st.components
            .insert(Component::ManagementApi, "8.8.6".into());
        let f = facts_of(&st, &default_connected_services(), 1_000);
        assert_eq!(f.hostname, "DC1");
        assert_eq!(f.collected_at, 1_000);
        let names: Vec<&str> = f.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, default_connected_services(), "the guide's order");
        assert!(f.services_missing.is_empty());
        assert_eq!(f.version_of(Component::DataCenter), Some("8.8.6"));
        assert_eq!(f.version_of(Component::ManagementApi), Some("8.8.6"));
        assert_eq!(f.version_of(Component::SupportCenter), None);
        assert_eq!(f.sql_server.as_deref(), Some("2008 R2 SP3"));
        assert_eq!(f.volumes[0].drive, "C:");
        assert!(f.session_counters);
    }

    #[tokio::test]
    async fn facts_follow_the_changes_actions_and_faults_make_to_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = SimState::data_center_server("DC1", "8.8.6");
        st.components
            .insert(Component::ManagementApi, "8.8.6".into());
        let b = backend(dir.path(), &st);
        // A context whose cancel sender stays alive (a detached one cannot pause).
        let (_cancel, rx) = tokio::sync::watch::channel(false);
        let ctx = |id: &str| {
            ActionCtx::new(
                lockstep_protocol::ActionId::new(id).unwrap(),
                None,
                rx.clone(),
            )
        };
        let before = b.facts().await;
        assert_eq!(
            before.service("DCAlerter").unwrap().startup,
            Some(StartupType::Automatic)
        );

        // An action changes the host: the facts see it.
        b.run(
            &Action::ServicesStop {
                services: ServiceSelector::Connected,
                timeout_secs: 5,
            },
            &ctx("t1"),
        )
        .await
        .unwrap();
        b.run(
            &Action::ServiceSetStartup {
                service: "DCAlerter".into(),
                startup: StartupType::Disabled,
            },
            &ctx("t2"),
        )
        .await
        .unwrap();
        // What a fault does to the host (a missing service, no counters, Setup that ran for the
        // Data Center but not for the Management API): the facts see it as well.
        b.host()
            .update(|s| {
                s.services.remove("Compactor");
                s.session_counters = false;
                s.product_version = Some("8.11".into());
            })
            .unwrap();
        let after = b.facts().await;
        assert!(after
            .services
            .iter()
            .all(|s| s.state == ServiceRunState::Stopped));
        assert_eq!(
            after.service("DCAlerter").unwrap().startup,
            Some(StartupType::Disabled)
        );
        assert_eq!(after.services_missing, vec!["Compactor".to_string()]);
        assert!(after.service("Compactor").is_none());
        assert!(!after.session_counters);
        assert_eq!(after.version_of(Component::DataCenter), Some("8.11"));
        assert_eq!(after.version_of(Component::ManagementApi), Some("8.8.6"));
    }

    #[test]
    fn certificates_carry_their_sans_and_the_bindings_that_use_them() {
        let mut st = SimState::data_center_server("WEB1", "8.8.6");
        st.certificates
            .push(lockstep_protocol::evidence::CertificateInfo {
                thumbprint: "AB12".into(),
                subject: "CN=web1.contoso.local, O=Contoso".into(),
                issuer: "CN=Contoso Issuing CA".into(),
                not_after: 2_000_000_000,
            });
        st.certificate_sans
            .insert("AB12".into(), vec!["web1.contoso.local".into()]);
        st.iis_sites.insert(
            "Default Web Site".into(),
            vec![lockstep_protocol::evidence::Binding {
                protocol: "https".into(),
                binding_information: "*:443:".into(),
                certificate_thumbprint: Some("ab12".into()),
            }],
        );
        let f = facts_of(&st, &[], 0);
        let c = &f.certificates[0];
        assert_eq!(c.subject_cn, "web1.contoso.local");
        assert_eq!(c.sans, vec!["web1.contoso.local".to_string()]);
        assert_eq!(c.bindings, vec!["Default Web Site *:443:".to_string()]);
    }
}
