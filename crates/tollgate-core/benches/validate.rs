//! Validation cost per algorithm, next to the raw primitive on exactly the
//! same bytes, and next to `jsonwebtoken` (aws-lc-rs backend) decoding the
//! same token. Figures and targets: BENCHMARKS.md.
//!
//! Run: `cargo bench -p tollgate-core --bench validate`.
//!
//! For each of EdDSA, ES256, RS256 and HS256, with a realistic user access
//! token (every contract claim, an e-mail, 3 roles, 5 permissions, 2
//! audiences):
//! - `validate`: `Validator::validate`, the full path including a lookup in
//!   an in-memory revocation set of 10 000 tokens, 1 000 sessions and
//!   1 000 users;
//! - `raw_verify`: aws-lc-rs `ParsedPublicKey::verify_sig` (or
//!   `hmac::verify`) on the token's signing input and decoded signature;
//! - `jsonwebtoken_decode`: `jsonwebtoken::decode` into a typed claims
//!   struct with issuer and audience checks;
//! - `mint`: `Minter::user`.
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`),
//! not wall time: on a machine shared with compilers, wall time counts the
//! moments the thread was not running and makes ratios meaningless.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cpu_time::ThreadTime;
use criterion::{Bencher, Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use tollgate_core::claims::{Minter, UserGrant};
use tollgate_core::keys::{Algorithm, ManagedKey, VerifyingKeys};
use tollgate_core::validate::{Expect, Revocations, ValidationPolicy, Validator};
use tollgate_core::{Secret, UnixTime};

const ISSUER: &str = "https://auth.tollgate.example";
const HS_SECRET: &[u8] = b"benchmark-shared-secret-0123456789abcdef";

/// A revocation view like the server's and the SDK's: hash sets in memory.
struct MemoryRevocations {
    jtis: HashSet<String>,
    sids: HashSet<String>,
    users: HashMap<String, UnixTime>,
}

impl MemoryRevocations {
    fn realistic(now: UnixTime) -> MemoryRevocations {
        MemoryRevocations {
            jtis: (0..10_000).map(|i| format!("revoked-jti-{i:08}")).collect(),
            sids: (0..1_000).map(|i| format!("ended-sid-{i:06}")).collect(),
            users: (0..1_000)
                .map(|i| (format!("user-{i:06}"), now - 3600))
                .collect(),
        }
    }
}

impl Revocations for MemoryRevocations {
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

/// The claims as a `jsonwebtoken` user would declare them.
#[derive(Deserialize)]
#[allow(dead_code)]
struct JwtClaims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    exp: u64,
    iat: u64,
    nbf: u64,
    jti: String,
    client_id: String,
    scope: String,
    token_type: String,
    sid: String,
    email: String,
    roles: Vec<String>,
    plan: String,
    permissions: Vec<String>,
}

fn grant() -> UserGrant {
    UserGrant {
        sub: "user-7f3a9c2e-5b1d-4e8a-9c6f-2d4b8a1e3f57".into(),
        sid: "sid-Qm9vZ2xlIGlzIG5vdCBhIHNlc3Npb24".into(),
        email: "ada.lovelace@analytical-engines.example".into(),
        roles: vec!["user".into(), "beta-tester".into(), "support".into()],
        plan: "pro".into(),
        permissions: vec![
            "tool:search".into(),
            "tool:code".into(),
            "chat:send".into(),
            "chat:read".into(),
            "usage:read".into(),
        ],
        client_id: "web-app".into(),
        scope: "openid profile email tools".into(),
    }
}

fn now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The raw primitive over the same bytes the validator verifies. (Built
/// once; the size of the HMAC variant does not matter.)
#[allow(clippy::large_enum_variant)]
enum Raw {
    Public(ParsedPublicKey),
    Hmac(hmac::Key),
}

impl Raw {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Raw::Public(key) => key.verify_sig(message, signature).is_ok(),
            Raw::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }
}

fn raw_key(alg: Algorithm, key: &ManagedKey) -> Raw {
    let der = key.material().expose();
    match alg {
        Algorithm::EdDSA => {
            let pair = Ed25519KeyPair::from_pkcs8(der).unwrap();
            Raw::Public(
                ParsedPublicKey::new(&signature::ED25519, pair.public_key().as_ref()).unwrap(),
            )
        }
        Algorithm::ES256 => {
            let pair =
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der).unwrap();
            Raw::Public(
                ParsedPublicKey::new(
                    &signature::ECDSA_P256_SHA256_FIXED,
                    pair.public_key().as_ref(),
                )
                .unwrap(),
            )
        }
        Algorithm::RS256 => {
            let pair = RsaKeyPair::from_pkcs8(der).unwrap();
            Raw::Public(
                ParsedPublicKey::new(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    pair.public_key().as_ref(),
                )
                .unwrap(),
            )
        }
        Algorithm::HS256 => Raw::Hmac(hmac::Key::new(hmac::HMAC_SHA256, HS_SECRET)),
    }
}

fn jwt_key(alg: Algorithm, key: &ManagedKey) -> jsonwebtoken::DecodingKey {
    match key.verifying_key().unwrap().to_jwk() {
        Some(jwk) => {
            let theirs: jsonwebtoken::jwk::Jwk =
                serde_json::from_str(&serde_json::to_string(&jwk).unwrap()).unwrap();
            jsonwebtoken::DecodingKey::from_jwk(&theirs).unwrap()
        }
        None => {
            assert_eq!(alg, Algorithm::HS256);
            jsonwebtoken::DecodingKey::from_secret(HS_SECRET)
        }
    }
}

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
    }
}

/// Runs `routine` `iters` times and reports the thread CPU time it took.
fn cpu_iter<T>(b: &mut Bencher<'_>, mut routine: impl FnMut() -> T) {
    b.iter_custom(|iters| {
        let start = ThreadTime::now();
        for _ in 0..iters {
            black_box(routine());
        }
        start.elapsed()
    });
}

fn bench(c: &mut Criterion) {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let now = now();
    let revocations = MemoryRevocations::realistic(now);
    let audiences = vec!["api".to_owned(), "chat".to_owned()];
    // Other trusted keys, as after a rotation.
    let others: Vec<_> = [Algorithm::EdDSA, Algorithm::ES256]
        .map(|alg| {
            ManagedKey::generate(alg, now)
                .unwrap()
                .verifying_key()
                .unwrap()
        })
        .to_vec();
    for alg in Algorithm::ALL {
        let key = match alg {
            Algorithm::HS256 => ManagedKey::from_hmac_secret(&Secret::new(HS_SECRET), now),
            _ => ManagedKey::generate(alg, now),
        }
        .unwrap();
        let minter = Minter::new(ISSUER, audiences.clone(), key.signing_key().unwrap()).unwrap();
        let (token, _) = minter.user(grant(), now, 3600).unwrap();
        let keys = VerifyingKeys::new(others.iter().cloned().chain([key.verifying_key().unwrap()]));
        let policy = ValidationPolicy::new(ISSUER, vec!["api".into()])
            .unwrap()
            .with_algorithms(&Algorithm::ALL);
        let validator = Validator::new(policy, keys);
        assert!(
            validator
                .validate(&token, Expect::Access, now, &revocations)
                .is_ok()
        );

        let (signing_input, sig) = token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let raw = raw_key(alg, &key);
        assert!(raw.verify(signing_input.as_bytes(), &signature));

        let jwt_key = jwt_key(alg, &key);
        let mut jwt_validation = jsonwebtoken::Validation::new(jwt_alg(alg));
        jwt_validation.set_issuer(&[ISSUER]);
        jwt_validation.set_audience(&["api"]);
        jwt_validation.validate_nbf = true;
        assert!(jsonwebtoken::decode::<JwtClaims>(&token, &jwt_key, &jwt_validation).is_ok());

        let mut group = c.benchmark_group(alg.as_str());
        group.bench_function("validate", |b| {
            cpu_iter(b, || {
                validator
                    .validate(black_box(&token), Expect::Access, now, &revocations)
                    .unwrap()
            })
        });
        group.bench_function("raw_verify", |b| {
            cpu_iter(b, || {
                assert!(raw.verify(black_box(signing_input.as_bytes()), black_box(&signature)))
            })
        });
        group.bench_function("jsonwebtoken_decode", |b| {
            cpu_iter(b, || {
                jsonwebtoken::decode::<JwtClaims>(black_box(&token), &jwt_key, &jwt_validation)
                    .unwrap()
            })
        });
        group.bench_function("mint", |b| {
            cpu_iter(b, || minter.user(grant(), now, 900).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
