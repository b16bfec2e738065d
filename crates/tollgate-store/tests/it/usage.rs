//! The usage part of the store contract (issue 12), written once against
//! [`Store`] and run for every backend by [`usage_conformance_tests!`],
//! like the main conformance suite (`conformance.rs`).

use std::sync::Arc;

use tollgate_store::{
    Period, Store, UsageEvent, UsageGroup, UsageQuery, UsageRecorded, UsageRow, UserRecord,
};

use crate::conformance::{Backend, NOW};

/// Generates one `#[tokio::test]` per usage conformance test in a backend
/// module that has the conformance suite's `run`.
macro_rules! usage_conformance_tests {
    () => {
        usage_conformance_tests!(
            usage_duplicates_count_once_and_reports_group_by_tool_day_and_plan,
            a_usage_batch_naming_an_unknown_user_stores_nothing,
            usage_survives_close_and_reopen,
            concurrent_deliveries_of_one_batch_count_once,
            a_usage_report_counts_whole_hours_from_inclusive_to_exclusive,
        );
    };
    ($($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                run(|backend| Box::pin(crate::usage::$name(backend))).await;
            }
        )+
    };
}

/// The hour `NOW` falls in (22:00 UTC on 2023-11-14).
const HOUR0: u64 = NOW - NOW % 3600;

