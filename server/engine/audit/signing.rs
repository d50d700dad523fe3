//! The audit signing key: an Ed25519 key kept in a file of its own (0600), never in the database,
//! that signs every event hash and every chain head the store writes.
//!
//! Why per event and per head rather than periodic checkpoints only: a head may lag the log after
//! a crash (see `store/head.rs`), so verification must accept events after the head; with a
//! signature on each of them, an event appended by someone holding only the database (correctly
//! chained, but without the key) is caught at once, not at the next checkpoint. Signing costs a
//! few tens of microseconds per event, next to a commit's fsync. The head's own signature (a
//! different message, so an event signature can never be passed off as a head) is what makes
//! truncation plus a forged head file detectable.
//!
//! The files: `<key>` holds `lockstep-audit-key-v1 <base64 PKCS#8>`; `<key>.pub` holds
//! `lockstep-audit-pub-v1 <base64 public key>`, for verifying where the private key must not go.
//! A signature is written `ed25519:<key id>:<base64>`; the key id (the first 8 bytes of the
//! public key's SHA-256, in hex) lets verification say "signed by another key" instead of only
//! "bad signature".

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

const KEY_TAG: &str = "lockstep-audit-key-v1";
const PUB_TAG: &str = "lockstep-audit-pub-v1";
/// The default file name, in the database's folder (the data dir, beside the orchestrator's
/// identity). `[audit] signing_key` / `LOCKSTEP_AUDIT_KEY` put it elsewhere.
pub const DEFAULT_KEY_FILE: &str = "audit-signing.key";

/// Where the signing key of the database at `db` is, unless configured: its folder.
pub fn default_key_path(db: &Path) -> PathBuf {
    match db.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.join(DEFAULT_KEY_FILE),
        None => PathBuf::from(DEFAULT_KEY_FILE),
    }
}

/// The key configured by `LOCKSTEP_AUDIT_KEY`, else [`default_key_path`].
pub fn key_path_for(db: &Path) -> PathBuf {
    match std::env::var_os("LOCKSTEP_AUDIT_KEY").filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => default_key_path(db),
    }
}

/// `<key>.pub`.
pub fn public_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Creates `path` with mode 0600 (refusing to replace an existing file) and writes `text`.
pub fn create_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// What a signature check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigFault {
    /// Not of the form `ed25519:<key id>:<base64>`.
    Malformed,
    /// Signed by a key with this id, not the one verification holds.
    OtherKey(String),
    /// The right key id, but the signature does not match the message.
    Invalid,
}

/// The public half: verifies signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    public: Vec<u8>,
    pub key_id: String,
}

impl VerifyingKey {
    pub fn from_public(public: &[u8]) -> VerifyingKey {
        VerifyingKey {
            key_id: key_id(public),
            public: public.to_vec(),
        }
    }

    /// Reads a `.pub` file, or derives the public key from a private key file.
    pub fn load(path: &Path) -> anyhow::Result<VerifyingKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the audit key {}: {e}", path.display()))?;
        let (tag, body) = parse_tagged(&text)
            .ok_or_else(|| anyhow::anyhow!("{} is not a Lockstep audit key", path.display()))?;
        match tag {
            PUB_TAG if body.len() == 32 => Ok(VerifyingKey::from_public(&body)),
            KEY_TAG => Ok(SigningKey::from_pkcs8(&body, path)?.verifying().clone()),
            _ => anyhow::bail!("{} is not a Lockstep audit key", path.display()),
        }
    }

    /// The key as [`VerifyingKey::public_base64`] writes it (an export's `signing_key`);
    /// `None` unless it is base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Option<VerifyingKey> {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .filter(|k| k.len() == 32)
            .map(|k| VerifyingKey::from_public(&k))
    }

    pub fn public_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.public)
    }

    /// Checks `sig` (as written by [`SigningKey::sign`]) over `message`.
    pub fn check(&self, message: &[u8], sig: &str) -> Result<(), SigFault> {
        let mut parts = sig.splitn(3, ':');
        let (Some("ed25519"), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SigFault::Malformed);
        };
        if id != self.key_id {
            return Err(SigFault::OtherKey(id.to_string()));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SigFault::Malformed)?;
        UnparsedPublicKey::new(&signature::ED25519, &self.public)
            .verify(message, &bytes)
            .map_err(|_| SigFault::Invalid)
    }

    pub fn check_event(&self, hash: &str, sig: &str) -> Result<(), SigFault> {
        self.check(&event_message(hash), sig)
    }

    pub fn check_head(&self, id: i64, hash: &str, sig: &str) -> Result<(), SigFault> {
        self.check(&head_message(id, hash), sig)
    }
}

