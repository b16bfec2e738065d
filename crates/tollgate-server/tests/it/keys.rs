//! Key rotation and retirement, rotation by another process (also racing
//! the server's own), and what a restart keeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Api, PASSWORD};
use serde_json::json;
use tollgate_core::keys::Algorithm;
use tollgate_server::testkit::{StoreHook, TestServer};
use tollgate_server::{Clock, keystore};

fn kid(token: &str) -> String {
    let (header, _) = tollgate_core::jws::dangerous::insecure_decode(token).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(api: &Api) -> Vec<String> {
    let answer = api.get("/.well-known/jwks.json", None).await;
    answer.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn old_tokens_stay_valid_until_expiry_then_the_old_key_leaves_the_jwks() {
    let clock = Clock::manual(Clock::system_now());
    let api = Api::with(TestServer::builder().clock(clock)).await;
    let introspector = api.client("rs-keys", &["introspect"]).await;
    let admin = api.admin_token().await;
    let old_token = api
        .login("admin@tollgate.test", PASSWORD)
        .await
        .str("access_token");
    let old_kid = kid(&old_token);
    // Before it signs, the next key is published with status `next`.
    let published = api.get("/.well-known/jwks.json", None).await;
    let next_kid = published.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["status"] == "next")
        .expect("a next key in the JWKS")["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(published.body["keys"].as_array().unwrap().len(), 2);
    let new_kid = api
        .post_empty("/v1/admin/keys/rotate", Some(&admin))
        .await
        .expect(200, None)
        .str("kid");
    // The next key signs at once; a new next key is published; the old one
    // still verifies.
    assert_eq!(new_kid, next_kid);
    let new_token = api
        .login("admin@tollgate.test", PASSWORD)
        .await
        .str("access_token");
    assert_eq!(kid(&new_token), new_kid);
    let mut kids = jwks_kids(&api).await;
    kids.sort();
    assert_eq!(kids.len(), 3, "{kids:?}");
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid));
    let newer_next: String = kids
        .iter()
        .find(|k| **k != old_kid && **k != new_kid)
        .unwrap()
        .clone();
    assert!(api.is_active(&introspector, &old_token).await);
    api.get("/v1/auth/me", Some(&old_token))
        .await
        .expect(200, None);

    // Overlap = max(access, service) ttl + leeway = 65 s. Just before it
    // ends the old key still verifies (the old token itself expired at
    // 60 + 5 leeway: introspection says inactive, the key is still listed).
    api.server.clock().advance(64);
    assert_eq!(jwks_kids(&api).await.len(), 3);
    api.server.clock().advance(1);
    let mut left = jwks_kids(&api).await;
    left.sort();
    let mut expected = vec![new_kid.clone(), newer_next];
    expected.sort();
    assert_eq!(left, expected);
    assert!(!api.is_active(&introspector, &old_token).await);
    let keys = api
        .get("/v1/admin/keys", Some(&api.admin_token().await))
        .await;
    let statuses: Vec<_> = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        vec![json!("next"), json!("active"), json!("retired")]
    );
}

