//! First pass of strict parsing: the spanned TOML tree becomes typed values, field by field.
//!
//! Every unknown field, wrong type, bad enum value, missing field and malformed name is reported,
//! not only the first. Cross-server rules (topology shapes, duplicates) are the second pass, in
//! `shape.rs`, and run only on an inventory whose fields all parsed.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::de::DeserializeOwned;

use super::tree::{Entry, Node, Value};
use super::{
    Certificate, DataTransfer, Facts, Inventory, Problem, Server, ServerRole, Version, MAX_SERVERS,
    MAX_TEXT_CHARS, TLS_VERSIONS,
};

/// Where each field of the file sits: path (`servers[2].side`) → line. The second pass uses it to
/// put a line on cross-field problems.
#[derive(Debug, Default)]
pub struct Lines(HashMap<String, usize>);

impl Lines {
    /// The line of `path`, or of the nearest enclosing field that has one, or 1.
    pub fn of(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(line) = self.0.get(p) {
                return *line;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return 1,
            }
        }
    }
}

/// Reads the file's fields. Returns the inventory only when every field parsed.
pub fn walk(text: &str, root: &Node) -> (Option<Inventory>, Vec<Problem>, Lines) {
    let mut w = Walker {
        text,
        problems: Vec::new(),
        lines: Lines::default(),
        breaks: text
            .bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .map(|(i, _)| i)
            .collect(),
    };
    let inv = w.inventory(root);
    let inv = if w.problems.is_empty() { inv } else { None };
    (inv, w.problems, w.lines)
}

struct Walker<'t> {
    text: &'t str,
    problems: Vec<Problem>,
    lines: Lines,
    /// Byte offsets of the file's line breaks, so a line number is a binary search rather than
    /// a scan from the top (every field records its line; a 200-server file has thousands).
    breaks: Vec<usize>,
}

/// A table being read: its path, where it starts, and its entries.
struct Table<'n> {
    path: String,
    span: Range<usize>,
    entries: &'n [Entry],
}

impl<'n> Table<'n> {
    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }
    fn get(&self, key: &str) -> Option<&'n Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

