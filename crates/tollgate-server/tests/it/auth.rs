//! Register, login, me, sessions, and login safety: one answer for every
//! failure, back-off per account and per address, bounded hashing, and
//! registrations limited per address.

use crate::common::{Api, PASSWORD};
use serde_json::json;
use tollgate_server::Clock;
use tollgate_server::testkit::TestServer;

fn credentials(email: &str, password: &str) -> serde_json::Value {
    json!({"email": email, "password": password})
}

#[tokio::test]
async fn register_login_me_and_sessions() {
    let api = Api::start().await;
    let registered = api
        .post_json(
            "/v1/auth/register",
            None,
            &credentials("  Ann@Example.com ", PASSWORD),
        )
        .await;
    registered.expect(201, None);
    assert_eq!(registered.body["email"], "ann@example.com");
    let user_id = registered.str("user_id");
    // A taken e-mail: the same answer as a free one, another id, and the
    // owner's account untouched (no enumeration, SECURITY.md G).
    let again = api
        .post_json(
            "/v1/auth/register",
            None,
            &credentials("ann@example.com", "another long password"),
        )
        .await;
    again.expect(201, None);
    assert_eq!(again.body["email"], "ann@example.com");
    assert_ne!(again.str("user_id"), user_id);
    assert_eq!(
        again.body.as_object().map(|o| o.len()),
        registered.body.as_object().map(|o| o.len())
    );
    api.post_json(
        "/v1/auth/login",
        None,
        &credentials("ann@example.com", "another long password"),
    )
    .await
    .expect(401, Some("invalid_credentials"));
    api.post_json(
        "/v1/auth/register",
        None,
        &credentials("bob@example.com", "short"),
    )
    .await
    .expect(400, Some("weak_password"));
    api.post_json(
        "/v1/auth/register",
        None,
        &credentials("bob@example.com", "password123"),
    )
    .await
    .expect(400, Some("weak_password"));
    api.post_json(
        "/v1/auth/register",
        None,
        &credentials("not-an-email", PASSWORD),
    )
    .await
    .expect(400, Some("invalid_email"));

    let login = api.login("ANN@example.com", PASSWORD).await;
    assert_eq!(login.header("cache-control"), "no-store");
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 60);
    let access = login.str("access_token");
    let me = api.get("/v1/auth/me", Some(&access)).await;
    me.expect(200, None);
    assert_eq!(me.body["sub"], user_id.as_str());
    assert_eq!(me.body["email"], "ann@example.com");
    assert_eq!(me.body["plan"], "free");
    assert_eq!(me.body["roles"], json!([]));
    assert_eq!(
        me.body["permissions"],
        json!(["tool:search", "tool:summarize"])
    );
    let sid = me.str("sid");

    let other = api.login("ann@example.com", PASSWORD).await;
    let sessions = api.get("/v1/sessions", Some(&access)).await;
    sessions.expect(200, None);
    let list = sessions.body["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let current: Vec<_> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["sid"], sid.as_str());
    assert_eq!(current[0]["client_id"], "tollgate");

    // Another user cannot see or end Ann's sessions.
    let bob = api.user("bob@example.com").await;
    let bob_access = bob.str("access_token");
    assert_eq!(
        api.get("/v1/sessions", Some(&bob_access)).await.body["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let answer = api
        .http
        .delete(api.url(&format!("/v1/sessions/{sid}")))
        .bearer_auth(&bob_access)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    api.get("/v1/auth/me", Some(&access))
        .await
        .expect(200, None);
    // Ann ends her other session.
    let other_sid = api
        .get("/v1/auth/me", Some(&other.str("access_token")))
        .await
        .str("sid");
    let answer = api
        .http
        .delete(api.url(&format!("/v1/sessions/{other_sid}")))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    assert_eq!(
        api.get("/v1/sessions", Some(&access)).await.body["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let missing = api.get("/v1/auth/me", None).await;
    missing.expect(401, Some("missing_token"));
    assert!(missing.header("www-authenticate").starts_with("Bearer"));
}

#[tokio::test]
async fn unknown_email_wrong_password_and_disabled_user_get_one_answer() {
    let api = Api::start().await;
    let login = api.user("one@example.com").await;
    let id = api
        .get("/v1/auth/me", Some(&login.str("access_token")))
        .await
        .str("sub");
    let wrong = api
        .post_json(
            "/v1/auth/login",
            None,
            &credentials("one@example.com", "wrong password!"),
        )
        .await;
    let unknown = api
        .post_json(
            "/v1/auth/login",
            None,
            &credentials("nobody@example.com", PASSWORD),
        )
        .await;
    api.server.disable_in_store(&id).await;
    let disabled = api
        .post_json(
            "/v1/auth/login",
            None,
            &credentials("one@example.com", PASSWORD),
        )
        .await;
    let malformed = api
        .post_json(
            "/v1/auth/login",
            None,
            &credentials("not an email", PASSWORD),
        )
        .await;
    for answer in [&wrong, &unknown, &disabled, &malformed] {
        answer.expect(401, Some("invalid_credentials"));
        assert_eq!(answer.text, wrong.text);
    }
}

#[tokio::test]
async fn repeated_failures_back_off_per_account_without_locking_the_owner_out_for_long() {
    // A manual clock: the back-off is whole seconds, so a run crossing a
    // second boundary on the system clock would see a lock end early.
    let api = Api::with(TestServer::builder().clock(Clock::manual(Clock::system_now()))).await;
    api.user("locked@example.com").await;
    for _ in 0..5 {
        api.post_json(
            "/v1/auth/login",
            None,
            &credentials("locked@example.com", "wrong password!"),
        )
        .await
        .expect(401, Some("invalid_credentials"));
    }
    // Even the right password waits now.
    let limited = api
        .post_json(
            "/v1/auth/login",
            None,
            &credentials("locked@example.com", PASSWORD),
        )
        .await;
    limited.expect(429, Some("too_many_attempts"));
    let wait: u64 = limited.header("retry-after").parse().unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    // Another account from the same address is not affected.
    api.user("free@example.com").await;
    // The soft lock ends after the back-off; a success clears the count.
    api.server.clock().advance(wait);
    api.login("locked@example.com", PASSWORD).await;
    api.post_json(
        "/v1/auth/login",
        None,
        &credentials("locked@example.com", "wrong password!"),
    )
    .await
    .expect(401, Some("invalid_credentials"));
}

#[tokio::test]
async fn repeated_failures_back_off_per_address() {
    let api = Api::with(TestServer::builder().clock(Clock::manual(Clock::system_now()))).await;
    api.user("victim@example.com").await;
    let mut limited = false;
    for i in 0..60 {
        let answer = api
            .post_json(
                "/v1/auth/login",
                None,
                &credentials(&format!("spray{i}@example.com"), "wrong password!"),
            )
            .await;
        if answer.status == 429 {
            answer.expect(429, Some("too_many_attempts"));
            limited = true;
            break;
        }
        answer.expect(401, Some("invalid_credentials"));
    }
    assert!(
        limited,
        "spraying many accounts from one address was never slowed down"
    );
    api.post_json(
        "/v1/auth/login",
        None,
        &credentials("victim@example.com", PASSWORD),
    )
    .await
    .expect(429, Some("too_many_attempts"));
}

#[tokio::test]
async fn registration_can_be_closed_and_there_are_no_default_accounts() {
    let api = Api::with(TestServer::builder().configure(|c| {
        c.registration_open = false;
        c.bootstrap_admin_email = None;
        c.bootstrap_admin_password = None;
    }))
    .await;
    api.post_json(
        "/v1/auth/register",
        None,
        &credentials("new@example.com", PASSWORD),
    )
    .await
    .expect(403, Some("registration_closed"));
    let users = api.server.store().list_users(None, 100).await.unwrap();
    assert!(users.is_empty(), "{users:?}");
    for (email, password) in [("admin@tollgate.test", PASSWORD), ("admin", "admin")] {
        api.post_json("/v1/auth/login", None, &credentials(email, password))
            .await
            .expect(401, Some("invalid_credentials"));
    }
}

#[tokio::test]
async fn the_bootstrap_admin_is_an_enterprise_admin_and_is_created_once() {
    let api = Api::start().await;
    let admin = api.admin_token().await;
    let me = api.get("/v1/auth/me", Some(&admin)).await;
    assert_eq!(me.body["roles"], json!(["admin"]));
    assert_eq!(me.body["plan"], "enterprise");
    let server = api.server.restart().await;
    let users = server.store().list_users(None, 100).await.unwrap();
    assert_eq!(users.len(), 1);
}

#[tokio::test]
async fn many_parallel_logins_are_bounded_and_health_is_unaffected() {
    let api = Api::with(TestServer::builder()).await;
    api.user("crowd@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let http = api.http.clone();
        let url = api.url("/v1/auth/login");
        tasks.push(tokio::spawn(async move {
            let response = http
                .post(url)
                .json(&credentials("crowd@example.com", PASSWORD))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry = response.headers().get("retry-after").is_some();
            (status, retry)
        }));
    }
    api.get("/healthz", None).await.expect(200, None);
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert!(
        outcomes.iter().all(|(s, _)| *s == 200 || *s == 503),
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .filter(|(s, _)| *s == 503)
            .all(|(_, retry)| *retry)
    );
    assert!(outcomes.iter().any(|(s, _)| *s == 200));
    assert!(
        outcomes.iter().any(|(s, _)| *s == 503),
        "200 simultaneous logins were all hashed at once"
    );
}

#[tokio::test]
async fn registrations_are_limited_per_address_with_retry_after() {
    let clock = Clock::manual(Clock::system_now());
    let api = Api::with(
        TestServer::builder()
            .clock(clock.clone())
            .registration_limit(3),
    )
    .await;
    // Every attempt counts, refused ones too (each costs a hash or says
    // whether an address is taken).
    register(&api, "first@example.com", PASSWORD)
        .await
        .expect(201, None);
    register(&api, "second@example.com", "short")
        .await
        .expect(400, Some("weak_password"));
    register(&api, "first@example.com", PASSWORD)
        .await
        .expect(201, None);
    let limited = register(&api, "third@example.com", PASSWORD).await;
    limited.expect(429, Some("too_many_attempts"));
    let wait: u64 = limited.header("retry-after").parse().unwrap();
    assert!((1..=300).contains(&wait), "{wait}");
    // Nothing was created, and logins from the same address still work.
    assert!(
        api.server
            .store()
            .find_user_by_email("third@example.com")
            .await
            .unwrap()
            .is_none()
    );
    api.login("first@example.com", PASSWORD).await;
    // After the wait, registering works again; each further attempt waits
    // twice as long.
    clock.advance(wait);
    register(&api, "third@example.com", PASSWORD)
        .await
        .expect(201, None);
    let again = register(&api, "fourth@example.com", PASSWORD).await;
    again.expect(429, Some("too_many_attempts"));
    let longer: u64 = again.header("retry-after").parse().unwrap();
    assert!(longer > wait, "{longer} after {wait}");
}

async fn register(api: &Api, email: &str, password: &str) -> crate::common::Answer {
    api.post_json("/v1/auth/register", None, &credentials(email, password))
        .await
}
