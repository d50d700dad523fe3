//! Runbook files are validated as strictly as inventories: each class of mistake is refused with
//! the file, the line and the field it concerns.

use lockstep::knowledge::runbook::{parse, Catalog, RunbookError, RunbookErrorKind as K};

/// A valid two-step runbook; tests break one thing in it at a time.
const GOOD: &str = r#"id = "demo"
title = "Demo"
description = "A small runbook."

[[parameters]]
name = "target"
description = "Where to go."
allowed = ["2016"]
default = "2016"

[[steps]]
id = "stop"
title = "Stop {host}"
section = "Stop Data Center Services"
phase = "Data Center"
kind = "agent"
target = { roles = ["registry"] }
estimate = "5m"
instructions = "Stop it."
operation = { op = "services_stop", services = { set = "connected" } }

[[steps]]
id = "approve"
title = "Approve"
section = "Upgrade the Data Center"
phase = "Data Center"
kind = "approval"
depends_on = ["stop"]
estimate = "5m"
gate = { role = "approver", quorum = 1 }
instructions = "Decide."
"#;

fn refused(text: &str) -> Vec<RunbookError> {
    match parse("demo.toml", text) {
        Ok(_) => panic!("this runbook should have been refused:\n{text}"),
        Err(e) => e,
    }
}

fn first(text: &str) -> RunbookError {
    refused(text)
        .into_iter()
        .next()
        .expect("at least one error")
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in text")
        + 1
}

#[test]
fn the_sample_runbook_is_valid() {
    let rb = parse("demo.toml", GOOD).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rb.steps.len(), 2);
    assert_eq!(rb.steps[1].line, line_of(GOOD, "id = \"approve\""));
}

#[test]
fn text_that_is_not_toml_is_a_syntax_error_with_its_line() {
    let text = GOOD.replace(
        "estimate = \"5m\"\ninstructions = \"Stop it.\"",
        "estimate = \"5m\ninstructions = \"Stop it.\"",
    );
    let e = first(&text);
    assert_eq!(e.kind, K::Syntax, "{e}");
    assert!(e.to_string().starts_with("demo.toml:"), "{e}");
}

#[test]
fn an_unknown_field_is_refused_and_named() {
    let text = GOOD.replace(
        "phase = \"Data Center\"\nkind = \"agent\"",
        "phase = \"Data Center\"\nkind = \"agent\"\ncolour = \"red\"",
    );
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str(), e.line),
        (K::UnknownField, "colour", line_of(&text, "colour")),
        "{e}"
    );
}

#[test]
fn an_unknown_field_inside_a_target_is_refused() {
    let text = GOOD.replace(
        "target = { roles = [\"registry\"] }",
        "target = { roles = [\"registry\"], flavour = \"x\" }",
    );
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::UnknownField, "flavour"),
        "{e}"
    );
    assert_eq!(e.line, line_of(&text, "flavour"));
}

#[test]
fn a_missing_field_is_refused_and_named() {
    let text = GOOD.replace("instructions = \"Decide.\"\n", "");
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::MissingField, "instructions"),
        "{e}"
    );
}

#[test]
fn a_bad_kind_is_a_bad_value_on_its_line() {
    let text = GOOD.replace("kind = \"agent\"", "kind = \"robot\"");
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str(), e.line),
        (K::BadValue, "kind", line_of(&text, "robot")),
        "{e}"
    );
    assert!(e.message.contains("robot"), "{e}");
}

#[test]
fn a_bad_role_in_a_target_is_a_bad_value() {
    let text = GOOD.replace("roles = [\"registry\"]", "roles = [\"mainframe\"]");
    let e = first(&text);
    assert_eq!(
        (e.kind, e.line),
        (K::BadValue, line_of(&text, "mainframe")),
        "{e}"
    );
}

#[test]
fn a_bad_duration_is_a_bad_value() {
    let text = GOOD.replacen("estimate = \"5m\"", "estimate = \"five minutes\"", 1);
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str(), e.line),
        (
            K::BadValue,
            "steps[0].estimate",
            line_of(&text, "five minutes")
        ),
        "{e}"
    );
}

