//! `tollgate token inspect` against a JWKS file or URL, with tokens minted
//! here by `tollgate_core::claims::Minter`.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{SystemTime, UNIX_EPOCH};

use tollgate_core::claims::{Minter, ServiceGrant, UserGrant};
use tollgate_core::{Algorithm, ManagedKey, VerifyingKeys};

use crate::util::{Tollgate, tollgate};

const ISSUER: &str = "https://auth.example.com";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key, and its JWKS document.
struct Issuer {
    minter: Minter,
    jwks: String,
}

fn issuer(name: &str) -> Issuer {
    let key = ManagedKey::generate(Algorithm::EdDSA, now()).unwrap();
    let jwks = VerifyingKeys::new([key.verifying_key().unwrap()]).to_jwks();
    Issuer {
        minter: Minter::new(name, vec!["api".into()], key.signing_key().unwrap()).unwrap(),
        jwks: serde_json::to_string(&jwks).unwrap(),
    }
}

fn grant(sub: &str) -> UserGrant {
    UserGrant {
        sub: sub.into(),
        sid: "session-1".into(),
        email: "ada@example.com".into(),
        roles: vec![],
        plan: "free".into(),
        permissions: vec!["tool:search".into()],
        client_id: "tollgate".into(),
        scope: "openid".into(),
    }
}

fn user_token(issuer: &Issuer, sub: &str, issued_at: u64, ttl: u64) -> String {
    issuer.minter.user(grant(sub), issued_at, ttl).unwrap().0
}

/// `token inspect TOKEN --jwks keys.json --issuer ISSUER` with the key set
/// written to the working directory.
fn inspect(issuer: &Issuer, token: &str) -> Tollgate {
    let t = tollgate(&[
        "token",
        "inspect",
        token,
        "--jwks",
        "keys.json",
        "--issuer",
        ISSUER,
    ]);
    t.file("keys.json", &issuer.jwks);
    t
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

#[test]
fn a_valid_token_exits_zero_and_is_never_printed() {
    let issuer = issuer(ISSUER);
    let token = user_token(&issuer, "user-1", now(), 900);
    let run = inspect(&issuer, &token).run();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(last_line(&run.stdout), "valid");
    assert!(
        run.stdout
            .contains(&tollgate_core::token_fingerprint(&token))
    );
    assert!(
        run.stdout.contains("\"sub\": \"user-1\""),
        "claims are shown"
    );
    let parts: Vec<&str> = token.split('.').collect();
    for part in parts {
        assert!(!run.stdout.contains(part) && !run.stderr.contains(part));
    }
}

#[test]
fn an_expired_token_exits_one_with_its_code() {
    let issuer = issuer(ISSUER);
    let token = user_token(&issuer, "user-1", now() - 7200, 900);
    let run = inspect(&issuer, &token).run();
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        last_line(&run.stdout),
        "invalid: expired: the token has expired"
    );
}

#[test]
fn a_token_of_another_issuer_exits_one() {
    let other = issuer("https://evil.example.com");
    let token = user_token(&other, "user-1", now(), 900);
    let run = inspect(&other, &token).run();
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        last_line(&run.stdout),
        "invalid: wrong_issuer: the token was issued by another issuer"
    );
}

#[test]
fn a_tampered_token_exits_one() {
    let issuer = issuer(ISSUER);
    let genuine = user_token(&issuer, "user-1", now(), 900);
    let admin = user_token(&issuer, "admin", now(), 900);
    // The claims of one token under the header and signature of another.
    let g: Vec<&str> = genuine.split('.').collect();
    let a: Vec<&str> = admin.split('.').collect();
    let tampered = format!("{}.{}.{}", g[0], a[1], g[2]);
    let run = inspect(&issuer, &tampered).run();
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        last_line(&run.stdout),
        "invalid: bad_signature: the token's signature does not verify"
    );
}

#[test]
fn a_token_signed_by_an_unknown_key_exits_one() {
    let trusted = issuer(ISSUER);
    let rogue = issuer(ISSUER);
    let token = user_token(&rogue, "user-1", now(), 900);
    let run = inspect(&trusted, &token).run();
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        last_line(&run.stdout),
        "invalid: unknown_key: the token names a key that is not trusted"
    );
}

