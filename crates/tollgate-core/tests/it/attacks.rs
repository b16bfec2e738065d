//! The SECURITY.md attack catalogue, as tables: one row per attack, each
//! asserting the exact `Error::code()` (or `"ok"` where a decision is
//! pinned). Sections follow SECURITY.md: A algorithms, B where the key comes
//! from, C JOSE structure, D encoding and JSON, E signature primitives,
//! F claim semantics.
//!
//! Every attack token is built from raw bytes in `support` (base64, JSON,
//! aws-lc-rs or HMAC over the exact signing input), never through Tollgate's
//! `Minter`, so a bug shared by minting and validation cannot hide here.

use std::io::ErrorKind;
use std::net::TcpListener;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE};
use serde_json::{Value, json};
use tollgate_core::keys::{Algorithm, Jwk, KeyRing, ManagedKey, VerifyingKey, VerifyingKeys};
use tollgate_core::validate::{Expect, ValidationPolicy, Validator};
use tollgate_core::{Error, MAX_TOKEN_BYTES, Secret};

use crate::support::{
    AUDIENCE, FIXTURE, ISSUER, NOW, Row, TestKey, b64, check, check_table, check_table_with,
    claims_with, claims_without, hmac_sha256, join, row, service_claims, unb64, user_claims,
    validator_for,
};

/// The key's standard header with members added or replaced.
fn header_plus(key: &TestKey, extra: Value) -> Value {
    let mut header = key.header();
    for (name, value) in extra.as_object().expect("object") {
        header[name] = value.clone();
    }
    header
}

/// The key's standard header without one member.
fn header_minus(key: &TestKey, name: &str) -> Value {
    let mut header = key.header();
    header.as_object_mut().expect("object").remove(name);
    header
}

/// A user token whose header has `extra`, correctly signed by `key`.
fn with_header(key: &TestKey, extra: Value) -> String {
    key.token_with(&header_plus(key, extra), &user_claims())
}

/// A token with the given header and claims but an arbitrary signature.
fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    join(
        &b64(header.to_string()),
        &b64(claims.to_string()),
        &b64(signature),
    )
}

/// HS256 over `header.payload` keyed with `secret` (key-confusion attacks).
fn hs256_with(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let h = b64(header.to_string());
    let p = b64(claims.to_string());
    let sig = hmac_sha256(secret, format!("{h}.{p}").as_bytes());
    join(&h, &p, &b64(sig))
}

/// The standard claims, serialised, with one literal replaced (for JSON
/// that `serde_json::Value` cannot hold: duplicates, huge numbers).
fn claims_text_replacing(from: &str, to: &str) -> String {
    let text = user_claims().to_string();
    assert!(text.contains(from), "{from} not in {text}");
    text.replacen(from, to, 1)
}

/// Splits a token into its three segments.
fn segments(token: &str) -> (String, String, String) {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("not three segments");
    };
    (h.to_owned(), p.to_owned(), s.to_owned())
}

/// Flips bit `bit` of byte `at` of a decoded segment and re-encodes it.
fn flip(segment: &str, at: usize, bit: u8) -> String {
    let mut bytes = unb64(segment);
    bytes[at] ^= 1 << bit;
    b64(bytes)
}

// ---------------------------------------------------------------- A ----

#[test]
fn a1_alg_none_in_every_casing() {
    let f = &*FIXTURE;
    let mut rows: Vec<Row> = Vec::new();
    for none in ["none", "None", "NONE", "nOnE"] {
        let header = header_plus(&f.ed, json!({ "alg": none }));
        // `header.payload.`: the signature is empty, refused by shape.
        rows.push(row(
            format!("{none}, empty signature"),
            forged(&header, &user_claims(), b""),
            "malformed",
        ));
        rows.push(row(
            format!("{none}, garbage signature"),
            forged(&header, &user_claims(), b"garbage"),
            "algorithm_not_allowed",
        ));
        rows.push(row(
            format!("{none}, no kid"),
            forged(
                &json!({ "alg": none, "typ": "at+jwt" }),
                &user_claims(),
                b"x",
            ),
            "unknown_key",
        ));
    }
    check_table(&rows);
}

#[test]
fn a2_null_or_stripped_signature() {
    let token = FIXTURE.ed.token(&user_claims());
    let (h, p, _) = segments(&token);
    check_table(&[
        row("header.payload.", format!("{h}.{p}."), "malformed"),
        row("header.payload", format!("{h}.{p}"), "malformed"),
        row("header..signature", format!("{h}..AAAA"), "malformed"),
        row(".payload.signature", format!(".{p}.AAAA"), "malformed"),
    ]);
}

#[test]
fn a3_one_bit_flipped_anywhere_is_refused() {
    let f = &*FIXTURE;
    let mut rows: Vec<Row> = Vec::new();
    for key in [&f.ed, &f.ec, &f.rsa, &f.hs] {
        let token = key.token(&user_claims());
        rows.push(row(format!("{} untouched", key.alg), token.clone(), "ok"));
        let (h, p, s) = segments(&token);
        // Header: "at+jwt" -> "At+jwt" (bit 5 of the 'a'); `typ` matches in
        // any case, so this reaches the signature check.
        let header_text = String::from_utf8(unb64(&h)).unwrap();
        let at = header_text.find("at+jwt").unwrap();
        rows.push(row(
            format!("{} header bit", key.alg),
            join(&flip(&h, at, 5), &p, &s),
            "bad_signature",
        ));
        // Payload: "user-4821" -> "user-4831".
        let payload_text = String::from_utf8(unb64(&p)).unwrap();
        let at = payload_text.find("4821").unwrap() + 2;
        rows.push(row(
            format!("{} payload bit", key.alg),
            join(&h, &flip(&p, at, 0), &s),
            "bad_signature",
        ));
        for at in [0, unb64(&s).len() - 1] {
            rows.push(row(
                format!("{} signature byte {at}", key.alg),
                join(&h, &p, &flip(&s, at, 0)),
                "bad_signature",
            ));
        }
    }
    check_table(&rows);
}

#[test]
fn a4_a5_hmac_keyed_with_the_public_key() {
    let f = &*FIXTURE;
    let mut rows: Vec<Row> = Vec::new();
    for key in [&f.ed, &f.ec, &f.rsa] {
        let pem = key.public_pem();
        let secrets: Vec<(&str, Vec<u8>)> = vec![
            ("PEM", pem.clone().into_bytes()),
            ("PEM with leading newline", format!("\n{pem}").into_bytes()),
            ("PEM with leading space", format!(" {pem}").into_bytes()),
            (
                "PEM without final newline",
                pem.trim_end().as_bytes().to_vec(),
            ),
            ("DER", key.public_spki_der()),
            ("JWK JSON", key.public_jwk().to_string().into_bytes()),
            // For RSA this is the modulus, which A5 (`sig2n`) recovers from
            // two tokens: public-key secrecy is not the control, the
            // key-bound algorithm is.
            ("raw public key", key.public_raw()),
        ];
        for (what, secret) in secrets {
            let header = json!({ "alg": "HS256", "kid": key.kid, "typ": "at+jwt" });
            rows.push(row(
                format!("HS256 with {} {what}", key.alg),
                hs256_with(&header, &user_claims(), &secret),
                "algorithm_not_allowed",
            ));
        }
        // Without a kid there is no key to confuse, and no loop over keys.
        rows.push(row(
            format!("HS256 with {} PEM, no kid", key.alg),
            hs256_with(
                &json!({ "alg": "HS256", "typ": "at+jwt" }),
                &user_claims(),
                pem.as_bytes(),
            ),
            "unknown_key",
        ));
        // Naming the real HMAC key with a public key as secret: wrong MAC.
        rows.push(row(
            format!("HS256 kid hs-1 keyed with {} PEM", key.alg),
            hs256_with(&f.hs.header(), &user_claims(), pem.as_bytes()),
            "bad_signature",
        ));
    }
    check_table(&rows);
}

