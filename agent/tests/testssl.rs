//! The seed's security guidance against the agent's real port: `testssl.sh` (Debian package
//! `testssl.sh`, installed by `scripts/test`) must find no SSLv2/SSLv3/TLS 1.0/TLS 1.1 and no
//! 64-bit-block (3DES), NULL, export or other weak ciphers — only TLS 1.2/1.3 with AEAD suites
//! (`lockstep_testsupport::testssl::assert_modern_tls`, the same rule as the dashboard's port).

mod common;

use common::AgentProcess;
use lockstep_agent::backend::simulated::SimState;
use lockstep_agent::tls::Identity;
use lockstep_testsupport::testssl::{assert_modern_tls, require_testssl};

#[test]
fn testssl_finds_only_tls_1_2_and_1_3_with_strong_ciphers_on_the_agent_port() {
    require_testssl();
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = Identity::generate("orchestrator").unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        Some(&SimState::data_center_server("dc1", "8.8.6")),
        &orchestrator,
    );
    assert_modern_tls(&agent.addr.to_string(), &[]);
}
