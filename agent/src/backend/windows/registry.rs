//! Registry actions on Windows through `reg.exe`: read before write, and read again after a
//! write to prove it took.
//!
//! Values are read with `reg export` ([`regfile`]), never from `reg query`'s console text: the
//! export is UTF-16 in a fixed syntax, so data with non-ASCII characters reads back exactly on
//! any Windows language. Whether a key is missing is never decided from reg's message (which is
//! translated): when the export fails, the key's parent is listed and the key looked for in it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lockstep_protocol::evidence::RegistryValue;
use lockstep_protocol::Evidence;

use super::regfile::{self, RegData, RegEntry};
use super::{commands, parse, WindowsBackend};
use crate::backend::{ActionCtx, Failure};
use crate::policy::normalize_registry_key;

/// Numbers the export files of concurrent reads apart.
static EXPORTS: AtomicU64 = AtomicU64::new(0);

impl WindowsBackend {
    pub(super) async fn reg_get(
        &self,
        key: &str,
        name: &str,
        ctx: &ActionCtx,
    ) -> Result<RegistryValue, Failure> {
        let k = normalize_registry_key(key).map_err(|e| Failure::msg(e.message))?;
        let Some(values) = self.read_key(&k, ctx).await? else {
            return Ok(RegistryValue {
                key: k,
                name: name.into(),
                key_exists: false,
                value: None,
            });
        };
        let value = match values
            .into_iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
        {
            None => None,
            Some(RegEntry {
                data: RegData::Text(t),
                ..
            }) => Some(t),
            Some(RegEntry {
                name: n,
                data: RegData::Other { kind, .. },
            }) => return Err(Failure::msg(format!("value {n} is {kind}, not a string"))),
        };
        Ok(RegistryValue {
            key: k,
            name: name.into(),
            key_exists: true,
            value,
        })
    }

    /// The values directly in `k`, or `None` when the key does not exist.
    async fn read_key(&self, k: &str, ctx: &ActionCtx) -> Result<Option<Vec<RegEntry>>, Failure> {
        let n = EXPORTS.fetch_add(1, Ordering::Relaxed);
        let file = self
            .config
            .state_dir
            .join(format!("reg-export-{}-{n}.reg", std::process::id()));
        let path = file.to_string_lossy().into_owned();
        let o = self
            .exec(
                &commands::reg_export(k, &path),
                Duration::from_secs(30),
                ctx,
            )
            .await?;
        let bytes = std::fs::read(&file);
        let _ = std::fs::remove_file(&file);
        if o.code == 0 {
            let bytes =
                bytes.map_err(|e| Failure::msg(format!("reading the export of {k}: {e}")))?;
            let text = regfile::decode(&bytes).map_err(Failure::msg)?;
            return regfile::key_values(&text, k)
                .map(Some)
                .map_err(Failure::msg);
        }
        if self.key_absent(k, ctx).await? {
            return Ok(None);
        }
        Err(Failure::msg(format!(
            "reg export {k} exited {} although the key exists: {}{}",
            o.code,
            o.stdout.trim(),
            o.stderr.trim()
        )))
    }

    /// True when the nearest ancestor of `k` that can be listed does not list the next key on
    /// the way to `k`. False when it does (the key is there but could not be read) or when not
    /// even the hive can be listed — neither is a sign of absence.
    async fn key_absent(&self, k: &str, ctx: &ActionCtx) -> Result<bool, Failure> {
        let mut child = k.to_string();
        while let Some((parent, _)) = child.rsplit_once('\\') {
            let parent = parent.to_string();
            let o = self
                .exec(
                    &commands::reg_query_key(&parent),
                    Duration::from_secs(30),
                    ctx,
                )
                .await?;
            if o.code == 0 {
                return Ok(!parse::reg_subkey_listed(&o.stdout, &child));
            }
            child = parent;
        }
        Ok(false)
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
        let Some(all) = self.read_key(&k, ctx).await? else {
            return Ok(Evidence::RegistryDeleted {
                key: k,
                name: name.map(str::to_string),
                previous: vec![],
                existed: false,
            });
        };
        let previous: Vec<(String, String)> = all
            .into_iter()
            .filter(|e| name.is_none_or(|n| e.name.eq_ignore_ascii_case(n)))
            .map(|e| (e.name, e.data.display()))
            .collect();
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
