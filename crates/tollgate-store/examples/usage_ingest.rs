//! Usage ingest on SQLite (issue 12, BENCHMARKS.md): `Store::record_usage`
//! in batches of 1000 events (the largest batch `POST /v1/usage/events`
//! takes), each batch one transaction, into a fresh database file.
//!
//! ```sh
//! cargo run --release -p tollgate-store --example usage_ingest -- 200000
//! ```
//!
//! Prints the events per second of the whole run (wall clock), and of a
//! second pass that sends the same events again (every one a duplicate).

use std::time::Instant;

use tollgate_store::{UsageEvent, UsageRecorded, UserRecord};

#[tokio::main]
async fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let batch = 1000;
    let users = 100;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let store = tollgate_store::open_store(&url).await.expect("the store");
    let now = 1_800_000_000;
    for n in 0..users {
        store
            .create_user(UserRecord {
                id: format!("user-{n}"),
                email: format!("user{n}@example.com"),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
                plan: "free".into(),
                roles: Vec::new(),
                disabled: false,
                created_at: now,
            })
            .await
            .expect("a user");
    }
    let tools = ["search", "summarize", "code_interpreter", "web_browse"];
    let events: Vec<UsageEvent> = (0..total)
        .map(|n| UsageEvent {
            service: "chat-backend".into(),
            instance: format!("i-{}", n / 50_000),
            seq: n as u64,
            user: format!("user-{}", n % users),
            tool: tools[n % tools.len()].into(),
            plan: "free".into(),
            // Spread over a day of hours.
            at: now - (n as u64 % 86_400),
        })
        .collect();
    for (label, expect_new) in [("new events", true), ("duplicates", false)] {
        let started = Instant::now();
        let mut accepted_total = 0;
        for chunk in events.chunks(batch) {
            match store.record_usage(chunk, now).await.expect("recorded") {
                UsageRecorded::Stored { accepted, .. } => accepted_total += accepted,
                UsageRecorded::UnknownUser { index } => panic!("unknown user at {index}"),
            }
        }
        let elapsed = started.elapsed();
        assert_eq!(accepted_total, if expect_new { total as u64 } else { 0 });
        println!(
            "{label}: {total} events in batches of {batch}: {:.2} s, {:.0} events/s",
            elapsed.as_secs_f64(),
            total as f64 / elapsed.as_secs_f64()
        );
    }
}
