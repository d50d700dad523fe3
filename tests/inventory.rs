//! Strict inventory parsing: the examples parse, and every class of bad input is refused with a
//! message naming the file, the line and the field.

use std::path::Path;

use lockstep::knowledge::inventory::{Inventory, ServerRole, Side, Topology};

/// A valid mirrored Data Center that the tests below break one way at a time.
const MIRRORED: &str = r#"name = "Contoso test"
topology = "mirrored"

[[servers]]
name = "DC1"
fqdn = "dc1.contoso.local"
side = "primary"
roles = ["registry", "directory"]
connected_version = "8.8.6"
windows = "2012 R2"
sql_server = "2014 SP2"

[[servers]]
name = "DC2"
fqdn = "dc2.contoso.local"
side = "secondary"
roles = ["registry", "directory"]
connected_version = "8.8.6"
windows = "2012 R2"
sql_server = "2014 SP2"

[[servers]]
name = "WEB1"
fqdn = "web1.contoso.local"
side = "primary"
roles = ["support-center", "datatransfer-api"]
connected_version = "8.8.6"
windows = "2012 R2"

[servers.certificate]
common_name = "web1.contoso.local"
issuer = "self-signed"

[servers.datatransfer]
ssl = true
"#;

/// A valid clustered Data Center: dedicated Registration Masters and one directory pair.
const CLUSTERED: &str = r#"name = "Cluster test"
topology = "clustered"

[[servers]]
name = "RM1"
fqdn = "rm1.corp.local"
side = "primary"
roles = ["registry"]
connected_version = "8.8.6"
windows = "2016"
sql_server = "2016"

[[servers]]
name = "RM2"
fqdn = "rm2.corp.local"
side = "secondary"
roles = ["registry"]
connected_version = "8.8.6"
windows = "2016"
sql_server = "2016"

[[servers]]
name = "DIR1A"
fqdn = "dir1a.corp.local"
side = "primary"
pair = "pair-1"
roles = ["directory"]
connected_version = "8.8.6"
windows = "2016"
sql_server = "2016"

[[servers]]
name = "DIR1B"
fqdn = "dir1b.corp.local"
side = "secondary"
pair = "pair-1"
roles = ["directory"]
connected_version = "8.8.6"
windows = "2016"
sql_server = "2016"
"#;

const STANDALONE: &str = r#"name = "Solo"
topology = "standalone"

[[servers]]
name = "SOLO"
fqdn = "solo.corp.local"
roles = ["registry", "directory", "support-center"]
connected_version = "8.8.6"
windows = "2012 R2"
sql_server = "2014 SP2"
"#;

/// Replaces the `n`th (0-based) occurrence of `from` in `text`.
fn replace_nth(text: &str, from: &str, to: &str, n: usize) -> String {
    let (i, _) = text
        .match_indices(from)
        .nth(n)
        .unwrap_or_else(|| panic!("`{from}` occurs fewer than {} times", n + 1));
    format!("{}{}{}", &text[..i], to, &text[i + from.len()..])
}

/// The 1-based line of the `n`th occurrence of `needle`.
fn line_of(text: &str, needle: &str, n: usize) -> usize {
    let (i, _) = text
        .match_indices(needle)
        .nth(n)
        .unwrap_or_else(|| panic!("`{needle}` occurs fewer than {} times", n + 1));
    text[..i].matches('\n').count() + 1
}

