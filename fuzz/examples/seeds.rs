//! Writes the seed inputs in `fuzz/seeds/<target>/` from the fixtures:
//! real tokens, their headers and payloads, key sets, wire bodies, plans
//! files and stored key blobs. Run from the repository root:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! The seeds are committed; the corpora (`fuzz/corpus/`) are not.

use std::fs;
use std::path::Path;

use tollgate_core::keys::seal::seal;
use tollgate_core::wire::{
    Fingerprint, FingerprintKey, Introspection, RevocationEvent, RevocationKind, RevocationPage,
};
use tollgate_core::{Algorithm, ManagedKey, Secret, VerifyingKeys};
use tollgate_fuzz::{FIXTURE, ISSUER, NOW, reference_b64_decode};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)
    };
    let fx = &*FIXTURE;

    for (i, token) in fx.tokens.iter().enumerate() {
        write("validator", &format!("token-{i:02}"), token.as_bytes())?;
        let parts: Vec<&str> = token.split('.').collect();
        if i < 2 {
            let header = reference_b64_decode(parts[0].as_bytes()).expect("header");
            write("jws_header", &format!("header-{i}.json"), &header)?;
            write("jws_header", &format!("segment-{i}"), parts[0].as_bytes())?;
            write("base64", &format!("signature-{i}"), parts[2].as_bytes())?;
        }
        if i % 2 == 0 {
            let payload = reference_b64_decode(parts[1].as_bytes()).expect("payload");
            write("claims", &format!("claims-{:02}.json", i / 2), &payload)?;
            write(
                "base64",
                &format!("payload-{:02}", i / 2),
                parts[1].as_bytes(),
            )?;
        }
    }
    write(
        "jws_header",
        "refused.json",
        br#"{"alg":"EdDSA","kid":"k","typ":"at+jwt","jku":"https://127.0.0.1/","crit":["exp"]}"#,
    )?;

    let keys: Vec<_> = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256]
        .into_iter()
        .map(|alg| {
            ManagedKey::generate(alg, NOW)
                .and_then(|k| k.verifying_key())
                .expect("key generation")
        })
        .collect();
    let jwks = VerifyingKeys::new(keys).to_jwks();
    write(
        "jwks",
        "jwks.json",
        &serde_json::to_vec(&jwks).expect("jwks"),
    )?;
    for (i, jwk) in jwks.keys.iter().enumerate() {
        write(
            "jwks",
            &format!("jwk-{i}.json"),
            &serde_json::to_vec(jwk).expect("jwk"),
        )?;
    }

    for (i, claims) in fx.claims.iter().step_by(2).take(2).enumerate() {
        let answer = Introspection::active(claims);
        write(
            "wire",
            &format!("introspection-{i}.json"),
            &serde_json::to_vec(&answer).expect("json"),
        )?;
    }
    write("wire", "inactive.json", br#"{"active":false}"#)?;
    let fingerprint = Fingerprint {
        service: "tollgate".to_owned(),
        issuer: ISSUER.to_owned(),
        audiences: vec!["api".to_owned()],
        algorithms: vec!["EdDSA".to_owned()],
        keys: vec![FingerprintKey {
            kid: fx.ed.kid().to_owned(),
            alg: "EdDSA".to_owned(),
            thumbprint: fx.ed.kid().to_owned(),
            status: None,
        }],
        access_token_ttl: Some(900),
        refresh_token_ttl: None,
        service_token_ttl: Some(3600),
        leeway: Some(30),
        secret_fingerprint: None,
        previous_secret_fingerprint: None,
        previous_secret_until: None,
    };
    write(
        "wire",
        "fingerprint.json",
        &serde_json::to_vec(&fingerprint).expect("json"),
    )?;
    let page = RevocationPage {
        events: vec![RevocationEvent {
            cursor: 7,
            kind: RevocationKind::Session,
            value: "sid-1".to_owned(),
            at: NOW,
            expires_at: NOW + 900,
        }],
        next_cursor: 7,
        has_more: false,
    };
    write(
        "wire",
        "revocations.json",
        &serde_json::to_vec(&page).expect("json"),
    )?;

    write(
        "plans",
        "plans.toml",
        br#"base_rate_per_minute = 60

[plans.pro]
rate_multiplier = 3

[plans.team]
rate_multiplier = 4
tools = ["search", "summarize", "code_interpreter"]
ws_connections = 20
permissions = ["export:csv"]

[plans.staff]
rate_multiplier = 1
all_tools = true
ws_connections = 1
"#,
    )?;

    // Just over the size a plan's permissions may take in a token.
    let tools: Vec<String> = (0..900).map(|i| format!("\"t{i}\"")).collect();
    let too_large = format!("[plans.pro]\ntools = [{}]\n", tools.join(","));
    write("plans", "too-large.toml", too_large.as_bytes())?;

    let kid = fx.ed.kid();
    let material = Secret::from("key material");
    for (name, master) in [("sealed", Some(&fx.master)), ("plain", None)] {
        let mut blob = vec![u8::try_from(kid.len()).expect("short kid")];
        blob.extend_from_slice(kid.as_bytes());
        blob.extend_from_slice(&seal(master, kid, &material).expect("seal"));
        write("seal", name, &blob)?;
    }
    Ok(())
}
