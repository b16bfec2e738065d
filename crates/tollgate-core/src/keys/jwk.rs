//! JSON Web Keys (RFC 7517) and thumbprints (RFC 7638).
//!
//! Export: every published key carries `kid`, `alg` and `use: "sig"`.
//! Import (the SDK reading a JWKS): only `kty`/`crv`/`alg` combinations that
//! Tollgate itself signs with are turned into keys; a key is bound to the
//! `alg` it is published with, and that must agree with its type.

use serde::{Deserialize, Serialize};

use super::{
    Algorithm, PublicParts, VerifyingKey, b64, public_parts, verifying_key_from_jwk_parts,
};
use crate::Error;
use crate::encoding::b64_decode;

/// One public JSON Web Key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP`, `EC` or `RSA`.
    pub kty: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The one algorithm the key is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; `sig` for every key Tollgate publishes.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Curve, for `OKP` and `EC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public x coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Public y coordinate (base64url), for `EC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Where the key is in its life (`next`, `active`, `verify_only`): a
    /// Tollgate member (RFC 7517 §4 lets a reader ignore members it does
    /// not know). A `next` key is published before it signs, so verifiers
    /// hold it when a rotation promotes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Private members must never be in a public set; present only so that
    /// import can refuse them.
    #[serde(default, skip_serializing)]
    d: Option<Present>,
    /// A symmetric key value; refused on import like `d`.
    #[serde(default, skip_serializing)]
    k: Option<Present>,
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// Marks that a member was present, whatever its value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Present;

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Present)
    }
}

impl Jwk {
    /// The RFC 7638 thumbprint: base64url SHA-256 of the required members in
    /// lexicographic order, without whitespace.
    pub fn thumbprint(&self) -> Result<String, Error> {
        let req = |v: &Option<String>| v.clone().ok_or(Error::InvalidJwk("missing member"));
        let canonical = match self.kty.as_str() {
            "EC" => serde_json::json!({
                "crv": req(&self.crv)?, "kty": "EC", "x": req(&self.x)?, "y": req(&self.y)?,
            }),
            "RSA" => serde_json::json!({ "e": req(&self.e)?, "kty": "RSA", "n": req(&self.n)? }),
            "OKP" => {
                serde_json::json!({ "crv": req(&self.crv)?, "kty": "OKP", "x": req(&self.x)? })
            }
            _ => return Err(Error::InvalidJwk("unsupported kty")),
        };
        // serde_json's map is ordered by key (no `preserve_order` feature),
        // which is exactly RFC 7638's lexicographic order.
        let text = canonical.to_string();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
        Ok(b64(digest.as_ref()))
    }

    /// Turns the JWK into a verifying key. `Ok(None)` for keys Tollgate does
    /// not use (encryption keys, other key types); an error for a signing
    /// key that is malformed, weak, mismatched or carries private members.
    pub fn to_verifying_key(&self) -> Result<Option<VerifyingKey>, Error> {
        if self.d.is_some() || self.k.is_some() {
            return Err(Error::InvalidJwk(
                "the key set holds private or secret key material",
            ));
        }
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let alg = match self.alg.as_deref() {
            Some(name) => Algorithm::from_name(name),
            None => return Err(Error::InvalidJwk("a key without `alg`")),
        };
        let Some(alg) = alg else { return Ok(None) };
        let kid = self
            .kid
            .as_deref()
            .ok_or(Error::InvalidJwk("a key without `kid`"))?;
        let field = |v: &Option<String>| -> Result<Vec<u8>, Error> {
            let text = v.as_deref().ok_or(Error::InvalidJwk("missing member"))?;
            b64_decode(text.as_bytes()).ok_or(Error::InvalidJwk("a member is not base64url"))
        };
        let (x, y, n, e);
        let parts = match (alg, self.kty.as_str(), self.crv.as_deref()) {
            (Algorithm::EdDSA, "OKP", Some("Ed25519")) => {
                x = field(&self.x)?;
                PublicParts::Okp { x: &x }
            }
            (Algorithm::ES256, "EC", Some("P-256")) => {
                x = field(&self.x)?;
                y = field(&self.y)?;
                PublicParts::Ec { x: &x, y: &y }
            }
            (Algorithm::RS256, "RSA", None) => {
                n = field(&self.n)?;
                e = field(&self.e)?;
                PublicParts::Rsa { n: &n, e: &e }
            }
            (Algorithm::HS256, _, _) => return Ok(None),
            _ => return Err(Error::InvalidJwk("`alg` does not match the key type")),
        };
        verifying_key_from_jwk_parts(kid, alg, parts).map(Some)
    }
}

