//! Registry actions on Windows through `reg.exe`: read before write, and read again after a
//! write to prove it took.

use std::time::Duration;

use lockstep_protocol::evidence::RegistryValue;
use lockstep_protocol::Evidence;

use super::{commands, parse, WindowsBackend};
use crate::backend::{ActionCtx, Failure};
use crate::policy::normalize_registry_key;

impl WindowsBackend {
    pub(super) async fn reg_get(
        &self,
        key: &str,
        name: &str,
        ctx: &ActionCtx,
    ) -> Result<RegistryValue, Failure> {
        let k = normalize_registry_key(key).map_err(|e| Failure::msg(e.message))?;
        let key_out = self
            .exec(&commands::reg_query_key(&k), Duration::from_secs(30), ctx)
            .await?;
        if key_out.code != 0 {
            if parse::reg_not_found(&key_out.stderr) {
                return Ok(RegistryValue {
                    key: k,
                    name: name.into(),
                    key_exists: false,
                    value: None,
                });
            }
            return Err(Failure::msg(format!(
                "reg query {k}: {}",
                key_out.stderr.trim()
            )));
        }
        let o = self
            .exec(
                &commands::reg_query_value(&k, name),
                Duration::from_secs(30),
                ctx,
            )
            .await?;
        let value = if o.code == 0 {
            parse::reg_value(&o.stdout, name).map_err(Failure::msg)?
        } else {
            None
        };
        Ok(RegistryValue {
            key: k,
            name: name.into(),
            key_exists: true,
            value,
        })
    }

    pub(super) async fn registry_set(
        &self,
        key: &str,
        name: &str,
        value: &str,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let before = self.reg_get(key, name, ctx).await?;
        self.ok(&commands::reg_add(&before.key, name, value), ctx)
            .await?;
        let after = self.reg_get(key, name, ctx).await?;
        if after.value.as_deref() != Some(value) {
            return Err(Failure::msg(format!(
                "{}\\{name} reads {:?} after setting it",
                after.key, after.value
            )));
        }
        Ok(Evidence::RegistryChanged {
            key: before.key,
            name: name.to_string(),
            previous: before.value,
            now: value.to_string(),
        })
    }

    /// Deletes one value (`name`) or the whole key; the evidence keeps what was there.
    pub(super) async fn registry_delete(
        &self,
        key: &str,
        name: Option<&str>,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let k = normalize_registry_key(key).map_err(|e| Failure::msg(e.message))?;
        let q = self
            .exec(&commands::reg_query_key(&k), Duration::from_secs(30), ctx)
            .await?;
        if q.code != 0 {
            return Ok(Evidence::RegistryDeleted {
                key: k,
                name: name.map(str::to_string),
                previous: vec![],
                existed: false,
            });
        }
        let all = parse::reg_values(&q.stdout);
        let previous: Vec<(String, String)> = match name {
            Some(n) => all
                .into_iter()
                .filter(|(x, _)| x.eq_ignore_ascii_case(n))
                .collect(),
            None => all,
        };
        let existed = name.is_none() || !previous.is_empty();
        if existed {
            let c = match name {
                Some(n) => commands::reg_delete_value(&k, n),
                None => commands::reg_delete_key(&k),
            };
            self.ok(&c, ctx).await?;
        }
        Ok(Evidence::RegistryDeleted {
            key: k,
            name: name.map(str::to_string),
            previous,
            existed,
        })
    }
}
