//! The simulated registry: keys matched case-insensitively as Windows does, values returned with
//! what they held before, and a key deleted with every key below it as `reg delete KEY /f` does.

use lockstep_protocol::evidence::RegistryValue;
use lockstep_protocol::{Action, Evidence};

use super::{SimState, SimulatedBackend};
use crate::backend::{ActionCtx, Failure};
use crate::policy::{is_under, normalize_registry_key};

impl SimulatedBackend {
    pub(super) fn registry_get(&self, key: &str, name: &str) -> Result<Evidence, Failure> {
        let k = normalize_registry_key(key).map_err(|e| Failure::msg(e.message))?;
        self.inspect(|s| Evidence::Registry {
            value: RegistryValue {
                key: k.clone(),
                name: name.to_string(),
                key_exists: s.registry_key(&k).is_some(),
                value: s.registry_value(&k, name).cloned(),
            },
        })
    }

    pub(super) fn registry_set(
        &self,
        action: &Action,
        key: &str,
        name: &str,
        value: &str,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let k = normalize_registry_key(key).map_err(|e| Failure::msg(e.message))?;
        self.update(|s| {
            Self::record(s, ctx, action);
            let stored = s.registry_key(&k).cloned().unwrap_or(k.clone());
            let values = s.registry.entry(stored).or_default();
            let existing = values
                .keys()
                .find(|n| n.eq_ignore_ascii_case(name))
                .cloned();
            let previous = existing.as_ref().and_then(|n| values.remove(n));
            values.insert(existing.unwrap_or(name.to_string()), value.to_string());
            Evidence::RegistryChanged {
                key: k.clone(),
                name: name.to_string(),
                previous,
                now: value.to_string(),
            }
        })
    }

    pub(super) fn registry_delete(
        &self,
        action: &Action,
        key: &str,
        name: Option<&str>,
        ctx: &ActionCtx,
    ) -> Result<Evidence, Failure> {
        let k = normalize_registry_key(key).map_err(|e| Failure::msg(e.message))?;
        self.update(|s| {
            Self::record(s, ctx, action);
            match name {
                Some(n) => delete_value(s, &k, n),
                None => delete_key(s, &k),
            }
        })
    }
}

fn delete_value(s: &mut SimState, k: &str, n: &str) -> Evidence {
    let stored = s.registry_key(k).cloned();
    let removed = stored.and_then(|sk| {
        let values = s.registry.get_mut(&sk)?;
        let vn = values.keys().find(|x| x.eq_ignore_ascii_case(n)).cloned()?;
        values.remove(&vn).map(|v| (vn, v))
    });
    Evidence::RegistryDeleted {
        key: k.to_string(),
        name: Some(n.to_string()),
        existed: removed.is_some(),
        previous: removed.into_iter().collect(),
    }
}

/// The key and every key below it, as `reg delete KEY /f` does.
fn delete_key(s: &mut SimState, k: &str) -> Evidence {
    let doomed: Vec<String> = s
        .registry
        .keys()
        .filter(|x| is_under(x, k))
        .cloned()
        .collect();
    let mut previous = Vec::new();
    for d in &doomed {
        if let Some(values) = s.registry.remove(d) {
            previous.extend(values);
        }
    }
    Evidence::RegistryDeleted {
        key: k.to_string(),
        name: None,
        previous,
        existed: !doomed.is_empty(),
    }
}