async fn user(store: &dyn Store, email: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    store
        .create_user(UserRecord {
            id: id.clone(),
            email: email.to_owned(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaA".to_owned(),
            plan: "free".to_owned(),
            roles: vec![],
            disabled: false,
            created_at: NOW,
        })
        .await
        .unwrap();
    id
}

fn event(instance: &str, seq: u64, user: &str, tool: &str, plan: &str, at: u64) -> UsageEvent {
    UsageEvent {
        service: "chat-backend".to_owned(),
        instance: instance.to_owned(),
        seq,
        user: user.to_owned(),
        tool: tool.to_owned(),
        plan: plan.to_owned(),
        at,
    }
}

fn stored(accepted: u64, duplicates: u64) -> UsageRecorded {
    UsageRecorded::Stored {
        accepted,
        duplicates,
    }
}

fn whole_day() -> Period {
    Period::covering(HOUR0 - 24 * 3600, HOUR0 + 24 * 3600).unwrap()
}

async fn report(
    store: &dyn Store,
    user: Option<&str>,
    period: Period,
    group_by: UsageGroup,
) -> Vec<(Option<String>, String, u64)> {
    store
        .usage_report(UsageQuery {
            user,
            period,
            group_by,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|UsageRow { user, key, calls }| (user, key, calls))
        .collect()
}

fn rows(rows: &[(&str, u64)]) -> Vec<(Option<String>, String, u64)> {
    rows.iter()
        .map(|(key, calls)| (None, (*key).to_owned(), *calls))
        .collect()
}

pub async fn usage_duplicates_count_once_and_reports_group_by_tool_day_and_plan(
    backend: &dyn Backend,
) {
    let store = backend.store();
    let store = store.as_ref();
    let alice = user(store, "alice@example.com").await;
    let bob = user(store, "bob@example.com").await;
    let batch = vec![
        event("i-1", 1, &alice, "search", "free", NOW),
        event("i-1", 2, &alice, "search", "free", NOW + 1),
        event("i-1", 3, &alice, "summarize", "free", NOW + 2),
        // Two hours later: the next UTC day, after a plan change.
        event("i-1", 4, &alice, "code_interpreter", "pro", NOW + 7200),
        event("i-1", 5, &bob, "search", "free", NOW),
        // The same key twice in one batch counts once.
        event("i-1", 5, &bob, "search", "free", NOW),
        // Another instance's seq 1 is another key.
        event("i-2", 1, &bob, "search", "free", NOW),
    ];
    assert_eq!(store.record_usage(&batch, NOW).await.unwrap(), stored(6, 1));
    // A second delivery of the whole batch counts nothing again, and a
    // batch mixing old and new keys counts only the new ones.
    assert_eq!(store.record_usage(&batch, NOW).await.unwrap(), stored(0, 7));
    let mixed = vec![
        batch[0].clone(),
        event("i-1", 6, &alice, "search", "free", NOW + 3),
    ];
    assert_eq!(store.record_usage(&mixed, NOW).await.unwrap(), stored(1, 1));
    assert_eq!(store.record_usage(&[], NOW).await.unwrap(), stored(0, 0));

    let day = whole_day();
    assert_eq!(
        report(store, Some(&alice), day, UsageGroup::Tool).await,
        rows(&[("code_interpreter", 1), ("search", 3), ("summarize", 1)])
    );
    assert_eq!(
        report(store, Some(&alice), day, UsageGroup::Day).await,
        rows(&[("2023-11-14", 4), ("2023-11-15", 1)])
    );
    assert_eq!(
        report(store, Some(&alice), day, UsageGroup::Plan).await,
        rows(&[("free", 4), ("pro", 1)])
    );
    assert_eq!(
        report(store, Some(&bob), day, UsageGroup::Tool).await,
        rows(&[("search", 2)])
    );
    // Over every user: one row per user and group, by user then key.
    let mut expected = vec![
        (Some(alice.clone()), "free".to_owned(), 4),
        (Some(alice.clone()), "pro".to_owned(), 1),
        (Some(bob.clone()), "free".to_owned(), 2),
    ];
    expected.sort();
    assert_eq!(report(store, None, day, UsageGroup::Plan).await, expected);
    // A user without usage, and a user that does not exist, have none.
    let carol = user(store, "carol@example.com").await;
    assert!(
        report(store, Some(&carol), day, UsageGroup::Tool)
            .await
            .is_empty()
    );
    assert!(
        report(store, Some("nobody"), day, UsageGroup::Tool)
            .await
            .is_empty()
    );
}

pub async fn a_usage_batch_naming_an_unknown_user_stores_nothing(backend: &dyn Backend) {
    let store = backend.store();
    let store = store.as_ref();
    let alice = user(store, "alice@example.com").await;
    let batch = vec![
        event("i-1", 1, &alice, "search", "free", NOW),
        event("i-1", 2, "no-such-user", "search", "free", NOW),
        event("i-1", 3, &alice, "search", "free", NOW),
        event("i-1", 4, "another-stranger", "search", "free", NOW),
    ];
    assert_eq!(
        store.record_usage(&batch, NOW).await.unwrap(),
        UsageRecorded::UnknownUser { index: 1 }
    );
    assert!(
        report(store, None, whole_day(), UsageGroup::Tool)
            .await
            .is_empty()
    );
    // Nothing of it was kept: the good events are new keys afterwards.
    let good = vec![batch[0].clone(), batch[2].clone()];
    assert_eq!(store.record_usage(&good, NOW).await.unwrap(), stored(2, 0));
    assert_eq!(
        report(store, Some(&alice), whole_day(), UsageGroup::Tool).await,
        rows(&[("search", 2)])
    );
}

pub async fn usage_survives_close_and_reopen(backend: &dyn Backend) {
    let store = backend.store();
    let alice = user(store.as_ref(), "alice@example.com").await;
    let batch: Vec<_> = (0..10)
        .map(|seq| event("i-1", seq, &alice, "search", "free", NOW))
        .collect();
    assert_eq!(
        store.record_usage(&batch, NOW).await.unwrap(),
        stored(10, 0)
    );
    backend.close().await;
    let store = backend.reopen().await;
    assert_eq!(
        report(store.as_ref(), Some(&alice), whole_day(), UsageGroup::Tool).await,
        rows(&[("search", 10)])
    );
    // The keys survived too.
    assert_eq!(
        store.record_usage(&batch, NOW).await.unwrap(),
        stored(0, 10)
    );
}

pub async fn concurrent_deliveries_of_one_batch_count_once(backend: &dyn Backend) {
    let store = backend.store();
    let alice = user(store.as_ref(), "alice@example.com").await;
    let bob = user(store.as_ref(), "bob@example.com").await;
    // Eight deliveries of overlapping batches at once (a retry racing its
    // first delivery, two replicas' spools): 300 distinct keys in all.
    let mut tasks = Vec::new();
    for delivery in 0..8u64 {
        let store: Arc<dyn Store> = store.clone();
        let (alice, bob) = (alice.clone(), bob.clone());
        tasks.push(tokio::spawn(async move {
            let start = (delivery % 4) * 50;
            let batch: Vec<_> = (start..start + 150)
                .map(|seq| {
                    let (user, tool) = if seq % 3 == 0 {
                        (&bob, "summarize")
                    } else {
                        (&alice, "search")
                    };
                    event("i-1", seq, user, tool, "free", NOW + seq % 60)
                })
                .collect();
            match store.record_usage(&batch, NOW).await.unwrap() {
                UsageRecorded::Stored {
                    accepted,
                    duplicates,
                } => {
                    assert_eq!(accepted + duplicates, 150);
                    accepted
                }
                other => panic!("{other:?}"),
            }
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.unwrap();
    }
    assert_eq!(accepted, 300);
    let all = report(store.as_ref(), None, whole_day(), UsageGroup::Tool).await;
    let total: u64 = all.iter().map(|(_, _, calls)| calls).sum();
    assert_eq!(total, 300);
    assert_eq!(
        report(store.as_ref(), Some(&bob), whole_day(), UsageGroup::Tool).await,
        rows(&[("summarize", 100)])
    );
}

pub async fn a_usage_report_counts_whole_hours_from_inclusive_to_exclusive(backend: &dyn Backend) {
    let store = backend.store();
    let store = store.as_ref();
    let alice = user(store, "alice@example.com").await;
    let batch = vec![
        event("i-1", 1, &alice, "search", "free", HOUR0 - 1),
        event("i-1", 2, &alice, "search", "free", HOUR0),
        event("i-1", 3, &alice, "search", "free", HOUR0 + 3599),
        event("i-1", 4, &alice, "search", "free", HOUR0 + 3600),
    ];
    assert_eq!(store.record_usage(&batch, NOW).await.unwrap(), stored(4, 0));
    let alice = alice.as_str();
    let calls = |from: u64, to: u64| {
        let period = Period::covering(from, to).unwrap();
        async move {
            report(store, Some(alice), period, UsageGroup::Tool)
                .await
                .iter()
                .map(|(_, _, calls)| calls)
                .sum::<u64>()
        }
    };
    // Exactly the hour HOUR0.
    assert_eq!(calls(HOUR0, HOUR0 + 3600).await, 2);
    // Bounds inside an hour take the whole hour.
    assert_eq!(calls(HOUR0 + 10, HOUR0 + 20).await, 2);
    assert_eq!(calls(HOUR0 - 1, HOUR0 + 3601).await, 4);
    assert_eq!(calls(HOUR0 + 3600, HOUR0 + 7200).await, 1);
    assert_eq!(calls(HOUR0 + 7200, HOUR0 + 9000).await, 0);
}
