//! Programs the agent runs from a file: installers and SQL scripts. Both are hashed before they
//! run (the installer against the requested SHA-256, the script against the allowlist), and both
//! fail with their exit code and the evidence gathered.

use std::time::Duration;

use lockstep_protocol::Evidence;
use sha2::{Digest, Sha256};

use super::commands::{self, Cmd};
use super::WindowsBackend;
use crate::backend::{check_script_hash, ActionCtx, Failure};
use crate::policy::{normalize_path, resolve_path};

impl WindowsBackend {
    pub(super) async fn installer_run(
        &self,
        path: &str,
        sha256: &str,
        timeout_secs: u64,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let p = normalize_path(path).map_err(|e| Failure::msg(e.message))?;
        let bytes = std::fs::read(&p).map_err(|e| Failure::msg(format!("reading {p}: {e}")))?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(sha256) {
            return Err(Failure::msg(format!(
                "installer {p} hashes to {actual}, not {sha256}; not run"
            )));
        }
        // Arguments come from the allowlist, never from the request.
        let args = self
            .config
            .allow
            .installers
            .iter()
            .find(|e| e.path.eq_ignore_ascii_case(&p))
            .map(|e| e.args.clone())
            .unwrap_or_default();
        let c = Cmd {
            program: p.clone(),
            args,
            env: vec![],
        };
        let o = self
            .exec(&c, Duration::from_secs(timeout_secs), ctx)
            .await?;
        let ev = Evidence::Installed {
            path: p,
            sha256: actual,
            exit_code: o.code,
            product_version: self.product_version(ctx).await?,
        };
        if o.code == 0 {
            Ok(ev)
        } else {
            Err(Failure::Failed {
                message: format!("installer exited with {}", o.code),
                evidence: Some(ev),
            })
        }
    }

    pub(super) async fn sql_script(
        &self,
        path: &str,
        database: Option<&str>,
        timeout_secs: u64,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let p = resolve_path(&self.config, path).map_err(|e| Failure::msg(e.message))?;
        let bytes = std::fs::read(&p)
            .map_err(|e| Failure::msg(format!("reading SQL script `{p}`: {e}")))?;
        check_script_hash(&self.config, &p, &bytes)?;
        let o = self
            .exec(
                &commands::sqlcmd(&p, database),
                Duration::from_secs(timeout_secs),
                ctx,
            )
            .await?;
        let output: String = format!("{}{}", o.stdout, o.stderr)
            .chars()
            .take(16_384)
            .collect();
        let ev = Evidence::SqlScript {
            path: p,
            exit_code: o.code,
            output,
        };
        if o.code == 0 {
            Ok(ev)
        } else {
            Err(Failure::Failed {
                message: format!("sqlcmd exited with {}", o.code),
                evidence: Some(ev),
            })
        }
    }
}