#[tokio::test]
async fn a_rotation_by_another_process_is_picked_up_while_the_server_runs() {
    let api = Api::start().await;
    let store = api.server.store();
    let kid = keystore::rotate(store.as_ref(), None, Algorithm::EdDSA, api.server.now(), 65)
        .await
        .unwrap();
    let mut seen = false;
    for _ in 0..100 {
        let token = api
            .login("admin@tollgate.test", PASSWORD)
            .await
            .str("access_token");
        if self::kid(&token) == kid {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen,
        "the server never signed with the key rotated in the store"
    );
    assert!(jwks_kids(&api).await.contains(&kid));
}

#[tokio::test]
async fn a_restart_keeps_users_sessions_keys_clients_and_revocations() {
    let api = Api::start().await;
    let introspector = api.client("rs-restart", &["introspect"]).await;
    let kept = api.user("kept@example.com").await;
    let revoked = api.login("kept@example.com", PASSWORD).await;
    api.post_empty("/v1/auth/logout", Some(&revoked.str("access_token")))
        .await
        .expect(204, None);
    let jwks_before = api.get("/.well-known/jwks.json", None).await.text;

    let server = api.server.restart().await;
    let api = Api {
        server,
        http: reqwest::Client::new(),
    };
    assert_eq!(
        api.get("/.well-known/jwks.json", None).await.text,
        jwks_before
    );
    // The user, the live session and its tokens survived.
    assert!(
        api.is_active(&introspector, &kept.str("access_token"))
            .await
    );
    api.get("/v1/auth/me", Some(&kept.str("access_token")))
        .await
        .expect(200, None);
    api.post_json(
        "/v1/auth/refresh",
        None,
        &json!({"refresh_token": kept.str("refresh_token")}),
    )
    .await
    .expect(200, None);
    // The logout survived.
    assert!(
        !api.is_active(&introspector, &revoked.str("access_token"))
            .await
    );
    api.post_json(
        "/v1/auth/refresh",
        None,
        &json!({"refresh_token": revoked.str("refresh_token")}),
    )
    .await
    .expect(400, Some("invalid_grant"));
    api.login("kept@example.com", PASSWORD).await;
}

#[tokio::test]
async fn every_asymmetric_algorithm_serves_and_validates() {
    for alg in [Algorithm::ES256, Algorithm::RS256] {
        let api = Api::with(TestServer::builder().configure(move |c| c.signing_alg = alg)).await;
        let introspector = api.client("rs-alg", &["introspect"]).await;
        let token = api.service_token(&introspector.0, &introspector.1).await;
        let (header, _) = tollgate_core::jws::dangerous::insecure_decode(&token).unwrap();
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(header["typ"], "at+jwt");
        assert!(api.is_active(&introspector, &token).await);
        let jwks = api.get("/.well-known/jwks.json", None).await;
        assert_eq!(jwks.body["keys"][0]["alg"], alg.as_str());
    }
}

#[tokio::test]
async fn changing_the_algorithm_rotates_and_keeps_old_tokens_valid() {
    let api = Api::start().await;
    let introspector = api.client("rs-change", &["introspect"]).await;
    let old = api.service_token(&introspector.0, &introspector.1).await;
    let server = api.server;
    let mut config = server.config().clone();
    config.signing_alg = Algorithm::ES256;
    let server = server.restart_with(config).await;
    let api = Api {
        server,
        http: reqwest::Client::new(),
    };
    let new = api.service_token(&introspector.0, &introspector.1).await;
    let (header, _) = tollgate_core::jws::dangerous::insecure_decode(&new).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert!(api.is_active(&introspector, &old).await);
    assert!(api.is_active(&introspector, &new).await);
}

/// A hook that, for the next `races` writes of signing keys by the server,
/// first rotates the keys in the real store itself: another process (an
/// instance, `tollgate keys rotate`) winning the race between the server's
/// read of the ring and its write.
fn racing_rotations(races: Arc<AtomicUsize>, competitors: Arc<Mutex<Vec<String>>>) -> StoreHook {
    Arc::new(move |method, store| {
        let races = races.clone();
        let competitors = competitors.clone();
        Box::pin(async move {
            let armed = races
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if method == "rotate_keys" && armed {
                let kid = keystore::rotate(
                    store.as_ref(),
                    None,
                    Algorithm::EdDSA,
                    Clock::system_now(),
                    65,
                )
                .await
                .unwrap();
                competitors.lock().unwrap().push(kid);
            } else if armed {
                // Not a key write: put the race back for the next one.
                races.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
    })
}

/// (kid, status) of every key as stored.
async fn keys_by_status(api: &Api) -> Vec<(String, String)> {
    let keys = api.server.store().list_keys().await.unwrap();
    keys.into_iter().map(|k| (k.kid, k.status)).collect()
}

#[tokio::test]
async fn a_rotation_that_loses_a_race_is_retried_on_top_of_the_winner() {
    let races = Arc::new(AtomicUsize::new(0));
    let competitors = Arc::new(Mutex::new(Vec::new()));
    let api = Api::with(
        TestServer::builder().store_hook(racing_rotations(races.clone(), competitors.clone())),
    )
    .await;
    let admin = api.admin_token().await;
    let first = jwks_kids(&api).await;
    races.store(1, Ordering::SeqCst);
    let answer = api.post_empty("/v1/admin/keys/rotate", Some(&admin)).await;
    answer.expect(200, None);
    let ours = answer.str("kid");
    let competitor = competitors.lock().unwrap().clone();
    assert_eq!(competitor.len(), 1, "the race did not happen");
    assert_ne!(ours, competitor[0]);
    // One active key, ours; the first key and the winner's still verify.
    let keys = keys_by_status(&api).await;
    let active: Vec<_> = keys.iter().filter(|(_, s)| s == "active").collect();
    assert_eq!(
        active,
        vec![&(ours.clone(), "active".to_owned())],
        "{keys:?}"
    );
    for kid in first.iter().chain(competitor.iter()) {
        assert!(
            keys.contains(&(kid.clone(), "verify_only".to_owned())),
            "{kid} in {keys:?}"
        );
    }
    let token = api
        .login("admin@tollgate.test", PASSWORD)
        .await
        .str("access_token");
    assert_eq!(kid(&token), ours);
}

#[tokio::test]
async fn two_lost_rotation_races_in_a_row_answer_409_and_change_nothing() {
    let races = Arc::new(AtomicUsize::new(0));
    let competitors = Arc::new(Mutex::new(Vec::new()));
    let api = Api::with(
        TestServer::builder().store_hook(racing_rotations(races.clone(), competitors.clone())),
    )
    .await;
    let admin = api.admin_token().await;
    races.store(2, Ordering::SeqCst);
    api.post_empty("/v1/admin/keys/rotate", Some(&admin))
        .await
        .expect(409, Some("rotation_conflict"));
    let competitor = competitors.lock().unwrap().clone();
    assert_eq!(competitor.len(), 2, "the races did not happen");
    // The store holds the other process's key as the one active key, and
    // none of ours.
    let keys = keys_by_status(&api).await;
    let active: Vec<_> = keys.iter().filter(|(_, s)| s == "active").collect();
    assert_eq!(
        active,
        vec![&(competitor[1].clone(), "active".to_owned())],
        "{keys:?}"
    );
    // The first two keys, and the competitor's active and next keys.
    assert_eq!(keys.len(), 4, "{keys:?}");
    // A later rotation works.
    api.post_empty("/v1/admin/keys/rotate", Some(&admin))
        .await
        .expect(200, None);
}

#[tokio::test]
async fn a_rotation_is_a_keys_event_on_the_feed_naming_the_active_and_next_keys() {
    let api = Api::start().await;
    let follower = api.client("rs-keys-feed", &["introspect"]).await;
    let admin = api.admin_token().await;
    let active = api
        .post_empty("/v1/admin/keys/rotate", Some(&admin))
        .await
        .expect(200, None)
        .str("kid");
    let keys = api.get("/v1/admin/keys", Some(&admin)).await;
    let with = |status: &str| -> String {
        keys.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["status"] == status)
            .unwrap_or_else(|| panic!("no {status} key in {}", keys.body))["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(with("active"), active);
    let next = with("next");
    // The JWKS says which key is which.
    let jwks = api.get("/.well-known/jwks.json", None).await;
    let status_of = |kid: &str| {
        jwks.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .map(|k| k["status"].clone())
    };
    assert_eq!(status_of(&active), Some(json!("active")));
    assert_eq!(status_of(&next), Some(json!("next")));
    let page = api
        .http
        .get(api.url("/v1/revocations?after=0"))
        .basic_auth(&follower.0, Some(&follower.1))
        .send()
        .await
        .unwrap();
    let page = crate::common::Answer::from(page).await;
    page.expect(200, None);
    let events = page.body["events"].as_array().unwrap();
    let event = events
        .iter()
        .find(|e| e["kind"] == "keys")
        .unwrap_or_else(|| panic!("no keys event in {}", page.body));
    assert_eq!(event["value"], format!("{active} {next}"));
}

#[tokio::test]
async fn a_previous_hs256_secret_verifies_never_signs_and_stops_at_its_moment() {
    let old = "an old shared secret of more than 32 bytes!".to_owned();
    let new = "the new shared secret, also over 32 bytes long".to_owned();
    let clock = Clock::manual(Clock::system_now());
    let api = {
        let old = old.clone();
        Api::with(TestServer::builder().clock(clock).configure(move |c| {
            c.signing_alg = Algorithm::HS256;
            c.hmac_secret = Some(tollgate_core::Secret::from(old.as_str()));
        }))
        .await
    };
    let from_old = api
        .login("admin@tollgate.test", PASSWORD)
        .await
        .str("access_token");
    let fp = |s: &str| tollgate_core::fingerprint::secret_fingerprint(&s.into());
    assert_eq!(kid(&from_old), format!("hs256-{}", fp(&old)));

    // The operator rotates: new secret, the old one verifies for 30 s more.
    let until = api.server.now() + 30;
    let mut config = api.server.config().clone();
    config.hmac_secret = Some(new.as_str().into());
    config.hmac_previous = Some((old.as_str().into(), until));
    let api = Api {
        server: api.server.restart_with(config).await,
        http: reqwest::Client::new(),
    };
    api.get("/v1/auth/me", Some(&from_old))
        .await
        .expect(200, None);
    // Only the new secret signs.
    let from_new = api
        .login("admin@tollgate.test", PASSWORD)
        .await
        .str("access_token");
    assert_eq!(kid(&from_new), format!("hs256-{}", fp(&new)));
    let print = api.get("/v1/fingerprint", None).await;
    assert_eq!(print.body["secret_fingerprint"], fp(&new));
    assert_eq!(print.body["previous_secret_fingerprint"], fp(&old));
    assert_eq!(print.body["previous_secret_until"], until);

    // At the moment, the old secret verifies nothing (its token has not
    // expired yet) and leaves the fingerprint.
    api.server.clock().advance(30);
    api.get("/v1/auth/me", Some(&from_old))
        .await
        .expect(401, Some("invalid_token"));
    api.get("/v1/auth/me", Some(&from_new))
        .await
        .expect(200, None);
    let print = api.get("/v1/fingerprint", None).await;
    assert!(print.body.get("previous_secret_fingerprint").is_none());
}
