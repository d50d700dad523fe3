//! Second pass of strict parsing: rules that span fields or servers — the shapes a Data Center
//! of each topology can have, unique names, and fields that only make sense on some servers.
//!
//! Works on a typed [`Inventory`], so code that builds inventories (tests, generators) can check
//! them too, through [`Inventory::validate`](super::Inventory::validate). Each problem names a
//! field path such as `servers[2].side`; the caller turns the path into a line.

use std::collections::{BTreeMap, HashMap};

use super::{Inventory, ServerRole, Side, Topology};

/// A problem found by the shape rules: the field path it concerns and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeProblem {
    pub field: String,
    pub message: String,
}

pub fn problems(inv: &Inventory) -> Vec<ShapeProblem> {
    let mut out = Vec::new();
    let mut push = |field: String, message: String| out.push(ShapeProblem { field, message });
    unique_names(inv, &mut push);
    per_server(inv, &mut push);
    match inv.topology {
        Topology::Standalone => standalone(inv, &mut push),
        Topology::Mirrored => mirrored(inv, &mut push),
        Topology::Clustered => clustered(inv, &mut push),
    }
    out
}

type Push<'a> = dyn FnMut(String, String) + 'a;

fn unique_names(inv: &Inventory, push: &mut Push) {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut fqdns: HashMap<String, usize> = HashMap::new();
    for (i, s) in inv.servers.iter().enumerate() {
        // Windows host names and DNS names are case-insensitive.
        if let Some(first) = names.insert(s.name.to_ascii_lowercase(), i) {
            push(
                format!("servers[{i}].name"),
                format!(
                    "duplicate server name \"{}\" (also servers[{first}])",
                    s.name
                ),
            );
            names.insert(s.name.to_ascii_lowercase(), first);
        }
        if let Some(first) = fqdns.insert(s.fqdn.to_ascii_lowercase(), i) {
            push(
                format!("servers[{i}].fqdn"),
                format!("duplicate fqdn \"{}\" (also servers[{first}])", s.fqdn),
            );
            fqdns.insert(s.fqdn.to_ascii_lowercase(), first);
        }
    }
}

fn per_server(inv: &Inventory, push: &mut Push) {
    for (i, s) in inv.servers.iter().enumerate() {
        let at = |f: &str| format!("servers[{i}].{f}");
        let host = s.fqdn.split('.').next().unwrap_or("");
        if !host.eq_ignore_ascii_case(&s.name) {
            push(
                at("fqdn"),
                format!(
                    "\"{}\" does not start with the server's name \"{}\" (expected \"{}.<domain>\")",
                    s.fqdn,
                    s.name,
                    s.name.to_ascii_lowercase()
                ),
            );
        }
        match (inv.topology, s.side) {
            (Topology::Standalone, Some(_)) => push(
                at("side"),
                "a stand-alone Data Center has no sides; remove it".into(),
            ),
            (Topology::Mirrored | Topology::Clustered, None) => push(
                at("side"),
                format!(
                    "missing; every server of a {} Data Center is on the \"primary\" or \"secondary\" side",
                    inv.topology
                ),
            ),
            _ => {}
        }
        if s.pair.is_some() && inv.topology != Topology::Clustered {
            push(
                at("pair"),
                format!(
                    "only a clustered Data Center has directory server pairs; this one is {}",
                    inv.topology
                ),
            );
        }
        if s.has_database() && s.sql_server.is_none() {
            push(
                at("sql_server"),
                "missing; a server holding a Registry or Directory database needs its SQL Server version (\"2008 R2 SP3\", \"2012 SP4\", \"2014 SP2\" or \"2016\")".into(),
            );
        }
        if s.datatransfer.is_some() && !s.has(ServerRole::DatatransferApi) {
            push(
                at("datatransfer"),
                "only a server with the \"datatransfer-api\" role has DataTransfer settings".into(),
            );
        }
        let f = &s.facts;
        if !s.has(ServerRole::Registry) {
            for (name, v) in [
                ("free_disk_mb", f.free_disk_mb),
                ("registry_mdf_mb", f.registry_mdf_mb),
                ("registry_ldf_mb", f.registry_ldf_mb),
            ] {
                if v.is_some() {
                    push(
                        at(&format!("facts.{name}")),
                        "describes the Registry database files; this server has no \"registry\" role".into(),
                    );
                }
            }
        }
        if s.sql_server.is_none() {
            for (name, v) in [
                ("sql_service_account", &f.sql_service_account),
                ("sql_agent_account", &f.sql_agent_account),
            ] {
                if v.is_some() {
                    push(
                        at(&format!("facts.{name}")),
                        "describes SQL Server services; this server has no sql_server".into(),
                    );
                }
            }
        }
    }
}

fn database_servers(inv: &Inventory) -> impl Iterator<Item = (usize, &super::Server)> {
    inv.servers
        .iter()
        .enumerate()
        .filter(|(_, s)| s.has_database())
}

