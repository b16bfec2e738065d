//! `GET /ws` over real sockets (tokio-tungstenite as the client), with
//! tokens from the SDK's `TestIssuer`: the handshake rules, the live
//! connection's expiry, refresh and revocation, size and shape limits,
//! shutdown, and the chat's own messages (CONTRACT §6).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Backend;

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Bound on every wait: keeps a broken build from hanging, asserts no speed.
const PATIENCE: Duration = Duration::from_secs(10);

/// A handshake's outcome: the socket and the protocol the answer selected,
/// or the refusal's status, JSON body and challenge.
pub(crate) enum Handshake {
    Open(Box<Socket>, Option<String>),
    Refused(u16, Value, Option<String>),
}

impl Handshake {
    #[track_caller]
    fn open(self) -> Socket {
        self.open_with_protocol().0
    }

    /// The socket and the protocol the answer selected.
    #[track_caller]
    fn open_with_protocol(self) -> (Socket, Option<String>) {
        match self {
            Handshake::Open(socket, protocol) => (*socket, protocol),
            Handshake::Refused(status, body, _) => panic!("refused: {status} {body}"),
        }
    }

    #[track_caller]
    pub(crate) fn refused(self) -> (u16, Value, Option<String>) {
        match self {
            Handshake::Open(..) => panic!("the handshake was accepted"),
            Handshake::Refused(status, body, challenge) => (status, body, challenge),
        }
    }
}

pub(crate) async fn handshake(
    backend: &Backend,
    path: &str,
    headers: &[(&str, &str)],
) -> Handshake {
    let url = format!("{}{path}", backend.url.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            let protocol = response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_owned());
            Handshake::Open(Box::new(socket), protocol)
        }
        Err(WsError::Http(response)) => {
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Handshake::Refused(response.status().as_u16(), body, challenge)
        }
        Err(err) => panic!("handshake failed: {err}"),
    }
}

pub(crate) async fn connect(backend: &Backend, token: &str) -> Socket {
    let bearer = format!("Bearer {token}");
    handshake(backend, "/ws", &[("authorization", &bearer)])
        .await
        .open()
}

async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// The next JSON message (pings and pongs skipped).
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("no message in time")
            .expect("the connection ended")
            .expect("a read failed");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Sends `message` and returns the answer.
async fn ask(socket: &mut Socket, message: Value) -> Value {
    send(socket, message).await;
    next(socket).await
}

/// The close code the server sent.
pub(crate) async fn closed_with(socket: &mut Socket) -> u16 {
    closed(socket).await.0
}

/// Reads until the close frame; its code and reason. Other messages (an
/// `auth.expiring` on the way, say) are skipped.
async fn closed(socket: &mut Socket) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("not closed in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.as_str().to_owned());
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => {}
            other => panic!("ended without a close frame: {other:?}"),
        }
    }
}

pub(crate) async fn chat_works(socket: &mut Socket) {
    let reply = ask(socket, json!({"type": "chat", "text": "hello"})).await;
    assert_eq!(reply, json!({"type": "chat.reply", "text": "hello"}));
}

#[tokio::test]
async fn the_token_comes_from_the_header_or_a_protocol_entry_and_the_answer_echoes_one() {
    let backend = Backend::start().await;
    // Pro: room for the three connections below.
    let token = backend.issuer.user("alice").plan("pro").mint();

    let mut socket = connect(&backend, &token).await;
    chat_works(&mut socket).await;

    let entry = format!("jwt.{token}");
    let (mut socket, selected) = handshake(&backend, "/ws", &[("sec-websocket-protocol", &entry)])
        .await
        .open_with_protocol();
    assert_eq!(
        selected.as_deref(),
        Some(entry.as_str()),
        "only the token entry was offered"
    );
    chat_works(&mut socket).await;

    let offered = format!("jwt-auth.{token}, chat.v1, chat.v2");
    let (mut socket, selected) =
        handshake(&backend, "/ws", &[("sec-websocket-protocol", &offered)])
            .await
            .open_with_protocol();
    assert_eq!(
        selected.as_deref(),
        Some("chat.v1"),
        "the first entry without a token"
    );
    chat_works(&mut socket).await;

    // The query parameter only when configured.
    let query = format!("/ws?access_token={token}");
    let (status, body, _) = handshake(&backend, &query, &[]).await.refused();
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_token"))
    );
    let lenient = Backend::start_with(|rules| rules.query_parameter("access_token")).await;
    let token = lenient.issuer.user("alice").mint();
    let query = format!("/ws?access_token={token}");
    chat_works(&mut handshake(&lenient, &query, &[]).await.open()).await;
}

