//! The admin API: users, clients, keys; who may call it.

use crate::common::{Api, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn only_admins_and_admin_services_may_call_the_admin_api() {
    let api = Api::start().await;
    let user = api.user("plain@example.com").await.str("access_token");
    let answer = api.get("/v1/admin/users", Some(&user)).await;
    answer.expect(403, Some("insufficient_scope"));
    assert!(
        answer
            .header("www-authenticate")
            .contains("insufficient_scope")
    );
    api.get("/v1/admin/users", None)
        .await
        .expect(401, Some("missing_token"));
    api.get("/v1/admin/users", Some("x.y.z"))
        .await
        .expect(401, Some("invalid_token"));
    let (id, secret) = api.client("ops-bot", &["admin"]).await;
    let service = api.service_token(&id, &secret).await;
    api.get("/v1/admin/users", Some(&service))
        .await
        .expect(200, None);
    let (id, secret) = api.client("not-ops", &["read"]).await;
    let service = api.service_token(&id, &secret).await;
    api.get("/v1/admin/users", Some(&service))
        .await
        .expect(403, Some("insufficient_scope"));
}

#[tokio::test]
async fn users_are_created_read_listed_and_updated() {
    let api = Api::start().await;
    let admin = api.admin_token().await;
    let created = api
        .post_json(
            "/v1/admin/users",
            Some(&admin),
            &json!({"email": "Eve@Example.com", "password": PASSWORD, "plan": "developer", "roles": ["support", "support"]}),
        )
        .await;
    created.expect(201, None);
    assert_eq!(created.body["email"], "eve@example.com");
    assert_eq!(created.body["plan"], "developer");
    assert_eq!(created.body["roles"], json!(["support"]));
    assert_eq!(created.body["disabled"], false);
    let id = created.str("user_id");
    for (body, code) in [
        (
            json!({"email": "eve@example.com", "password": PASSWORD}),
            "email_taken",
        ),
        (
            json!({"email": "x@example.com", "password": PASSWORD, "plan": "platinum"}),
            "unknown_plan",
        ),
        (
            json!({"email": "x@example.com", "password": PASSWORD, "roles": ["bad role"]}),
            "invalid_request",
        ),
        (
            json!({"email": "x@example.com", "password": "tiny"}),
            "weak_password",
        ),
        (json!({"email": "x", "password": PASSWORD}), "invalid_email"),
        (json!({"email": "x@example.com"}), "invalid_request"),
    ] {
        let answer = api.post_json("/v1/admin/users", Some(&admin), &body).await;
        assert_eq!(answer.body["error"], code, "{body}: {}", answer.text);
    }
    let got = api
        .get(&format!("/v1/admin/users/{id}"), Some(&admin))
        .await;
    got.expect(200, None);
    assert_eq!(got.body, created.body);
    api.get("/v1/admin/users/unknown-id", Some(&admin))
        .await
        .expect(404, Some("not_found"));
    let list = api.get("/v1/admin/users?limit=10", Some(&admin)).await;
    list.expect(200, None);
    let users = list.body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    let page = api.get("/v1/admin/users?limit=1", Some(&admin)).await;
    assert_eq!(page.body["users"].as_array().unwrap().len(), 1);
    let first = page.body["users"][0]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let next = api
        .get(
            &format!("/v1/admin/users?limit=1&after={first}"),
            Some(&admin),
        )
        .await;
    assert_eq!(next.body["users"].as_array().unwrap().len(), 1);
    assert_ne!(next.body["users"][0]["user_id"], first.as_str());
    api.get("/v1/admin/users?limit=abc", Some(&admin))
        .await
        .expect(400, Some("invalid_request"));

    let patched = api
        .send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            Some(&admin),
            &json!({"plan": "pro"}),
        )
        .await;
    patched.expect(200, None);
    assert_eq!(patched.body["plan"], "pro");
    assert_eq!(patched.body["roles"], json!(["support"]));
    api.send_json(
        reqwest::Method::PATCH,
        &format!("/v1/admin/users/{id}"),
        Some(&admin),
        &json!({"plan": "nope"}),
    )
    .await
    .expect(400, Some("unknown_plan"));
    api.send_json(
        reqwest::Method::PATCH,
        "/v1/admin/users/missing",
        Some(&admin),
        &json!({"plan": "pro"}),
    )
    .await
    .expect(404, Some("not_found"));
    // Re-enabling after a disable lets the user log in again.
    for disabled in [true, false] {
        api.send_json(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{id}"),
            Some(&admin),
            &json!({"disabled": disabled}),
        )
        .await
        .expect(200, None);
    }
    api.server.clock().advance(1);
    api.login("eve@example.com", PASSWORD).await;
}

