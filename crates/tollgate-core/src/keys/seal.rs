//! Private keys at rest: sealed with the master key (AES-256-GCM).
//!
//! The master key (`TOLLGATE_MASTER_KEY`, any text of at least 32 bytes) is
//! stretched with HKDF-SHA256 into an AES-256-GCM key. Each sealed blob is
//! `TGK1 || nonce(12) || ciphertext || tag(16)`, with the key id as
//! associated data so a blob cannot be moved to another key's row. Without a
//! master key (development only; staging and production refuse to start) the
//! material is stored as `TGK0 || material`.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::{Error, Secret};

const SEALED: &[u8; 4] = b"TGK1";
const PLAIN: &[u8; 4] = b"TGK0";

/// Shortest accepted master key, in bytes.
pub const MIN_MASTER_KEY_BYTES: usize = 32;

/// The key-encryption key derived from the master key.
pub struct MasterKey {
    key: LessSafeKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Derives the key-encryption key. Refuses master keys under 32 bytes.
    pub fn new(master: &Secret) -> Result<MasterKey, Error> {
        if master.len() < MIN_MASTER_KEY_BYTES {
            return Err(Error::InvalidKey("the master key is shorter than 32 bytes"));
        }
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tollgate master key v1");
        let prk = salt.extract(master.expose());
        let okm = prk
            .expand(&[b"key-encryption"], &AES_256_GCM)
            .map_err(|_| Error::InvalidKey("master key derivation failed"))?;
        Ok(MasterKey {
            key: LessSafeKey::new(UnboundKey::from(okm)),
        })
    }

    fn seal(&self, kid: &str, material: &Secret) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| Error::InvalidKey("no randomness for sealing"))?;
        let mut in_out = material.expose().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| Error::InvalidKey("sealing failed"))?;
        let mut out = Vec::with_capacity(4 + NONCE_LEN + in_out.len());
        out.extend_from_slice(SEALED);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        zeroize::Zeroize::zeroize(&mut in_out);
        Ok(out)
    }

    fn open(&self, kid: &str, blob: &[u8]) -> Result<Secret, Error> {
        let nonce: [u8; NONCE_LEN] = blob
            .get(..NONCE_LEN)
            .and_then(|n| n.try_into().ok())
            .ok_or(Error::KeyDecryption)?;
        let mut in_out = blob[NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| Error::KeyDecryption)?;
        let secret = Secret::new(plain.to_vec());
        zeroize::Zeroize::zeroize(&mut in_out);
        Ok(secret)
    }
}

/// Encodes key material for storage: sealed when a master key is given.
pub fn seal(master: Option<&MasterKey>, kid: &str, material: &Secret) -> Result<Vec<u8>, Error> {
    match master {
        Some(master) => master.seal(kid, material),
        None => {
            let mut out = PLAIN.to_vec();
            out.extend_from_slice(material.expose());
            Ok(out)
        }
    }
}

/// Decodes stored key material. Sealed material needs the master key it
/// was sealed with; plain material is accepted with or without one (so a
/// development store can be moved under a master key and re-sealed).
pub fn open(master: Option<&MasterKey>, kid: &str, stored: &[u8]) -> Result<Secret, Error> {
    match (stored.get(..4), master) {
        (Some(tag), Some(master)) if tag == SEALED => master.open(kid, &stored[4..]),
        (Some(tag), None) if tag == SEALED => Err(Error::KeyDecryption),
        (Some(tag), _) if tag == PLAIN => Ok(Secret::new(stored[4..].to_vec())),
        _ => Err(Error::KeyDecryption),
    }
}

/// Whether stored material is sealed (as opposed to plain).
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(SEALED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(text: &str) -> MasterKey {
        MasterKey::new(&Secret::from(text)).unwrap()
    }

    #[test]
    fn sealed_material_opens_only_with_its_master_key_and_kid() {
        let m = master("0123456789abcdef0123456789abcdef");
        let material = Secret::from("private key bytes");
        let blob = seal(Some(&m), "kid-1", &material).unwrap();
        assert!(is_sealed(&blob));
        assert!(!blob.windows(7).any(|w| w == b"private"));
        assert_eq!(open(Some(&m), "kid-1", &blob).unwrap(), material);
        assert_eq!(
            open(Some(&m), "kid-2", &blob).unwrap_err(),
            Error::KeyDecryption
        );
        let other = master("fedcba9876543210fedcba9876543210");
        assert_eq!(
            open(Some(&other), "kid-1", &blob).unwrap_err(),
            Error::KeyDecryption
        );
        assert_eq!(
            open(None, "kid-1", &blob).unwrap_err(),
            Error::KeyDecryption
        );
        let mut flipped = blob.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(open(Some(&m), "kid-1", &flipped).is_err());
        assert!(open(Some(&m), "kid-1", b"TGK1").is_err());
        assert!(open(Some(&m), "kid-1", b"").is_err());
    }

    #[test]
    fn plain_material_round_trips_and_short_master_keys_are_refused() {
        let material = Secret::from("k");
        let blob = seal(None, "kid", &material).unwrap();
        assert!(!is_sealed(&blob));
        assert_eq!(open(None, "kid", &blob).unwrap(), material);
        assert!(MasterKey::new(&Secret::from("short")).is_err());
    }
}
