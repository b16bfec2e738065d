//! Two instances of chat-backend sharing tool limits and usage counts
//! through the real Redis (127.0.0.1:6379, or `TOLLGATE_TEST_REDIS_URL`),
//! as `chat-backend` does when `TOLLGATE_REDIS_URL` is set. The keys live
//! under a prefix of this test's own, deleted at the end.

use tollgate_client::limits::{Plans, RedisLimits, ToolGate};
use tollgate_client::testing::TestIssuer;
use tollgate_client::ws::RedisSlots;

use crate::ws::{chat_works, connect, handshake, once_a_slot_is_free};
use crate::{Backend, read};

fn redis_url() -> String {
    std::env::var("TOLLGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn delete_keys(prefix: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// A gate where `free` allows five calls a minute (one more every 12 s).
fn shared_gate(prefix: &str) -> ToolGate {
    ToolGate::shared(
        Plans::from_toml("base_rate_per_minute = 5").unwrap(),
        RedisLimits::new(&redis_url(), prefix).unwrap(),
    )
}

#[tokio::test]
async fn two_instances_share_the_rate_and_add_up_the_counts() {
    let prefix = format!(
        "tollgate-test:chat-backend:{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let issuer = TestIssuer::new();
    let a = Backend::start_custom(issuer.clone(), shared_gate(&prefix), |r| r).await;
    let b = Backend::start_custom(issuer.clone(), shared_gate(&prefix), |r| r).await;
    let outcome = tokio::spawn(async move {
        let token = a.issuer.user("heidi").mint();
        let mut admitted = 0;
        let mut refused = None;
        for i in 0..20 {
            let backend = if i % 2 == 0 { &a } else { &b };
            let (status, body, _) = read(backend.post("/api/tools/search", &token, "").await).await;
            if status == 429 {
                refused = Some(body);
                break;
            }
            assert_eq!(status, 200, "{body}");
            admitted += 1;
            // The count in the answer is every instance's.
            assert_eq!(body["calls"], admitted);
        }
        // Each instance alone would have allowed five.
        assert_eq!(admitted, 5);
        assert_eq!(refused.unwrap()["error"], "rate_limited");
        for backend in [&a, &b] {
            let (_, usage, _) = read(backend.get("/api/usage", Some(&token)).await).await;
            assert_eq!(usage["usage"], serde_json::json!({"search": 5}));
        }
        let admin = a.issuer.user("ivan").role("admin").mint();
        let (_, all, _) = read(b.get("/api/admin/usage", Some(&admin)).await).await;
        assert_eq!(all["usage"]["heidi"]["search"], 5, "{all}");
        a.shut_down().await;
        b.shut_down().await;
    })
    .await;
    delete_keys(&prefix).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// A prefix of this test's own.
fn unique_prefix() -> String {
    format!(
        "tollgate-test:chat-backend:{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A backend whose WebSocket connection counts live in Redis under `prefix`.
async fn with_shared_slots(issuer: &TestIssuer, prefix: &str) -> Backend {
    let slots = RedisSlots::new(&redis_url(), prefix).unwrap();
    Backend::start_custom(issuer.clone(), ToolGate::new(Plans::builtin()), |rules| {
        rules.shared_slots(slots)
    })
    .await
}

/// The status and error code of a handshake that must be refused.
async fn refusal(backend: &Backend, token: &str) -> (u16, String) {
    let bearer = format!("Bearer {token}");
    let (status, body, _) = handshake(backend, "/ws", &[("authorization", &bearer)])
        .await
        .refused();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Runs `body`, then deletes every key under `prefix`, even if it failed.
async fn cleaned_up<F>(prefix: &str, body: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(body).await;
    delete_keys(prefix).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

#[tokio::test]
async fn two_instances_enforce_one_connection_limit_per_user() {
    let prefix = unique_prefix();
    let shared = prefix.clone();
    cleaned_up(&prefix, async move {
        let issuer = TestIssuer::new();
        let a = with_shared_slots(&issuer, &shared).await;
        let b = with_shared_slots(&issuer, &shared).await;
        // Free plan: two connections across both instances.
        let token = issuer.user("quinn").mint();
        let mut on_a = connect(&a, &token).await;
        let mut on_b = connect(&b, &token).await;
        chat_works(&mut on_a).await;
        chat_works(&mut on_b).await;
        let limited = (403, "connection_limit".to_owned());
        assert_eq!(refusal(&a, &token).await, limited);
        assert_eq!(refusal(&b, &token).await, limited);
        // Another user has slots of their own.
        let mut other = connect(&b, &issuer.user("rhea").mint()).await;
        chat_works(&mut other).await;
        // Closing the one on A frees a slot on B.
        on_a.close(None).await.unwrap();
        drop(on_a);
        let mut again = once_a_slot_is_free(&b, &token).await;
        chat_works(&mut again).await;
        assert_eq!(refusal(&a, &token).await, limited);
        a.shut_down().await;
        b.shut_down().await;
    })
    .await;
}

#[tokio::test]
async fn the_leases_of_a_dead_instance_expire_by_themselves() {
    let prefix = unique_prefix();
    let shared = prefix.clone();
    cleaned_up(&prefix, async move {
        // What an instance that died leaves behind: two leases of the
        // user's, no longer renewed (these run out in 1.5 s).
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let (seconds, micros): (u64, u64) =
            redis::cmd("TIME").query_async(&mut conn).await.unwrap();
        let expiry = seconds * 1000 + micros / 1000 + 1500;
        let _: i64 = redis::cmd("ZADD")
            .arg(format!("{shared}:ws:sofia"))
            .arg(expiry)
            .arg("dead-1")
            .arg(expiry)
            .arg("dead-2")
            .query_async(&mut conn)
            .await
            .unwrap();
        let issuer = TestIssuer::new();
        let backend = with_shared_slots(&issuer, &shared).await;
        let token = issuer.user("sofia").mint();
        assert_eq!(
            refusal(&backend, &token).await,
            (403, "connection_limit".to_owned())
        );
        let mut socket = once_a_slot_is_free(&backend, &token).await;
        chat_works(&mut socket).await;
        // The live lease is the only one left, renewed, not the dead ones.
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{shared}:ws:sofia"))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(members.len(), 1, "{members:?}");
        assert!(!members[0].starts_with("dead-"), "{members:?}");
        backend.shut_down().await;
    })
    .await;
}
