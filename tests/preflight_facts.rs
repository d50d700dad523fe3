//! Preflight from the agents' facts: a table of facts → findings. Fresh facts answer pass or fail
//! and say which fact and how old; stale facts stay "unknown" and say their age; no facts leave
//! the inventory's answer. Facts are built by hand, as an agent would report them.

use std::collections::BTreeMap;

use lockstep::knowledge::inventory::Inventory;
use lockstep::knowledge::preflight::{
    binding_port, preflight_live, Finding, LiveFacts, Outcome, ServerFacts, Severity,
    UNKNOWN_PREFIX,
};
use lockstep::knowledge::runbook::sections::is_seed_section;
use lockstep_protocol::action::StartupType;
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_protocol::facts::{
    CertificateFact, ComponentVersion, DatabaseFileFact, DatabaseFileKind, ServiceFact,
    SqlAccountsFact, TlsProtocolFact, VolumeFact,
};
use lockstep_protocol::{Component, SiteFacts};

const STANDALONE: &str = include_str!("../examples/standalone.toml");
/// When the agents read their facts (unix seconds).
const READ_AT: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

/// The stand-alone example without any `[servers.facts]`: only agents can answer.
fn bare() -> Inventory {
    let mut inv = Inventory::parse(STANDALONE).expect("the example parses");
    for s in &mut inv.servers {
        s.facts = Default::default();
    }
    inv
}

fn service(name: &str) -> ServiceFact {
    ServiceFact {
        name: name.into(),
        state: ServiceRunState::Running,
        startup: Some(StartupType::Automatic),
    }
}

fn tls(protocol: &str, enabled: Option<bool>) -> TlsProtocolFact {
    TlsProtocolFact {
        protocol: protocol.into(),
        enabled,
    }
}

fn file(kind: DatabaseFileKind, path: &str, drive: &str, size_mb: u64) -> DatabaseFileFact {
    DatabaseFileFact {
        database: "Registry".into(),
        kind,
        path: path.into(),
        drive: drive.into(),
        size_mb,
    }
}

fn certificate(cn: &str, binding: &str, days_left: i64) -> CertificateFact {
    CertificateFact {
        thumbprint: "AB".repeat(20),
        subject_cn: cn.into(),
        sans: vec![],
        issuer: "CN=Contoso CA".into(),
        not_after: READ_AT + days_left * DAY,
        bindings: vec![binding.into()],
    }
}

/// What a healthy server of the stand-alone example reports: everything the rules need, all fine.
fn healthy(server: &str) -> SiteFacts {
    let mut f = SiteFacts {
        protocol: 1,
        hostname: server.to_ascii_lowercase(),
        collected_at: READ_AT,
        services: vec![],
        services_missing: vec![],
        components: vec![],
        volumes: vec![],
        database_files: vec![],
        sql_accounts: None,
        tls_protocols: vec![
            tls("SSL 2.0", Some(false)),
            tls("SSL 3.0", Some(false)),
            tls("TLS 1.0", None),
            tls("TLS 1.1", None),
            tls("TLS 1.2", Some(true)),
        ],
        certificates: vec![],
        windows: Some("2012 R2".into()),
        sql_server: None,
        session_counters: true,
        errors: vec![],
    };
    let version = |c| ComponentVersion {
        component: c,
        version: "8.8.6".into(),
    };
    match server {
        "FABDC01" => {
            f.services = ["BackupServer", "IndexServer", "PoolServer", "DCAlerter"]
                .map(service)
                .to_vec();
            f.components = vec![version(Component::DataCenter)];
            // Data on D:, the log on L:: each volume is checked against the files on it.
            f.volumes = vec![
                VolumeFact {
                    drive: "D:".into(),
                    free_mb: 5_000,
                    total_mb: 100_000,
                },
                VolumeFact {
                    drive: "L:".into(),
                    free_mb: 300,
                    total_mb: 20_000,
                },
            ];
            f.database_files = vec![
                file(DatabaseFileKind::Data, r"D:\SQL\Registry.mdf", "D:", 12_288),
                file(
                    DatabaseFileKind::Log,
                    r"L:\SQL\Registry_log.ldf",
                    "l:\\",
                    2_048,
                ),
            ];
            f.sql_accounts = Some(SqlAccountsFact {
                sql_server: r"FABRIKAM\svc-sql".into(),
                sql_agent: r"fabrikam\SVC-SQL".into(),
            });
            f.sql_server = Some("2014 SP2".into());
        }
        "FABWEB01" => {
            f.services = vec![service("dctomcat")];
            f.services_missing = ["BackupServer", "IndexServer"].map(String::from).to_vec();
            f.components = vec![
                version(Component::SupportCenter),
                version(Component::AccountManagementWebsite),
            ];
            f.certificates = vec![certificate(
                "backup.fabrikam.com",
                "Default Web Site *:443",
                365,
            )];
            f.certificates[0].sans = vec!["fabweb01.fabrikam.local".into()];
        }
        "FABAPI01" => {
            f.components = vec![
                version(Component::DatatransferApi),
                version(Component::ManagementApi),
            ];
            f.certificates = vec![certificate(
                "fabapi01.fabrikam.local",
                "Default Web Site *:443",
                365,
            )];
        }
        other => panic!("no server {other} in the example"),
    }
    f
}

