//! `lockstep-sim` as a separate process: it starts the example Data Center, prints where
//! everything listens, and a TDS client can log in to a SQL Server it printed.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn the_binary_prints_endpoints_that_answer() {
    let dir = tempfile::tempdir().unwrap();
    let inventory =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mirrored.toml");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_lockstep-sim"))
        .arg("--inventory")
        .arg(&inventory)
        .arg("--dir")
        .arg(dir.path())
        .args(["--first-ip", "140"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut json = String::new();
    let read = async {
        while let Some(l) = lines.next_line().await.unwrap() {
            json.push_str(&l);
            json.push('\n');
            if l == "}" {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("endpoints printed");
    let e: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(e["name"], "Contoso production");
    assert_eq!(e["agents"].as_object().unwrap().len(), 4);
    assert!(e["ca_pem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let addr: std::net::SocketAddr = e["sql"]["DC1"].as_str().unwrap().parse().unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.140");

    let mut c = tiberius::Config::new();
    c.host(addr.ip().to_string());
    c.port(addr.port());
    c.authentication(tiberius::AuthMethod::sql_server(
        e["sql_user"].as_str().unwrap(),
        e["sql_password"].as_str().unwrap(),
    ));
    c.encryption(tiberius::EncryptionLevel::NotSupported);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio_util::compat::TokioAsyncWriteCompatExt;
    let mut client = tiberius::Client::connect(c, tcp.compat_write())
        .await
        .unwrap();
    let rows = client
        .simple_query("SELECT Url FROM Registry.dbo.OutflowServices")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(
        rows[0].get::<&str, _>(0),
        Some("dt1.contoso.local/ose/OutflowServiceExtension.dll")
    );
    child.kill().await.unwrap();
}