/// The error lines for a refused inventory.
fn refusal(text: &str) -> Vec<String> {
    match Inventory::from_toml(text, "examples/bad.toml") {
        Ok(inv) => panic!("expected a refusal, got {inv:#?}"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

/// Asserts one error line reads `examples/bad.toml:{line}: {field}: ...{words}...`.
fn assert_refused(text: &str, line: usize, field: &str, words: &str) {
    let errors = refusal(text);
    let prefix = format!("examples/bad.toml:{line}: {field}: ");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&prefix) && e.contains(words)),
        "no error `{prefix}...{words}...` among:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_three_examples_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let standalone = Inventory::load(&root.join("standalone.toml")).expect("standalone parses");
    assert_eq!(standalone.topology, Topology::Standalone);
    let mirrored = Inventory::load(&root.join("mirrored.toml")).expect("mirrored parses");
    assert_eq!(mirrored.topology, Topology::Mirrored);
    let clustered = Inventory::load(&root.join("clustered.toml")).expect("clustered parses");
    assert_eq!(clustered.topology, Topology::Clustered);
    assert_eq!(clustered.directory_pairs().len(), 2);
    assert_eq!(clustered.with_role(ServerRole::DatatransferApi).count(), 3);
    let differing: Vec<&str> = clustered
        .servers
        .iter()
        .filter(|s| s.outflow_cn_differs().is_some())
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(differing, ["NWDT2"]);
    assert!(clustered.servers.iter().any(|s| s.agent.is_some()));
}

#[test]
fn the_test_templates_are_valid() {
    for text in [MIRRORED, CLUSTERED, STANDALONE] {
        Inventory::from_toml(text, "t.toml").expect("template parses");
    }
}

#[test]
fn an_unknown_server_field_is_refused_with_its_line() {
    let text = replace_nth(MIRRORED, "windows = ", "colour = \"blue\"\nwindows = ", 1);
    let line = line_of(&text, "colour", 0);
    assert_refused(&text, line, "servers[1].colour", "unknown field");
}

#[test]
fn an_unknown_top_level_field_is_refused() {
    let text = MIRRORED.replace("topology =", "owner = \"ops\"\ntopology =");
    assert_refused(
        &text,
        2,
        "owner",
        "unknown field; expected one of: name, topology, servers",
    );
}

#[test]
fn an_unknown_certificate_field_is_refused() {
    let text = MIRRORED.replace(
        "issuer = \"self-signed\"",
        "issuer = \"self-signed\"\nexpires = \"2030\"",
    );
    let line = line_of(&text, "expires", 0);
    assert_refused(
        &text,
        line,
        "servers[2].certificate.expires",
        "unknown field",
    );
}

#[test]
fn an_unknown_fact_is_refused() {
    let text = format!("{MIRRORED}\n[servers.facts]\ncpu_count = 4\n");
    let line = line_of(&text, "cpu_count", 0);
    assert_refused(&text, line, "servers[2].facts.cpu_count", "unknown field");
}

#[test]
fn a_bad_topology_is_refused_listing_the_choices() {
    let text = MIRRORED.replace("\"mirrored\"", "\"mirror\"");
    assert_refused(
        &text,
        2,
        "topology",
        "unknown variant `mirror`, expected one of `standalone`, `mirrored`, `clustered`",
    );
}

#[test]
fn a_bad_role_is_refused_naming_its_index() {
    let text = replace_nth(MIRRORED, "\"datatransfer-api\"", "\"data-transfer\"", 0);
    let line = line_of(&text, "data-transfer", 0);
    assert_refused(
        &text,
        line,
        "servers[2].roles[1]",
        "unknown variant `data-transfer`",
    );
}

#[test]
fn bad_windows_sql_side_and_issuer_values_are_all_refused() {
    let text = replace_nth(MIRRORED, "windows = \"2012 R2\"", "windows = \"2019\"", 0);
    let text = replace_nth(
        &text,
        "sql_server = \"2014 SP2\"",
        "sql_server = \"2014\"",
        1,
    );
    let text = replace_nth(&text, "side = \"secondary\"", "side = \"left\"", 0);
    let text = text.replace("\"self-signed\"", "\"letsencrypt\"");
    assert_refused(
        &text,
        line_of(&text, "\"2019\"", 0),
        "servers[0].windows",
        "unknown variant `2019`",
    );
    assert_refused(
        &text,
        line_of(&text, "\"2014\"", 0),
        "servers[1].sql_server",
        "unknown variant `2014`",
    );
    assert_refused(
        &text,
        line_of(&text, "\"left\"", 0),
        "servers[1].side",
        "unknown variant `left`",
    );
    assert_refused(
        &text,
        line_of(&text, "letsencrypt", 0),
        "servers[2].certificate.issuer",
        "unknown variant `letsencrypt`",
    );
}

#[test]
fn a_value_of_the_wrong_type_is_refused() {
    let text = MIRRORED.replace("ssl = true", "ssl = \"yes\"");
    let line = line_of(&text, "ssl = ", 0);
    assert_refused(
        &text,
        line,
        "servers[2].datatransfer.ssl",
        "expected true or false, found a string",
    );
}

#[test]
fn a_bad_connected_version_is_refused() {
    let text = replace_nth(MIRRORED, "\"8.8.6\"", "\"8.8.x\"", 1);
    let line = line_of(&text, "8.8.x", 0);
    assert_refused(
        &text,
        line,
        "servers[1].connected_version",
        "not a Connected Backup version",
    );
}

#[test]
fn a_duplicate_server_name_is_refused_whatever_its_case() {
    let text = replace_nth(MIRRORED, "name = \"WEB1\"", "name = \"dc1\"", 0);
    let text = text.replace("web1.contoso.local\"\nside", "dc1.contoso.local\"\nside");
    let line = line_of(&text, "name = \"dc1\"", 0);
    assert_refused(
        &text,
        line,
        "servers[2].name",
        "duplicate server name \"dc1\" (also servers[0])",
    );
    let line = line_of(&text, "fqdn = \"dc1.contoso.local\"", 1);
    assert_refused(&text, line, "servers[2].fqdn", "duplicate fqdn");
}

#[test]
fn a_name_with_a_dot_is_refused() {
    let text = MIRRORED.replace("name = \"WEB1\"", "name = \"web1.contoso.local\"");
    let line = line_of(&text, "name = \"web1", 0);
    assert_refused(&text, line, "servers[2].name", "contains a dot");
}

#[test]
fn an_fqdn_without_a_domain_or_not_matching_the_name_is_refused() {
    let text = MIRRORED.replace("fqdn = \"web1.contoso.local\"", "fqdn = \"web1\"");
    assert_refused(
        &text,
        line_of(&text, "fqdn = \"web1\"", 0),
        "servers[2].fqdn",
        "no domain part",
    );
    let text = MIRRORED.replace(
        "fqdn = \"web1.contoso.local\"",
        "fqdn = \"www.contoso.local\"",
    );
    assert_refused(
        &text,
        line_of(&text, "www.contoso", 0),
        "servers[2].fqdn",
        "does not start with the server's name \"WEB1\"",
    );
}

#[test]
fn a_missing_required_field_names_the_server_table_line() {
    let text = replace_nth(MIRRORED, "connected_version = \"8.8.6\"\n", "", 2);
    let line = line_of(&text, "[[servers]]", 2);
    assert_refused(&text, line, "servers[2].connected_version", "missing");
}

#[test]
fn a_missing_side_in_a_mirrored_data_center_is_refused() {
    let text = MIRRORED.replace(
        "side = \"primary\"\nroles = [\"support",
        "roles = [\"support",
    );
    let line = line_of(&text, "[[servers]]", 2);
    assert_refused(
        &text,
        line,
        "servers[2].side",
        "missing; every server of a mirrored Data Center",
    );
}

#[test]
fn a_side_in_a_stand_alone_data_center_is_refused() {
    let text = STANDALONE.replace("roles =", "side = \"primary\"\nroles =");
    assert_refused(
        &text,
        line_of(&text, "side =", 0),
        "servers[0].side",
        "has no sides",
    );
}

#[test]
fn a_pair_outside_a_cluster_is_refused() {
    let text = replace_nth(MIRRORED, "roles =", "pair = \"p1\"\nroles =", 0);
    assert_refused(
        &text,
        line_of(&text, "pair =", 0),
        "servers[0].pair",
        "only a clustered Data Center",
    );
}

#[test]
fn a_mirrored_data_center_needs_one_primary_and_one_secondary_registry_server() {
    let text = MIRRORED.replace("side = \"secondary\"", "side = \"primary\"");
    let errors = refusal(&text);
    assert!(
        errors.iter().any(|e| e.contains("servers[1].roles: a mirrored Data Center has exactly one primary Registry server; servers[0] is already it")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("examples/bad.toml:4: servers: ")
                && e.contains("exactly one secondary Registry server")
                && e.contains("found none")),
        "{errors:#?}"
    );
}

#[test]
fn a_mirrored_registry_server_without_a_directory_is_refused() {
    let text = replace_nth(
        MIRRORED,
        "[\"registry\", \"directory\"]",
        "[\"registry\"]",
        1,
    );
    assert_refused(
        &text,
        line_of(&text, "[\"registry\"]", 0),
        "servers[1].roles",
        "add \"directory\"",
    );
}

#[test]
fn a_directory_only_server_in_a_mirrored_data_center_is_refused() {
    let text = MIRRORED.replace(
        "[\"support-center\", \"datatransfer-api\"]",
        "[\"directory\"]",
    );
    let text = text.replace("[servers.datatransfer]\nssl = true\n", "");
    let text = text.replace(
        "windows = \"2012 R2\"\n\n[servers.certificate]",
        "windows = \"2012 R2\"\nsql_server = \"2014 SP2\"\n\n[servers.certificate]",
    );
    let errors = refusal(&text);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("servers[2].roles") && e.contains("topology is \"clustered\"")),
        "{errors:#?}"
    );
}