/// Every server's healthy facts, 40 s old.
fn all_healthy() -> BTreeMap<String, SiteFacts> {
    ["FABDC01", "FABWEB01", "FABAPI01"]
        .into_iter()
        .map(|s| (s.to_owned(), healthy(s)))
        .collect()
}

fn live(facts: BTreeMap<String, SiteFacts>, age_secs: i64) -> LiveFacts {
    LiveFacts {
        servers: facts
            .into_iter()
            .map(|(s, facts)| (s, ServerFacts { facts, age_secs }))
            .collect(),
        stale_after_secs: 180,
    }
}

fn check(inv: &Inventory, runbook: Option<&str>, live: &LiveFacts) -> Vec<Finding> {
    preflight_live(inv, runbook, &BTreeMap::new(), live)
}

/// The one finding of `rule` about `server`, asserting its result and severity.
fn one(
    findings: &[Finding],
    rule: &str,
    server: Option<&str>,
    result: Outcome,
    severity: Severity,
) -> Finding {
    let found: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.rule == rule && f.server.as_deref() == server)
        .collect();
    assert_eq!(found.len(), 1, "one {rule} for {server:?}: {findings:#?}");
    let f = found[0].clone();
    assert_eq!((f.result, f.severity), (result, severity), "{f:#?}");
    if result == Outcome::Unknown {
        assert!(f.message.starts_with(UNKNOWN_PREFIX), "{}", f.message);
    }
    f
}

fn none_of(findings: &[Finding], rule: &str, server: Option<&str>) {
    assert!(
        findings
            .iter()
            .all(|f| !(f.rule == rule && f.server.as_deref() == server)),
        "no {rule} for {server:?} expected: {findings:#?}"
    );
}

fn with(server: &str, change: impl FnOnce(&mut SiteFacts)) -> BTreeMap<String, SiteFacts> {
    let mut all = all_healthy();
    change(all.get_mut(server).expect("server"));
    all
}

// --- fresh, stale, missing ----------------------------------------------------------------

