//! The revocation feed: pages with cursors, and the SSE stream with
//! replay, live events and resumption by `Last-Event-ID`.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::common::Api;

/// Revokes `n` service tokens of `client` (one event each).
async fn revoke_some(api: &Api, client: &(String, String), n: usize) -> Vec<String> {
    let mut jtis = Vec::new();
    for _ in 0..n {
        let token = api.service_token(&client.0, &client.1).await;
        let (_, claims) = tollgate_core::jws::dangerous::insecure_decode(&token).unwrap();
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
        api.post_form(
            "/oauth/revoke",
            Some((&client.0, &client.1)),
            &[("token", &token)],
        )
        .await
        .expect(200, None);
    }
    jtis
}

#[tokio::test]
async fn pages_follow_cursors_and_callers_need_the_introspect_scope() {
    let api = Api::start().await;
    let follower = api.client("follower", &["introspect"]).await;
    let other = api.client("other", &["read"]).await;
    let jtis = revoke_some(&api, &other, 5).await;

    api.get("/v1/revocations", None)
        .await
        .expect(401, Some("invalid_client"));
    let page = |after: u64, limit: u64| {
        let api = &api;
        let follower = &follower;
        async move {
            let response = api
                .http
                .get(api.url(&format!("/v1/revocations?after={after}&limit={limit}")))
                .basic_auth(&follower.0, Some(&follower.1))
                .send()
                .await
                .unwrap();
            crate::common::Answer::from(response).await
        }
    };
    let first = page(0, 2).await;
    first.expect(200, None);
    assert_eq!(first.header("cache-control"), "no-store");
    assert_eq!(first.body["has_more"], true);
    let events = first.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["kind"], "token");
    assert_eq!(events[0]["value"], jtis[0].as_str());
    let next = first.body["next_cursor"].as_u64().unwrap();
    assert_eq!(next, events[1]["cursor"].as_u64().unwrap());
    let rest = page(next, 10).await;
    assert_eq!(rest.body["has_more"], false);
    let values: Vec<_> = rest.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].clone())
        .collect();
    assert_eq!(
        values,
        jtis[2..]
            .iter()
            .map(|j| Value::from(j.as_str()))
            .collect::<Vec<_>>()
    );
    let end = rest.body["next_cursor"].as_u64().unwrap();
    let empty = page(end, 10).await;
    assert_eq!(empty.body["events"], serde_json::json!([]));
    assert_eq!(empty.body["next_cursor"], end);

    // A service token with the scope works too; one without does not.
    let bearer = api.service_token(&follower.0, &follower.1).await;
    api.get("/v1/revocations", Some(&bearer))
        .await
        .expect(200, None);
    let weak = api.service_token(&other.0, &other.1).await;
    api.get("/v1/revocations", Some(&weak))
        .await
        .expect(403, Some("insufficient_scope"));
    let response = api
        .http
        .get(api.url("/v1/revocations"))
        .basic_auth(&other.0, Some(&other.1))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    api.get("/v1/revocations?after=-1", Some(&bearer))
        .await
        .expect(400, Some("invalid_request"));
}

/// One parsed SSE event.
#[derive(Debug)]
struct Sse {
    id: String,
    event: String,
    data: Value,
}

/// Reads SSE events from a response until `n` events arrived.
async fn read_events(response: reqwest::Response, n: usize) -> Vec<Sse> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < n {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the stream went quiet")
            .expect("the stream ended")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if !event.is_empty() {
                events.push(Sse {
                    id,
                    event,
                    data: serde_json::from_str(&data).unwrap(),
                });
            }
        }
    }
    events
}

#[tokio::test]
async fn the_stream_replays_then_follows_live_and_resumes_from_last_event_id() {
    let api = Api::start().await;
    let follower = api.client("sse", &["introspect"]).await;
    let other = api.client("sse-other", &["read"]).await;
    let before = revoke_some(&api, &other, 3).await;

    let open = |last_event_id: Option<String>| {
        let mut request = api
            .http
            .get(api.url("/v1/revocations/stream"))
            .basic_auth(&follower.0, Some(&follower.1));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        request.send()
    };
    let response = open(None).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let reader = tokio::spawn(read_events(response, 5));
    // Replay first…
    let after = revoke_some(&api, &other, 2).await;
    let events = reader.await.unwrap();
    let values: Vec<_> = events
        .iter()
        .map(|e| e.data["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(values, [before.clone(), after.clone()].concat());
    for event in &events {
        assert_eq!(event.event, "revocation");
        assert_eq!(event.id, event.data["cursor"].to_string());
    }
    let cursors: Vec<u64> = events.iter().map(|e| e.id.parse().unwrap()).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");

    // Resume after the third event: the fourth and fifth come again, then live.
    let response = open(Some(events[2].id.clone())).await.unwrap();
    let reader = tokio::spawn(read_events(response, 3));
    let live = revoke_some(&api, &other, 1).await;
    let resumed = reader.await.unwrap();
    let values: Vec<_> = resumed
        .iter()
        .map(|e| e.data["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(values, [after, live].concat());

    // `?after=` works as well; a broken Last-Event-ID is refused.
    let response = api
        .http
        .get(api.url(&format!("/v1/revocations/stream?after={}", events[3].id)))
        .basic_auth(&follower.0, Some(&follower.1))
        .send()
        .await
        .unwrap();
    let tail = read_events(response, 2).await;
    assert_eq!(tail[0].id, events[4].id);
    let bad = open(Some("nope".into())).await.unwrap();
    assert_eq!(bad.status(), 400);
    let unauthorized = api
        .http
        .get(api.url("/v1/revocations/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
}

#[tokio::test]
async fn idle_streams_get_keep_alives_and_end_at_shutdown() {
    let api = Api::with(
        tollgate_server::testkit::TestServer::builder().sse_keep_alive(Duration::from_millis(200)),
    )
    .await;
    let follower = api.client("idle", &["introspect"]).await;
    let response = api
        .http
        .get(api.url("/v1/revocations/stream"))
        .basic_auth(&follower.0, Some(&follower.1))
        .send()
        .await
        .unwrap();
    let mut stream = response.bytes_stream();
    let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        std::str::from_utf8(&chunk).unwrap().starts_with(':'),
        "{chunk:?}"
    );
    // Shutdown is graceful and does not wait for the subscriber to leave.
    tokio::time::timeout(Duration::from_secs(10), api.server.stop())
        .await
        .expect("shutdown waited on an idle SSE stream");
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream did not end at shutdown");
}