/// The private key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    verifying: VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.verifying.key_id)
    }
}

impl SigningKey {
    fn from_pkcs8(pkcs8: &[u8], path: &Path) -> anyhow::Result<SigningKey> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| {
            anyhow::anyhow!("{} does not hold a valid Ed25519 key: {e}", path.display())
        })?;
        let verifying = VerifyingKey::from_public(pair.public_key().as_ref());
        Ok(SigningKey { pair, verifying })
    }

    /// Loads the key at `path`, or creates it (0600, with its `.pub` beside it) when there is
    /// none. Returns the key and whether it was created now.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(SigningKey, bool)> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let (tag, body) = parse_tagged(&text)
                    .filter(|(t, _)| *t == KEY_TAG)
                    .ok_or_else(|| {
                        anyhow::anyhow!("{} is not a Lockstep audit signing key", path.display())
                    })?;
                let _ = tag;
                Ok((SigningKey::from_pkcs8(&body, path)?, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        anyhow::anyhow!("cannot create the folder {}: {e}", dir.display())
                    })?;
                }
                let rng = ring::rand::SystemRandom::new();
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| anyhow::anyhow!("cannot generate an Ed25519 key"))?;
                let b64 = base64::engine::general_purpose::STANDARD;
                create_private(path, &format!("{KEY_TAG} {}\n", b64.encode(pkcs8.as_ref())))
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
                let key = SigningKey::from_pkcs8(pkcs8.as_ref(), path)?;
                let public = public_path(path);
                let _ = std::fs::remove_file(&public);
                create_private(
                    &public,
                    &format!("{PUB_TAG} {}\n", key.verifying.public_base64()),
                )
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", public.display()))?;
                Ok((key, true))
            }
            Err(e) => Err(anyhow::anyhow!(
                "cannot read the audit signing key {}: {e}",
                path.display()
            )),
        }
    }

    pub fn verifying(&self) -> &VerifyingKey {
        &self.verifying
    }

    pub fn sign(&self, message: &[u8]) -> String {
        let sig = self.pair.sign(message);
        format!(
            "ed25519:{}:{}",
            self.verifying.key_id,
            base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
        )
    }

    pub fn sign_event(&self, hash: &str) -> String {
        self.sign(&event_message(hash))
    }

    pub fn sign_head(&self, id: i64, hash: &str) -> String {
        self.sign(&head_message(id, hash))
    }
}

fn event_message(hash: &str) -> Vec<u8> {
    format!("lockstep-audit-event-v1\n{hash}").into_bytes()
}

fn head_message(id: i64, hash: &str) -> Vec<u8> {
    format!("lockstep-audit-head-v1\n{id}\n{hash}").into_bytes()
}

fn key_id(public: &[u8]) -> String {
    crate::engine::audit::sha256_hex(public)[..16].to_string()
}

fn parse_tagged(text: &str) -> Option<(&str, Vec<u8>)> {
    let mut parts = text.split_whitespace();
    let tag = parts.next()?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(parts.next()?)
        .ok()?;
    Some((tag, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_private_to_its_owner_and_signs_what_its_public_half_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let (key, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sig = key.sign_event("ab");
        let public = VerifyingKey::load(&public_path(&path)).unwrap();
        assert_eq!(public.check_event("ab", &sig), Ok(()));
        assert_eq!(public.check_event("ac", &sig), Err(SigFault::Invalid));
        assert_eq!(
            public.check_head(1, "ab", &sig),
            Err(SigFault::Invalid),
            "an event signature is never a head signature"
        );
        let (again, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.verifying(), key.verifying());
        let other = dir.path().join("other");
        let (other, _) = SigningKey::load_or_create(&other).unwrap();
        assert!(matches!(
            other.verifying().check_event("ab", &sig),
            Err(SigFault::OtherKey(_))
        ));
        assert_eq!(public.check_event("ab", "junk"), Err(SigFault::Malformed));
    }
}
