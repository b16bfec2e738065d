//! Test fixtures shared by the integration tests: keys made directly with
//! aws-lc-rs (never through Tollgate's own key code), a token forge that
//! signs arbitrary header and payload bytes, the standard validator and one
//! `check` helper that compares a token's outcome with an expected code.
//!
//! Attack tokens are built here from raw bytes on purpose: if they went
//! through `Minter`, a bug shared by minting and validation would hide.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use aws_lc_rs::{hmac, rsa};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tollgate_core::keys::{Algorithm, Jwk, VerifyingKey, VerifyingKeys};
use tollgate_core::validate::{Expect, Revocations, ValidationPolicy, Validator};
use tollgate_core::{Secret, UnixTime};

/// The moment every test runs at.
pub const NOW: UnixTime = 1_760_000_000;
/// The issuer of the standard validator.
pub const ISSUER: &str = "https://auth.tollgate.test";
/// The audience of the standard validator.
pub const AUDIENCE: &str = "api";

/// Base64url without padding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding (test input only).
pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("test base64url")
}

/// A PEM block with 64-column lines, as OpenSSL writes it.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Joins segments with dots.
pub fn join(header: &str, payload: &str, signature: &str) -> String {
    format!("{header}.{payload}.{signature}")
}

/// HMAC-SHA256 with an arbitrary key, including the empty one.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message)
        .as_ref()
        .to_vec()
}

enum Signer {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Hmac(Vec<u8>),
}

/// A key pair (or shared secret) made with aws-lc-rs, with the `kid` and
/// `alg` it is published under.
pub struct TestKey {
    /// The JOSE algorithm name the key is bound to.
    pub alg: &'static str,
    /// The key id.
    pub kid: String,
    /// PKCS#8 private key (asymmetric keys) or the raw secret (HS256).
    pub private: Vec<u8>,
    signer: Signer,
}

impl TestKey {
    pub fn ed25519(kid: &str) -> TestKey {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("Ed25519 keygen");
        Self::from_pkcs8("EdDSA", kid, doc.as_ref())
    }

    pub fn p256(kid: &str) -> TestKey {
        let doc = EcdsaKeyPair::generate_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .expect("P-256 keygen");
        Self::from_pkcs8("ES256", kid, doc.as_ref())
    }

    pub fn rsa2048(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(rsa::KeySize::Rsa2048).expect("RSA keygen");
        let der: Pkcs8V1Der<'static> = pair.as_der().expect("RSA PKCS#8");
        Self::from_pkcs8("RS256", kid, der.as_ref())
    }

    pub fn hmac(kid: &str, secret: &[u8]) -> TestKey {
        TestKey {
            alg: "HS256",
            kid: kid.to_owned(),
            private: secret.to_vec(),
            signer: Signer::Hmac(secret.to_vec()),
        }
    }

