//! The SQL executor against the simulated SQL Server over TCP: CHECKDB and sp_updatestats for the
//! databases that exist, site scripts in GO batches, OutflowServices changes on every Registry
//! database (parameterized), and the evidence each step keeps.

use std::collections::BTreeMap;
use std::sync::Arc;

use lockstep::engine::executor::{Dispatch, Executor, IdempotencyKey, Outcome};
use lockstep::executors::sql::{FixedScripts, SqlConfig, SqlEncryption, SqlExecutor, SqlTarget};
use lockstep::knowledge::operation::{Operation, SqlOperation};
use lockstep_simulator::sql::{InstanceSpec, OutflowRow, SqlFaults, SqlInstance};
use lockstep_simulator::tds::{self, TdsHandle};
use serde_json::Value;

const DT1_FQDN: &str = "dt1.contoso.local/ose/OutflowServiceExtension.dll";

fn rows() -> Vec<OutflowRow> {
    vec![
        OutflowRow {
            server_id: 1,
            url: DT1_FQDN.into(),
            secure_flag: true,
        },
        OutflowRow {
            server_id: 2,
            url: "web1.contoso.local/ose/OutflowServiceExtension.dll".into(),
            secure_flag: true,
        },
    ]
}

struct Server {
    inst: SqlInstance,
    tds: TdsHandle,
}

async fn server(name: &str, registry: bool, directory: bool) -> Server {
    let inst = SqlInstance::new(InstanceSpec {
        server_name: name.into(),
        has_registry: registry,
        has_directory: directory,
        outflow: if registry { rows() } else { vec![] },
        registry_mdf_mb: 20480,
        registry_ldf_mb: 4096,
        logins: vec![("lockstep".into(), "s3cret!".into())],
    })
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tds = tds::spawn(l, inst.clone()).unwrap();
    Server { inst, tds }
}

fn target(s: &Server) -> SqlTarget {
    SqlTarget {
        address: s.tds.addr.to_string(),
        user: "lockstep".into(),
        password: Some("s3cret!".into()),
        password_env: None,
        encrypt: SqlEncryption::Off,
        ca_file: None,
    }
}

