//! Property tests: for generated valid inventories of each topology (varying numbers of directory
//! pairs, web servers, DataTransfer nodes, certificates whose CN differs from the FQDN, SSL on or
//! off, where the Management API lives), every plan of every runbook is well formed (acyclic and
//! topologically ordered, unique ids, hosts that exist), keeps every seed ordering rule, and is
//! the same when expanded twice.

use super::rules as plan_rules;

use std::collections::BTreeMap;
use std::fmt::Write;

use lockstep::knowledge::expand::expand;
use lockstep::knowledge::inventory::Inventory;
use lockstep::knowledge::runbook::Catalog;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Node {
    /// 0 = no certificate, 1 = CN equals the FQDN, 2 = CN differs
    cert: u8,
    ssl: bool,
}

#[derive(Debug, Clone)]
struct Shape {
    topology: &'static str,
    /// Clustered: number of directory pairs (1..=3).
    pairs: usize,
    /// Clustered: the Registration Masters also hold a Directory database (a pair of their own).
    rm_directory: bool,
    /// Web servers with Support Center / Account Management Website (0..=2).
    webs: usize,
    /// Where the Management API lives: 0 nowhere, 1 first web server, 2 first DataTransfer node.
    mapi: u8,
    nodes: Vec<Node>,
    /// Stand-alone: the Web Services run on the Data Center server itself.
    web_on_dc: bool,
    /// Per extra server: on the secondary side (mirrored/clustered).
    secondary: Vec<bool>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop_oneof![Just("standalone"), Just("mirrored"), Just("clustered")],
        1usize..=3,
        any::<bool>(),
        0usize..=2,
        0u8..=2,
        proptest::collection::vec(
            (0u8..=2, any::<bool>()).prop_map(|(cert, ssl)| Node { cert, ssl }),
            0..=3,
        ),
        any::<bool>(),
        proptest::collection::vec(any::<bool>(), 6),
    )
        .prop_map(
            |(topology, pairs, rm_directory, webs, mapi, nodes, web_on_dc, secondary)| Shape {
                topology,
                pairs,
                rm_directory,
                webs,
                mapi,
                nodes,
                web_on_dc,
                secondary,
            },
        )
}

fn server(
    out: &mut String,
    name: &str,
    side: Option<&str>,
    pair: Option<&str>,
    roles: &[&str],
    db: bool,
) {
    let _ = writeln!(
        out,
        "\n[[servers]]\nname = \"{name}\"\nfqdn = \"{}.corp.example\"",
        name.to_lowercase()
    );
    if let Some(s) = side {
        let _ = writeln!(out, "side = \"{s}\"");
    }
    if let Some(p) = pair {
        let _ = writeln!(out, "pair = \"{p}\"");
    }
    let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
    let _ = writeln!(
        out,
        "roles = [{}]\nconnected_version = \"8.8.6.1\"\nwindows = \"2012 R2\"",
        roles.join(", ")
    );
    if db {
        let _ = writeln!(out, "sql_server = \"2014 SP2\"");
    }
}

fn certificate(out: &mut String, name: &str, cert: u8) {
    match cert {
        1 => {
            let _ = writeln!(
                out,
                "[servers.certificate]\ncommon_name = \"{}.corp.example\"\nissuer = \"trusted-ca\"",
                name.to_lowercase()
            );
        }
        2 => {
            let _ = writeln!(out, "[servers.certificate]\ncommon_name = \"public-{}.example.com\"\nissuer = \"trusted-ca\"", name.to_lowercase());
        }
        _ => {}
    }
}

/// Writes the inventory as TOML, so the real (strict) parser decides it is valid.
fn inventory_toml(s: &Shape) -> String {
    let mut out = format!("name = \"Generated\"\ntopology = \"{}\"\n", s.topology);
    let sided = s.topology != "standalone";
    let side_of = |i: usize| -> Option<&str> {
        sided.then(|| {
            if s.secondary[i % s.secondary.len()] {
                "secondary"
            } else {
                "primary"
            }
        })
    };
    match s.topology {
        "standalone" => {
            let mut roles = vec!["registry", "directory"];
            if s.web_on_dc {
                roles.extend(["support-center", "account-management-website"]);
            }
            server(&mut out, "DC1", None, None, &roles, true);
        }
        "mirrored" => {
            server(
                &mut out,
                "DC1",
                Some("primary"),
                None,
                &["registry", "directory"],
                true,
            );
            server(
                &mut out,
                "DC2",
                Some("secondary"),
                None,
                &["registry", "directory"],
                true,
            );
        }
        _ => {
            let (roles, p0): (&[&str], Option<&str>) = if s.rm_directory {
                (&["registry", "directory"], Some("pair-0"))
            } else {
                (&["registry"], None)
            };
            server(&mut out, "RM1", Some("primary"), p0, roles, true);
            server(&mut out, "RM2", Some("secondary"), p0, roles, true);
            for p in 1..=s.pairs {
                let pair = format!("pair-{p}");
                server(
                    &mut out,
                    &format!("DIR{p}A"),
                    Some("primary"),
                    Some(&pair),
                    &["directory"],
                    true,
                );
                server(
                    &mut out,
                    &format!("DIR{p}B"),
                    Some("secondary"),
                    Some(&pair),
                    &["directory"],
                    true,
                );
            }
        }
    }
    for w in 0..s.webs {
        let mut roles = vec!["support-center", "account-management-website"];
        if s.mapi == 1 && w == 0 {
            roles.push("management-api");
        }
        let name = format!("WEB{}", w + 1);
        server(&mut out, &name, side_of(w), None, &roles, false);
        certificate(&mut out, &name, if w == 0 { 1 } else { 0 });
    }
    for (n, node) in s.nodes.iter().enumerate() {
        let mut roles = vec!["datatransfer-api"];
        if s.mapi == 2 && n == 0 {
            roles.push("management-api");
        }
        let name = format!("DT{}", n + 1);
        server(&mut out, &name, side_of(n + 3), None, &roles, false);
        certificate(&mut out, &name, node.cert);
        let _ = writeln!(out, "[servers.datatransfer]\nssl = {}", node.ssl);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_plan_of_a_valid_inventory_keeps_the_seed_order(s in shape()) {
        let text = inventory_toml(&s);
        let inv = Inventory::parse(&text).map_err(|e| TestCaseError::fail(format!("generated an invalid inventory: {e}\n{text}")))?;
        let catalog = Catalog::builtin().expect("built-in runbooks are valid");
        let params = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let runs: Vec<(&str, BTreeMap<String, String>)> = vec![
            ("upgrade-8.11", params(&[])),
            ("upgrade-sql-server", params(&[("target", "2016")])),
            ("upgrade-windows-server", params(&[("target", "2016")])),
        ];
        for (id, p) in &runs {
            let rb = catalog.get(id).expect("runbook exists");
            let plan = expand(rb, &inv, p).map_err(|e| TestCaseError::fail(format!("{id}: {e}\n{text}")))?;
            let again = expand(rb, &inv, p).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&plan, &again, "{} is not deterministic", id);
            let checked = match *id {
                "upgrade-8.11" => plan_rules::upgrade_811(&plan, &inv),
                "upgrade-sql-server" => plan_rules::upgrade_sql(&plan, &inv, "130"),
                _ => plan_rules::upgrade_windows(&plan, &inv),
            };
            if let Err(broken) = checked {
                return Err(TestCaseError::fail(format!("{id}:\n{broken}\n--- inventory ---\n{text}")));
            }
        }
    }
}
