//! Issue 15: hostile input found by testing the release build as an
//! attacker would. One test (or a few) per item.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tollgate_server::Clock;
use tollgate_server::testkit::{StoreHook, TestServer};

use crate::common::Api;

const FORM: &str = "application/x-www-form-urlencoded";
/// The server's body limit (64 KiB).
const BODY_LIMIT: usize = 64 * 1024;

/// ~17 000 distinct empty names in just under 64 KiB (issue 15, item 1:
/// pairwise duplicate checks made this cost ~290 ms of CPU per request).
fn empty_names(budget: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut out = String::new();
    let add = |name: String, out: &mut String| {
        if out.len() + name.len() + 1 > budget {
            return false;
        }
        out.push_str(&name);
        out.push('&');
        true
    };
    for a in ALPHABET {
        for b in ALPHABET {
            if !add(format!("{}{}", *a as char, *b as char), &mut out) {
                return out;
            }
        }
    }
    for a in ALPHABET {
        for b in ALPHABET {
            for c in ALPHABET {
                if !add(
                    format!("{}{}{}", *a as char, *b as char, *c as char),
                    &mut out,
                ) {
                    return out;
                }
            }
        }
    }
    out
}

/// Item 1: a form of ~17 000 empty names is refused as a whole with 400
/// `invalid_request` at every OAuth endpoint, even when the parameters
/// that matter come first and are valid (main parsed all of it and issued
/// the token).
#[tokio::test]
async fn issue_15_forms_with_thousands_of_names_are_refused() {
    let api = Api::start().await;
    let (id, secret) = api.client("svc-many", &["introspect"]).await;
    let prefix = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}&");
    let body = format!("{prefix}{}", empty_names(BODY_LIMIT - prefix.len()));
    assert!(body.len() <= BODY_LIMIT);
    assert!(
        body.matches('&').count() > 16_000,
        "{}",
        body.matches('&').count()
    );
    for path in ["/oauth/token", "/oauth/introspect", "/oauth/revoke"] {
        let answer = crate::common::Answer::from(
            api.http
                .post(api.url(path))
                .header("content-type", FORM)
                .body(body.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        answer.expect(400, Some("invalid_request"));
        assert!(
            answer.body["error_description"]
                .as_str()
                .unwrap()
                .contains("more than 64 parameters"),
            "{path}: {}",
            answer.text
        );
    }
    // Up to the limit, the same request is fine.
    let small = format!(
        "{prefix}{}",
        (0..60).map(|i| format!("x{i}&")).collect::<String>()
    );
    let answer = crate::common::Answer::from(
        api.http
            .post(api.url("/oauth/token"))
            .header("content-type", FORM)
            .body(small)
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer.expect(200, None);
}

/// Item 1: the revocation feed reads its query only once the caller is
/// authorized: an anonymous caller's malformed or huge query is answered
/// 401 without being parsed (main parsed it first and answered 400).
#[tokio::test]
async fn issue_15_the_feed_authenticates_before_reading_its_query() {
    let api = Api::start().await;
    let huge = format!("after=%zz&{}", empty_names(6000));
    for path in ["/v1/revocations", "/v1/revocations/stream"] {
        let answer = api.get(&format!("{path}?{huge}"), None).await;
        answer.expect(401, Some("invalid_client"));
    }
    // An authorized caller's bad query is still a 400.
    let (id, secret) = api.client("svc-feed", &["introspect"]).await;
    let answer = crate::common::Answer::from(
        api.http
            .get(api.url(&format!("/v1/revocations?{huge}")))
            .basic_auth(&id, Some(&secret))
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer.expect(400, Some("invalid_request"));
    let answer = crate::common::Answer::from(
        api.http
            .get(api.url("/v1/revocations?after=0&limit=5"))
            .basic_auth(&id, Some(&secret))
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer.expect(200, None);
}

/// Item 4: the last enabled admin can neither disable nor demote itself
/// (409 `last_admin`, nothing changed); with a second admin it can.
#[tokio::test]
async fn issue_15_the_last_admin_cannot_disable_or_demote_itself() {
    let api = Api::start().await;
    let token = api.admin_token().await;
    let me = api.get("/v1/auth/me", Some(&token)).await;
    let id = me.str("sub");
    let path = format!("/v1/admin/users/{id}");
    for body in [
        serde_json::json!({"disabled": true}),
        serde_json::json!({"roles": []}),
        serde_json::json!({"roles": ["ops"], "disabled": false}),
    ] {
        let answer = api
            .send_json(reqwest::Method::PATCH, &path, Some(&token), &body)
            .await;
        answer.expect(409, Some("last_admin"));
    }
    // Nothing changed: the token still works and the user is still admin.
    let user = api.get(&path, Some(&token)).await;
    user.expect(200, None);
    assert_eq!(user.body["roles"], serde_json::json!(["admin"]));
    assert_eq!(user.body["disabled"], false);
    // Other changes of the last admin are fine.
    api.send_json(
        reqwest::Method::PATCH,
        &path,
        Some(&token),
        &serde_json::json!({"roles": ["admin", "ops"]}),
    )
    .await
    .expect(200, None);
    // With a second admin, the first may step down.
    let other = api.user("second-admin@example.com").await;
    let other_id = api
        .get("/v1/auth/me", Some(&other.str("access_token")))
        .await
        .str("sub");
    api.send_json(
        reqwest::Method::PATCH,
        &format!("/v1/admin/users/{other_id}"),
        Some(&token),
        &serde_json::json!({"roles": ["admin"]}),
    )
    .await
    .expect(200, None);
    api.send_json(
        reqwest::Method::PATCH,
        &path,
        Some(&token),
        &serde_json::json!({"roles": []}),
    )
    .await
    .expect(200, None);
}

/// Item 7: an unknown member in a register or PATCH body is a 400 naming
/// it (main answered `PATCH {"email": …}` with 200 and changed nothing).
#[tokio::test]
async fn issue_15_unknown_members_are_refused_by_name() {
    let api = Api::start().await;
    let token = api.admin_token().await;
    let id = api.get("/v1/auth/me", Some(&token)).await.str("sub");
    let answer = api
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            Some(&token),
            &serde_json::json!({"email": "new@example.com"}),
        )
        .await;
    answer.expect(400, Some("invalid_request"));
    assert_eq!(
        answer.body["error_description"],
        "the JSON body has an unknown member `email`"
    );
    let answer = api
        .post_json(
            "/v1/auth/register",
            None,
            &serde_json::json!({"email": "a@example.com", "password": "correct horse battery", "role": "admin"}),
        )
        .await;
    answer.expect(400, Some("invalid_request"));
    assert_eq!(
        answer.body["error_description"],
        "the JSON body has an unknown member `role`"
    );
    let answer = api
        .post_json(
            "/v1/admin/users",
            Some(&token),
            &serde_json::json!({"email": "b@example.com", "password": "correct horse battery", "é\u{202e}": 1}),
        )
        .await;
    answer.expect(400, Some("invalid_request"));
    assert_eq!(
        answer.body["error_description"],
        "the JSON body has an unknown member `?`"
    );
}

/// Item 2: look-alike and invisible e-mail addresses. The fullwidth form of
/// an existing account's address is that address (NFKC), so it collides:
/// the admin API answers 409 `email_taken`, registration answers like a
/// free address but creates nothing (its usual rule for a taken one).
/// Invisible characters, a Cyrillic look-alike, a trailing dot and two `@`
/// are 400 `invalid_email`. Login normalises the same way, and the token
/// carries the normal form. On main all of these registered and logged in.
#[tokio::test]
async fn issue_15_look_alike_and_invisible_emails() {
    let api = Api::start().await;
    let admin = api.admin_token().await;
    let owner = api.server.admin_email().to_owned();
    assert_eq!(owner, "admin@tollgate.test");
    let fullwidth = "ａｄｍｉｎ@tollgate.test";

    // Not the owner's password: a registration that took would change who
    // can log in with it.
    let body =
        |email: &str| serde_json::json!({"email": email, "password": "a different long password"});
    api.post_json("/v1/admin/users", Some(&admin), &body(fullwidth))
        .await
        .expect(409, Some("email_taken"));
    let registered = api
        .post_json("/v1/auth/register", None, &body(fullwidth))
        .await;
    registered.expect(201, None);
    assert_eq!(registered.str("email"), owner);
    // Nothing was created: the fullwidth address with the new password
    // does not log in; the owner's password still does.
    api.post_json("/v1/auth/login", None, &body(fullwidth))
        .await
        .expect(401, Some("invalid_credentials"));

    for bad in [
        "ad\u{200b}min@tollgate.test",
        "admin\u{feff}@tollgate.test",
        "ad\u{ad}min@tollgate.test",
        "\u{202e}admin@tollgate.test",
        "\u{430}dmin@tollgate.test",
        "admin@tollgate.test.",
        "a@b@c",
    ] {
        let answer = api.post_json("/v1/auth/register", None, &body(bad)).await;
        answer.expect(400, Some("invalid_email"));
        api.post_json("/v1/admin/users", Some(&admin), &body(bad))
            .await
            .expect(400, Some("invalid_email"));
    }

    // Login finds the account whatever the case or width, and the token's
    // `email` is the normal form.
    for typed in ["ADMIN@Tollgate.TEST", "ＡＤＭＩＮ@tollgate.test"] {
        let token = api
            .login(typed, api.server.admin_password())
            .await
            .str("access_token");
        let me = api.get("/v1/auth/me", Some(&token)).await;
        me.expect(200, None);
        assert_eq!(me.str("email"), owner, "{typed}");
    }
}

/// A JSON body that is not an object is refused: serde fills a struct from
/// an array too, and `PATCH [null, null]` answered 200 having changed
/// nothing (found by schemathesis, issue 9 item 10).
#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_refused() {
    let api = Api::start().await;
    let token = api.admin_token().await;
    let id = api.get("/v1/auth/me", Some(&token)).await.str("sub");
    for body in [
        serde_json::json!([null, null]),
        serde_json::json!(["pro"]),
        serde_json::json!("pro"),
        serde_json::json!(null),
    ] {
        let answer = api
            .send_json(
                reqwest::Method::PATCH,
                &format!("/v1/admin/users/{id}"),
                Some(&token),
                &body,
            )
            .await;
        answer.expect(400, Some("invalid_request"));
        assert_eq!(
            answer.body["error_description"], "the JSON body must be an object",
            "{body}"
        );
    }
    let answer = api
        .post_json(
            "/v1/auth/register",
            None,
            &serde_json::json!(["a@example.com", "correct horse battery"]),
        )
        .await;
    answer.expect(400, Some("invalid_request"));
}

/// Counts the server's `find_client` store calls (the real store answers
/// them).
fn counting_client_lookups() -> (Arc<AtomicUsize>, StoreHook) {
    let lookups = Arc::new(AtomicUsize::new(0));
    let hook: StoreHook = {
        let lookups = lookups.clone();
        Arc::new(move |method, _| {
            if method == "find_client" {
                lookups.fetch_add(1, Ordering::SeqCst);
            }
            Box::pin(async { Ok(()) })
        })
    };
    (lookups, hook)
}

/// Item 5: an unknown client id costs what a known one with a wrong secret
/// does. On main a known id was answered from the client cache and an
/// unknown one asked the store on every attempt (~13 % slower); now the
/// absence is kept like a record, for the same 5 s (`clients::TTL`), and a
/// client created through the admin API is usable at once.
#[tokio::test]
async fn issue_15_unknown_client_ids_cost_what_known_ones_do() {
    let (lookups, hook) = counting_client_lookups();
    let clock = Clock::manual(Clock::system_now());
    let api = Api::with(TestServer::builder().clock(clock.clone()).store_hook(hook)).await;
    let admin = api.admin_token().await;
    let (known, _) = api.client("svc-known", &["introspect"]).await;
    let attempt = |id: String| {
        let api = &api;
        async move {
            let answer = api
                .post_form(
                    "/oauth/token",
                    Some((&id, "cs_wrong-secret")),
                    &[("grant_type", "client_credentials")],
                )
                .await;
            answer.expect(401, Some("invalid_client"));
            answer.text
        }
    };

    let known_answer = attempt(known.clone()).await;
    for _ in 0..5 {
        assert_eq!(attempt(known.clone()).await, known_answer);
    }
    assert_eq!(lookups.swap(0, Ordering::SeqCst), 1, "a known id");
    for _ in 0..6 {
        assert_eq!(attempt("svc-unknown".to_owned()).await, known_answer);
    }
    assert_eq!(lookups.swap(0, Ordering::SeqCst), 1, "an unknown id");

    // Both are read again once the TTL has passed, and not before.
    clock.advance(4);
    attempt(known.clone()).await;
    attempt("svc-unknown".to_owned()).await;
    assert_eq!(lookups.swap(0, Ordering::SeqCst), 0);
    clock.advance(1);
    attempt(known.clone()).await;
    attempt("svc-unknown".to_owned()).await;
    assert_eq!(lookups.swap(0, Ordering::SeqCst), 2);

    // Created here, the client that was just "unknown" works at once.
    let created = api
        .post_json(
            "/v1/admin/clients",
            Some(&admin),
            &serde_json::json!({"client_id": "svc-unknown", "scopes": ["introspect"]}),
        )
        .await;
    created.expect(201, None);
    let secret = created.str("client_secret");
    api.service_token("svc-unknown", &secret).await;
}
