//! Keys: what signs, what verifies, and how a key lives and retires.
//!
//! - [`Algorithm`]: the four algorithms Tollgate speaks, by their exact JOSE
//!   names. A key is bound to one algorithm when it is made; the token header
//!   never chooses it.
//! - [`ManagedKey`]: private key material with its `kid`, algorithm and
//!   lifecycle ([`KeyStatus`]). This is what the store persists (sealed with
//!   the master key, see [`seal`]).
//! - [`SigningKey`] / [`VerifyingKey`]: the loaded forms used to sign and to
//!   check. [`VerifyingKeys`] is the exact-match `kid` map the validator uses.
//! - [`KeyRing`]: rotation policy over a set of managed keys.
//! - [`jwk`]: JWK / JWKS export and import, RFC 7638 thumbprints.
//!
//! All cryptography is aws-lc-rs; nothing here is hand-written crypto.

pub mod jwk;
mod ring;
pub mod seal;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair,
};
use aws_lc_rs::{hmac, rsa};

pub use jwk::{Jwk, Jwks};
pub use ring::KeyRing;

use crate::encoding::b64_encode;
use crate::{Error, Secret, UnixTime};

/// Shortest accepted HMAC secret, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// Smallest accepted RSA modulus, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A JWS algorithm Tollgate signs or verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037). The default.
    EdDSA,
    /// ECDSA P-256 with SHA-256, fixed-length `r || s` signatures.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 bits or more.
    RS256,
    /// HMAC-SHA256 with a shared secret of at least 32 bytes.
    HS256,
}

impl Algorithm {
    /// Every algorithm, in order of preference.
    pub const ALL: [Algorithm; 4] = [
        Algorithm::EdDSA,
        Algorithm::ES256,
        Algorithm::RS256,
        Algorithm::HS256,
    ];

    /// The exact JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            Algorithm::HS256 => "HS256",
        }
    }

    /// Parses the exact JOSE name. `none`, other casings, padded or
    /// look-alike strings and the fully-specified `Ed25519` are not names
    /// Tollgate knows.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "EdDSA" => Some(Algorithm::EdDSA),
            "ES256" => Some(Algorithm::ES256),
            "RS256" => Some(Algorithm::RS256),
            "HS256" => Some(Algorithm::HS256),
            _ => None,
        }
    }

    /// Whether the algorithm uses a shared secret (and so has no JWKS).
    pub fn is_symmetric(self) -> bool {
        self == Algorithm::HS256
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Algorithm::from_name(s).ok_or(Error::AlgorithmNotAllowed)
    }
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// Published and verifying, but not yet signing: the key the next
    /// rotation promotes. Every verifier holds it before it signs, so a
    /// rotation never refuses a fresh token. At most one key is next.
    Next,
    /// Signs new tokens and verifies. Exactly one key is active.
    Active,
    /// No longer signs; still verifies and is published until every token it
    /// signed has expired.
    VerifyOnly,
    /// Neither signs nor verifies; kept only for the record.
    Retired,
}

impl KeyStatus {
    /// The wire name (`next`, `active`, `verify_only`, `retired`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Next => "next",
            KeyStatus::Active => "active",
            KeyStatus::VerifyOnly => "verify_only",
            KeyStatus::Retired => "retired",
        }
    }

    /// Parses the wire name.
    pub fn from_name(name: &str) -> Option<KeyStatus> {
        match name {
            "next" => Some(KeyStatus::Next),
            "active" => Some(KeyStatus::Active),
            "verify_only" => Some(KeyStatus::VerifyOnly),
            "retired" => Some(KeyStatus::Retired),
            _ => None,
        }
    }
}

/// A private key with its identity and lifecycle: the unit the store keeps.
///
/// The material is PKCS#8 DER for EdDSA, ES256 and RS256 keys and the raw
/// secret for HS256. The `kid` of an asymmetric key is its RFC 7638
/// thumbprint; [`ManagedKey::from_parts`] checks that it still is.
#[derive(Clone)]
pub struct ManagedKey {
    kid: String,
    alg: Algorithm,
    /// Where the key is in its life.
    pub status: KeyStatus,
    /// When the key was made.
    pub created_at: UnixTime,
    /// For a verify-only key: when it stops verifying and leaves the JWKS.
    pub retire_at: Option<UnixTime>,
    material: Secret,
}