#[test]
fn a6_key_used_with_another_algorithm() {
    let f = &*FIXTURE;
    let claims = user_claims();
    let p384 = EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
    let es384 = {
        let header = header_plus(&f.ec, json!({ "alg": "ES384" }));
        let h = b64(header.to_string());
        let p = b64(claims.to_string());
        let sig = p384
            .sign(&SystemRandom::new(), format!("{h}.{p}").as_bytes())
            .unwrap();
        join(&h, &p, &b64(sig))
    };
    let ps256 = {
        let header = header_plus(&f.rsa, json!({ "alg": "PS256" }));
        let h = b64(header.to_string());
        let p = b64(claims.to_string());
        let sig = f.rsa.sign_pss(format!("{h}.{p}").as_bytes());
        join(&h, &p, &b64(sig))
    };
    check_table(&[
        row("ES384 on the ES256 key", es384, "algorithm_not_allowed"),
        row("PS256 on the RS256 key", ps256, "algorithm_not_allowed"),
        row(
            // A9: Tollgate emits and accepts only the polymorphic `EdDSA`;
            // the fully-specified `Ed25519` is not mapped to it.
            "Ed25519 on the EdDSA key",
            with_header(&f.ed, json!({ "alg": "Ed25519" })),
            "algorithm_not_allowed",
        ),
        row(
            "RS256 header naming the EdDSA key, RSA-signed",
            f.rsa
                .token_with(&header_plus(&f.ed, json!({ "alg": "RS256" })), &claims),
            "algorithm_not_allowed",
        ),
        row(
            "EdDSA header naming the HS256 key",
            f.ed.token_with(&header_plus(&f.hs, json!({ "alg": "EdDSA" })), &claims),
            "algorithm_not_allowed",
        ),
        row(
            "ES256 header naming the RS256 key",
            f.ec.token_with(&header_plus(&f.rsa, json!({ "alg": "ES256" })), &claims),
            "algorithm_not_allowed",
        ),
    ]);
}

#[test]
fn a7_algorithm_outside_the_allowlist_or_malformed() {
    let f = &*FIXTURE;
    let mut rows: Vec<Row> = Vec::new();
    for alg in [
        json!("HS256"),
        json!("ES512"),
        json!("RS512"),
        json!("foo"),
        json!(""),
        json!(1),
        json!(["EdDSA"]),
        json!(null),
        json!({ "alg": "EdDSA" }),
        json!(true),
    ] {
        rows.push(row(
            format!("alg {alg}"),
            with_header(&f.ed, json!({ "alg": alg })),
            "algorithm_not_allowed",
        ));
    }
    rows.push(row(
        "missing alg",
        f.ed.token_with(&header_minus(&f.ed, "alg"), &user_claims()),
        "algorithm_not_allowed",
    ));
    check_table(&rows);

    // RS256 not configured: a correctly signed RS256 token is refused.
    let no_rsa = validator_for(
        &[&f.ed, &f.ec, &f.rsa],
        &[Algorithm::EdDSA, Algorithm::ES256],
    );
    check_table_with(
        &no_rsa,
        Expect::Access,
        &[
            row(
                "RS256 not allowed",
                f.rsa.token(&user_claims()),
                "algorithm_not_allowed",
            ),
            row("EdDSA allowed", f.ed.token(&user_claims()), "ok"),
        ],
    );
}

