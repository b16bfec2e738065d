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