#[tokio::test]
async fn bad_tokens_are_refused_at_the_handshake_with_401_and_a_challenge() {
    let backend = Backend::start().await;
    let (status, body, challenge) = handshake(&backend, "/ws", &[]).await.refused();
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_token"))
    );
    assert_eq!(challenge.as_deref(), Some("Bearer"));

    let expired = backend.issuer.user("bob").expired().mint();
    let revoked = backend.issuer.user("bob").mint();
    backend.issuer.revoke(&revoked);
    let service = backend.issuer.service("billing").mint();
    for (token, code) in [
        ("a.b.c", "malformed"),
        (expired.as_str(), "expired"),
        (revoked.as_str(), "revoked"),
        (service.as_str(), "wrong_token_type"),
    ] {
        let entry = format!("jwt.{token}");
        let (status, body, challenge) =
            handshake(&backend, "/ws", &[("sec-websocket-protocol", &entry)])
                .await
                .refused();
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some(code)),
            "{body}"
        );
        assert!(body["error_description"].is_string());
        assert!(
            challenge
                .unwrap()
                .starts_with("Bearer error=\"invalid_token\", error_description=\""),
        );
    }

    let token = backend.issuer.user("bob").mint();
    let (status, body, _) = handshake(
        &backend,
        "/ws",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("sec-websocket-protocol", &format!("jwt.{token}")),
        ],
    )
    .await
    .refused();
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "two tokens"
    );
}

#[tokio::test]
async fn browsers_must_come_from_an_allowed_origin() {
    let backend = Backend::start_with(|rules| rules.allow_origin("https://chat.example.com")).await;
    let bearer = format!("Bearer {}", backend.issuer.user("carol").mint());
    let (status, body, challenge) = handshake(
        &backend,
        "/ws",
        &[
            ("authorization", &bearer),
            ("origin", "https://evil.example.com"),
        ],
    )
    .await
    .refused();
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    assert_eq!(challenge, None);
    let allowed = [
        ("authorization", bearer.as_str()),
        ("origin", "https://chat.example.com"),
    ];
    chat_works(&mut handshake(&backend, "/ws", &allowed).await.open()).await;
    // No Origin: not a browser, not subject to the list.
    chat_works(
        &mut handshake(&backend, "/ws", &[("authorization", &bearer)])
            .await
            .open(),
    )
    .await;

    // By default no browser origin is allowed; any origin only when asked
    // for (chat-backend does so in development only).
    let strict = Backend::start().await;
    let bearer = format!("Bearer {}", strict.issuer.user("carol").mint());
    let from_page = [
        ("authorization", bearer.as_str()),
        ("origin", "https://chat.example.com"),
    ];
    let (status, _, _) = handshake(&strict, "/ws", &from_page).await.refused();
    assert_eq!(status, 403);
    let open = Backend::start_with(|rules| rules.dangerous_allow_any_origin()).await;
    let bearer = format!("Bearer {}", open.issuer.user("carol").mint());
    let from_page = [
        ("authorization", bearer.as_str()),
        ("origin", "https://any.example.com"),
    ];
    chat_works(&mut handshake(&open, "/ws", &from_page).await.open()).await;
}