fn standalone(inv: &Inventory, push: &mut Push) {
    let dbs: Vec<_> = database_servers(inv).collect();
    match dbs.as_slice() {
        [] => push(
            "servers".into(),
            "a stand-alone Data Center needs one Data Center server with roles \"registry\" and \"directory\"; none has either".into(),
        ),
        [(i, s)] => {
            if !(s.has(ServerRole::Registry) && s.has(ServerRole::Directory)) {
                push(
                    format!("servers[{i}].roles"),
                    "the stand-alone Data Center server holds both databases: it needs roles \"registry\" and \"directory\"".into(),
                );
            }
        }
        [(first, _), rest @ ..] => {
            for (i, _) in rest {
                push(
                    format!("servers[{i}].roles"),
                    format!("a stand-alone Data Center has one Data Center server (servers[{first}]); only it may hold \"registry\" or \"directory\""),
                );
            }
        }
    }
}

fn mirrored(inv: &Inventory, push: &mut Push) {
    for side in [Side::Primary, Side::Secondary] {
        let regs: Vec<_> = database_servers(inv)
            .filter(|(_, s)| s.has(ServerRole::Registry) && s.side == Some(side))
            .collect();
        match regs.as_slice() {
            [] => push(
                "servers".into(),
                format!("a mirrored Data Center needs exactly one {side} Registry server (roles \"registry\" and \"directory\", side = \"{side}\"); found none"),
            ),
            [(first, _), rest @ ..] => {
                for (i, _) in rest {
                    push(
                        format!("servers[{i}].roles"),
                        format!("a mirrored Data Center has exactly one {side} Registry server; servers[{first}] is already it"),
                    );
                }
            }
        }
    }
    for (i, s) in database_servers(inv) {
        if s.has(ServerRole::Registry) && !s.has(ServerRole::Directory) {
            push(
                format!("servers[{i}].roles"),
                "a mirrored Data Center server holds both a Registry and a Directory database: add \"directory\"".into(),
            );
        }
        if !s.has(ServerRole::Registry) {
            push(
                format!("servers[{i}].roles"),
                "in a mirrored Data Center only the two Registry servers hold databases; a separate directory server means the topology is \"clustered\"".into(),
            );
        }
    }
}

fn clustered(inv: &Inventory, push: &mut Push) {
    for side in [Side::Primary, Side::Secondary] {
        let masters: Vec<_> = database_servers(inv)
            .filter(|(_, s)| s.has(ServerRole::Registry) && s.side == Some(side))
            .collect();
        match masters.as_slice() {
            [] => push(
                "servers".into(),
                format!("a clustered Data Center needs a Registration Master (role \"registry\") on the {side} side; found none"),
            ),
            [(first, _), rest @ ..] => {
                for (i, _) in rest {
                    push(
                        format!("servers[{i}].roles"),
                        format!("the {side} side already has a Registration Master (servers[{first}]); a side has exactly one"),
                    );
                }
            }
        }
    }
    // Directory servers come in pairs across the sides: same `pair`, one primary, one secondary.
    let mut pairs: BTreeMap<&str, Vec<(usize, Option<Side>)>> = BTreeMap::new();
    let mut any_directory = false;
    for (i, s) in inv.servers.iter().enumerate() {
        match (&s.pair, s.has(ServerRole::Directory)) {
            (Some(p), true) => pairs.entry(p).or_default().push((i, s.side)),
            (None, true) => push(
                format!("servers[{i}].pair"),
                "missing; in a clustered Data Center every directory server belongs to a pair (one server on each side with the same pair name)".into(),
            ),
            (Some(_), false) => push(
                format!("servers[{i}].pair"),
                "pairs are of directory servers; this server has no \"directory\" role".into(),
            ),
            (None, false) => {}
        }
        any_directory |= s.has(ServerRole::Directory);
    }
    if !any_directory {
        push(
            "servers".into(),
            "a clustered Data Center needs directory servers (role \"directory\") in pairs across the sides; found none".into(),
        );
    }
    for (pair, members) in &pairs {
        for side in [Side::Primary, Side::Secondary] {
            let on: Vec<usize> = members
                .iter()
                .filter(|(_, s)| *s == Some(side))
                .map(|(i, _)| *i)
                .collect();
            match on.as_slice() {
                [] => {
                    let (i, _) = members[0];
                    push(
                        format!("servers[{i}].pair"),
                        format!("pair \"{pair}\" has no {side} directory server; a pair is one server on each side"),
                    );
                }
                [_] => {}
                [first, rest @ ..] => {
                    for i in rest {
                        push(
                            format!("servers[{i}].pair"),
                            format!("pair \"{pair}\" already has a {side} directory server (servers[{first}]); a pair is one server on each side"),
                        );
                    }
                }
            }
        }
    }
}