#[test]
fn fresh_healthy_facts_answer_every_rule_that_lacked_an_inventory_fact() {
    let inv = bare();
    let without = check(&inv, Some("upgrade-8.11"), &LiveFacts::default());
    let unknown: Vec<&str> = without
        .iter()
        .filter(|f| f.result == Outcome::Unknown)
        .map(|f| f.rule.as_str())
        .collect();
    for rule in [
        "registry-free-space",
        "sql-agent-same-account",
        "tls-same-versions",
        "legacy-ssl-disabled",
    ] {
        assert!(
            unknown.contains(&rule),
            "{rule} is unknown without facts: {unknown:?}"
        );
    }

    let findings = check(&inv, Some("upgrade-8.11"), &live(all_healthy(), 40));
    let left: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.result == Outcome::Unknown && f.rule != "weak-ciphers-disabled")
        .collect();
    assert!(
        left.is_empty(),
        "no unknown left for facts the agents report: {left:#?}"
    );
    let f = one(
        &findings,
        "sql-agent-same-account",
        Some("FABDC01"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(
        f.message.contains("reported by FABDC01's agent 40 s ago"),
        "{}",
        f.message
    );
    // An agent enrolled as `fabdc01` answers for the inventory's FABDC01.
    let mut lower = all_healthy();
    let dc = lower.remove("FABDC01").expect("dc");
    lower.insert("fabdc01".into(), dc);
    let again = check(&inv, Some("upgrade-8.11"), &live(lower, 40));
    one(
        &again,
        "sql-agent-same-account",
        Some("FABDC01"),
        Outcome::Pass,
        Severity::Info,
    );
    let f = one(
        &findings,
        "tls-same-versions",
        None,
        Outcome::Pass,
        Severity::Info,
    );
    assert!(
        f.message.contains("1.0, 1.1, 1.2"),
        "Windows defaults fill unset values: {}",
        f.message
    );
    one(
        &findings,
        "legacy-ssl-disabled",
        Some("FABAPI01"),
        Outcome::Pass,
        Severity::Info,
    );
    for f in &findings {
        assert!(is_seed_section(&f.section), "{f:#?}");
    }
    // Weak ciphers are not among the facts an agent reports: that rule alone stays unknown.
    one(
        &findings,
        "weak-ciphers-disabled",
        None,
        Outcome::Unknown,
        Severity::Warning,
    );
}

#[test]
fn stale_facts_keep_unknown_and_say_how_old_they_are() {
    let findings = check(&bare(), Some("upgrade-8.11"), &live(all_healthy(), 1_200));
    let f = one(
        &findings,
        "registry-free-space",
        Some("FABDC01"),
        Outcome::Unknown,
        Severity::Warning,
    );
    assert!(
        f.message.contains(
            "FABDC01's agent last reported facts 20 min ago, older than the 180 s preflight trusts"
        ),
        "{}",
        f.message
    );
    let f = one(
        &findings,
        "sql-agent-same-account",
        Some("FABDC01"),
        Outcome::Unknown,
        Severity::Warning,
    );
    assert!(f.message.contains("20 min ago"), "{}", f.message);
    one(
        &findings,
        "service-missing",
        Some("FABDC01"),
        Outcome::Unknown,
        Severity::Warning,
    );
    one(
        &findings,
        "certificate-as-found",
        Some("FABAPI01"),
        Outcome::Unknown,
        Severity::Warning,
    );
    // Stale facts never replace the inventory.
    none_of(&findings, "inventory-matches-site", Some("FABDC01"));
}

#[test]
fn without_facts_the_inventory_answers_and_fact_only_rules_stay_silent() {
    let inv = Inventory::parse(STANDALONE).expect("example");
    let findings = check(&inv, Some("upgrade-8.11"), &LiveFacts::default());
    let f = one(
        &findings,
        "registry-free-space",
        Some("FABDC01"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(!f.message.contains("agent"), "{}", f.message);
    for rule in [
        "service-missing",
        "certificate-as-found",
        "inventory-matches-site",
        "management-api-tls12",
    ] {
        assert!(
            findings.iter().all(|f| f.rule != rule),
            "{rule}: {findings:#?}"
        );
    }
    // A server whose agent reported nothing at all keeps "unknown" without an age.
    let findings = check(
        &bare(),
        None,
        &live(with("FABWEB01", |_| {}), 40).only(&["FABWEB01"]),
    );
    let f = one(
        &findings,
        "registry-free-space",
        Some("FABDC01"),
        Outcome::Unknown,
        Severity::Warning,
    );
    assert!(!f.message.contains("ago"), "{}", f.message);
}

/// Keeps only these servers' facts.
trait Only {
    fn only(self, servers: &[&str]) -> LiveFacts;
}

impl Only for LiveFacts {
    fn only(mut self, servers: &[&str]) -> LiveFacts {
        self.servers.retain(|s, _| servers.contains(&s.as_str()));
        self
    }
}

// --- Registry free space per volume -------------------------------------------------------

#[test]
fn registry_free_space_is_checked_on_each_volume_against_the_files_on_it() {
    let findings = check(&bare(), None, &live(all_healthy(), 40));
    let f = one(
        &findings,
        "registry-free-space",
        Some("FABDC01"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(
        f.message
            .contains("free space reported by FABDC01's agent 40 s ago"),
        "{}",
        f.message
    );
    assert!(
        f.message
            .contains("D: has 5000 MB free, at least 10% of Registry.mdf (12288 MB) = 1229 MB"),
        "{}",
        f.message
    );
    assert!(
        f.message
            .contains("L: has 300 MB free, at least 10% of Registry_log.ldf (2048 MB) = 205 MB"),
        "{}",
        f.message
    );

    // 5 100 MB free in total is plenty for 1 434 MB, but the log's own volume is short.
    let short = with("FABDC01", |f| f.volumes[1].free_mb = 100);
    let findings = check(&bare(), None, &live(short, 40));
    let f = one(
        &findings,
        "registry-free-space",
        Some("FABDC01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(
        f.message
            .contains("L: has 100 MB free, LESS than 10% of Registry_log.ldf (2048 MB) = 205 MB"),
        "{}",
        f.message
    );
    assert!(f.message.contains("do not upgrade"), "{}", f.message);

    // Both files on one volume add up.
    let shared = with("FABDC01", |f| {
        f.database_files[1].drive = "D:".into();
        f.volumes[0].free_mb = 1_300;
    });
    let f = one(
        &check(&bare(), None, &live(shared, 40)),
        "registry-free-space",
        Some("FABDC01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("D: has 1300 MB free, LESS than 10% of Registry.mdf (12288 MB) + Registry_log.ldf (2048 MB) = 1434 MB"), "{}", f.message);
}

#[test]
fn registry_files_without_their_volume_or_no_files_at_all_stay_unknown_naming_the_fact() {
    let no_volume = with("FABDC01", |f| f.volumes.truncate(1));
    let f = one(
        &check(&bare(), None, &live(no_volume, 40)),
        "registry-free-space",
        Some("FABDC01"),
        Outcome::Unknown,
        Severity::Warning,
    );
    assert!(
        f.message
            .contains("Registry files on L: but not that volume's free space"),
        "{}",
        f.message
    );
    let no_files = with("FABDC01", |f| f.database_files.clear());
    let f = one(
        &check(&bare(), None, &live(no_files, 40)),
        "registry-free-space",
        Some("FABDC01"),
        Outcome::Unknown,
        Severity::Warning,
    );
    assert!(
        f.message
            .contains("the agent reported no Registry database files"),
        "{}",
        f.message
    );
}

// --- SQL accounts and SCHANNEL --------------------------------------------------------------

#[test]
fn sql_server_and_its_agent_under_different_accounts_fail_from_facts() {
    let differ = with("FABDC01", |f| {
        f.sql_accounts = Some(SqlAccountsFact {
            sql_server: r"FABRIKAM\svc-sql".into(),
            sql_agent: "LocalSystem".into(),
        })
    });
    let f = one(
        &check(&bare(), None, &live(differ, 40)),
        "sql-agent-same-account",
        Some("FABDC01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(
        f.message.contains("SQL Server Agent as LocalSystem"),
        "{}",
        f.message
    );
    let unread = with("FABDC01", |f| {
        f.sql_accounts = None;
        f.errors = vec!["sql_accounts: access denied".into()];
    });
    let f = one(
        &check(&bare(), None, &live(unread, 40)),
        "sql-agent-same-account",
        Some("FABDC01"),
        Outcome::Unknown,
        Severity::Warning,
    );
    assert!(
        f.message
            .contains("did not report them (sql_accounts: access denied)"),
        "{}",
        f.message
    );
}

#[test]
fn tls_1_2_off_on_the_management_api_server_fails_and_the_servers_disagree() {
    let off = with("FABAPI01", |f| f.tls_protocols[4].enabled = Some(false));
    let findings = check(&bare(), None, &live(off, 40));
    let f = one(
        &findings,
        "management-api-tls12",
        Some("FABAPI01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("enabled: 1.0, 1.1"), "{}", f.message);
    let f = one(
        &findings,
        "tls-same-versions",
        None,
        Outcome::Fail,
        Severity::Error,
    );
    assert!(
        f.message
            .contains("FABAPI01 TLS 1.0/1.1 (reported by FABAPI01's agent 40 s ago)"),
        "{}",
        f.message
    );
    let pass = check(&bare(), None, &live(all_healthy(), 40));
    one(
        &pass,
        "management-api-tls12",
        Some("FABAPI01"),
        Outcome::Pass,
        Severity::Info,
    );
}

#[test]
fn ssl_3_without_an_explicit_setting_is_not_proof_that_it_is_disabled() {
    let unset = with("FABWEB01", |f| f.tls_protocols[1].enabled = None);
    let f = one(
        &check(&bare(), None, &live(unset, 40)),
        "legacy-ssl-disabled",
        Some("FABWEB01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(
        f.message
            .contains("SSL 3.0 is not disabled (no SCHANNEL setting"),
        "{}",
        f.message
    );
    let on = with("FABWEB01", |f| f.tls_protocols[0].enabled = Some(true));
    let f = one(
        &check(&bare(), None, &live(on, 40)),
        "legacy-ssl-disabled",
        Some("FABWEB01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("SSL 2.0 is enabled"), "{}", f.message);
}

// --- versions: direct upgrade, mixed, inventory vs site ---------------------------------

#[test]
fn direct_upgrade_needs_8_8_1_from_the_inventory_and_from_the_agents() {
    let mut inv = bare();
    let f = one(
        &check(&inv, Some("upgrade-8.11"), &LiveFacts::default()),
        "direct-upgrade",
        None,
        Outcome::Pass,
        Severity::Info,
    );
    assert!(
        f.message.contains("8.8.1 or later (3 to upgrade)"),
        "{}",
        f.message
    );
    inv.servers[1].connected_version = "8.7".parse().expect("version");
    let findings = check(&inv, Some("upgrade-8.11"), &LiveFacts::default());
    let f = one(
        &findings,
        "direct-upgrade",
        Some("FABWEB01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("FABWEB01 runs Connected Backup 8.7 (inventory); 8.11 upgrades directly only from 8.8.1"), "{}", f.message);
    none_of(&findings, "direct-upgrade", None);
    // Only the 8.11 upgrade checks it.
    assert!(check(&inv, None, &LiveFacts::default())
        .iter()
        .all(|f| f.rule != "direct-upgrade"));

    // The agent's Data Center record wins over the inventory's 8.8.6.
    let old = with("FABDC01", |f| f.components[0].version = "8.8.0".into());
    let findings = check(&bare(), Some("upgrade-8.11"), &live(old, 40));
    let f = one(
        &findings,
        "direct-upgrade",
        Some("FABDC01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(
        f.message
            .contains("runs Connected Backup 8.8.0 (reported by FABDC01's agent 40 s ago)"),
        "{}",
        f.message
    );
    let f = one(
        &findings,
        "inventory-matches-site",
        Some("FABDC01"),
        Outcome::Fail,
        Severity::Warning,
    );
    assert!(
        f.message.contains(
            "the inventory says Connected Backup 8.8.6 but the Data Center record says 8.8.0"
        ),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("preflight uses what the site reports"),
        "{}",
        f.message
    );
}

#[test]
fn servers_at_different_connected_versions_are_a_partial_upgrade() {
    let findings = check(&bare(), None, &live(all_healthy(), 40));
    let f = one(
        &findings,
        "mixed-versions",
        None,
        Outcome::Pass,
        Severity::Info,
    );
    assert!(f.message.contains("8.8.6"), "{}", f.message);
    let upgraded = with("FABDC01", |f| f.components[0].version = "8.11".into());
    let findings = check(&bare(), None, &live(upgraded, 40));
    let f = one(
        &findings,
        "mixed-versions",
        None,
        Outcome::Fail,
        Severity::Warning,
    );
    assert!(
        f.message
            .contains("8.11 on FABDC01 (reported by FABDC01's agent 40 s ago); 8.8.6 on FABWEB01"),
        "{}",
        f.message
    );
    assert!(f.message.contains("timely manner"), "{}", f.message);
}

#[test]
fn the_releases_the_agent_reports_replace_the_inventorys() {
    let newer = with("FABDC01", |f| {
        f.windows = Some("Windows Server 2016".into());
        f.sql_server = Some("SQL Server 2016".into());
    });
    let findings = check(&bare(), None, &live(newer, 40));
    let f = one(
        &findings,
        "inventory-matches-site",
        Some("FABDC01"),
        Outcome::Fail,
        Severity::Warning,
    );
    assert!(
        f.message.contains(
            "the inventory says Windows Server 2012 R2 but the server runs Windows Server 2016"
        ),
        "{}",
        f.message
    );
    assert!(
        f.message
            .contains("the inventory says SQL Server 2014 SP2 but the server runs SQL Server 2016"),
        "{}",
        f.message
    );
    let f = one(
        &findings,
        "supported-windows-sql-combination",
        Some("FABDC01"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(
        f.message
            .contains("Windows Server 2016 with SQL Server 2016"),
        "{}",
        f.message
    );
    one(
        &findings,
        "inventory-matches-site",
        Some("FABWEB01"),
        Outcome::Pass,
        Severity::Info,
    );

    let odd = with("FABDC01", |f| f.windows = Some("2025".into()));
    let f = one(
        &check(&bare(), None, &live(odd, 40)),
        "inventory-matches-site",
        Some("FABDC01"),
        Outcome::Fail,
        Severity::Warning,
    );
    assert!(
        f.message
            .contains("Windows \"2025\", a release the guide does not name"),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("keeps the inventory's value"),
        "{}",
        f.message
    );
}

// --- services -------------------------------------------------------------------------------

#[test]
fn a_missing_connected_service_is_an_error_and_a_missing_dcalerter_is_left_alone() {
    let findings = check(&bare(), Some("upgrade-8.11"), &live(all_healthy(), 40));
    let f = one(
        &findings,
        "service-missing",
        Some("FABDC01"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(
        f.message
            .contains("BackupServer, IndexServer, PoolServer, DCAlerter"),
        "{}",
        f.message
    );
    // The web server reports the Data Center services missing, as it should: no finding about them.
    one(
        &findings,
        "service-missing",
        Some("FABWEB01"),
        Outcome::Pass,
        Severity::Info,
    );

    let missing = with("FABDC01", |f| {
        f.services
            .retain(|s| s.name != "IndexServer" && s.name != "DCAlerter");
        f.services_missing = ["IndexServer", "DCAlerter", "Compactor", "dctomcat"]
            .map(String::from)
            .to_vec();
    });
    let findings = check(&bare(), Some("upgrade-8.11"), &live(missing, 40));
    let of: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.rule == "service-missing" && f.server.as_deref() == Some("FABDC01"))
        .collect();
    assert_eq!(
        of.len(),
        3,
        "IndexServer, DCAlerter and Compactor; dctomcat is not a Data Center server's: {of:#?}"
    );
    let f = of
        .iter()
        .find(|f| f.severity == Severity::Error)
        .expect("IndexServer fails");
    assert_eq!(f.result, Outcome::Fail);
    assert!(
        f.message.starts_with(
            "IndexServer is not installed on FABDC01 (reported by FABDC01's agent 40 s ago)"
        ),
        "{}",
        f.message
    );
    let f = of
        .iter()
        .find(|f| f.severity == Severity::Warning)
        .expect("Compactor warns");
    assert_eq!(f.result, Outcome::Fail);
    assert!(
        f.message.starts_with(
            "Compactor is in the agent's connected_services but not installed on FABDC01"
        ),
        "{}",
        f.message
    );
    let f = of
        .iter()
        .find(|f| f.result == Outcome::Pass)
        .expect("DCAlerter noted");
    assert_eq!(
        (f.severity, f.section.as_str()),
        (Severity::Info, "Start the Upgraded Data Center")
    );
    assert!(
        f.message.contains("DCAlerter is not installed on FABDC01"),
        "{}",
        f.message
    );

    let no_tomcat = with("FABWEB01", |f| f.services_missing.push("dctomcat".into()));
    let f = one(
        &check(&bare(), None, &live(no_tomcat, 40)),
        "service-missing",
        Some("FABWEB01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(
        f.message
            .starts_with("dctomcat is not installed on FABWEB01"),
        "{}",
        f.message
    );
    // An uninstall stops no Connected service.
    let missing = with("FABDC01", |f| {
        f.services_missing = vec!["IndexServer".into()]
    });
    assert!(check(
        &bare(),
        Some("uninstall-management-api"),
        &live(missing, 40)
    )
    .iter()
    .all(|f| f.rule != "service-missing"));
}

// --- certificates ----------------------------------------------------------------------------

#[test]
fn certificates_as_bound_in_iis_are_checked_for_names_expiry_and_port() {
    let findings = check(&bare(), None, &live(all_healthy(), 40));
    let f = one(
        &findings,
        "certificate-as-found",
        Some("FABAPI01"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(
        f.message.contains("bound to Default Web Site *:443"),
        "{}",
        f.message
    );
    // The web server's CN is the public name; its SAN names the FQDN, which is what a client
    // connecting by the FQDN checks: it passes, saying which name did it.
    let f = one(
        &findings,
        "certificate-as-found",
        Some("FABWEB01"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(
        f.message
            .contains("names fabweb01.fabrikam.local in its SAN fabweb01.fabrikam.local"),
        "{}",
        f.message
    );

    let expired = with("FABAPI01", |f| {
        f.certificates[0].not_after = READ_AT - 2 * DAY
    });
    let f = one(
        &check(&bare(), None, &live(expired, 40)),
        "certificate-as-found",
        Some("FABAPI01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(
        f.message
            .contains("expired 2 days before the agent read it"),
        "{}",
        f.message
    );

    let soon = with("FABWEB01", |f| {
        f.certificates[0].not_after = READ_AT + 10 * DAY;
        f.certificates[0].sans.clear();
    });
    let f = one(
        &check(&bare(), None, &live(soon, 40)),
        "certificate-as-found",
        Some("FABWEB01"),
        Outcome::Fail,
        Severity::Warning,
    );
    assert!(f.message.contains("expires in 10 days"), "{}", f.message);
    assert!(
        f.message
            .contains("names neither the FQDN fabweb01.fabrikam.local"),
        "{}",
        f.message
    );
    // The miss names what the certificate does name, so a wrong certificate and a wrong
    // inventory can be told apart.
    assert!(
        f.message
            .contains("in its CN (backup.fabrikam.com) nor in its SANs (none)"),
        "{}",
        f.message
    );

    let renamed = with("FABAPI01", |f| {
        f.certificates[0].subject_cn = "*.fabrikam.local".into()
    });
    let f = one(
        &check(&bare(), None, &live(renamed, 40)),
        "certificate-as-found",
        Some("FABAPI01"),
        Outcome::Fail,
        Severity::Warning,
    );
    assert!(f.message.contains("has CN *.fabrikam.local where the inventory says fabapi01.fabrikam.local; the site as found wins"), "{}", f.message);
    assert!(
        !f.message.contains("names neither"),
        "the wildcard covers the FQDN: {}",
        f.message
    );

    let unbound = with("FABAPI01", |f| f.certificates[0].bindings.clear());
    let f = one(
        &check(&bare(), None, &live(unbound, 40)),
        "certificate-as-found",
        Some("FABAPI01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(
        f.message
            .contains("no certificate in LocalMachine\\My is bound"),
        "{}",
        f.message
    );
}

#[test]
fn the_https_port_missing_from_the_inventory_is_read_from_the_bindings() {
    let mut inv = bare();
    for s in &mut inv.servers {
        if let Some(c) = &mut s.certificate {
            c.port = None;
        }
    }
    let without = check(&inv, None, &LiveFacts::default());
    one(
        &without,
        "datatransfer-api-port-443",
        Some("FABAPI01"),
        Outcome::Unknown,
        Severity::Warning,
    );
    one(
        &without,
        "management-api-certificate",
        Some("FABAPI01"),
        Outcome::Unknown,
        Severity::Warning,
    );
    let findings = check(&inv, None, &live(all_healthy(), 40));
    let f = one(
        &findings,
        "datatransfer-api-port-443",
        Some("FABAPI01"),
        Outcome::Pass,
        Severity::Info,
    );
    assert!(
        f.message
            .contains("port 443 (reported by FABAPI01's agent 40 s ago)"),
        "{}",
        f.message
    );
    one(
        &findings,
        "management-api-certificate",
        Some("FABAPI01"),
        Outcome::Pass,
        Severity::Info,
    );
    let moved = with("FABAPI01", |f| {
        f.certificates[0].bindings = vec!["Default Web Site *:8443:".into()]
    });
    let findings = check(&inv, None, &live(moved, 40));
    let f = one(
        &findings,
        "datatransfer-api-port-443",
        Some("FABAPI01"),
        Outcome::Fail,
        Severity::Error,
    );
    assert!(f.message.contains("port 8443"), "{}", f.message);
    one(
        &findings,
        "management-api-certificate",
        Some("FABAPI01"),
        Outcome::Fail,
        Severity::Error,
    );
}

#[test]
fn binding_ports_are_read_from_iis_binding_text() {
    assert_eq!(binding_port("Default Web Site *:443"), Some(443));
    assert_eq!(binding_port("*:8443:api.fabrikam.com"), Some(8443));
    assert_eq!(binding_port("Site 10.0.0.5:444:"), Some(444));
    assert_eq!(binding_port("no binding here"), None);
    assert_eq!(binding_port("*:http:"), None);
}

// --- `lockstep preflight --db`, the real binary ------------------------------------------

fn lockstep(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lockstep"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("LOCKSTEP_DB")
        .env_remove("LOCKSTEP_FACTS_STALE_SECS")
        .output()
        .expect("the lockstep binary runs")
}

#[tokio::test]
async fn the_cli_reads_the_agents_facts_from_the_database_it_is_given() {
    use lockstep::executors::agent::registry;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("lockstep.db");
    let store = lockstep::engine::Store::open(&db).await.expect("database");
    let pool = store.writer().clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let thumb = lockstep_protocol::tls::Thumbprint::parse(&"AB".repeat(32)).expect("thumbprint");
    registry::add(&pool, "FABDC01", "https://fabdc01:7443", thumb, now)
        .await
        .expect("agent");
    let short = with("FABDC01", |f| f.volumes[1].free_mb = 100);
    registry::record_facts(&pool, "FABDC01", &short["FABDC01"], now)
        .await
        .expect("facts");
    drop(pool);
    store.close().await;

    let db_arg = db.to_str().expect("utf-8 path");
    let out = lockstep(&[
        "preflight",
        "--inventory",
        "examples/standalone.toml",
        "--db",
        db_arg,
        "--format",
        "json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the short log volume is an error: {stdout}"
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let free = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["rule"] == "registry-free-space")
        .expect("free space finding")
        .clone();
    assert_eq!(free["result"], "fail", "{free}");
    assert!(
        free["message"]
            .as_str()
            .unwrap_or_default()
            .contains("reported by FABDC01's agent"),
        "{free}"
    );

    // Without --db the inventory's figures answer, as before.
    let out = lockstep(&[
        "preflight",
        "--inventory",
        "examples/standalone.toml",
        "--format",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let missing = dir.path().join("nope.db");
    let out = lockstep(&[
        "preflight",
        "--inventory",
        "examples/standalone.toml",
        "--db",
        missing.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no such database"), "{stderr}");
    assert!(!missing.exists(), "a missing database is not created");
}

#[test]
fn facts_without_schannel_settings_leave_tls_unknown_and_say_so() {
    let none = with("FABWEB01", |f| {
        f.tls_protocols.clear();
        f.errors = vec!["tls_protocols: registry unreadable".into()];
    });
    let findings = check(&bare(), None, &live(none, 40));
    let f = one(
        &findings,
        "legacy-ssl-disabled",
        None,
        Outcome::Unknown,
        Severity::Warning,
    );
    assert!(f.message.contains("FABWEB01's agent reported no SCHANNEL protocol settings (tls_protocols: registry unreadable)"), "{}", f.message);
    one(
        &findings,
        "tls-same-versions",
        None,
        Outcome::Unknown,
        Severity::Warning,
    );
    one(
        &findings,
        "legacy-ssl-disabled",
        Some("FABDC01"),
        Outcome::Pass,
        Severity::Info,
    );
}