#[tokio::test]
async fn the_plan_limits_connections_per_user_and_closing_one_frees_its_slot() {
    let backend = Backend::start().await;
    let token = backend.issuer.user("dave").mint();
    let mut first = connect(&backend, &token).await;
    let mut second = connect(&backend, &token).await;
    chat_works(&mut second).await;
    let bearer = format!("Bearer {token}");
    let (status, body, _) = handshake(&backend, "/ws", &[("authorization", &bearer)])
        .await
        .refused();
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("connection_limit")),
        "free: 2"
    );
    // Another user is not affected.
    chat_works(&mut connect(&backend, &backend.issuer.user("erin").mint()).await).await;
    // A pro user gets 5.
    let pro = backend.issuer.user("frank").plan("pro").mint();
    let mut pros = Vec::new();
    for _ in 0..5 {
        pros.push(connect(&backend, &pro).await);
    }
    let (status, _, _) = handshake(
        &backend,
        "/ws",
        &[("authorization", &format!("Bearer {pro}"))],
    )
    .await
    .refused();
    assert_eq!(status, 403);

    // A clean close frees a slot, and so does a connection that just drops.
    first.close(None).await.unwrap();
    let mut third = until_open(&backend, &bearer).await;
    chat_works(&mut third).await;
    drop(second);
    chat_works(&mut until_open(&backend, &bearer).await).await;
}