#[test]
fn a_duplicate_step_id_is_refused() {
    let text = GOOD
        .replace("id = \"approve\"", "id = \"stop\"")
        .replace("depends_on = [\"stop\"]\n", "");
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::DuplicateId, "steps[1].id"),
        "{e}"
    );
    assert_eq!(
        e.line,
        text.lines()
            .enumerate()
            .filter(|(_, l)| l.contains("id = \"stop\""))
            .nth(1)
            .unwrap()
            .0
            + 1
    );
}

#[test]
fn a_dependency_on_an_unknown_step_is_refused() {
    let text = GOOD.replace("depends_on = [\"stop\"]", "depends_on = [\"stpo\"]");
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str(), e.line),
        (
            K::UnknownDependency,
            "steps[1].depends_on",
            line_of(&text, "stpo")
        ),
        "{e}"
    );
    assert!(e.message.contains("`stpo`"), "{e}");
}

#[test]
fn a_dependency_filter_that_does_not_exist_is_refused() {
    let text = GOOD.replace("depends_on = [\"stop\"]", "depends_on = [\"stop@pair\"]");
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::BadValue, "steps[1].depends_on"),
        "{e}"
    );
}

#[test]
fn a_dependency_cycle_is_refused_and_shown() {
    let text = GOOD.replace(
        "kind = \"agent\"\ntarget",
        "kind = \"agent\"\ndepends_on = [\"approve\"]\ntarget",
    );
    let e = first(&text);
    assert_eq!(e.kind, K::Cycle, "{e}");
    assert!(
        e.message.contains("stop → approve → stop")
            || e.message.contains("approve → stop → approve"),
        "{e}"
    );
}

#[test]
fn a_step_that_depends_on_itself_is_a_cycle() {
    let text = GOOD.replace("depends_on = [\"stop\"]", "depends_on = [\"approve\"]");
    assert_eq!(first(&text).kind, K::Cycle);
}

#[test]
fn a_section_that_is_not_a_seed_heading_is_refused() {
    let text = GOOD.replace(
        "section = \"Stop Data Center Services\"",
        "section = \"Stop Data Centre Services\"",
    );
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str(), e.line),
        (
            K::UnknownSection,
            "steps[0].section",
            line_of(&text, "Centre")
        ),
        "{e}"
    );
}

#[test]
fn a_condition_on_an_undeclared_parameter_is_refused() {
    let text = GOOD.replace(
        "kind = \"agent\"\ntarget",
        "kind = \"agent\"\nwhen = { params = { flavour = [\"x\"] } }\ntarget",
    );
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::UnknownParameter, "steps[0].when.params"),
        "{e}"
    );
}

#[test]
fn a_condition_on_a_value_the_parameter_cannot_take_is_refused() {
    let text = GOOD.replace(
        "kind = \"agent\"\ntarget",
        "kind = \"agent\"\nwhen = { params = { target = [\"1999\"] } }\ntarget",
    );
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::BadValue, "steps[0].when.params.target"),
        "{e}"
    );
}

#[test]
fn an_operation_that_does_not_exist_is_refused() {
    let text = GOOD.replace("op = \"services_stop\"", "op = \"reboot_everything\"");
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str(), e.line),
        (
            K::BadOperation,
            "steps[0].operation",
            line_of(&text, "reboot_everything")
        ),
        "{e}"
    );
}

#[test]
fn an_operation_with_an_unknown_field_is_refused() {
    let text = GOOD.replace(
        "services = { set = \"connected\" }",
        "services = { set = \"connected\" }, force = true",
    );
    let e = first(&text);
    assert_eq!(e.kind, K::BadOperation, "{e}");
    assert!(e.message.contains("force"), "{e}");
}

#[test]
fn a_gate_naming_no_person_role_is_a_bad_value_naming_the_accepted_ones() {
    let text = GOOD.replace(
        "gate = { role = \"approver\", quorum = 1 }",
        "gate = { role = \"change-manager\", quorum = 1 }",
    );
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str(), e.line),
        (
            K::BadValue,
            "steps[1].gate.role",
            line_of(&text, "change-manager")
        ),
        "{e}"
    );
    assert!(e.message.contains("`change-manager` is not a role"), "{e}");
    assert!(
        e.message.contains("viewer, operator, approver or admin"),
        "{e}"
    );
}