#[test]
fn the_audience_and_type_expected_come_from_flags_or_configuration() {
    let issuer = issuer(ISSUER);
    let token = user_token(&issuer, "user-1", now(), 900);
    let run = inspect(&issuer, &token)
        .args(&["--audience", "billing"])
        .run();
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        last_line(&run.stdout),
        "invalid: wrong_audience: the token is not meant for this audience"
    );

    let service = issuer
        .minter
        .service(
            ServiceGrant {
                client_id: "worker".into(),
                scope: "introspect".into(),
            },
            now(),
            600,
        )
        .unwrap()
        .0;
    let run = inspect(&issuer, &service)
        .args(&["--expect", "access"])
        .run();
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        last_line(&run.stdout),
        "invalid: wrong_token_type: the token is of the wrong type for this use"
    );

    // The issuer from the environment, as any setting.
    let t = tollgate(&["token", "inspect", &token, "--jwks", "keys.json"])
        .env("TOLLGATE_ISSUER", ISSUER);
    t.file("keys.json", &issuer.jwks);
    let run = t.run();
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn the_token_can_come_from_stdin_and_the_answer_as_json() {
    let issuer = issuer(ISSUER);
    let token = user_token(&issuer, "user-1", now() - 7200, 900);
    let t = tollgate(&[
        "token",
        "inspect",
        "-",
        "--json",
        "--jwks",
        "keys.json",
        "--issuer",
        ISSUER,
    ])
    .stdin(&format!("Bearer {token}\n"));
    t.file("keys.json", &issuer.jwks);
    let run = t.run();
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 1);
    let answer: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(answer["valid"], false);
    assert_eq!(answer["error"]["code"], "expired");
    assert_eq!(answer["claims"]["sub"], "user-1");
    assert_eq!(answer["header"]["typ"], "at+jwt");
    assert_eq!(
        answer["fingerprint"],
        tollgate_core::token_fingerprint(&token)
    );
    assert_eq!(answer["expected"]["issuer"], ISSUER);
}

#[test]
fn garbage_is_malformed_not_a_crash() {
    let issuer = issuer(ISSUER);
    for garbage in ["not-a-token", "a.b.c", "e30.e30.", "....", "é.é.é"] {
        let run = inspect(&issuer, garbage).run();
        assert_eq!(run.code, 1, "{garbage}: {run:?}");
        assert!(
            last_line(&run.stdout).starts_with("invalid: malformed:"),
            "{garbage}: {}",
            run.stdout
        );
    }
    let huge = "a".repeat(9000) + ".b.c";
    let run = inspect(&issuer, &huge).run();
    assert_eq!(run.code, 1);
    assert_eq!(
        last_line(&run.stdout),
        "invalid: token_too_large: the token is larger than 8 KiB"
    );
}