#[test]
fn a_stand_alone_data_center_has_one_server_with_both_databases() {
    let text = STANDALONE.replace("\"registry\", \"directory\", ", "\"registry\", ");
    assert_refused(
        &text,
        line_of(&text, "roles", 0),
        "servers[0].roles",
        "needs roles \"registry\" and \"directory\"",
    );
    let second = STANDALONE
        .replace("[[servers]]", "[[servers]]\nname = \"SOLO2\"\nfqdn = \"solo2.corp.local\"\nroles = [\"directory\"]\nconnected_version = \"8.8.6\"\nwindows = \"2012 R2\"\nsql_server = \"2014 SP2\"\n\n[[servers]]");
    assert_refused(
        &second,
        line_of(&second, "roles", 1),
        "servers[1].roles",
        "one Data Center server (servers[0])",
    );
}

#[test]
fn a_clustered_data_center_needs_a_registration_master_on_each_side() {
    let text = replace_nth(CLUSTERED, "side = \"secondary\"", "side = \"primary\"", 0);
    let errors = refusal(&text);
    assert!(
        errors.iter().any(|e| e
            .contains("Registration Master (role \"registry\") on the secondary side; found none")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains(
            "servers[1].roles: the primary side already has a Registration Master (servers[0])"
        )),
        "{errors:#?}"
    );
}