#[test]
fn an_unknown_placeholder_is_refused() {
    let text = GOOD.replace(
        "operation = { op = \"services_stop\", services = { set = \"connected\" } }",
        "operation = { op = \"redirect\", value = \"registry_connect\", to_server = \"{registry.tertiary}\" }",
    );
    let e = first(&text);
    assert_eq!(e.kind, K::BadOperation, "{e}");
    assert!(e.message.contains("registry.tertiary"), "{e}");
}

#[test]
fn a_gate_on_a_step_that_is_not_an_approval_is_refused() {
    let text = GOOD.replace("estimate = \"5m\"\ninstructions = \"Stop it.\"", "estimate = \"5m\"\ngate = { role = \"approver\", quorum = 1 }\ninstructions = \"Stop it.\"");
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::KindMismatch, "steps[0].gate"),
        "{e}"
    );
}

#[test]
fn an_approval_without_a_gate_is_refused() {
    let text = GOOD.replace("gate = { role = \"approver\", quorum = 1 }\n", "");
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::KindMismatch, "steps[1].gate"),
        "{e}"
    );
}

#[test]
fn a_gate_needing_nobody_is_refused() {
    let text = GOOD.replace("quorum = 1", "quorum = 0");
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::BadValue, "steps[1].gate.quorum"),
        "{e}"
    );
}

#[test]
fn an_sql_operation_on_an_agent_step_is_refused() {
    let text = GOOD.replace(
        "operation = { op = \"services_stop\", services = { set = \"connected\" } }",
        "operation = { op = \"sql\", sql = \"outflow_read\" }",
    );
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::KindMismatch, "steps[0].operation.op"),
        "{e}"
    );
}

#[test]
fn an_agent_step_without_an_operation_is_refused() {
    let text = GOOD.replace(
        "operation = { op = \"services_stop\", services = { set = \"connected\" } }\n",
        "",
    );
    assert_eq!(first(&text).kind, K::KindMismatch);
}

#[test]
fn a_default_outside_the_allowed_values_is_refused() {
    let text = GOOD.replace("default = \"2016\"", "default = \"2019\"");
    let e = first(&text);
    assert_eq!(
        (e.kind, e.field.as_str()),
        (K::BadValue, "parameters[0].default"),
        "{e}"
    );
}

#[test]
fn several_mistakes_are_all_reported_in_line_order() {
    let text = GOOD
        .replace(
            "section = \"Stop Data Center Services\"",
            "section = \"Nope\"",
        )
        .replace("depends_on = [\"stop\"]", "depends_on = [\"missing\"]");
    let errors = refused(&text);
    let kinds: Vec<K> = errors.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [K::UnknownSection, K::UnknownDependency]);
    assert!(errors[0].line < errors[1].line);
}

#[test]
fn a_site_runbook_reusing_a_built_in_id_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("mine.toml"),
        GOOD.replace("id = \"demo\"", "id = \"upgrade-8.11\""),
    )
    .unwrap();
    let mut c = Catalog::builtin().expect("built-ins are valid");
    let errors = c.load_dir(dir.path()).expect_err("duplicate id");
    assert_eq!(errors[0].kind, K::DuplicateRunbook);
    assert!(errors[0].to_string().contains("mine.toml"), "{}", errors[0]);
}

#[test]
fn a_site_runbook_directory_adds_its_runbooks() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("demo.toml"), GOOD).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a runbook").unwrap();
    let mut c = Catalog::builtin().expect("built-ins are valid");
    c.load_dir(dir.path()).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(c.get("demo").is_some());
    assert_eq!(c.all().len(), 7);
}

#[test]
fn an_invalid_site_runbook_refuses_the_whole_directory_with_its_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("a-good.toml"), GOOD).unwrap();
    std::fs::write(
        dir.path().join("b-bad.toml"),
        GOOD.replace("id = \"demo\"", "id = \"other\"")
            .replace("kind = \"agent\"", "kind = \"robot\""),
    )
    .unwrap();
    let mut c = Catalog::builtin().expect("built-ins are valid");
    let errors = c.load_dir(dir.path()).expect_err("bad file");
    assert!(errors[0].file.ends_with("b-bad.toml"), "{}", errors[0]);
    assert!(
        c.get("demo").is_none(),
        "nothing is added when one file is bad"
    );
}
