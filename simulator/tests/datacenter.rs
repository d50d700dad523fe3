//! The whole simulated Data Center from the mirrored example inventory: the parts agree with
//! each other because they share each host's state.

use std::time::Duration;

use lockstep_agent::backend::simulated::SimState;
use lockstep_protocol::evidence::ServiceRunState;
use lockstep_simulator::sql::Session;
use lockstep_simulator::{SimOptions, SimulatedDataCenter};

async fn mirrored(dir: &std::path::Path, first_ip: u8) -> SimulatedDataCenter {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mirrored.toml");
    let mut o = SimOptions::new(dir);
    o.first_ip = first_ip;
    SimulatedDataCenter::start_file(&path, o).await.unwrap()
}

async fn get(dc: &SimulatedDataCenter, url: &str) -> (u16, String) {
    let e = dc.endpoints();
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(e.ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    for pem in e.self_signed_pem.values() {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    for (n, a) in &e.resolve {
        b = b.resolve(n, *a);
    }
    let r = b.build().unwrap().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn every_server_gets_its_parts_on_its_own_loopback_address() {
    let tmp = tempfile::tempdir().unwrap();
    let dc = mirrored(tmp.path(), 40).await;
    let e = dc.endpoints();
    assert_eq!(e.sql.keys().cloned().collect::<Vec<_>>(), ["DC1", "DC2"]);
    assert_eq!(e.agents.len(), 4);
    assert_eq!(e.sql["DC2"].ip().to_string(), "127.0.0.41");
    assert!(
        e.resolve.contains_key("dt1.contoso.local") && e.resolve.contains_key("web1.contoso.local")
    );
    assert!(e.self_signed_pem.contains_key("DT1"));
    for reg in ["DC1", "DC2"] {
        let rows = dc.sql(reg).unwrap().outflow_rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].url,
            "dt1.contoso.local/ose/OutflowServiceExtension.dll"
        );
    }
    let mut s = Session::default();
    let ev = dc.sql("DC1").unwrap().execute(
        &mut s,
        lockstep_simulator::scripts::DATABASE_BACKUP_SQL
            .split("GO")
            .next()
            .unwrap(),
        &[],
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, lockstep_simulator::sql::Event::Error(_))),
        "{ev:?}"
    );
    dc.stop().await.unwrap();
}

#[tokio::test]
async fn completing_setup_changes_the_version_support_center_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let dc = mirrored(tmp.path(), 50).await;
    let url = "https://web1.contoso.local/SupportCenter/";
    let (status, page) = get(&dc, url).await;
    assert_eq!(status, 200);
    assert!(page.contains("Version 8.8.6"), "{page}");
    assert!(page.contains("Registry DC1"), "{page}");

    dc.host("WEB1")
        .unwrap()
        .update(|s: &mut SimState| s.product_version = Some("8.11".into()))
        .unwrap();
    let (_, page) = get(&dc, url).await;
    assert!(page.contains("Version 8.11"), "{page}");
    dc.stop().await.unwrap();
}

#[tokio::test]
async fn a_redirect_and_a_stopped_iis_show_on_the_pages() {
    let tmp = tempfile::tempdir().unwrap();
    let dc = mirrored(tmp.path(), 60).await;
    let host = dc.host("WEB1").unwrap();
    host.update(|s| {
        s.set_registry(
            r"HKLM\SOFTWARE\Wow6432Node\SupportCenter",
            "RegistryConnect",
            "DC2",
        )
    })
    .unwrap();
    let (_, page) = get(&dc, "https://web1.contoso.local/SupportCenter/").await;
    assert!(page.contains("Registry DC2"), "{page}");

    dc.host("DT1")
        .unwrap()
        .update(|s| s.services.get_mut("W3SVC").unwrap().state = ServiceRunState::Stopped)
        .unwrap();
    let (status, _) = get(
        &dc,
        "https://dt1.contoso.local/ose/OutflowServiceExtension.dll/status",
    )
    .await;
    assert_eq!(status, 503);
    let (status, body) = get(
        &dc,
        "https://web1.contoso.local/ManagementAPI/ManagementService.svc",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("You have created a service."));
    dc.stop().await.unwrap();
}

#[tokio::test]
async fn a_stopped_sql_server_service_refuses_tds_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = tempfile::tempdir().unwrap();
    let dc = mirrored(tmp.path(), 70).await;
    let addr = dc.endpoints().sql["DC2"];
    dc.host("DC2")
        .unwrap()
        .update(|s| s.services.get_mut("MSSQLSERVER").unwrap().state = ServiceRunState::Stopped)
        .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A PRELOGIN gets no answer: the connection is closed.
    let _ = tcp
        .write_all(&[0x12, 0x01, 0x00, 0x0B, 0, 0, 1, 0, 0x01, 0x00, 0xFF])
        .await;
    let mut buf = Vec::new();
    let n = tcp.read_to_end(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0);
    dc.stop().await.unwrap();
}
