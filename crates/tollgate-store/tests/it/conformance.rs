//! The store contract as tests, written once against [`Store`] and run for
//! every backend by [`conformance_tests!`]. Each test gets a fresh, empty
//! store of its own, so tests run in parallel; time is injected (`NOW`).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tollgate_core::opaque;
use tollgate_store::{AuditFilter, GENESIS, NewAuditEvent, Verification, verify_audit};
use tollgate_store::{
    ClientRecord, KeyRecord, NewRefresh, NewRevocation, RevocationEvent, RevocationKind, Rotation,
    SessionRecord, Store, StoreError, UserRecord, UserUpdate,
};

/// A fixed "now" every test starts from.
pub const NOW: u64 = 1_700_000_000;
/// Refresh token and session lifetime used by the tests.
const DAY: u64 = 24 * 3600;

/// What a conformance test needs from a backend besides the store itself.
pub trait Backend: Send + Sync {
    /// The store under test.
    fn store(&self) -> Arc<dyn Store>;
    /// Closes the store's connections (cutting the database).
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// A new store over the same data, as after a restart.
    fn reopen(&self) -> Pin<Box<dyn Future<Output = Arc<dyn Store>> + Send + '_>>;
    /// Whether `needle` appears anywhere in what the backend stores.
    fn stored_bytes_contain<'a>(
        &'a self,
        needle: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
    /// From now on (`fail`) or no longer, the commit of every transaction
    /// that appended a revocation event fails, as a database that cannot
    /// make the write durable would fail it: a deferred check that the
    /// database itself runs at `COMMIT`, after every statement succeeded.
    fn fail_commits_of_revocations(
        &self,
        fail: bool,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// Deletes the audit events of `chain` up to position `seq` in raw SQL,
    /// as someone with the database would (not through the store).
    fn raw_delete_audit<'a>(
        &'a self,
        chain: &'a str,
        seq: u64,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// Generates one `#[tokio::test]` per conformance test in a backend module
/// that has `async fn run(test: for<'a> fn(&'a dyn Backend) -> BoxFuture<'a>)`.
macro_rules! conformance_tests {
    () => {
        conformance_tests!(
            ping_answers,
            users_are_found_by_id_and_email,
            a_taken_email_is_a_conflict_and_nothing_is_half_written,
            users_are_listed_in_creation_order_by_page,
            updates_change_only_the_given_fields,
            password_hashes_are_replaced,
            sessions_and_their_first_refresh_token_are_stored,
            a_refresh_token_never_outlives_its_session,
            live_sessions_are_listed_newest_first,
            rotation_chains_a_to_b_to_c,
            replaying_a_rotated_token_revokes_the_session_and_kills_its_successor,
            expired_refresh_tokens_and_sessions_do_not_rotate,
            tokens_of_ended_sessions_or_disabled_users_do_not_rotate,
            a_duplicate_new_digest_rolls_the_rotation_back,
            a_retry_within_the_grace_gets_the_same_successor,
            past_the_grace_or_after_the_successor_was_used_a_retry_is_reuse,
            concurrent_retries_within_the_grace_rotate_once_and_share_the_successor,
            sixteen_concurrent_rotations_rotate_exactly_once,
            sixty_four_concurrent_rotations_rotate_exactly_once,
            concurrent_rotations_through_two_stores_rotate_exactly_once,
            concurrent_rotations_revocations_and_purges_all_succeed,
            revoking_a_session_kills_its_refresh_tokens_once,
            revoking_a_token_is_idempotent_per_jti,
            revoking_a_user_writes_the_cut_off_and_ends_every_live_session,
            the_feed_pages_in_cursor_order_and_skips_expired_entries,
            a_reader_following_the_feed_never_misses_an_event,
            purging_removes_only_what_can_no_longer_matter,
            clients_are_stored_listed_and_never_share_a_user_id,
            a_client_is_deleted_with_its_tokens_and_its_secret_replaced,
            keys_round_trip_and_only_one_is_active,
            a_rotation_keeps_one_next_key_and_appends_a_keys_event,
            a_plan_change_is_a_plan_notice_on_the_feed,
            data_survives_close_and_reopen,
            a_closed_store_is_unavailable_for_every_call,
            a_revoking_write_whose_commit_fails_is_unavailable_and_leaves_nothing,
            no_plaintext_refresh_token_or_client_secret_is_stored,
            audit_batches_chain_per_writer_and_verify,
            audit_pages_filter_by_type_and_subject,
            ten_thousand_mixed_audit_events_from_concurrent_writers_verify,
            pruning_the_audit_trail_keeps_every_chain_verifiable,
            deleting_the_oldest_audit_events_by_hand_is_not_pruning,
        );
    };
    ($($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                run(|backend| Box::pin(crate::conformance::$name(backend))).await;
            }
        )+
    };
}

/// A conformance test, boxed so a backend's `run` can take any of them.
pub type BoxFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

// ---------------------------------------------------------------- helpers

fn user(email: &str) -> UserRecord {
    UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaA".to_owned(),
        plan: "free".to_owned(),
        roles: vec![],
        disabled: false,
        created_at: NOW,
    }
}

fn session_of(user: &UserRecord, now: u64) -> SessionRecord {
    SessionRecord {
        sid: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        client_id: "tollgate".to_owned(),
        scope: "openid profile".to_owned(),
        created_at: now,
        last_used_at: now,
        expires_at: now + 7 * DAY,
        revoked_at: None,
    }
}

/// A fresh refresh token digest (the tests never need the token itself).
fn digest() -> String {
    opaque::digest(uuid::Uuid::new_v4().as_bytes())
}

fn refresh(digest: &str, now: u64) -> NewRefresh {
    NewRefresh {
        digest: digest.to_owned(),
        created_at: now,
        expires_at: now + DAY,
        salt: Some(format!("salt-{digest}")),
    }
}

fn revocation(kind: RevocationKind, value: &str, at: u64, expires_at: u64) -> NewRevocation {
    NewRevocation {
        kind,
        value: value.to_owned(),
        at,
        expires_at,
    }
}

/// A user with one session whose first refresh token has digest `first`.
async fn user_with_session(store: &dyn Store, email: &str) -> (UserRecord, SessionRecord, String) {
    let user = user(email);
    store.create_user(user.clone()).await.unwrap();
    let session = session_of(&user, NOW);
    let first = digest();
    store
        .create_session(session.clone(), refresh(&first, NOW))
        .await
        .unwrap();
    (user, session, first)
}

async fn rotate(store: &dyn Store, presented: &str, now: u64) -> (Rotation, String) {
    let next = digest();
    let outcome = store
        .rotate_refresh(presented, refresh(&next, now), now, now + DAY, 0)
        .await
        .unwrap();
    (outcome, next)
}

async fn all_events(store: &dyn Store, now: u64) -> Vec<RevocationEvent> {
    store.revocations_after(0, 1000, now).await.unwrap()
}

fn key(kid: &str, status: &str, created_at: u64) -> KeyRecord {
    KeyRecord {
        kid: kid.to_owned(),
        alg: "EdDSA".to_owned(),
        status: status.to_owned(),
        created_at,
        retire_at: None,
        material: format!("TGK0 material of {kid}").into_bytes(),
    }
}

fn client(client_id: &str, scopes: &[&str]) -> ClientRecord {
    ClientRecord {
        client_id: client_id.to_owned(),
        secret_digest: opaque::digest(client_id.as_bytes()),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        created_at: NOW,
    }
}

// ---------------------------------------------------------------- users

pub async fn ping_answers(backend: &dyn Backend) {
    backend.store().ping().await.unwrap();
}