impl fmt::Debug for ManagedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("status", &self.status)
            .field("created_at", &self.created_at)
            .field("retire_at", &self.retire_at)
            .field("material", &self.material)
            .finish()
    }
}

impl ManagedKey {
    /// Generates a new active asymmetric key. HS256 keys come from the
    /// configured shared secret instead ([`ManagedKey::from_hmac_secret`]).
    pub fn generate(alg: Algorithm, now: UnixTime) -> Result<ManagedKey, Error> {
        let rng = SystemRandom::new();
        let material = match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| Error::InvalidKey("Ed25519 key generation failed"))?
                .as_ref()
                .to_vec(),
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| Error::InvalidKey("P-256 key generation failed"))?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::RS256 => {
                let pair = RsaKeyPair::generate(rsa::KeySize::Rsa2048)
                    .map_err(|_| Error::InvalidKey("RSA key generation failed"))?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair
                    .as_der()
                    .map_err(|_| Error::InvalidKey("RSA key encoding failed"))?;
                der.as_ref().to_vec()
            }
            Algorithm::HS256 => {
                return Err(Error::InvalidKey(
                    "HS256 keys come from the configured shared secret",
                ));
            }
        };
        let material = Secret::new(material);
        let signer = SigningKey::load(String::new(), alg, &material)?;
        let kid = signer.verifying_key().thumbprint()?;
        Ok(ManagedKey {
            kid,
            alg,
            status: KeyStatus::Active,
            created_at: now,
            retire_at: None,
            material,
        })
    }

    /// The HS256 key for a shared secret. Its `kid` is derived from the
    /// secret with [`crate::fingerprint::secret_fingerprint`], so every
    /// instance holding the same secret names it the same way.
    pub fn from_hmac_secret(secret: &Secret, now: UnixTime) -> Result<ManagedKey, Error> {
        check_hmac_secret(secret.expose())?;
        Ok(ManagedKey {
            kid: format!("hs256-{}", crate::fingerprint::secret_fingerprint(secret)),
            alg: Algorithm::HS256,
            status: KeyStatus::Active,
            created_at: now,
            retire_at: None,
            material: secret.clone(),
        })
    }

    /// Rebuilds a key read back from storage. Fails when the material does
    /// not load for `alg`, or when an asymmetric key's `kid` is not its
    /// thumbprint (a swapped or corrupted row).
    pub fn from_parts(
        kid: String,
        alg: Algorithm,
        status: KeyStatus,
        created_at: UnixTime,
        retire_at: Option<UnixTime>,
        material: Secret,
    ) -> Result<ManagedKey, Error> {
        let signer = SigningKey::load(kid.clone(), alg, &material)?;
        if !alg.is_symmetric() && signer.verifying_key().thumbprint()? != kid {
            return Err(Error::InvalidKey("the kid is not the key's thumbprint"));
        }
        Ok(ManagedKey {
            kid,
            alg,
            status,
            created_at,
            retire_at,
            material,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm the key is bound to.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The private material, for sealing and storage only.
    pub fn material(&self) -> &Secret {
        &self.material
    }

    /// Loads the key for signing.
    pub fn signing_key(&self) -> Result<SigningKey, Error> {
        SigningKey::load(self.kid.clone(), self.alg, &self.material)
    }

    /// Loads the public (or, for HS256, shared) half for verification.
    pub fn verifying_key(&self) -> Result<VerifyingKey, Error> {
        Ok(self.signing_key()?.verifying_key())
    }
}

fn check_hmac_secret(secret: &[u8]) -> Result<(), Error> {
    if secret.is_empty() {
        return Err(Error::InvalidKey("the HMAC secret is empty"));
    }
    if secret.len() < MIN_HMAC_SECRET_BYTES {
        return Err(Error::InvalidKey(
            "the HMAC secret is shorter than 32 bytes",
        ));
    }
    Ok(())
}

// Always behind an `Arc`, so the size of the HMAC variant costs nothing;
// boxing it would add a pointer chase to every HS256 verification.
#[allow(clippy::large_enum_variant)]
enum SignerInner {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Hmac(hmac::Key),
}

/// A loaded private key that signs tokens. Cloning is cheap (shared).
#[derive(Clone)]
pub struct SigningKey {
    kid: Arc<str>,
    alg: Algorithm,
    inner: Arc<SignerInner>,
    verifying: VerifyingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    fn load(kid: String, alg: Algorithm, material: &Secret) -> Result<SigningKey, Error> {
        let der = material.expose();
        let (inner, public) = match alg {
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|_| Error::InvalidKey("not an Ed25519 PKCS#8 key"))?;
                let public = PublicKey::Ed25519(pair.public_key().as_ref().to_vec());
                (SignerInner::Ed25519(pair), public)
            }
            Algorithm::ES256 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                        .map_err(|_| Error::InvalidKey("not a P-256 PKCS#8 key"))?;
                let public = PublicKey::Ec(pair.public_key().as_ref().to_vec());
                (SignerInner::Ecdsa(pair), public)
            }
            Algorithm::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(der)
                    .map_err(|_| Error::InvalidKey("not an RSA PKCS#8 key"))?;
                let public_key = pair.public_key();
                let public = PublicKey::Rsa {
                    n: public_key
                        .modulus()
                        .big_endian_without_leading_zero()
                        .to_vec(),
                    e: public_key
                        .exponent()
                        .big_endian_without_leading_zero()
                        .to_vec(),
                };
                (SignerInner::Rsa(pair), public)
            }
            Algorithm::HS256 => {
                check_hmac_secret(der)?;
                let key = hmac::Key::new(hmac::HMAC_SHA256, der);
                (SignerInner::Hmac(key.clone()), PublicKey::Hmac(key))
            }
        };
        let kid: Arc<str> = Arc::from(kid);
        let verifying = VerifyingKey::from_public(kid.clone(), alg, public)?;
        Ok(SigningKey {
            kid,
            alg,
            inner: Arc::new(inner),
            verifying,
        })
    }

    /// The key id written into every token header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The matching verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.verifying.clone()
    }

    /// Signs `message` (a JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        match &*self.inner {
            SignerInner::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            SignerInner::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| Error::Signing),
            SignerInner::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .map_err(|_| Error::Signing)?;
                Ok(sig)
            }
            SignerInner::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
        }
    }
}

