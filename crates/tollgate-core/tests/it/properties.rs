//! Properties: no input panics the validator or the JWKS import, every
//! single-bit change to a good token is refused, and minting then
//! validating round-trips any claim values the minter accepts.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tollgate_core::claims::{Minter, UserGrant};
use tollgate_core::keys::{Algorithm, Jwks, ManagedKey, VerifyingKeys};
use tollgate_core::validate::{Expect, ValidationPolicy, Validator};

use crate::support::{AUDIENCE, FIXTURE, ISSUER, NOW, Revoked, b64, user_claims};

fn validate(token: &str) -> Result<tollgate_core::Claims, tollgate_core::Error> {
    FIXTURE
        .validator
        .validate(token, Expect::Any, NOW, &Revoked::standard())
}

/// Member names that reach interesting code, plus random ones.
fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "alg", "kid", "typ", "crit", "jku", "x5u", "jwk", "x5c", "cty", "zip", "enc", "b64",
            "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "token_type",
            "sid", "email", "roles", "plan", "permissions",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z_]{0,6}",
        1 => any::<String>(),
    ]
}

/// Scalar values biased towards ones the parsers compare against.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (NOW - 100..NOW + 100).prop_map(Value::from),
        prop::sample::select(vec![
            "EdDSA", "ES256", "RS256", "HS256", "none", "ed-1", "ec-1", "rsa-1", "hs-1", "at+jwt",
            "access", "service", ISSUER, AUDIENCE, "",
        ])
        .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((member_name(), inner), 0..10)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((member_name(), json_value()), 0..16)
        .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(token in any::<String>()) {
        let _ = validate(&token);
    }

    #[test]
    fn arbitrary_dotted_bytes_never_panic(parts in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..6)) {
        let token = parts.iter().map(b64).collect::<Vec<_>>().join(".");
        prop_assert!(validate(&token).is_err());
    }

    #[test]
    fn three_segments_of_arbitrary_json_never_panic_nor_pass(
        header in json_object(),
        claims in json_object(),
        signature in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let token = format!("{}.{}.{}", b64(header.to_string()), b64(claims.to_string()), b64(&signature));
        // Nobody holds the keys, so nothing random can pass.
        prop_assert!(validate(&token).is_err());
    }

    #[test]
    fn correctly_signed_arbitrary_claims_never_panic(claims in json_object(), extra in json_object()) {
        // Signed by a trusted key, so the claims parser itself is exercised.
        let mut merged = user_claims();
        for (name, value) in claims.as_object().unwrap().iter().chain(extra.as_object().unwrap()) {
            merged[name] = value.clone();
        }
        let _ = validate(&FIXTURE.ed.token(&merged));
        let _ = validate(&FIXTURE.hs.token(&claims));
        // The compact claims reader and serde_json agree: the same claims
        // with one space of JSON whitespace (which only serde_json reads)
        // give exactly the same outcome.
        let compact = merged.to_string();
        let spaced = compact.replacen('{', "{ ", 1);
        let header = FIXTURE.hs.header().to_string();
        prop_assert_eq!(
            validate(&FIXTURE.hs.token_raw(header.as_bytes(), compact.as_bytes())),
            validate(&FIXTURE.hs.token_raw(header.as_bytes(), spaced.as_bytes()))
        );
    }

    #[test]
    fn every_single_bit_flip_is_refused(position in any::<prop::sample::Index>(), bit in 0u8..7) {
        // Bits 0..7 keep the token ASCII; any change to header, payload,
        // signature or a dot must be refused.
        let token = FIXTURE.ed.token(&user_claims());
        let mut bytes = token.into_bytes();
        let at = position.index(bytes.len());
        bytes[at] ^= 1 << bit;
        let flipped = String::from_utf8(bytes).unwrap();
        prop_assert!(validate(&flipped).is_err(), "flip at {} bit {}", at, bit);
    }

    #[test]
    fn jwks_import_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(jwks) = serde_json::from_slice::<Jwks>(&bytes) {
            let _ = VerifyingKeys::from_jwks(&jwks);
        }
    }

    #[test]
    fn jwks_import_never_panics_on_key_shaped_json(keys in prop::collection::vec(jwk_like(), 0..4)) {
        let text = json!({ "keys": keys }).to_string();
        if let Ok(jwks) = serde_json::from_str::<Jwks>(&text) {
            let _ = VerifyingKeys::from_jwks(&jwks);
        }
    }
}

/// JSON objects that look like JWKs: plausible `kty`/`crv`/`alg` and
/// base64url members of plausible and implausible lengths.
fn jwk_like() -> impl Strategy<Value = Value> {
    let b64_member = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| Value::from(b64(b))),
        prop::sample::select(vec![31usize, 32, 33, 64, 65, 128, 255, 256, 257, 384])
            .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n))
            .prop_map(|b| Value::from(b64(b))),
        leaf(),
    ];
    (
        prop::sample::select(vec!["OKP", "EC", "RSA", "oct", "", "okp"]),
        prop::option::of(prop::sample::select(vec![
            "Ed25519", "P-256", "P-384", "X25519", "",
        ])),
        prop::option::of(prop::sample::select(vec![
            "EdDSA", "ES256", "RS256", "HS256", "PS256", "none",
        ])),
        prop::option::of(prop::sample::select(vec!["sig", "enc", ""])),
        prop::option::of("[a-z0-9-]{0,8}"),
        prop::collection::vec(
            (
                prop::sample::select(vec!["x", "y", "n", "e", "d", "k"]),
                b64_member,
            ),
            0..5,
        ),
    )
        .prop_map(|(kty, crv, alg, use_, kid, members)| {
            let mut jwk = json!({ "kty": kty });
            let optional = [
                ("crv", crv.map(str::to_owned)),
                ("alg", alg.map(str::to_owned)),
                ("use", use_.map(str::to_owned)),
                ("kid", kid),
            ];
            for (name, value) in optional {
                if let Some(value) = value {
                    jwk[name] = json!(value);
                }
            }
            for (name, value) in members {
                jwk[name] = value;
            }
            jwk
        })
}

/// Claim text as a user could make it: any Unicode, sometimes empty.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![4 => "[a-zA-Z0-9@.:_-]{1,24}", 1 => any::<String>()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mint_then_validate_round_trips(
        sub in text(),
        sid in text(),
        email in text(),
        plan in text(),
        client_id in text(),
        scope in any::<String>(),
        roles in prop::collection::vec(text(), 0..4),
        permissions in prop::collection::vec(text(), 0..6),
        ttl in 1u64..86_400,
    ) {
        let key = ManagedKey::generate(Algorithm::EdDSA, NOW).unwrap();
        let minter = Minter::new(ISSUER, vec![AUDIENCE.into()], key.signing_key().unwrap()).unwrap();
        let validator = Validator::new(
            ValidationPolicy::new(ISSUER, vec![AUDIENCE.into()]).unwrap(),
            VerifyingKeys::new([key.verifying_key().unwrap()]),
        );
        let grant = UserGrant { sub, sid, email, roles, plan, permissions, client_id, scope };
        match minter.user(grant, NOW, ttl) {
            Ok((token, minted)) => {
                let got = validator.validate(&token, Expect::Access, NOW, &Revoked::default());
                prop_assert_eq!(got, Ok(minted));
            }
            // The minter refuses exactly what the validator would refuse:
            // empty identifiers and control characters.
            Err(err) => prop_assert!(
                matches!(err.code(), "malformed" | "missing_claim" | "token_too_large"),
                "unexpected minting error {:?}", err
            ),
        }
    }
}
