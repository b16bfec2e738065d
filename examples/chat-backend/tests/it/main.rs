//! chat-backend's integration tests: the real service on 127.0.0.1:0,
//! driven over HTTP, with tokens from the SDK's `TestIssuer` (real tokens,
//! real validation path).

mod connections;
mod load;
mod logs;
mod rest;
mod scaled;
mod ws;

use tokio::sync::oneshot;
use tollgate_client::ServiceTokenSource;
use tollgate_client::limits::{Plans, ToolGate};
use tollgate_client::testing::TestIssuer;
use tollgate_client::ws::{WsAuth, WsAuthBuilder};

/// A running backend trusting `issuer`.
pub struct Backend {
    pub url: String,
    pub issuer: TestIssuer,
    pub http: reqwest::Client,
    /// The backend's WebSocket authentication (its live connections).
    pub ws: WsAuth,
    /// Starts the backend's graceful shutdown (as SIGTERM does).
    shutdown: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub async fn start() -> Backend {
        Backend::start_with(|rules| rules).await
    }

    /// A backend whose WebSocket rules `rules` adjusts.
    pub async fn start_with(rules: impl FnOnce(WsAuthBuilder) -> WsAuthBuilder) -> Backend {
        Backend::start_custom(TestIssuer::new(), ToolGate::new(Plans::builtin()), rules).await
    }

    /// A backend trusting `issuer`, with `tools` as its tool gate.
    pub async fn start_custom(
        issuer: TestIssuer,
        tools: ToolGate,
        rules: impl FnOnce(WsAuthBuilder) -> WsAuthBuilder,
    ) -> Backend {
        let auth = issuer.authenticator_named("api", "chat-backend");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let tokens =
            ServiceTokenSource::from_test_issuer(&issuer, "chat-backend", "agents:read", 300);
        let ws: WsAuth = rules(WsAuth::builder(auth.clone())).build();
        let state =
            chat_backend::AppState::new(auth, tools, url.clone(), Some(tokens)).with_ws(ws.clone());
        let (shutdown, signal) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            chat_backend::serve(listener, state, async {
                let _ = signal.await;
            })
            .await
            .unwrap();
        });
        Backend {
            url,
            issuer,
            http: reqwest::Client::new(),
            ws,
            shutdown: Some(shutdown),
            server,
        }
    }

    /// Shuts the backend down gracefully and waits until it has stopped.
    pub async fn shut_down(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        (&mut self.server).await.unwrap();
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }
}

/// The JSON body and the `WWW-Authenticate` header of an answer.
pub async fn read(response: reqwest::Response) -> (u16, serde_json::Value, Option<String>) {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body, challenge)
}
