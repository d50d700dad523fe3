//! Preflight: every vendor rule passes, fails, or — when the inventory lacks the facts — says
//! "unknown — will be checked live", never "pass".

use std::collections::BTreeMap;

use lockstep::knowledge::inventory::{
    Certificate, Inventory, Issuer, ServerRole, Side, SqlServerVersion, Topology, Version,
    WindowsVersion,
};
use lockstep::knowledge::preflight::{preflight, Finding, Outcome, Severity, UNKNOWN_PREFIX};
use lockstep::knowledge::runbook::sections::is_seed_section;

/// A mirrored Data Center on which every rule passes, with every fact known.
const CLEAN: &str = r#"name = "Clean"
topology = "mirrored"

[[servers]]
name = "DC1"
fqdn = "dc1.corp.local"
side = "primary"
roles = ["registry", "directory"]
connected_version = "8.8.6.1"
windows = "2012 R2"
sql_server = "2014 SP2"
[servers.facts]
free_disk_mb = 10000
registry_mdf_mb = 50000
registry_ldf_mb = 10000
sql_service_account = 'CORP\svc-sql'
sql_agent_account = 'CORP\svc-sql'
tls_versions = ["1.2"]
legacy_ssl_disabled = true

[[servers]]
name = "DC2"
fqdn = "dc2.corp.local"
side = "secondary"
roles = ["registry", "directory"]
connected_version = "8.8.6.1"
windows = "2012 R2"
sql_server = "2014 SP2"
[servers.facts]
free_disk_mb = 10000
registry_mdf_mb = 50000
registry_ldf_mb = 10000
sql_service_account = 'CORP\svc-sql'
sql_agent_account = 'corp\SVC-SQL'
tls_versions = ["1.2"]
legacy_ssl_disabled = true

[[servers]]
name = "WEB1"
fqdn = "web1.corp.local"
side = "primary"
roles = ["support-center", "account-management-website"]
connected_version = "8.8.6.1"
windows = "2012 R2"
[servers.facts]
tls_versions = ["1.2"]
legacy_ssl_disabled = true
weak_ciphers_disabled = true

[[servers]]
name = "API1"
fqdn = "api1.corp.local"
side = "primary"
roles = ["datatransfer-api", "management-api"]
connected_version = "8.8.6.1"
windows = "2012 R2"
[servers.certificate]
common_name = "api1.corp.local"
issuer = "trusted-ca"
port = 443
[servers.datatransfer]
ssl = true
[servers.facts]
tls_versions = ["1.2"]
legacy_ssl_disabled = true

[[servers]]
name = "DT2"
fqdn = "dt2.corp.local"
side = "secondary"
roles = ["datatransfer-api"]
connected_version = "8.8.6.1"
windows = "2012 R2"
[servers.certificate]
common_name = "DT2.corp.local"
issuer = "self-signed"
port = 443
[servers.datatransfer]
ssl = true
[servers.facts]
tls_versions = ["1.2"]
legacy_ssl_disabled = true
"#;

fn clean() -> Inventory {
    Inventory::parse(CLEAN).expect("the clean inventory parses")
}

fn run(inv: &Inventory, runbook: Option<&str>, target: Option<&str>) -> Vec<Finding> {
    let mut params = BTreeMap::new();
    if let Some(t) = target {
        params.insert("target".to_owned(), t.to_owned());
    }
    preflight(inv, runbook, &params)
}

fn server_mut<'a>(
    inv: &'a mut Inventory,
    name: &str,
) -> &'a mut lockstep::knowledge::inventory::Server {
    inv.servers
        .iter_mut()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no server {name}"))
}

fn v(s: &str) -> Version {
    s.parse().expect("version")
}

/// The findings of `rule` about `server` (`None`: about the whole Data Center).
fn of<'a>(findings: &'a [Finding], rule: &str, server: Option<&str>) -> Vec<&'a Finding> {
    findings
        .iter()
        .filter(|f| f.rule == rule && f.server.as_deref() == server)
        .collect()
}

/// Asserts exactly one finding of `rule` about `server`, with that result and severity.
fn assert_one(
    findings: &[Finding],
    rule: &str,
    server: Option<&str>,
    result: Outcome,
    severity: Severity,
) -> Finding {
    let found = of(findings, rule, server);
    assert_eq!(
        found.len(),
        1,
        "expected one {rule} finding for {server:?}, got {found:#?}\nall: {findings:#?}"
    );
    let f = found[0].clone();
    assert_eq!((f.result, f.severity), (result, severity), "{f:#?}");
    if result == Outcome::Unknown {
        assert!(f.message.starts_with(UNKNOWN_PREFIX), "{}", f.message);
    }
    f
}

