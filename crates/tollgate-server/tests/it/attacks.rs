//! SECURITY.md attack tokens against both places the server judges a
//! token: a resource route (`/v1/auth/me`: 401 `invalid_token` with an
//! RFC 6750 challenge) and introspection (exactly `{"active": false}`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tollgate_core::Secret;
use tollgate_core::keys::{Algorithm, ManagedKey, SigningKey};
use tollgate_server::keystore;

use crate::common::Api;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS over exactly these header and payload objects.
fn forge(header: &Value, payload: &Value, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&signature))
}

fn decode(token: &str) -> (Value, Value) {
    tollgate_core::jws::dangerous::insecure_decode(token).unwrap()
}

/// Asserts that the route and introspection both refuse `token`.
async fn refused(api: &Api, introspector: &(String, String), name: &str, token: &str) {
    let me = api.get("/v1/auth/me", Some(token)).await;
    assert_eq!(me.status.as_u16(), 401, "{name}: {}", me.text);
    assert_eq!(me.body["error"], "invalid_token", "{name}");
    assert!(
        me.header("www-authenticate").starts_with("Bearer ")
            && me
                .header("www-authenticate")
                .contains("error=\"invalid_token\""),
        "{name}: {}",
        me.header("www-authenticate")
    );
    let answer = api.introspect(introspector, token).await;
    assert_eq!(answer.status.as_u16(), 200, "{name}: {}", answer.text);
    assert_eq!(answer.text, r#"{"active":false}"#, "{name}");
}

#[tokio::test]
async fn attack_tokens_are_refused_at_routes_and_introspection() {
    let api = Api::start().await;
    let introspector = api.client("rs-attacks", &["introspect"]).await;
    let login = api.user("target@example.com").await;
    let good = login.str("access_token");
    let (header, payload) = decode(&good);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let ring = keystore::load_ring(api.server.store().as_ref(), None)
        .await
        .unwrap();
    let real = ring.signing_key().unwrap();
    assert_eq!(real.kid(), kid);
    // The forge helper makes accepted tokens from good parts.
    assert_eq!(
        api.get("/v1/auth/me", Some(&forge(&header, &payload, &real)))
            .await
            .status,
        200
    );
    let now = api.server.now();
    let with = |mut value: Value, key: &str, v: Value| {
        value[key] = v;
        value
    };
    let without = |mut value: Value, key: &str| {
        value.as_object_mut().unwrap().remove(key);
        value
    };
    let parts: Vec<&str> = good.split('.').collect();
    let mut attacks: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, token: String| attacks.push((name.to_owned(), token));

    // A1/A2: alg none in every case, with empty and garbage signatures; stripped signatures.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = b64(with(header.clone(), "alg", json!(alg))
            .to_string()
            .as_bytes());
        add(&format!("alg {alg}, empty"), format!("{h}.{}.", parts[1]));
        add(
            &format!("alg {alg}, garbage"),
            format!("{h}.{}.Z2FyYmFnZQ", parts[1]),
        );
    }
    add("stripped signature", format!("{}.{}.", parts[0], parts[1]));
    add("two segments", format!("{}.{}", parts[0], parts[1]));
    // A3: one flipped bit in each segment.
    for (i, part) in parts.iter().enumerate() {
        let mut bytes = URL_SAFE_NO_PAD.decode(part).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        let mut flipped: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
        flipped[i] = b64(&bytes);
        add(&format!("bit flip in segment {i}"), flipped.join("."));
    }
    // A4: HMAC keyed with the public key (raw, JWK JSON).
    let jwk = real.verifying_key().to_jwk().unwrap();
    let raw_public = URL_SAFE_NO_PAD.decode(jwk.x.as_ref().unwrap()).unwrap();
    let jwk_json = serde_json::to_vec(&jwk).unwrap();
    for (name, secret) in [
        ("raw public key", raw_public.clone()),
        ("JWK JSON", jwk_json),
    ] {
        let hmac = ManagedKey::from_hmac_secret(&Secret::new(secret), now)
            .unwrap()
            .signing_key()
            .unwrap();
        add(
            &format!("HS256 keyed with the {name}"),
            forge(
                &with(header.clone(), "alg", json!("HS256")),
                &payload,
                &hmac,
            ),
        );
    }
    // A6/A7: other algorithms on our key, malformed alg.
    for alg in [
        json!("Ed25519"),
        json!("ES256"),
        json!("RS256"),
        json!("foo"),
        json!(null),
        json!(1),
        json!(["EdDSA"]),
    ] {
        add(
            &format!("alg {alg}"),
            forge(&with(header.clone(), "alg", alg.clone()), &payload, &real),
        );
    }
    add(
        "no alg",
        forge(&without(header.clone(), "alg"), &payload, &real),
    );
    // B12-15: the token may not choose its key.
    let attacker = ManagedKey::generate(Algorithm::EdDSA, now)
        .unwrap()
        .signing_key()
        .unwrap();
    let attacker_jwk = serde_json::to_value(attacker.verifying_key().to_jwk().unwrap()).unwrap();
    add(
        "attacker key under our kid",
        forge(&header, &payload, &attacker),
    );
    add(
        "embedded jwk",
        forge(
            &with(header.clone(), "jwk", attacker_jwk.clone()),
            &payload,
            &attacker,
        ),
    );
    add(
        "embedded jwk and its kid",
        forge(
            &with(
                with(header.clone(), "jwk", attacker_jwk.clone()),
                "kid",
                attacker_jwk["kid"].clone(),
            ),
            &payload,
            &attacker,
        ),
    );
    // A listener standing in for an attacker's JWKS: it must never be called.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jku = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    for member in ["jku", "x5u"] {
        add(
            member,
            forge(&with(header.clone(), member, json!(jku)), &payload, &real),
        );
        add(
            &format!("{member} with attacker key"),
            forge(
                &with(header.clone(), member, json!(jku)),
                &payload,
                &attacker,
            ),
        );
    }
    add(
        "x5c",
        forge(
            &with(header.clone(), "x5c", json!(["MIIB"])),
            &payload,
            &real,
        ),
    );
    // B16: kid injection.
    for bad_kid in [
        json!("../../../../etc/passwd"),
        json!("' OR '1'='1"),
        json!(format!("{kid}\u{0}")),
        json!(format!("\u{202e}{kid}")),
        json!(kid.to_uppercase()),
        json!(null),
        json!(7),
        json!("k".repeat(10 * 1024)),
    ] {
        add(
            &format!(
                "kid {}",
                &bad_kid.to_string()[..bad_kid.to_string().len().min(30)]
            ),
            forge(
                &with(header.clone(), "kid", bad_kid.clone()),
                &payload,
                &real,
            ),
        );
    }
    add(
        "no kid",
        forge(&without(header.clone(), "kid"), &payload, &real),
    );
    // C19-21: crit, typ, cty.
    for crit in [json!(["exp"]), json!([]), json!("x")] {
        add(
            &format!("crit {crit}"),
            forge(&with(header.clone(), "crit", crit.clone()), &payload, &real),
        );
    }
    for typ in [json!("JWT"), json!("jwt"), json!("at+jwt "), json!(null)] {
        add(
            &format!("typ {typ}"),
            forge(&with(header.clone(), "typ", typ.clone()), &payload, &real),
        );
    }
    add(
        "no typ",
        forge(&without(header.clone(), "typ"), &payload, &real),
    );
    add(
        "cty JWT",
        forge(&with(header.clone(), "cty", json!("JWT")), &payload, &real),
    );
    add(
        "five segments (JWE)",
        format!("{}.{}.{}.{}.{}", parts[0], "", parts[1], "", parts[2]),
    );
    // F40/41/42: time, claims, audience and issuer, all with our real key.
    add(
        "expired",
        forge(
            &header,
            &with(
                with(payload.clone(), "iat", json!(now - 600)),
                "exp",
                json!(now - 540),
            ),
            &real,
        ),
    );
    add(
        "not yet valid",
        forge(
            &header,
            &with(payload.clone(), "nbf", json!(now + 600)),
            &real,
        ),
    );
    add(
        "issued in the future",
        forge(
            &header,
            &with(
                with(payload.clone(), "iat", json!(now + 600)),
                "exp",
                json!(now + 660),
            ),
            &real,
        ),
    );
    add(
        "lifetime too long",
        forge(
            &header,
            &with(payload.clone(), "exp", json!(now + 30 * 24 * 3600)),
            &real,
        ),
    );
    add(
        "wrong audience",
        forge(
            &header,
            &with(payload.clone(), "aud", json!("other-api")),
            &real,
        ),
    );
    add(
        "empty audience",
        forge(&header, &with(payload.clone(), "aud", json!([])), &real),
    );
    let issuer = payload["iss"].as_str().unwrap();
    for iss in [
        format!("{issuer}/"),
        issuer.to_uppercase(),
        issuer.replace("http", "https"),
        "https://evil.example".into(),
    ] {
        add(
            &format!("iss {iss}"),
            forge(&header, &with(payload.clone(), "iss", json!(iss)), &real),
        );
    }
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
    ] {
        add(
            &format!("without {claim}"),
            forge(&header, &without(payload.clone(), claim), &real),
        );
    }
    add(
        "exp as string",
        forge(
            &header,
            &with(payload.clone(), "exp", json!(format!("{}", now + 60))),
            &real,
        ),
    );
    add(
        "token_type refresh",
        forge(
            &header,
            &with(payload.clone(), "token_type", json!("refresh")),
            &real,
        ),
    );

    for (name, token) in &attacks {
        refused(&api, &introspector, name, token).await;
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a jku/x5u URL was fetched"
    );
    // Whitespace around a token is not the token (HTTP itself allows
    // several spaces after `Bearer`, so this is checked at introspection).
    for padded in [format!(" {good}"), format!("{good} "), format!("{good}\n")] {
        assert_eq!(
            api.introspect(&introspector, &padded).await.text,
            r#"{"active":false}"#
        );
    }
}

#[tokio::test]
async fn service_tokens_are_not_user_tokens_and_expired_tokens_die_on_time() {
    let api = Api::start().await;
    let introspector = api.client("rs-kinds", &["introspect"]).await;
    let service = api.service_token(&introspector.0, &introspector.1).await;
    let me = api.get("/v1/auth/me", Some(&service)).await;
    me.expect(401, Some("invalid_token"));
    assert!(
        me.header("www-authenticate")
            .contains("error=\"invalid_token\"")
    );
    // Introspection reports the type rather than refusing it.
    assert_eq!(
        api.introspect(&introspector, &service).await.body["token_type"],
        "service"
    );

    let user = api.user("expiring@example.com").await.str("access_token");
    api.get("/v1/auth/me", Some(&user)).await.expect(200, None);
    // 60 s lifetime + 5 s leeway.
    api.server.clock().advance(66);
    refused(&api, &introspector, "expired user token", &user).await;
    assert!(!api.is_active(&introspector, &service).await);
}