#[test]
fn without_a_key_set_it_says_one_is_needed() {
    let issuer = issuer(ISSUER);
    let token = user_token(&issuer, "user-1", now(), 900);
    let run = tollgate(&["token", "inspect", &token]).run();
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stdout.contains("\"sub\": \"user-1\""),
        "still shows the claims"
    );
    assert!(
        run.stderr
            .contains("token inspect needs the key set to verify with: pass --jwks URL"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unreadable_or_invalid_key_set_is_an_error() {
    let issuer = issuer(ISSUER);
    let token = user_token(&issuer, "user-1", now(), 900);
    let run = tollgate(&["token", "inspect", &token, "--jwks", "missing.json"]).run();
    assert_eq!(run.code, 2, "{run:?}");
    let t = tollgate(&["token", "inspect", &token, "--jwks", "keys.json"]);
    t.file("keys.json", "{\"keys\": [{\"kty\": \"OKP\", \"crv\": \"Ed25519\", \"alg\": \"EdDSA\", \"kid\": \"k\", \"x\": \"AA\", \"d\": \"AA\"}]}");
    let run = t.run();
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("private or secret key material"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_key_set_can_come_from_a_url() {
    let issuer = issuer(ISSUER);
    let token = user_token(&issuer, "user-1", now(), 900);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let body = issuer.jwks.clone();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let n = stream.read(&mut request).unwrap();
        assert!(String::from_utf8_lossy(&request[..n]).starts_with("GET /.well-known/jwks.json "));
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    let run = tollgate(&[
        "token", "inspect", &token, "--jwks", &url, "--issuer", ISSUER,
    ])
    .run();
    server.join().unwrap();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(last_line(&run.stdout), "valid");
}

/// Signs `header` and `payload` (JSON texts, or any bytes) with `key` as a
/// compact JWS, whatever they say: the attacker-chosen parts of a token
/// that still carries a real signature.
fn signed(key: &tollgate_core::SigningKey, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&signature))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The payload (claims) of a minted token, decoded.
fn claims_of(token: &str) -> Vec<u8> {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap()
}

fn issuer_with(alg: Algorithm) -> Issuer {
    let key = ManagedKey::generate(alg, now()).unwrap();
    let jwks = VerifyingKeys::new([key.verifying_key().unwrap()]).to_jwks();
    Issuer {
        minter: Minter::new(ISSUER, vec!["api".into()], key.signing_key().unwrap()).unwrap(),
        jwks: serde_json::to_string(&jwks).unwrap(),
    }
}

/// Every attack class of issue 3 through `token inspect`: each token is
/// refused (exit 1) and the last line names its rejection code.
#[test]
fn every_attack_token_is_explained_by_its_code() {
    let ed = issuer(ISSUER);
    let es = issuer_with(Algorithm::ES256);
    let kid = ed.minter.key().kid().to_owned();
    let valid = user_token(&ed, "user-1", now(), 900);
    let claims = claims_of(&valid);
    let header = |alg: &str, extra: &str| {
        format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"at+jwt"{extra}}}"#).into_bytes()
    };
    let (signing_input, _) = valid.rsplit_once('.').unwrap();
    let mut cases: Vec<(String, String, &Issuer, &str)> = Vec::new();

    // alg none in every casing, with an empty and with a garbage signature.
    for none in ["none", "None", "NONE", "nOnE"] {
        let unsigned = format!("{}.{}", b64(&header(none, "")), b64(&claims));
        cases.push((
            format!("alg {none}, no signature"),
            format!("{unsigned}."),
            &ed,
            "malformed",
        ));
        cases.push((
            format!("alg {none}, garbage signature"),
            format!("{unsigned}.{}", b64(b"garbage")),
            &ed,
            "algorithm_not_allowed",
        ));
    }
    // HS256 keyed with the public key's bytes, as published (RS/ES/OKP → HS).
    let jwk = ed.minter.key().verifying_key().to_jwk().unwrap();
    let x = jwk.x.clone().unwrap();
    let public_forms: [(&str, Vec<u8>); 3] = [
        ("JWK JSON", serde_json::to_vec(&jwk).unwrap()),
        ("x as text", x.clone().into_bytes()),
        ("raw x", claims_of(&format!("a.{x}.b"))),
    ];
    for (form, secret) in public_forms {
        let hmac = ManagedKey::from_hmac_secret(&tollgate_core::Secret::new(secret), now())
            .unwrap()
            .signing_key()
            .unwrap();
        cases.push((
            format!("HS256 keyed with the public key ({form})"),
            signed(&hmac, &header("HS256", ""), &claims),
            &ed,
            "algorithm_not_allowed",
        ));
    }
    // kid path traversal and SQL-ish kids: only an exact match finds a key.
    for evil in [
        "../../../../dev/null",
        "' OR '1'='1",
        "k\u{0}",
        &"k".repeat(2000),
    ] {
        let header = format!(
            r#"{{"alg":"EdDSA","kid":{},"typ":"at+jwt"}}"#,
            serde_json::json!(evil)
        );
        cases.push((
            format!("kid {:.20}", evil),
            signed(ed.minter.key(), header.as_bytes(), &claims),
            &ed,
            "unknown_key",
        ));
    }
    // Headers that let a token choose its own key.
    for extra in [
        r#","jku":"http://127.0.0.1:9/jwks.json""#,
        r#","x5u":"http://127.0.0.1:9/cert.pem""#,
        r#","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        r#","x5c":["MIIBszCCAVmgAwIBAgIUb"]"#,
    ] {
        cases.push((
            format!("header{extra:.12}"),
            signed(ed.minter.key(), &header("EdDSA", extra), &claims),
            &ed,
            "header_not_allowed",
        ));
    }
    // Empty signature; ECDSA all-zero signature (CVE-2022-21449).
    cases.push((
        "empty signature".into(),
        format!("{signing_input}."),
        &ed,
        "malformed",
    ));
    let es_valid = user_token(&es, "user-1", now(), 900);
    let (es_input, _) = es_valid.rsplit_once('.').unwrap();
    cases.push((
        "ES256 zero signature".into(),
        format!("{es_input}.{}", b64(&[0u8; 64])),
        &es,
        "bad_signature",
    ));
    // Signed by another key, expired, not yet valid, wrong issuer.
    let rogue = issuer(ISSUER);
    cases.push((
        "another key".into(),
        user_token(&rogue, "user-1", now(), 900),
        &ed,
        "unknown_key",
    ));
    cases.push((
        "expired".into(),
        user_token(&ed, "user-1", now() - 7200, 900),
        &ed,
        "expired",
    ));
    cases.push((
        "not yet valid".into(),
        user_token(&ed, "user-1", now() + 7200, 900),
        &ed,
        "not_yet_valid",
    ));
    let other = Issuer {
        minter: Minter::new(
            "https://evil.example.com",
            vec!["api".into()],
            ed.minter.key().clone(),
        )
        .unwrap(),
        jwks: ed.jwks.clone(),
    };
    cases.push((
        "wrong issuer".into(),
        user_token(&other, "user-1", now(), 900),
        &ed,
        "wrong_issuer",
    ));
    // Wrong audience.
    let elsewhere = Issuer {
        minter: Minter::new(ISSUER, vec!["billing".into()], ed.minter.key().clone()).unwrap(),
        jwks: ed.jwks.clone(),
    };
    cases.push((
        "wrong audience".into(),
        user_token(&elsewhere, "user-1", now(), 900),
        &ed,
        "wrong_audience",
    ));
    // Oversized; claims that are not UTF-8; base64 padding on a segment
    // (signed as such, so only the encoding is wrong).
    cases.push((
        "oversized".into(),
        format!("{signing_input}{}.x", "A".repeat(9000)),
        &ed,
        "token_too_large",
    ));
    let mut latin1 = claims.clone();
    let at = latin1.windows(6).position(|w| w == b"user-1").unwrap();
    latin1[at] = 0xfc;
    cases.push((
        "claims not UTF-8".into(),
        signed(ed.minter.key(), &header("EdDSA", ""), &latin1),
        &ed,
        "malformed",
    ));
    let padded_input = format!(
        "{}.{}==",
        b64(&header("EdDSA", "")),
        b64(&claims[..claims.len() - 1])
    );
    let padded_payload = format!(
        "{padded_input}.{}",
        b64(&ed.minter.key().sign(padded_input.as_bytes()).unwrap())
    );
    cases.push(("padded payload".into(), padded_payload, &ed, "malformed"));
    let (head, signature) = valid.rsplit_once('.').unwrap();
    cases.push((
        "padded signature".into(),
        format!("{head}.{signature}="),
        &ed,
        "malformed",
    ));
    let standard_alphabet = valid.replace('-', "+").replace('_', "/");
    if standard_alphabet != valid {
        cases.push((
            "standard alphabet".into(),
            standard_alphabet,
            &ed,
            "malformed",
        ));
    }

    for (name, token, issuer, code) in cases {
        let run = inspect(issuer, &token).run();
        assert_eq!(run.code, 1, "{name}: {run:?}");
        let last = last_line(&run.stdout);
        assert!(
            last.starts_with(&format!("invalid: {code}: ")),
            "{name}: {last}"
        );
    }
}

#[test]
fn a_service_token_is_not_a_user_token_and_the_reverse() {
    let issuer = issuer(ISSUER);
    let user = user_token(&issuer, "user-1", now(), 900);
    let run = inspect(&issuer, &user).args(&["--expect", "service"]).run();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(last_line(&run.stdout).starts_with("invalid: wrong_token_type: "));
    let run = inspect(&issuer, &user).args(&["--expect", "access"]).run();
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn bytes_that_are_not_utf8_are_inspected_not_refused() {
    use std::os::unix::ffi::OsStrExt;
    let issuer = issuer(ISSUER);
    // On stdin.
    let t = tollgate(&[
        "token",
        "inspect",
        "-",
        "--jwks",
        "keys.json",
        "--issuer",
        ISSUER,
    ])
    .stdin_bytes(b"\xff\xfe.e30.c2ln");
    t.file("keys.json", &issuer.jwks);
    let run = t.run();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        last_line(&run.stdout).starts_with("invalid: malformed: "),
        "{}",
        run.stdout
    );
    // As the argument.
    let t = tollgate(&["token", "inspect"])
        .arg_os(std::ffi::OsStr::from_bytes(b"\xc3\x28e30.e30.c2ln"))
        .args(&["--jwks", "keys.json", "--issuer", ISSUER]);
    t.file("keys.json", &issuer.jwks);
    let run = t.run();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        last_line(&run.stdout).starts_with("invalid: malformed: "),
        "{}",
        run.stdout
    );
}