fn assert_absent(findings: &[Finding], rule: &str) {
    assert!(
        findings.iter().all(|f| f.rule != rule),
        "{rule} should not run: {findings:#?}"
    );
}

// --- the clean estate --------------------------------------------------------------------

#[test]
fn a_clean_estate_passes_every_rule_of_every_procedure() {
    let inv = clean();
    for (runbook, target) in [
        (None, None),
        (Some("upgrade-8.11"), None),
        (Some("upgrade-sql-server"), Some("2016")),
        (Some("upgrade-windows-server"), Some("2016")),
        (Some("uninstall-management-api"), None),
        (Some("uninstall-datatransfer-api"), None),
    ] {
        let findings = run(&inv, runbook, target);
        assert!(!findings.is_empty());
        let not_passing: Vec<_> = findings
            .iter()
            .filter(|f| f.result != Outcome::Pass)
            .collect();
        assert!(not_passing.is_empty(), "{runbook:?}: {not_passing:#?}");
        assert!(findings.iter().all(|f| f.severity == Severity::Info));
    }
}

#[test]
fn every_finding_cites_a_seed_heading_exactly_as_printed() {
    let mut inv = clean();
    inv.servers
        .iter_mut()
        .for_each(|s| s.facts = Default::default());
    for (runbook, target) in [
        (None, None),
        (Some("upgrade-sql-server"), Some("2016")),
        (Some("upgrade-windows-server"), Some("2016")),
        (Some("upgrade-windows-server"), Some("2019")),
        (Some("uninstall-management-api"), None),
    ] {
        for f in run(&inv, runbook, target) {
            assert!(is_seed_section(&f.section), "{f:#?}");
        }
    }
}

#[test]
fn the_same_input_gives_the_same_findings_in_the_same_order() {
    let inv = Inventory::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/clustered.toml"
    )))
    .expect("example");
    assert_eq!(
        run(&inv, Some("upgrade-8.11"), None),
        run(&inv, Some("upgrade-8.11"), None)
    );
}

// --- minimum Connected Backup versions ---------------------------------------------------

#[test]
fn sql_server_2016_needs_8_8_6_on_every_server() {
    let mut inv = clean();
    server_mut(&mut inv, "WEB1").connected_version = v("8.8.5");
    let findings = run(&inv, Some("upgrade-sql-server"), Some("2016"));
    let f = assert_one(
        &findings,
        "sql-target-minimum-version",
        Some("WEB1"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("8.8.6 or later"), "{}", f.message);
    assert_eq!(
        f.section,
        "Upgrade Mirrored Data Center Servers to SQL Server"
    );
    assert!(of(&findings, "sql-target-minimum-version", Some("DC1")).is_empty());
    server_mut(&mut inv, "WEB1").connected_version = v("8.8.6");
    let findings = run(&inv, Some("upgrade-sql-server"), Some("2016"));
    assert_one(
        &findings,
        "sql-target-minimum-version",
        None,
        Outcome::Pass,
        Severity::Info,
    );
}

#[test]
fn sql_server_2014_sp2_needs_8_8_3() {
    let mut inv = clean();
    server_mut(&mut inv, "DC2").connected_version = v("8.8.2");
    let findings = run(&inv, Some("upgrade-sql-server"), Some("2014 SP2"));
    // DC2 already runs 2014 SP2, but the rule is about every server in the configuration.
    let f = assert_one(
        &findings,
        "sql-target-minimum-version",
        Some("DC2"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("8.8.3"), "{}", f.message);
    server_mut(&mut inv, "DC2").connected_version = v("8.8.3");
    assert_one(
        &run(&inv, Some("upgrade-sql-server"), Some("2014 SP2")),
        "sql-target-minimum-version",
        None,
        Outcome::Pass,
        Severity::Info,
    );
}

#[test]
fn sql_server_2012_sp4_needs_8_8_1_and_the_section_follows_the_topology() {
    let text = CLEAN
        .replace("2014 SP2", "2008 R2 SP3")
        .replace("2012 R2", "2008 R2");
    let mut inv = Inventory::parse(&text).expect("valid");
    server_mut(&mut inv, "DC1").connected_version = v("8.8.0");
    let findings = run(&inv, Some("upgrade-sql-server"), Some("2012 SP4"));
    let f = assert_one(
        &findings,
        "sql-target-minimum-version",
        Some("DC1"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("8.8.1"), "{}", f.message);
    let standalone = Inventory::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/standalone.toml"
    )))
    .expect("example");
    let findings = run(&standalone, Some("upgrade-sql-server"), Some("2016"));
    let f = assert_one(
        &findings,
        "sql-target-minimum-version",
        None,
        Outcome::Pass,
        Severity::Info,
    );
    assert_eq!(
        f.section,
        "Upgrade Stand-Alone Data Center Servers to SQL Server"
    );
}

