//! The orchestrator's own TLS identity: the client certificate it presents to every agent, which
//! each agent pins by thumbprint (`lockstep agent add` prints it; rotation adds a second pin).
//!
//! It is kept in the data folder as `orchestrator.cert.pem` and `orchestrator.key.pem` (the key
//! readable by its owner only) and generated on first use. The identity type and the pinning
//! are the shared mechanics of `lockstep_protocol::tls`; what is the orchestrator's alone — where
//! its identity lives and what it is called — is here.

use std::path::Path;

pub use lockstep_protocol::tls::Identity;

/// The file stem of the identity in the data folder.
const STEM: &str = "orchestrator";
/// The common name of a newly generated certificate.
const COMMON_NAME: &str = "lockstep-orchestrator";

/// The orchestrator's client identity, kept in the data folder (created on first use).
pub fn orchestrator_identity(data_dir: &Path) -> anyhow::Result<Identity> {
    Identity::load_or_generate(data_dir, STEM, COMMON_NAME)
}
