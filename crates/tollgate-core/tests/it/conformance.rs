//! Published test vectors: RFC 7515 appendix A.1–A.3, RFC 8037 appendix A.4
//! and the RFC 7638 §3.1 thumbprint. Each example verifies with
//! `jws::verify` under the RFC's own key, and stops verifying when any one
//! byte of it changes.

use serde_json::json;
use tollgate_core::jws;
use tollgate_core::keys::{Jwk, VerifyingKey};
use tollgate_core::{Error, Secret};

use crate::support::unb64;

/// The payload of every RFC 7515 appendix A example:
/// `{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}`.
const RFC7515_PAYLOAD: &str = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

/// RFC 7515 A.1: HMAC SHA-256 (the header has `typ: JWT` and a CRLF).
const A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const A1_KEY: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

/// RFC 7515 A.2: RSASSA-PKCS1-v1_5 SHA-256.
const A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

/// RFC 7515 A.3: ECDSA P-256 SHA-256.
const A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

/// RFC 8037 A.4: Ed25519 over "Example of Ed25519 signing".
const RFC8037_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

fn jwk(value: serde_json::Value) -> Jwk {
    serde_json::from_value(value).expect("RFC JWK")
}

fn import(value: serde_json::Value) -> VerifyingKey {
    jwk(value)
        .to_verifying_key()
        .expect("RFC key imports")
        .expect("RFC key is a signing key")
}

fn a1_key() -> VerifyingKey {
    VerifyingKey::from_hmac_secret("a1", &Secret::new(unb64(A1_KEY))).expect("A.1 key")
}

fn a2_key() -> VerifyingKey {
    import(json!({ "kty": "RSA", "kid": "a2", "alg": "RS256", "n": A2_N, "e": "AQAB" }))
}

fn a3_key() -> VerifyingKey {
    import(
        json!({ "kty": "EC", "kid": "a3", "alg": "ES256", "crv": "P-256", "x": A3_X, "y": A3_Y }),
    )
}

fn ed_key() -> VerifyingKey {
    import(json!({ "kty": "OKP", "kid": "a4", "alg": "EdDSA", "crv": "Ed25519", "x": RFC8037_X }))
}

/// Every variant of `token` with exactly one byte changed: each position
/// gets a different base64url character (or, for a dot, a letter).
fn one_byte_changes(token: &str) -> impl Iterator<Item = String> + '_ {
    (0..token.len()).map(move |i| {
        let mut bytes = token.as_bytes().to_vec();
        bytes[i] = match bytes[i] {
            b'A' => b'B',
            b'.' => b'A',
            _ => b'A',
        };
        String::from_utf8(bytes).expect("ASCII")
    })
}

fn assert_vector(name: &str, token: &str, key: &VerifyingKey, payload: &[u8]) {
    let (header, got) =
        jws::verify(token, key).unwrap_or_else(|e| panic!("{name} does not verify: {e}"));
    assert_eq!(got, payload, "{name} payload");
    assert_eq!(header.alg, key.alg().as_str(), "{name} alg");
    for (i, changed) in one_byte_changes(token).enumerate() {
        assert!(
            jws::verify(&changed, key).is_err(),
            "{name} still verifies with byte {i} changed"
        );
    }
}

#[test]
fn rfc7515_a1_hs256() {
    assert_vector("A.1", A1_TOKEN, &a1_key(), &unb64(RFC7515_PAYLOAD));
}

#[test]
fn rfc7515_a2_rs256() {
    assert_vector("A.2", A2_TOKEN, &a2_key(), &unb64(RFC7515_PAYLOAD));
}

#[test]
fn rfc7515_a3_es256() {
    assert_vector("A.3", A3_TOKEN, &a3_key(), &unb64(RFC7515_PAYLOAD));
}

#[test]
fn rfc8037_a4_ed25519() {
    assert_vector(
        "RFC 8037 A.4",
        RFC8037_TOKEN,
        &ed_key(),
        b"Example of Ed25519 signing",
    );
}

#[test]
fn rfc_vectors_do_not_verify_under_each_others_keys() {
    // The algorithm comes from the key: an RS256 example presented to the
    // ES256 key is refused before any signature check.
    let cases = [
        (A2_TOKEN, a3_key()),
        (A3_TOKEN, ed_key()),
        (RFC8037_TOKEN, a1_key()),
        (A1_TOKEN, a2_key()),
    ];
    for (token, key) in cases {
        assert_eq!(
            jws::verify(token, &key).unwrap_err(),
            Error::AlgorithmNotAllowed
        );
    }
}

#[test]
fn rfc7638_thumbprint_example() {
    // RFC 7638 §3.1: the RSA key of RFC 7517 appendix A.1.
    let key = jwk(json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }));
    assert_eq!(
        key.thumbprint().unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    // The same value for the imported key, whose published JWK carries
    // extra members (`kid`, `alg`, `use`) that the thumbprint must ignore.
    let imported = key.to_verifying_key().unwrap().unwrap();
    assert_eq!(
        imported.thumbprint().unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn rfc8037_a3_ed25519_thumbprint() {
    assert_eq!(
        ed_key().thumbprint().unwrap(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}