// Always behind an `Arc`, so the size of the HMAC variant costs nothing;
// boxing it would add a pointer chase to every HS256 verification.
#[allow(clippy::large_enum_variant)]
/// Public key bytes in the form each family is published in.
#[derive(Clone)]
enum PublicKey {
    /// 32-byte Ed25519 point.
    Ed25519(Vec<u8>),
    /// Uncompressed SEC1 P-256 point, `0x04 || x || y`.
    Ec(Vec<u8>),
    /// Big-endian modulus and exponent without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The shared HMAC key (never published).
    Hmac(hmac::Key),
}

// Always behind an `Arc`, so the size of the HMAC variant costs nothing;
// boxing it would add a pointer chase to every HS256 verification.
#[allow(clippy::large_enum_variant)]
enum VerifierInner {
    Public(ParsedPublicKey),
    Hmac(hmac::Key),
}

/// A key that checks signatures, bound to one algorithm. Cloning is cheap.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Arc<str>,
    alg: Algorithm,
    inner: Arc<VerifierInner>,
    public: Arc<PublicKey>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    fn from_public(kid: Arc<str>, alg: Algorithm, public: PublicKey) -> Result<Self, Error> {
        let inner = match (&public, alg) {
            (PublicKey::Ed25519(x), Algorithm::EdDSA) => VerifierInner::Public(
                ParsedPublicKey::new(&signature::ED25519, x)
                    .map_err(|_| Error::InvalidKey("not an Ed25519 public key"))?,
            ),
            (PublicKey::Ec(point), Algorithm::ES256) => VerifierInner::Public(
                ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .map_err(|_| Error::InvalidKey("not a P-256 public key"))?,
            ),
            (PublicKey::Rsa { n, e }, Algorithm::RS256) => {
                check_rsa_components(n, e)?;
                let components = signature::RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                };
                VerifierInner::Public(
                    components
                        .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
                        .map_err(|_| Error::InvalidKey("not an RSA public key"))?,
                )
            }
            (PublicKey::Hmac(key), Algorithm::HS256) => VerifierInner::Hmac(key.clone()),
            _ => return Err(Error::InvalidKey("the key does not fit its algorithm")),
        };
        Ok(VerifyingKey {
            kid,
            alg,
            inner: Arc::new(inner),
            public: Arc::new(public),
        })
    }

    /// A verifying key for a shared HMAC secret (for services that hold the
    /// same secret as the token service). Refuses empty and short secrets.
    pub fn from_hmac_secret(kid: &str, secret: &Secret) -> Result<VerifyingKey, Error> {
        check_hmac_secret(secret.expose())?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose());
        VerifyingKey::from_public(Arc::from(kid), Algorithm::HS256, PublicKey::Hmac(key))
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Whether `signature` is a valid signature of `message` under this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &*self.inner {
            VerifierInner::Public(key) => key.verify_sig(message, signature).is_ok(),
            VerifierInner::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }

    /// The public JWK (`kid`, `alg`, `use: "sig"`), or `None` for HS256.
    pub fn to_jwk(&self) -> Option<Jwk> {
        jwk::public_jwk(self)
    }

    /// The RFC 7638 thumbprint of the public key (base64url SHA-256). For
    /// HS256 keys there is no public key and this fails.
    pub fn thumbprint(&self) -> Result<String, Error> {
        self.to_jwk()
            .ok_or(Error::InvalidKey("an HMAC key has no public thumbprint"))?
            .thumbprint()
    }
}