pub async fn users_are_found_by_id_and_email(backend: &dyn Backend) {
    let store = backend.store();
    let mut alice = user("alice@example.com");
    alice.roles = vec!["admin".to_owned(), "support".to_owned()];
    alice.plan = "enterprise".to_owned();
    store.create_user(alice.clone()).await.unwrap();

    assert_eq!(
        store.find_user(&alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.find_user_by_email("alice@example.com").await.unwrap(),
        Some(alice)
    );
    assert_eq!(store.find_user("no-such-id").await.unwrap(), None);
    assert_eq!(
        store.find_user_by_email("bob@example.com").await.unwrap(),
        None
    );
}

pub async fn a_taken_email_is_a_conflict_and_nothing_is_half_written(backend: &dyn Backend) {
    let store = backend.store();
    store.create_user(user("alice@example.com")).await.unwrap();
    let twin = user("alice@example.com");
    assert!(matches!(
        store.create_user(twin.clone()).await,
        Err(StoreError::Conflict("user"))
    ));
    assert_eq!(store.find_user(&twin.id).await.unwrap(), None);
    // The refused user's id was not reserved either.
    store.create_client(client(&twin.id, &[])).await.unwrap();
    // Nor can a user take a client's id.
    let mut squatter = user("bob@example.com");
    squatter.id = twin.id.clone();
    assert!(matches!(
        store.create_user(squatter).await,
        Err(StoreError::Conflict("user"))
    ));
}

pub async fn users_are_listed_in_creation_order_by_page(backend: &dyn Backend) {
    let store = backend.store();
    let mut ids = Vec::new();
    for n in 0..5 {
        // Same creation second for all: order is insertion order, not id order.
        let user = user(&format!("user{n}@example.com"));
        ids.push(user.id.clone());
        store.create_user(user).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.list_users(after.as_deref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page.into_iter().map(|u| u.id));
    }
    assert_eq!(seen, ids);
    assert_eq!(store.list_users(None, 100).await.unwrap().len(), 5);
    assert!(
        store
            .list_users(Some("unknown"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_users(None, 0).await.unwrap().is_empty());
}

pub async fn updates_change_only_the_given_fields(backend: &dyn Backend) {
    let store = backend.store();
    let alice = user("alice@example.com");
    store.create_user(alice.clone()).await.unwrap();

    let updated = store
        .update_user(
            &alice.id,
            UserUpdate {
                plan: Some("pro".to_owned()),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.plan, "pro");
    assert_eq!(updated.roles, alice.roles);
    assert!(!updated.disabled);

    let updated = store
        .update_user(
            &alice.id,
            UserUpdate {
                plan: None,
                roles: Some(vec!["admin".to_owned()]),
                disabled: Some(true),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            updated.plan.as_str(),
            updated.roles.clone(),
            updated.disabled
        ),
        ("pro", vec!["admin".to_owned()], true)
    );
    assert_eq!(store.find_user(&alice.id).await.unwrap(), Some(updated));

    let cleared = store
        .update_user(
            &alice.id,
            UserUpdate {
                roles: Some(vec![]),
                disabled: Some(false),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(cleared.roles.is_empty() && !cleared.disabled);

    assert_eq!(
        store
            .update_user("no-such-id", UserUpdate::default())
            .await
            .unwrap(),
        None
    );
}

pub async fn password_hashes_are_replaced(backend: &dyn Backend) {
    let store = backend.store();
    let alice = user("alice@example.com");
    store.create_user(alice.clone()).await.unwrap();
    store
        .set_password_hash(&alice.id, "$argon2id$v=19$m=65536,t=3,p=1$bmV3$bmV3")
        .await
        .unwrap();
    let found = store.find_user(&alice.id).await.unwrap().unwrap();
    assert_eq!(
        found.password_hash,
        "$argon2id$v=19$m=65536,t=3,p=1$bmV3$bmV3"
    );
    // No such user: nothing to change, nothing created.
    store.set_password_hash("no-such-id", "x").await.unwrap();
    assert_eq!(store.find_user("no-such-id").await.unwrap(), None);
}

// ---------------------------------------------------------------- sessions

pub async fn sessions_and_their_first_refresh_token_are_stored(backend: &dyn Backend) {
    let store = backend.store();
    let (_, session, first) = user_with_session(&*store, "alice@example.com").await;
    assert_eq!(
        store.find_session(&session.sid).await.unwrap(),
        Some(session.clone())
    );
    let record = store.find_refresh(&first).await.unwrap().unwrap();
    assert_eq!(
        (
            record.sid.as_str(),
            record.created_at,
            record.expires_at,
            record.used_at
        ),
        (session.sid.as_str(), NOW, NOW + DAY, None)
    );
    assert_eq!(store.find_session("no-such-sid").await.unwrap(), None);
    assert_eq!(store.find_refresh(&digest()).await.unwrap(), None);

    // A second session with the same id, or the same first token, is refused.
    let user = store.find_user(&session.user_id).await.unwrap().unwrap();
    assert!(matches!(
        store
            .create_session(session.clone(), refresh(&digest(), NOW))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let other = session_of(&user, NOW);
    assert!(matches!(
        store
            .create_session(other.clone(), refresh(&first, NOW))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.find_session(&other.sid).await.unwrap(), None);
}

pub async fn a_refresh_token_never_outlives_its_session(backend: &dyn Backend) {
    let store = backend.store();
    let alice = user("alice@example.com");
    store.create_user(alice.clone()).await.unwrap();
    let mut session = session_of(&alice, NOW);
    session.expires_at = NOW + 3600;
    let first = digest();
    store
        .create_session(session.clone(), refresh(&first, NOW))
        .await
        .unwrap();
    assert_eq!(
        store
            .find_refresh(&first)
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        NOW + 3600
    );
    let (outcome, next) = rotate(&*store, &first, NOW + 10).await;
    assert!(matches!(outcome, Rotation::Rotated { .. }));
    assert_eq!(
        store.find_refresh(&next).await.unwrap().unwrap().expires_at,
        NOW + 3600
    );
}

pub async fn live_sessions_are_listed_newest_first(backend: &dyn Backend) {
    let store = backend.store();
    let alice = user("alice@example.com");
    store.create_user(alice.clone()).await.unwrap();
    let mut sessions = Vec::new();
    for n in 0..4 {
        let mut session = session_of(&alice, NOW);
        if n == 3 {
            session.expires_at = NOW + 60;
        }
        store
            .create_session(session.clone(), refresh(&digest(), NOW))
            .await
            .unwrap();
        sessions.push(session);
    }
    let (bob, bobs, _) = user_with_session(&*store, "bob@example.com").await;
    store
        .revoke_session(
            &sessions[1].sid,
            revocation(RevocationKind::Session, &sessions[1].sid, NOW, NOW + DAY),
        )
        .await
        .unwrap()
        .unwrap();

    let listed: Vec<String> = store
        .list_sessions(&alice.id, NOW + 60)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.sid)
        .collect();
    // Newest first; the revoked one and the one expiring at NOW + 60 are gone.
    assert_eq!(
        listed,
        vec![sessions[2].sid.clone(), sessions[0].sid.clone()]
    );
    let listed = store.list_sessions(&alice.id, NOW + 59).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].sid, sessions[3].sid);
    assert_eq!(store.list_sessions(&bob.id, NOW).await.unwrap(), vec![bobs]);
    assert!(store.list_sessions("nobody", NOW).await.unwrap().is_empty());
}

// ---------------------------------------------------------------- rotation

pub async fn rotation_chains_a_to_b_to_c(backend: &dyn Backend) {
    let store = backend.store();
    let (alice, session, a) = user_with_session(&*store, "alice@example.com").await;

    let (outcome, b) = rotate(&*store, &a, NOW + 100).await;
    let Rotation::Rotated {
        session: after_b,
        user,
    } = outcome
    else {
        panic!("A did not rotate: {outcome:?}");
    };
    assert_eq!(user, alice);
    assert_eq!(after_b.sid, session.sid);
    assert_eq!(after_b.last_used_at, NOW + 100);
    assert_eq!(after_b.created_at, NOW);

    let (outcome, c) = rotate(&*store, &b, NOW + 200).await;
    let Rotation::Rotated {
        session: after_c, ..
    } = outcome
    else {
        panic!("B did not rotate: {outcome:?}");
    };
    assert_eq!(after_c.last_used_at, NOW + 200);
    assert_eq!(
        store.find_session(&session.sid).await.unwrap(),
        Some(after_c)
    );

    let a_record = store.find_refresh(&a).await.unwrap().unwrap();
    let b_record = store.find_refresh(&b).await.unwrap().unwrap();
    let c_record = store.find_refresh(&c).await.unwrap().unwrap();
    assert_eq!(a_record.used_at, Some(NOW + 100));
    assert_eq!(b_record.used_at, Some(NOW + 200));
    assert_eq!(
        (c_record.sid.as_str(), c_record.used_at, c_record.created_at),
        (session.sid.as_str(), None, NOW + 200)
    );
    // Rotation writes no revocation.
    assert!(all_events(&*store, NOW).await.is_empty());
}

pub async fn replaying_a_rotated_token_revokes_the_session_and_kills_its_successor(
    backend: &dyn Backend,
) {
    let store = backend.store();
    let (_, session, a) = user_with_session(&*store, "alice@example.com").await;
    let (_, bystander, bystanders) = user_with_session(&*store, "bob@example.com").await;
    let (outcome, b) = rotate(&*store, &a, NOW + 100).await;
    assert!(matches!(outcome, Rotation::Rotated { .. }));

    let replayed = store
        .rotate_refresh(&a, refresh(&digest(), NOW + 200), NOW + 200, NOW + 9999, 0)
        .await
        .unwrap();
    let Rotation::Reused { event } = replayed else {
        panic!("a replay was not detected: {replayed:?}");
    };
    assert_eq!(
        (event.kind, event.value.as_str(), event.at, event.expires_at),
        (
            RevocationKind::Session,
            session.sid.as_str(),
            NOW + 200,
            NOW + 9999
        )
    );
    assert_eq!(all_events(&*store, NOW + 200).await, vec![event]);
    assert_eq!(
        store.last_cursor().await.unwrap(),
        all_events(&*store, NOW).await[0].cursor
    );

    let ended = store.find_session(&session.sid).await.unwrap().unwrap();
    assert_eq!(ended.revoked_at, Some(NOW + 200));
    // B, the successor, is dead too, and so is every later replay.
    assert_eq!(rotate(&*store, &b, NOW + 300).await.0, Rotation::Invalid);
    assert!(
        store
            .find_refresh(&b)
            .await
            .unwrap()
            .unwrap()
            .used_at
            .is_some()
    );
    assert_eq!(rotate(&*store, &a, NOW + 300).await.0, Rotation::Invalid);
    assert_eq!(all_events(&*store, NOW).await.len(), 1);
    // Another user's session is untouched.
    assert_eq!(
        store.find_session(&bystander.sid).await.unwrap(),
        Some(bystander)
    );
    assert!(matches!(
        rotate(&*store, &bystanders, NOW + 300).await.0,
        Rotation::Rotated { .. }
    ));
}

pub async fn expired_refresh_tokens_and_sessions_do_not_rotate(backend: &dyn Backend) {
    let store = backend.store();
    let (_, _, a) = user_with_session(&*store, "alice@example.com").await;
    // Expiry is exclusive: at `expires_at` the token is dead, and stays
    // unused (an expired token is not a replay).
    assert_eq!(rotate(&*store, &a, NOW + DAY).await.0, Rotation::Invalid);
    assert_eq!(store.find_refresh(&a).await.unwrap().unwrap().used_at, None);
    assert!(matches!(
        rotate(&*store, &a, NOW + DAY - 1).await.0,
        Rotation::Rotated { .. }
    ));

    // A session past its absolute end refreshes no more, whatever its token.
    let bob = user("bob@example.com");
    store.create_user(bob.clone()).await.unwrap();
    let mut short = session_of(&bob, NOW);
    short.expires_at = NOW + 50;
    let first = digest();
    store
        .create_session(
            short,
            NewRefresh {
                digest: first.clone(),
                created_at: NOW,
                expires_at: NOW + DAY,
                salt: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(rotate(&*store, &first, NOW + 50).await.0, Rotation::Invalid);
    assert_eq!(
        rotate(&*store, &digest(), NOW).await.0,
        Rotation::Invalid,
        "an unknown token"
    );
    assert!(all_events(&*store, NOW).await.is_empty());
}

pub async fn tokens_of_ended_sessions_or_disabled_users_do_not_rotate(backend: &dyn Backend) {
    let store = backend.store();
    let (_, session, a) = user_with_session(&*store, "alice@example.com").await;
    store
        .revoke_session(
            &session.sid,
            revocation(RevocationKind::Session, &session.sid, NOW, NOW + DAY),
        )
        .await
        .unwrap()
        .unwrap();
    // The live token of an ended session is dead; presenting it is not
    // reuse and writes nothing more.
    assert_eq!(rotate(&*store, &a, NOW + 1).await.0, Rotation::Invalid);
    assert_eq!(all_events(&*store, NOW).await.len(), 1);

    let (bob, _, b) = user_with_session(&*store, "bob@example.com").await;
    store
        .update_user(
            &bob.id,
            UserUpdate {
                disabled: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rotate(&*store, &b, NOW + 1).await.0, Rotation::Invalid);
    assert_eq!(store.find_refresh(&b).await.unwrap().unwrap().used_at, None);
    store
        .update_user(
            &bob.id,
            UserUpdate {
                disabled: Some(false),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        rotate(&*store, &b, NOW + 2).await.0,
        Rotation::Rotated { .. }
    ));
}

pub async fn a_duplicate_new_digest_rolls_the_rotation_back(backend: &dyn Backend) {
    let store = backend.store();
    let (_, session, a) = user_with_session(&*store, "alice@example.com").await;
    let (_, _, taken) = user_with_session(&*store, "bob@example.com").await;
    let result = store
        .rotate_refresh(&a, refresh(&taken, NOW + 5), NOW + 5, NOW + DAY, 0)
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    // Nothing of the failed rotation stuck: A is still unused and rotates.
    assert_eq!(store.find_refresh(&a).await.unwrap().unwrap().used_at, None);
    assert_eq!(
        store
            .find_session(&session.sid)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        NOW
    );
    assert!(matches!(
        rotate(&*store, &a, NOW + 6).await.0,
        Rotation::Rotated { .. }
    ));
}

pub async fn sixteen_concurrent_rotations_rotate_exactly_once(backend: &dyn Backend) {
    concurrent_rotations(backend, 16).await;
}

pub async fn sixty_four_concurrent_rotations_rotate_exactly_once(backend: &dyn Backend) {
    concurrent_rotations(backend, 64).await;
}

/// `n` simultaneous rotations of one token. Exactly one wins. The store
/// cannot tell a client's retry from an attacker's replay, so the first
/// loser to run is a replay of a used token: the session is revoked (one
/// event) and every later loser, like the winner's new token, meets an
/// ended session and gets `Invalid`.
async fn concurrent_rotations(backend: &dyn Backend, n: usize) {
    concurrent_rotations_through(&[backend.store()], n).await;
}

/// Issue 10: the store written once must stay exactly-once when the
/// racing callers are two stores on one database, each with its own
/// connections (two server instances, or the server and the CLI on one
/// SQLite file), not only tasks sharing one pool.
pub async fn concurrent_rotations_through_two_stores_rotate_exactly_once(backend: &dyn Backend) {
    let first = backend.store();
    let second = backend.reopen().await;
    concurrent_rotations_through(&[first, second], 32).await;
}

/// `n` simultaneous rotations of one token, spread over `stores` (all on
/// one database).
async fn concurrent_rotations_through(stores: &[Arc<dyn Store>], n: usize) {
    let store = Arc::clone(&stores[0]);
    let (_, session, a) = user_with_session(&*store, "alice@example.com").await;
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = Arc::clone(&stores[i % stores.len()]);
        let start = Arc::clone(&start);
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let next = digest();
            start.wait().await;
            let outcome = store
                .rotate_refresh(&a, refresh(&next, NOW + 1), NOW + 1, NOW + DAY, 0)
                .await;
            (outcome, next)
        }));
    }
    let mut rotated = Vec::new();
    let mut reused = Vec::new();
    let mut invalid = 0;
    for task in tasks {
        let (outcome, next) = task.await.unwrap();
        match outcome {
            Ok(Rotation::Rotated { .. }) => rotated.push(next),
            Ok(Rotation::Reused { event }) => reused.push(event),
            Ok(Rotation::Invalid) => invalid += 1,
            Ok(retried @ Rotation::Retried { .. }) => panic!("no grace, yet {retried:?}"),
            Err(err) => panic!("a concurrent rotation failed: {err}"),
        }
    }
    assert_eq!(rotated.len(), 1, "exactly one rotation wins");
    assert_eq!(reused.len(), 1, "the first replay revokes the session");
    assert_eq!(invalid, n - 2);
    assert_eq!(reused[0].value, session.sid);
    assert_eq!(all_events(&*store, NOW).await, reused);
    let ended = store.find_session(&session.sid).await.unwrap().unwrap();
    assert!(ended.revoked_at.is_some());
    assert_eq!(
        rotate(&*store, &rotated[0], NOW + 2).await.0,
        Rotation::Invalid
    );
}

/// Issue 9 item 6: a client whose answer to a refresh was lost presents the
/// same token again within the reuse grace: it learns the salt of the one
/// successor (so the server answers with the same successor), nothing is
/// consumed or stored, and the session lives on.
pub async fn a_retry_within_the_grace_gets_the_same_successor(backend: &dyn Backend) {
    let store = backend.store();
    let (user, session, a) = user_with_session(&*store, "alice@example.com").await;
    let (outcome, b) = rotate(&*store, &a, NOW + 100).await;
    assert!(matches!(outcome, Rotation::Rotated { .. }));

    for at in [NOW + 100, NOW + 105, NOW + 109] {
        let unused = digest();
        let outcome = store
            .rotate_refresh(&a, refresh(&unused, at), at, at + DAY, 10)
            .await
            .unwrap();
        let Rotation::Retried {
            session: retried,
            user: owner,
            salt,
        } = outcome
        else {
            panic!("a retry within the grace was not answered: {outcome:?}");
        };
        assert_eq!(salt, format!("salt-{b}"), "the successor's salt");
        assert_eq!(
            (retried.sid.as_str(), retried.last_used_at),
            (session.sid.as_str(), at)
        );
        assert_eq!(owner.id, user.id);
        // Nothing new is stored: the chain does not grow.
        assert_eq!(store.find_refresh(&unused).await.unwrap(), None);
    }
    assert!(all_events(&*store, NOW).await.is_empty());
    let live = store.find_session(&session.sid).await.unwrap().unwrap();
    assert_eq!(live.revoked_at, None);
    // The successor is still the one live token, and rotates as usual.
    assert_eq!(store.find_refresh(&b).await.unwrap().unwrap().used_at, None);
    assert!(matches!(
        rotate(&*store, &b, NOW + 110).await.0,
        Rotation::Rotated { .. }
    ));
}

/// Outside the grace, or once the successor was used (the client did get
/// its answer), presenting a rotated token again is reuse, as without a
/// grace: the session ends.
pub async fn past_the_grace_or_after_the_successor_was_used_a_retry_is_reuse(
    backend: &dyn Backend,
) {
    let store = backend.store();
    // Past the grace.
    let (_, late, a) = user_with_session(&*store, "alice@example.com").await;
    let (_, b) = rotate(&*store, &a, NOW + 100).await;
    let outcome = store
        .rotate_refresh(&a, refresh(&digest(), NOW + 110), NOW + 110, NOW + DAY, 10)
        .await
        .unwrap();
    assert!(
        matches!(outcome, Rotation::Reused { ref event } if event.value == late.sid),
        "{outcome:?}"
    );
    assert_eq!(rotate(&*store, &b, NOW + 111).await.0, Rotation::Invalid);

    // Within the grace, but the successor was used.
    let (_, used, c) = user_with_session(&*store, "bob@example.com").await;
    let (_, d) = rotate(&*store, &c, NOW + 100).await;
    assert!(matches!(
        rotate(&*store, &d, NOW + 101).await.0,
        Rotation::Rotated { .. }
    ));
    let outcome = store
        .rotate_refresh(&c, refresh(&digest(), NOW + 102), NOW + 102, NOW + DAY, 10)
        .await
        .unwrap();
    assert!(
        matches!(outcome, Rotation::Reused { ref event } if event.value == used.sid),
        "{outcome:?}"
    );

    // A grace of 0 is no grace.
    let (_, none, e) = user_with_session(&*store, "carol@example.com").await;
    rotate(&*store, &e, NOW + 100).await;
    let outcome = store
        .rotate_refresh(&e, refresh(&digest(), NOW + 100), NOW + 100, NOW + DAY, 0)
        .await
        .unwrap();
    assert!(
        matches!(outcome, Rotation::Reused { ref event } if event.value == none.sid),
        "{outcome:?}"
    );

    // An ended session gets no grace.
    let (_, ended, f) = user_with_session(&*store, "dave@example.com").await;
    rotate(&*store, &f, NOW + 100).await;
    store
        .revoke_session(
            &ended.sid,
            revocation(RevocationKind::Session, &ended.sid, NOW + 101, NOW + DAY),
        )
        .await
        .unwrap();
    let outcome = store
        .rotate_refresh(&f, refresh(&digest(), NOW + 102), NOW + 102, NOW + DAY, 10)
        .await
        .unwrap();
    assert_eq!(outcome, Rotation::Invalid);
}

/// Many simultaneous presentations of one token within the grace (a client
/// that retries while its first request is still in flight): one rotates,
/// every other one is a retry of that rotation, and one successor exists.
pub async fn concurrent_retries_within_the_grace_rotate_once_and_share_the_successor(
    backend: &dyn Backend,
) {
    let store = backend.store();
    let (_, session, a) = user_with_session(&*store, "alice@example.com").await;
    let n = 16;
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let store = Arc::clone(&store);
        let start = Arc::clone(&start);
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let next = digest();
            start.wait().await;
            let outcome = store
                .rotate_refresh(&a, refresh(&next, NOW + 1), NOW + 1, NOW + DAY, 10)
                .await;
            (outcome, next)
        }));
    }
    let mut rotated = Vec::new();
    let mut salts = BTreeSet::new();
    for task in tasks {
        match task.await.unwrap() {
            (Ok(Rotation::Rotated { .. }), next) => rotated.push(next),
            (Ok(Rotation::Retried { salt, .. }), _) => {
                salts.insert(salt);
            }
            (other, _) => panic!("not a rotation or a retry: {other:?}"),
        }
    }
    assert_eq!(rotated.len(), 1, "exactly one rotation wins");
    assert_eq!(salts, BTreeSet::from([format!("salt-{}", rotated[0])]));
    assert!(all_events(&*store, NOW).await.is_empty());
    let live = store.find_session(&session.sid).await.unwrap().unwrap();
    assert_eq!(live.revoked_at, None);
}

/// Every kind of write at once on the same users and sessions: a store
/// that takes locks in different orders (deadlock) or lets writers fail
/// with "busy" shows it here as an error.
pub async fn concurrent_rotations_revocations_and_purges_all_succeed(backend: &dyn Backend) {
    let store = backend.store();
    let mut users = Vec::new();
    let mut tokens = Vec::new();
    for u in 0..4 {
        let user = user(&format!("user{u}@example.com"));
        store.create_user(user.clone()).await.unwrap();
        for _ in 0..3 {
            let mut session = session_of(&user, NOW);
            // Some sessions end at NOW + 5, so purges have work to do.
            if tokens.len() % 3 == 2 {
                session.expires_at = NOW + 5;
            }
            let first = digest();
            store
                .create_session(session.clone(), refresh(&first, NOW))
                .await
                .unwrap();
            tokens.push((session.sid, first));
        }
        users.push(user);
    }
    let mut tasks: Vec<tokio::task::JoinHandle<Result<(), StoreError>>> = Vec::new();
    for round in 0..3u64 {
        for (sid, first) in tokens.clone() {
            let store = backend.store();
            tasks.push(tokio::spawn(async move {
                let mut current = first;
                for step in 0..4 {
                    let next = digest();
                    let now = NOW + 10 * round + step;
                    match store
                        .rotate_refresh(&current, refresh(&next, now), now, now + DAY, 0)
                        .await?
                    {
                        Rotation::Rotated { .. } => current = next,
                        Rotation::Reused { .. } | Rotation::Invalid | Rotation::Retried { .. } => {
                            break;
                        }
                    }
                }
                Ok(())
            }));
            let store = backend.store();
            tasks.push(tokio::spawn(async move {
                store
                    .revoke_session(
                        &sid,
                        revocation(RevocationKind::Session, &sid, NOW + 3, NOW + DAY),
                    )
                    .await
                    .map(drop)
            }));
        }
        for user in &users {
            let store = backend.store();
            let id = user.id.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .revoke_user(
                        revocation(RevocationKind::User, &id, NOW + 4, NOW + DAY),
                        NOW + DAY,
                    )
                    .await
                    .map(drop)
            }));
        }
        let store = backend.store();
        tasks.push(tokio::spawn(async move {
            store.purge_expired(NOW + 6).await.map(drop)
        }));
        let store = backend.store();
        tasks.push(tokio::spawn(async move {
            store
                .revoke_token(revocation(RevocationKind::Token, "jti", NOW, NOW + DAY))
                .await
                .map(drop)
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // Whatever the interleaving, every session ended or was purged.
    for user in &users {
        assert!(store.list_sessions(&user.id, NOW).await.unwrap().is_empty());
    }
    let events = all_events(&*store, NOW).await;
    assert!(events.windows(2).all(|w| w[0].cursor < w[1].cursor));
}

// ---------------------------------------------------------------- revocation

pub async fn revoking_a_session_kills_its_refresh_tokens_once(backend: &dyn Backend) {
    let store = backend.store();
    let (alice, session, a) = user_with_session(&*store, "alice@example.com").await;
    let (_, b) = rotate(&*store, &a, NOW + 10).await;

    let event = store
        .revoke_session(
            &session.sid,
            revocation(RevocationKind::Session, &session.sid, NOW + 20, NOW + 920),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.kind, event.value.as_str(), event.at, event.expires_at),
        (
            RevocationKind::Session,
            session.sid.as_str(),
            NOW + 20,
            NOW + 920
        )
    );
    assert_eq!(
        store
            .find_session(&session.sid)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(NOW + 20)
    );
    assert_eq!(
        store.find_refresh(&b).await.unwrap().unwrap().used_at,
        Some(NOW + 20)
    );
    assert_eq!(rotate(&*store, &b, NOW + 30).await.0, Rotation::Invalid);
    assert!(
        store
            .list_sessions(&alice.id, NOW + 30)
            .await
            .unwrap()
            .is_empty()
    );

    // Again, or an unknown session: nothing to do, nothing written.
    let again = store
        .revoke_session(
            &session.sid,
            revocation(RevocationKind::Session, &session.sid, NOW + 40, NOW + 940),
        )
        .await
        .unwrap();
    assert_eq!(again, None);
    assert_eq!(
        store
            .revoke_session(
                "no-such-sid",
                revocation(RevocationKind::Session, "x", NOW, NOW + 1)
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(all_events(&*store, NOW).await, vec![event]);
}

pub async fn revoking_a_token_is_idempotent_per_jti(backend: &dyn Backend) {
    let store = backend.store();
    let first = store
        .revoke_token(revocation(RevocationKind::Token, "jti-1", NOW, NOW + 900))
        .await
        .unwrap();
    assert_eq!(
        (first.kind, first.value.as_str(), first.at, first.expires_at),
        (RevocationKind::Token, "jti-1", NOW, NOW + 900)
    );
    let again = store
        .revoke_token(revocation(
            RevocationKind::Token,
            "jti-1",
            NOW + 5,
            NOW + 905,
        ))
        .await
        .unwrap();
    assert_eq!(again, first);
    let other = store
        .revoke_token(revocation(RevocationKind::Token, "jti-2", NOW, NOW + 900))
        .await
        .unwrap();
    assert!(other.cursor > first.cursor);
    assert_eq!(all_events(&*store, NOW).await, vec![first, other]);

    // Concurrent revocations of one jti still write one event.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = backend.store();
        tasks.push(tokio::spawn(async move {
            store
                .revoke_token(revocation(RevocationKind::Token, "jti-3", NOW, NOW + 900))
                .await
                .unwrap()
        }));
    }
    let mut cursors = BTreeSet::new();
    for task in tasks {
        cursors.insert(task.await.unwrap().cursor);
    }
    assert_eq!(cursors.len(), 1);
    assert_eq!(all_events(&*store, NOW).await.len(), 3);
}

pub async fn revoking_a_user_writes_the_cut_off_and_ends_every_live_session(backend: &dyn Backend) {
    let store = backend.store();
    let (alice, first, first_token) = user_with_session(&*store, "alice@example.com").await;
    let second = session_of(&alice, NOW);
    let second_token = digest();
    store
        .create_session(second.clone(), refresh(&second_token, NOW))
        .await
        .unwrap();
    let mut expired = session_of(&alice, NOW);
    expired.expires_at = NOW + 10;
    store
        .create_session(expired.clone(), refresh(&digest(), NOW))
        .await
        .unwrap();
    let ended = session_of(&alice, NOW);
    store
        .create_session(ended.clone(), refresh(&digest(), NOW))
        .await
        .unwrap();
    let ended_event = store
        .revoke_session(
            &ended.sid,
            revocation(RevocationKind::Session, &ended.sid, NOW, NOW + 900),
        )
        .await
        .unwrap()
        .unwrap();
    let (_, bobs, bobs_token) = user_with_session(&*store, "bob@example.com").await;

    let events = store
        .revoke_user(
            revocation(RevocationKind::User, &alice.id, NOW + 100, NOW + 1000),
            NOW + 2000,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        (
            events[0].kind,
            events[0].value.as_str(),
            events[0].at,
            events[0].expires_at
        ),
        (
            RevocationKind::User,
            alice.id.as_str(),
            NOW + 100,
            NOW + 1000
        )
    );
    let ended_sids: BTreeSet<&str> = events[1..].iter().map(|e| e.value.as_str()).collect();
    assert_eq!(
        ended_sids,
        BTreeSet::from([first.sid.as_str(), second.sid.as_str()])
    );
    for event in &events[1..] {
        assert_eq!(
            (event.kind, event.at, event.expires_at),
            (RevocationKind::Session, NOW + 100, NOW + 2000)
        );
    }
    assert!(events.windows(2).all(|w| w[0].cursor < w[1].cursor));
    let mut feed = vec![ended_event];
    feed.extend(events.clone());
    assert_eq!(all_events(&*store, NOW).await, feed);

    for sid in [&first.sid, &second.sid] {
        assert_eq!(
            store.find_session(sid).await.unwrap().unwrap().revoked_at,
            Some(NOW + 100)
        );
    }
    assert_eq!(
        store
            .find_session(&expired.sid)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    for token in [&first_token, &second_token] {
        assert_eq!(rotate(&*store, token, NOW + 101).await.0, Rotation::Invalid);
    }
    // Bob keeps his session.
    assert_eq!(store.find_session(&bobs.sid).await.unwrap(), Some(bobs));
    assert!(matches!(
        rotate(&*store, &bobs_token, NOW + 101).await.0,
        Rotation::Rotated { .. }
    ));

    // A client id has no sessions: just the cut-off.
    let events = store
        .revoke_user(
            revocation(RevocationKind::User, "billing-service", NOW, NOW + 3600),
            NOW + 3600,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].value, "billing-service");
}

pub async fn the_feed_pages_in_cursor_order_and_skips_expired_entries(backend: &dyn Backend) {
    let store = backend.store();
    assert_eq!(store.last_cursor().await.unwrap(), 0);
    assert!(all_events(&*store, NOW).await.is_empty());

    let mut written = Vec::new();
    for n in 0..7u64 {
        // Odd entries expire at NOW + 100, even ones at NOW + 1000.
        let expires_at = if n % 2 == 1 { NOW + 100 } else { NOW + 1000 };
        written.push(
            store
                .revoke_token(revocation(
                    RevocationKind::Token,
                    &format!("jti-{n}"),
                    NOW,
                    expires_at,
                ))
                .await
                .unwrap(),
        );
    }
    assert!(written.windows(2).all(|w| w[0].cursor < w[1].cursor));
    assert_eq!(store.last_cursor().await.unwrap(), written[6].cursor);

    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.revocations_after(after, 3, NOW).await.unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = last.cursor;
        paged.extend(page);
    }
    assert_eq!(paged, written);

    // At NOW + 100 the odd entries no longer matter (expiry is exclusive).
    let live = store.revocations_after(0, 100, NOW + 100).await.unwrap();
    let values: Vec<&str> = live.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(values, ["jti-0", "jti-2", "jti-4", "jti-6"]);
    let after_second = store
        .revocations_after(written[2].cursor, 100, NOW + 99)
        .await
        .unwrap();
    assert_eq!(after_second, written[3..].to_vec());
    assert!(
        store
            .revocations_after(written[6].cursor, 100, NOW)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.revocations_after(0, 0, NOW).await.unwrap().is_empty());
    assert!(
        store
            .revocations_after(u64::MAX, 10, NOW)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Cursors must be handed out in commit order: a reader that has seen
/// cursor N must never later find an event below N (it would skip it).
pub async fn a_reader_following_the_feed_never_misses_an_event(backend: &dyn Backend) {
    let store = backend.store();
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = backend.store();
        writers.push(tokio::spawn(async move {
            for n in 0..12 {
                let value = format!("jti-{w}-{n}");
                if n % 3 == 0 {
                    let events = store
                        .revoke_user(
                            revocation(RevocationKind::User, &value, NOW, NOW + 900),
                            NOW,
                        )
                        .await
                        .unwrap();
                    assert_eq!(events.len(), 1);
                } else {
                    store
                        .revoke_token(revocation(RevocationKind::Token, &value, NOW, NOW + 900))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let page = store.revocations_after(after, 7, NOW).await.unwrap();
        if let Some(last) = page.last() {
            after = last.cursor;
        }
        let empty = page.is_empty();
        seen.extend(page);
        if done && empty {
            break;
        }
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let all = all_events(&*store, NOW).await;
    assert_eq!(all.len(), 96);
    assert_eq!(seen, all, "the follower missed or reordered events");
}

pub async fn purging_removes_only_what_can_no_longer_matter(backend: &dyn Backend) {
    let store = backend.store();
    let alice = user("alice@example.com");
    store.create_user(alice.clone()).await.unwrap();
    // A session ending at NOW + 100 with one token (2 rows).
    let mut old = session_of(&alice, NOW);
    old.expires_at = NOW + 100;
    let old_token = digest();
    store
        .create_session(old.clone(), refresh(&old_token, NOW))
        .await
        .unwrap();
    // A live session whose first token expires at NOW + 100 (1 row) and
    // whose current one lives on.
    let live = session_of(&alice, NOW);
    let stale = digest();
    store
        .create_session(
            live.clone(),
            NewRefresh {
                digest: stale.clone(),
                created_at: NOW,
                expires_at: NOW + 100,
                salt: None,
            },
        )
        .await
        .unwrap();
    let (_, current) = rotate(&*store, &stale, NOW + 10).await;
    // Revocations: one ending at NOW + 100 (1 row), one later.
    store
        .revoke_token(revocation(RevocationKind::Token, "old", NOW, NOW + 100))
        .await
        .unwrap();
    let kept = store
        .revoke_token(revocation(RevocationKind::Token, "new", NOW, NOW + 1000))
        .await
        .unwrap();
    let last = store.last_cursor().await.unwrap();

    assert_eq!(store.purge_expired(NOW + 99).await.unwrap(), 0);
    assert_eq!(store.purge_expired(NOW + 100).await.unwrap(), 4);
    assert_eq!(store.purge_expired(NOW + 100).await.unwrap(), 0);

    assert_eq!(store.find_session(&old.sid).await.unwrap(), None);
    assert_eq!(store.find_refresh(&old_token).await.unwrap(), None);
    assert_eq!(store.find_refresh(&stale).await.unwrap(), None);
    assert!(store.find_session(&live.sid).await.unwrap().is_some());
    assert!(store.find_refresh(&current).await.unwrap().is_some());
    assert_eq!(all_events(&*store, NOW).await, vec![kept]);
    // The cursor never goes back, even when the newest entries go.
    assert_eq!(store.last_cursor().await.unwrap(), last);
    assert_eq!(store.purge_expired(NOW + 1000).await.unwrap(), 1);
    assert_eq!(store.last_cursor().await.unwrap(), last);
    let next = store
        .revoke_token(revocation(RevocationKind::Token, "newer", NOW, NOW + 5000))
        .await
        .unwrap();
    assert!(next.cursor > last);
    // Users are never purged.
    assert!(store.find_user(&alice.id).await.unwrap().is_some());
}

// ---------------------------------------------------------------- clients, keys

pub async fn clients_are_stored_listed_and_never_share_a_user_id(backend: &dyn Backend) {
    let store = backend.store();
    let billing = client("billing", &["introspect", "revoke"]);
    let chat = client("chat-backend", &[]);
    store.create_client(billing.clone()).await.unwrap();
    store.create_client(chat.clone()).await.unwrap();
    assert_eq!(
        store.find_client("billing").await.unwrap(),
        Some(billing.clone())
    );
    assert_eq!(store.find_client("nobody").await.unwrap(), None);
    assert_eq!(
        store.list_clients().await.unwrap(),
        vec![billing.clone(), chat]
    );

    let mut twin = client("billing", &["admin"]);
    twin.secret_digest = opaque::digest(b"another secret");
    assert!(matches!(
        store.create_client(twin).await,
        Err(StoreError::Conflict("client"))
    ));
    assert_eq!(store.find_client("billing").await.unwrap(), Some(billing));

    // RFC 9700 §4.15.1: a client may not take a user's id as its own.
    let alice = user("alice@example.com");
    store.create_user(alice.clone()).await.unwrap();
    assert!(matches!(
        store.create_client(client(&alice.id, &["admin"])).await,
        Err(StoreError::Conflict("client"))
    ));
    assert_eq!(store.find_client(&alice.id).await.unwrap(), None);
    assert_eq!(store.list_clients().await.unwrap().len(), 2);
}

pub async fn a_client_is_deleted_with_its_tokens_and_its_secret_replaced(backend: &dyn Backend) {
    let store = backend.store();
    let billing = client("billing", &["introspect"]);
    store.create_client(billing.clone()).await.unwrap();
    store.create_client(client("chat", &[])).await.unwrap();

    let digest = opaque::digest(b"a new secret");
    assert!(store.set_client_secret("billing", &digest).await.unwrap());
    let found = store.find_client("billing").await.unwrap().unwrap();
    assert_eq!(found.secret_digest, digest);
    assert_eq!(found.scopes, billing.scopes);
    assert!(!store.set_client_secret("nobody", &digest).await.unwrap());

    let before = store.last_cursor().await.unwrap();
    let event = store
        .delete_client(
            "billing",
            revocation(RevocationKind::User, "ignored", NOW, NOW + 120),
        )
        .await
        .unwrap()
        .expect("deleted");
    assert_eq!(event.kind, RevocationKind::User);
    assert_eq!(event.value, "billing");
    assert_eq!(event.at, NOW);
    assert!(event.cursor > before);
    assert_eq!(
        store.revocations_after(before, 10, NOW).await.unwrap(),
        vec![event]
    );
    assert_eq!(store.find_client("billing").await.unwrap(), None);
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
    // Gone: a second delete finds nothing and writes nothing.
    let last = store.last_cursor().await.unwrap();
    assert_eq!(
        store
            .delete_client(
                "billing",
                revocation(RevocationKind::User, "billing", NOW, NOW + 120)
            )
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.last_cursor().await.unwrap(), last);
    // The id is free again.
    store.create_client(billing.clone()).await.unwrap();
    assert_eq!(store.find_client("billing").await.unwrap(), Some(billing));
    // A user's id is not a client's to delete.
    let alice = user("alice@example.com");
    store.create_user(alice.clone()).await.unwrap();
    assert_eq!(
        store
            .delete_client(
                &alice.id,
                revocation(RevocationKind::User, &alice.id, NOW, NOW + 120)
            )
            .await
            .unwrap(),
        None
    );
    assert!(store.find_user(&alice.id).await.unwrap().is_some());
}

pub async fn keys_round_trip_and_only_one_is_active(backend: &dyn Backend) {
    let store = backend.store();
    assert!(store.list_keys().await.unwrap().is_empty());
    let k1 = key("k1", "active", NOW);
    store.save_keys(std::slice::from_ref(&k1)).await.unwrap();
    assert_eq!(store.list_keys().await.unwrap(), vec![k1.clone()]);

    // A rotation: the new key and the demoted one in one call, in either order.
    let k2 = key("k2", "active", NOW);
    let mut k1_demoted = k1.clone();
    k1_demoted.status = "verify_only".to_owned();
    k1_demoted.retire_at = Some(NOW + 900);
    store
        .save_keys(&[k2.clone(), k1_demoted.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.list_keys().await.unwrap(),
        vec![k2.clone(), k1_demoted.clone()],
        "newest first, even within one second"
    );

    // A second active key is refused and nothing of that call is kept.
    let k3 = key("k3", "active", NOW + 1);
    let mut k1_retired = k1_demoted.clone();
    k1_retired.status = "retired".to_owned();
    assert!(matches!(
        store.save_keys(&[k1_retired, k3]).await,
        Err(StoreError::Conflict("key"))
    ));
    assert_eq!(store.list_keys().await.unwrap(), vec![k2, k1_demoted]);

    // Binary material survives byte for byte.
    let mut odd = key("k4", "retired", NOW + 2);
    odd.material = (0..=255u8).collect();
    store.save_keys(std::slice::from_ref(&odd)).await.unwrap();
    assert_eq!(store.list_keys().await.unwrap()[0], odd);
    store.save_keys(&[]).await.unwrap();
}

pub async fn a_plan_change_is_a_plan_notice_on_the_feed(backend: &dyn Backend) {
    let store = backend.store();
    let before = store.last_cursor().await.unwrap();
    let event = store
        .announce_plan("u1", "pro", NOW, NOW + 900)
        .await
        .unwrap();
    assert_eq!(event.kind, RevocationKind::Plan);
    assert_eq!(event.plan(), Some(("u1", "pro")));
    assert!(!event.is_revocation());
    assert!(event.cursor > before);
    let feed = store.revocations_after(before, 10, NOW).await.unwrap();
    assert_eq!(feed, vec![event]);
    // Gone from the feed once every older token has expired.
    assert!(
        store
            .revocations_after(before, 10, NOW + 900)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_rotation_keeps_one_next_key_and_appends_a_keys_event(backend: &dyn Backend) {
    let store = backend.store();
    let (k1, n1) = (key("k1", "active", NOW), key("n1", "next", NOW));
    store.save_keys(&[n1.clone(), k1.clone()]).await.unwrap();
    let before = store.last_cursor().await.unwrap();

    // The next key steps up, a new next key appears, the old one demotes;
    // listed in any order.
    let mut k1_demoted = k1.clone();
    k1_demoted.status = "verify_only".to_owned();
    k1_demoted.retire_at = Some(NOW + 900);
    let mut n1_active = n1.clone();
    n1_active.status = "active".to_owned();
    let n2 = key("n2", "next", NOW + 1);
    let event = store
        .rotate_keys(
            &[n2.clone(), n1_active.clone(), k1_demoted.clone()],
            "n1 n2",
            NOW + 1,
            NOW + 3600,
        )
        .await
        .unwrap();
    assert_eq!(event.kind, RevocationKind::Keys);
    assert_eq!(event.key_ids().collect::<Vec<_>>(), ["n1", "n2"]);
    assert!(event.cursor > before);
    let feed = store.revocations_after(before, 10, NOW + 1).await.unwrap();
    assert_eq!(feed, vec![event.clone()]);
    let mut statuses: Vec<(String, String)> = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.status))
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [("k1", "verify_only"), ("n1", "active"), ("n2", "next")]
            .map(|(k, s)| (k.to_owned(), s.to_owned()))
    );

    // A racing rotation on the same read adds a second next key: refused,
    // nothing written, no event.
    let n3 = key("n3", "next", NOW + 2);
    assert!(matches!(
        store
            .rotate_keys(&[n3, n1_active, k1_demoted], "n1 n3", NOW + 2, NOW + 3600)
            .await,
        Err(StoreError::Conflict("key"))
    ));
    assert_eq!(store.last_cursor().await.unwrap(), event.cursor);
    assert_eq!(store.list_keys().await.unwrap().len(), 3);
}

// ---------------------------------------------------------------- lifecycle

pub async fn data_survives_close_and_reopen(backend: &dyn Backend) {
    let store = backend.store();
    let (alice, session, a) = user_with_session(&*store, "alice@example.com").await;
    let (_, b) = rotate(&*store, &a, NOW + 1).await;
    store
        .create_client(client("billing", &["introspect"]))
        .await
        .unwrap();
    store.save_keys(&[key("k1", "active", NOW)]).await.unwrap();
    let event = store
        .revoke_token(revocation(RevocationKind::Token, "jti", NOW, NOW + 900))
        .await
        .unwrap();
    let session = store.find_session(&session.sid).await.unwrap();
    backend.close().await;
    drop(store);

    let store = backend.reopen().await;
    assert_eq!(store.find_user(&alice.id).await.unwrap(), Some(alice));
    assert_eq!(
        store
            .find_session(&session.as_ref().unwrap().sid)
            .await
            .unwrap(),
        session
    );
    assert!(
        store
            .find_refresh(&a)
            .await
            .unwrap()
            .unwrap()
            .used_at
            .is_some()
    );
    assert_eq!(
        store.find_client("billing").await.unwrap().unwrap().scopes,
        ["introspect"]
    );
    assert_eq!(
        store.list_keys().await.unwrap(),
        vec![key("k1", "active", NOW)]
    );
    assert_eq!(all_events(&*store, NOW).await, vec![event.clone()]);
    assert_eq!(store.last_cursor().await.unwrap(), event.cursor);
    // Reuse detection survives a restart too.
    assert!(matches!(
        rotate(&*store, &a, NOW + 2).await.0,
        Rotation::Reused { .. }
    ));
    assert_eq!(rotate(&*store, &b, NOW + 2).await.0, Rotation::Invalid);
}

pub async fn a_closed_store_is_unavailable_for_every_call(backend: &dyn Backend) {
    let store = backend.store();
    let (alice, session, a) = user_with_session(&*store, "alice@example.com").await;
    backend.close().await;

    let sid = session.sid.as_str();
    let rev = || revocation(RevocationKind::Session, sid, NOW, NOW + 900);
    let results: Vec<(&str, Result<(), StoreError>)> = vec![
        ("ping", store.ping().await),
        (
            "create_user",
            store.create_user(user("bob@example.com")).await,
        ),
        ("find_user", store.find_user(&alice.id).await.map(drop)),
        (
            "find_user_by_email",
            store.find_user_by_email(&alice.email).await.map(drop),
        ),
        ("list_users", store.list_users(None, 10).await.map(drop)),
        (
            "update_user",
            store
                .update_user(&alice.id, UserUpdate::default())
                .await
                .map(drop),
        ),
        (
            "set_password_hash",
            store.set_password_hash(&alice.id, "x").await,
        ),
        (
            "create_session",
            store
                .create_session(session_of(&alice, NOW), refresh(&digest(), NOW))
                .await,
        ),
        (
            "rotate_refresh",
            store
                .rotate_refresh(&a, refresh(&digest(), NOW), NOW, NOW + 900, 0)
                .await
                .map(drop),
        ),
        ("find_refresh", store.find_refresh(&a).await.map(drop)),
        ("find_session", store.find_session(sid).await.map(drop)),
        (
            "list_sessions",
            store.list_sessions(&alice.id, NOW).await.map(drop),
        ),
        (
            "revoke_session",
            store.revoke_session(sid, rev()).await.map(drop),
        ),
        ("revoke_token", store.revoke_token(rev()).await.map(drop)),
        (
            "revoke_user",
            store.revoke_user(rev(), NOW + 900).await.map(drop),
        ),
        (
            "revocations_after",
            store.revocations_after(0, 10, NOW).await.map(drop),
        ),
        ("last_cursor", store.last_cursor().await.map(drop)),
        ("purge_expired", store.purge_expired(NOW).await.map(drop)),
        ("create_client", store.create_client(client("c", &[])).await),
        ("find_client", store.find_client("c").await.map(drop)),
        ("list_clients", store.list_clients().await.map(drop)),
        ("list_keys", store.list_keys().await.map(drop)),
        (
            "save_keys",
            store.save_keys(&[key("k", "active", NOW)]).await,
        ),
    ];
    for (method, result) in results {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{method} after close: {result:?}"
        );
    }

    // Nothing was written while cut off: the revocation did not happen.
    let store = backend.reopen().await;
    assert!(all_events(&*store, NOW).await.is_empty());
    assert_eq!(
        store.find_session(sid).await.unwrap().unwrap().revoked_at,
        None
    );
}

/// Issue 10 (and ARCHITECTURE.md: a revoking write is durable before the
/// call returns): when the database refuses the commit of a revoking
/// write, after every statement of it succeeded, the call says
/// `Unavailable` (the server's 503), and nothing of it stays: no event, no
/// ended session, no dead token. Each revoking write is tried: ending a
/// session, revoking a token, revoking a user, and refresh reuse.
pub async fn a_revoking_write_whose_commit_fails_is_unavailable_and_leaves_nothing(
    backend: &dyn Backend,
) {
    let store = backend.store();
    let (alice, first, a) = user_with_session(&*store, "alice@example.com").await;
    let (outcome, b) = rotate(&*store, &a, NOW + 1).await;
    assert!(matches!(outcome, Rotation::Rotated { .. }));
    let second = session_of(&alice, NOW);
    let c = digest();
    store
        .create_session(second.clone(), refresh(&c, NOW))
        .await
        .unwrap();

    backend.fail_commits_of_revocations(true).await;
    let failed: Vec<(&str, Result<(), StoreError>)> = vec![
        (
            "revoke_session",
            store
                .revoke_session(
                    &second.sid,
                    revocation(RevocationKind::Session, &second.sid, NOW + 2, NOW + DAY),
                )
                .await
                .map(drop),
        ),
        (
            "revoke_token",
            store
                .revoke_token(revocation(RevocationKind::Token, "jti", NOW + 2, NOW + DAY))
                .await
                .map(drop),
        ),
        (
            "revoke_user",
            store
                .revoke_user(
                    revocation(RevocationKind::User, &alice.id, NOW + 2, NOW + DAY),
                    NOW + DAY,
                )
                .await
                .map(drop),
        ),
        (
            "rotate_refresh (reuse)",
            store
                .rotate_refresh(&a, refresh(&digest(), NOW + 2), NOW + 2, NOW + DAY, 0)
                .await
                .map(drop),
        ),
    ];
    for (method, result) in failed {
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{method} with a failing commit: {result:?}"
        );
    }
    // A write that revokes nothing still commits.
    let (outcome, b2) = rotate(&*store, &b, NOW + 3).await;
    assert!(matches!(outcome, Rotation::Rotated { .. }), "{outcome:?}");
    backend.fail_commits_of_revocations(false).await;

    assert!(all_events(&*store, NOW).await.is_empty());
    assert_eq!(store.last_cursor().await.unwrap(), 0);
    for session in [&first, &second] {
        let found = store.find_session(&session.sid).await.unwrap().unwrap();
        assert_eq!(found.revoked_at, None, "{}", session.sid);
    }
    assert_eq!(store.find_refresh(&c).await.unwrap().unwrap().used_at, None);
    // Both sessions still work, and the store writes revocations again.
    assert!(matches!(
        rotate(&*store, &b2, NOW + 4).await.0,
        Rotation::Rotated { .. }
    ));
    assert!(matches!(
        rotate(&*store, &c, NOW + 4).await.0,
        Rotation::Rotated { .. }
    ));
    let event = store
        .revoke_token(revocation(RevocationKind::Token, "jti", NOW + 5, NOW + DAY))
        .await
        .unwrap();
    assert_eq!(all_events(&*store, NOW).await, vec![event]);
}

pub async fn no_plaintext_refresh_token_or_client_secret_is_stored(backend: &dyn Backend) {
    let store = backend.store();
    let alice = user("alice@example.com");
    store.create_user(alice.clone()).await.unwrap();
    let token = opaque::generate(opaque::REFRESH_PREFIX).unwrap();
    let rotated_to = opaque::generate(opaque::REFRESH_PREFIX).unwrap();
    let secret = opaque::generate(opaque::CLIENT_SECRET_PREFIX).unwrap();
    let token_digest = opaque::digest(token.expose());
    let secret_digest = opaque::digest(secret.expose());
    store
        .create_session(session_of(&alice, NOW), refresh(&token_digest, NOW))
        .await
        .unwrap();
    let outcome = store
        .rotate_refresh(
            &token_digest,
            refresh(&opaque::digest(rotated_to.expose()), NOW + 1),
            NOW + 1,
            NOW + DAY,
            0,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, Rotation::Rotated { .. }));
    store
        .create_client(ClientRecord {
            client_id: "billing".to_owned(),
            secret_digest: secret_digest.clone(),
            scopes: vec![],
            created_at: NOW,
        })
        .await
        .unwrap();

    // The scan does find what is stored (so it can fail)...
    assert!(backend.stored_bytes_contain(token_digest.as_bytes()).await);
    assert!(backend.stored_bytes_contain(secret_digest.as_bytes()).await);
    // ...and never the secrets themselves, nor their random part.
    for secret in [&token, &rotated_to, &secret] {
        let text = secret.expose_str().unwrap();
        assert!(!backend.stored_bytes_contain(text.as_bytes()).await);
        assert!(!backend.stored_bytes_contain(&text.as_bytes()[4..]).await);
    }
}

// ---------------------------------------------------------------- audit

fn audit_event(at: u64, kind: &str, subject: Option<&str>) -> NewAuditEvent {
    NewAuditEvent {
        at,
        kind: kind.to_owned(),
        actor: "system".to_owned(),
        subject: subject.map(str::to_owned),
        address: Some("127.0.0.1".to_owned()),
        request_id: None,
        details: "{\"n\":1}".to_owned(),
    }
}

async fn assert_verifies(store: &dyn Store) -> Verification {
    let verification = verify_audit(store).await.unwrap();
    assert_eq!(verification.broken, None, "{verification:?}");
    verification
}

pub async fn audit_batches_chain_per_writer_and_verify(backend: &dyn Backend) {
    let store = backend.store();
    assert_eq!(assert_verifies(store.as_ref()).await.chains, 0);
    assert!(store.append_audit("a", &[]).await.unwrap().is_empty());
    let first = store
        .append_audit(
            "a",
            &[
                audit_event(NOW, "login.failed", None),
                audit_event(NOW, "login.succeeded", Some("u1")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(first[0].prev_hash, GENESIS);
    assert_eq!((first[0].seq, first[1].seq), (1, 2));
    assert_eq!(first[1].prev_hash, first[0].hash);
    let other = store
        .append_audit("b", &[audit_event(NOW, "keys.rotated", Some("k1"))])
        .await
        .unwrap();
    assert_eq!((other[0].seq, other[0].prev_hash.as_str()), (1, GENESIS));
    let next = store
        .append_audit("a", &[audit_event(NOW + 1, "revoked", Some("u1"))])
        .await
        .unwrap();
    assert_eq!(next[0].seq, 3);
    assert_eq!(next[0].prev_hash, first[1].hash);
    // Cursors are trail-wide, in commit order.
    let cursors: Vec<u64> = [&first[..], &other[..], &next[..]]
        .concat()
        .iter()
        .map(|row| row.cursor)
        .collect();
    assert_eq!(cursors, vec![1, 2, 3, 4]);
    let verification = assert_verifies(store.as_ref()).await;
    assert_eq!((verification.chains, verification.events), (2, 4));
    let heads = store.audit_chains().await.unwrap();
    assert_eq!(heads.len(), 2);
    assert_eq!(
        (heads[0].seq, heads[0].hash.as_str()),
        (3, next[0].hash.as_str())
    );
    // The stored rows are what was returned.
    let read = store
        .audit_after(0, AuditFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(read, [&first[..], &other[..], &next[..]].concat());
}

pub async fn audit_pages_filter_by_type_and_subject(backend: &dyn Backend) {
    let store = backend.store();
    let mut events = Vec::new();
    for i in 0..30u64 {
        let kind = if i % 3 == 0 {
            "login.failed"
        } else {
            "token.issued"
        };
        let subject = if i % 2 == 0 { "alice" } else { "bob" };
        events.push(audit_event(NOW + i, kind, Some(subject)));
    }
    store.append_audit("w", &events).await.unwrap();
    let page = store
        .audit_after(0, AuditFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(page.len(), 10);
    let rest = store
        .audit_after(page[9].cursor, AuditFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(rest.len(), 20);
    assert_eq!(rest[0].cursor, page[9].cursor + 1);
    let failed = store
        .audit_after(
            0,
            AuditFilter {
                kind: Some("login.failed"),
                subject: None,
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(failed.len(), 10);
    assert!(failed.iter().all(|row| row.event.kind == "login.failed"));
    let alice_failed = store
        .audit_after(
            0,
            AuditFilter {
                kind: Some("login.failed"),
                subject: Some("alice"),
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(alice_failed.len(), 5);
    assert!(
        store
            .audit_after(
                0,
                AuditFilter {
                    kind: Some("nothing"),
                    subject: None
                },
                100
            )
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn ten_thousand_mixed_audit_events_from_concurrent_writers_verify(backend: &dyn Backend) {
    let store = backend.store();
    let second = backend.reopen().await;
    let kinds = [
        "login.succeeded",
        "login.failed",
        "token.issued",
        "token.refreshed",
        "revoked",
        "admin.user_updated",
    ];
    // Two writers on their own chains and two store handles appending to one
    // shared chain at once: 10 000 events in batches of 100.
    let mut tasks = Vec::new();
    for writer in 0..4u64 {
        let store = if writer % 2 == 0 {
            store.clone()
        } else {
            second.clone()
        };
        let chain = if writer < 2 {
            format!("instance:{writer}")
        } else {
            "shared".to_owned()
        };
        tasks.push(tokio::spawn(async move {
            for batch in 0..25u64 {
                let events: Vec<NewAuditEvent> = (0..100u64)
                    .map(|i| {
                        let n = batch * 100 + i;
                        let kind = kinds[(n as usize) % kinds.len()];
                        audit_event(NOW + n, kind, Some(&format!("user-{}", n % 7)))
                    })
                    .collect();
                store.append_audit(&chain, &events).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let verification = assert_verifies(store.as_ref()).await;
    assert_eq!((verification.chains, verification.events), (3, 10_000));
    let heads = store.audit_chains().await.unwrap();
    let shared = heads.iter().find(|h| h.chain == "shared").unwrap();
    assert_eq!(shared.seq, 5_000);
    // Every cursor handed out once.
    let mut cursors = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = store
            .audit_after(after, AuditFilter::default(), 1000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = last.cursor;
        cursors.extend(page.iter().map(|row| row.cursor));
    }
    assert_eq!(cursors.len(), 10_000);
    assert_eq!(cursors.last(), Some(&10_000));
}

pub async fn pruning_the_audit_trail_keeps_every_chain_verifiable(backend: &dyn Backend) {
    let store = backend.store();
    let old: Vec<NewAuditEvent> = (0..5)
        .map(|i| audit_event(NOW + i, "login.failed", None))
        .collect();
    store.append_audit("a", &old).await.unwrap();
    store
        .append_audit("b", &[audit_event(NOW, "keys.rotated", None)])
        .await
        .unwrap();
    // A clock that went back: an old time after a newer one on chain a.
    store
        .append_audit(
            "a",
            &[
                audit_event(NOW + 100, "login.failed", None),
                audit_event(NOW + 1, "login.failed", None),
                audit_event(NOW + 200, "login.failed", None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(store.prune_audit(NOW + 50, "p", NOW + 60).await.unwrap(), 8);
    let left = store
        .audit_after(0, AuditFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(left.len(), 2);
    assert_eq!((left[0].chain.as_str(), left[0].seq), ("a", 8));
    assert_ne!(left[0].prev_hash, GENESIS);
    // The pruning recorded itself, in the same transaction, naming where
    // chain a now starts and chain b (all pruned) ends.
    let pruned = &left[1];
    assert_eq!((pruned.chain.as_str(), pruned.seq), ("p", 1));
    assert_eq!(pruned.event.kind, "audit.pruned");
    assert_eq!(pruned.event.at, NOW + 60);
    let anchors = tollgate_core::audit::pruned_anchors(&pruned.event.details);
    let heads = store.audit_chains().await.unwrap();
    let b_head = heads.iter().find(|h| h.chain == "b").unwrap();
    assert_eq!(
        anchors,
        [
            tollgate_core::audit::Anchor {
                chain: "a".to_owned(),
                seq: 7,
                hash: left[0].prev_hash.clone(),
            },
            tollgate_core::audit::Anchor {
                chain: "b".to_owned(),
                seq: 1,
                hash: b_head.hash.clone(),
            },
        ]
    );
    let verification = assert_verifies(store.as_ref()).await;
    assert_eq!((verification.chains, verification.events), (3, 2));
    // Appending continues the chain.
    let more = store
        .append_audit("b", &[audit_event(NOW + 300, "login.failed", None)])
        .await
        .unwrap();
    assert_eq!(more[0].seq, 2);
    assert_verifies(store.as_ref()).await;
    // Nothing old enough: nothing deleted, nothing recorded.
    assert_eq!(store.prune_audit(NOW, "p", NOW + 400).await.unwrap(), 0);
    assert_eq!(store.audit_chains().await.unwrap().len(), 3);
    assert_verifies(store.as_ref()).await;
}

pub async fn deleting_the_oldest_audit_events_by_hand_is_not_pruning(backend: &dyn Backend) {
    let store = backend.store();
    let events: Vec<NewAuditEvent> = (0..10)
        .map(|i| audit_event(NOW + i, "login.failed", None))
        .collect();
    store.append_audit("a", &events).await.unwrap();
    // A pruning of the first three, then later more events.
    assert_eq!(store.prune_audit(NOW + 3, "a", NOW + 20).await.unwrap(), 3);
    assert_verifies(store.as_ref()).await;
    // Someone deletes the oldest remaining events as if pruned: the chain
    // no longer starts where the latest pruning said.
    backend.raw_delete_audit("a", 5).await;
    let verification = verify_audit(store.as_ref()).await.unwrap();
    let broken = verification.broken.expect("a break");
    assert_eq!((broken.chain.as_str(), broken.seq), ("a", 6));
    assert_eq!(broken.reason, tollgate_core::audit::Break::Unanchored);
}