    /// Loads a PKCS#8 key for `alg` (`EdDSA`, `ES256` or `RS256`).
    pub fn from_pkcs8(alg: &'static str, kid: &str, pkcs8: &[u8]) -> TestKey {
        let signer = match alg {
            "EdDSA" => Signer::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).expect("Ed25519 PKCS#8")),
            "ES256" => Signer::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .expect("P-256 PKCS#8"),
            ),
            "RS256" => Signer::Rsa(RsaKeyPair::from_pkcs8(pkcs8).expect("RSA PKCS#8")),
            other => panic!("no test key for {other}"),
        };
        TestKey {
            alg,
            kid: kid.to_owned(),
            private: pkcs8.to_vec(),
            signer,
        }
    }

    /// Signs `message` with the key's own algorithm.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ed(pair) => pair.sign(message).as_ref().to_vec(),
            Signer::Ec(pair) => pair.sign(&rng, message).expect("ECDSA").as_ref().to_vec(),
            Signer::Rsa(pair) => self.rsa_sign(pair, &signature::RSA_PKCS1_SHA256, message),
            Signer::Hmac(secret) => hmac_sha256(secret, message),
        }
    }

    /// Signs with RSASSA-PSS (for `PS256`-on-an-RS256-key confusion).
    pub fn sign_pss(&self, message: &[u8]) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(pair) => self.rsa_sign(pair, &signature::RSA_PSS_SHA256, message),
            _ => panic!("PSS needs an RSA key"),
        }
    }

    /// Signs with ECDSA but DER-encodes the signature (the X.509 form, not
    /// the JOSE `r || s` form).
    pub fn sign_ecdsa_der(&self, message: &[u8]) -> Vec<u8> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &self.private)
                .expect("P-256 PKCS#8");
        pair.sign(&SystemRandom::new(), message)
            .expect("ECDSA")
            .as_ref()
            .to_vec()
    }

    fn rsa_sign(
        &self,
        pair: &RsaKeyPair,
        encoding: &'static dyn signature::RsaEncoding,
        message: &[u8],
    ) -> Vec<u8> {
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(encoding, &SystemRandom::new(), message, &mut sig)
            .expect("RSA sign");
        sig
    }

    /// The raw public key: 32-byte Ed25519 point, uncompressed SEC1 P-256
    /// point, or the RSA modulus.
    pub fn public_raw(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Ed(pair) => pair.public_key().as_ref().to_vec(),
            Signer::Ec(pair) => pair.public_key().as_ref().to_vec(),
            Signer::Rsa(pair) => pair
                .public_key()
                .modulus()
                .big_endian_without_leading_zero()
                .to_vec(),
            Signer::Hmac(_) => panic!("an HMAC key has no public half"),
        }
    }

    /// SubjectPublicKeyInfo DER of the public key.
    pub fn public_spki_der(&self) -> Vec<u8> {
        let der: PublicKeyX509Der<'static> = match &self.signer {
            Signer::Ed(pair) => pair.public_key().as_der().expect("SPKI"),
            Signer::Ec(pair) => pair.public_key().as_der().expect("SPKI"),
            Signer::Rsa(pair) => pair.public_key().as_der().expect("SPKI"),
            Signer::Hmac(_) => panic!("an HMAC key has no public half"),
        };
        der.as_ref().to_vec()
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.public_spki_der())
    }

    /// The public JWK with `kid`, `alg` and `use: "sig"`.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = match &self.signer {
            Signer::Ed(_) => json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(self.public_raw()) }),
            Signer::Ec(pair) => {
                let point = pair.public_key().as_ref().to_vec();
                json!({ "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]) })
            }
            Signer::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Signer::Hmac(_) => panic!("an HMAC key has no public JWK"),
        };
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!(self.alg);
        jwk["use"] = json!("sig");
        jwk
    }

    /// Tollgate's verifying key for this key, imported the way the SDK does:
    /// through the public JWK (or the shared secret for HS256).
    pub fn verifying_key(&self) -> VerifyingKey {
        match &self.signer {
            Signer::Hmac(secret) => {
                VerifyingKey::from_hmac_secret(&self.kid, &Secret::new(secret.clone()))
                    .expect("HMAC verifying key")
            }
            _ => {
                let jwk: Jwk = serde_json::from_value(self.public_jwk()).expect("JWK");
                jwk.to_verifying_key()
                    .expect("JWK import")
                    .expect("a signing key")
            }
        }
    }

    /// The header Tollgate writes: `alg`, `kid`, `typ: at+jwt`.
    pub fn header(&self) -> Value {
        json!({ "alg": self.alg, "kid": self.kid, "typ": "at+jwt" })
    }

    /// A token with this key's standard header over `claims`.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with(&self.header(), claims)
    }

    /// A token with an arbitrary header over `claims`, signed by this key.
    pub fn token_with(&self, header: &Value, claims: &Value) -> String {
        self.token_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// A token over raw header and payload bytes, signed by this key.
    pub fn token_raw(&self, header: &[u8], payload: &[u8]) -> String {
        self.token_segments(&b64(header), &b64(payload))
    }

    /// A token over already-encoded segments (which may be non-canonical),
    /// signed over exactly those bytes.
    pub fn token_segments(&self, header: &str, payload: &str) -> String {
        let input = format!("{header}.{payload}");
        let sig = self.sign(input.as_bytes());
        format!("{input}.{}", b64(sig))
    }
}

/// The keys the standard validator trusts, plus an outsider.
pub struct Fixture {
    pub ed: TestKey,
    pub ec: TestKey,
    pub rsa: TestKey,
    pub hs: TestKey,
    /// A key nobody trusts.
    pub attacker: TestKey,
    pub validator: Validator,
}

/// Built once per test binary: RSA key generation is not free.
pub static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let ed = TestKey::ed25519("ed-1");
    let ec = TestKey::p256("ec-1");
    let rsa = TestKey::rsa2048("rsa-1");
    let hs = TestKey::hmac("hs-1", b"0123456789abcdef0123456789abcdef-shared");
    let attacker = TestKey::ed25519("attacker");
    let validator = validator_for(&[&ed, &ec, &rsa, &hs], &Algorithm::ALL);
    Fixture {
        ed,
        ec,
        rsa,
        hs,
        attacker,
        validator,
    }
});