fn check_rsa_components(n: &[u8], e: &[u8]) -> Result<(), Error> {
    if n.first().is_none_or(|b| *b == 0) || e.first().is_none_or(|b| *b == 0) {
        return Err(Error::InvalidKey(
            "RSA components must not have leading zeros",
        ));
    }
    let bits = n.len() * 8 - n[0].leading_zeros() as usize;
    if bits < MIN_RSA_BITS {
        return Err(Error::InvalidKey(
            "the RSA modulus is shorter than 2048 bits",
        ));
    }
    // A modulus is a product of two odd primes; an even one is no RSA key
    // (and aws-lc-rs would load it).
    if n.last().is_none_or(|b| b & 1 == 0) {
        return Err(Error::InvalidKey("the RSA modulus is even"));
    }
    // e must be odd and at least 3; the last byte carries the parity.
    let odd = e.last().is_some_and(|b| b & 1 == 1);
    if !odd || (e.len() == 1 && e[0] < 3) || e.len() > 8 {
        return Err(Error::InvalidKey(
            "the RSA exponent is not an odd number >= 3",
        ));
    }
    Ok(())
}

/// The keys a validator trusts, found by exact `kid` match only: no
/// normalisation, no fallback, no loop over keys.
#[derive(Clone, Default)]
pub struct VerifyingKeys {
    by_kid: HashMap<Arc<str>, VerifyingKey>,
}

impl fmt::Debug for VerifyingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.by_kid.values()).finish()
    }
}

impl VerifyingKeys {
    /// A set of keys. A later key with the same `kid` replaces an earlier one.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> VerifyingKeys {
        VerifyingKeys {
            by_kid: keys.into_iter().map(|k| (k.kid.clone(), k)).collect(),
        }
    }

    /// The key with exactly this `kid`.
    pub fn find(&self, kid: &str) -> Option<&VerifyingKey> {
        self.by_kid.get(kid)
    }

    /// Every key.
    pub fn iter(&self) -> impl Iterator<Item = &VerifyingKey> {
        self.by_kid.values()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_kid.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }

    /// The public key set (HS256 keys are never published), sorted by `kid`.
    pub fn to_jwks(&self) -> Jwks {
        let mut keys: Vec<Jwk> = self.by_kid.values().filter_map(|k| k.to_jwk()).collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        Jwks { keys }
    }

    /// Imports a JWKS (as fetched by the SDK). Keys of other kinds (`use:
    /// "enc"`, unknown `kty`) are skipped; a key Tollgate would use but that
    /// is malformed or weak fails the whole set.
    pub fn from_jwks(jwks: &Jwks) -> Result<VerifyingKeys, Error> {
        let mut keys = Vec::with_capacity(jwks.keys.len());
        for jwk in &jwks.keys {
            if let Some(key) = jwk.to_verifying_key()? {
                keys.push(key);
            }
        }
        Ok(VerifyingKeys::new(keys))
    }
}

