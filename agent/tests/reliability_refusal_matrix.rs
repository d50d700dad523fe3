//! The refusal matrix on a real agent process over pinned mutual TLS, filling what
//! `refusals.rs` leaves open: clock skew of six minutes either way (the limit is five), actions
//! outside the catalog and fields the protocol does not know, a replay of a refused id, and each
//! refusal leaving the journal byte-for-byte unchanged and the host untouched. Expired,
//! out-of-allowlist, other-version and replay-of-a-success cases are in `refusals.rs`.

mod common;

use common::*;
use lockstep_agent::backend::simulated::SimState;
use lockstep_agent::client::ClientError;
use lockstep_agent::tls::{client_config, Identity};
use lockstep_protocol::{Action, ErrorCode};

const KEY: &str = r"HKLM\SOFTWARE\Wow6432Node\SupportCenter";

fn set_action() -> Action {
    Action::RegistrySet {
        key: KEY.into(),
        name: "RegistryConnect".into(),
        value: "SERVER=SERVER2".into(),
    }
}

#[tokio::test]
async fn every_hostile_request_is_refused_with_its_own_code_and_the_journal_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let me = Identity::generate("orchestrator").unwrap();
    let mut seed = SimState::data_center_server("dc1", "8.8.6");
    seed.set_registry(KEY, "RegistryConnect", "SERVER=SERVER1");
    let agent = AgentProcess::start(dir.path(), Some(&seed), &me);
    let client = agent.client(&me);
    let journal = agent.journal_bytes();
    let host = agent.sim();

    // Typed requests: (case, request, expected code).
    let six_minutes = 6 * 60;
    let mut ahead = request("run/skew-ahead/1", set_action());
    ahead.issued_at += six_minutes;
    ahead.expires_at += six_minutes;
    let mut behind = request("run/skew-behind/1", set_action());
    behind.issued_at -= six_minutes;
    behind.expires_at = behind.issued_at + 600;
    let mut expired = request("run/expired/1", set_action());
    expired.issued_at -= 60;
    expired.expires_at = expired.issued_at + 30;
    let mut forever = request("run/forever/1", set_action());
    forever.expires_at = i64::MAX;
    let outside_allowlist = request(
        "run/other-key/1",
        Action::RegistrySet {
            key: r"HKLM\SYSTEM\CurrentControlSet\Services".into(),
            name: "Start".into(),
            value: "4".into(),
        },
    );
    for (case, req, code) in [
        ("clock 6 min ahead", &ahead, ErrorCode::ClockSkew),
        ("clock 6 min behind", &behind, ErrorCode::ClockSkew),
        ("expired", &expired, ErrorCode::Expired),
        ("lifetime without end", &forever, ErrorCode::Malformed),
        (
            "key outside the allowlist",
            &outside_allowlist,
            ErrorCode::NotAllowed,
        ),
    ] {
        let Err(ClientError::Refused(e)) = client.start(req).await else {
            panic!("{case}: accepted")
        };
        assert_eq!(e.code, code, "{case}: {}", e.message);
        // The same id again is refused again, not replayed as if it had run.
        let Err(ClientError::Refused(again)) = client.start(req).await else {
            panic!("{case}: accepted on the second try")
        };
        assert_eq!(again.code, code, "{case} (again): {}", again.message);
    }

    // Raw bodies: outside the catalog, unknown fields, wrong types, garbage.
    let raw = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(&me, vec![agent.thumbprint]).unwrap())
        .build()
        .unwrap();
    let t = now();
    let bodies = [
        (
            "action outside the catalog",
            format!(
                r#"{{"protocol":1,"id":"run/x/1","issued_at":{t},"expires_at":{},"action":{{"action":"format_disk","drive":"C:"}}}}"#,
                t + 60
            ),
        ),
        (
            "unknown field in an action",
            format!(
                r#"{{"protocol":1,"id":"run/x/2","issued_at":{t},"expires_at":{},"action":{{"action":"iis_reset","force":true}}}}"#,
                t + 60
            ),
        ),
        (
            "string where a number goes",
            format!(
                r#"{{"protocol":1,"id":"run/x/3","issued_at":"{t}","expires_at":{},"action":{{"action":"iis_reset"}}}}"#,
                t + 60
            ),
        ),
        (
            "empty id",
            format!(
                r#"{{"protocol":1,"id":"","issued_at":{t},"expires_at":{},"action":{{"action":"iis_reset"}}}}"#,
                t + 60
            ),
        ),
        ("not JSON", "\u{0}\u{ff}{{{".to_string()),
    ];
    for (case, body) in bodies {
        let resp = raw
            .post(format!("{}/v1/actions", agent.url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!((400..500).contains(&status), "{case}: HTTP {status}");
        let text = resp.text().await.unwrap();
        let e: lockstep_protocol::ErrorResponse = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{case}: the refusal is not a protocol error: {text}"));
        assert!(!e.message.is_empty(), "{case}: a refusal says why");
    }

    assert_eq!(
        agent.journal_bytes(),
        journal,
        "no refusal touched the journal"
    );
    let after = agent.sim();
    assert!(
        after.history.is_empty(),
        "nothing ran: {:?}",
        after.history.len()
    );
    assert_eq!(
        after.registry_value(KEY, "RegistryConnect"),
        host.registry_value(KEY, "RegistryConnect")
    );
}