#[tokio::test]
async fn clients_are_registered_with_a_secret_shown_once_and_stored_as_a_digest() {
    let api = Api::start().await;
    let admin = api.admin_token().await;
    let created = api
        .post_json(
            "/v1/admin/clients",
            Some(&admin),
            &json!({"client_id": "reports.v2", "scopes": ["introspect", "read"]}),
        )
        .await;
    created.expect(201, None);
    assert_eq!(created.header("cache-control"), "no-store");
    let secret = created.str("client_secret");
    assert!(secret.starts_with("tgs_") && secret.len() >= 4 + 43);
    assert_eq!(created.body["scopes"], json!(["introspect", "read"]));
    // The secret works, and is nowhere in the store.
    api.service_token("reports.v2", &secret).await;
    let stored = api
        .server
        .store()
        .find_client("reports.v2")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(stored.secret_digest, secret);
    assert!(!stored.secret_digest.contains(&secret[4..]));
    let db = std::fs::read(api.server.data_dir().join("tollgate.db")).unwrap();
    let wal = std::fs::read(api.server.data_dir().join("tollgate.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    // Never shown again.
    let listed = api.get("/v1/admin/clients", Some(&admin)).await;
    listed.expect(200, None);
    assert!(!listed.text.contains(&secret));
    assert_eq!(listed.body["clients"][0]["client_id"], "reports.v2");
    let one = api.get("/v1/admin/clients/reports.v2", Some(&admin)).await;
    one.expect(200, None);
    assert!(one.body.get("client_secret").is_none());
    api.get("/v1/admin/clients/none-such", Some(&admin))
        .await
        .expect(404, Some("not_found"));

    for (body, status, code) in [
        (json!({"client_id": "reports.v2"}), 409, "client_id_taken"),
        (json!({"client_id": "ab"}), 400, "invalid_request"),
        (json!({"client_id": "has space"}), 400, "invalid_request"),
        (json!({"client_id": "x".repeat(65)}), 400, "invalid_request"),
        (
            json!({"client_id": "okay-id", "scopes": ["bad scope"]}),
            400,
            "invalid_request",
        ),
    ] {
        api.post_json("/v1/admin/clients", Some(&admin), &body)
            .await
            .expect(status, Some(code));
    }
}

#[tokio::test]
async fn keys_are_listed_and_rotated() {
    let api = Api::start().await;
    let admin = api.admin_token().await;
    let keys = api.get("/v1/admin/keys", Some(&admin)).await;
    keys.expect(200, None);
    let list = keys.body["keys"].as_array().unwrap();
    // The active key, and the next one, published before it signs.
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["status"], "next");
    assert_eq!(list[1]["status"], "active");
    assert_eq!(list[1]["alg"], "EdDSA");
    let next = list[0]["kid"].as_str().unwrap().to_owned();
    let old = list[1]["kid"].as_str().unwrap().to_owned();
    let rotated = api.post_empty("/v1/admin/keys/rotate", Some(&admin)).await;
    rotated.expect(200, None);
    let new = rotated.str("kid");
    assert_eq!(new, next, "the next key is the one promoted");
    let keys = api.get("/v1/admin/keys", Some(&admin)).await;
    let list = keys.body["keys"].as_array().unwrap();
    let status = |kid: &str| {
        list.iter()
            .find(|k| k["kid"] == kid)
            .map(|k| k["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["status"], "next");
    assert_ne!(list[0]["kid"], new.as_str());
    assert_eq!(status(&new).as_deref(), Some("active"));
    assert_eq!(status(&old).as_deref(), Some("verify_only"));
    let old_entry = list.iter().find(|k| k["kid"] == old.as_str()).unwrap();
    assert!(old_entry["retire_at"].as_u64().is_some());
}