pub(crate) fn public_parts(key: &VerifyingKey) -> PublicParts<'_> {
    match &*key.public {
        PublicKey::Ed25519(x) => PublicParts::Okp { x },
        PublicKey::Ec(point) => PublicParts::Ec {
            x: &point[1..33],
            y: &point[33..65],
        },
        PublicKey::Rsa { n, e } => PublicParts::Rsa { n, e },
        PublicKey::Hmac(_) => PublicParts::Secret,
    }
}

pub(crate) enum PublicParts<'a> {
    Okp { x: &'a [u8] },
    Ec { x: &'a [u8], y: &'a [u8] },
    Rsa { n: &'a [u8], e: &'a [u8] },
    Secret,
}

pub(crate) fn verifying_key_from_jwk_parts(
    kid: &str,
    alg: Algorithm,
    parts: PublicParts<'_>,
) -> Result<VerifyingKey, Error> {
    let public = match parts {
        PublicParts::Okp { x } => PublicKey::Ed25519(x.to_vec()),
        PublicParts::Ec { x, y } => {
            if x.len() != 32 || y.len() != 32 {
                return Err(Error::InvalidKey("P-256 coordinates must be 32 bytes"));
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            PublicKey::Ec(point)
        }
        PublicParts::Rsa { n, e } => PublicKey::Rsa {
            n: n.to_vec(),
            e: e.to_vec(),
        },
        PublicParts::Secret => return Err(Error::InvalidKey("secret keys are not imported")),
    };
    VerifyingKey::from_public(Arc::from(kid), alg, public)
}

/// Base64url of a public component (used by [`jwk`]).
pub(crate) fn b64(bytes: &[u8]) -> String {
    b64_encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asymmetric_algorithm_signs_and_verifies() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let key = ManagedKey::generate(alg, 1).unwrap();
            let signer = key.signing_key().unwrap();
            let sig = signer.sign(b"message").unwrap();
            let verifier = key.verifying_key().unwrap();
            assert!(verifier.verify(b"message", &sig), "{alg}");
            assert!(!verifier.verify(b"messagf", &sig), "{alg}");
            assert_eq!(verifier.thumbprint().unwrap(), key.kid());
        }
    }

    #[test]
    fn hmac_keys_refuse_empty_and_short_secrets() {
        for bad in [&b""[..], b"short", &[7u8; 31]] {
            assert!(ManagedKey::from_hmac_secret(&Secret::new(bad), 0).is_err());
            assert!(VerifyingKey::from_hmac_secret("k", &Secret::new(bad)).is_err());
        }
        let key = ManagedKey::from_hmac_secret(&Secret::new([7u8; 32]), 0).unwrap();
        assert!(key.kid().starts_with("hs256-"));
        assert!(key.verifying_key().unwrap().to_jwk().is_none());
    }

    #[test]
    fn from_parts_refuses_a_kid_that_is_not_the_thumbprint() {
        let key = ManagedKey::generate(Algorithm::EdDSA, 1).unwrap();
        let err = ManagedKey::from_parts(
            "other".into(),
            Algorithm::EdDSA,
            KeyStatus::Active,
            1,
            None,
            key.material().clone(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_key");
        // The material of one family does not load as another.
        assert!(
            ManagedKey::from_parts(
                key.kid().into(),
                Algorithm::ES256,
                KeyStatus::Active,
                1,
                None,
                key.material().clone(),
            )
            .is_err()
        );
    }

    #[test]
    fn weak_rsa_components_are_refused_at_load() {
        let n2048 = [0xffu8; 256];
        let n1024 = [0xffu8; 128];
        assert!(check_rsa_components(&n2048, &[1, 0, 1]).is_ok());
        assert!(check_rsa_components(&n1024, &[1, 0, 1]).is_err());
        assert!(check_rsa_components(&n2048, &[1]).is_err());
        assert!(check_rsa_components(&n2048, &[2]).is_err());
        assert!(check_rsa_components(&n2048, &[1, 0, 0]).is_err());
        assert!(check_rsa_components(&[0, 1], &[3]).is_err());
        let mut even = n2048;
        even[255] = 0xfe;
        assert!(check_rsa_components(&even, &[1, 0, 1]).is_err());
    }

    #[test]
    fn algorithm_names_are_exact() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.as_str()), Some(alg));
        }
        for bad in [
            "none", "None", "es256", "ES256 ", "Ed25519", "ЕS256", "", "HS512",
        ] {
            assert_eq!(Algorithm::from_name(bad), None, "{bad}");
        }
    }
}
