//! Revocation propagation: from `POST /oauth/revoke` at the token service
//! to the SDK refusing the token, over loopback. Figures: BENCHMARKS.md
//! ("SDK").
//!
//! Run: `cargo run --release -p tollgate-e2e --example propagation [-- N]`
//! (N revocations, default 1000).
//!
//! Boots the real token service (the test-kit: SQLite with durable
//! revocation writes, on 127.0.0.1:0) and an SDK `Authenticator` following
//! its revocation feed, in one process. For each of N service tokens, which
//! the SDK has already validated (so a stale cache would still accept it):
//! start the clock, `POST /oauth/revoke` it, then ask the SDK until it says
//! `revoked`; stop the clock. Prints the distribution; the target is
//! p99 < 100 ms.

use std::time::{Duration, Instant};

use tollgate_client::{Authenticator, Expect, FeedState};
use tollgate_core::Secret;
use tollgate_server::testkit::TestServer;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let server = TestServer::builder()
        .configure(|config| config.service_token_ttl = 3600)
        .start()
        .await;
    let secret = server
        .create_client("propagation", &["introspect", "revoke"])
        .await;
    let auth = Authenticator::builder(server.issuer(), "api")
        .client_credentials("propagation", Secret::from(secret.as_str()))
        .leeway(server.config().leeway)
        .build()
        .await
        .expect("the SDK starts");
    while auth.health().feed != FeedState::Live {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let http = reqwest::Client::new();

    eprintln!("minting and validating {n} service tokens…");
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        let answer: serde_json::Value = http
            .post(server.url("/oauth/token"))
            .basic_auth("propagation", Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("the token endpoint answers")
            .json()
            .await
            .expect("a token answer");
        let token = answer["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned();
        auth.authenticate(&token, Expect::Service)
            .await
            .expect("a fresh token is good");
        tokens.push(token);
    }

    eprintln!("revoking them one by one…");
    let mut latencies = Vec::with_capacity(n);
    for token in &tokens {
        let start = Instant::now();
        let status = http
            .post(server.url("/oauth/revoke"))
            .basic_auth("propagation", Some(&secret))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .expect("the revocation endpoint answers")
            .status();
        assert!(status.is_success(), "revocation answered {status}");
        loop {
            match auth.authenticate(token, Expect::Service).await {
                Err(err) if err.code() == "revoked" => break,
                Ok(_) => tokio::task::yield_now().await,
                Err(err) => panic!("unexpected refusal: {err}"),
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "a revocation never arrived"
            );
        }
        latencies.push(start.elapsed());
    }

    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!(
        "revocation propagation, POST /oauth/revoke → SDK refuses ({n} revocations, loopback)"
    );
    println!("| min | p50 | p90 | p99 | max | mean |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {} |",
        ms(latencies[0]),
        ms(at(0.50)),
        ms(at(0.90)),
        ms(at(0.99)),
        ms(latencies[latencies.len() - 1]),
        ms(mean)
    );
    let p99 = at(0.99);
    println!(
        "target p99 < 100 ms: {}",
        if p99 < Duration::from_millis(100) {
            "met"
        } else {
            "NOT met"
        }
    );
}
