//! Issue 9 items 4 and 5, issue 15 item 3: the client address behind
//! trusted proxies, every limit as a setting, and failed-login limits that
//! do not lock the owner out. The server's clock stands still, so the
//! back-offs (1 s after a limit is reached) do not run out mid-test.

use serde_json::json;
use tollgate_core::config::Cidr;
use tollgate_server::Clock;
use tollgate_server::testkit::TestServer;

use crate::common::{Answer, Api, PASSWORD};

/// A login attempt from `client`, sent as a proxy would forward it.
async fn login_from(api: &Api, header: (&str, &str), email: &str, password: &str) -> Answer {
    let request = api
        .http
        .post(api.url("/v1/auth/login"))
        .header(header.0, header.1)
        .json(&json!({"email": email, "password": password}));
    Answer::from(request.send().await.unwrap()).await
}

fn xff(address: &str) -> (&'static str, String) {
    ("x-forwarded-for", format!("203.0.113.250, {address}"))
}

fn loopback() -> Vec<Cidr> {
    vec![
        Cidr::parse("127.0.0.0/8").unwrap(),
        Cidr::parse("::1").unwrap(),
    ]
}

/// Registered through the store-backed API, from the test's own address.
async fn owner(api: &Api, email: &str) {
    api.post_json(
        "/v1/auth/register",
        None,
        &json!({"email": email, "password": PASSWORD}),
    )
    .await
    .expect(201, None);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_limit() {
    let api = Api::with(
        TestServer::builder()
            .clock(Clock::manual(Clock::system_now()))
            .configure(|c| {
                c.trusted_proxies = loopback();
                c.login_failures_per_address = 3;
            }),
    )
    .await;
    let (name, a) = xff("198.51.100.1");
    for _ in 0..3 {
        login_from(&api, (name, &a), "nobody@example.com", "wrong password 1")
            .await
            .expect(401, Some("invalid_credentials"));
    }
    let refused = login_from(&api, (name, &a), "other@example.com", "wrong password 1").await;
    refused.expect(429, Some("too_many_attempts"));
    assert!(!refused.header("retry-after").is_empty());
    // Another client behind the same proxy is not held back, by either header.
    let (_, b) = xff("198.51.100.2");
    login_from(&api, (name, &b), "other@example.com", "wrong password 1")
        .await
        .expect(401, Some("invalid_credentials"));
    login_from(
        &api,
        ("forwarded", "for=198.51.100.3;proto=https"),
        "other@example.com",
        "wrong password 1",
    )
    .await
    .expect(401, Some("invalid_credentials"));
    // Garbage where the client should be: attributed to the proxy itself,
    // never to a forged address.
    login_from(
        &api,
        ("x-forwarded-for", "not-an-address"),
        "x@example.com",
        "wrong password 1",
    )
    .await
    .expect(401, Some("invalid_credentials"));
}

#[tokio::test]
async fn from_an_untrusted_peer_forwarding_headers_are_ignored() {
    let api = Api::with(
        TestServer::builder()
            .clock(Clock::manual(Clock::system_now()))
            .configure(|c| c.login_failures_per_address = 3),
    )
    .await;
    assert!(
        api.server.config().trusted_proxies.is_empty(),
        "default: none"
    );
    for i in 0..3 {
        let (name, value) = xff(&format!("198.51.100.{i}"));
        login_from(
            &api,
            (name, &value),
            "nobody@example.com",
            "wrong password 1",
        )
        .await
        .expect(401, Some("invalid_credentials"));
    }
    // A fresh forged address does not escape the peer's limit.
    let (name, value) = xff("198.51.100.99");
    login_from(
        &api,
        (name, &value),
        "nobody@example.com",
        "wrong password 1",
    )
    .await
    .expect(429, Some("too_many_attempts"));
}

/// Issue 15 item 3: five wrong guesses from address A do not keep the owner
/// out from address B; A itself is held back, and so is a distributed
/// guesser once the global per-account limit is reached, but never an
/// address that has not failed.
#[tokio::test]
async fn wrong_guesses_from_one_address_do_not_lock_the_owner_out() {
    let api = Api::with(
        TestServer::builder()
            .clock(Clock::manual(Clock::system_now()))
            .configure(|c| {
                c.trusted_proxies = loopback();
                c.login_failures_per_account_global = 8;
            }),
    )
    .await;
    assert_eq!(
        api.server.config().login_failures_per_account,
        5,
        "the default"
    );
    owner(&api, "owner@example.com").await;
    let (name, a) = xff("198.51.100.1");
    for _ in 0..5 {
        login_from(&api, (name, &a), "owner@example.com", "wrong password 1")
            .await
            .expect(401, Some("invalid_credentials"));
    }
    login_from(&api, (name, &a), "owner@example.com", PASSWORD)
        .await
        .expect(429, Some("too_many_attempts"));
    let (_, b) = xff("198.51.100.2");
    login_from(&api, (name, &b), "owner@example.com", PASSWORD)
        .await
        .expect(200, None);

    // A distributed guesser: more addresses, three guesses each, reach the
    // global limit (8). Each address that failed is then held back at once;
    // the owner, from an address that never failed, still gets in.
    for i in 10..13 {
        let (_, c) = xff(&format!("198.51.100.{i}"));
        for _ in 0..3 {
            let answer =
                login_from(&api, (name, &c), "owner@example.com", "wrong password 1").await;
            assert!(
                matches!(answer.status.as_u16(), 401 | 429),
                "{}",
                answer.status
            );
        }
    }
    let (_, c) = xff("198.51.100.10");
    login_from(&api, (name, &c), "owner@example.com", PASSWORD)
        .await
        .expect(429, Some("too_many_attempts"));
    let (_, d) = xff("198.51.100.20");
    login_from(&api, (name, &d), "owner@example.com", PASSWORD)
        .await
        .expect(200, None);
}

#[tokio::test]
async fn every_limit_comes_from_the_settings() {
    let api = Api::with(
        TestServer::builder()
            .clock(Clock::manual(Clock::system_now()))
            .configure(|c| {
                c.registrations_per_address = 2;
                c.introspections_per_client = 1;
            }),
    )
    .await;
    for i in 0..2 {
        api.post_json(
            "/v1/auth/register",
            None,
            &json!({"email": format!("r{i}@example.com"), "password": PASSWORD}),
        )
        .await
        .expect(201, None);
    }
    api.post_json(
        "/v1/auth/register",
        None,
        &json!({"email": "r9@example.com", "password": PASSWORD}),
    )
    .await
    .expect(429, Some("too_many_attempts"));

    // One per second, bursts of two.
    let introspector = api.client("rs-limited", &["introspect"]).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(api.introspect(&introspector, "tgr_x").await.status.as_u16());
    }
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");

    // The defaults, as `config explain` lists them.
    let defaults = tollgate_core::config::Config::development();
    assert_eq!(
        (
            defaults.introspections_per_client,
            defaults.login_failures_per_account,
            defaults.login_failures_per_account_global,
            defaults.login_failures_per_address,
            defaults.registrations_per_address,
        ),
        (100_000, 5, 100, 50, 20)
    );
}
