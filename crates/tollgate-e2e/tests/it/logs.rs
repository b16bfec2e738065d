//! Tokens and secrets never reach a log line (SECURITY G): every log line
//! of the test process, at every level, is captured here, and a full flow
//! through the token service, the SDK and chat-backend is checked against
//! every token and secret it handled (WebSocket handshakes and refreshes
//! included).

use std::sync::{Arc, Mutex, OnceLock};

use reqwest::Method;

use crate::support::{Backend, TokenService, until_status};

pub fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        captured().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line of the process at every level, once.
pub fn capture() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            // Everything but tungstenite's `trace`, which prints every
            // WebSocket message (an `auth.refresh` carries a token): a
            // host must keep it off, as chat-backend does.
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "trace,tungstenite=debug",
            ))
            .with_writer(|| Capture)
            .with_ansi(false)
            .try_init();
    });
}

#[tokio::test]
async fn no_token_or_secret_is_ever_logged() {
    let service = TokenService::start().await;
    let backend = Backend::start(&service, service.authenticator().build().await.unwrap()).await;
    backend.feed_live().await;
    let (_, token) = service.user("mallory@example.com").await;
    let service_token = service.service_token().await;
    assert_eq!(backend.get("/api/agents/status", &token).await.status, 200);
    assert_eq!(
        backend
            .get("/api/agents/status", &service_token)
            .await
            .status,
        401
    );
    let forged = format!("{token}x");
    assert_eq!(backend.get("/api/usage", &forged).await.status, 401);
    assert_eq!(
        backend
            .get("/api/usage", "tgr_opaque-token-for-introspection")
            .await
            .status,
        401
    );
    // Over WebSocket: the token in the handshake's subprotocol list, and
    // again in an auth.refresh message.
    let mut socket = crate::websocket::connect(&backend, &token).await;
    let refreshed = crate::websocket::ask(
        &mut socket,
        serde_json::json!({"type": "auth.refresh", "access_token": token}),
    )
    .await;
    assert_eq!(refreshed["type"], "auth.refreshed", "{refreshed}");
    service
        .send(Method::POST, "/v1/auth/logout", &token, None)
        .await;
    until_status(&backend, "/api/usage", &token, 401).await;

    let logs = String::from_utf8_lossy(&captured().lock().unwrap()).into_owned();
    assert!(logs.contains("revocation feed: live"), "the capture works");
    for (what, secret) in [
        ("user token", token.as_str()),
        ("service token", service_token.as_str()),
        ("forged token", forged.as_str()),
        ("opaque token", "tgr_opaque-token-for-introspection"),
        ("client secret", service.client_secret.as_str()),
    ] {
        // The signature part alone is enough to leak a token.
        let tail = secret.rsplit('.').next().unwrap();
        assert!(!logs.contains(tail), "the {what} appears in the logs");
    }
}
