//! The built-in runbooks load, every step names a heading that is really in the seed, and each
//! one expands for every example Data Center.

use std::collections::BTreeMap;
use std::path::Path;

use lockstep::knowledge::expand::expand;
use lockstep::knowledge::inventory::Inventory;
use lockstep::knowledge::runbook::{sections::SEED_SECTIONS, Catalog};

fn catalog() -> Catalog {
    match Catalog::builtin() {
        Ok(c) => c,
        Err(errors) => panic!(
            "built-in runbooks are invalid:\n{}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn example(name: &str) -> Inventory {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    Inventory::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_procedure_of_the_seed_has_a_built_in_runbook() {
    let c = catalog();
    let mut ids = c.ids();
    ids.sort();
    assert_eq!(
        ids,
        [
            "recover-failed-upgrade",
            "uninstall-datatransfer-api",
            "uninstall-management-api",
            "upgrade-8.11",
            "upgrade-sql-server",
            "upgrade-windows-server"
        ]
    );
}

#[test]
fn every_known_section_is_a_heading_printed_in_the_seed() {
    let seed_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/seed/upgrading-the-data-center-8.11.txt");
    let seed = std::fs::read_to_string(&seed_path).unwrap_or_else(|e| {
        panic!(
            "the seed document must sit at {} (a copy kept in the repository): {e}",
            seed_path.display()
        )
    });
    let lines: Vec<&str> = seed.lines().map(str::trim).collect();
    for (chapter, heading) in SEED_SECTIONS {
        assert!(
            lines.contains(heading),
            "chapter {chapter} heading \"{heading}\" is not a line of the seed"
        );
    }
}

#[test]
fn every_runbook_expands_for_every_example_data_center() {
    let c = catalog();
    for inv in ["standalone.toml", "mirrored.toml", "clustered.toml"] {
        let inventory = example(inv);
        for rb in c.all() {
            let mut params = BTreeMap::new();
            match rb.id.as_str() {
                "upgrade-sql-server" => {
                    params.insert("target".to_string(), "2016".to_string());
                }
                "upgrade-windows-server" => {
                    params.insert("target".to_string(), "2016".to_string());
                }
                "uninstall-datatransfer-api" => {
                    let dt = inventory
                        .servers
                        .iter()
                        .find(|s| {
                            s.has(lockstep::knowledge::inventory::ServerRole::DatatransferApi)
                        })
                        .expect("every example has a DataTransfer node");
                    params.insert("server".to_string(), dt.name.clone());
                }
                "recover-failed-upgrade" => {
                    params.insert("failed-run".to_string(), "run-1".to_string());
                }
                _ => {}
            }
            let plan = expand(rb, &inventory, &params)
                .unwrap_or_else(|e| panic!("{} on {inv}: {e}", rb.id));
            assert!(!plan.steps.is_empty(), "{} on {inv} has no steps", rb.id);
        }
    }
}
