//! Usage (issue 12): services report tool calls, users and admins read
//! the counts; every bad batch is refused whole.

use serde_json::{Value, json};

use crate::common::{Answer, Api};

const SERVICE: &str = "chat-backend";

struct Usage {
    api: Api,
    service: String,
    alice: (String, String),
    bob: (String, String),
}

impl Usage {
    /// A server, a service with scope `usage`, and two users (id, token).
    async fn start() -> Usage {
        let api = Api::start().await;
        let (id, secret) = api.client(SERVICE, &["usage"]).await;
        let service = api.service_token(&id, &secret).await;
        let alice = user(&api, "alice@example.com").await;
        let bob = user(&api, "bob@example.com").await;
        Usage {
            api,
            service,
            alice,
            bob,
        }
    }

    async fn post(&self, events: Value) -> Answer {
        self.api
            .post_json(
                "/v1/usage/events",
                Some(&self.service),
                &json!({ "events": events }),
            )
            .await
    }

    fn event(&self, seq: u64, user: &str, tool: &str) -> Value {
        json!({
            "service": SERVICE, "instance": "i-1", "seq": seq, "user": user,
            "tool": tool, "plan": "free", "at": self.api.server.now(),
        })
    }

    /// The total of every user's usage, as the admin sees it.
    async fn total(&self) -> u64 {
        let admin = self.api.admin_token().await;
        let answer = self.api.get("/v1/usage", Some(&admin)).await;
        answer.expect(200, None);
        answer.body["total"].as_u64().unwrap()
    }
}

async fn user(api: &Api, email: &str) -> (String, String) {
    let token = api.user(email).await.str("access_token");
    let id = api.get("/v1/auth/me", Some(&token)).await.str("sub");
    (id, token)
}