/// Retries a handshake until a slot is free (slots are released when the
/// server notices the end of a connection).
async fn until_open(backend: &Backend, bearer: &str) -> Socket {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match handshake(backend, "/ws", &[("authorization", bearer)]).await {
            Handshake::Open(socket, _) => return *socket,
            Handshake::Refused(status, body, _) => {
                assert_eq!(status, 403, "{body}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slot was never freed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_refreshed_connection_outlives_its_first_token() {
    let backend = Backend::start().await;
    let (token, claims) = backend
        .issuer
        .user("gina")
        .ttl(3)
        .mint_with_claims()
        .unwrap();
    let mut socket = connect(&backend, &token).await;
    let notice = next(&mut socket).await;
    assert_eq!(
        notice,
        json!({"type": "auth.expiring", "expires_at": claims.exp})
    );

    let (fresh, fresh_claims) = backend
        .issuer
        .user("gina")
        .plan("pro")
        .mint_with_claims()
        .unwrap();
    let answer = ask(
        &mut socket,
        json!({"type": "auth.refresh", "access_token": fresh}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"type": "auth.refreshed", "expires_at": fresh_claims.exp})
    );

    // Past the first token's expiry: still open, and the new token's plan
    // is in force (pro may use code_interpreter).
    let past_first = Duration::from_secs(claims.exp + 1).saturating_sub(unix_now());
    tokio::time::sleep(past_first).await;
    chat_works(&mut socket).await;
    let answer = ask(
        &mut socket,
        json!({"type": "tool.call", "id": 1, "tool": "code_interpreter"}),
    )
    .await;
    assert_eq!(answer["type"], "tool.result", "{answer}");
}

#[tokio::test]
async fn without_a_good_refresh_the_connection_closes_with_4401() {
    let backend = Backend::start().await;
    let (token, claims) = backend
        .issuer
        .user("hank")
        // Lifetimes are whole seconds from the current (floored) second:
        // ttl(4) leaves at least 3 s for the refusals below, however
        // close to a second boundary the token was minted.
        .ttl(4)
        .mint_with_claims()
        .unwrap();
    let mut socket = connect(&backend, &token).await;
    assert_eq!(next(&mut socket).await["type"], "auth.expiring");

    let someone_else = backend.issuer.user("ivan").mint();
    let answer = ask(
        &mut socket,
        json!({"type": "auth.refresh", "access_token": someone_else}),
    )
    .await;
    assert_eq!(
        (answer["type"].as_str(), answer["code"].as_str()),
        (Some("error"), Some("subject_mismatch"))
    );
    let expired = backend.issuer.user("hank").expired().mint();
    let answer = ask(
        &mut socket,
        json!({"type": "auth.refresh", "access_token": expired}),
    )
    .await;
    assert_eq!(answer["code"], "expired");
    let answer = ask(&mut socket, json!({"type": "auth.refresh"})).await;
    assert_eq!(
        (answer["code"].as_str(), answer["request"].as_str()),
        (Some("invalid_message"), Some("auth.refresh"))
    );
    // Refusals keep the connection (and the old expiry).
    chat_works(&mut socket).await;

    assert_eq!(
        closed(&mut socket).await,
        (4401, "token_expired".to_owned())
    );
    assert!(
        unix_now() >= Duration::from_secs(claims.exp - 1),
        "not closed before expiry"
    );
}

#[tokio::test]
async fn revoking_the_token_its_session_or_its_user_closes_with_4403() {
    let backend = Backend::start().await;
    let issuer = &backend.issuer;
    let by_token = issuer.user("jack").mint();
    let by_session = issuer.user("kate").mint();
    let earlier = unix_now().as_secs() - 10;
    let by_user = issuer.user("liam").issued_at(earlier).mint();
    let bystander = issuer.user("mona").mint();
    let mut sockets = Vec::new();
    for token in [&by_token, &by_session, &by_user] {
        let mut socket = connect(&backend, token).await;
        chat_works(&mut socket).await;
        sockets.push(socket);
    }
    let mut other = connect(&backend, &bystander).await;

    issuer.revoke(&by_token);
    issuer.logout(&by_session);
    issuer.revoke_user("liam");
    for socket in &mut sockets {
        assert_eq!(closed(socket).await, (4403, "token_revoked".to_owned()));
    }
    chat_works(&mut other).await;
}

/// Issue 16 item 4: a revocation wakes only the connections it can close.
/// Every revocation used to wake every connection to recheck its token
/// (5 000 sockets, 50 unrelated revocations a second: 1.45 cores, and the
/// target's 4403 seconds late).
#[tokio::test]
async fn issue_16_a_revocation_storm_rechecks_only_the_connections_it_can_hit() {
    let backend = Backend::start().await;
    let issuer = &backend.issuer;
    let earlier = unix_now().as_secs() - 10;
    let target = issuer.user("tara").plan("pro").issued_at(earlier).mint();
    let mut targets = Vec::new();
    for _ in 0..5 {
        targets.push(connect(&backend, &target).await);
    }
    let mut bystanders = Vec::new();
    for n in 0..20 {
        let token = issuer.user(&format!("bystander-{n}")).mint();
        bystanders.push((token.clone(), connect(&backend, &token).await));
    }
    for (_, socket) in &mut bystanders {
        chat_works(socket).await;
    }
    assert_eq!(backend.ws.rechecks(), 0);

    // The storm: tokens, sessions and users that no connection holds —
    // including a bystander's other token and other session.
    for n in 0..300 {
        match n % 4 {
            0 => issuer.revoke(&issuer.user(&format!("gone-{n}")).mint()),
            1 => issuer.revoke_session(&format!("no-such-session-{n}")),
            2 => issuer.revoke_user(&format!("nobody-{n}")),
            _ => issuer.logout(&issuer.user("bystander-0").mint()),
        }
    }
    // A user-wide revocation wakes that user's connection, which survives:
    // its token was issued after the cut-off.
    backend
        .ws
        .authenticator()
        .revocations()
        .revoke_user("bystander-1", earlier, earlier + 3600);
    for (_, socket) in &mut bystanders {
        chat_works(socket).await;
    }
    assert_eq!(
        backend.ws.rechecks(),
        1,
        "only bystander-1's connection was rechecked"
    );

    issuer.revoke_user("tara");
    for socket in &mut targets {
        assert_eq!(closed(socket).await, (4403, "token_revoked".to_owned()));
    }
    for (_, socket) in &mut bystanders {
        chat_works(socket).await;
    }
    assert_eq!(backend.ws.rechecks(), 1 + 5);

    // Revoking a token or a session wakes exactly its connections.
    let (token, socket) = &mut bystanders[2];
    issuer.revoke(token);
    assert_eq!(closed(socket).await, (4403, "token_revoked".to_owned()));
    let (token, socket) = &mut bystanders[3];
    issuer.logout(token);
    assert_eq!(closed(socket).await, (4403, "token_revoked".to_owned()));
    for (_, socket) in &mut bystanders[4..] {
        chat_works(socket).await;
    }
    assert_eq!(backend.ws.rechecks(), 1 + 5 + 2);
}

#[tokio::test]
async fn messages_over_64_kib_close_with_1009() {
    let backend = Backend::start().await;
    let mut socket = connect(&backend, &backend.issuer.user("nina").mint()).await;
    // Exactly 64 KiB is accepted.
    let skeleton = json!({"type": "chat", "text": ""}).to_string();
    let text = "a".repeat(64 * 1024 - skeleton.len());
    let reply = ask(&mut socket, json!({"type": "chat", "text": text})).await;
    assert_eq!(reply["text"].as_str().map(str::len), Some(text.len()));
    send(
        &mut socket,
        json!({"type": "chat", "text": format!("{text}a")}),
    )
    .await;
    assert_eq!(
        closed(&mut socket).await,
        (1009, "message_too_big".to_owned())
    );
}

/// Issue 9 item 8: a newer client must not be cut off by an older server.
/// Valid JSON of a shape the server does not know (no `type`, an unknown
/// one, members of the wrong type) is answered with `invalid_message` and
/// the connection stays; it used to close with 1008.
#[tokio::test]
async fn issue_9_valid_json_of_an_unknown_shape_is_answered_and_the_connection_stays() {
    let backend = Backend::start().await;
    let mut socket = connect(&backend, &backend.issuer.user("omar").mint()).await;
    for message in [
        r#"{"text": "no type"}"#,
        "[1, 2]",
        "42",
        "null",
        r#""chat""#,
        r#"{"type": 5}"#,
        r#"{"type": "chat.v2", "text": "from a newer client"}"#,
        r#"{"type": "chat"}"#,
        r#"{"type": "chat", "text": 1}"#,
        r#"{"type": "tool.call"}"#,
        r#"{"type": "tool.call", "tool": "search", "input": {"q": 1}}"#,
        r#"{"type": "auth.refresh"}"#,
        r#"{"type": "auth.refresh", "access_token": 5}"#,
    ] {
        socket.send(Message::text(message)).await.unwrap();
        let answer = next(&mut socket).await;
        assert_eq!(
            (answer["type"].as_str(), answer["code"].as_str()),
            (Some("error"), Some("invalid_message")),
            "{message} → {answer}"
        );
        assert!(answer["error_description"].is_string(), "{answer}");
    }
    // The request's `id` comes back, so the client knows which one it was.
    let answer = ask(&mut socket, json!({"type": "dance", "id": 7})).await;
    assert_eq!(
        (answer["code"].as_str(), answer["id"].as_i64()),
        (Some("invalid_message"), Some(7))
    );
    chat_works(&mut socket).await;
}

/// What is not JSON text at all is not this protocol: 1008 (CONTRACT §6
/// "may close"; docs/errors.md says it does).
#[tokio::test]
async fn text_that_is_not_json_and_binary_close_with_1008() {
    let backend = Backend::start().await;
    let token = backend.issuer.user("omar").mint();
    for message in [
        Message::text("{not json"),
        Message::text(""),
        Message::binary(vec![1, 2, 3]),
    ] {
        let mut socket = connect(&backend, &token).await;
        socket.send(message).await.unwrap();
        assert_eq!(
            closed(&mut socket).await,
            (1008, "invalid_message".to_owned())
        );
    }
}

#[tokio::test]
async fn shutting_down_closes_every_connection_with_1001() {
    let backend = Backend::start().await;
    let mut first = connect(&backend, &backend.issuer.user("pia").mint()).await;
    let mut second = connect(&backend, &backend.issuer.user("quin").mint()).await;
    chat_works(&mut first).await;
    let stopping = tokio::spawn(backend.shut_down());
    assert_eq!(closed(&mut first).await, (1001, "going_away".to_owned()));
    assert_eq!(closed(&mut second).await, (1001, "going_away".to_owned()));
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn tool_refusals_are_messages_and_keep_the_connection() {
    let backend = Backend::start().await;
    let token = backend.issuer.user("rita").mint();
    let mut socket = connect(&backend, &token).await;

    let answer = ask(
        &mut socket,
        json!({"type": "tool.call", "id": "a1", "tool": "search", "input": "two words"}),
    )
    .await;
    assert_eq!(
        (answer["type"].as_str(), answer["id"].as_str()),
        (Some("tool.result"), Some("a1")),
        "{answer}"
    );
    let answer = ask(
        &mut socket,
        json!({"type": "tool.call", "id": "a2", "tool": "code_interpreter"}),
    )
    .await;
    assert_eq!(
        (
            answer["type"].as_str(),
            answer["id"].as_str(),
            answer["code"].as_str()
        ),
        (Some("error"), Some("a2"), Some("permission_denied"))
    );
    let answer = ask(
        &mut socket,
        json!({"type": "tool.call", "id": 3, "tool": "rm_rf"}),
    )
    .await;
    assert_eq!(
        (answer["id"].as_i64(), answer["code"].as_str()),
        (Some(3), Some("unknown_tool"))
    );
    let answer = ask(&mut socket, json!({"type": "dance"})).await;
    assert_eq!(answer["code"], "invalid_message");

    // The same gate as REST: 60 calls a minute on the free plan, counted
    // together.
    for _ in 0..58 {
        let answer = ask(
            &mut socket,
            json!({"type": "tool.call", "id": 0, "tool": "search"}),
        )
        .await;
        assert_eq!(answer["type"], "tool.result", "{answer}");
    }
    let rest = backend.post("/api/tools/search", &token, "").await;
    assert_eq!(rest.status(), 200);
    let answer = ask(
        &mut socket,
        json!({"type": "tool.call", "id": 61, "tool": "search"}),
    )
    .await;
    assert_eq!(
        (
            answer["type"].as_str(),
            answer["id"].as_i64(),
            answer["code"].as_str()
        ),
        (Some("error"), Some(61), Some("rate_limited"))
    );
    assert!(answer["retry_after_ms"].as_u64().unwrap() > 0, "{answer}");
    chat_works(&mut socket).await;
    let (_, usage, _) = crate::read(backend.get("/api/usage", Some(&token)).await).await;
    assert_eq!(usage["usage"], json!({"search": 60}));
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
}

#[tokio::test]
async fn refresh_floods_are_rate_limited_per_connection_without_validating() {
    let backend = Backend::start().await;
    let good = backend.issuer.user("nora").mint();
    let mut socket = connect(&backend, &good).await;
    // Within the budget (5 a minute) every attempt is judged: a bad token
    // gets its own error.
    for _ in 0..5 {
        let answer = ask(
            &mut socket,
            json!({"type": "auth.refresh", "access_token": "not.a.token"}),
        )
        .await;
        assert_eq!(answer["type"], "error", "{answer}");
        assert_ne!(answer["code"], "rate_limited", "{answer}");
    }
    // Over it nothing is judged, not even a good token: a flood costs at
    // most five validations a minute.
    for _ in 0..20 {
        let answer = ask(
            &mut socket,
            json!({"type": "auth.refresh", "access_token": good}),
        )
        .await;
        assert_eq!(
            (
                answer["type"].as_str(),
                answer["code"].as_str(),
                answer["request"].as_str()
            ),
            (Some("error"), Some("rate_limited"), Some("auth.refresh")),
            "{answer}"
        );
        let wait = answer["retry_after_ms"].as_u64().unwrap();
        assert!((1..=12_000).contains(&wait), "{answer}");
    }
    // The connection is kept, and the budget is per connection.
    chat_works(&mut socket).await;
    let mut other = connect(&backend, &good).await;
    let answer = ask(
        &mut other,
        json!({"type": "auth.refresh", "access_token": good}),
    )
    .await;
    assert_eq!(answer["type"], "auth.refreshed", "{answer}");
}

/// Sends large chat messages (each answered by an echo as large) from a
/// task of its own and never reads: the server's writes back up. Bounded:
/// at most 2 000 messages (~120 MB), far more than the sockets buffer.
fn flood_without_reading(
    socket: Socket,
) -> (
    futures::stream::SplitStream<Socket>,
    tokio::task::JoinHandle<()>,
) {
    let (mut sink, stream) = socket.split();
    let message = json!({"type": "chat", "text": "x".repeat(60 * 1024)}).to_string();
    let flood = tokio::spawn(async move {
        for _ in 0..2_000 {
            if sink.send(Message::text(message.clone())).await.is_err() {
                return;
            }
        }
    });
    (stream, flood)
}

/// Opens a connection with `token` once its user has a free slot again
/// (their plan's limit is reached until the server lets one go).
pub(crate) async fn once_a_slot_is_free(backend: &Backend, token: &str) -> Socket {
    once_a_slot_is_free_with(backend, token, "connection_limit").await
}

/// Opens a connection with `token` once it is no longer refused with the
/// error `code` (403 `connection_limit` or 503 `too_many_connections`).
pub(crate) async fn once_a_slot_is_free_with(backend: &Backend, token: &str, code: &str) -> Socket {
    let bearer = format!("Bearer {token}");
    let deadline = tokio::time::Instant::now() + 3 * PATIENCE;
    loop {
        match handshake(backend, "/ws", &[("authorization", &bearer)]).await {
            Handshake::Open(socket, _) => return *socket,
            Handshake::Refused(403 | 503, body, _) if body["error"] == code => {}
            Handshake::Refused(status, body, _) => panic!("refused: {status} {body}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connection's slot was never released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads what the server had sent until the connection ends; the close
/// code, if a close frame got through.
async fn drain(stream: &mut futures::stream::SplitStream<Socket>) -> Option<u16> {
    loop {
        let message = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("the connection never ended");
        match message {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_its_slot_released() {
    let backend = Backend::start_with(|rules| rules.send_timeout(Duration::from_millis(500))).await;
    let token = backend.issuer.user("olga").mint();
    // Free plan: two connections. One idle, one that stops reading.
    let mut idle = connect(&backend, &token).await;
    let (mut stalled, flood) = flood_without_reading(connect(&backend, &token).await);
    // Only the server closing the stalled connection makes room.
    let mut third = once_a_slot_is_free(&backend, &token).await;
    chat_works(&mut third).await;
    chat_works(&mut idle).await;
    // Whatever got through, the stalled connection is over; a close frame
    // that did get through says 1008.
    if let Some(code) = drain(&mut stalled).await {
        assert_eq!(code, 1008);
    }
    flood.abort();
}

#[tokio::test]
async fn expiry_closes_a_client_that_does_not_read() {
    // The send timeout alone would keep the stalled connection for an hour.
    let backend = Backend::start_with(|rules| rules.send_timeout(Duration::from_secs(3600))).await;
    let token = backend.issuer.user("pia").mint();
    let short = backend.issuer.user("pia").ttl(3).mint();
    let mut idle = connect(&backend, &token).await;
    let (mut stalled, flood) = flood_without_reading(connect(&backend, &short).await);
    // At expiry (within 3 s) the connection is closed although its writes
    // are stuck: the close frame gets its grace, then the socket goes.
    let mut third = once_a_slot_is_free(&backend, &token).await;
    chat_works(&mut third).await;
    chat_works(&mut idle).await;
    if let Some(code) = drain(&mut stalled).await {
        assert_eq!(code, 4401);
    }
    flood.abort();
}

/// A configuration resolved by the core builder from these variables (the
/// WebSocket limits are settings, issue 13).
fn settings(vars: &[(&str, &str)]) -> tollgate_client::config::Config {
    use tollgate_client::config::{Component, ConfigBuilder};
    let report = ConfigBuilder::new(Component::Sdk)
        .env(vars.iter().copied())
        .build();
    report.into_config().unwrap().0
}

/// Issue 13: `TOLLGATE_WS_MAX_MESSAGE_SIZE` sets the largest message; one
/// byte over it closes with 1009.
#[tokio::test]
async fn the_maximum_message_size_is_a_setting() {
    let config = settings(&[("TOLLGATE_WS_MAX_MESSAGE_SIZE", "2KiB")]);
    let backend = Backend::start_with(|rules| rules.settings(&config)).await;
    let mut socket = connect(&backend, &backend.issuer.user("quin").mint()).await;
    let skeleton = json!({"type": "chat", "text": ""}).to_string();
    let text = "a".repeat(2048 - skeleton.len());
    let reply = ask(&mut socket, json!({"type": "chat", "text": text})).await;
    assert_eq!(reply["text"].as_str().map(str::len), Some(text.len()));
    send(
        &mut socket,
        json!({"type": "chat", "text": format!("{text}a")}),
    )
    .await;
    assert_eq!(
        closed(&mut socket).await,
        (1009, "message_too_big".to_owned())
    );
}

/// Issue 13: `TOLLGATE_WS_SEND_TIMEOUT` cuts a client that stops reading
/// (the default, 10 s, would keep it beyond the bound below).
#[tokio::test]
async fn the_send_timeout_is_a_setting_and_cuts_a_slow_reader() {
    let config = settings(&[
        ("TOLLGATE_WS_SEND_TIMEOUT", "1"),
        ("TOLLGATE_WS_SEND_QUEUE", "1000"),
    ]);
    let backend = Backend::start_with(|rules| rules.settings(&config)).await;
    let token = backend.issuer.user("rhea").mint();
    let _idle = connect(&backend, &token).await;
    let (mut stalled, flood) = flood_without_reading(connect(&backend, &token).await);
    let started = tokio::time::Instant::now();
    // Only the server cutting the stalled connection frees the plan's slot.
    let mut third = once_a_slot_is_free(&backend, &token).await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the stalled connection outlived the 1 s send timeout by far"
    );
    chat_works(&mut third).await;
    if let Some(code) = drain(&mut stalled).await {
        assert_eq!(code, 1008);
    }
    flood.abort();
}

/// Issue 13: `TOLLGATE_WS_MAX_CONNECTIONS` bounds the instance: beyond it
/// a handshake gets 503 `too_many_connections` and no upgrade, whoever
/// asks and whatever their token; a closed connection makes room.
#[tokio::test]
async fn the_instance_limit_refuses_with_503_before_upgrade() {
    let config = settings(&[("TOLLGATE_WS_MAX_CONNECTIONS", "2")]);
    let backend = Backend::start_with(|rules| rules.settings(&config)).await;
    let mut first = connect(&backend, &backend.issuer.user("sam").mint()).await;
    let mut second = connect(&backend, &backend.issuer.user("tess").mint()).await;
    let third = backend.issuer.user("uma").mint();
    for bearer in [format!("Bearer {third}"), "Bearer not-a-token".to_owned()] {
        let (status, body, _) = handshake(&backend, "/ws", &[("authorization", &bearer)])
            .await
            .refused();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"], "too_many_connections", "{body}");
    }
    let response = backend
        .http
        .get(format!("{}/ws", backend.url))
        .bearer_auth(&third)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    chat_works(&mut first).await;
    second.close(None).await.unwrap();
    let mut third = once_a_slot_is_free_with(&backend, &third, "too_many_connections").await;
    chat_works(&mut third).await;
}
