//! Opaque secrets: refresh tokens and client secrets.
//!
//! Each is 256 random bits, base64url, behind a short prefix that says what
//! it is (`tgr_` refresh token, `tgs_` client secret) so secret scanners can
//! find leaked ones. Only [`digest`] (SHA-256, hex) is stored; with 256 bits
//! of entropy a plain hash is enough, and lookups by digest never compare
//! the secret itself.

use aws_lc_rs::digest::{SHA256, digest as sha256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::encoding::b64_encode;
use crate::{Error, Secret};

/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "tgr_";
/// Prefix of client secrets.
pub const CLIENT_SECRET_PREFIX: &str = "tgs_";

/// A new opaque secret: `prefix` + base64url of 32 random bytes.
pub fn generate(prefix: &str) -> Result<Secret, Error> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Signing)?;
    let text = format!("{prefix}{}", b64_encode(&bytes));
    zeroize::Zeroize::zeroize(&mut bytes);
    Ok(Secret::from(text))
}

/// The stored form of an opaque secret: hex SHA-256.
pub fn digest(secret: &[u8]) -> String {
    sha256(&SHA256, secret)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh salt for [`successor`]: base64url of 32 random bytes.
pub fn salt() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Signing)?;
    Ok(b64_encode(&bytes))
}

/// The refresh token that succeeds `presented` in a rotation, derived from
/// it and a random `salt` (kept by the store next to `presented`'s digest):
/// HMAC-SHA-256 keyed with the presented token, so only its holder can
/// derive the successor again (a retry within the reuse grace gets the very
/// same successor), and the salt alone (in the database) gives nothing.
pub fn successor(presented: &str, salt: &str) -> Secret {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, presented.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(b"tollgate refresh successor\0");
    context.update(salt.as_bytes());
    let tag = context.sign();
    Secret::from(format!("{REFRESH_PREFIX}{}", b64_encode(tag.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_long_random_and_prefixed() {
        let a = generate(REFRESH_PREFIX).unwrap();
        let b = generate(REFRESH_PREFIX).unwrap();
        assert_ne!(a, b);
        let text = a.expose_str().unwrap();
        assert!(text.starts_with("tgr_"));
        assert_eq!(text.len(), 4 + 43);
        assert_eq!(digest(a.expose()).len(), 64);
        assert_eq!(digest(a.expose()), digest(a.expose()));
    }

    #[test]
    fn successors_depend_on_the_token_and_the_salt() {
        let (salt1, salt2) = (salt().unwrap(), salt().unwrap());
        let b = successor("tgr_a", &salt1);
        assert_eq!(b, successor("tgr_a", &salt1));
        assert_ne!(b, successor("tgr_a", &salt2));
        assert_ne!(b, successor("tgr_b", &salt1));
        let text = b.expose_str().unwrap();
        assert!(text.starts_with("tgr_"));
        assert_eq!(text.len(), 4 + 43);
    }
}