impl<'t> Walker<'t> {
    /// The 1-based line of byte `offset` (same answer as [`super::tree::line_of`]).
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.breaks.partition_point(|&b| b < end) + 1
    }

    fn problem(&mut self, span: &Range<usize>, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: Some(self.line(span.start)),
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// Opens `node` as a table at `path`, reporting keys outside `allowed`.
    fn table<'n>(&mut self, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Table<'n>> {
        let Value::Table(entries) = &node.value else {
            self.problem(
                &node.span,
                path,
                format!("expected a table, found {}", node.value.type_name()),
            );
            return None;
        };
        self.lines
            .0
            .insert(path.to_owned(), self.line(node.span.start));
        let t = Table {
            path: path.to_owned(),
            span: node.span.clone(),
            entries,
        };
        for e in entries {
            let field = t.child(&e.key);
            self.lines
                .0
                .insert(field.clone(), self.line(e.key_span.start));
            if !allowed.contains(&e.key.as_str()) {
                self.problem(
                    &e.key_span,
                    &field,
                    format!("unknown field; expected one of: {}", allowed.join(", ")),
                );
            }
        }
        Some(t)
    }

    /// The entry for `key`; reports it missing when `required`.
    fn entry<'n>(&mut self, t: &Table<'n>, key: &str, required: bool) -> Option<&'n Entry> {
        let e = t.get(key);
        if e.is_none() && required {
            let where_ = if t.path.is_empty() {
                "the file".to_owned()
            } else {
                format!(
                    "this [{}] table",
                    t.path.split('[').next().unwrap_or(&t.path)
                )
            };
            self.problem(
                &t.span,
                &t.child(key),
                format!("missing; {where_} needs it"),
            );
        }
        e
    }

    fn string(&mut self, t: &Table, key: &str, required: bool) -> Option<String> {
        let e = self.entry(t, key, required)?;
        match &e.node.value {
            Value::String(s) if s.trim().is_empty() => {
                self.problem(&e.node.span, &t.child(key), "must not be empty");
                None
            }
            Value::String(s) if s.trim() != s => {
                self.problem(
                    &e.node.span,
                    &t.child(key),
                    format!("\"{s}\" has leading or trailing spaces"),
                );
                None
            }
            Value::String(s) => match check_text(s) {
                Ok(()) => Some(s.clone()),
                Err(why) => {
                    self.problem(&e.node.span, &t.child(key), why);
                    None
                }
            },
            other => {
                let msg = format!("expected a string, found {}", other.type_name());
                self.problem(&e.node.span, &t.child(key), msg);
                None
            }
        }
    }

    /// A string naming one variant of `T` (serde names, e.g. `"2012 R2"`, `"datatransfer-api"`).
    fn variant<T: DeserializeOwned>(&mut self, node: &Node, field: &str) -> Option<T> {
        let Value::String(s) = &node.value else {
            let hint = match node.value {
                // `windows = 2016` is the likely slip: the releases are names, not numbers.
                Value::Integer(_) | Value::Float => {
                    " (write release names in quotes, e.g. \"2016\")"
                }
                _ => "",
            };
            let msg = format!("expected a string, found {}{hint}", node.value.type_name());
            self.problem(&node.span, field, msg);
            return None;
        };
        match T::deserialize(StrDeserializer::<ValueError>::new(s)) {
            Ok(v) => Some(v),
            Err(e) => {
                self.problem(&node.span, field, e.to_string());
                None
            }
        }
    }

    fn enum_field<T: DeserializeOwned>(&mut self, t: &Table, key: &str, req: bool) -> Option<T> {
        let e = self.entry(t, key, req)?;
        self.variant(&e.node, &t.child(key))
    }

    fn integer(&mut self, t: &Table, key: &str) -> Option<u64> {
        let e = t.get(key)?;
        match &e.node.value {
            Value::Integer(i) if *i >= 0 => Some(*i as u64),
            Value::Integer(i) => {
                self.problem(&e.node.span, &t.child(key), format!("{i} is negative"));
                None
            }
            other => {
                let msg = format!("expected an integer, found {}", other.type_name());
                self.problem(&e.node.span, &t.child(key), msg);
                None
            }
        }
    }

    fn boolean(&mut self, t: &Table, key: &str, required: bool) -> Option<bool> {
        let e = self.entry(t, key, required)?;
        match &e.node.value {
            Value::Boolean(b) => Some(*b),
            other => {
                let msg = format!("expected true or false, found {}", other.type_name());
                self.problem(&e.node.span, &t.child(key), msg);
                None
            }
        }
    }

    fn inventory(&mut self, root: &Node) -> Option<Inventory> {
        let t = self.table(root, "", &["name", "topology", "servers"])?;
        let name = self.string(&t, "name", true);
        let topology = self.enum_field(&t, "topology", true);
        let servers = self.servers(&t);
        Some(Inventory {
            name: name?,
            topology: topology?,
            servers: servers?,
        })
    }

    fn servers(&mut self, t: &Table) -> Option<Vec<Server>> {
        let e = self.entry(t, "servers", true)?;
        let Value::Array(items) = &e.node.value else {
            let msg = format!(
                "expected [[servers]] tables, found {}",
                e.node.value.type_name()
            );
            self.problem(&e.node.span, "servers", msg);
            return None;
        };
        if items.is_empty() {
            self.problem(&e.node.span, "servers", "lists no servers");
            return None;
        }
        if items.len() > MAX_SERVERS {
            let msg = format!(
                "lists {} servers; an inventory may list at most {MAX_SERVERS} (split the estate into several Data Centers)",
                items.len()
            );
            self.problem(&e.node.span, "servers", msg);
            return None;
        }
        let parsed: Vec<Option<Server>> = items
            .iter()
            .enumerate()
            .map(|(i, n)| self.server(n, &format!("servers[{i}]")))
            .collect();
        parsed.into_iter().collect()
    }

    fn server(&mut self, node: &Node, path: &str) -> Option<Server> {
        const FIELDS: &[&str] = &[
            "name",
            "fqdn",
            "side",
            "pair",
            "roles",
            "connected_version",
            "windows",
            "sql_server",
            "agent",
            "certificate",
            "datatransfer",
            "facts",
        ];
        let t = self.table(node, path, FIELDS)?;
        let name = self.host_name(&t);
        let fqdn = self.fqdn(&t);
        let side = self.enum_field(&t, "side", false);
        let pair = self.string(&t, "pair", false);
        let roles = self.roles(&t);
        let version = self.version(&t);
        let windows = self.enum_field(&t, "windows", true);
        let sql_server = self.enum_field(&t, "sql_server", false);
        let agent = self.agent(&t);
        let certificate = self.certificate(&t);
        let datatransfer = self.datatransfer(&t);
        let facts = self.facts(&t);
        // Optional fields that were present but bad must fail the server too.
        let bad = |key: &str, ok: bool| t.get(key).is_some() && !ok;
        if bad("side", side.is_some())
            || bad("pair", pair.is_some())
            || bad("sql_server", sql_server.is_some())
            || bad("agent", agent.is_some())
            || bad("certificate", certificate.is_some())
            || bad("datatransfer", datatransfer.is_some())
        {
            return None;
        }
        Some(Server {
            name: name?,
            fqdn: fqdn?,
            side,
            pair,
            roles: roles?,
            connected_version: version?,
            windows: windows?,
            sql_server,
            agent,
            certificate,
            datatransfer,
            facts: facts?,
        })
    }

    fn host_name(&mut self, t: &Table) -> Option<String> {
        let name = self.string(t, "name", true)?;
        let span = t
            .get("name")
            .map(|e| e.node.span.clone())
            .unwrap_or_default();
        if name.contains('.') {
            self.problem(
                &span,
                &t.child("name"),
                format!("\"{name}\" contains a dot; give the host name without the domain (the seed's dialogs take \"webserver1\", not \"webserver1.mydomain.com\") and put the full name in fqdn"),
            );
            return None;
        }
        if let Err(why) = check_label(&name) {
            self.problem(
                &span,
                &t.child("name"),
                format!("\"{name}\" is not a host name: {why}"),
            );
            return None;
        }
        Some(name)
    }

    fn fqdn(&mut self, t: &Table) -> Option<String> {
        let fqdn = self.string(t, "fqdn", true)?;
        let span = t
            .get("fqdn")
            .map(|e| e.node.span.clone())
            .unwrap_or_default();
        match check_fqdn(&fqdn) {
            Ok(()) => Some(fqdn),
            Err(why) => {
                self.problem(
                    &span,
                    &t.child("fqdn"),
                    format!("\"{fqdn}\" is not a fully qualified domain name: {why}"),
                );
                None
            }
        }
    }

    fn roles(&mut self, t: &Table) -> Option<BTreeSet<ServerRole>> {
        let e = self.entry(t, "roles", true)?;
        let field = t.child("roles");
        let Value::Array(items) = &e.node.value else {
            let msg = format!(
                "expected an array of roles, found {}",
                e.node.value.type_name()
            );
            self.problem(&e.node.span, &field, msg);
            return None;
        };
        if items.is_empty() {
            self.problem(
                &e.node.span,
                &field,
                "is empty; a server needs at least one role",
            );
            return None;
        }
        let mut roles = BTreeSet::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.variant::<ServerRole>(item, &format!("{field}[{i}]")) {
                Some(r) if !roles.insert(r) => {
                    self.problem(
                        &item.span,
                        &format!("{field}[{i}]"),
                        format!("\"{r}\" is listed twice"),
                    );
                    ok = false;
                }
                Some(_) => {}
                None => ok = false,
            }
        }
        ok.then_some(roles)
    }

    fn version(&mut self, t: &Table) -> Option<Version> {
        let s = self.string(t, "connected_version", true)?;
        match s.parse::<Version>() {
            Ok(v) => Some(v),
            Err(msg) => {
                let span = t
                    .get("connected_version")
                    .map(|e| e.node.span.clone())
                    .unwrap_or_default();
                self.problem(&span, &t.child("connected_version"), msg);
                None
            }
        }
    }

    fn agent(&mut self, t: &Table) -> Option<String> {
        let url = self.string(t, "agent", false)?;
        match check_agent_url(&url) {
            Ok(()) => Some(url),
            Err(why) => {
                let span = t
                    .get("agent")
                    .map(|e| e.node.span.clone())
                    .unwrap_or_default();
                self.problem(&span, &t.child("agent"), format!("\"{url}\": {why}"));
                None
            }
        }
    }

    fn certificate(&mut self, t: &Table) -> Option<Certificate> {
        let e = t.get("certificate")?;
        let c = self.table(
            &e.node,
            &t.child("certificate"),
            &["common_name", "issuer", "port"],
        )?;
        let cn = self.string(&c, "common_name", true);
        if let Some(cn) = &cn {
            let check = cn.strip_prefix("*.").unwrap_or(cn);
            if let Err(why) = check_fqdn(check).or_else(|_| check_label(check)) {
                let span = c.get("common_name").map(|e| e.node.span.clone());
                self.problem(
                    &span.unwrap_or_default(),
                    &c.child("common_name"),
                    format!("\"{cn}\" is not a host name: {why}"),
                );
                return None;
            }
        }
        let issuer = self.enum_field(&c, "issuer", true);
        let port = match self.integer(&c, "port") {
            Some(p) if (1..=65535).contains(&p) => Some(p as u16),
            Some(p) => {
                let span = c
                    .get("port")
                    .map(|e| e.node.span.clone())
                    .unwrap_or_default();
                self.problem(
                    &span,
                    &c.child("port"),
                    format!("{p} is not a TCP port (1 to 65535)"),
                );
                return None;
            }
            None if c.get("port").is_some() => return None,
            None => None,
        };
        Some(Certificate {
            common_name: cn?,
            issuer: issuer?,
            port,
        })
    }

    fn datatransfer(&mut self, t: &Table) -> Option<DataTransfer> {
        let e = t.get("datatransfer")?;
        let d = self.table(&e.node, &t.child("datatransfer"), &["ssl"])?;
        Some(DataTransfer {
            ssl: self.boolean(&d, "ssl", true)?,
        })
    }

    fn facts(&mut self, t: &Table) -> Option<Facts> {
        const FIELDS: &[&str] = &[
            "free_disk_mb",
            "registry_mdf_mb",
            "registry_ldf_mb",
            "sql_service_account",
            "sql_agent_account",
            "tls_versions",
            "legacy_ssl_disabled",
            "weak_ciphers_disabled",
        ];
        let Some(e) = t.get("facts") else {
            return Some(Facts::default());
        };
        let f = self.table(&e.node, &t.child("facts"), FIELDS)?;
        let before = self.problems.len();
        let facts = Facts {
            free_disk_mb: self.integer(&f, "free_disk_mb"),
            registry_mdf_mb: self.integer(&f, "registry_mdf_mb"),
            registry_ldf_mb: self.integer(&f, "registry_ldf_mb"),
            sql_service_account: self.string(&f, "sql_service_account", false),
            sql_agent_account: self.string(&f, "sql_agent_account", false),
            tls_versions: self.tls_versions(&f),
            legacy_ssl_disabled: self.boolean(&f, "legacy_ssl_disabled", false),
            weak_ciphers_disabled: self.boolean(&f, "weak_ciphers_disabled", false),
        };
        (self.problems.len() == before).then_some(facts)
    }

    fn tls_versions(&mut self, t: &Table) -> Option<Vec<String>> {
        let e = t.get("tls_versions")?;
        let field = t.child("tls_versions");
        let Value::Array(items) = &e.node.value else {
            let msg = format!(
                "expected an array such as [\"1.2\"], found {}",
                e.node.value.type_name()
            );
            self.problem(&e.node.span, &field, msg);
            return None;
        };
        if items.is_empty() {
            self.problem(
                &e.node.span,
                &field,
                "is empty; list the TLS versions enabled, e.g. [\"1.2\"]",
            );
            return None;
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match &item.value {
                Value::String(s) if TLS_VERSIONS.contains(&s.as_str()) => {
                    if out.contains(s) {
                        self.problem(
                            &item.span,
                            &format!("{field}[{i}]"),
                            format!("\"{s}\" is listed twice"),
                        );
                    } else {
                        out.push(s.clone());
                    }
                }
                other => {
                    let shown = match other {
                        Value::String(s) => format!("\"{s}\""),
                        v => v.type_name().to_owned(),
                    };
                    self.problem(
                        &item.span,
                        &format!("{field}[{i}]"),
                        format!("{shown} is not a TLS version Connected Backup 8.11 supports; expected one of: {}", TLS_VERSIONS.join(", ")),
                    );
                }
            }
        }
        out.sort();
        Some(out)
    }
}

