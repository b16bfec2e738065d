//! What the SDK adds to a token's validation. Figures and targets:
//! BENCHMARKS.md ("SDK").
//!
//! Run: `cargo bench -p tollgate-client --bench validation`.
//!
//! - `cached/authenticate`: `Authenticator::authenticate` of a token it
//!   validated before (a cache hit: hash and find the token, then
//!   `Validator::recheck` — time, type, revocation). Target ≤ 300 ns.
//! - `first/core_validate` and `first/authenticate`: a token seen for the
//!   first time, through the core validator alone and through the SDK (the
//!   same validation, plus the cache lookup that misses and the insert).
//!   Target: the SDK within 1.3× of the core.
//!
//! The tokens are realistic user tokens (EdDSA, every contract claim, a
//! plan's permissions, roles), and the revocation set holds 10 000 tokens,
//! 1 000 sessions and 1 000 users, as in the core's benchmark. The SDK runs
//! in its `TestIssuer` mode, which takes exactly the production path of a
//! JWKS authenticator whose feed is live (keys in memory, revocations from
//! the set), without HTTP. Times are the benchmark thread's CPU time, like
//! the core's benchmark, so compilers sharing the machine do not skew them.

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use cpu_time::ThreadTime;
use criterion::{Bencher, Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use tollgate_client::testing::TestIssuer;
use tollgate_client::{Authenticator, Expect};
use tollgate_core::{ValidationPolicy, Validator};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Fills the issuer's revocation set like a busy deployment's.
fn realistic_revocations(issuer: &TestIssuer, auth: &Authenticator) {
    let until = now() + 3600;
    for i in 0..10_000 {
        auth.revocations()
            .revoke_token(&format!("revoked-jti-{i:08}"), until);
    }
    for i in 0..1_000 {
        issuer.revoke_session(&format!("ended-sid-{i:06}"));
        auth.revocations()
            .revoke_user(&format!("user-{i:06}"), now() - 3600, until);
    }
}

fn token(issuer: &TestIssuer, n: usize) -> String {
    issuer
        .user(&format!("bench-user-{n}"))
        .plan("pro")
        .role("member")
        .role("beta")
        .email("someone.with.a.long.address@example.com")
        .ttl(3600)
        .mint()
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
    let issuer = TestIssuer::new();
    let auth = issuer.authenticator();
    realistic_revocations(&issuer, &auth);
    let validator = Validator::new(
        ValidationPolicy::new(issuer.issuer(), vec!["api".into()]).unwrap(),
        issuer.verifying_keys().clone(),
    );

    // The async API answers a cache hit without waiting: poll it once.
    let sdk = |auth: &Authenticator, token: &str| {
        auth.authenticate(token, Expect::Access)
            .now_or_never()
            .expect("a local judgement never waits")
            .unwrap()
    };

    let mut cached = c.benchmark_group("cached");
    let hot = token(&issuer, 0);
    sdk(&auth, &hot);
    cached.bench_function("authenticate", |b| {
        cpu_iter(b, || sdk(&auth, black_box(&hot)))
    });
    cached.finish();

    let mut first = c.benchmark_group("first");
    first.bench_function("core_validate", |b| {
        // The same never-seen tokens as below, so both read cold bytes.
        let revocations = auth.revocations();
        b.iter_custom(|iters| {
            let tokens: Vec<String> = (0..iters as usize).map(|n| token(&issuer, n)).collect();
            let start = ThreadTime::now();
            for token in &tokens {
                black_box(
                    validator
                        .validate(black_box(token), Expect::Access, now(), revocations)
                        .unwrap(),
                );
            }
            start.elapsed()
        })
    });
    first.bench_function("authenticate", |b| {
        // Every iteration must be a miss: each sample gets an empty cache
        // and tokens it has never seen (made outside the timed loop).
        b.iter_custom(|iters| {
            let fresh = issuer.authenticator();
            realistic_revocations(&issuer, &fresh);
            let tokens: Vec<String> = (0..iters as usize).map(|n| token(&issuer, n)).collect();
            let start = ThreadTime::now();
            for token in &tokens {
                black_box(sdk(&fresh, black_box(token)));
            }
            start.elapsed()
        })
    });
    first.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
