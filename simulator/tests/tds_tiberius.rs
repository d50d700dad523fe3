//! The simulated SQL Server, spoken to over TCP by tiberius (the client the SQL executor uses).

use lockstep_simulator::sql::{InstanceSpec, OutflowRow, SqlFaults, SqlInstance};
use lockstep_simulator::tds;
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

fn spec() -> InstanceSpec {
    InstanceSpec {
        server_name: "DC1".into(),
        has_registry: true,
        has_directory: true,
        outflow: vec![
            OutflowRow {
                server_id: 1,
                url: "dc1.contoso.local/ose/OutflowServiceExtension.dll".into(),
                secure_flag: true,
            },
            OutflowRow {
                server_id: 2,
                url: "web1.contoso.local/ose/OutflowServiceExtension.dll".into(),
                secure_flag: true,
            },
        ],
        registry_mdf_mb: 2048,
        registry_ldf_mb: 512,
        logins: vec![("lockstep".into(), "s3cret!".into())],
    }
}

async fn start() -> (SqlInstance, tds::TdsHandle) {
    let inst = SqlInstance::new(spec()).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = tds::spawn(l, inst.clone()).unwrap();
    (inst, h)
}

async fn connect(
    h: &tds::TdsHandle,
    password: &str,
) -> tiberius::Result<Client<Compat<TcpStream>>> {
    let mut c = Config::new();
    c.host("127.0.0.1");
    c.port(h.addr.port());
    c.authentication(AuthMethod::sql_server("lockstep", password));
    c.encryption(EncryptionLevel::NotSupported);
    let tcp = TcpStream::connect(h.addr).await.unwrap();
    Client::connect(c, tcp.compat_write()).await
}

/// Runs a batch to the end; a server error may surface at the call or while reading results.
async fn batch(c: &mut Client<Compat<TcpStream>>, sql: &str) -> tiberius::Result<()> {
    c.simple_query(sql).await?.into_results().await?;
    Ok(())
}

#[tokio::test]
async fn outflow_services_are_read_with_their_types() {
    let (_i, h) = start().await;
    let mut c = connect(&h, "s3cret!").await.unwrap();
    let rows = c
        .query(
            "SELECT ServerId, Url, secureFlag FROM Registry.dbo.OutflowServices ORDER BY ServerId",
            &[],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<i32, _>("ServerId"), Some(1));
    assert_eq!(
        rows[1].get::<&str, _>("Url"),
        Some("web1.contoso.local/ose/OutflowServiceExtension.dll")
    );
    assert_eq!(rows[0].get::<bool, _>("secureFlag"), Some(true));
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_login_error_18456() {
    let (_i, h) = start().await;
    match connect(&h, "wrong").await {
        Err(tiberius::error::Error::Server(e)) => {
            assert_eq!(e.code(), 18456);
            assert_eq!(e.message(), "Login failed for user 'lockstep'.");
        }
        Err(other) => panic!("expected a server error, got {other}"),
        Ok(_) => panic!("a wrong password was accepted"),
    }
}

#[tokio::test]
async fn a_parameterized_update_changes_exactly_the_matched_row() {
    let (inst, h) = start().await;
    let mut c = connect(&h, "s3cret!").await.unwrap();
    let r = c
        .execute(
            "UPDATE Registry.dbo.OutflowServices SET Url = @P1 WHERE Url = @P2",
            &[
                &"web1-cn/ose/OutflowServiceExtension.dll",
                &"web1.contoso.local/ose/OutflowServiceExtension.dll",
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.total(), 1);
    let r = c
        .execute(
            "UPDATE Registry.dbo.OutflowServices SET secureFlag = @P1 WHERE ServerId = @P2",
            &[&false, &2i32],
        )
        .await
        .unwrap();
    assert_eq!(r.total(), 1);
    let rows = inst.outflow_rows();
    assert_eq!(
        rows[1],
        OutflowRow {
            server_id: 2,
            url: "web1-cn/ose/OutflowServiceExtension.dll".into(),
            secure_flag: false
        }
    );
    assert!(rows[0].secure_flag);
}

#[tokio::test]
async fn use_switches_the_database_and_bare_names_resolve_there() {
    let (_i, h) = start().await;
    let mut c = connect(&h, "s3cret!").await.unwrap();
    c.simple_query("USE Registry")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    let rows = c
        .simple_query("SELECT DB_NAME() AS db, COUNT(*) AS n FROM dbo.OutflowServices")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows[0].get::<&str, _>("db"), Some("Registry"));
    assert_eq!(rows[0].get::<i32, _>("n"), Some(2));
}

#[tokio::test]
async fn an_unknown_statement_is_an_error_with_number_and_line() {
    let (_i, h) = start().await;
    let mut c = connect(&h, "s3cret!").await.unwrap();
    let e = batch(
        &mut c,
        "USE master\nDROP TABLE Registry.dbo.OutflowServices",
    )
    .await
    .unwrap_err();
    match e {
        tiberius::error::Error::Server(e) => {
            assert_eq!(e.code(), 102);
            assert_eq!(e.line(), 2);
            assert_eq!(e.message(), "Incorrect syntax near 'DROP'.");
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn checkdb_fault_turns_into_a_server_error() {
    let (inst, h) = start().await;
    inst.set_faults(SqlFaults {
        checkdb_error_in: Some("registry".into()),
        ..Default::default()
    });
    let mut c = connect(&h, "s3cret!").await.unwrap();
    c.simple_query("DBCC CHECKDB ([Directory])")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    let e = batch(&mut c, "DBCC CHECKDB ([Registry])")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("could not be processed"), "{e}");
}

#[tokio::test]
async fn backup_is_recorded_in_msdb_backupset() {
    let (inst, h) = start().await;
    let mut c = connect(&h, "s3cret!").await.unwrap();
    c.simple_query("BACKUP DATABASE [Registry] TO DISK = N'D:\\Backup\\Registry.bak' WITH INIT")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    let rows = c
        .query("SELECT database_name FROM msdb.dbo.backupset", &[])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows[0].get::<&str, _>(0), Some("Registry"));
    assert_eq!(inst.backups(), vec!["Registry".to_string()]);
}

#[tokio::test]
async fn registry_file_sizes_come_from_sys_master_files() {
    let (_i, h) = start().await;
    let mut c = connect(&h, "s3cret!").await.unwrap();
    let rows = c
        .query(
            "SELECT f.type_desc, f.size FROM sys.master_files f JOIN sys.databases d ON d.database_id = f.database_id WHERE d.name = @P1 ORDER BY f.file_id",
            &[&"Registry"],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let sizes: Vec<(String, i32)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<&str, _>(0).unwrap().to_string(),
                r.get::<i32, _>(1).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        vec![("ROWS".into(), 2048 * 128), ("LOG".into(), 512 * 128)]
    );
}

#[tokio::test]
async fn garbage_bytes_close_the_connection_and_the_server_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_i, h) = start().await;
    let mut raw = TcpStream::connect(h.addr).await.unwrap();
    raw.write_all(&[0x12, 0x01, 0x00, 0x0A, 0, 0, 1, 0, 0x01, 0x00])
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = raw.read_to_end(&mut buf).await;
    let mut raw = TcpStream::connect(h.addr).await.unwrap();
    raw.write_all(&[0x99; 64]).await.unwrap();
    let _ = raw.read_to_end(&mut buf).await;
    assert!(connect(&h, "s3cret!").await.is_ok());
}