fn rows(answer: &Answer) -> Vec<(String, u64)> {
    answer.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            assert!(row.get("user").is_none(), "{row}");
            (
                row["key"].as_str().unwrap().to_owned(),
                row["calls"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn duplicates_count_once_and_each_user_sees_only_their_own_usage() {
    let usage = Usage::start().await;
    let (alice, alice_token) = &usage.alice;
    let (bob, bob_token) = &usage.bob;
    let batch = json!([
        usage.event(1, alice, "search"),
        usage.event(2, alice, "search"),
        usage.event(3, alice, "summarize"),
        usage.event(4, bob, "search"),
        usage.event(4, bob, "search"),
    ]);
    let first = usage.post(batch.clone()).await;
    first.expect(200, None);
    assert_eq!(first.body, json!({"accepted": 4, "duplicates": 1}));
    // A second delivery (the answer to the first was lost) counts nothing.
    let again = usage.post(batch).await;
    assert_eq!(again.body, json!({"accepted": 0, "duplicates": 5}));

    let own = usage.api.get("/v1/auth/usage", Some(alice_token)).await;
    own.expect(200, None);
    assert_eq!(own.body["user"], alice.as_str());
    assert_eq!(own.body["group_by"], "tool");
    assert_eq!(own.body["total"], 3);
    assert_eq!(
        rows(&own),
        [("search".to_owned(), 2), ("summarize".to_owned(), 1)]
    );
    // The same through /v1/usage, naming themselves or not.
    for path in [format!("/v1/usage?user={alice}"), "/v1/usage".to_owned()] {
        let answer = usage.api.get(&path, Some(alice_token)).await;
        answer.expect(200, None);
        assert_eq!(answer.body["user"], alice.as_str());
        assert_eq!(answer.body["total"], 3, "{path}");
    }
    // Another user's usage is refused.
    usage
        .api
        .get(&format!("/v1/usage?user={alice}"), Some(bob_token))
        .await
        .expect(403, Some("insufficient_scope"));
    let bobs = usage.api.get("/v1/auth/usage", Some(bob_token)).await;
    assert_eq!(rows(&bobs), [("search".to_owned(), 1)]);
    // A service token (even the reporting one) reads nothing without
    // scope `admin`.
    usage
        .api
        .get(&format!("/v1/usage?user={alice}"), Some(&usage.service))
        .await
        .expect(403, Some("insufficient_scope"));
    usage
        .api
        .get("/v1/auth/usage", Some(&usage.service))
        .await
        .expect(401, Some("invalid_token"));

    // The admin sees everyone, one row per user and plan.
    let admin = usage.api.admin_token().await;
    let all = usage.api.get("/v1/usage?group_by=plan", Some(&admin)).await;
    all.expect(200, None);
    assert!(all.body.get("user").is_none());
    assert_eq!(all.body["total"], 4);
    let mut expected = vec![
        json!({"user": alice, "key": "free", "calls": 3}),
        json!({"user": bob, "key": "free", "calls": 1}),
    ];
    expected.sort_by_key(|row| row["user"].as_str().unwrap().to_owned());
    assert_eq!(all.body["rows"], json!(expected));
    let by_day = usage
        .api
        .get(&format!("/v1/usage?user={bob}&group_by=day"), Some(&admin))
        .await;
    let today = tollgate_core::usage::day_key(usage.api.server.now() / 86_400);
    assert_eq!(rows(&by_day), [(today, 1)]);
    // The period is whole hours.
    let now = usage.api.server.now();
    let hour = now - now % 3600;
    let window = usage
        .api
        .get(
            &format!("/v1/usage?from={}&to={}", hour + 1, hour + 2),
            Some(alice_token),
        )
        .await;
    assert_eq!(window.body["from"], hour);
    assert_eq!(window.body["to"], hour + 3600);
    assert_eq!(window.body["total"], 3);
    let later = usage
        .api
        .get(
            &format!("/v1/usage?from={}&to={}", hour + 3600, hour + 7200),
            Some(alice_token),
        )
        .await;
    assert_eq!(later.body["total"], 0);
}

#[tokio::test]
async fn usage_survives_a_restart_of_the_token_service() {
    let api = Api::start().await;
    let (id, secret) = api.client(SERVICE, &["usage"]).await;
    let service = api.service_token(&id, &secret).await;
    let (alice, _) = user(&api, "alice@example.com").await;
    let now = api.server.now();
    let batch = json!({ "events": [
        {"service": SERVICE, "instance": "i-1", "seq": 1, "user": alice,
         "tool": "search", "plan": "free", "at": now},
        {"service": SERVICE, "instance": "i-1", "seq": 2, "user": alice,
         "tool": "search", "plan": "free", "at": now},
    ]});
    api.post_json("/v1/usage/events", Some(&service), &batch)
        .await
        .expect(200, None);

    // Same SQLite file, new process state.
    let api = Api {
        server: api.server.restart().await,
        http: api.http,
    };
    let token = api
        .login("alice@example.com", crate::common::PASSWORD)
        .await
        .str("access_token");
    let own = api.get("/v1/auth/usage", Some(&token)).await;
    own.expect(200, None);
    assert_eq!(rows(&own), [("search".to_owned(), 2)]);
    // The keys survived too: the same batch again is all duplicates.
    let service = api.service_token(&id, &secret).await;
    let again = api
        .post_json("/v1/usage/events", Some(&service), &batch)
        .await;
    assert_eq!(again.body, json!({"accepted": 0, "duplicates": 2}));
}

#[tokio::test]
async fn every_bad_batch_is_refused_with_a_clear_answer_and_stores_nothing() {
    let usage = Usage::start().await;
    let api = &usage.api;
    let (alice, alice_token) = &usage.alice;
    let now = api.server.now();
    let good = usage.event(1, alice, "search");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut bad = usage.event(2, alice, "search");
        change(&mut bad);
        // A good event first: it must not be stored either.
        json!([good.clone(), bad])
    };
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (json!([]), 400, "invalid_usage", "no event"),
        (
            with(&|e| e["user"] = json!("no-such-user")),
            400,
            "unknown_user",
            "usage event 1",
        ),
        (
            with(&|e| e["at"] = json!(now + 3600)),
            400,
            "invalid_usage",
            "usage event 1: `at` is more than 300 s in the future",
        ),
        (
            with(&|e| e["at"] = json!(now - 30 * 86_400)),
            400,
            "invalid_usage",
            "usage event 1: `at` is more than 7 days in the past",
        ),
        (
            with(&|e| e["service"] = json!("someone-else")),
            400,
            "invalid_usage",
            "caller's client id",
        ),
        (
            with(&|e| e["tool"] = json!("teleport")),
            400,
            "invalid_usage",
            "no plan has this tool",
        ),
        (
            with(&|e| e["plan"] = json!("platinum")),
            400,
            "invalid_usage",
            "no plan with this name",
        ),
        (
            with(&|e| e["user"] = json!("")),
            400,
            "invalid_usage",
            "`user` must be",
        ),
        (
            with(&|e| e["seq"] = json!(-1)),
            400,
            "invalid_request",
            "wrong type",
        ),
        (
            with(&|e| e["seq"] = json!(u64::MAX)),
            400,
            "invalid_usage",
            "`seq` is larger",
        ),
        (
            with(&|e| e["extra"] = json!(1)),
            400,
            "invalid_request",
            "unknown member `extra`",
        ),
        (
            with(&|e| {
                e.as_object_mut().unwrap().remove("tool");
            }),
            400,
            "invalid_request",
            "lacks a required field",
        ),
        (
            Value::Array(
                (0..1001)
                    .map(|seq| usage.event(seq, alice, "search"))
                    .collect(),
            ),
            413,
            "invalid_usage",
            "at most 1000 events",
        ),
    ];
    for (events, status, code, sentence) in cases {
        let answer = usage.post(events).await;
        answer.expect(status, Some(code));
        let description = answer.body["error_description"].as_str().unwrap();
        assert!(description.contains(sentence), "{description}");
        assert!(!description.contains("no-such-user"), "{description}");
    }
    // Not JSON, not an object with `events`, the wrong content type, a
    // body over 1 MiB.
    let service = usage.service.as_str();
    let raw = |body: Vec<u8>, content_type: &'static str| async move {
        let response = api
            .http
            .post(api.url("/v1/usage/events"))
            .bearer_auth(service)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        Answer::from(response).await
    };
    raw(b"{\"events\": [".to_vec(), "application/json")
        .await
        .expect(400, Some("invalid_request"));
    raw(b"[]".to_vec(), "application/json")
        .await
        .expect(400, Some("invalid_request"));
    raw(b"{}".to_vec(), "text/plain")
        .await
        .expect(415, Some("unsupported_media_type"));
    let mut huge = br#"{"events":[], "pad": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 1024 * 1024));
    huge.extend(br#""}"#);
    raw(huge, "application/json")
        .await
        .expect(413, Some("payload_too_large"));

    // Callers: no token, a user's token, a service without scope `usage`.
    let batch = json!({ "events": [good.clone()] });
    api.post_json("/v1/usage/events", None, &batch)
        .await
        .expect(401, Some("missing_token"));
    api.post_json("/v1/usage/events", Some(alice_token), &batch)
        .await
        .expect(401, Some("invalid_token"));
    let (id, secret) = api.client("reader", &["introspect"]).await;
    let reader = api.service_token(&id, &secret).await;
    api.post_json("/v1/usage/events", Some(&reader), &batch)
        .await
        .expect(403, Some("insufficient_scope"));

    // Nothing of any of them was stored ...
    assert_eq!(usage.total().await, 0);
    // ... and a full batch of the longest names is accepted.
    let long = |c: char| c.to_string().repeat(128);
    let full: Vec<Value> = (0..1000)
        .map(|seq| {
            json!({
                "service": SERVICE, "instance": long('i'), "seq": seq, "user": alice,
                "tool": "search", "plan": "free", "at": now,
            })
        })
        .collect();
    let answer = usage.post(Value::Array(full)).await;
    answer.expect(200, None);
    assert_eq!(answer.body["accepted"], 1000);
    assert_eq!(usage.total().await, 1000);
}

#[tokio::test]
async fn bad_report_queries_get_a_clear_400() {
    let usage = Usage::start().await;
    let token = &usage.alice.1;
    for (query, sentence) in [
        ("from=20&to=10", "`from` must be before `to`"),
        ("from=10&to=10", "`from` must be before `to`"),
        ("group_by=user", "`group_by` is"),
        ("from=yesterday", "`from` is not Unix seconds"),
        ("to=2024-13-01", "`to` is not Unix seconds"),
        ("limit=5", "the `limit` parameter is not known"),
        ("from=1&from=2", "names a parameter twice"),
    ] {
        for path in ["/v1/usage", "/v1/auth/usage"] {
            let answer = usage.api.get(&format!("{path}?{query}"), Some(token)).await;
            answer.expect(400, Some("invalid_request"));
            let description = answer.body["error_description"].as_str().unwrap();
            assert!(
                description.contains(sentence),
                "{path}?{query}: {description}"
            );
        }
    }
    // `user` is not a parameter of the caller's own report.
    usage
        .api
        .get("/v1/auth/usage?user=x", Some(token))
        .await
        .expect(400, Some("invalid_request"));
    // Dates and RFC 3339 times are bounds too.
    let answer = usage
        .api
        .get(
            "/v1/auth/usage?from=2024-12-01&to=2024-12-04T10:30:00Z&group_by=day",
            Some(token),
        )
        .await;
    answer.expect(200, None);
    assert_eq!(answer.body["from"], 1_733_011_200);
    assert_eq!(answer.body["to"], 1_733_310_000);
    assert_eq!(answer.body["group_by"], "day");
    // Unauthenticated: 401 before the query is read.
    usage
        .api
        .get("/v1/usage?group_by=nonsense", None)
        .await
        .expect(401, Some("missing_token"));
}

#[tokio::test]
async fn the_openapi_document_lists_every_usage_answer() {
    let api = Api::start().await;
    let doc = api.get("/openapi.json", None).await;
    let responses = |path: &str, method: &str| {
        doc.body["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} undocumented"))
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    for status in ["200", "400", "401", "403", "408", "413", "415", "503"] {
        assert!(
            responses("/v1/usage/events", "post").contains(&status.to_owned()),
            "POST /v1/usage/events lacks {status}"
        );
    }
    for status in ["200", "400", "401", "403", "503"] {
        assert!(responses("/v1/usage", "get").contains(&status.to_owned()));
    }
    for status in ["200", "400", "401", "503"] {
        assert!(responses("/v1/auth/usage", "get").contains(&status.to_owned()));
    }
}