#[test]
fn a_clustered_directory_server_without_a_pair_is_refused() {
    let text = replace_nth(CLUSTERED, "pair = \"pair-1\"\n", "", 1);
    let errors = refusal(&text);
    let line = line_of(&text, "[[servers]]", 3);
    assert!(
        errors.iter().any(|e| e.starts_with(&format!(
            "examples/bad.toml:{line}: servers[3].pair: missing"
        ))),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("pair \"pair-1\" has no secondary directory server")),
        "{errors:#?}"
    );
}

#[test]
fn a_pair_with_two_servers_on_one_side_is_refused() {
    let text = replace_nth(
        CLUSTERED,
        "side = \"secondary\"\npair",
        "side = \"primary\"\npair",
        0,
    );
    let line = line_of(&text, "pair = \"pair-1\"", 1);
    assert_refused(
        &text,
        line,
        "servers[3].pair",
        "pair \"pair-1\" already has a primary directory server (servers[2])",
    );
}

#[test]
fn a_pair_on_a_server_without_a_directory_is_refused() {
    let text = replace_nth(
        CLUSTERED,
        "roles = [\"registry\"]",
        "pair = \"pair-9\"\nroles = [\"registry\"]",
        0,
    );
    assert_refused(
        &text,
        line_of(&text, "pair-9", 0),
        "servers[0].pair",
        "no \"directory\" role",
    );
}

#[test]
fn a_database_server_needs_its_sql_server_version() {
    let text = replace_nth(MIRRORED, "sql_server = \"2014 SP2\"\n", "", 0);
    assert_refused(
        &text,
        line_of(&text, "[[servers]]", 0),
        "servers[0].sql_server",
        "missing; a server holding",
    );
}

#[test]
fn datatransfer_settings_belong_only_on_datatransfer_servers() {
    let text = MIRRORED.replace(
        "\"support-center\", \"datatransfer-api\"",
        "\"support-center\"",
    );
    assert_refused(
        &text,
        line_of(&text, "[servers.datatransfer]", 0),
        "servers[2].datatransfer",
        "only a server with the \"datatransfer-api\" role",
    );
}

#[test]
fn registry_file_facts_belong_only_on_registry_servers() {
    let text = format!("{MIRRORED}\n[servers.facts]\nregistry_mdf_mb = 100\n");
    assert_refused(
        &text,
        line_of(&text, "registry_mdf_mb", 0),
        "servers[2].facts.registry_mdf_mb",
        "no \"registry\" role",
    );
}