#[test]
fn a8_alg_string_tricks() {
    let f = &*FIXTURE;
    let claims = user_claims().to_string();
    let raw = |alg_json: &str| {
        let header = format!(r#"{{"alg":{alg_json},"kid":"ec-1","typ":"at+jwt"}}"#);
        f.ec.token_raw(header.as_bytes(), claims.as_bytes())
    };
    check_table(&[
        // Decision: JSON escapes are decoded before the comparison, so
        // "\u0045S256" *is* "ES256" and is accepted. The comparison is on
        // the decoded value, which is what every JSON parser sees.
        row(r#""\u0045S256" (escaped E)"#, raw(r#""\u0045S256""#), "ok"),
        row("ES256", raw(r#""ES256""#), "ok"),
        row(
            "trailing space",
            raw(r#""ES256 ""#),
            "algorithm_not_allowed",
        ),
        row("leading space", raw(r#"" ES256""#), "algorithm_not_allowed"),
        row("lower case", raw(r#""es256""#), "algorithm_not_allowed"),
        row(
            "Cyrillic Е homoglyph",
            raw("\"\u{415}S256\""),
            "algorithm_not_allowed",
        ),
        row(
            "fullwidth",
            raw("\"\u{ff25}\u{ff33}256\""),
            "algorithm_not_allowed",
        ),
        row(
            "trailing NUL",
            raw(r#""ES256\u0000""#),
            "algorithm_not_allowed",
        ),
        row(
            "zero-width joiner",
            raw("\"ES\u{200d}256\""),
            "algorithm_not_allowed",
        ),
    ]);
}

#[test]
fn a10_hs256_is_refused_unless_configured_and_needs_a_long_secret() {
    let f = &*FIXTURE;
    let token = f.hs.token(&user_claims());
    check(&token, "ok");
    // The default policy is asymmetric-only (RFC 9068 §4).
    let policy = ValidationPolicy::new(ISSUER, vec![AUDIENCE.into()]).unwrap();
    assert!(!policy.algorithms().contains(&Algorithm::HS256));
    let default = Validator::new(
        policy,
        VerifyingKeys::new([f.hs.verifying_key(), f.ed.verifying_key()]),
    );
    check_table_with(
        &default,
        Expect::Access,
        &[
            row(
                "HS256 under the default policy",
                token,
                "algorithm_not_allowed",
            ),
            row(
                "EdDSA under the default policy",
                f.ed.token(&user_claims()),
                "ok",
            ),
        ],
    );
    for short in [&b""[..], b"secret", &[7u8; 31]] {
        let err = VerifyingKey::from_hmac_secret("k", &Secret::new(short)).unwrap_err();
        assert_eq!(err.code(), "invalid_key", "{} bytes", short.len());
        let err = ManagedKey::from_hmac_secret(&Secret::new(short), NOW).unwrap_err();
        assert_eq!(err.code(), "invalid_key", "{} bytes", short.len());
    }
}

#[test]
fn a11_blank_hmac_key() {
    let f = &*FIXTURE;
    check_table(&[
        row(
            "HMAC with an empty key",
            hs256_with(&f.hs.header(), &user_claims(), b""),
            "bad_signature",
        ),
        row(
            "HMAC with another 32-byte key",
            hs256_with(&f.hs.header(), &user_claims(), &[0u8; 32]),
            "bad_signature",
        ),
    ]);
    // The key factory never makes an empty HMAC key.
    assert_eq!(
        VerifyingKey::from_hmac_secret("k", &Secret::new(b"")).unwrap_err(),
        Error::InvalidKey("the HMAC secret is empty")
    );
}

// ---------------------------------------------------------------- B ----

#[test]
fn b12_embedded_jwk_header() {
    let f = &*FIXTURE;
    let attacker_jwk = f.attacker.public_jwk();
    let claims = user_claims();
    check_table(&[
        row(
            "jwk of the attacker, attacker kid",
            f.attacker.token_with(
                &header_plus(&f.attacker, json!({ "jwk": attacker_jwk })),
                &claims,
            ),
            "header_not_allowed",
        ),
        row(
            "jwk of the attacker, our kid",
            f.attacker
                .token_with(&header_plus(&f.ed, json!({ "jwk": attacker_jwk })), &claims),
            "header_not_allowed",
        ),
        row(
            "jwk of the attacker, no kid",
            f.attacker.token_with(
                &json!({ "alg": "EdDSA", "typ": "at+jwt", "jwk": attacker_jwk }),
                &claims,
            ),
            "header_not_allowed",
        ),
        row(
            "signed by the attacker under our kid, no jwk",
            f.attacker.token_with(&f.ed.header(), &claims),
            "bad_signature",
        ),
    ]);
}

#[test]
fn b13_b14_jku_and_x5u_are_refused_without_any_connection() {
    let f = &*FIXTURE;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut rows: Vec<Row> = Vec::new();
    for member in ["jku", "x5u"] {
        for host in ["127.0.0.1", "localhost"] {
            let url = format!("http://{host}:{port}/.well-known/jwks.json");
            rows.push(row(
                format!("{member} at {host}, attacker key"),
                f.attacker.token_with(
                    &header_plus(&f.attacker, json!({ member: url })),
                    &user_claims(),
                ),
                "header_not_allowed",
            ));
            rows.push(row(
                format!("{member} at {host}, our kid and key"),
                with_header(&f.ed, json!({ member: url })),
                "header_not_allowed",
            ));
        }
    }
    check_table(&rows);
    // The core does no I/O: nothing ever dialled the listener.
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the listener saw a connection: {other:?}"),
    }
}

#[test]
fn b15_embedded_certificates() {
    let f = &*FIXTURE;
    // The header is refused by member name, before its content is read, so
    // any certificate bytes do; a self-signed one is made in the Python
    // tests with `cryptography`.
    let cert = base64::engine::general_purpose::STANDARD.encode(f.attacker.public_spki_der());
    let thumb = b64([0x5au8; 20]);
    let thumb256 = b64([0x5au8; 32]);
    check_table(&[
        row(
            "x5c chain of the attacker",
            f.attacker.token_with(
                &header_plus(&f.attacker, json!({ "x5c": [cert] })),
                &user_claims(),
            ),
            "header_not_allowed",
        ),
        row(
            "x5c with our kid",
            with_header(&f.ed, json!({ "x5c": [cert] })),
            "header_not_allowed",
        ),
        row(
            "x5t",
            with_header(&f.ed, json!({ "x5t": thumb })),
            "header_not_allowed",
        ),
        row(
            "x5t#S256",
            with_header(&f.ed, json!({ "x5t#S256": thumb256 })),
            "header_not_allowed",
        ),
    ]);
}

#[test]
fn b16_kid_injection() {
    let f = &*FIXTURE;
    let mut rows: Vec<Row> = Vec::new();
    for kid in [
        "../../../../dev/null",
        "../../../../../../etc/passwd",
        "/dev/null",
        "ed-1/../ed-1",
        "' OR '1'='1",
        "ed-1' --",
        "1; DROP TABLE keys; --",
        "ed-1\u{0}",
        "\u{0}",
        "ed-1 ",
        " ed-1",
        "ED-1",
        "ed\u{2011}1",
        "\u{202e}1-de",
        "ed-1\u{202e}",
        "$(id)",
        "http://127.0.0.1/key",
        "",
    ] {
        rows.push(row(
            format!("kid {kid:?}, attacker key"),
            f.attacker
                .token_with(&header_plus(&f.ed, json!({ "kid": kid })), &user_claims()),
            "unknown_key",
        ));
    }
    // Long kids: under the size cap they are simply unknown; over it the
    // token is refused before anything is decoded.
    rows.push(row(
        "5000-byte kid",
        with_header(&f.ed, json!({ "kid": "k".repeat(5000) })),
        "unknown_key",
    ));
    rows.push(row(
        "10 KB kid",
        with_header(&f.ed, json!({ "kid": "k".repeat(10 * 1024) })),
        "token_too_large",
    ));
    for kid in [
        json!(1),
        json!(null),
        json!(["ed-1"]),
        json!({ "kid": "ed-1" }),
    ] {
        rows.push(row(
            format!("kid {kid}"),
            with_header(&f.ed, json!({ "kid": kid })),
            "malformed",
        ));
    }
    // JSON escapes decode first, as for `alg`: "\u0065d-1" is "ed-1".
    let header = r#"{"alg":"EdDSA","kid":"\u0065d-1","typ":"at+jwt"}"#;
    rows.push(row(
        "escaped kid naming our key",
        f.ed.token_raw(header.as_bytes(), user_claims().to_string().as_bytes()),
        "ok",
    ));
    check_table(&rows);
}

#[test]
fn b18_no_kid_with_several_keys() {
    let f = &*FIXTURE;
    assert!(f.validator.keys().len() > 1);
    let mut rows: Vec<Row> = Vec::new();
    for key in [&f.ed, &f.ec, &f.rsa, &f.hs] {
        rows.push(row(
            format!("{} without kid", key.alg),
            key.token_with(&header_minus(key, "kid"), &user_claims()),
            "unknown_key",
        ));
    }
    check_table(&rows);
}

// ---------------------------------------------------------------- C ----

#[test]
fn c19_crit() {
    let f = &*FIXTURE;
    check_table(&[
        row(
            "crit [x] with x",
            with_header(&f.ed, json!({ "crit": ["x"], "x": 1 })),
            "unsupported_critical_header",
        ),
        row(
            "crit [exp]",
            with_header(&f.ed, json!({ "crit": ["exp"] })),
            "unsupported_critical_header",
        ),
        row(
            "crit []",
            with_header(&f.ed, json!({ "crit": [] })),
            "unsupported_critical_header",
        ),
        row(
            "crit \"x\"",
            with_header(&f.ed, json!({ "crit": "x" })),
            "unsupported_critical_header",
        ),
        row(
            "crit null",
            with_header(&f.ed, json!({ "crit": null })),
            "unsupported_critical_header",
        ),
        row(
            "crit [b64]",
            with_header(&f.ed, json!({ "crit": ["b64"], "b64": false })),
            "header_not_allowed",
        ),
    ]);
}

#[test]
fn c20_explicit_typing() {
    let f = &*FIXTURE;
    let mut rows: Vec<Row> = vec![
        // Decision: media types compare case-insensitively (RFC 7515
        // §4.1.9, RFC 9068 §2.1), and the `application/` prefix may be
        // present, so these are accepted.
        row(
            "typ AT+JWT",
            with_header(&f.ed, json!({ "typ": "AT+JWT" })),
            "ok",
        ),
        row(
            "typ application/at+jwt",
            with_header(&f.ed, json!({ "typ": "application/at+jwt" })),
            "ok",
        ),
        row(
            "typ absent",
            f.ed.token_with(&header_minus(&f.ed, "typ"), &user_claims()),
            "wrong_typ",
        ),
        row(
            "typ 1",
            with_header(&f.ed, json!({ "typ": 1 })),
            "malformed",
        ),
        row(
            "typ null",
            with_header(&f.ed, json!({ "typ": null })),
            "malformed",
        ),
    ];
    // Correctly signed tokens of other kinds are not access tokens.
    for typ in [
        "JWT",
        "jwt",
        "at+jwt ",
        "at+jwt\u{0}",
        "dpop+jwt",
        "logout+jwt",
        "secevent+jwt",
        "client-authentication+jwt",
        "application/jwt",
        "id_token+jwt",
        "",
    ] {
        rows.push(row(
            format!("typ {typ:?}"),
            with_header(&f.ed, json!({ "typ": typ })),
            "wrong_typ",
        ));
    }
    check_table(&rows);
}

#[test]
fn c21_nested_jwt() {
    let f = &*FIXTURE;
    let inner = f.ed.token(&user_claims());
    check_table(&[
        row(
            "cty JWT",
            with_header(&f.ed, json!({ "cty": "JWT" })),
            "header_not_allowed",
        ),
        row(
            "cty at+jwt",
            with_header(&f.ed, json!({ "cty": "at+jwt" })),
            "header_not_allowed",
        ),
        // A signed JWT as the payload (a JSON string, not a claims object).
        row(
            "signed JWT inside the payload",
            f.ed.token_raw(
                f.ed.header().to_string().as_bytes(),
                json!(inner).to_string().as_bytes(),
            ),
            "malformed",
        ),
        row(
            "compact JWT as raw payload bytes",
            f.ed.token_raw(f.ed.header().to_string().as_bytes(), inner.as_bytes()),
            "malformed",
        ),
    ]);
}

#[test]
fn c22_c24_c25_jwe_shapes() {
    let f = &*FIXTURE;
    let jwe_header = |extra: Value| {
        let mut header = json!({ "alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "ed-1" });
        for (k, v) in extra.as_object().unwrap() {
            header[k] = v.clone();
        }
        b64(header.to_string())
    };
    let jwe = |header: String| {
        format!(
            "{header}.{}.{}.{}.{}",
            b64([1u8; 256]),
            b64([2u8; 12]),
            b64([3u8; 64]),
            b64([4u8; 16])
        )
    };
    check_table(&[
        row("5-segment JWE", jwe(jwe_header(json!({}))), "malformed"),
        row(
            "PBES2 JWE with p2c 2^31-1",
            jwe(jwe_header(
                json!({ "alg": "PBES2-HS256+A128KW", "p2c": 2_147_483_647u32, "p2s": b64([9u8; 16]) }),
            )),
            "malformed",
        ),
        row(
            "JWE with zip DEF",
            jwe(jwe_header(json!({ "zip": "DEF" }))),
            "malformed",
        ),
        row(
            "3 segments, header with p2c",
            with_header(
                &f.ed,
                json!({ "p2c": 2_147_483_647u32, "p2s": b64([9u8; 16]) }),
            ),
            "header_not_allowed",
        ),
        row(
            "3 segments, zip DEF",
            with_header(&f.ed, json!({ "zip": "DEF" })),
            "header_not_allowed",
        ),
        row(
            "3 segments, enc A256GCM",
            with_header(&f.ed, json!({ "enc": "A256GCM" })),
            "header_not_allowed",
        ),
        row(
            "3 segments, epk",
            with_header(&f.ed, json!({ "epk": f.attacker.public_jwk() })),
            "header_not_allowed",
        ),
    ]);
}

#[test]
fn c23_serialization_confusion() {
    let f = &*FIXTURE;
    let token = f.ed.token(&user_claims());
    let (h, p, s) = segments(&token);
    let flattened = json!({ "protected": h, "payload": p, "signature": s }).to_string();
    let general =
        json!({ "payload": p, "signatures": [{ "protected": h, "signature": s }] }).to_string();
    // A compact token whose payload is itself a JWS JSON serialization:
    // correctly signed, but it carries no claims.
    let polyglot =
        f.ed.token_raw(f.ed.header().to_string().as_bytes(), general.as_bytes());
    check_table(&[
        row("flattened JSON serialization", flattened, "malformed"),
        row("general JSON serialization", general, "malformed"),
        row("four segments", format!("{token}.{s}"), "malformed"),
        row("a.b.c.d", "a.b.c.d", "malformed"),
        row("leading space", format!(" {token}"), "malformed"),
        row("trailing space", format!("{token} "), "malformed"),
        row("trailing newline", format!("{token}\n"), "malformed"),
        row("leading tab", format!("\t{token}"), "malformed"),
        row("Bearer prefix", format!("Bearer {token}"), "malformed"),
        row("quoted", format!("\"{token}\""), "malformed"),
        row("compact token carrying JWS JSON", polyglot, "missing_claim"),
        row("empty", "", "malformed"),
        row("dots only", "..", "malformed"),
    ]);
}

// ---------------------------------------------------------------- D ----

#[test]
fn d27_duplicate_members() {
    let f = &*FIXTURE;
    let claims = user_claims().to_string();
    let header_rows = [
        r#"{"alg":"EdDSA","alg":"none","kid":"ed-1","typ":"at+jwt"}"#,
        r#"{"alg":"none","alg":"EdDSA","kid":"ed-1","typ":"at+jwt"}"#,
        r#"{"alg":"EdDSA","kid":"attacker","kid":"ed-1","typ":"at+jwt"}"#,
        r#"{"alg":"EdDSA","kid":"ed-1","typ":"JWT","typ":"at+jwt"}"#,
        r#"{"alg":"EdDSA","kid":"ed-1","typ":"at+jwt","x":1,"x":2}"#,
        r#"{"alg":"EdDSA","kid":"ed-1","typ":"at+jwt","crit":[],"crit":[]}"#,
    ];
    let mut rows: Vec<Row> = header_rows
        .iter()
        .map(|h| {
            row(
                format!("header {h}"),
                f.ed.token_raw(h.as_bytes(), claims.as_bytes()),
                "malformed",
            )
        })
        .collect();
    let sub = r#""sub":"user-4821""#;
    let exp = format!(r#""exp":{}"#, NOW + 600);
    let aud = r#""aud":["api","chat"]"#;
    for (name, from, to) in [
        (
            "sub twice",
            sub.to_owned(),
            format!(r#"{sub},"sub":"admin""#),
        ),
        (
            "sub twice, admin first",
            sub.to_owned(),
            format!(r#""sub":"admin",{sub}"#),
        ),
        (
            "exp twice",
            exp.clone(),
            format!(r#"{exp},"exp":{}"#, NOW + 999_999),
        ),
        (
            "aud twice",
            aud.to_owned(),
            format!(r#"{aud},"aud":"other""#),
        ),
        (
            "roles twice",
            r#""roles":["#.to_owned(),
            r#""roles":["admin"],"roles":["#.to_owned(),
        ),
        (
            "token_type twice",
            r#""token_type":"access""#.to_owned(),
            r#""token_type":"service","token_type":"access""#.to_owned(),
        ),
    ] {
        let payload = claims_text_replacing(&from, &to);
        rows.push(row(
            name,
            f.ed.token_raw(f.ed.header().to_string().as_bytes(), payload.as_bytes()),
            "malformed",
        ));
    }
    check_table(&rows);
}

/// The base64url alphabet, for trailing-bit tricks.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The segment with a non-zero bit in its unused trailing bits, or `None`
/// when it has none (a multiple of 3 bytes).
fn with_trailing_bit(segment: &str) -> Option<String> {
    if segment.len().is_multiple_of(4) {
        return None;
    }
    let mut bytes = segment.as_bytes().to_vec();
    let last = bytes.len() - 1;
    let value = ALPHABET.iter().position(|c| *c == bytes[last]).unwrap();
    bytes[last] = ALPHABET[value | 1];
    Some(String::from_utf8(bytes).unwrap())
}

/// `=` padding as a standard encoder would add it (at least one `=`).
fn padded(segment: &str) -> String {
    let pad = match segment.len() % 4 {
        2 => "==",
        3 => "=",
        _ => "====",
    };
    format!("{segment}{pad}")
}

#[test]
fn d28_non_canonical_base64url() {
    let f = &*FIXTURE;
    let key = &f.ed;
    let header_json = key.header().to_string();
    // Make the header a length with trailing bits (JSON allows a space).
    let header_json = if header_json.len().is_multiple_of(3) {
        format!("{header_json} ")
    } else {
        header_json
    };
    let h = b64(&header_json);
    // Claims whose encoding holds `-` or `_`, so the standard alphabet
    // differs from the URL one.
    let (claims, p) = (0..64)
        .map(|i| {
            let claims = claims_with("email", json!(format!("ada{}@example.com", "?".repeat(i))));
            let p = b64(claims.to_string());
            (claims, p)
        })
        .find(|(claims, p)| p.len() % 4 != 0 && STANDARD_NO_PAD.encode(claims.to_string()) != *p)
        .unwrap();
    let p_standard = STANDARD_NO_PAD.encode(claims.to_string());
    let valid = key.token_segments(&h, &p);
    let (_, _, s) = segments(&valid);
    // A signature whose encoding holds `-` or `_` (Ed25519 is
    // deterministic, so vary the claims until one does).
    let (sp, ss) = (0..200)
        .map(|i| {
            let p = b64(claims_with("jti", json!(format!("jti-{i}"))).to_string());
            let (_, _, s) = segments(&key.token_segments(&h, &p));
            (p, s)
        })
        .find(|(_, s)| s.contains(['-', '_']))
        .unwrap();
    let s_standard = ss.replace('-', "+").replace('_', "/");
    let mut rows: Vec<Row> = vec![
        row("canonical", valid.clone(), "ok"),
        // Header and payload variants are signed over their exact bytes,
        // so only the decoder can refuse them.
        row(
            "padded header",
            key.token_segments(&padded(&h), &p),
            "malformed",
        ),
        row(
            "padded payload",
            key.token_segments(&h, &padded(&p)),
            "malformed",
        ),
        row("padded signature", join(&h, &p, &padded(&s)), "malformed"),
        row(
            "standard-alphabet payload",
            key.token_segments(&h, &p_standard),
            "malformed",
        ),
        row(
            "standard-alphabet signature",
            join(&h, &sp, &s_standard),
            "malformed",
        ),
        row(
            "URL-safe padded engine output",
            key.token_segments(&URL_SAFE.encode(&header_json), &p),
            "malformed",
        ),
        row(
            "newline inside header",
            key.token_segments(&format!("{}\n{}", &h[..8], &h[8..]), &p),
            "malformed",
        ),
        row(
            "newline inside payload",
            key.token_segments(&h, &format!("{}\n{}", &p[..8], &p[8..])),
            "malformed",
        ),
        row(
            "newline inside signature",
            join(&h, &p, &format!("{}\n{}", &s[..8], &s[8..])),
            "malformed",
        ),
        row(
            "space inside payload",
            key.token_segments(&h, &format!("{} {}", &p[..8], &p[8..])),
            "malformed",
        ),
        row(
            "percent-encoded payload",
            key.token_segments(&h, &p.replacen(&p[..1], "%41", 1)),
            "malformed",
        ),
    ];
    rows.push(row(
        "trailing bits in header",
        key.token_segments(&with_trailing_bit(&h).unwrap(), &p),
        "malformed",
    ));
    rows.push(row(
        "trailing bits in payload",
        key.token_segments(&h, &with_trailing_bit(&p).unwrap()),
        "malformed",
    ));
    rows.push(row(
        "trailing bits in signature",
        join(&h, &p, &with_trailing_bit(&s).unwrap()),
        "malformed",
    ));
    check_table(&rows);
}

#[test]
fn d29_claim_type_confusion_and_big_numbers() {
    let f = &*FIXTURE;
    let header = f.ed.header().to_string();
    let mut rows: Vec<Row> = Vec::new();
    for (name, value) in [("exp", NOW + 600), ("iat", NOW - 60), ("nbf", NOW - 60)] {
        let literal = format!(r#""{name}":{value}"#);
        for bad in [
            "\"9999999999\"",
            "-1",
            "1.5",
            "1e400",
            "1e3",
            "1760000600.0",
            "18446744073709551616",
            "true",
            "null",
            "[]",
            "{}",
            "[1760000600]",
        ] {
            let payload = claims_text_replacing(&literal, &format!(r#""{name}":{bad}"#));
            rows.push(row(
                format!("{name} = {bad}"),
                f.ed.token_raw(header.as_bytes(), payload.as_bytes()),
                "malformed",
            ));
        }
    }
    rows.push(row(
        "exp absent",
        f.ed.token(&claims_without("exp")),
        "missing_claim",
    ));
    rows.push(row(
        "iat absent",
        f.ed.token(&claims_without("iat")),
        "missing_claim",
    ));
    // nbf is optional, and checked when present.
    rows.push(row("nbf absent", f.ed.token(&claims_without("nbf")), "ok"));
    rows.push(row(
        "nbf in the future",
        f.ed.token(&claims_with("nbf", json!(NOW + 3600))),
        "not_yet_valid",
    ));
    rows.push(row(
        "exp = u64::MAX",
        f.ed.token(&claims_with("exp", json!(u64::MAX))),
        "lifetime_too_long",
    ));
    rows.push(row(
        "exp before iat",
        f.ed.token(&claims_with("exp", json!(NOW - 61))),
        "malformed",
    ));
    check_table(&rows);
}

#[test]
fn d30_audience_shapes() {
    let f = &*FIXTURE;
    let aud = |value: Value| f.ed.token(&claims_with("aud", value));
    check_table(&[
        row("string", aud(json!("api")), "ok"),
        row("[ours]", aud(json!(["api"])), "ok"),
        // Decision: an array containing ours is accepted, whatever else it
        // holds (RFC 7519 §4.1.3).
        row("[ours, other]", aud(json!(["api", "other"])), "ok"),
        row("[other, ours]", aud(json!(["other", "api"])), "ok"),
        row("[]", aud(json!([])), "wrong_audience"),
        row("[other]", aud(json!(["other"])), "wrong_audience"),
        row("other", aud(json!("other")), "wrong_audience"),
        row("case", aud(json!("Api")), "wrong_audience"),
        row("trailing slash", aud(json!("api/")), "wrong_audience"),
        row("trailing space", aud(json!("api ")), "wrong_audience"),
        row("empty string", aud(json!("")), "wrong_audience"),
        row("object", aud(json!({ "api": true })), "malformed"),
        row("number", aud(json!(1)), "malformed"),
        row("[1]", aud(json!([1])), "malformed"),
        row("[[ours]]", aud(json!([["api"]])), "malformed"),
        row("null", aud(json!(null)), "malformed"),
        row(
            "absent",
            f.ed.token(&claims_without("aud")),
            "missing_claim",
        ),
    ]);
}

#[test]
fn d31_issuer_is_exact() {
    let f = &*FIXTURE;
    let iss = |value: &str| f.ed.token(&claims_with("iss", json!(value)));
    check_table(&[
        row("exact", iss(ISSUER), "ok"),
        row(
            "trailing slash",
            iss("https://auth.tollgate.test/"),
            "wrong_issuer",
        ),
        row(
            "upper-case host",
            iss("https://AUTH.tollgate.test"),
            "wrong_issuer",
        ),
        row(
            "upper-case scheme",
            iss("HTTPS://auth.tollgate.test"),
            "wrong_issuer",
        ),
        row("http", iss("http://auth.tollgate.test"), "wrong_issuer"),
        row(
            "Cyrillic е look-alike",
            iss("https://auth.tollgate.t\u{435}st"),
            "wrong_issuer",
        ),
        row(
            "fullwidth dot",
            iss("https://auth\u{ff0e}tollgate.test"),
            "wrong_issuer",
        ),
        row(
            "default port",
            iss("https://auth.tollgate.test:443"),
            "wrong_issuer",
        ),
        row(
            "trailing space",
            iss("https://auth.tollgate.test "),
            "wrong_issuer",
        ),
        row(
            "prefix",
            iss("https://auth.tollgate.test.evil"),
            "wrong_issuer",
        ),
        row("empty", iss(""), "missing_claim"),
        row(
            "absent",
            f.ed.token(&claims_without("iss")),
            "missing_claim",
        ),
    ]);
}

#[test]
fn d32_non_utf8_and_unusual_unicode() {
    let f = &*FIXTURE;
    let header = f.ed.header().to_string();
    let text = user_claims().to_string();
    let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let utf16_bom: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(utf16.iter().copied())
        .collect();
    let utf32: Vec<u8> = text
        .chars()
        .flat_map(|c| (c as u32).to_le_bytes())
        .collect();
    let bom: Vec<u8> = [0xef, 0xbb, 0xbf].into_iter().chain(text.bytes()).collect();
    let invalid =
        claims_text_replacing("user-4821", "user-48\u{fffd}").replace('\u{fffd}', "\u{1}");
    let mut invalid = invalid.into_bytes();
    let at = invalid.iter().position(|b| *b == 1).unwrap();
    invalid[at] = 0xff;
    let overlong = {
        // "/" as the overlong two-byte sequence C0 AF.
        let mut bytes = claims_text_replacing("user-4821", "user-4821-X").into_bytes();
        let at = bytes.iter().position(|b| *b == b'X').unwrap();
        bytes.splice(at..at + 1, [0xc0, 0xaf]);
        bytes
    };
    let raw = |payload: &[u8]| f.ed.token_raw(header.as_bytes(), payload);
    let escaped = |from: &str, to: &str| raw(claims_text_replacing(from, to).as_bytes());
    check_table(&[
        row("UTF-16LE claims", raw(&utf16), "malformed"),
        row("UTF-16LE claims with BOM", raw(&utf16_bom), "malformed"),
        row("UTF-32LE claims", raw(&utf32), "malformed"),
        row("UTF-8 BOM before claims", raw(&bom), "malformed"),
        row("invalid UTF-8 in sub", raw(&invalid), "malformed"),
        row("overlong UTF-8 in sub", raw(&overlong), "malformed"),
        // Decision: lone surrogates are refused (serde_json does), paired
        // ones are ordinary characters.
        row(
            "lone surrogate in sub",
            escaped("user-4821", "user-\\ud800"),
            "malformed",
        ),
        row(
            "lone low surrogate in email",
            escaped("ada@", "ada\\udc00@"),
            "malformed",
        ),
        row(
            "surrogate pair in email",
            escaped("ada@", "ada\\ud83d\\ude00@"),
            "ok",
        ),
        row(
            "NUL in sub",
            escaped("user-4821", "user\\u00004821"),
            "malformed",
        ),
        row("NUL in sid", escaped("sid-55aa", "sid\\u0000"), "malformed"),
        row("NUL in email", escaped("ada@", "ada\\u0000@"), "malformed"),
        row(
            "newline in a role",
            escaped("\"beta\"", "\"beta\\nadmin\""),
            "malformed",
        ),
        row(
            "escape character in plan",
            escaped("\"pro\"", "\"pro\\u001b[31m\""),
            "malformed",
        ),
        row(
            "NUL in a permission",
            escaped("tool:code", "tool:code\\u0000"),
            "malformed",
        ),
        row(
            "control character in scope",
            escaped("openid profile", "openid\\rprofile"),
            "malformed",
        ),
        row(
            "NUL in client_id",
            escaped("\"web\"", "\"w\\u0000eb\""),
            "malformed",
        ),
        row(
            "U+202E in sub",
            escaped("user-4821", "user-\\u202e1284"),
            "ok",
        ),
        row(
            "invalid UTF-8 in header",
            f.ed.token_raw(
                b"{\"alg\":\"EdDSA\",\"kid\":\"ed-1\xff\",\"typ\":\"at+jwt\"}",
                text.as_bytes(),
            ),
            "malformed",
        ),
        row(
            "UTF-16 header",
            f.ed.token_raw(
                &header
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect::<Vec<u8>>(),
                text.as_bytes(),
            ),
            "malformed",
        ),
    ]);
}

#[test]
fn d33_size_and_nesting() {
    let f = &*FIXTURE;
    let mut many = user_claims();
    for i in 0..10_000 {
        many[format!("c{i}")] = json!(i);
    }
    let deep = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let nested_claims = claims_text_replacing(
        "\"client_id\"",
        &format!("\"x\":{},\"client_id\"", deep(200)),
    );
    let nested_header = format!(
        r#"{{"alg":"EdDSA","kid":"ed-1","typ":"at+jwt","x":{}}}"#,
        deep(200)
    );
    let claims = user_claims().to_string();
    // A token of exactly the limit reaches the signature check; one byte
    // more is refused by size alone.
    let at_limit = {
        // Pad a header member and a claim until the token is exactly the
        // limit; lengths are computed first, then the token is signed once.
        let header = |h: usize| header_plus(&f.ed, json!({ "pad": "h".repeat(h) })).to_string();
        let claims = |p: usize| claims_with("pad", json!("p".repeat(p))).to_string();
        let b64_len = |n: usize| (4 * n).div_ceil(3);
        let signature_len = b64_len(64);
        let (header_base, claims_base) = (header(0).len(), claims(0).len());
        let (h, p) = (0..8000)
            .flat_map(|p| (0..4).map(move |h| (h, p)))
            .find(|(h, p)| {
                b64_len(header_base + h) + b64_len(claims_base + p) + signature_len + 2
                    == MAX_TOKEN_BYTES
            })
            .unwrap();
        f.ed.token_raw(header(h).as_bytes(), claims(p).as_bytes())
    };
    assert_eq!(at_limit.len(), MAX_TOKEN_BYTES);
    check_table(&[
        row("1 MB token", "a".repeat(1 << 20), "token_too_large"),
        row("1 MB of dots", ".".repeat(1 << 20), "token_too_large"),
        row("10 000 claims", f.ed.token(&many), "token_too_large"),
        row("exactly 8 KiB, correctly signed", at_limit.clone(), "ok"),
        row("8 KiB + 1", format!("{at_limit}A"), "token_too_large"),
        row(
            "8 KiB + 1 of header",
            format!("A{at_limit}"),
            "token_too_large",
        ),
        // Decision: members nobody reads are still read whole, every string
        // checked (D32: serde_json's skipper does not check them), under
        // serde_json's nesting limit of 128; deeper is malformed, and the
        // header is judged before the signature.
        row(
            "200-deep array in an unknown header member, attacker-signed",
            f.attacker
                .token_raw(nested_header.as_bytes(), claims.as_bytes()),
            "malformed",
        ),
        row(
            "200-deep array as alg",
            f.ed.token_raw(
                format!(r#"{{"alg":{},"kid":"ed-1","typ":"at+jwt"}}"#, deep(200)).as_bytes(),
                claims.as_bytes(),
            ),
            "malformed",
        ),
        row(
            "100-deep array as alg",
            f.ed.token_raw(
                format!(r#"{{"alg":{},"kid":"ed-1","typ":"at+jwt"}}"#, deep(100)).as_bytes(),
                claims.as_bytes(),
            ),
            "algorithm_not_allowed",
        ),
        row(
            "200-deep array as a role",
            f.ed.token_raw(
                f.ed.header().to_string().as_bytes(),
                claims_text_replacing("\"beta\"", &deep(200)).as_bytes(),
            ),
            "malformed",
        ),
        // Decision: an unknown claim is ignored (RFC 7519 §4) but read whole,
        // as above: up to serde_json's nesting limit (128, so bounded stack),
        // deeper is malformed. Only a trusted key can get it this far.
        row(
            "100-deep array in an unknown claim, signed by our key",
            f.ed.token_raw(
                f.ed.header().to_string().as_bytes(),
                claims_text_replacing(
                    "\"client_id\"",
                    &format!("\"x\":{},\"client_id\"", deep(100)),
                )
                .as_bytes(),
            ),
            "ok",
        ),
        row(
            "200-deep array in an unknown claim, signed by our key",
            f.ed.token_raw(
                f.ed.header().to_string().as_bytes(),
                nested_claims.as_bytes(),
            ),
            "malformed",
        ),
    ]);
}

// ---------------------------------------------------------------- E ----

/// The order of the P-256 group.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n - s` on 32-byte big-endian numbers (`s < n`).
fn p256_negate(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = P256_N[i] as i16 - s[i] as i16 - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    out
}

#[test]
fn e34_psychic_and_out_of_range_ecdsa_signatures() {
    let f = &*FIXTURE;
    let header = f.ec.header();
    let claims = user_claims();
    let (_, _, s) = segments(&f.ec.token(&claims));
    let real = unb64(&s);
    let (r, s_real) = real.split_at(32);
    let sig = |r: &[u8], s: &[u8]| [r, s].concat();
    let one = {
        let mut one = [0u8; 32];
        one[31] = 1;
        one
    };
    let mut rows: Vec<Row> = vec![
        row(
            "all-zero 64 bytes",
            forged(&header, &claims, &[0u8; 64]),
            "bad_signature",
        ),
        row(
            "r = s = n",
            forged(&header, &claims, &sig(&P256_N, &P256_N)),
            "bad_signature",
        ),
        row(
            "r = n, real s",
            forged(&header, &claims, &sig(&P256_N, s_real)),
            "bad_signature",
        ),
        row(
            "real r, s = n",
            forged(&header, &claims, &sig(r, &P256_N)),
            "bad_signature",
        ),
        row(
            "real r, s = 0",
            forged(&header, &claims, &sig(r, &[0u8; 32])),
            "bad_signature",
        ),
        row(
            "r = 0, real s",
            forged(&header, &claims, &sig(&[0u8; 32], s_real)),
            "bad_signature",
        ),
        row(
            "r = s = 1",
            forged(&header, &claims, &sig(&one, &one)),
            "bad_signature",
        ),
        row(
            "all-ones",
            forged(&header, &claims, &[0xffu8; 64]),
            "bad_signature",
        ),
    ];
    // The same zero signatures for the other algorithms.
    for key in [&f.ed, &f.rsa, &f.hs] {
        let len = unb64(&segments(&key.token(&claims)).2).len();
        rows.push(row(
            format!("{} all-zero signature", key.alg),
            forged(&key.header(), &claims, &vec![0u8; len]),
            "bad_signature",
        ));
    }
    check_table(&rows);
}

#[test]
fn e35_ecdsa_malleability_does_not_escape_revocation() {
    let f = &*FIXTURE;
    let twin = |claims: &Value| {
        let (h, p, s) = segments(&f.ec.token(claims));
        let sig = unb64(&s);
        let high = [&sig[..32], &p256_negate(&sig[32..])[..]].concat();
        let twin = join(&h, &p, &b64(high));
        assert_ne!(twin, f.ec.token(claims));
        twin
    };
    check_table(&[
        // Pinned: aws-lc-rs accepts both (r, s) and (r, n - s), as ECDSA
        // allows. A twin is a different string for the same token, so
        // nothing may be keyed on token bytes or signatures...
        row("high-S twin of a live token", twin(&user_claims()), "ok"),
        // ...and revocation is keyed on jti / sid / user, so the twin of a
        // revoked token is just as revoked.
        row(
            "twin of a revoked jti",
            twin(&claims_with("jti", json!("jti-revoked"))),
            "revoked",
        ),
        row(
            "twin in an ended session",
            twin(&claims_with("sid", json!("sid-ended"))),
            "revoked",
        ),
    ]);
}

#[test]
fn e36_wrong_signature_encodings() {
    let f = &*FIXTURE;
    let header = f.ec.header();
    let claims = user_claims();
    let h = b64(header.to_string());
    let p = b64(claims.to_string());
    let der = f.ec.sign_ecdsa_der(format!("{h}.{p}").as_bytes());
    assert!(der.len() > 64 && der[0] == 0x30);
    let (_, _, s) = segments(&f.ec.token(&claims));
    let fixed = unb64(&s);
    let mut rows: Vec<Row> = vec![
        row(
            "DER-encoded ECDSA signature",
            join(&h, &p, &b64(&der)),
            "bad_signature",
        ),
        row(
            "63-byte ECDSA signature",
            forged(&header, &claims, &fixed[..63]),
            "bad_signature",
        ),
        row(
            "65-byte ECDSA signature",
            forged(&header, &claims, &[&fixed[..], &[0]].concat()),
            "bad_signature",
        ),
        row(
            "ECDSA signature with a leading zero",
            forged(&header, &claims, &[&[0][..], &fixed[..]].concat()),
            "bad_signature",
        ),
    ];
    for key in [&f.ed, &f.rsa, &f.hs] {
        let (h, p, s) = segments(&key.token(&claims));
        let sig = unb64(&s);
        rows.push(row(
            format!("{} signature one byte short", key.alg),
            join(&h, &p, &b64(&sig[..sig.len() - 1])),
            "bad_signature",
        ));
        rows.push(row(
            format!("{} signature one byte long", key.alg),
            join(&h, &p, &b64([&sig[..], &[0]].concat())),
            "bad_signature",
        ));
    }
    check_table(&rows);
}

#[test]
fn e37_weak_or_odd_public_keys_are_refused_at_load() {
    let import = |jwk: Value| -> &'static str {
        let jwk: Jwk = serde_json::from_value(jwk).unwrap();
        match jwk.to_verifying_key() {
            Ok(Some(_)) => "ok",
            Ok(None) => "skipped",
            Err(e) => e.code(),
        }
    };
    let rsa = |n: &[u8], e: &[u8]| json!({ "kty": "RSA", "kid": "r", "alg": "RS256", "n": b64(n), "e": b64(e) });
    let mut n2048 = FIXTURE.rsa.public_raw();
    let n1024 = {
        let mut n = vec![0xc5u8; 128];
        n[127] |= 1;
        n
    };
    let n3072 = vec![0xc5u8; 384];
    let cases: Vec<(&str, Value, &str)> = vec![
        ("the fixture's 2048-bit key", rsa(&n2048, &[1, 0, 1]), "ok"),
        ("1024-bit modulus", rsa(&n1024, &[1, 0, 1]), "invalid_key"),
        (
            "2047-bit modulus",
            rsa(&[&[0x7f][..], &[0xc5u8; 255][..]].concat(), &[1, 0, 1]),
            "invalid_key",
        ),
        ("e = 1", rsa(&n2048, &[1]), "invalid_key"),
        ("e = 2", rsa(&n2048, &[2]), "invalid_key"),
        ("even e = 65536", rsa(&n2048, &[1, 0, 0]), "invalid_key"),
        ("e = 0", rsa(&n2048, &[0]), "invalid_key"),
        ("e empty", rsa(&n2048, &[]), "invalid_key"),
        (
            "n with a leading zero",
            rsa(&[&[0][..], &n2048[..]].concat(), &[1, 0, 1]),
            "invalid_key",
        ),
        ("e = 3 (odd, small, legal)", rsa(&n2048, &[3]), "ok"),
        ("3072-bit modulus", rsa(&n3072, &[1, 0, 1]), "ok"),
        (
            "P-256 point not on the curve",
            json!({ "kty": "EC", "crv": "P-256", "kid": "e", "alg": "ES256", "x": b64([1u8; 32]), "y": b64([2u8; 32]) }),
            "invalid_key",
        ),
        (
            "P-256 coordinates of 31 bytes",
            json!({ "kty": "EC", "crv": "P-256", "kid": "e", "alg": "ES256", "x": b64([1u8; 31]), "y": b64([2u8; 31]) }),
            "invalid_key",
        ),
        (
            "Ed25519 key of 31 bytes",
            json!({ "kty": "OKP", "crv": "Ed25519", "kid": "o", "alg": "EdDSA", "x": b64([1u8; 31]) }),
            "invalid_key",
        ),
        (
            "EC key published as EdDSA",
            json!({ "kty": "EC", "crv": "P-256", "kid": "e", "alg": "EdDSA", "x": b64([1u8; 32]), "y": b64([2u8; 32]) }),
            "invalid_jwk",
        ),
        (
            "RSA key with a private exponent",
            json!({ "kty": "RSA", "kid": "r", "alg": "RS256", "n": b64(&n2048), "e": "AQAB", "d": "AQAB" }),
            "invalid_jwk",
        ),
        (
            "symmetric key in a public set",
            json!({ "kty": "oct", "kid": "h", "alg": "HS256", "k": b64([7u8; 32]) }),
            "invalid_jwk",
        ),
        (
            "key without alg",
            json!({ "kty": "RSA", "kid": "r", "n": b64(&n2048), "e": "AQAB" }),
            "invalid_jwk",
        ),
        (
            "encryption key",
            json!({ "kty": "RSA", "kid": "r", "use": "enc", "alg": "RS256", "n": b64(&n1024), "e": "AQAB" }),
            "skipped",
        ),
    ];
    let failures: Vec<String> = cases
        .into_iter()
        .filter_map(|(name, jwk, expected)| {
            let got = import(jwk);
            (got != expected).then(|| format!("  {name}: expected {expected}, got {got}"))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // An even modulus is no RSA key; aws-lc-rs would load it, the core
    // refuses it.
    n2048[255] &= 0xfe;
    assert_eq!(import(rsa(&n2048, &[1, 0, 1])), "invalid_key");
}

// ---------------------------------------------------------------- F ----

#[test]
fn f40_time_validation_and_leeway() {
    let f = &*FIXTURE;
    let leeway = f.validator.policy().leeway();
    assert_eq!(leeway, 30);
    let times = |exp: u64, iat: u64, nbf: u64| {
        let mut claims = user_claims();
        claims["exp"] = json!(exp);
        claims["iat"] = json!(iat);
        claims["nbf"] = json!(nbf);
        f.ed.token(&claims)
    };
    let hour = 3600;
    check_table(&[
        row(
            "exp = now - leeway - 1",
            times(NOW - leeway - 1, NOW - hour, NOW - hour),
            "expired",
        ),
        row(
            "exp = now - leeway",
            times(NOW - leeway, NOW - hour, NOW - hour),
            "ok",
        ),
        row(
            "exp long past",
            times(NOW - 10 * hour, NOW - 11 * hour, NOW - 11 * hour),
            "expired",
        ),
        row(
            "nbf = now + leeway + 1",
            times(NOW + hour, NOW, NOW + leeway + 1),
            "not_yet_valid",
        ),
        row(
            "nbf = now + leeway",
            times(NOW + hour, NOW, NOW + leeway),
            "ok",
        ),
        row(
            "iat = now + leeway + 1",
            times(NOW + hour, NOW + leeway + 1, NOW),
            "issued_in_future",
        ),
        row(
            "iat = now + leeway",
            times(NOW + hour, NOW + leeway, NOW),
            "ok",
        ),
        row(
            "lifetime 24 h",
            times(NOW + 12 * hour, NOW - 12 * hour, NOW - 12 * hour),
            "ok",
        ),
        row(
            "lifetime 24 h + 1 s",
            times(NOW + 12 * hour + 1, NOW - 12 * hour, NOW - 12 * hour),
            "lifetime_too_long",
        ),
        row(
            "lifetime 10 years",
            times(NOW + 3650 * 24 * hour, NOW, NOW),
            "lifetime_too_long",
        ),
    ]);
}

#[test]
fn f41_every_required_claim_is_required() {
    let f = &*FIXTURE;
    let mut rows: Vec<Row> = Vec::new();
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "token_type",
        "sid",
        "plan",
    ] {
        rows.push(row(
            format!("without {claim}"),
            f.ed.token(&claims_without(claim)),
            "missing_claim",
        ));
    }
    for claim in ["sub", "jti", "client_id"] {
        rows.push(row(
            format!("empty {claim}"),
            f.ed.token(&claims_with(claim, json!(""))),
            "missing_claim",
        ));
    }
    // Optional: nbf (RFC 9068 does not require it), email, scope, roles,
    // permissions (a user may have none).
    for claim in ["nbf", "email", "scope", "roles", "permissions"] {
        rows.push(row(
            format!("without {claim}"),
            f.ed.token(&claims_without(claim)),
            "ok",
        ));
    }
    rows.push(row("empty object", f.ed.token(&json!({})), "missing_claim"));
    check_table(&rows);
}

#[test]
fn f42_token_substitution_across_resource_servers() {
    let f = &*FIXTURE;
    let rs_b = Validator::new(
        ValidationPolicy::new(ISSUER, vec!["rs-b".into()])
            .unwrap()
            .with_algorithms(&Algorithm::ALL),
        VerifyingKeys::new([f.ed.verifying_key()]),
    );
    check_table_with(
        &rs_b,
        Expect::Access,
        &[
            row(
                "minted for rs-a",
                f.ed.token(&claims_with("aud", json!("rs-a"))),
                "wrong_audience",
            ),
            row(
                "minted for [rs-a, api]",
                f.ed.token(&claims_with("aud", json!(["rs-a", "api"]))),
                "wrong_audience",
            ),
            row(
                "minted for rs-b",
                f.ed.token(&claims_with("aud", json!("rs-b"))),
                "ok",
            ),
        ],
    );
}

#[test]
fn f43_a_service_token_is_not_a_user_token() {
    let f = &*FIXTURE;
    let service = f.ed.token(&service_claims());
    let user = f.ed.token(&user_claims());
    let mut service_with_sid = service_claims();
    service_with_sid["sid"] = json!("sid-55aa");
    let mut service_with_plan = service_claims();
    service_with_plan["plan"] = json!("pro");
    let mut user_claiming_service = user_claims();
    user_claiming_service["token_type"] = json!("service");
    check_table_with(
        &f.validator,
        Expect::Access,
        &[
            row(
                "service token as user token",
                service.clone(),
                "wrong_token_type",
            ),
            row("user token as user token", user.clone(), "ok"),
            row(
                "token_type refresh",
                f.ed.token(&claims_with("token_type", json!("refresh"))),
                "wrong_token_type",
            ),
            row(
                "token_type Access",
                f.ed.token(&claims_with("token_type", json!("Access"))),
                "wrong_token_type",
            ),
            row(
                "token_type empty",
                f.ed.token(&claims_with("token_type", json!(""))),
                "wrong_token_type",
            ),
            row(
                "token_type 1",
                f.ed.token(&claims_with("token_type", json!(1))),
                "malformed",
            ),
            row(
                "service token with a sid",
                f.ed.token(&service_with_sid),
                "malformed",
            ),
            row(
                "service token with a plan",
                f.ed.token(&service_with_plan),
                "malformed",
            ),
            row(
                "user claims labelled service",
                f.ed.token(&user_claiming_service),
                "malformed",
            ),
        ],
    );
    check_table_with(
        &f.validator,
        Expect::Service,
        &[
            row(
                "user token as service token",
                user.clone(),
                "wrong_token_type",
            ),
            row("service token as service token", service.clone(), "ok"),
        ],
    );
    check_table_with(
        &f.validator,
        Expect::Any,
        &[
            row("user, any", user.clone(), "ok"),
            row("service, any", service.clone(), "ok"),
        ],
    );
    let none = tollgate_core::validate::dangerous::NoRevocations;
    let claims = f
        .validator
        .validate(&service, Expect::Any, NOW, &none)
        .unwrap();
    assert!(!claims.is_user());
    assert_eq!(claims.sub, claims.client_id);
    assert!(
        f.validator
            .validate(&user, Expect::Any, NOW, &none)
            .unwrap()
            .is_user()
    );
}

#[test]
fn f44_rotation_and_retirement() {
    // Keys made by the core's own KeyRing (what is under test here is the
    // lifecycle); tokens still signed with aws-lc-rs from the raw PKCS#8.
    let old = ManagedKey::generate(Algorithm::EdDSA, NOW - 7200).unwrap();
    let new = ManagedKey::generate(Algorithm::EdDSA, NOW).unwrap();
    let signer =
        |key: &ManagedKey| TestKey::from_pkcs8("EdDSA", key.kid(), key.material().expose());
    let (old_signer, new_signer) = (signer(&old), signer(&new));
    let mut ring = KeyRing::new(vec![old.clone()]);
    let overlap = 900 + 30;
    // A ring from before next keys: the rotation makes `new` active and
    // publishes a next key too.
    let next = ManagedKey::generate(Algorithm::EdDSA, NOW).unwrap();
    ring.rotate(vec![new.clone(), next.clone()], NOW, overlap)
        .unwrap();
    let validator_at = |ring: &KeyRing, at| {
        Validator::new(
            ValidationPolicy::new(ISSUER, vec![AUDIENCE.into()]).unwrap(),
            ring.verifying_keys(at).unwrap(),
        )
    };
    let claims_at = |at: u64| {
        let mut claims = user_claims();
        claims["iat"] = json!(at);
        claims["nbf"] = json!(at);
        claims["exp"] = json!(at + 900);
        claims
    };
    let validate = |v: &Validator, token: &str, at| match v.validate(
        token,
        Expect::Access,
        at,
        &crate::support::Revoked::standard(),
    ) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    };
    let from_old = old_signer.token(&claims_at(NOW - 1));
    let from_new = new_signer.token(&claims_at(NOW));
    // The new key verifies from the moment it signs.
    let now = validator_at(&ring, NOW);
    assert_eq!(validate(&now, &from_new, NOW), "ok");
    // Within the overlap, the old key's tokens still verify.
    let later = NOW + overlap - 1;
    assert_eq!(
        validate(&validator_at(&ring, later), &from_old, later),
        "ok"
    );
    // After the overlap the old key leaves the set: even a token with a
    // (forged) long lifetime signed by it is refused.
    let after = NOW + overlap;
    ring.expire(after);
    let mut long = claims_at(NOW - 1);
    long["exp"] = json!(NOW + 3600 * 20);
    let from_old_long = old_signer.token(&long);
    assert_eq!(
        validate(&validator_at(&ring, after), &from_old_long, after),
        "unknown_key"
    );
    assert_eq!(
        validate(&validator_at(&ring, after), &from_new, after),
        "ok"
    );
    assert!(
        ring.verifying_keys(after)
            .unwrap()
            .to_jwks()
            .keys
            .iter()
            .all(|k| k.kid.as_deref() == Some(new.kid()) || k.kid.as_deref() == Some(next.kid()))
    );
}

#[test]
fn revocation_by_jti_session_and_user() {
    let f = &*FIXTURE;
    let mut disabled_before = claims_with("sub", json!("user-disabled"));
    disabled_before["iat"] = json!(NOW - 101);
    disabled_before["nbf"] = json!(NOW - 101);
    let mut disabled_after = claims_with("sub", json!("user-disabled"));
    disabled_after["iat"] = json!(NOW - 100);
    disabled_after["nbf"] = json!(NOW - 100);
    check_table(&[
        row(
            "revoked jti",
            f.ed.token(&claims_with("jti", json!("jti-revoked"))),
            "revoked",
        ),
        row(
            "ended session",
            f.ed.token(&claims_with("sid", json!("sid-ended"))),
            "revoked",
        ),
        row(
            "user cut off after issue",
            f.ed.token(&disabled_before),
            "revoked",
        ),
        row(
            "user token issued at the cut-off",
            f.ed.token(&disabled_after),
            "ok",
        ),
        // Exact matches only.
        row(
            "jti differing in case",
            f.ed.token(&claims_with("jti", json!("JTI-revoked"))),
            "ok",
        ),
    ]);
}

/// `Validator::check_form` (issue 15, item 6: what an SDK that cannot
/// verify refuses without asking the token service): every genuine token
/// passes, keys or no keys; what cannot be a Tollgate access token fails,
/// with the code `validate` gives it where both look at the same thing.
#[test]
fn check_form_refuses_what_cannot_be_a_token_with_validates_codes() {
    let f = &*FIXTURE;
    let keyless = |algorithms: &[Algorithm]| validator_for(&[], algorithms);
    for key in [&f.ed, &f.ec, &f.rsa, &f.hs] {
        let token = key.token(&user_claims());
        assert_eq!(f.validator.check_form(&token), Ok(()), "{}", key.alg);
        assert_eq!(
            keyless(&Algorithm::ALL).check_form(&token),
            Ok(()),
            "{}",
            key.alg
        );
        // A wrong signature and a stranger's key are for the signature
        // check to find.
        assert_eq!(
            keyless(&Algorithm::ALL).check_form(&format!("{token}A")),
            Ok(())
        );
    }
    let hs_only = keyless(&[Algorithm::HS256]);
    let ed = &f.ed;
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "malformed"),
        (
            "tgr_opaque-refresh-token-0123456789".to_owned(),
            "malformed",
        ),
        ("not-a-token".to_owned(), "malformed"),
        ("a.b".to_owned(), "malformed"),
        ("a.b.c.d.e".to_owned(), "malformed"),
        ("a..c".to_owned(), "malformed"),
        ("a.b.".to_owned(), "malformed"),
        ("a.b.c".to_owned(), "malformed"),
        ("e30.e30.e30".to_owned(), "algorithm_not_allowed"),
        ("x".repeat(MAX_TOKEN_BYTES + 1), "token_too_large"),
        (
            ed.token_with(&header_minus(ed, "typ"), &user_claims()),
            "wrong_typ",
        ),
        (
            ed.token_with(&header_minus(ed, "kid"), &user_claims()),
            "unknown_key",
        ),
        (
            ed.token_with(&header_plus(ed, json!({"alg": "none"})), &user_claims()),
            "algorithm_not_allowed",
        ),
        (
            ed.token_with(&header_plus(ed, json!({"alg": "HS512"})), &user_claims()),
            "algorithm_not_allowed",
        ),
        (
            ed.token_with(
                &header_plus(ed, json!({"jku": "https://evil"})),
                &user_claims(),
            ),
            "header_not_allowed",
        ),
        (
            ed.token_with(&header_plus(ed, json!({"crit": ["exp"]})), &user_claims()),
            "unsupported_critical_header",
        ),
        (
            ed.token_raw(
                br#"{"alg":"EdDSA","alg":"EdDSA","kid":"ed-1","typ":"at+jwt"}"#,
                b"{}",
            ),
            "malformed",
        ),
    ];
    let none = tollgate_core::validate::dangerous::NoRevocations;
    for (token, code) in &cases {
        let refused = f.validator.check_form(token).expect_err(code);
        assert_eq!(refused.code(), *code, "{token:.60}");
        let validated = f.validator.validate(token, Expect::Any, NOW, &none);
        assert_eq!(validated.unwrap_err().code(), *code, "{token:.60}");
    }
    // Segments outside the base64url alphabet: `validate` finds them when
    // it decodes (a bad signature, or malformed), `check_form` at once.
    let header = b64(ed.header().to_string());
    for token in [
        format!("{header}.pay load.sig"),
        format!("{header}.payload.si=g"),
    ] {
        let refused = f.validator.check_form(&token).unwrap_err();
        assert_eq!(refused.code(), "malformed");
        assert!(
            f.validator
                .validate(&token, Expect::Any, NOW, &none)
                .is_err()
        );
    }
    // An EdDSA token, where only HS256 is accepted (an HS256 deployment).
    let refused = hs_only.check_form(&ed.token(&user_claims())).unwrap_err();
    assert_eq!(refused.code(), "algorithm_not_allowed");
    assert_eq!(hs_only.check_form(&f.hs.token(&user_claims())), Ok(()));
}
