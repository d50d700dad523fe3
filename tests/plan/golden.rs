//! Golden tests: the printable plans of the example Data Centers are pinned in `tests/golden/`.
//!
//! A change to a runbook, to plan expansion, to the text rendering or to an example inventory
//! changes these files on purpose. Review the difference, then regenerate them with:
//!
//!     UPDATE_GOLDEN=1 cargo test --test plan golden
//!
//! and commit the updated `tests/golden/*.txt` with the change that caused them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lockstep::knowledge::expand::expand;
use lockstep::knowledge::inventory::Inventory;
use lockstep::knowledge::plan::render;
use lockstep::knowledge::runbook::Catalog;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check(example: &str, runbook: &str, params: &[(&str, &str)]) {
    let inv =
        Inventory::load(&root().join("examples").join(example)).unwrap_or_else(|e| panic!("{e}"));
    let catalog = Catalog::builtin().expect("built-in runbooks are valid");
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let plan = expand(catalog.get(runbook).expect("runbook"), &inv, &params)
        .unwrap_or_else(|e| panic!("{e}"));
    let text = render::text(&plan);
    let stem = example.trim_end_matches(".toml");
    let path: PathBuf = root()
        .join("tests/golden")
        .join(format!("{runbook}.{stem}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).expect("create tests/golden");
        std::fs::write(&path, &text).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nRun `UPDATE_GOLDEN=1 cargo test --test plan golden` to create it.",
            path.display()
        )
    });
    if want != text {
        let first = want
            .lines()
            .zip(text.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(text.lines().count()));
        panic!(
            "{} differs from the plan at line {}:\n  golden: {:?}\n  now:    {:?}\nReview the change, then run `UPDATE_GOLDEN=1 cargo test --test plan golden`.",
            path.display(),
            first + 1,
            want.lines().nth(first),
            text.lines().nth(first)
        );
    }
}

#[test]
fn the_standalone_upgrade_plan_is_pinned() {
    check("standalone.toml", "upgrade-8.11", &[]);
}

#[test]
fn the_mirrored_upgrade_plan_is_pinned() {
    check("mirrored.toml", "upgrade-8.11", &[]);
}

#[test]
fn the_clustered_upgrade_plan_is_pinned() {
    check("clustered.toml", "upgrade-8.11", &[]);
}

#[test]
fn the_sql_server_upgrade_plans_are_pinned() {
    for example in ["standalone.toml", "mirrored.toml", "clustered.toml"] {
        check(example, "upgrade-sql-server", &[("target", "2016")]);
    }
}

#[test]
fn the_windows_upgrade_plans_are_pinned() {
    for example in ["standalone.toml", "mirrored.toml", "clustered.toml"] {
        check(example, "upgrade-windows-server", &[("target", "2016")]);
    }
}

#[test]
fn the_uninstall_plans_are_pinned() {
    check(
        "clustered.toml",
        "uninstall-management-api",
        &[("remove-public-server-name", "yes")],
    );
    check(
        "clustered.toml",
        "uninstall-datatransfer-api",
        &[("server", "NWDT2")],
    );
}
