//! Campaign rehearsals in process: every stage of a campaign against one simulated Data Center,
//! the estate carrying over between stages. The end state is the simulator's (the releases its
//! hosts report after the last stage), not the plan's projection.

use std::path::{Path, PathBuf};

use lockstep::engine::machine::RunStatus;
use lockstep::knowledge::campaign::{parse_target, Target};
use lockstep::rehearsal::campaign::{rehearse, CampaignOptions, CampaignReport};

fn example(topology: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(format!("{topology}.toml"))
}

fn full_target() -> Target {
    parse_target(&["connected=8.11", "windows=2016", "sql=2016"]).unwrap()
}

async fn rehearse_to(inventory: &Path, target: Target) -> CampaignReport {
    let dir = tempfile::tempdir().unwrap();
    let options = CampaignOptions {
        inventory: inventory.to_path_buf(),
        target,
        db: dir.path().join("campaign.db"),
        sim_dir: dir.path().join("sim"),
        runbooks_dir: None,
    };
    match rehearse(options, &mut |_, _, _| {}).await {
        Ok(r) => r,
        Err(e) => panic!("the campaign did not rehearse: {e:?}"),
    }
}

/// Every server, as the simulated hosts report it, at 8.11 on Windows Server 2016, and the Data
/// Center servers on SQL Server 2016.
fn assert_at_full_target(r: &CampaignReport) {
    assert!(r.succeeded(), "{r:#?}");
    assert!(r.short_of_target.is_empty(), "{:?}", r.short_of_target);
    assert!(r.stages.iter().all(|s| s.status == RunStatus::Succeeded));
    for s in &r.servers {
        assert_eq!(s.version.as_deref(), Some("8.11"), "{}", s.name);
        assert_eq!(s.windows, "2016", "{}", s.name);
        if let Some(q) = &s.sql_server {
            assert_eq!(q, "2016", "{}", s.name);
        }
    }
    assert!(r.servers.iter().any(|s| s.sql_server.is_some()));
}

fn stages(r: &CampaignReport) -> Vec<String> {
    r.stages
        .iter()
        .map(|s| match s.params.get("target") {
            Some(t) => format!("{} {t}", s.runbook),
            None => s.runbook.clone(),
        })
        .collect()
}

const EVERY_PROCEDURE: [&str; 3] = [
    "upgrade-8.11",
    "upgrade-windows-server 2016",
    "upgrade-sql-server 2016",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_example_reaches_8_11_on_windows_2016_and_sql_server_2016() {
    let r = rehearse_to(&example("standalone"), full_target()).await;
    assert_eq!(stages(&r), EVERY_PROCEDURE);
    assert_at_full_target(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirrored_example_reaches_8_11_on_windows_2016_and_sql_server_2016() {
    let r = rehearse_to(&example("mirrored"), full_target()).await;
    assert_eq!(stages(&r), EVERY_PROCEDURE);
    assert_at_full_target(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clustered_example_reaches_8_11_on_windows_2016_and_sql_server_2016() {
    let r = rehearse_to(&example("clustered"), full_target()).await;
    assert_eq!(stages(&r), EVERY_PROCEDURE);
    assert_at_full_target(&r);
}

/// From Windows Server 2008 R2 and SQL Server 2008 R2 SP3: Windows goes one release at a time,
/// and after the 2012 R2 stage the estate as found (unsupported until SQL Server moves) makes the
/// re-plan put the SQL Server upgrade next, in the same window, before Windows Server 2016.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2008_r2_estate_goes_through_2012_r2_with_sql_server_in_the_same_window() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example("mirrored"))
        .unwrap()
        .replace("windows = \"2012 R2\"", "windows = \"2008 R2\"")
        .replace("sql_server = \"2014 SP2\"", "sql_server = \"2008 R2 SP3\"");
    let file = dir.path().join("mirrored-2008.toml");
    std::fs::write(&file, text).unwrap();
    let r = rehearse_to(&file, full_target()).await;
    assert_eq!(
        stages(&r),
        [
            "upgrade-8.11",
            "upgrade-windows-server 2012 R2",
            "upgrade-sql-server 2016",
            "upgrade-windows-server 2016"
        ]
    );
    assert_at_full_target(&r);
}

/// A target the estate is at already rehearses nothing and succeeds; one the guide cannot reach
/// is refused before any simulated host starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_do_succeeds_and_an_unreachable_target_is_refused() {
    let r = rehearse_to(
        &example("clustered"),
        parse_target(&["windows=2012 R2"]).unwrap(),
    )
    .await;
    assert!(r.succeeded() && r.stages.is_empty(), "{r:#?}");
    let dir = tempfile::tempdir().unwrap();
    let options = CampaignOptions {
        inventory: example("mirrored"),
        target: parse_target(&["windows=2016", "sql=2012 SP4"]).unwrap(),
        db: dir.path().join("campaign.db"),
        sim_dir: dir.path().join("sim"),
        runbooks_dir: None,
    };
    match rehearse(options, &mut |_, _, _| {}).await {
        Err(lockstep::rehearsal::campaign::CampaignError::Refused(r)) => {
            assert_eq!(r.rule, "supported-windows-sql-combination")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        !dir.path().join("sim").exists(),
        "no simulated host started"
    );
}
