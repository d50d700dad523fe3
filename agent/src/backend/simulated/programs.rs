//! Simulated programs run from a file: an installer must hash to what was requested, takes its
//! configured time and, when it succeeds, changes the product version (in the state and in the
//! registry record the Windows backend reads); a SQL script must match the allowlist's hash.

use std::time::Duration;

use lockstep_protocol::{Action, Evidence};

use super::SimulatedBackend;
use crate::backend::{check_script_hash, ActionCtx, Failure};
use crate::policy::{normalize_path, resolve_path};

impl SimulatedBackend {
    pub(super) async fn installer_run(
        &self,
        action: &Action,
        path: &str,
        sha256: &str,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let p = normalize_path(path).map_err(|e| Failure::msg(e.message))?;
        let Some(inst) = self.inspect(|s| {
            s.installers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&p))
                .map(|(_, v)| v.clone())
        })?
        else {
            return Err(Failure::msg(format!("installer `{p}` is not on this host")));
        };
        // The file on disk must hash to what was allowlisted and requested.
        if !inst.sha256.eq_ignore_ascii_case(sha256) {
            return Err(Failure::msg(format!(
                "installer `{p}` hashes to {} on this host, not {sha256}; not run",
                inst.sha256
            )));
        }
        self.update(|s| Self::record(s, ctx, action))?;
        ctx.log(format!("running {p}"));
        ctx.pause(Duration::from_millis(inst.duration_ms)).await?;
        let version = self.update(|s| {
            if inst.exit_code == 0 {
                let v = s
                    .faults
                    .version_after_setup
                    .clone()
                    .unwrap_or(inst.installs_version.clone());
                s.product_version = Some(v.clone());
                let key = self.product_version_key.clone();
                let k = s.registry_key(&key).cloned().unwrap_or(key);
                s.registry
                    .entry(k)
                    .or_default()
                    .insert(self.product_version_value.clone(), v);
            }
            s.product_version.clone()
        })?;
        let ev = Evidence::Installed {
            path: p.clone(),
            sha256: inst.sha256.clone(),
            exit_code: inst.exit_code,
            product_version: version,
        };
        if inst.exit_code == 0 {
            Ok(ev)
        } else {
            Err(Failure::Failed {
                message: format!("installer exited with {}", inst.exit_code),
                evidence: Some(ev),
            })
        }
    }

    pub(super) fn sql_script(
        &self,
        action: &Action,
        path: &str,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let p = resolve_path(&self.config, path).map_err(|e| Failure::msg(e.message))?;
        let config = &self.config;
        self.update(|s| {
            let Some(text) = s
                .files
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&p))
                .map(|(_, v)| v.clone())
            else {
                return Err(Failure::msg(format!("script `{p}` does not exist")));
            };
            check_script_hash(config, &p, text.as_bytes())?;
            Self::record(s, ctx, action);
            Ok(Evidence::SqlScript {
                path: p.clone(),
                exit_code: 0,
                output: "(simulated) script ran".into(),
            })
        })?
    }
}