#[test]
fn an_agent_url_must_be_https() {
    let text = replace_nth(
        MIRRORED,
        "windows =",
        "agent = \"http://dc1.contoso.local:9443\"\nwindows =",
        0,
    );
    assert_refused(
        &text,
        line_of(&text, "agent =", 0),
        "servers[0].agent",
        "must start with https://",
    );
}

#[test]
fn an_unsupported_tls_version_is_refused() {
    let text = format!("{MIRRORED}\n[servers.facts]\ntls_versions = [\"1.2\", \"1.3\"]\n");
    assert_refused(
        &text,
        line_of(&text, "tls_versions", 0),
        "servers[2].facts.tls_versions[1]",
        "\"1.3\" is not a TLS version",
    );
}

#[test]
fn empty_and_repeated_roles_are_refused() {
    let text = MIRRORED.replace("[\"support-center\", \"datatransfer-api\"]", "[]");
    assert_refused(
        &text,
        line_of(&text, "[]", 0),
        "servers[2].roles",
        "at least one role",
    );
    let text = MIRRORED.replace(
        "[\"support-center\", \"datatransfer-api\"]",
        "[\"support-center\", \"support-center\", \"datatransfer-api\"]",
    );
    assert_refused(
        &text,
        line_of(&text, "roles = [\"support", 0),
        "servers[2].roles[1]",
        "listed twice",
    );
}

#[test]
fn a_syntax_error_names_its_line() {
    let text = MIRRORED.replace("name = \"DC2\"", "name = DC2");
    let errors = refusal(&text);
    let line = line_of(&text, "name = DC2", 0);
    assert!(
        errors[0].starts_with(&format!("examples/bad.toml:{line}: not valid TOML")),
        "{errors:#?}"
    );
}

#[test]
fn a_date_time_value_is_refused_in_plain_words() {
    let text = MIRRORED.replace("name = \"DC2\"", "name = 2024-01-01");
    let errors = refusal(&text);
    assert!(errors[0].contains("date-time"), "{errors:#?}");
}

#[test]
fn every_field_problem_is_reported_not_only_the_first() {
    let text = MIRRORED
        .replace("\"mirrored\"", "\"mirror\"")
        .replace("name = \"DC2\"", "name = \"dc2.contoso.local\"")
        .replace("ssl = true", "ssl = 1");
    let errors = refusal(&text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].contains("topology"));
    assert!(errors[1].contains("servers[1].name"));
    assert!(errors[2].contains("servers[2].datatransfer.ssl"));
}

#[test]
fn every_shape_problem_is_reported_not_only_the_first() {
    let text = MIRRORED.replace("side = \"secondary\"\n", "").replace(
        "\"support-center\", \"datatransfer-api\"",
        "\"support-center\"",
    );
    let errors = refusal(&text);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("servers[1].side: missing")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("servers[2].datatransfer")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("secondary Registry server")),
        "{errors:#?}"
    );
}

#[test]
fn a_file_that_cannot_be_read_is_named() {
    let err = Inventory::load(Path::new("/nonexistent/dc.toml")).expect_err("no such file");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/dc.toml: cannot read the inventory"),
        "{err}"
    );
}

#[test]
fn an_inventory_built_in_code_is_validated_too() {
    let mut inv = Inventory::parse(MIRRORED).expect("valid");
    inv.servers[1].side = Some(Side::Primary);
    let err = inv.validate().expect_err("two primaries");
    assert!(err.to_string().contains("servers[1].roles"), "{err}");
}

#[test]
fn helpers_find_the_other_registry_and_the_directory_pairs() {
    let inv = Inventory::parse(MIRRORED).expect("valid");
    let dc1 = inv.server("DC1").expect("DC1");
    assert_eq!(
        inv.other_registry(dc1).map(|s| s.name.as_str()),
        Some("DC2")
    );
    assert_eq!(
        inv.registry_on(Some(Side::Secondary))
            .map(|s| s.name.as_str()),
        Some("DC2")
    );
    let cluster = Inventory::parse(CLUSTERED).expect("valid");
    let pairs = cluster.directory_pairs();
    assert_eq!(pairs.len(), 1);
    assert_eq!(
        (pairs[0].1.name.as_str(), pairs[0].2.name.as_str()),
        ("DIR1A", "DIR1B")
    );
    let primary: Vec<&str> = cluster
        .stop_with_registry(Some(Side::Primary))
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(primary, ["RM1", "DIR1A"]);
    let dir1a = cluster.server("DIR1A").expect("DIR1A");
    assert_eq!(
        cluster.pair_partner(dir1a).map(|s| s.name.as_str()),
        Some("DIR1B")
    );
    let solo = Inventory::parse(STANDALONE).expect("valid");
    assert!(solo.other_registry(&solo.servers[0]).is_none());
    assert_eq!(
        solo.registry_on(None).map(|s| s.name.as_str()),
        Some("SOLO")
    );
}

