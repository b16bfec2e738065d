//! Interoperability with an independent JOSE implementation, the
//! `jsonwebtoken` crate (aws-lc-rs backend): tokens Tollgate mints verify
//! there, and tokens it signs validate here under the same public key.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tollgate_core::claims::{Minter, UserGrant};
use tollgate_core::keys::{Algorithm, ManagedKey};
use tollgate_core::validate::Expect;
use tollgate_core::{Secret, UnixTime};

use crate::support::{AUDIENCE, FIXTURE, ISSUER, Revoked, TestKey, b64, hmac_sha256, join};

/// jsonwebtoken picks its backend from crate features; a host crate that
/// unifies both features would panic at run time, so tests install the one
/// they mean explicitly (SECURITY.md, "Known traps").
fn provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

fn wall_clock() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
    }
}

fn grant() -> UserGrant {
    UserGrant {
        sub: "user-4821".into(),
        sid: "sid-55aa".into(),
        email: "ada@example.com".into(),
        roles: vec!["user".into(), "beta".into(), "support".into()],
        plan: "pro".into(),
        permissions: vec!["tool:search".into(), "chat:send".into()],
        client_id: "web".into(),
        scope: "openid tools".into(),
    }
}

/// jsonwebtoken's strictest settings for a Tollgate token.
fn jwt_validation(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(jwt_alg(alg));
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation
}

const HS_SECRET: &[u8] = b"interop-shared-secret-of-32-bytes-or-more";

fn managed(alg: Algorithm) -> ManagedKey {
    match alg {
        Algorithm::HS256 => ManagedKey::from_hmac_secret(&Secret::new(HS_SECRET), 0),
        _ => ManagedKey::generate(alg, 0),
    }
    .expect("key")
}

fn decoding_key(key: &ManagedKey) -> DecodingKey {
    let verifying = key.verifying_key().expect("verifying key");
    match verifying.to_jwk() {
        // Our published JWK, read by jsonwebtoken's own JWK parser.
        Some(jwk) => {
            let text = serde_json::to_string(&jwk).expect("JWK JSON");
            let theirs: jsonwebtoken::jwk::Jwk = serde_json::from_str(&text).expect("their JWK");
            DecodingKey::from_jwk(&theirs).expect("their decoding key")
        }
        None => DecodingKey::from_secret(HS_SECRET),
    }
}

#[test]
fn tokens_we_mint_verify_with_jsonwebtoken() {
    provider();
    let now = wall_clock();
    for alg in Algorithm::ALL {
        let key = managed(alg);
        let minter = Minter::new(
            ISSUER,
            vec![AUDIENCE.into(), "chat".into()],
            key.signing_key().unwrap(),
        )
        .unwrap();
        let (token, claims) = minter.user(grant(), now, 900).unwrap();
        let data = jsonwebtoken::decode::<Value>(&token, &decoding_key(&key), &jwt_validation(alg))
            .unwrap_or_else(|e| panic!("{alg}: jsonwebtoken refused our token: {e:?}"));
        assert_eq!(data.header.typ.as_deref(), Some("at+jwt"), "{alg}");
        assert_eq!(data.header.kid.as_deref(), Some(key.kid()), "{alg}");
        assert_eq!(data.claims["sub"], "user-4821");
        assert_eq!(data.claims["jti"], claims.jti.as_str());
        assert_eq!(data.claims["token_type"], "access");
        assert_eq!(data.claims["roles"], json!(["user", "beta", "support"]));
    }
}

fn rsa_pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    // PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, OCTET STRING }
    // jsonwebtoken's RSA signer wants the inner RSAPrivateKey (PKCS#1).
    fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = match input[1] {
            n if n < 0x80 => (n as usize, 2),
            0x81 => (input[2] as usize, 3),
            0x82 => ((input[2] as usize) << 8 | input[3] as usize, 4),
            other => panic!("unexpected DER length byte {other:#x}"),
        };
        (tag, &input[header..header + len], &input[header + len..])
    }
    let (tag, body, _) = tlv(pkcs8);
    assert_eq!(tag, 0x30);
    let (_, _, rest) = tlv(body); // version
    let (_, _, rest) = tlv(rest); // algorithm
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

fn encoding_key(key: &TestKey) -> EncodingKey {
    match key.alg {
        "EdDSA" => EncodingKey::from_ed_der(&key.private),
        "ES256" => EncodingKey::from_ec_der(&key.private),
        "RS256" => EncodingKey::from_rsa_der(&rsa_pkcs1_from_pkcs8(&key.private)),
        _ => EncodingKey::from_secret(&key.private),
    }
}

fn their_token(key: &TestKey, claims: &Value) -> String {
    let alg = Algorithm::from_name(key.alg).expect("known alg");
    let mut header = Header::new(jwt_alg(alg));
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &encoding_key(key)).expect("jsonwebtoken signs")
}

#[test]
fn tokens_jsonwebtoken_signs_validate_with_ours() {
    provider();
    let fixture = &*FIXTURE;
    let claims = crate::support::user_claims();
    for key in [&fixture.ed, &fixture.ec, &fixture.rsa, &fixture.hs] {
        let token = their_token(key, &claims);
        let validated = fixture
            .validator
            .validate(
                &token,
                Expect::Access,
                crate::support::NOW,
                &Revoked::standard(),
            )
            .unwrap_or_else(|e| panic!("{}: we refused jsonwebtoken's token: {e:?}", key.alg));
        assert_eq!(validated.sub, "user-4821");
        assert_eq!(validated.permissions.len(), 5);
        // And their signature over our header bytes is exactly what a
        // one-byte change breaks.
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(
            fixture
                .validator
                .validate(
                    &tampered,
                    Expect::Access,
                    crate::support::NOW,
                    &Revoked::standard()
                )
                .is_err()
        );
    }
}

#[test]
fn jsonwebtoken_also_refuses_hmac_keyed_with_a_public_key() {
    // SECURITY A4: pin that jsonwebtoken's HMAC verifier refuses a key of
    // another family, so a service that mixed both libraries stays safe.
    provider();
    let rsa = &FIXTURE.rsa;
    let header = b64(json!({ "alg": "HS256", "typ": "at+jwt", "kid": rsa.kid }).to_string());
    let payload = b64(crate::support::user_claims().to_string());
    let input = format!("{header}.{payload}");
    let forged = join(
        &header,
        &payload,
        &b64(hmac_sha256(rsa.public_pem().as_bytes(), input.as_bytes())),
    );
    let theirs: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(rsa.public_jwk()).expect("their JWK");
    let key = DecodingKey::from_jwk(&theirs).unwrap();
    let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    let err = jsonwebtoken::decode::<Value>(&forged, &key, &validation).unwrap_err();
    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::InvalidKeyFormat
    );
    crate::support::check(&forged, "algorithm_not_allowed");
}
