//! Simulated IIS and certificates: `iisreset` brings the Internet services up (stopped ones
//! included, as the real one does), and an HTTPS binding is ensured with the certificate whose
//! CN is asked for, recording the action only when something changed.

use lockstep_protocol::evidence::{Binding, ServiceRunState};
use lockstep_protocol::{Action, Evidence};

use super::{cn_of, SimulatedBackend};
use crate::backend::{ActionCtx, Failure};

impl SimulatedBackend {
    pub(super) fn iis_reset(&self, action: &Action, ctx: &ActionCtx) -> Result<Evidence, Failure> {
        self.update(|s| {
            Self::record(s, ctx, action);
            s.iis_resets += 1;
            // iisreset stops, then starts the Internet services — stopped ones included.
            for name in ["IISADMIN", "WAS", "W3SVC"] {
                if let Some(svc) = s.services.get_mut(name) {
                    svc.state = ServiceRunState::Running;
                }
            }
            Evidence::IisReset {
                output: "Attempting stop...\r\nInternet services successfully stopped\r\nAttempting start...\r\nInternet services successfully restarted".into(),
            }
        })
    }

    pub(super) fn https_binding_ensure(
        &self,
        action: &Action,
        site: &str,
        port: u16,
        common_name: &str,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        self.update(|s| {
            let cert = s
                .certificates
                .iter()
                .find(|c| cn_of(&c.subject).is_some_and(|cn| cn.eq_ignore_ascii_case(common_name)))
                .cloned();
            let Some(cert) = cert else {
                return Err(Failure::msg(format!(
                    "no certificate with CN={common_name} in LocalMachine\\My; install it first"
                )));
            };
            let Some((site_name, bindings)) = s
                .iis_sites
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(site))
            else {
                return Err(Failure::msg(format!("IIS site `{site}` does not exist")));
            };
            let site_name = site_name.clone();
            let before = bindings.clone();
            let changed = ensure_binding(bindings, port, &cert.thumbprint);
            let after = bindings.clone();
            if changed {
                Self::record(s, ctx, action);
            }
            Ok(Evidence::Bindings {
                site: site_name,
                bindings: after,
                before: Some(before),
                changed,
            })
        })?
    }

    pub(super) fn binding_list(&self, site: &str) -> Result<Evidence, Failure> {
        self.inspect(|s| {
            match s
                .iis_sites
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(site))
            {
                Some((k, b)) => Ok(Evidence::Bindings {
                    site: k.clone(),
                    bindings: b.clone(),
                    before: None,
                    changed: false,
                }),
                None => Err(Failure::msg(format!("IIS site `{site}` does not exist"))),
            }
        })?
    }

    pub(super) fn certificate_list(&self) -> Result<Evidence, Failure> {
        Ok(Evidence::Certificates {
            certificates: self.inspect(|s| s.certificates.clone())?,
        })
    }
}

/// Makes sure the https binding on `*:port:` carries `thumbprint`; true when it had to change.
fn ensure_binding(bindings: &mut Vec<Binding>, port: u16, thumbprint: &str) -> bool {
    let info = format!("*:{port}:");
    match bindings
        .iter_mut()
        .find(|b| b.protocol == "https" && b.binding_information == info)
    {
        Some(b) if b.certificate_thumbprint.as_deref() == Some(thumbprint) => false,
        Some(b) => {
            b.certificate_thumbprint = Some(thumbprint.to_string());
            true
        }
        None => {
            bindings.push(Binding {
                protocol: "https".into(),
                binding_information: info,
                certificate_thumbprint: Some(thumbprint.to_string()),
            });
            true
        }
    }
}