/// Any text field: at most [`MAX_TEXT_CHARS`] characters and no control characters (NUL, line
/// breaks, escape sequences), which would corrupt logs, pages and exports downstream.
pub fn check_text(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(format!(
            "is {n} characters long; the limit is {MAX_TEXT_CHARS}"
        ));
    }
    if let Some((at, c)) = s.chars().enumerate().find(|(_, c)| c.is_control()) {
        return Err(format!(
            "contains the control character U+{:04X} at character {}; text fields may not hold control characters",
            u32::from(c),
            at + 1
        ));
    }
    Ok(())
}

/// One DNS label: letters, digits and hyphens, 1 to 63 characters, no hyphen at either end.
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("an empty label".into());
    }
    if label.len() > 63 {
        return Err(format!("\"{label}\" is longer than 63 characters"));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "'{c}' is not allowed (letters, digits and hyphens only)"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("\"{label}\" starts or ends with a hyphen"));
    }
    Ok(())
}

/// At least two labels, each a valid [`check_label`], 253 characters at most.
pub fn check_fqdn(fqdn: &str) -> Result<(), String> {
    if fqdn.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    let labels: Vec<&str> = fqdn.split('.').collect();
    if labels.len() < 2 {
        return Err("it has no domain part (expected e.g. \"dc1.contoso.local\")".into());
    }
    labels.iter().try_for_each(|l| check_label(l))
}

