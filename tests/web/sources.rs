//! Real executors say their lines: the SQL executor's server messages against the simulated SQL
//! Server over TDS end up in the step log when the call runs inside a step-log scope.

use std::collections::BTreeMap;
use std::sync::Arc;

use lockstep::engine::executor::{Dispatch, Executor, IdempotencyKey, Outcome};
use lockstep::engine::steplog;
use lockstep::executors::sql::{FixedScripts, SqlConfig, SqlEncryption, SqlExecutor, SqlTarget};
use lockstep::knowledge::operation::{Operation, SqlOperation};
use lockstep_simulator::sql::{InstanceSpec, SqlInstance};
use lockstep_simulator::tds;

use crate::app::spawn_app;

#[tokio::test]
async fn sql_server_messages_of_a_checkdb_become_step_log_lines() {
    let app = spawn_app().await;
    let inst = SqlInstance::new(InstanceSpec {
        server_name: "RM1".into(),
        has_registry: true,
        has_directory: false,
        outflow: vec![],
        registry_mdf_mb: 20480,
        registry_ldf_mb: 4096,
        logins: vec![("lockstep".into(), "s3cret!".into())],
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = tds::spawn(listener, inst).unwrap();
    let sql = SqlExecutor::new(
        SqlConfig {
            servers: [(
                "RM1".to_string(),
                SqlTarget {
                    address: server.addr.to_string(),
                    user: "lockstep".into(),
                    password: Some("s3cret!".into()),
                    password_env: None,
                    encrypt: SqlEncryption::Off,
                    ca_file: None,
                },
            )]
            .into_iter()
            .collect(),
        },
        Arc::new(FixedScripts(BTreeMap::new())),
    );
    let key = IdempotencyKey {
        run_id: "run-1".into(),
        step_id: "checkdb".into(),
        attempt: 1,
    };
    let dispatch = Dispatch {
        key: key.clone(),
        host: Some("RM1".into()),
        operation: Operation::Sql(SqlOperation::CheckDb {
            databases: vec!["Registry".into()],
        }),
        timeout_secs: 60,
    };
    let log = app.state.store.step_log().clone();
    let clock: Arc<dyn lockstep::engine::clock::Clock> =
        Arc::new(lockstep::engine::clock::TokioClock::new());
    let outcome = steplog::scope(log.clone(), key, clock, sql.execute(&dispatch)).await;
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    let tail = log.tail("run-1", "checkdb", 100).await.unwrap();
    assert!(
        tail.lines.iter().any(|l| {
            l.text.starts_with("SQL info")
            && l.text.contains(
                "CHECKDB found 0 allocation errors and 0 consistency errors in database 'Registry'."
            )
        }),
        "{tail:#?}"
    );
}