#[test]
fn windows_server_2016_needs_8_8_6_1_not_only_8_8_1() {
    let mut inv = clean();
    server_mut(&mut inv, "DT2").connected_version = v("8.8.6");
    let findings = run(&inv, Some("upgrade-windows-server"), Some("2016"));
    let f = assert_one(
        &findings,
        "windows-target-minimum-version",
        Some("DT2"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("8.8.6.1"), "{}", f.message);
    assert_eq!(f.section, "Upgrade a Data Center Server to Windows Server");
    // 8.8.6 is enough for the synchronization rule (8.8.1).
    assert_one(
        &findings,
        "connected-version-synchronized",
        None,
        Outcome::Pass,
        Severity::Info,
    );
}

#[test]
fn windows_server_2012_r2_needs_8_8_1() {
    let text = CLEAN
        .replace("2014 SP2", "2008 R2 SP3")
        .replace("2012 R2", "2008 R2");
    let mut inv = Inventory::parse(&text).expect("valid");
    assert_one(
        &run(&inv, Some("upgrade-windows-server"), Some("2012 R2")),
        "windows-target-minimum-version",
        None,
        Outcome::Pass,
        Severity::Info,
    );
    server_mut(&mut inv, "API1").connected_version = v("8.7");
    let findings = run(&inv, Some("upgrade-windows-server"), Some("2012 R2"));
    assert_one(
        &findings,
        "windows-target-minimum-version",
        Some("API1"),
        Outcome::Fail,
        Severity::Error,
    );
}

#[test]
fn every_server_runs_8_8_1_before_any_windows_or_sql_upgrade() {
    let mut inv = clean();
    server_mut(&mut inv, "WEB1").connected_version = v("8.8.0.9");
    for (rb, t) in [
        ("upgrade-windows-server", "2016"),
        ("upgrade-sql-server", "2016"),
    ] {
        let findings = run(&inv, Some(rb), Some(t));
        let f = assert_one(
            &findings,
            "connected-version-synchronized",
            Some("WEB1"),
            Outcome::Fail,
            Severity::Error,
        );
        assert_eq!(f.section, "Upgrade Requirements");
    }
    assert_absent(
        &run(&inv, Some("upgrade-8.11"), None),
        "connected-version-synchronized",
    );
}

// --- supported combinations --------------------------------------------------------------

#[test]
fn an_unsupported_windows_sql_combination_is_an_error() {
    let mut inv = clean();
    server_mut(&mut inv, "DC2").windows = WindowsVersion::W2016;
    server_mut(&mut inv, "DC2").sql_server = Some(SqlServerVersion::S2012Sp4);
    let findings = run(&inv, None, None);
    let f = assert_one(
        &findings,
        "supported-windows-sql-combination",
        Some("DC2"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(
        f.message
            .contains("with Windows Server 2016 it supports SQL Server 2014 SP2, SQL Server 2016"),
        "{}",
        f.message
    );
    assert_one(
        &findings,
        "supported-windows-sql-combination",
        Some("DC1"),
        Outcome::Pass,
        Severity::Info,
    );
}

#[test]
fn windows_2008_r2_with_sql_2008_r2_sp3_passes_as_an_interim_state_cited_from_upgrade_requirements()
{
    let mut inv = clean();
    server_mut(&mut inv, "DC1").windows = WindowsVersion::W2008R2;
    server_mut(&mut inv, "DC1").sql_server = Some(SqlServerVersion::S2008R2Sp3);
    let f = assert_one(
        &run(&inv, None, None),
        "supported-windows-sql-combination",
        Some("DC1"),
        Outcome::Pass,
        Severity::Info,
    );
    assert_eq!(f.section, "Upgrade Requirements");
    assert!(f.message.contains("timely manner"));
}

#[test]
fn a_windows_upgrade_that_leaves_an_unsupported_sql_server_warns_to_upgrade_sql_too() {
    let mut inv = clean();
    server_mut(&mut inv, "DC1").sql_server = Some(SqlServerVersion::S2012Sp4);
    let findings = run(&inv, Some("upgrade-windows-server"), Some("2016"));
    let f = assert_one(
        &findings,
        "target-combination-supported",
        Some("DC1"),
        Outcome::Fail,
        Severity::Warning,
    );
    assert!(
        f.message
            .contains("upgrade SQL Server to SQL Server 2014 SP2 or SQL Server 2016"),
        "{}",
        f.message
    );
    assert_one(
        &findings,
        "target-combination-supported",
        Some("DC2"),
        Outcome::Pass,
        Severity::Info,
    );
}

#[test]
fn a_sql_upgrade_needs_windows_2012_r2_or_2016() {
    let mut inv = clean();
    server_mut(&mut inv, "DC2").windows = WindowsVersion::W2008R2;
    server_mut(&mut inv, "DC2").sql_server = Some(SqlServerVersion::S2008R2Sp3);
    let findings = run(&inv, Some("upgrade-sql-server"), Some("2016"));
    assert_one(
        &findings,
        "sql-upgrade-windows-version",
        Some("DC2"),
        Outcome::Fail,
        Severity::Error,
    );
    assert_one(
        &findings,
        "target-combination-supported",
        Some("DC2"),
        Outcome::Fail,
        Severity::Error,
    );
    assert_one(
        &findings,
        "sql-upgrade-windows-version",
        Some("DC1"),
        Outcome::Pass,
        Severity::Info,
    );
}

// --- upgrade paths and targets -----------------------------------------------------------

#[test]
fn windows_2008_r2_cannot_jump_to_2016() {
    let mut inv = clean();
    server_mut(&mut inv, "WEB1").windows = WindowsVersion::W2008R2;
    let findings = run(&inv, Some("upgrade-windows-server"), Some("2016"));
    let f = assert_one(
        &findings,
        "windows-upgrade-path",
        Some("WEB1"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("2012 R2 first"));
    assert_one(
        &findings,
        "windows-upgrade-path",
        Some("DC1"),
        Outcome::Pass,
        Severity::Info,
    );
}

#[test]
fn servers_newer_than_the_target_are_left_alone_and_a_target_nobody_is_below_is_an_error() {
    let mut inv = clean();
    server_mut(&mut inv, "DC1").windows = WindowsVersion::W2016;
    let findings = run(&inv, Some("upgrade-windows-server"), Some("2012 R2"));
    let f = assert_one(
        &findings,
        "target-not-older-than-current",
        Some("DC1"),
        Outcome::Fail,
        Severity::Warning,
    );
    assert!(f.message.contains("leaves it as it is"), "{}", f.message);
    assert_one(
        &findings,
        "target-not-older-than-current",
        Some("DC2"),
        Outcome::Pass,
        Severity::Info,
    );
    let f = assert_one(
        &findings,
        "target-not-older-than-current",
        None,
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("nothing to upgrade"), "{}", f.message);
    server_mut(&mut inv, "WEB1").windows = WindowsVersion::W2008R2;
    let findings = run(&inv, Some("upgrade-windows-server"), Some("2012 R2"));
    assert!(of(&findings, "target-not-older-than-current", None).is_empty());

    let findings = run(&clean(), Some("upgrade-sql-server"), Some("2012 SP4"));
    assert_one(
        &findings,
        "target-not-older-than-current",
        Some("DC1"),
        Outcome::Fail,
        Severity::Warning,
    );
    assert_one(
        &findings,
        "target-not-older-than-current",
        None,
        Outcome::Fail,
        Severity::Error,
    );
    assert!(of(
        &run(&clean(), Some("upgrade-sql-server"), Some("2016")),
        "target-not-older-than-current",
        None
    )
    .is_empty());
}

#[test]
fn a_server_newer_than_connected_backup_8_11_is_an_error() {
    let mut inv = clean();
    server_mut(&mut inv, "DC1").connected_version = v("8.12");
    let findings = run(&inv, Some("upgrade-8.11"), None);
    assert_one(
        &findings,
        "target-not-older-than-current",
        Some("DC1"),
        Outcome::Fail,
        Severity::Error,
    );
    server_mut(&mut inv, "DC1").connected_version = v("8.11");
    let f = assert_one(
        &run(&inv, Some("upgrade-8.11"), None),
        "target-not-older-than-current",
        Some("DC1"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(f.message.contains("reinstalls"));
}

#[test]
fn a_missing_or_unknown_target_is_an_error_finding() {
    let findings = run(&clean(), Some("upgrade-sql-server"), None);
    let f = assert_one(
        &findings,
        "runbook-parameters",
        None,
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("--param target="));
    let findings = run(&clean(), Some("upgrade-windows-server"), Some("2019"));
    let f = assert_one(
        &findings,
        "runbook-parameters",
        None,
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("\"2019\""));
    assert_absent(&findings, "windows-target-minimum-version");
}

#[test]
fn an_uninstall_needs_the_component_and_skips_its_certificate_rules() {
    let mut inv = clean();
    server_mut(&mut inv, "API1").certificate = None;
    let findings = run(&inv, Some("uninstall-management-api"), None);
    assert_one(
        &findings,
        "component-installed",
        Some("API1"),
        Outcome::Pass,
        Severity::Info,
    );
    assert_absent(&findings, "management-api-certificate");
    inv.servers.iter_mut().for_each(|s| {
        s.roles.remove(&ServerRole::ManagementApi);
    });
    let findings = run(&inv, Some("uninstall-management-api"), None);
    assert_one(
        &findings,
        "component-installed",
        None,
        Outcome::Fail,
        Severity::Error,
    );
    let findings = run(&clean(), Some("uninstall-datatransfer-api"), None);
    assert_absent(&findings, "datatransfer-cn-matches-fqdn");
    assert_eq!(of(&findings, "component-installed", Some("DT2")).len(), 1);
}

// --- where the APIs live and their certificates ------------------------------------------

#[test]
fn only_one_management_api_per_data_center() {
    let mut inv = clean();
    server_mut(&mut inv, "WEB1")
        .roles
        .insert(ServerRole::ManagementApi);
    let findings = run(&inv, None, None);
    let f = assert_one(
        &findings,
        "one-management-api",
        Some("API1"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("WEB1 and API1"), "{}", f.message);
    assert_one(
        &run(&clean(), None, None),
        "one-management-api",
        Some("API1"),
        Outcome::Pass,
        Severity::Info,
    );
}

#[test]
fn a_datatransfer_server_hosts_nothing_else_but_the_management_api() {
    let mut inv = clean();
    server_mut(&mut inv, "DT2")
        .roles
        .insert(ServerRole::SupportCenter);
    let findings = run(&inv, None, None);
    let f = assert_one(
        &findings,
        "datatransfer-api-dedicated-server",
        Some("DT2"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("support-center"));
    assert_one(
        &findings,
        "datatransfer-api-dedicated-server",
        Some("API1"),
        Outcome::Pass,
        Severity::Info,
    );
}

#[test]
fn the_management_api_needs_a_trusted_ca_certificate() {
    let mut inv = clean();
    server_mut(&mut inv, "API1")
        .certificate
        .as_mut()
        .expect("cert")
        .issuer = Issuer::SelfSigned;
    let f = assert_one(
        &run(&inv, None, None),
        "management-api-certificate",
        Some("API1"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("self-signed"));
    server_mut(&mut inv, "API1").certificate = None;
    assert_one(
        &run(&inv, None, None),
        "management-api-certificate",
        Some("API1"),
        Outcome::Fail,
        Severity::Error,
    );
}

#[test]
fn a_server_with_both_apis_needs_its_certificate_on_443() {
    let mut inv = clean();
    server_mut(&mut inv, "API1")
        .certificate
        .as_mut()
        .expect("cert")
        .port = Some(8443);
    let findings = run(&inv, None, None);
    let f = assert_one(
        &findings,
        "management-api-certificate",
        Some("API1"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("443"));
    assert_one(
        &findings,
        "datatransfer-api-port-443",
        Some("API1"),
        Outcome::Fail,
        Severity::Error,
    );
    server_mut(&mut inv, "API1")
        .certificate
        .as_mut()
        .expect("cert")
        .port = None;
    let findings = run(&inv, None, None);
    assert_one(
        &findings,
        "management-api-certificate",
        Some("API1"),
        Outcome::Unknown,
        Severity::Warning,
    );
    assert_one(
        &findings,
        "datatransfer-api-port-443",
        Some("API1"),
        Outcome::Unknown,
        Severity::Warning,
    );
}

#[test]
fn a_management_api_alone_may_use_any_port() {
    let mut inv = clean();
    let api = server_mut(&mut inv, "API1");
    api.roles.remove(&ServerRole::DatatransferApi);
    api.datatransfer = None;
    api.certificate.as_mut().expect("cert").port = Some(8443);
    let findings = run(&inv, None, None);
    assert_one(
        &findings,
        "management-api-certificate",
        Some("API1"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(of(&findings, "datatransfer-api-port-443", Some("API1")).is_empty());
}

#[test]
fn a_datatransfer_node_with_ssl_needs_a_certificate() {
    let mut inv = clean();
    server_mut(&mut inv, "DT2").certificate = None;
    let f = assert_one(
        &run(&inv, None, None),
        "datatransfer-api-certificate",
        Some("DT2"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("ssl = false"));
    // SSL is the default when the [servers.datatransfer] table is absent.
    server_mut(&mut inv, "DT2").datatransfer = None;
    assert_one(
        &run(&inv, None, None),
        "datatransfer-api-certificate",
        Some("DT2"),
        Outcome::Fail,
        Severity::Error,
    );
    server_mut(&mut inv, "DT2").datatransfer =
        Some(lockstep::knowledge::inventory::DataTransfer { ssl: false });
    let findings = run(&inv, None, None);
    assert_one(
        &findings,
        "datatransfer-api-certificate",
        Some("DT2"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(of(&findings, "datatransfer-cn-matches-fqdn", Some("DT2")).is_empty());
}

#[test]
fn a_certificate_cn_other_than_the_fqdn_warns_that_the_plan_rewrites_the_outflow_url() {
    let findings = run(&clean(), None, None);
    // DT2's CN differs only in case: DNS names are case-insensitive.
    assert_one(
        &findings,
        "datatransfer-cn-matches-fqdn",
        Some("DT2"),
        Outcome::Pass,
        Severity::Info,
    );
    let mut inv = clean();
    server_mut(&mut inv, "DT2").certificate = Some(Certificate {
        common_name: "transfer.corp.com".into(),
        issuer: Issuer::TrustedCa,
        port: Some(443),
    });
    let f = assert_one(
        &run(&inv, None, None),
        "datatransfer-cn-matches-fqdn",
        Some("DT2"),
        Outcome::Fail,
        Severity::Warning,
    );
    assert!(
        f.message
            .contains("OutflowServices URL to the FQDN before Setup"),
        "{}",
        f.message
    );
    server_mut(&mut inv, "DT2")
        .certificate
        .as_mut()
        .expect("cert")
        .common_name = "*.corp.local".into();
    assert_one(
        &run(&inv, None, None),
        "datatransfer-cn-matches-fqdn",
        Some("DT2"),
        Outcome::Fail,
        Severity::Error,
    );
}

// --- facts: free space, service accounts, TLS --------------------------------------------

#[test]
fn registry_servers_need_ten_percent_of_mdf_and_ldf_free() {
    let mut inv = clean();
    // 10% of 50000 + 10% of 10000 = 6000 MB.
    server_mut(&mut inv, "DC1").facts.free_disk_mb = Some(6000);
    server_mut(&mut inv, "DC2").facts.free_disk_mb = Some(5999);
    let findings = run(&inv, Some("upgrade-8.11"), None);
    assert_one(
        &findings,
        "registry-free-space",
        Some("DC1"),
        Outcome::Pass,
        Severity::Info,
    );
    let f = assert_one(
        &findings,
        "registry-free-space",
        Some("DC2"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("6000 MB"), "{}", f.message);
    server_mut(&mut inv, "DC2").facts.registry_ldf_mb = None;
    assert_one(
        &run(&inv, Some("upgrade-8.11"), None),
        "registry-free-space",
        Some("DC2"),
        Outcome::Unknown,
        Severity::Warning,
    );
}

#[test]
fn sql_server_and_its_agent_run_as_the_same_account() {
    let mut inv = clean();
    server_mut(&mut inv, "DC1").facts.sql_agent_account = Some(r"CORP\svc-agent".into());
    let findings = run(&inv, None, None);
    assert_one(
        &findings,
        "sql-agent-same-account",
        Some("DC1"),
        Outcome::Fail,
        Severity::Error,
    );
    assert_one(
        &findings,
        "sql-agent-same-account",
        Some("DC2"),
        Outcome::Pass,
        Severity::Info,
    );
    server_mut(&mut inv, "DC1").facts.sql_service_account = None;
    assert_one(
        &run(&inv, None, None),
        "sql-agent-same-account",
        Some("DC1"),
        Outcome::Unknown,
        Severity::Warning,
    );
}

#[test]
fn every_server_enables_the_same_tls_versions() {
    let mut inv = clean();
    server_mut(&mut inv, "DT2").facts.tls_versions = Some(vec!["1.1".into(), "1.2".into()]);
    let f = assert_one(
        &run(&inv, None, None),
        "tls-same-versions",
        None,
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("DT2 TLS 1.1/1.2"), "{}", f.message);
    server_mut(&mut inv, "DT2").facts.tls_versions = None;
    let f = assert_one(
        &run(&inv, None, None),
        "tls-same-versions",
        None,
        Outcome::Unknown,
        Severity::Warning,
    );
    assert!(f.message.contains("DT2"));
}

#[test]
fn ssl_2_and_3_are_disabled_everywhere() {
    let mut inv = clean();
    server_mut(&mut inv, "DC2").facts.legacy_ssl_disabled = Some(false);
    server_mut(&mut inv, "WEB1").facts.legacy_ssl_disabled = None;
    let findings = run(&inv, None, None);
    assert_one(
        &findings,
        "legacy-ssl-disabled",
        Some("DC2"),
        Outcome::Fail,
        Severity::Error,
    );
    assert_one(
        &findings,
        "legacy-ssl-disabled",
        Some("DC1"),
        Outcome::Pass,
        Severity::Info,
    );
    let f = assert_one(
        &findings,
        "legacy-ssl-disabled",
        None,
        Outcome::Unknown,
        Severity::Warning,
    );
    assert!(f.message.contains("WEB1"));
}

#[test]
fn weak_ciphers_are_disabled_where_support_center_or_the_website_run() {
    let mut inv = clean();
    assert_one(
        &run(&inv, None, None),
        "weak-ciphers-disabled",
        Some("WEB1"),
        Outcome::Pass,
        Severity::Info,
    );
    server_mut(&mut inv, "WEB1").facts.weak_ciphers_disabled = Some(false);
    assert_one(
        &run(&inv, None, None),
        "weak-ciphers-disabled",
        Some("WEB1"),
        Outcome::Fail,
        Severity::Error,
    );
    server_mut(&mut inv, "WEB1").facts.weak_ciphers_disabled = None;
    assert_one(
        &run(&inv, None, None),
        "weak-ciphers-disabled",
        None,
        Outcome::Unknown,
        Severity::Warning,
    );
    // Servers without those applications are not asked.
    assert!(of(&run(&inv, None, None), "weak-ciphers-disabled", Some("DC1")).is_empty());
}

#[test]
fn without_facts_no_fact_rule_claims_a_pass() {
    let mut inv = clean();
    inv.servers
        .iter_mut()
        .for_each(|s| s.facts = Default::default());
    let findings = run(&inv, Some("upgrade-8.11"), None);
    for rule in [
        "registry-free-space",
        "sql-agent-same-account",
        "tls-same-versions",
        "legacy-ssl-disabled",
        "weak-ciphers-disabled",
    ] {
        let of_rule: Vec<_> = findings.iter().filter(|f| f.rule == rule).collect();
        assert!(!of_rule.is_empty(), "{rule} ran");
        assert!(
            of_rule.iter().all(|f| f.result == Outcome::Unknown),
            "{of_rule:#?}"
        );
    }
}

#[test]
fn the_clustered_example_flags_the_node_whose_cn_differs() {
    let inv = Inventory::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/clustered.toml"
    )))
    .expect("example");
    assert_eq!(inv.topology, Topology::Clustered);
    let findings = run(&inv, Some("upgrade-8.11"), None);
    assert_one(
        &findings,
        "datatransfer-cn-matches-fqdn",
        Some("NWDT2"),
        Outcome::Fail,
        Severity::Warning,
    );
    assert!(
        findings.iter().all(|f| f.severity != Severity::Error),
        "{findings:#?}"
    );
    assert!(inv.registry_on(Some(Side::Secondary)).is_some());
}

#[test]
fn uninstalling_the_datatransfer_api_from_a_named_server_checks_that_server() {
    let inv = clean();
    let mut params = BTreeMap::new();
    params.insert("server".to_owned(), "WEB1".to_owned());
    let findings = preflight(&inv, Some("uninstall-datatransfer-api"), &params);
    assert_one(
        &findings,
        "component-installed",
        Some("WEB1"),
        Outcome::Fail,
        Severity::Error,
    );
    params.insert("server".to_owned(), "NOPE".to_owned());
    let findings = preflight(&inv, Some("uninstall-datatransfer-api"), &params);
    assert_one(
        &findings,
        "component-installed",
        None,
        Outcome::Fail,
        Severity::Error,
    );
    params.insert("server".to_owned(), "DT2".to_owned());
    let findings = preflight(&inv, Some("uninstall-datatransfer-api"), &params);
    assert_one(
        &findings,
        "component-installed",
        Some("DT2"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(of(&findings, "last-datatransfer-node", Some("DT2")).is_empty());
    let mut one_node = clean();
    one_node.servers.retain(|s| s.name != "API1");
    let findings = preflight(&one_node, Some("uninstall-datatransfer-api"), &params);
    assert_one(
        &findings,
        "last-datatransfer-node",
        Some("DT2"),
        Outcome::Fail,
        Severity::Warning,
    );
}

// --- `lockstep preflight`, the real binary -----------------------------------------------

fn lockstep(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the lockstep binary runs")
}

/// Parses `--format json` output and checks every finding has exactly the contract's fields.
fn contract_findings(stdout: &[u8]) -> Vec<serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_slice(stdout).expect("stdout is JSON");
    let obj = doc.as_object().expect("an object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["findings"]);
    let findings = obj["findings"]
        .as_array()
        .expect("findings is an array")
        .clone();
    for f in &findings {
        let f = f.as_object().expect("a finding is an object");
        let mut keys: Vec<&str> = f.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["message", "result", "rule", "section", "server", "severity"]
        );
        assert!(["error", "warning", "info"].contains(&f["severity"].as_str().expect("severity")));
        assert!(["pass", "fail", "unknown"].contains(&f["result"].as_str().expect("result")));
        assert!(f["server"].is_null() || f["server"].is_string());
        assert!(f["rule"].is_string() && f["message"].is_string() && f["section"].is_string());
    }
    findings
}

#[test]
fn preflight_json_follows_the_contract_and_exits_0_without_errors() {
    let out = lockstep(&[
        "preflight",
        "--inventory",
        "examples/clustered.toml",
        "--runbook",
        "upgrade-8.11",
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings = contract_findings(&out.stdout);
    let cn = findings
        .iter()
        .find(|f| f["rule"] == "datatransfer-cn-matches-fqdn" && f["server"] == "NWDT2")
        .expect("the CN finding for NWDT2");
    assert_eq!(cn["severity"], "warning");
    assert!(
        findings.iter().any(|f| f["server"].is_null()),
        "some findings are about the whole Data Center"
    );
    assert!(findings.iter().any(|f| f["result"] == "unknown"));
}

#[test]
fn preflight_exits_1_when_a_finding_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("two-apis.toml");
    // A second Management API, on the server with Support Center.
    let text = CLEAN
        .replace(
            "roles = [\"support-center\", \"account-management-website\"]",
            "roles = [\"support-center\", \"account-management-website\", \"management-api\"]",
        )
        .replace(
            "weak_ciphers_disabled = true\n",
            "weak_ciphers_disabled = true\n[servers.certificate]\ncommon_name = \"web1.corp.local\"\nissuer = \"trusted-ca\"\n",
        );
    std::fs::write(&path, text).expect("write");
    let file = path.to_str().expect("utf-8 path");
    let out = lockstep(&["preflight", "--inventory", file, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let findings = contract_findings(&out.stdout);
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["rule"], "one-management-api");
    assert_eq!(
        errors[0]["section"],
        "Review Upgrade Guidelines and Recommendations"
    );

    let text_out = lockstep(&["preflight", "--inventory", file]);
    assert_eq!(text_out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&text_out.stdout);
    assert!(
        report.contains("Result:    NOT READY — 1 error"),
        "{report}"
    );
    assert!(
        report.contains("Errors — fix these before the change window opens"),
        "{report}"
    );
    assert!(
        report.contains(
            "one-management-api · seed: \"Review Upgrade Guidelines and Recommendations\""
        ),
        "{report}"
    );
}

#[test]
fn preflight_refuses_an_invalid_inventory_with_exit_2_and_the_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, CLEAN.replace("side = \"secondary\"\n", "")).expect("write");
    let file = path.to_str().expect("utf-8 path");
    let out = lockstep(&["preflight", "--inventory", file, "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{file}:")) && stderr.contains("servers[1].side: missing"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn preflight_refuses_parameters_without_a_runbook_and_unknown_runbooks() {
    let out = lockstep(&[
        "preflight",
        "--inventory",
        "examples/mirrored.toml",
        "--param",
        "target=2016",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--param needs --runbook"));
    let out = lockstep(&[
        "preflight",
        "--inventory",
        "examples/mirrored.toml",
        "--runbook",
        "upgrade-9.0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no runbook `upgrade-9.0`") && stderr.contains("upgrade-8.11"),
        "{stderr}"
    );
}

#[test]
fn preflight_with_a_runbook_target_applies_its_minimums_and_exits_1() {
    let out = lockstep(&[
        "preflight",
        "--inventory",
        "examples/mirrored.toml",
        "--runbook",
        "upgrade-windows-server",
        "--param",
        "target=2016",
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings = contract_findings(&out.stdout);
    let behind: Vec<&str> = findings
        .iter()
        .filter(|f| f["rule"] == "windows-target-minimum-version" && f["severity"] == "error")
        .filter_map(|f| f["server"].as_str())
        .collect();
    assert_eq!(behind, ["DC1", "DC2", "WEB1", "DT1"]);
    let out = lockstep(&[
        "preflight",
        "--inventory",
        "examples/mirrored.toml",
        "--runbook",
        "upgrade-windows-server",
        "--param",
        "target=2019",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("target=2019"));
}

#[test]
fn no_management_api_passes_and_an_unknown_runbook_runs_the_estate_rules_only() {
    let mut inv = clean();
    inv.servers.iter_mut().for_each(|s| {
        s.roles.remove(&ServerRole::ManagementApi);
    });
    let findings = run(&inv, Some("my-site-runbook"), None);
    let f = assert_one(
        &findings,
        "one-management-api",
        None,
        Outcome::Pass,
        Severity::Info,
    );
    assert!(f.message.contains("offers to install"), "{}", f.message);
    let f = assert_one(
        &findings,
        "runbook-rules",
        None,
        Outcome::Pass,
        Severity::Info,
    );
    assert!(f.message.contains("my-site-runbook"));
    assert!(!of(&findings, "registry-free-space", Some("DC1")).is_empty());
}
