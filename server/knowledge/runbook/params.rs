//! `--param` values checked against a runbook's parameter declarations, defaults filled in.

use std::collections::BTreeMap;

use super::Runbook;

/// Parameter values, with defaults, checked against the runbook's declarations.
pub fn resolve_params(
    rb: &Runbook,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in given {
        let Some(p) = rb.parameter(k) else {
            let known: Vec<&str> = rb.parameters.iter().map(|p| p.name.as_str()).collect();
            return Err(if known.is_empty() {
                format!("runbook `{}` takes no parameters (got `{k}`)", rb.id)
            } else {
                format!(
                    "runbook `{}` has no parameter `{k}` (it takes: {})",
                    rb.id,
                    known.join(", ")
                )
            });
        };
        if !p.allowed.is_empty() && !p.allowed.contains(v) {
            return Err(format!(
                "`{k}={v}` is not allowed; `{k}` is one of: {}",
                p.allowed
                    .iter()
                    .map(|a| format!("\"{a}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if p.number && v.parse::<u64>().is_err() {
            return Err(format!("`{k}={v}`: `{k}` must be a whole number"));
        }
        out.insert(k.clone(), v.clone());
    }
    for p in &rb.parameters {
        if out.contains_key(&p.name) {
            continue;
        }
        match &p.default {
            Some(d) => {
                out.insert(p.name.clone(), d.clone());
            }
            None => {
                let hint = if p.allowed.is_empty() {
                    String::new()
                } else {
                    format!(" (one of: {})", p.allowed.join(", "))
                };
                return Err(format!(
                    "runbook `{}` needs `--param {}=VALUE`{hint}: {}",
                    rb.id, p.name, p.description
                ));
            }
        }
    }
    Ok(out)
}