/// `https://host[:port][/path]` — agents only speak HTTPS.
pub fn check_agent_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err("an agent URL must start with https:// (agents only speak TLS)".into());
    };
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("\"{p}\" is not a TCP port")),
        }
    }
    check_fqdn(host)
        .or_else(|_| check_label(host))
        .map_err(|why| format!("bad host \"{host}\": {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_fqdns_are_checked() {
        assert!(check_label("DC1").is_ok());
        assert!(check_label("-dc1").is_err());
        assert!(check_label("dc_1").is_err());
        assert!(check_fqdn("dc1.contoso.local").is_ok());
        assert!(check_fqdn("dc1").is_err());
        assert!(check_fqdn("dc1..local").is_err());
    }

    #[test]
    fn agent_urls_must_be_https_with_a_host() {
        assert!(check_agent_url("https://dc1.contoso.local:9443").is_ok());
        assert!(check_agent_url("http://dc1.contoso.local:9443").is_err());
        assert!(check_agent_url("https://dc1.contoso.local:99999").is_err());
        assert!(check_agent_url("https://:9443").is_err());
    }

    #[test]
    fn a_missing_path_falls_back_to_its_parent_line() {
        let mut lines = Lines::default();
        lines.0.insert("servers[1]".into(), 12);
        lines.0.insert("servers[1].roles".into(), 15);
        assert_eq!(lines.of("servers[1].roles"), 15);
        assert_eq!(lines.of("servers[1].side"), 12);
        assert_eq!(lines.of("topology"), 1);
    }
}
