//! `--help` reads like a man page: every command's long help, through the real binary, has
//! examples; the top level names the environment and the exit status; and the table of help
//! sections names only commands that exist.

use std::process::Command;

fn help_of(path: &[String], flag: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(path)
        .arg(flag)
        .env_remove("LOCKSTEP_LOG_FORMAT")
        .output()
        .expect("run lockstep");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Every visible command path below `cmd` (groups and leaves).
fn paths(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let mut p = prefix.to_vec();
        p.push(sub.get_name().to_string());
        out.push(p.clone());
        paths(sub, &p, out);
    }
}

fn all_paths() -> Vec<Vec<String>> {
    let mut out = Vec::new();
    paths(&lockstep::cli::help::command(), &[], &mut out);
    out
}

#[test]
fn every_command_has_examples_in_its_long_help() {
    let all = all_paths();
    assert!(all.len() > 20, "found only {all:?}");
    let mut missing = Vec::new();
    for p in &all {
        let (ok, text) = help_of(p, "--help");
        assert!(ok, "lockstep {} --help failed", p.join(" "));
        if !text.contains("Examples:") {
            missing.push(p.join(" "));
        }
    }
    assert!(
        missing.is_empty(),
        "commands whose --help has no Examples: section (add one in server/cli/help.rs): {missing:?}"
    );
}

#[test]
fn the_top_level_help_names_the_environment_and_the_exit_status() {
    let (ok, text) = help_of(&[], "--help");
    assert!(ok);
    for section in [
        "Examples:",
        "Environment:",
        "Exit status:",
        "LOCKSTEP_LOG_FORMAT",
    ] {
        assert!(text.contains(section), "no {section} in:\n{text}");
    }
}

#[test]
fn short_help_stays_short_and_keeps_what_a_command_already_said() {
    let serve = vec!["serve".to_string()];
    let (_, short) = help_of(&serve, "-h");
    assert!(!short.contains("Examples:"), "{short}");
    let (_, long) = help_of(&["rehearse".to_string()], "--help");
    assert!(
        long.contains("checkdb-error"),
        "rehearse keeps its fault list: {long}"
    );
    assert!(long.contains("Examples:"), "{long}");
}

#[test]
fn the_help_table_names_only_commands_that_exist() {
    let all: Vec<String> = all_paths().iter().map(|p| p.join(" ")).collect();
    for documented in lockstep::cli::help::documented_paths() {
        assert!(
            all.iter().any(|p| p == documented),
            "server/cli/help.rs documents `{documented}`, which is not a command"
        );
    }
}

#[test]
fn every_argument_says_what_it_is_for() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if !sub.is_hide_set() && sub.get_name() != "help" {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk(&lockstep::cli::help::command(), "lockstep", &mut missing);
    assert!(
        missing.is_empty(),
        "arguments without help text: {missing:?}"
    );
}