/// Smaller error classes, one row each: (change to the mirrored template, line marker, field,
/// words in the message).
#[test]
fn each_remaining_error_class_names_its_line_and_field() {
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "issuer = \"self-signed\"",
            "issuer = \"self-signed\"\nport = 70000",
            "port = 70000",
            "servers[2].certificate.port",
            "not a TCP port",
        ),
        (
            "issuer = \"self-signed\"",
            "issuer = \"self-signed\"\nport = -1",
            "port = -1",
            "servers[2].certificate.port",
            "negative",
        ),
        (
            "common_name = \"web1.contoso.local\"",
            "common_name = \"web 1\"",
            "common_name",
            "servers[2].certificate.common_name",
            "not a host name",
        ),
        (
            "name = \"Contoso test\"",
            "name = \" Contoso test\"",
            "name = ",
            "name",
            "leading or trailing spaces",
        ),
        (
            "name = \"Contoso test\"",
            "name = \"\"",
            "name = ",
            "name",
            "must not be empty",
        ),
        (
            "topology = \"mirrored\"",
            "topology = 3",
            "topology",
            "topology",
            "expected a string, found an integer",
        ),
        (
            "ssl = true\n",
            "ssl = true\n\n[servers.facts]\nsql_agent_account = 'CORP\\svc'\n",
            "sql_agent_account",
            "servers[2].facts.sql_agent_account",
            "no sql_server",
        ),
        (
            "ssl = true\n",
            "ssl = true\n\n[servers.facts]\nfree_disk_mb = \"lots\"\n",
            "free_disk_mb",
            "servers[2].facts.free_disk_mb",
            "expected an integer",
        ),
        (
            "roles = [\"support-center\", \"datatransfer-api\"]",
            "roles = \"support-center\"",
            "roles = \"support",
            "servers[2].roles",
            "expected an array of roles",
        ),
    ];
    for (from, to, marker, field, words) in cases {
        assert!(MIRRORED.contains(from), "template lacks {from}");
        let text = replace_nth(MIRRORED, from, to, 0);
        assert_refused(&text, line_of(&text, marker, 0), field, words);
    }
}

#[test]
fn a_table_field_given_as_a_value_is_refused() {
    let text = MIRRORED
        .replace("[servers.datatransfer]\nssl = true\n", "")
        .replace(
            "roles = [\"support-center\", \"datatransfer-api\"]",
            "roles = [\"support-center\", \"datatransfer-api\"]\ndatatransfer = true",
        );
    assert_refused(
        &text,
        line_of(&text, "datatransfer = true", 0),
        "servers[2].datatransfer",
        "expected a table, found a boolean",
    );
}

#[test]
fn a_file_without_servers_is_refused() {
    let head = "name = \"x\"\ntopology = \"standalone\"\n";
    assert_refused(
        &format!("{head}servers = []\n"),
        3,
        "servers",
        "lists no servers",
    );
    assert_refused(
        &format!("{head}[servers]\nname = \"a\"\n"),
        3,
        "servers",
        "expected [[servers]] tables",
    );
    let errors = refusal("");
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors
        .iter()
        .all(|e| e.starts_with("examples/bad.toml:1: ") && e.contains("missing")));
}

// --- `lockstep inventory check`, the real binary -----------------------------------------

fn lockstep(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the lockstep binary runs")
}

#[test]
fn inventory_check_prints_the_data_center_and_its_servers() {
    let out = lockstep(&["inventory", "check", "examples/clustered.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("examples/clustered.toml: valid"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Northwind global backup — clustered Data Center, 10 servers"),
        "{stdout}"
    );
    let nwdir1b = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("NWDIR1B"))
        .expect("a row for NWDIR1B");
    for cell in ["secondary", "pair-1", "8.8.6.1", "directory"] {
        assert!(nwdir1b.contains(cell), "{nwdir1b}");
    }
}

