//! The verifiable export of the whole chain (see `audit_bundle.rs`): the events as stored with
//! their signatures, the public key, the head signed at export, and the checkpoints.

use super::{Result, Store};
use crate::engine::audit::{self, verify::Checkpoint};
use crate::engine::audit_bundle::{Bundle, SigningKey};

impl Store {
    /// The whole chain as one bundle. The head is signed now when this store holds the signing
    /// key (`serve`); a read-only store (`lockstep audit export`) passes on the head file's
    /// signature when the file names the export's last event.
    pub async fn audit_bundle(
        &self,
        exported_at: String,
        exported_by: &str,
        checkpoints: Vec<Checkpoint>,
    ) -> Result<Bundle> {
        let events = self.all_events().await?;
        let mut b = Bundle::new(events, exported_at, exported_by);
        b.signing_key = self.verifier.as_ref().map(SigningKey::of);
        if let Some(h) = b.head.as_mut() {
            h.sig = match &self.signer {
                Some(k) => Some(k.sign_head(h.id, &h.hash)),
                None => audit::read_head(self.head.path())
                    .ok()
                    .flatten()
                    .filter(|f| f.id == h.id && f.hash == h.hash)
                    .and_then(|f| f.sig),
            };
        }
        // Only checkpoints of events this export holds (a newer one was written after the
        // events were read); an older or rewritten one stays, for verification to name.
        let last = b.head.as_ref().map_or(0, |h| h.id);
        b.checkpoints = checkpoints.into_iter().filter(|c| c.id <= last).collect();
        Ok(b)
    }
}
