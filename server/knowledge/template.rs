//! Operation templates: TOML in the shape of [`Operation`] with `{placeholders}` that plan
//! expansion fills in for one server.
//!
//! A leaf of the knowledge layer: the runbook reader checks templates at load time and plan
//! expansion fills them, so it depends on neither.
//!
//! | placeholder | value |
//! | --- | --- |
//! | `{host}` `{host.fqdn}` `{host.side}` | the server's name, FQDN, side (stand-alone: primary) |
//! | `{host.cn}` | its certificate's common name (its FQDN when it has no certificate) |
//! | `{host.version}` | the Connected version the inventory records for it (what is installed before a change) |
//! | `{host.cert_trusted}` | `true` for a trusted-CA certificate, else `false` |
//! | `{host.web_url}` | `https://CN` with a certificate, else `http://FQDN` |
//! | `{host.dt_url}` | the DataTransfer API base: `https://CN` with SSL, else `http://FQDN` |
//! | `{host.https_port}` | the port of its HTTPS binding (inventory `certificate.port`, else 443; SEED-NOTES 11) |
//! | `{host.web_component}` | the Web Services application whose own version record proves the server's Web Services upgrade: `support_center`, else `account_management_website`, else `datatransfer_api` |
//! | `{host.databases}` | (whole value only) the databases on it: master, model, msdb, then Directory and Registry where it holds them (SEED-NOTES 9) |
//! | `{registry.primary}` `{registry.secondary}` | the Registry server (Registration Master) of that side |
//! | `{registry.other}` | the Registry server of the side the server is not on |
//! | `{param.NAME}` | a runbook parameter (a whole-value placeholder of a `number` parameter is a number) |
//! | `{tools_folder}` | SQL Server tools folder of `param.target` (110, 120, 130; SEED-NOTES 8) |

use std::collections::BTreeMap;

use crate::knowledge::inventory::{
    Inventory, Issuer, Server, ServerRole, Side, SqlServerVersion, Topology,
};
use crate::knowledge::operation::Operation;
use crate::knowledge::parameter::Parameter;

/// What placeholders are resolved against.
pub enum Scope<'a> {
    /// Load-time check: every placeholder gets a stand-in value.
    Check { params: &'a [Parameter] },
    /// Expansion for one server (or none, for unbound steps).
    Bind {
        inventory: &'a Inventory,
        host: Option<&'a Server>,
        params: &'a BTreeMap<String, String>,
        /// The runbook's parameter declarations (which ones are numbers).
        decls: &'a [Parameter],
    },
}

enum Resolved {
    Text(String),
    List(Vec<String>),
    Number(i64),
}

/// The side a server counts as (a stand-alone server is its own primary side).
pub fn side_of(s: &Server) -> Side {
    s.side.unwrap_or(Side::Primary)
}