#[test]
fn inventory_check_lists_every_problem_with_its_line_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    let text = MIRRORED
        .replace("\"mirrored\"", "\"mirror\"")
        .replace("ssl = true", "ssl = 1");
    std::fs::write(&path, &text).expect("write");
    let file = path.to_str().expect("utf-8 path");
    let out = lockstep(&["inventory", "check", file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{file}:2: topology: unknown variant `mirror`")),
        "{stderr}"
    );
    let ssl_line = line_of(&text, "ssl = 1", 0);
    assert!(
        stderr.contains(&format!(
            "{file}:{ssl_line}: servers[2].datatransfer.ssl: expected true or false"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("2 problems found"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn inventory_check_of_a_missing_file_exits_1_naming_it() {
    let out = lockstep(&["inventory", "check", "examples/no-such-file.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("examples/no-such-file.toml: cannot read the inventory"),
        "{stderr}"
    );
}

// --- properties --------------------------------------------------------------------------

mod properties {
    use std::collections::BTreeSet;

    use lockstep::knowledge::inventory::{
        Certificate, DataTransfer, Facts, Inventory, Issuer, Server, ServerRole, Side,
        SqlServerVersion, Topology, Version, WindowsVersion,
    };
    use proptest::prelude::*;

    /// Draws choices from a generated list, cycling; keeps the builder below simple to read.
    struct Draw(Vec<u8>, usize);
    impl Draw {
        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            let b = self.0[self.1 % self.0.len()];
            self.1 += 1;
            from[b as usize % from.len()]
        }
        fn coin(&mut self) -> bool {
            self.pick(&[true, false])
        }
    }

    fn server(
        d: &mut Draw,
        name: String,
        side: Option<Side>,
        pair: Option<String>,
        roles: &[ServerRole],
    ) -> Server {
        let roles: BTreeSet<ServerRole> = roles.iter().copied().collect();
        let has_db = roles.iter().any(|r| r.has_database());
        let (windows, sql) = d.pick(&[
            (WindowsVersion::W2008R2, SqlServerVersion::S2008R2Sp3),
            (WindowsVersion::W2012R2, SqlServerVersion::S2014Sp2),
            (WindowsVersion::W2016, SqlServerVersion::S2016),
        ]);
        let version = d.pick(&["8.8.1", "8.8.6", "8.8.6.1", "8.11"]);
        let fqdn = format!("{}.corp.example", name.to_lowercase());
        let dt = roles.contains(&ServerRole::DatatransferApi);
        let certificate =
            (roles.contains(&ServerRole::ManagementApi) || dt || d.coin()).then(|| Certificate {
                common_name: if d.coin() {
                    fqdn.clone()
                } else {
                    format!("public-{}.example.com", name.to_lowercase())
                },
                issuer: d.pick(&[Issuer::TrustedCa, Issuer::SelfSigned]),
                port: d.pick(&[None, Some(443), Some(8443)]),
            });
        let mut facts = Facts::default();
        if roles.contains(&ServerRole::Registry) && d.coin() {
            facts.free_disk_mb = Some(d.pick(&[100, 10_000, 90_000]));
            facts.registry_mdf_mb = Some(20_000);
            facts.registry_ldf_mb = Some(4_000);
        }
        if has_db && d.coin() {
            facts.sql_service_account = Some(r"CORP\svc-sql".into());
            facts.sql_agent_account = Some(d.pick(&[r"CORP\svc-sql", r"CORP\svc-agent"]).into());
        }
        if d.coin() {
            facts.tls_versions = Some(
                d.pick(&[&["1.2"][..], &["1.1", "1.2"][..]])
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            );
            facts.legacy_ssl_disabled = Some(d.coin());
            facts.weak_ciphers_disabled = Some(d.coin());
        }
        Server {
            agent: d.coin().then(|| format!("https://{fqdn}:9443")),
            name,
            fqdn,
            side,
            pair,
            roles,
            connected_version: version.parse::<Version>().expect("version"),
            windows,
            sql_server: has_db.then_some(sql),
            certificate,
            datatransfer: (dt && d.coin()).then(|| DataTransfer { ssl: d.coin() }),
            facts,
        }
    }

    /// A valid inventory of any topology, built from generated choices.
    fn build(topology: Topology, pairs: usize, web: usize, choices: Vec<u8>) -> Inventory {
        let mut d = Draw(choices, 0);
        let mut servers = Vec::new();
        let sides = [Side::Primary, Side::Secondary];
        match topology {
            Topology::Standalone => servers.push(server(
                &mut d,
                "DC".into(),
                None,
                None,
                &[ServerRole::Registry, ServerRole::Directory],
            )),
            Topology::Mirrored => {
                for (i, side) in sides.into_iter().enumerate() {
                    servers.push(server(
                        &mut d,
                        format!("DC{i}"),
                        Some(side),
                        None,
                        &[ServerRole::Registry, ServerRole::Directory],
                    ));
                }
            }
            Topology::Clustered => {
                let dedicated = d.coin();
                for (i, side) in sides.into_iter().enumerate() {
                    if dedicated {
                        servers.push(server(
                            &mut d,
                            format!("RM{i}"),
                            Some(side),
                            None,
                            &[ServerRole::Registry],
                        ));
                    } else {
                        servers.push(server(
                            &mut d,
                            format!("RM{i}"),
                            Some(side),
                            Some("pair-0".into()),
                            &[ServerRole::Registry, ServerRole::Directory],
                        ));
                    }
                }
                for p in 1..=pairs {
                    for (i, side) in sides.into_iter().enumerate() {
                        servers.push(server(
                            &mut d,
                            format!("DIR{p}X{i}"),
                            Some(side),
                            Some(format!("pair-{p}")),
                            &[ServerRole::Directory],
                        ));
                    }
                }
            }
        }
        for w in 0..web {
            let roles = d.pick(&[
                &[
                    ServerRole::SupportCenter,
                    ServerRole::AccountManagementWebsite,
                ][..],
                &[ServerRole::DatatransferApi][..],
                &[ServerRole::DatatransferApi, ServerRole::ManagementApi][..],
                &[ServerRole::ManagementApi, ServerRole::ReportingServices][..],
            ]);
            let side = (topology != Topology::Standalone).then(|| d.pick(&sides));
            servers.push(server(&mut d, format!("WEB{w}"), side, None, roles));
        }
        Inventory {
            name: "Generated".into(),
            topology,
            servers,
        }
    }

    fn topology() -> impl Strategy<Value = Topology> {
        prop_oneof![
            Just(Topology::Standalone),
            Just(Topology::Mirrored),
            Just(Topology::Clustered)
        ]
    }

    proptest! {
        /// Anything the types can express in a valid shape survives TOML and strict parsing
        /// unchanged: the parser refuses nothing valid and loses nothing.
        #[test]
        fn valid_inventories_round_trip_through_toml(
            t in topology(), pairs in 1usize..4, web in 0usize..5,
            choices in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let inv = build(t, pairs, web, choices).validate().expect("the generator builds valid inventories");
            let text = toml::to_string(&inv).expect("serializes");
            let back = Inventory::from_toml(&text, "generated.toml");
            prop_assert_eq!(back.as_ref().ok(), Some(&inv), "{}\n{:?}", text, back.as_ref().err().map(|e| e.to_string()));
        }

        /// Damaged files never crash the parser, and every problem points inside the file.
        #[test]
        fn damaged_files_are_refused_with_lines_inside_the_file(
            drop in proptest::collection::vec(any::<prop::sample::Index>(), 1..4),
            dup in any::<prop::sample::Index>(),
        ) {
            let text = include_str!("../examples/clustered.toml");
            let mut lines: Vec<&str> = text.lines().collect();
            let extra = lines[dup.index(lines.len())];
            lines.insert(dup.index(lines.len()), extra);
            for i in drop {
                let at = i.index(lines.len());
                lines.remove(at);
            }
            let damaged = lines.join("\n");
            if let Err(e) = Inventory::from_toml(&damaged, "d.toml") {
                let count = damaged.lines().count().max(1);
                for p in &e.problems {
                    let line = p.line.expect("every problem in a file has a line");
                    prop_assert!((1..=count + 1).contains(&line), "{} (file has {} lines)", e, count);
                }
            }
        }
    }
}
