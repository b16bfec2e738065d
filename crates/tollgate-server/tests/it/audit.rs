//! The audit trail (issue 12): what requests record, read back through
//! `GET /v1/admin/audit`, and that no secret reaches it.

use serde_json::{Value, json};
use tollgate_store::{AuditFilter, verify_audit};

use crate::common::{Answer, Api, PASSWORD};

/// Every event of the trail, through the admin API, page by page.
async fn trail(api: &Api, admin: &str, query: &str) -> Vec<Value> {
    api.server.flush_audit().await;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = api
            .get(
                &format!("/v1/admin/audit?after={after}&limit=7{query}"),
                Some(admin),
            )
            .await;
        page.expect(200, None);
        let batch = page.body["events"].as_array().unwrap().clone();
        let next = page.body["next_cursor"].as_u64().unwrap();
        if batch.is_empty() {
            assert_eq!(next, after);
            return events;
        }
        assert_eq!(Some(next), batch.last().unwrap()["cursor"].as_u64());
        after = next;
        events.extend(batch);
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

async fn login_with_id(api: &Api, email: &str, password: &str, request_id: &str) -> Answer {
    let response = api
        .http
        .post(api.url("/v1/auth/login"))
        .header("x-request-id", request_id)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    Answer::from(response).await
}

#[tokio::test]
async fn actions_are_recorded_with_reason_actor_address_and_request_id_and_no_secret_anywhere() {
    let api = Api::start().await;
    // Secrets and tokens used below: none may appear in any column.
    let mut secrets: Vec<String> = vec![
        PASSWORD.to_owned(),
        api.server.admin_password().to_owned(),
        "not-the-password-123".to_owned(),
    ];
    let alice = api.user("alice@example.com").await;
    let alice_id = api
        .get("/v1/auth/me", Some(&alice.str("access_token")))
        .await
        .str("sub");
    secrets.push(alice.str("access_token"));
    secrets.push(alice.str("refresh_token"));

    // Failures: a wrong password, an unknown account, a password typed
    // into the e-mail field.
    login_with_id(
        &api,
        "alice@example.com",
        "not-the-password-123",
        "rid-wrong",
    )
    .await
    .expect(401, Some("invalid_credentials"));
    login_with_id(&api, "nobody@example.com", PASSWORD, "rid-unknown")
        .await
        .expect(401, Some("invalid_credentials"));
    login_with_id(&api, PASSWORD, PASSWORD, "rid-swapped")
        .await
        .expect(401, Some("invalid_credentials"));

    // Refresh, then reuse of the spent refresh token.
    let refreshed = api
        .post_json(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": alice.str("refresh_token")}),
        )
        .await;
    refreshed.expect(200, None);
    secrets.push(refreshed.str("access_token"));
    secrets.push(refreshed.str("refresh_token"));
    api.server.clock().advance(120); // past the reuse grace
    api.post_json(
        "/v1/auth/refresh",
        None,
        &json!({"refresh_token": alice.str("refresh_token")}),
    )
    .await
    .expect(400, Some("invalid_grant"));

    // Admin changes, a client and its token, revocations, a rotation.
    let admin = api.admin_token().await;
    secrets.push(admin.clone());
    let created = api
        .post_json(
            "/v1/admin/clients",
            Some(&admin),
            &json!({"client_id": "billing", "scopes": ["revoke"]}),
        )
        .await;
    created.expect(201, None);
    let client_secret = created.str("client_secret");
    secrets.push(client_secret.clone());
    let service = api.service_token("billing", &client_secret).await;
    secrets.push(service.clone());
    let bob = api.user("bob@example.com").await;
    secrets.push(bob.str("access_token"));
    secrets.push(bob.str("refresh_token"));
    let bob_id = api
        .get("/v1/auth/me", Some(&bob.str("access_token")))
        .await
        .str("sub");
    api.post_form(
        "/oauth/revoke",
        Some(("billing", &client_secret)),
        &[("token", &bob.str("access_token"))],
    )
    .await
    .expect(200, None);
    api.send_json(
        reqwest::Method::PATCH,
        &format!("/v1/admin/users/{bob_id}"),
        Some(&admin),
        &json!({"plan": "pro"}),
    )
    .await
    .expect(200, None);
    api.post_empty(&format!("/v1/admin/users/{bob_id}/revoke"), Some(&admin))
        .await
        .expect(204, None);
    api.post_empty("/v1/admin/keys/rotate", Some(&admin))
        .await
        .expect(200, None);
    let carol = api.user("carol@example.com").await;
    secrets.push(carol.str("access_token"));
    secrets.push(carol.str("refresh_token"));
    api.post_empty("/v1/auth/logout", Some(&carol.str("access_token")))
        .await
        .expect(204, None);

    let events = trail(&api, &admin, "").await;

    let config = of_type(&events, "config.loaded");
    assert_eq!(config.len(), 1);
    assert_eq!(config[0]["actor"], "system");
    assert_eq!(
        config[0]["details"]["fingerprint"].as_str().unwrap().len(),
        16
    );

    let failed = of_type(&events, "login.failed");
    assert_eq!(failed.len(), 3, "{failed:?}");
    let by_request = |id: &str| {
        *failed
            .iter()
            .find(|e| e["request_id"] == id)
            .unwrap_or_else(|| panic!("no login.failed with request id {id}"))
    };
    let wrong = by_request("rid-wrong");
    assert_eq!(wrong["details"]["reason"], "wrong_password");
    assert_eq!(wrong["subject"], alice_id.as_str());
    assert_eq!(wrong["actor"], "anonymous");
    assert_eq!(wrong["address"], "127.0.0.1");
    assert_eq!(
        by_request("rid-unknown")["details"]["reason"],
        "unknown_account"
    );
    let swapped = by_request("rid-swapped");
    assert_eq!(swapped["details"]["reason"], "unknown_account");
    assert_eq!(
        swapped["details"]["email_fingerprint"],
        tollgate_core::token_fingerprint(PASSWORD)
    );

    let registered = of_type(&events, "user.registered");
    assert_eq!(registered.len(), 3);
    assert!(of_type(&events, "login.succeeded").len() >= 4);
    let refreshes = of_type(&events, "token.refreshed");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0]["subject"], alice_id.as_str());
    assert_eq!(refreshes[0]["details"]["retried"], false);
    let reuse = of_type(&events, "token.refresh_reuse");
    assert_eq!(reuse.len(), 1);
    assert_eq!(
        reuse[0]["details"]["token_fingerprint"],
        tollgate_core::token_fingerprint(&alice.str("refresh_token"))
    );
    let issued = of_type(&events, "token.issued");
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["details"]["grant"], "client_credentials");
    assert_eq!(issued[0]["actor"], "client:billing");

    let admin_actor = events
        .iter()
        .find(|e| e["type"] == "admin.client_created")
        .unwrap()["actor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(admin_actor.starts_with("user:"), "{admin_actor}");
    let revoked = of_type(&events, "revoked");
    let kinds: Vec<(&str, &str)> = revoked
        .iter()
        .map(|e| {
            (
                e["details"]["kind"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(kinds.contains(&("token", "client:billing")), "{kinds:?}");
    assert!(kinds.contains(&("user", admin_actor.as_str())), "{kinds:?}");
    let updated = of_type(&events, "admin.user_updated");
    assert_eq!(updated[0]["details"], json!({"plan": "pro"}));
    assert_eq!(updated[0]["subject"], bob_id.as_str());
    assert_eq!(of_type(&events, "keys.rotated").len(), 1);
    assert_eq!(of_type(&events, "session.logout").len(), 1);

    // No secret or token in any column of any row, read from the store…
    let rows = api
        .server
        .store()
        .audit_after(0, AuditFilter::default(), 10_000)
        .await
        .unwrap();
    assert_eq!(rows.len(), events.len());
    for row in &rows {
        let e = &row.event;
        let columns = [
            row.cursor.to_string(),
            row.chain.clone(),
            row.seq.to_string(),
            e.at.to_string(),
            e.kind.clone(),
            e.actor.clone(),
            e.subject.clone().unwrap_or_default(),
            e.address.clone().unwrap_or_default(),
            e.request_id.clone().unwrap_or_default(),
            e.details.clone(),
            row.prev_hash.clone(),
            row.hash.clone(),
        ];
        for column in &columns {
            for secret in &secrets {
                assert!(!column.contains(secret.as_str()), "a secret in {column}");
            }
        }
    }
    // …and nowhere in the database files at all.
    api.server.flush_audit().await;
    for name in ["tollgate.db", "tollgate.db-wal"] {
        let Ok(bytes) = std::fs::read(api.server.data_dir().join(name)) else {
            continue;
        };
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret or token in {name}"
            );
        }
    }
    let verification = verify_audit(api.server.store().as_ref()).await.unwrap();
    assert_eq!(verification.broken, None);
    assert_eq!(verification.events, events.len() as u64);
}

#[tokio::test]
async fn the_audit_route_needs_an_admin_and_filters_and_pages_by_cursor() {
    let api = Api::start().await;
    api.get("/v1/admin/audit", None)
        .await
        .expect(401, Some("missing_token"));
    let user = api.user("dave@example.com").await.str("access_token");
    let dave = api.get("/v1/auth/me", Some(&user)).await.str("sub");
    api.get("/v1/admin/audit", Some(&user))
        .await
        .expect(403, Some("insufficient_scope"));
    let admin = api.admin_token().await;
    for bad in ["after=-1", "limit=x", "after=1&after=2", "type=a%00b"] {
        api.get(&format!("/v1/admin/audit?{bad}"), Some(&admin))
            .await
            .expect(400, Some("invalid_request"));
    }
    for _ in 0..3 {
        login_with_id(&api, "dave@example.com", "wrong-password-1", "r")
            .await
            .expect(401, None);
    }
    let all = trail(&api, &admin, "").await;
    let cursors: Vec<u64> = all.iter().map(|e| e["cursor"].as_u64().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    let failed = trail(&api, &admin, "&type=login.failed").await;
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|e| e["type"] == "login.failed"));
    let about_dave = trail(&api, &admin, &format!("&subject={dave}")).await;
    // Registered, logged in, three failures.
    assert_eq!(about_dave.len(), 5, "{about_dave:?}");
    let both = trail(
        &api,
        &admin,
        &format!("&subject={dave}&type=user.registered"),
    )
    .await;
    assert_eq!(both.len(), 1);
    // A page after the last cursor is empty and keeps the cursor.
    let last = *cursors.last().unwrap();
    let page = api
        .get(&format!("/v1/admin/audit?after={last}"), Some(&admin))
        .await;
    page.expect(200, None);
    assert_eq!(page.body["events"], json!([]));
    assert_eq!(page.body["next_cursor"], last);
    let one = api.get("/v1/admin/audit?limit=1", Some(&admin)).await;
    assert_eq!(one.body["events"].as_array().unwrap().len(), 1);
    assert_eq!(one.body["next_cursor"], cursors[0]);
}

#[tokio::test]
async fn events_recorded_before_a_restart_are_kept_on_a_chain_per_start() {
    let api = Api::start().await;
    login_with_id(&api, "eve@example.com", "wrong-password-1", "before-stop")
        .await
        .expect(401, None);
    let restarted = api.server.restart().await;
    let rows = restarted
        .store()
        .audit_after(
            0,
            AuditFilter {
                kind: Some("login.failed"),
                subject: None,
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].event.request_id.as_deref(), Some("before-stop"));
    // Two starts, two chains, both intact.
    restarted.flush_audit().await;
    let verification = verify_audit(restarted.store().as_ref()).await.unwrap();
    assert_eq!((verification.chains, verification.broken), (2, None));
}

#[tokio::test]
async fn retention_prunes_old_events_records_it_and_the_trail_still_verifies() {
    let api = Api::with(
        tollgate_server::testkit::TestServer::builder()
            .configure(|c| c.audit_retention = 86_400)
            .key_reload_interval(std::time::Duration::from_millis(50)),
    )
    .await;
    for _ in 0..3 {
        login_with_id(&api, "old@example.com", "wrong-password-1", "old")
            .await
            .expect(401, None);
    }
    api.server.flush_audit().await;
    // Two days later, the maintenance loop prunes within a tick or two.
    api.server.clock().advance(2 * 86_400);
    let store = api.server.store();
    let pruned_filter = AuditFilter {
        kind: Some("audit.pruned"),
        subject: None,
    };
    let mut pruned = Vec::new();
    for _ in 0..400 {
        pruned = store.audit_after(0, pruned_filter, 10).await.unwrap();
        if !pruned.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(pruned.len(), 1, "no audit.pruned event");
    let details: Value = serde_json::from_str(&pruned[0].event.details).unwrap();
    // config.loaded and the three failures.
    assert_eq!(details["rows"], 4, "{details}");
    assert_eq!(pruned[0].event.actor, "system");
    let left = store
        .audit_after(0, AuditFilter::default(), 100)
        .await
        .unwrap();
    assert!(left.iter().all(|row| row.event.kind != "login.failed"));
    let verification = verify_audit(store.as_ref()).await.unwrap();
    assert_eq!(verification.broken, None);
    // New events continue the chain after the anchor.
    login_with_id(&api, "old@example.com", "wrong-password-1", "new")
        .await
        .expect(401, None);
    api.server.flush_audit().await;
    assert_eq!(verify_audit(store.as_ref()).await.unwrap().broken, None);
}

/// What the webhook receiver saw: the signature header and the body.
type Received = tokio::sync::mpsc::UnboundedReceiver<(u16, String, Vec<u8>)>;

/// A real local HTTP server that answers `failures` posts with 500, then
/// 200, and reports every post (with the status it answered).
async fn receiver(failures: usize) -> (String, Received) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (report, received) = tokio::sync::mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let report = report.clone();
                let seen = seen.clone();
                async move {
                    let status = if seen.fetch_add(1, Ordering::SeqCst) < failures {
                        500
                    } else {
                        200
                    };
                    let signature = headers
                        .get("x-tollgate-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let _ = report.send((status, signature, body.to_vec()));
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, received)
}

async fn next_post(received: &mut Received) -> (u16, String, Value, Vec<u8>) {
    let (status, signature, body) =
        tokio::time::timeout(std::time::Duration::from_secs(30), received.recv())
            .await
            .expect("a post within 30 s")
            .expect("the receiver is up");
    let value = serde_json::from_slice(&body).unwrap();
    (status, signature, value, body)
}

#[tokio::test]
async fn chosen_event_types_are_posted_signed_to_the_webhook_and_retried() {
    const KEY: &str = "webhook-key-of-at-least-32-bytes!!";
    let (url, mut received) = receiver(1).await;
    let api = Api::with(
        tollgate_server::testkit::TestServer::builder().configure(move |c| {
            c.audit_webhook_url = Some(tollgate_core::Secret::from(url.as_str()));
            c.audit_webhook_secret = Some(tollgate_core::Secret::from(KEY));
            c.audit_webhook_types = vec!["login.failed".to_owned()];
        }),
    )
    .await;
    api.user("frank@example.com").await; // registered, logged in: not posted
    login_with_id(&api, "frank@example.com", "wrong-password-1", "hook-1")
        .await
        .expect(401, None);
    login_with_id(&api, "frank@example.com", "wrong-password-2", "hook-2")
        .await
        .expect(401, None);
    // The first post is answered 500 and retried with the same body.
    let (status, signature, first, first_body) = next_post(&mut received).await;
    assert_eq!(status, 500);
    let (status, again_signature, again, again_body) = next_post(&mut received).await;
    assert_eq!(status, 200);
    assert_eq!(first_body, again_body);
    assert_eq!(signature, again_signature);
    assert_eq!(
        signature,
        tollgate_core::audit::webhook_signature(KEY.as_bytes(), &first_body)
    );
    assert_eq!(again["type"], "login.failed");
    assert_eq!(again["request_id"], "hook-1");
    assert_eq!(again["details"]["reason"], "wrong_password");
    assert!(first["hash"].as_str().unwrap().len() == 64);
    // Then the next one of the chosen type, in order; nothing else.
    let (status, _, next, _) = next_post(&mut received).await;
    assert_eq!((status, next["request_id"].as_str()), (200, Some("hook-2")));
    let body = String::from_utf8(again_body).unwrap();
    assert!(!body.contains("wrong-password-1"), "{body}");
    assert!(received.try_recv().is_err());
}