fn resolve(name: &str, scope: &Scope) -> Result<Resolved, String> {
    if let Some(p) = name.strip_prefix("param.") {
        return match scope {
            Scope::Check { params } => {
                let decl = params.iter().find(|d| d.name == p).ok_or_else(|| {
                    format!("`{{{name}}}`: the runbook declares no parameter `{p}`")
                })?;
                if decl.number {
                    Ok(Resolved::Number(1))
                } else {
                    Ok(Resolved::Text(
                        decl.default
                            .clone()
                            .or_else(|| decl.allowed.first().cloned())
                            .unwrap_or_else(|| "VALUE".into()),
                    ))
                }
            }
            Scope::Bind { params, decls, .. } => {
                let v = params
                    .get(p)
                    .ok_or_else(|| format!("parameter `{p}` has no value"))?;
                let number = decls.iter().any(|d| d.name == p && d.number);
                Ok(match v.parse::<i64>() {
                    Ok(n) if number => Resolved::Number(n),
                    _ => Resolved::Text(v.clone()),
                })
            }
        };
    }
    const KNOWN: &[&str] = &[
        "host",
        "host.fqdn",
        "host.side",
        "host.cn",
        "host.version",
        "host.cert_trusted",
        "host.web_url",
        "host.dt_url",
        "host.databases",
        "host.https_port",
        "host.web_component",
        "registry.primary",
        "registry.secondary",
        "registry.other",
        "tools_folder",
    ];
    if !KNOWN.contains(&name) {
        return Err(format!(
            "`{{{name}}}` is not a placeholder (known: {}, param.NAME)",
            KNOWN.join(", ")
        ));
    }
    let (inventory, host, params) = match scope {
        Scope::Check { .. } => {
            return Ok(match name {
                "host.databases" => Resolved::List(vec!["master".into()]),
                "tools_folder" => Resolved::Text("130".into()),
                "host.https_port" => Resolved::Number(443),
                "host.web_component" => Resolved::Text("support_center".into()),
                "host.version" => Resolved::Text("8.8.6".into()),
                _ => Resolved::Text("X".into()),
            })
        }
        Scope::Bind {
            inventory,
            host,
            params,
            ..
        } => (*inventory, *host, *params),
    };
    let need_host = || {
        host.ok_or_else(|| format!("`{{{name}}}` is used by a step that is not bound to a server"))
    };
    let registry = |side: Side| -> Result<Resolved, String> {
        if inventory.topology == Topology::Standalone && side == Side::Secondary {
            return Err(format!(
                "`{{{name}}}`: a stand-alone Data Center has no secondary Registry server"
            ));
        }
        inventory
            .registry_on(Some(side))
            .map(|s| Resolved::Text(s.name.clone()))
            .ok_or_else(|| {
                format!("`{{{name}}}`: the inventory has no Registry server on the {side} side")
            })
    };
    Ok(match name {
        "host" => Resolved::Text(need_host()?.name.clone()),
        "host.fqdn" => Resolved::Text(need_host()?.fqdn.clone()),
        "host.side" => Resolved::Text(side_of(need_host()?).as_str().into()),
        "host.cn" => Resolved::Text(common_name(need_host()?).into()),
        "host.version" => Resolved::Text(need_host()?.connected_version.to_string()),
        "host.cert_trusted" => Resolved::Text(
            (need_host()?.certificate.as_ref().map(|c| c.issuer) == Some(Issuer::TrustedCa))
                .to_string(),
        ),
        "host.web_url" => {
            let h = need_host()?;
            Resolved::Text(match &h.certificate {
                Some(c) => format!("https://{}", c.common_name),
                None => format!("http://{}", h.fqdn),
            })
        }
        "host.dt_url" => {
            let h = need_host()?;
            Resolved::Text(if datatransfer_ssl(h) {
                format!("https://{}", common_name(h))
            } else {
                format!("http://{}", h.fqdn)
            })
        }
        "host.web_component" => {
            let h = need_host()?;
            // One record per server is enough: Setup upgrades every application on it at once.
            let component = [
                (ServerRole::SupportCenter, "support_center"),
                (
                    ServerRole::AccountManagementWebsite,
                    "account_management_website",
                ),
                (ServerRole::DatatransferApi, "datatransfer_api"),
            ]
            .into_iter()
            .find(|(r, _)| h.has(*r))
            .map(|(_, c)| c)
            .ok_or_else(|| {
                format!(
                    "`{{{name}}}`: server {} runs no Web Services application",
                    h.name
                )
            })?;
            Resolved::Text(component.into())
        }
        "host.databases" => {
            let h = need_host()?;
            let mut dbs: Vec<String> = ["master", "model", "msdb"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            if h.has(ServerRole::Directory) {
                dbs.push("Directory".into());
            }
            if h.has(ServerRole::Registry) {
                dbs.push("Registry".into());
            }
            Resolved::List(dbs)
        }
        "host.https_port" => Resolved::Number(
            need_host()?
                .certificate
                .as_ref()
                .and_then(|c| c.port)
                .unwrap_or(443)
                .into(),
        ),
        "registry.primary" => registry(Side::Primary)?,
        "registry.secondary" => registry(Side::Secondary)?,
        "registry.other" => registry(side_of(need_host()?).other())?,
        "tools_folder" => {
            let t = params
                .get("target")
                .ok_or_else(|| "`{tools_folder}` needs a `target` parameter".to_string())?;
            let v: SqlServerVersion = serde_json::from_value(serde_json::Value::String(t.clone()))
                .map_err(|_| {
                    format!("`{{tools_folder}}`: target `{t}` is not a SQL Server release")
                })?;
            Resolved::Text(v.tools_folder().into())
        }
        _ => unreachable!("checked against KNOWN above"),
    })
}

/// The certificate's common name, or the FQDN without a certificate.
pub fn common_name(s: &Server) -> &str {
    s.certificate
        .as_ref()
        .map(|c| c.common_name.as_str())
        .unwrap_or(&s.fqdn)
}

/// Whether a DataTransfer node uses SSL (the seed's default is yes).
pub fn datatransfer_ssl(s: &Server) -> bool {
    s.datatransfer.as_ref().map(|d| d.ssl).unwrap_or(true)
}

/// Fills the placeholders of a text (lists are not allowed inside text).
pub fn fill_text(text: &str, scope: &Scope) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("`{text}`: `{{` without `}}`"))?;
        match resolve(&after[..close], scope)? {
            Resolved::Text(t) => out.push_str(&t),
            Resolved::Number(n) => out.push_str(&n.to_string()),
            Resolved::List(_) => {
                return Err(format!(
                    "`{{{}}}` is a list; use it as a whole value",
                    &after[..close]
                ))
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Fills every placeholder in a TOML value.
pub fn fill(value: &toml::Value, scope: &Scope) -> Result<toml::Value, String> {
    use toml::Value as V;
    Ok(match value {
        V::String(s) => {
            let whole =
                s.starts_with('{') && s.ends_with('}') && s[1..].find('}') == Some(s.len() - 2);
            if whole {
                match resolve(&s[1..s.len() - 1], scope)? {
                    Resolved::Text(t) => V::String(t),
                    Resolved::Number(n) => V::Integer(n),
                    Resolved::List(l) => V::Array(l.into_iter().map(V::String).collect()),
                }
            } else {
                V::String(fill_text(s, scope)?)
            }
        }
        V::Array(a) => V::Array(a.iter().map(|v| fill(v, scope)).collect::<Result<_, _>>()?),
        V::Table(t) => {
            let mut out = toml::map::Map::new();
            for (k, v) in t {
                out.insert(k.clone(), fill(v, scope)?);
            }
            V::Table(out)
        }
        other => other.clone(),
    })
}

/// Fills a template and reads it as an [`Operation`]; refuses keys the operation does not have.
pub fn to_operation(value: &toml::Value, scope: &Scope) -> Result<Operation, String> {
    let filled = fill(value, scope)?;
    let op: Operation = filled
        .clone()
        .try_into()
        .map_err(|e: toml::de::Error| format!("not an operation: {}", e.message().trim()))?;
    let back =
        toml::Value::try_from(&op).map_err(|e| format!("operation cannot be written back: {e}"))?;
    if let Some(extra) = extra_key(&filled, &back, "") {
        return Err(format!("unknown field `{extra}` in this operation"));
    }
    Ok(op)
}

/// The first key of `given` that `known` does not have (nested tables included).
fn extra_key(given: &toml::Value, known: &toml::Value, prefix: &str) -> Option<String> {
    let (toml::Value::Table(g), toml::Value::Table(k)) = (given, known) else {
        return None;
    };
    for (key, v) in g {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match k.get(key) {
            None => return Some(path),
            Some(kv) => {
                if let Some(e) = extra_key(v, kv, &path) {
                    return Some(e);
                }
            }
        }
    }
    None
}

/// Load-time check of an operation template.
pub fn check(value: &toml::Value, params: &[Parameter]) -> Result<(), String> {
    to_operation(value, &Scope::Check { params }).map(|_| ())
}

/// Load-time check of a text with placeholders.
pub fn check_text(text: &str, params: &[Parameter]) -> Result<(), String> {
    fill_text(text, &Scope::Check { params }).map(|_| ())
}
