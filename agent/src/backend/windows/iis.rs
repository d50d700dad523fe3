//! IIS and certificates on Windows: `iisreset`, HTTPS bindings (read, ensured, read again) and the
//! LocalMachine\My certificate list.

use lockstep_protocol::evidence::{Binding, ServiceRunState};
use lockstep_protocol::Evidence;

use super::{commands, parse, WindowsBackend};
use crate::backend::{ActionCtx, Failure};

impl WindowsBackend {
    /// `iisreset`, proven by its exit status and by W3SVC running afterwards — not by its
    /// (translated) "successfully restarted" sentence, which is kept only as evidence.
    pub(super) async fn iis_reset(&self, ctx: &ActionCtx) -> Result<Evidence, Failure> {
        let out = self.ok(&commands::iisreset(), ctx).await?;
        let w3svc = self.service_infos(&["W3SVC".to_string()], ctx).await?;
        if w3svc.iter().any(|s| s.state != ServiceRunState::Running) {
            return Err(Failure::msg(format!(
                "iisreset exited 0 but W3SVC is not running ({:?}): {}",
                w3svc.first().map(|s| s.state),
                out.trim()
            )));
        }
        Ok(Evidence::IisReset {
            output: out.trim().to_string(),
        })
    }

    async fn bindings(&self, site: &str, ctx: &ActionCtx) -> Result<Vec<Binding>, Failure> {
        let out = self
            .powershell(commands::PS_BINDINGS, &[("LOCKSTEP_SITE", site)], ctx)
            .await?;
        parse::bindings(&out).map_err(Failure::msg)
    }

    pub(super) async fn https_binding_ensure(
        &self,
        site: &str,
        port: u16,
        common_name: &str,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let before = self.bindings(site, ctx).await?;
        let p = port.to_string();
        self.powershell(
            commands::PS_BINDING_ENSURE,
            &[
                ("LOCKSTEP_SITE", site),
                ("LOCKSTEP_PORT", &p),
                ("LOCKSTEP_CN", common_name),
            ],
            ctx,
        )
        .await?;
        let after = self.bindings(site, ctx).await?;
        Ok(Evidence::Bindings {
            site: site.to_string(),
            changed: before != after,
            bindings: after,
            before: Some(before),
        })
    }

    pub(super) async fn binding_list(
        &self,
        site: &str,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        Ok(Evidence::Bindings {
            site: site.to_string(),
            bindings: self.bindings(site, ctx).await?,
            before: None,
            changed: false,
        })
    }

    pub(super) async fn certificate_list(&self, ctx: &ActionCtx) -> Result<Evidence, Failure> {
        let out = self.powershell(commands::PS_CERTIFICATES, &[], ctx).await?;
        Ok(Evidence::Certificates {
            certificates: parse::certificates(&out).map_err(Failure::msg)?,
        })
    }
}
