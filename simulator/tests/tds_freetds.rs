//! The simulated SQL Server, spoken to by an independent client: FreeTDS `tsql` (Debian
//! `freetds-bin`), so the server is not tuned to tiberius alone. Fails if `tsql` is missing.

use std::process::Stdio;

use lockstep_simulator::sql::{InstanceSpec, OutflowRow, SqlInstance};
use lockstep_simulator::tds;
use tokio::io::AsyncWriteExt;

fn spec() -> InstanceSpec {
    InstanceSpec {
        server_name: "DC2".into(),
        has_registry: true,
        has_directory: false,
        outflow: vec![OutflowRow {
            server_id: 7,
            url: "dc2.contoso.local/ose/OutflowServiceExtension.dll".into(),
            secure_flag: true,
        }],
        registry_mdf_mb: 100,
        registry_ldf_mb: 10,
        logins: vec![("sa".into(), "Pa55word".into())],
    }
}

/// Runs `script` through tsql against a fresh simulated server; answers (stdout, stderr).
async fn tsql(password: &str, script: &str) -> (SqlInstance, String, String) {
    let inst = SqlInstance::new(spec()).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let h = tds::spawn(l, inst.clone()).unwrap();
    let mut child = tokio::process::Command::new("tsql")
        .args(["-H", "127.0.0.1", "-p", &h.addr.port().to_string(), "-U", "sa", "-P", password])
        .env("TDSVER", "7.4")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("FreeTDS `tsql` must be installed (Debian package freetds-bin; scripts/test installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("tsql did not finish")
        .unwrap();
    (
        inst,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tsql_reads_outflow_services() {
    let (_i, out, err) = tsql(
        "Pa55word",
        "SELECT ServerId, Url, secureFlag FROM Registry.dbo.OutflowServices\ngo\nexit\n",
    )
    .await;
    assert!(
        out.contains("ServerId\tUrl\tsecureFlag"),
        "stdout: {out}\nstderr: {err}"
    );
    assert!(
        out.contains("7\tdc2.contoso.local/ose/OutflowServiceExtension.dll\t1"),
        "stdout: {out}\nstderr: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tsql_runs_checkdb_and_sees_the_info_messages() {
    let (_i, out, err) = tsql("Pa55word", "USE Registry\ngo\nDBCC CHECKDB\ngo\nexit\n").await;
    let all = format!("{out}{err}");
    assert!(
        all.contains(
            "CHECKDB found 0 allocation errors and 0 consistency errors in database 'Registry'."
        ),
        "stdout: {out}\nstderr: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tsql_updates_and_the_database_holds_the_change() {
    let (inst, out, err) = tsql(
        "Pa55word",
        "UPDATE Registry.dbo.OutflowServices SET secureFlag = 0 WHERE ServerId = 7\ngo\nexit\n",
    )
    .await;
    assert!(
        !inst.outflow_rows()[0].secure_flag,
        "stdout: {out}\nstderr: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tsql_with_a_wrong_password_is_refused() {
    let (_i, out, err) = tsql("nope", "SELECT 1\ngo\nexit\n").await;
    let all = format!("{out}{err}");
    assert!(
        all.contains("Login failed for user 'sa'."),
        "stdout: {out}\nstderr: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tsql_sees_the_error_for_an_unknown_database() {
    let (_i, out, err) = tsql("Pa55word", "USE Directory\ngo\nexit\n").await;
    let all = format!("{out}{err}");
    assert!(
        all.contains("Database 'Directory' does not exist"),
        "stdout: {out}\nstderr: {err}"
    );
    assert!(all.contains("Msg 911"), "stdout: {out}\nstderr: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tsql_backs_up_changes_and_restores_the_registry() {
    let (inst, out, err) = tsql(
        "Pa55word",
        "BACKUP DATABASE [Registry] TO DISK = N'D:\\Backup\\Registry.bak' WITH CHECKSUM, INIT\ngo\n\
         RESTORE VERIFYONLY FROM DISK = N'D:\\Backup\\Registry.bak' WITH CHECKSUM\ngo\n\
         UPDATE Registry.dbo.OutflowServices SET Url = N'changed' WHERE ServerId = 7\ngo\n\
         RESTORE DATABASE [Registry] FROM DISK = N'D:\\Backup\\Registry.bak' WITH REPLACE\ngo\nexit\n",
    )
    .await;
    let all = format!("{out}{err}");
    assert!(all.contains("The backup set on file 1 is valid."), "{all}");
    assert!(
        all.contains("RESTORE DATABASE successfully processed"),
        "{all}"
    );
    assert_eq!(
        inst.outflow_rows()[0].url,
        "dc2.contoso.local/ose/OutflowServiceExtension.dll",
        "{all}"
    );
}