/// A validator for [`ISSUER`] / [`AUDIENCE`] trusting `keys` under
/// `algorithms`.
pub fn validator_for(keys: &[&TestKey], algorithms: &[Algorithm]) -> Validator {
    let policy = ValidationPolicy::new(ISSUER, vec![AUDIENCE.to_owned()])
        .expect("policy")
        .with_algorithms(algorithms);
    Validator::new(
        policy,
        VerifyingKeys::new(keys.iter().map(|k| k.verifying_key())),
    )
}

/// The claims of a realistic user token, valid at [`NOW`].
pub fn user_claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "user-4821",
        "aud": [AUDIENCE, "chat"],
        "exp": NOW + 600,
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "jti": "jti-7b1f3c",
        "client_id": "web",
        "scope": "openid profile tools",
        "token_type": "access",
        "sid": "sid-55aa",
        "email": "ada@example.com",
        "roles": ["user", "beta", "support"],
        "plan": "pro",
        "permissions": ["tool:search", "tool:code", "chat:send", "chat:read", "usage:read"],
    })
}

/// The claims of a realistic service (client-credentials) token.
pub fn service_claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "billing-worker",
        "aud": AUDIENCE,
        "exp": NOW + 600,
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "jti": "jti-svc-1",
        "client_id": "billing-worker",
        "scope": "usage:write",
        "token_type": "service",
    })
}

/// `user_claims()` with one member replaced.
pub fn claims_with(key: &str, value: Value) -> Value {
    let mut claims = user_claims();
    claims[key] = value;
    claims
}

/// `user_claims()` without one member.
pub fn claims_without(key: &str) -> Value {
    let mut claims = user_claims();
    claims.as_object_mut().expect("object").remove(key);
    claims
}

/// The standard revocation state: one revoked token, one ended session and
/// one user cut off 100 s before [`NOW`].
#[derive(Default)]
pub struct Revoked {
    pub jtis: HashSet<String>,
    pub sids: HashSet<String>,
    pub users: HashMap<String, UnixTime>,
}

impl Revoked {
    pub fn standard() -> Revoked {
        Revoked {
            jtis: HashSet::from(["jti-revoked".to_owned()]),
            sids: HashSet::from(["sid-ended".to_owned()]),
            users: HashMap::from([("user-disabled".to_owned(), NOW - 100)]),
        }
    }
}

impl Revocations for Revoked {
    fn is_token_revoked(&self, jti: &str) -> bool {
        self.jtis.contains(jti)
    }
    fn is_session_revoked(&self, sid: &str) -> bool {
        self.sids.contains(sid)
    }
    fn revoked_before(&self, sub: &str) -> Option<UnixTime> {
        self.users.get(sub).copied()
    }
}

/// `"ok"` or the error code of validating `token` as a user token at
/// [`NOW`] with `validator`.
pub fn outcome(validator: &Validator, token: &str, expect: Expect) -> &'static str {
    match validator.validate(token, expect, NOW, &Revoked::standard()) {
        Ok(_) => "ok",
        Err(err) => err.code(),
    }
}

/// One row of an attack table: a name, a token and the expected outcome
/// (`"ok"` or an `Error::code()`).
pub type Row = (String, String, &'static str);

/// Checks one token against the standard validator, expecting a user token.
#[track_caller]
pub fn check(token: &str, expected_code: &str) {
    let got = outcome(&FIXTURE.validator, token, Expect::Access);
    assert_eq!(got, expected_code, "token {token:?}");
}

/// Runs a table through the standard validator and reports every row that
/// did not get its expected code at once.
#[track_caller]
pub fn check_table(rows: &[Row]) {
    check_table_with(&FIXTURE.validator, Expect::Access, rows);
}

/// [`check_table`] with another validator or expectation.
#[track_caller]
pub fn check_table_with(validator: &Validator, expect: Expect, rows: &[Row]) {
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|(name, token, expected)| {
            let got = outcome(validator, token, expect);
            (got != *expected).then(|| format!("  {name}: expected {expected}, got {got}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// Shorthand for building a [`Row`].
pub fn row(name: impl Into<String>, token: impl Into<String>, expected: &'static str) -> Row {
    (name.into(), token.into(), expected)
}
