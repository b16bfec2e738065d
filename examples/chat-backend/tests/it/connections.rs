//! Issue 13: `GET`/`DELETE /v1/connections` (the SDK's
//! `connections_router`): operators see and end live WebSocket
//! connections; service tokens with `connections:admin` only.

use serde_json::Value;

use crate::ws::{Socket, chat_works, closed_with, connect};
use crate::{Backend, read};

async fn delete(backend: &Backend, query: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = backend
        .http
        .delete(format!("{}/v1/connections{query}", backend.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_connections_api_needs_a_service_token_with_its_scope() {
    let backend = Backend::start().await;
    let _socket = connect(&backend, &backend.issuer.user("ann").mint()).await;
    let admin_user = backend.issuer.user("root").role("admin").mint();
    let other_scope = backend.issuer.service("ops").scope("admin").mint();
    let (status, _, challenge) = read(backend.get("/v1/connections", None).await).await;
    assert_eq!(status, 401);
    assert!(challenge.is_some());
    let (status, _, _) = read(delete(&backend, "?user=ann", None).await).await;
    assert_eq!(status, 401);
    let expired = backend
        .issuer
        .service("ops")
        .scope("connections:admin")
        .expired()
        .mint();
    for token in [&admin_user, &other_scope, &expired] {
        let (get, body, _) = read(backend.get("/v1/connections", Some(token)).await).await;
        let (del, _, _) = read(delete(&backend, "?user=ann", Some(token)).await).await;
        assert!(matches!(get, 401 | 403), "{get} {body}");
        assert_eq!(get, del);
    }
    assert_eq!(backend.ws.live_connections(), 1, "nothing was closed");
}

#[tokio::test]
async fn operators_list_and_close_exactly_the_named_users_connections() {
    let backend = Backend::start().await;
    let ops = backend
        .issuer
        .service("ops")
        .scope("connections:admin")
        .mint();
    let ann = backend
        .issuer
        .user("ann")
        .plan("pro")
        .session("s-ann")
        .mint();
    let bob = backend.issuer.user("bob").session("s-bob").mint();
    let mut ann1 = connect(&backend, &ann).await;
    let mut ann2 = connect(&backend, &ann).await;
    let mut bob1 = connect(&backend, &bob).await;

    let (status, body, _) = read(backend.get("/v1/connections?user=ann", Some(&ops)).await).await;
    assert_eq!(status, 200, "{body}");
    let listed = body["connections"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    for entry in listed {
        assert_eq!(entry["user"], "ann");
        assert_eq!(entry["sid"], "s-ann");
        assert_eq!(entry["plan"], "pro");
        assert!(entry["opened_at"].as_u64().unwrap() > 1_700_000_000);
        assert!(entry["expires_at"].as_u64() >= entry["opened_at"].as_u64());
    }
    let (_, all, _) = read(backend.get("/v1/connections", Some(&ops)).await).await;
    assert_eq!(all["connections"].as_array().map(Vec::len), Some(3));
    let (_, by_sid, _) = read(backend.get("/v1/connections?sid=s-bob", Some(&ops)).await).await;
    let users: Vec<&Value> = by_sid["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["user"])
        .collect();
    assert_eq!(users, [&Value::from("bob")]);

    // Closing needs a name.
    let (status, body, _) = read(delete(&backend, "", Some(&ops)).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _, _) = read(delete(&backend, "?user=ann&sid=s-bob", Some(&ops)).await).await;
    assert_eq!(status, 400);

    let (status, body, _) = read(delete(&backend, "?user=ann", Some(&ops)).await).await;
    assert_eq!((status, body["closed"].as_u64()), (200, Some(2)), "{body}");
    for socket in [&mut ann1, &mut ann2] {
        assert_eq!(closed_with(socket).await, 4403);
    }
    chat_works(&mut bob1).await;
    // Closed connections leave the list once their close handshake is
    // over (bounded wait; no speed asserted).
    let mut left = Vec::new();
    for _ in 0..100 {
        let (_, body, _) = read(backend.get("/v1/connections", Some(&ops)).await).await;
        left = body["connections"].as_array().unwrap().clone();
        if left.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["user"], "bob");

    let (status, body, _) = read(delete(&backend, "?sid=s-bob", Some(&ops)).await).await;
    assert_eq!((status, body["closed"].as_u64()), (200, Some(1)));
    assert_eq!(closed_with(&mut bob1).await, 4403);
    let _: &Socket = &bob1;
}

/// The `# TYPE`/sample lines of `name` on the backend's `/metrics` page.
async fn metric_lines(backend: &Backend, name: &str) -> Vec<String> {
    let response = backend.get("/metrics", None).await;
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with(name))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn metrics_show_open_connections_by_plan_and_closes_by_code() {
    let backend = Backend::start().await;
    let ops = backend
        .issuer
        .service("ops")
        .scope("connections:admin")
        .mint();
    let token = backend
        .issuer
        .user("metered")
        .plan("enterprise")
        .session("s-metered")
        .mint();
    let mut socket = connect(&backend, &token).await;
    chat_works(&mut socket).await;
    let open = metric_lines(&backend, "tollgate_client_ws_connections{").await;
    assert!(
        open.iter()
            .any(|l| l.starts_with("tollgate_client_ws_connections{plan=\"enterprise\"}")),
        "{open:?}"
    );

    let (status, _, _) = read(delete(&backend, "?user=metered", Some(&ops)).await).await;
    assert_eq!(status, 200);
    assert_eq!(closed_with(&mut socket).await, 4403);
    // The counter moves when the supervisor ends (bounded wait, no speed
    // asserted).
    let mut closes = Vec::new();
    for _ in 0..100 {
        closes = metric_lines(&backend, "tollgate_client_ws_closes_total{").await;
        if closes
            .iter()
            .any(|l| l.starts_with("tollgate_client_ws_closes_total{code=\"4403\"}"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        closes
            .iter()
            .any(|l| l.starts_with("tollgate_client_ws_closes_total{code=\"4403\"}")),
        "{closes:?}"
    );
    // The gauge is still listed (at the other tests' count) after the close.
    let open = metric_lines(&backend, "tollgate_client_ws_connections{").await;
    assert!(!open.is_empty());
}

#[tokio::test]
async fn connections_queries_are_strict_and_a_bad_one_closes_nothing() {
    let backend = Backend::start().await;
    let ops = backend
        .issuer
        .service("ops")
        .scope("connections:admin")
        .mint();
    let mut ann = connect(&backend, &backend.issuer.user("ann").mint()).await;
    let mut bob = connect(&backend, &backend.issuer.user("bob").mint()).await;
    for (query, named) in [
        ("?force=1", "`force`"),
        ("?force", "`force`"),
        ("?user=ann&force=1", "`force`"),
        ("?usr=ann", "`usr`"),
        ("?user=ann&user=bob", "`user`"),
        ("?user=", "`user` or `sid`"),
        ("?user=ann&sid=s", "`user` or `sid`"),
    ] {
        let (status, body, _) = read(
            backend
                .get(&format!("/v1/connections{query}"), Some(&ops))
                .await,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "GET {query}: {body}"
        );
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.contains(named), "GET {query}: {description}");
        let (status, body, _) = read(delete(&backend, query, Some(&ops)).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "DELETE {query}: {body}"
        );
    }
    assert_eq!(backend.ws.live_connections(), 2, "nothing was closed");
    chat_works(&mut ann).await;
    chat_works(&mut bob).await;
}