async fn outflow_urls(c: &mut Client<Compat<TcpStream>>) -> Vec<String> {
    c.query(
        "SELECT Url FROM Registry.dbo.OutflowServices ORDER BY ServerId",
        &[],
    )
    .await
    .unwrap()
    .into_first_result()
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<&str, _>(0).unwrap_or("").to_string())
    .collect()
}

#[tokio::test]
async fn a_verified_backup_restores_the_rows_a_later_change_removed() {
    let (_i, h) = start().await;
    let mut c = connect(&h, "s3cret!").await.unwrap();
    let path = "D:\\Backup\\lockstep-Registry.bak";
    let before = outflow_urls(&mut c).await;
    c.execute(
        "BACKUP DATABASE [Registry] TO DISK = @P1 WITH CHECKSUM, INIT",
        &[&path],
    )
    .await
    .unwrap();
    c.execute("RESTORE VERIFYONLY FROM DISK = @P1 WITH CHECKSUM", &[&path])
        .await
        .unwrap();
    let size = c
        .query(
            "SELECT TOP 1 b.backup_size FROM msdb.dbo.backupset b JOIN msdb.dbo.backupmediafamily m ON m.media_set_id = b.media_set_id WHERE m.physical_device_name = @P1 AND b.database_name = @P2 ORDER BY b.backup_set_id DESC",
            &[&path, &"Registry"],
        )
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .and_then(|r| r.get::<i64, _>(0));
    assert!(size.unwrap_or(0) > 8192, "{size:?}");

    batch(
        &mut c,
        "DELETE FROM Registry.dbo.OutflowServices WHERE ServerId = 2",
    )
    .await
    .unwrap();
    assert_eq!(outflow_urls(&mut c).await.len(), 1);
    c.execute(
        "RESTORE DATABASE [Registry] FROM DISK = @P1 WITH REPLACE",
        &[&path],
    )
    .await
    .unwrap();
    assert_eq!(outflow_urls(&mut c).await, before);
}

#[tokio::test]
async fn a_restore_without_replace_or_from_a_missing_file_is_refused() {
    let (_i, h) = start().await;
    let mut c = connect(&h, "s3cret!").await.unwrap();
    let e = batch(&mut c, "RESTORE VERIFYONLY FROM DISK = N'D:\\nothing.bak'")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Cannot open backup device"), "{e}");
    batch(
        &mut c,
        "BACKUP DATABASE Directory TO DISK = N'D:\\d.bak' WITH INIT",
    )
    .await
    .unwrap();
    let e = batch(
        &mut c,
        "RESTORE DATABASE Directory FROM DISK = N'D:\\d.bak'",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("has not been backed up"), "{e}");
}

#[tokio::test]
async fn the_backup_unrestorable_fault_fails_verifyonly_and_restore() {
    let (inst, h) = start().await;
    inst.set_faults(SqlFaults {
        backup_unrestorable: true,
        ..Default::default()
    });
    let mut c = connect(&h, "s3cret!").await.unwrap();
    batch(
        &mut c,
        "BACKUP DATABASE Registry TO DISK = N'D:\\r.bak' WITH CHECKSUM, INIT",
    )
    .await
    .unwrap();
    let e = batch(
        &mut c,
        "RESTORE VERIFYONLY FROM DISK = N'D:\\r.bak' WITH CHECKSUM",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("Damage to the backup set"), "{e}");
    let e = batch(
        &mut c,
        "RESTORE DATABASE Registry FROM DISK = N'D:\\r.bak' WITH REPLACE",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("Damage to the backup set"), "{e}");
}