fn executor(servers: &[(&str, &Server)], scripts: &[(&str, &str)]) -> SqlExecutor {
    let config = SqlConfig {
        servers: servers
            .iter()
            .map(|(n, s)| (n.to_string(), target(s)))
            .collect(),
    };
    let scripts = FixedScripts(
        scripts
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    SqlExecutor::new(config, Arc::new(scripts))
}

fn dispatch(step: &str, host: Option<&str>, op: SqlOperation) -> Dispatch {
    Dispatch {
        key: IdempotencyKey {
            run_id: "run-1".into(),
            step_id: step.into(),
            attempt: 1,
        },
        host: host.map(str::to_string),
        operation: Operation::Sql(op),
        timeout_secs: 60,
    }
}

fn succeeded(o: Outcome) -> Value {
    match o {
        Outcome::Succeeded { evidence } => evidence,
        other => panic!("expected success, got {other:#?}"),
    }
}

fn failed(o: Outcome) -> (String, Value) {
    match o {
        Outcome::Failed { message, evidence } => (message, evidence),
        other => panic!("expected failure, got {other:#?}"),
    }
}

fn texts(ev: &Value) -> Vec<String> {
    ev["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

const ALL_DBS: [&str; 5] = ["master", "model", "msdb", "Directory", "Registry"];

#[tokio::test]
async fn checkdb_runs_for_the_databases_that_exist_and_keeps_every_message() {
    let rm = server("RM1", true, false).await;
    let x = executor(&[("RM1", &rm)], &[]);
    let op = SqlOperation::CheckDb {
        databases: ALL_DBS.map(String::from).to_vec(),
    };
    let ev = succeeded(x.execute(&dispatch("checkdb", Some("RM1"), op)).await);
    assert_eq!(
        ev["databases"],
        serde_json::json!(["master", "model", "msdb", "Registry"])
    );
    assert_eq!(ev["not_on_server"], serde_json::json!(["Directory"]));
    assert_eq!(ev["encryption"], "off (explicitly configured)");
    let t = texts(&ev);
    for db in ["master", "model", "msdb", "Registry"] {
        assert!(
            t.contains(&format!(
                "CHECKDB found 0 allocation errors and 0 consistency errors in database '{db}'."
            )),
            "{t:#?}"
        );
    }
}

#[tokio::test]
async fn a_consistency_error_fails_the_step_with_the_message_as_evidence() {
    let dc = server("DC1", true, true).await;
    dc.inst.set_faults(SqlFaults {
        checkdb_error_in: Some("Directory".into()),
        ..Default::default()
    });
    let x = executor(&[("DC1", &dc)], &[]);
    let op = SqlOperation::CheckDb {
        databases: ALL_DBS.map(String::from).to_vec(),
    };
    let (msg, ev) = failed(x.execute(&dispatch("checkdb", Some("DC1"), op)).await);
    assert!(
        msg.starts_with("SQL Server error 8928 (severity 16, line 1)"),
        "{msg}"
    );
    let errors: Vec<&Value> = ev["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "error")
        .collect();
    assert!(errors.iter().any(|m| m["code"] == 8928), "{ev:#}");
}

#[tokio::test]
async fn update_stats_runs_in_each_database() {
    let dc = server("DC1", true, true).await;
    let x = executor(&[("DC1", &dc)], &[]);
    let op = SqlOperation::UpdateStats {
        databases: vec!["Directory".into(), "Registry".into()],
    };
    let ev = succeeded(x.execute(&dispatch("stats", Some("DC1"), op)).await);
    let t = texts(&ev);
    assert!(
        t.contains(&"Updating [dbo].[OutflowServices]".to_string()),
        "{t:#?}"
    );
    assert!(
        t.contains(&"Updating [dbo].[Accounts]".to_string()),
        "{t:#?}"
    );
    assert_eq!(
        t.iter()
            .filter(|m| *m == "Statistics for all tables have been updated.")
            .count(),
        2
    );
}

const BACKUP_SQL: &str = "-- database_backup.sql (site script)\r\n\
BACKUP DATABASE [Registry] TO DISK = N'E:\\Backup\\Registry.bak' WITH INIT, NAME = N'Registry full'\r\n\
GO\r\n\
BACKUP DATABASE [Directory] TO DISK = N'E:\\Backup\\Directory.bak' WITH INIT\r\n\
GO\r\n";

#[tokio::test]
async fn a_site_script_runs_batch_by_batch() {
    let dc = server("DC1", true, true).await;
    let x = executor(
        &[("DC1", &dc)],
        &[(r"DRProcs\database_backup.sql", BACKUP_SQL)],
    );
    let op = SqlOperation::RunScript {
        path: r"DRProcs\database_backup.sql".into(),
    };
    let ev = succeeded(x.execute(&dispatch("backup", Some("DC1"), op)).await);
    assert_eq!(
        dc.inst.backups(),
        vec!["Registry".to_string(), "Directory".to_string()]
    );
    assert_eq!(ev["batches"].as_array().unwrap().len(), 2);
    assert!(
        texts(&ev)
            .iter()
            .any(|t| t.starts_with("BACKUP DATABASE successfully processed")),
        "{ev:#}"
    );
}

#[tokio::test]
async fn the_seeds_checkdb_script_with_go_inside_begin_fails_on_its_syntax() {
    let dc = server("DC1", true, true).await;
    let seed = "USE Master\nGO\nDBCC CHECKDB\nGO\nIF EXISTS (SELECT TOP 1 1 FROM sys.databases WHERE name = 'Registry')\nBEGIN\nUSE Registry\nGO\nDBCC CHECKDB\nEND\n";
    let x = executor(&[("DC1", &dc)], &[(r"Scripts\checkdb.sql", seed)]);
    let (msg, ev) = failed(
        x.execute(&dispatch(
            "s",
            Some("DC1"),
            SqlOperation::RunScript {
                path: r"Scripts\checkdb.sql".into(),
            },
        ))
        .await,
    );
    assert!(msg.contains("error 102"), "{msg}");
    assert!(msg.contains("batch 3 of 4"), "{msg}");
    assert_eq!(ev["batches"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_url_change_reaches_both_registry_databases_of_a_mirrored_pair() {
    let dc1 = server("DC1", true, true).await;
    let dc2 = server("DC2", true, true).await;
    let web = server("WEB1", false, false).await;
    let x = executor(&[("DC1", &dc1), ("DC2", &dc2), ("WEB1", &web)], &[]);
    let op = SqlOperation::OutflowUrlHost {
        from_host: "dt1.contoso.local".into(),
        to_host: "dt1-cn.contoso.com".into(),
    };
    let ev = succeeded(x.execute(&dispatch("url-to-cn", Some("DT1"), op)).await);
    for s in [&dc1, &dc2] {
        assert_eq!(
            s.inst.outflow_rows()[0].url,
            "dt1-cn.contoso.com/ose/OutflowServiceExtension.dll"
        );
        assert_eq!(s.inst.outflow_rows()[1], rows()[1]);
    }
    let servers = ev["registry_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0]["before"][0]["url"], DT1_FQDN);
    assert_eq!(
        servers[1]["after"][0]["url"],
        "dt1-cn.contoso.com/ose/OutflowServiceExtension.dll"
    );
    assert_eq!(servers[1]["rows_changed"], 1);
    assert_eq!(ev["without_registry"], serde_json::json!(["WEB1"]));
}

#[tokio::test]
async fn a_hostile_cn_is_stored_as_data_and_drops_nothing() {
    let dc1 = server("DC1", true, true).await;
    let dc2 = server("DC2", true, true).await;
    let x = executor(&[("DC1", &dc1), ("DC2", &dc2)], &[]);
    let hostile = "x'; DROP TABLE OutflowServices;--";
    let op = SqlOperation::OutflowUrlHost {
        from_host: "dt1.contoso.local".into(),
        to_host: hostile.into(),
    };
    succeeded(x.execute(&dispatch("url-to-cn", Some("DT1"), op)).await);
    for s in [&dc1, &dc2] {
        let r = s.inst.outflow_rows();
        assert_eq!(r.len(), 2, "the table and both rows are still there");
        assert_eq!(
            r[0].url,
            format!("{hostile}/ose/OutflowServiceExtension.dll")
        );
    }
    // and the hostile value matches as data on the way back
    let back = SqlOperation::OutflowUrlHost {
        from_host: hostile.into(),
        to_host: "dt1.contoso.local".into(),
    };
    succeeded(x.execute(&dispatch("url-to-fqdn", Some("DT1"), back)).await);
    assert_eq!(dc2.inst.outflow_rows(), rows());
}

#[tokio::test]
async fn a_url_change_with_no_matching_row_is_refused_and_changes_nothing() {
    let dc1 = server("DC1", true, true).await;
    let x = executor(&[("DC1", &dc1)], &[]);
    let op = SqlOperation::OutflowUrlHost {
        from_host: "dt9.contoso.local".into(),
        to_host: "dt9".into(),
    };
    let (msg, _) = failed(x.execute(&dispatch("u", Some("DT9"), op)).await);
    assert!(
        msg.starts_with("no OutflowServices row in Registry on DC1 has host dt9.contoso.local"),
        "{msg}"
    );
    assert_eq!(dc1.inst.outflow_rows(), rows());
}

#[tokio::test]
async fn secure_flag_goes_off_for_one_node_or_all() {
    let dc1 = server("DC1", true, true).await;
    let x = executor(&[("DC1", &dc1)], &[]);
    let one = SqlOperation::SecureFlagOff {
        host: Some("web1.contoso.local".into()),
    };
    let ev = succeeded(x.execute(&dispatch("ssl-one", None, one)).await);
    assert_eq!(ev["registry_servers"][0]["after"][1]["secure_flag"], false);
    assert_eq!(ev["registry_servers"][0]["after"][0]["secure_flag"], true);
    let all = SqlOperation::SecureFlagOff { host: None };
    let ev = succeeded(x.execute(&dispatch("ssl-all", None, all)).await);
    assert_eq!(ev["registry_servers"][0]["rows_changed"], 1);
    assert!(dc1.inst.outflow_rows().iter().all(|r| !r.secure_flag));
}

#[tokio::test]
async fn a_wrong_password_fails_naming_the_server() {
    let dc1 = server("DC1", true, true).await;
    let mut t = target(&dc1);
    t.password = Some("nope".into());
    let x = SqlExecutor::new(
        SqlConfig {
            servers: BTreeMap::from([("DC1".into(), t)]),
        },
        Arc::new(FixedScripts::default()),
    );
    let (msg, _) = failed(
        x.execute(&dispatch("r", None, SqlOperation::OutflowRead))
            .await,
    );
    assert_eq!(
        msg,
        "SQL Server on DC1 refused the login (error 18456): Login failed for user 'lockstep'."
    );
}

#[tokio::test]
async fn encryption_is_required_unless_explicitly_turned_off() {
    let dc1 = server("DC1", true, true).await;
    let mut t = target(&dc1);
    t.encrypt = SqlEncryption::default();
    let x = SqlExecutor::new(
        SqlConfig {
            servers: BTreeMap::from([("DC1".into(), t)]),
        },
        Arc::new(FixedScripts::default()),
    );
    let (msg, ev) = failed(
        x.execute(&dispatch("r", None, SqlOperation::OutflowRead))
            .await,
    );
    assert!(
        msg.starts_with("could not open a SQL session on DC1"),
        "{msg}"
    );
    assert_eq!(ev["registry_servers"][0]["encryption"], "required");
}

#[tokio::test]
async fn a_connection_dropped_during_a_change_is_unknown_not_failed() {
    let dc1 = server("DC1", true, true).await;
    dc1.inst.set_faults(SqlFaults {
        drop_connection: true,
        ..Default::default()
    });
    let x = executor(&[("DC1", &dc1)], &[]);
    let op = SqlOperation::SecureFlagOff { host: None };
    match x.execute(&dispatch("ssl", None, op)).await {
        Outcome::Unknown { reason } => {
            assert!(reason.contains("may have taken effect"), "{reason}")
        }
        other => panic!("{other:#?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_backup_slower_than_the_step_timeout_is_unknown() {
    let dc = server("DC1", true, true).await;
    dc.inst.set_faults(SqlFaults {
        backup_delay_secs: 3600,
        ..Default::default()
    });
    let x = executor(
        &[("DC1", &dc)],
        &[(r"DRProcs\database_backup.sql", BACKUP_SQL)],
    );
    let op = SqlOperation::RunScript {
        path: r"DRProcs\database_backup.sql".into(),
    };
    match x.execute(&dispatch("backup", Some("DC1"), op)).await {
        Outcome::Unknown { reason } => {
            assert!(reason.starts_with("no answer within 60s"), "{reason}")
        }
        other => panic!("{other:#?}"),
    }
}

#[tokio::test]
async fn a_repeated_key_returns_the_first_outcome_without_running_again() {
    let dc = server("DC1", true, true).await;
    let x = executor(
        &[("DC1", &dc)],
        &[(r"DRProcs\database_backup.sql", BACKUP_SQL)],
    );
    let d = dispatch(
        "backup",
        Some("DC1"),
        SqlOperation::RunScript {
            path: r"DRProcs\database_backup.sql".into(),
        },
    );
    let first = x.execute(&d).await;
    assert_eq!(x.execute(&d).await, first);
    assert_eq!(dc.inst.backups().len(), 2, "the script ran once");
}

#[tokio::test]
async fn registry_file_sizes_are_read_for_the_free_space_rule() {
    let dc = server("DC1", true, true).await;
    let x = executor(&[("DC1", &dc)], &[]);
    let f = x.registry_file_sizes("DC1").await.unwrap();
    assert_eq!((f.mdf_mb, f.ldf_mb), (20480, 4096));
}

#[tokio::test]
async fn a_server_without_configuration_is_named() {
    let x = executor(&[], &[]);
    let (msg, _) = failed(
        x.execute(&dispatch(
            "c",
            Some("DC7"),
            SqlOperation::CheckDb {
                databases: vec!["Registry".into()],
            },
        ))
        .await,
    );
    assert_eq!(msg, "no SQL connection is configured for DC7");
}

#[tokio::test]
async fn messages_are_kept_even_when_the_process_logs_only_warnings() {
    // What `lockstep serve` does at its default level; the capture must not depend on it.
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_test_writer()
        .try_init();
    let dc = server("DC1", true, true).await;
    let x = executor(&[("DC1", &dc)], &[]);
    let op = SqlOperation::CheckDb {
        databases: vec!["Registry".into()],
    };
    let ev = succeeded(x.execute(&dispatch("checkdb", Some("DC1"), op)).await);
    assert!(
        texts(&ev).contains(
            &"CHECKDB found 0 allocation errors and 0 consistency errors in database 'Registry'."
                .to_string()
        ),
        "{ev:#}"
    );
}

/// A catalog standing in for the store: the backups a failed run recorded.
struct Recorded(Vec<lockstep::executors::sql::BackupRecord>);

#[async_trait::async_trait]
impl lockstep::executors::sql::catalog::BackupCatalog for Recorded {
    async fn verified_backups(
        &self,
        _run_id: &str,
    ) -> Result<Vec<lockstep::executors::sql::BackupRecord>, String> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn verified_backups_are_recorded_and_a_restore_from_them_brings_the_rows_back() {
    let dc = server("DC1", true, true).await;
    let x = executor(&[("DC1", &dc)], &[]);
    let backup = SqlOperation::BackupVerify {
        databases: vec!["Registry".into(), "Directory".into(), "Nowhere".into()],
        folder: "D:\\Backup\\".into(),
    };
    let ev = succeeded(
        x.execute(&dispatch("backup-verified@DC1", Some("DC1"), backup))
            .await,
    );
    let records: Vec<lockstep::executors::sql::BackupRecord> =
        serde_json::from_value(ev["backups"].clone()).unwrap();
    assert_eq!(records.len(), 2, "{ev}");
    assert_eq!(records[0].file, "D:\\Backup\\Registry-run-1.bak");
    assert!(
        records
            .iter()
            .all(|b| b.verified && b.size_bytes.unwrap_or(0) > 0),
        "{ev}"
    );
    assert_eq!(ev["not_on_server"], serde_json::json!(["Nowhere"]));
    assert!(texts(&ev)
        .iter()
        .any(|t| t.contains("The backup set on file 1 is valid.")));

    // Setup rewrites the Registry; the restore from the recorded files puts it back.
    dc.inst
        .run_as_setup("DELETE FROM Registry.dbo.OutflowServices")
        .unwrap();
    assert!(dc.inst.outflow_rows().is_empty());
    let x = executor(&[("DC1", &dc)], &[]).with_backups(Arc::new(Recorded(records)));
    let restore = SqlOperation::RestoreFromRun {
        from_run: "run-1".into(),
        verify_only: false,
    };
    succeeded(
        x.execute(&dispatch("restore-databases@DC1", Some("DC1"), restore))
            .await,
    );
    assert_eq!(dc.inst.outflow_rows(), rows());
}

#[tokio::test]
async fn a_backup_that_does_not_verify_fails_with_the_servers_message_and_the_record() {
    let dc = server("DC1", true, false).await;
    dc.inst.set_faults(SqlFaults {
        backup_unrestorable: true,
        ..Default::default()
    });
    let x = executor(&[("DC1", &dc)], &[]);
    let backup = SqlOperation::BackupVerify {
        databases: vec!["Registry".into()],
        folder: "D:\\Backup".into(),
    };
    let (message, ev) = failed(
        x.execute(&dispatch("backup-verified@DC1", Some("DC1"), backup))
            .await,
    );
    assert!(message.contains("Damage to the backup set"), "{message}");
    assert_eq!(
        ev["backups"][0]["verified"],
        serde_json::json!(false),
        "{ev}"
    );
}

#[tokio::test]
async fn a_restore_without_a_store_or_without_backups_on_the_server_is_refused() {
    let dc = server("DC1", true, false).await;
    let restore = SqlOperation::RestoreFromRun {
        from_run: "run-1".into(),
        verify_only: true,
    };
    let x = executor(&[("DC1", &dc)], &[]);
    let (message, _) = failed(
        x.execute(&dispatch("check-backups@DC1", Some("DC1"), restore.clone()))
            .await,
    );
    assert!(message.contains("no store"), "{message}");
    let x = executor(&[("DC1", &dc)], &[]).with_backups(Arc::new(Recorded(vec![])));
    let (message, _) = failed(
        x.execute(&dispatch("check-backups@DC1", Some("DC1"), restore))
            .await,
    );
    assert!(message.contains("no verified backup on DC1"), "{message}");
}