pub(super) fn public_jwk(key: &VerifyingKey) -> Option<Jwk> {
    let mut jwk = Jwk {
        kty: String::new(),
        kid: Some(key.kid().to_owned()),
        alg: Some(key.alg().as_str().to_owned()),
        use_: Some("sig".to_owned()),
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
        status: None,
        d: None,
        k: None,
    };
    match public_parts(key) {
        PublicParts::Okp { x } => {
            jwk.kty = "OKP".into();
            jwk.crv = Some("Ed25519".into());
            jwk.x = Some(b64(x));
        }
        PublicParts::Ec { x, y } => {
            jwk.kty = "EC".into();
            jwk.crv = Some("P-256".into());
            jwk.x = Some(b64(x));
            jwk.y = Some(b64(y));
        }
        PublicParts::Rsa { n, e } => {
            jwk.kty = "RSA".into();
            jwk.n = Some(b64(n));
            jwk.e = Some(b64(e));
        }
        PublicParts::Secret => return None,
    }
    Some(jwk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{ManagedKey, VerifyingKeys};

    /// RFC 7638 §3.1: the thumbprint of the example RSA key.
    #[test]
    fn rfc7638_example_thumbprint() {
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"RSA",
            "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk.thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn export_import_round_trip_for_every_family() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
            let key = ManagedKey::generate(alg, 0).unwrap();
            let set = VerifyingKeys::new([key.verifying_key().unwrap()]);
            let text = serde_json::to_string(&set.to_jwks()).unwrap();
            let back: Jwks = serde_json::from_str(&text).unwrap();
            let imported = VerifyingKeys::from_jwks(&back).unwrap();
            let vk = imported.find(key.kid()).unwrap();
            assert_eq!(vk.alg(), alg);
            let sig = key.signing_key().unwrap().sign(b"m").unwrap();
            assert!(vk.verify(b"m", &sig));
        }
    }

    fn import(json: &str) -> Result<Option<VerifyingKey>, Error> {
        serde_json::from_str::<Jwk>(json)
            .unwrap()
            .to_verifying_key()
    }

    #[test]
    fn import_refuses_mismatched_private_and_weak_keys() {
        let ed = ManagedKey::generate(Algorithm::EdDSA, 0).unwrap();
        let jwk = ed.verifying_key().unwrap().to_jwk().unwrap();
        let mut as_es = jwk.clone();
        as_es.alg = Some("ES256".into());
        assert!(as_es.to_verifying_key().is_err());
        let mut no_kid = jwk.clone();
        no_kid.kid = None;
        assert!(no_kid.to_verifying_key().is_err());
        let mut enc = jwk.clone();
        enc.use_ = Some("enc".into());
        assert!(enc.to_verifying_key().unwrap().is_none());
        // Private members in a public set.
        let x = jwk.x.clone().unwrap();
        let with_d = format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","d":"{x}","alg":"EdDSA","kid":"k"}}"#
        );
        assert!(import(&with_d).is_err());
        // A 1024-bit RSA key.
        let n = b64(&[0xc5u8; 128]);
        let small = format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB","alg":"RS256","kid":"k"}}"#);
        assert_eq!(import(&small).unwrap_err().code(), "invalid_key");
        // e = 1.
        let n = b64(&[0xc5u8; 256]);
        let e1 = format!(r#"{{"kty":"RSA","n":"{n}","e":"AQ","alg":"RS256","kid":"k"}}"#);
        assert!(import(&e1).is_err());
        // An EC point that is not on the curve.
        let zero = b64(&[0u8; 32]);
        let off = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{zero}","y":"{zero}","alg":"ES256","kid":"k"}}"#
        );
        assert!(import(&off).is_err());
    }
}
