//! JWKS import (`VerifyingKeys::from_jwks`, `Jwk::to_verifying_key`,
//! `Jwk::thumbprint`): what the SDK does with the key set it fetches.
//!
//! Invariants: no panic; an imported key is never HS256, and any JWK
//! carrying private (`d`) or secret (`k`) material fails the whole set;
//! every imported key keeps the source JWK's `kid`, `alg` and RFC 7638
//! thumbprint, and its published form imports back to the same key.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::keys::{Jwk, Jwks};
use tollgate_core::{Algorithm, VerifyingKey, VerifyingKeys};

fuzz_target!(|data: &[u8]| {
    if let Ok(jwk) = serde_json::from_slice::<Jwk>(data) {
        let _ = jwk.thumbprint();
        if let Ok(Some(key)) = jwk.to_verifying_key() {
            check_key(&jwk, &key, data);
        }
    }
    let Ok(jwks) = serde_json::from_slice::<Jwks>(data) else {
        return;
    };
    let Ok(keys) = VerifyingKeys::from_jwks(&jwks) else {
        return;
    };
    assert!(keys.len() <= jwks.keys.len());
    let private = |v: &serde_json::Value| v.get("d").is_some() || v.get("k").is_some();
    if let Ok(raw) = serde_json::from_slice::<serde_json::Value>(data)
        && let Some(items) = raw.get("keys").and_then(|k| k.as_array())
    {
        assert!(
            !items.iter().any(private),
            "a key set with private or secret material was imported"
        );
    }
    for key in keys.iter() {
        // The last JWK with this kid that makes a key is the one kept
        // (JWKs of other kinds, e.g. an unknown `alg`, are skipped).
        let source = jwks
            .keys
            .iter()
            .rev()
            .find(|j| {
                j.kid.as_deref() == Some(key.kid()) && matches!(j.to_verifying_key(), Ok(Some(_)))
            })
            .expect("an imported key comes from a JWK with its kid");
        check_key(source, key, data);
    }
    let exported = keys.to_jwks();
    let again = VerifyingKeys::from_jwks(&exported).expect("an exported set imports");
    assert_eq!(again.len(), keys.len());
});

fn check_key(source: &Jwk, key: &VerifyingKey, data: &[u8]) {
    assert_ne!(key.alg(), Algorithm::HS256, "an HS256 key was imported");
    assert_eq!(source.kid.as_deref(), Some(key.kid()));
    assert_eq!(source.alg.as_deref(), Some(key.alg().as_str()));
    let thumbprint = key.thumbprint().expect("an imported key has a thumbprint");
    assert_eq!(
        source.thumbprint().ok(),
        Some(thumbprint.clone()),
        "the imported key is not the JWK's key: {:?}",
        String::from_utf8_lossy(data)
    );
    let published = key.to_jwk().expect("an imported key can be published");
    let back = published
        .to_verifying_key()
        .expect("a published key imports")
        .expect("a published key is a signing key");
    assert_eq!(back.kid(), key.kid());
    assert_eq!(back.alg(), key.alg());
    assert_eq!(back.thumbprint().ok(), Some(thumbprint));
}
