//! WebSockets against the real token service: a revocation made over HTTP
//! (logout, admin revoke) reaches the backend through the SDK's feed and
//! closes a live connection with 4403; a refresh with a token from
//! `/v1/auth/refresh` keeps the connection (CONTRACT §6).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{Backend, TokenService};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bound on every wait. It keeps a broken build from hanging; the promised
/// second is measured by the propagation benchmark, not asserted here.
const PATIENCE: Duration = Duration::from_secs(10);

async fn stack() -> (TokenService, Backend) {
    let service = TokenService::start().await;
    let backend = Backend::start(&service, service.authenticator().build().await.unwrap()).await;
    backend.feed_live().await;
    (service, backend)
}

/// Opens `/ws` with the token as a `jwt.` subprotocol entry, as a browser
/// would.
pub async fn connect(backend: &Backend, token: &str) -> Socket {
    let url = format!("{}/ws", backend.url.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!("jwt.{token}")).unwrap(),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
}

pub async fn ask(socket: &mut Socket, message: Value) -> Value {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("no answer in time")
            .expect("the connection ended")
            .expect("a read failed");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// The close frame's code and reason.
pub async fn closed(socket: &mut Socket) -> (u16, String) {
    loop {
        match tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("not closed in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.as_str().to_owned());
            }
            Some(Ok(Message::Close(None))) | None => panic!("ended without a close code"),
            Some(Ok(_)) => {}
            Some(Err(err)) => panic!("read failed: {err}"),
        }
    }
}

#[tokio::test]
async fn logout_closes_a_live_websocket_with_4403() {
    let (service, backend) = stack().await;
    let (_, token) = service.user("wendy@example.com").await;
    let mut socket = connect(&backend, &token).await;
    let reply = ask(&mut socket, json!({"type": "chat", "text": "hi"})).await;
    assert_eq!(reply["type"], "chat.reply");

    let out = service
        .send(Method::POST, "/v1/auth/logout", &token, None)
        .await;
    assert!(out.status < 300, "{out:?}");
    assert_eq!(
        closed(&mut socket).await,
        (4403, "token_revoked".to_owned())
    );
}

#[tokio::test]
async fn an_admin_revoke_closes_every_socket_of_the_user_and_no_other() {
    let (service, backend) = stack().await;
    let (user_id, token) = service.user("xavier@example.com").await;
    let (_, bystander) = service.user("yolanda@example.com").await;
    let mut first = connect(&backend, &token).await;
    let mut second = connect(&backend, &token).await;
    let mut other = connect(&backend, &bystander).await;
    ask(&mut first, json!({"type": "chat", "text": "hi"})).await;

    let admin = service.admin_token().await;
    let revoked = service
        .send(
            Method::POST,
            &format!("/v1/admin/users/{user_id}/revoke"),
            &admin,
            None,
        )
        .await;
    assert_eq!(revoked.status, 204, "{revoked:?}");
    for socket in [&mut first, &mut second] {
        assert_eq!(closed(socket).await, (4403, "token_revoked".to_owned()));
    }
    let reply = ask(&mut other, json!({"type": "chat", "text": "still here"})).await;
    assert_eq!(reply["text"], "still here");
}

#[tokio::test]
async fn a_token_from_the_refresh_grant_refreshes_a_live_connection() {
    let (service, backend) = stack().await;
    service.user("zoe@example.com").await;
    let login = service
        .post_json(
            "/v1/auth/login",
            None,
            &json!({"email": "zoe@example.com", "password": crate::support::PASSWORD}),
        )
        .await;
    let mut socket = connect(&backend, &login.str("access_token")).await;
    let refreshed = service
        .post_json(
            "/v1/auth/refresh",
            None,
            &json!({"refresh_token": login.str("refresh_token")}),
        )
        .await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    let answer = ask(
        &mut socket,
        json!({"type": "auth.refresh", "access_token": refreshed.str("access_token")}),
    )
    .await;
    assert_eq!(answer["type"], "auth.refreshed", "{answer}");
    assert!(answer["expires_at"].as_u64().unwrap() > 0);

    // Another user's token is refused, and the connection kept.
    let (_, stranger) = service.user("zack@example.com").await;
    let answer = ask(
        &mut socket,
        json!({"type": "auth.refresh", "access_token": stranger}),
    )
    .await;
    assert_eq!(answer["code"], "subject_mismatch");
    let reply = ask(&mut socket, json!({"type": "chat", "text": "ok"})).await;
    assert_eq!(reply["type"], "chat.reply");
}
