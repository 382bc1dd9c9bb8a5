//! Edge-rule signing secrets at rest in Redis (#15).
//!
//! A tunnel that verifies signatures at the edge needs its signing secret on
//! every node that may queue one of its requests, not only on the node that
//! got the agent's `hello`. Redis is shared infrastructure (backups, AOF
//! files, `MONITOR`, other tenants' admins), so the secret is never stored
//! in clear: it is sealed with XChaCha20-Poly1305 under a key derived with
//! HKDF-SHA256 from `--cluster-secret` (which only the nodes hold), with a
//! random 192-bit nonce per write (random nonces of that size never repeat
//! in practice) and the tunnel name as associated data, so a sealed value
//! copied to another name's hash does not open there.
//!
//! Stored form: `v1:` + base64(nonce ‖ ciphertext ‖ tag). The version
//! prefix leaves room for another scheme (or key rotation) later.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

/// Prefix of every sealed value of this scheme.
const VERSION: &str = "v1:";
/// XChaCha20-Poly1305 nonce length.
const NONCE_LEN: usize = 24;
/// HKDF salt and info: fixed labels, so the same cluster secret used for
/// something else (the internal bearer) never yields this key.
const HKDF_SALT: &[u8] = b"hooktunnel cluster v1";
const HKDF_INFO: &[u8] = b"hooktunnel edge-rule signing secret";

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The key could not be derived (cannot happen for a 32-byte key; kept
    /// as an error rather than a panic).
    #[error("cannot derive the sealing key from the cluster secret")]
    Key,
    /// Encryption failed (only for inputs far beyond any signing secret).
    #[error("cannot encrypt the value")]
    Seal,
    /// Not a value of this scheme (another version, truncated, not base64).
    #[error("not a sealed value of a known format")]
    Malformed,
    /// The tag did not verify: another `--cluster-secret`, a value moved
    /// from another name, or a corrupted one.
    #[error(
        "cannot decrypt (another --cluster-secret, a value copied from another tunnel, or corruption)"
    )]
    Open,
}

/// Seals and opens values bound to a tunnel name with the cluster's key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    /// The sealer for a cluster whose nodes share `cluster_secret`.
    pub fn new(cluster_secret: &str) -> Result<Self, SealError> {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(HKDF_SALT), cluster_secret.as_bytes())
            .expand(HKDF_INFO, &mut key)
            .map_err(|_| SealError::Key)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&key).map_err(|_| SealError::Key)?;
        Ok(Self { cipher })
    }

    /// `plaintext` sealed for `name` (a fresh random nonce each call).
    pub fn seal(&self, name: &str, plaintext: &str) -> Result<String, SealError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SealError::Seal)?;
        let mut raw = Vec::with_capacity(NONCE_LEN + sealed.len());
        raw.extend_from_slice(&nonce_bytes);
        raw.extend_from_slice(&sealed);
        Ok(format!(
            "{VERSION}{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
    }

    /// The plaintext of a value sealed for `name`.
    pub fn open(&self, name: &str, sealed: &str) -> Result<String, SealError> {
        let encoded = sealed.strip_prefix(VERSION).ok_or(SealError::Malformed)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SealError::Malformed)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SealError::Malformed)?;
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain).map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &str = "whsec_a_signing_secret";

    #[test]
    fn a_sealed_value_opens_for_its_name_with_the_same_cluster_secret() {
        let sealer = Sealer::new("cluster-secret-1").unwrap();
        let sealed = sealer.seal("demo", SECRET).unwrap();
        assert!(sealed.starts_with(VERSION));
        assert!(!sealed.contains(SECRET));
        assert_eq!(sealer.open("demo", &sealed).unwrap(), SECRET);
        // Another node with the same secret opens it too.
        let peer = Sealer::new("cluster-secret-1").unwrap();
        assert_eq!(peer.open("demo", &sealed).unwrap(), SECRET);
    }

    #[test]
    fn every_write_uses_a_fresh_nonce() {
        let sealer = Sealer::new("cluster-secret-1").unwrap();
        let (one, two) = (
            sealer.seal("demo", SECRET).unwrap(),
            sealer.seal("demo", SECRET).unwrap(),
        );
        assert_ne!(one, two);
    }

    #[test]
    fn another_cluster_secret_cannot_open_it() {
        let sealed = Sealer::new("cluster-secret-1")
            .unwrap()
            .seal("demo", SECRET)
            .unwrap();
        let other = Sealer::new("cluster-secret-2").unwrap();
        assert_eq!(other.open("demo", &sealed), Err(SealError::Open));
    }

    #[test]
    fn a_value_moved_to_another_name_does_not_open() {
        let sealer = Sealer::new("cluster-secret-1").unwrap();
        let sealed = sealer.seal("demo", SECRET).unwrap();
        assert_eq!(sealer.open("other", &sealed), Err(SealError::Open));
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        let sealer = Sealer::new("cluster-secret-1").unwrap();
        for bad in ["", "v1:", "v1:!!!", "v2:AAAA", "v1:AAAA", SECRET] {
            assert!(sealer.open("demo", bad).is_err(), "{bad:?}");
        }
        // A flipped byte in the ciphertext fails the tag.
        let sealed = sealer.seal("demo", SECRET).unwrap();
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&sealed[VERSION.len()..])
            .unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = format!(
            "{VERSION}{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        assert_eq!(sealer.open("demo", &tampered), Err(SealError::Open));
    }
}
