//! chat-backend's integration tests: the real service on 127.0.0.1:0,
//! driven over HTTP, with tokens from the SDK's `TestIssuer` (real tokens,
//! real validation path).

mod rest;

use tollgate_client::ServiceTokenSource;
use tollgate_client::limits::{Plans, ToolGate};
use tollgate_client::testing::TestIssuer;

/// A running backend trusting `issuer`.
pub struct Backend {
    pub url: String,
    pub issuer: TestIssuer,
    pub http: reqwest::Client,
}

impl Backend {
    pub async fn start() -> Backend {
        let issuer = TestIssuer::new();
        let auth = issuer.authenticator_named("api", "chat-backend");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let tokens =
            ServiceTokenSource::from_test_issuer(&issuer, "chat-backend", "agents:read", 300);
        let state = chat_backend::AppState::new(
            auth,
            ToolGate::new(Plans::builtin()),
            url.clone(),
            Some(tokens),
        );
        tokio::spawn(async move {
            axum::serve(listener, chat_backend::router(state))
                .await
                .unwrap();
        });
        Backend {
            url,
            issuer,
            http: reqwest::Client::new(),
        }
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
