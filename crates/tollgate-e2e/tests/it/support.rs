//! The stack under test: a token service behind a cuttable proxy, a
//! chat-backend protected by the SDK, and short ways to drive them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tollgate_client::limits::{Plans, ToolGate};
use tollgate_client::{
    Authenticator, AuthenticatorBuilder, BreakerConfig, FeedState, ServiceTokenSource,
};
use tollgate_core::Secret;
use tollgate_core::config::Config;
use tollgate_server::testkit::TestServer;

pub const PASSWORD: &str = "a long enough test password 42";

/// A TCP proxy in front of the token service. [`Proxy::cut`] drops every
/// connection and refuses new ones (the service is unreachable);
/// [`Proxy::restore`] lets traffic through again.
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let upstream: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (up, upstream, connections) = (up.clone(), upstream.clone(), connections.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    let target = *upstream.lock().unwrap();
                    let (true, Some(target)) = (up.load(Ordering::SeqCst), target) else {
                        drop(inbound);
                        continue;
                    };
                    let handle = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(handle);
                }
            })
        };
        Proxy {
            addr,
            up,
            upstream,
            connections,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn forward_to(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = Some(upstream);
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

/// An HTTP answer: status and JSON body (`Null` when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub challenge: Option<String>,
}

impl Answer {
    pub async fn from(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            challenge,
        }
    }

    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field} in {}", self.body))
            .to_owned()
    }
}

/// The token service behind its proxy, with a client for the SDK.
pub struct TokenService {
    pub server: TestServer,
    pub proxy: Proxy,
    pub http: reqwest::Client,
    /// A client with scope `introspect` (what a backend runs as).
    pub client_id: String,
    pub client_secret: String,
}

impl TokenService {
    pub async fn start() -> TokenService {
        TokenService::start_with(|_| {}).await
    }

    /// A token service whose configuration `change` adjusts (the issuer is
    /// the proxy's URL whatever `change` does).
    pub async fn start_with(change: impl FnOnce(&mut Config) + Send + 'static) -> TokenService {
        crate::logs::capture();
        let proxy = Proxy::start().await;
        let issuer = proxy.url();
        let server = TestServer::builder()
            .configure(move |config| {
                change(config);
                config.issuer = issuer;
            })
            .start()
            .await;
        proxy.forward_to(server.addr());
        let client_secret = server.create_client("chat-backend", &["introspect"]).await;
        TokenService {
            server,
            proxy,
            http: reqwest::Client::new(),
            client_id: "chat-backend".to_owned(),
            client_secret,
        }
    }

    /// The issuer (the proxy's URL: every SDK request crosses the proxy).
    pub fn issuer(&self) -> String {
        self.proxy.url()
    }

    /// A URL of the token service, reached directly (tests drive it even
    /// while the proxy is cut).
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// An SDK builder for this service: audience `api`, the backend's
    /// client credentials, short breaker and reconnection times so outages
    /// play out quickly.
    pub fn authenticator(&self) -> AuthenticatorBuilder {
        Authenticator::builder(self.issuer(), "api")
            .client_credentials(
                self.client_id.clone(),
                Secret::from(self.client_secret.as_str()),
            )
            .service_name("chat-backend")
            .breaker(BreakerConfig {
                failure_threshold: 2,
                open_for: Duration::from_millis(300),
                half_open_probes: 1,
            })
            .feed_backoff(Duration::from_millis(50), Duration::from_millis(300))
            .jwks_cooldown(Duration::from_millis(500))
            .request_timeout(Duration::from_secs(2))
    }

    pub async fn post_json(&self, path: &str, bearer: Option<&str>, body: &Value) -> Answer {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        Answer::from(request.send().await.unwrap()).await
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<&Value>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(bearer);
        if let Some(body) = body {
            request = request.json(body);
        }
        Answer::from(request.send().await.unwrap()).await
    }

    /// Registers `email` and logs in: (user id, access token).
    pub async fn user(&self, email: &str) -> (String, String) {
        let registered = self
            .post_json(
                "/v1/auth/register",
                None,
                &json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(registered.status, 201, "{:?}", registered.body);
        (registered.str("user_id"), self.login(email, PASSWORD).await)
    }

    /// Logs in: the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let answer = self
            .post_json(
                "/v1/auth/login",
                None,
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.str("access_token")
    }

    pub async fn admin_token(&self) -> String {
        self.login(self.server.admin_email(), self.server.admin_password())
            .await
    }

    /// A client_credentials token of the backend's client.
    pub async fn service_token(&self) -> String {
        let answer = Answer::from(
            self.http
                .post(self.url("/oauth/token"))
                .basic_auth(&self.client_id, Some(&self.client_secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        answer.str("access_token")
    }
}

/// chat-backend on 127.0.0.1:0, protected by `auth`.
pub struct Backend {
    pub url: String,
    pub auth: Authenticator,
    http: reqwest::Client,
    task: JoinHandle<()>,
}

impl Backend {
    pub async fn start(service: &TokenService, auth: Authenticator) -> Backend {
        Backend::start_with_gate(service, auth, ToolGate::new(Plans::builtin())).await
    }

    /// chat-backend with this tool gate (a usage recorder, say).
    pub async fn start_with_gate(
        service: &TokenService,
        auth: Authenticator,
        gate: ToolGate,
    ) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let tokens = ServiceTokenSource::builder(
            service.issuer(),
            service.client_id.clone(),
            Secret::from(service.client_secret.as_str()),
        )
        .build()
        .await
        .unwrap();
        let state = chat_backend::AppState::new(auth.clone(), gate, url.clone(), Some(tokens));
        let task = tokio::spawn(async move {
            axum::serve(listener, chat_backend::router(state))
                .await
                .unwrap();
        });
        Backend {
            url,
            auth,
            http: reqwest::Client::new(),
            task,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        Answer::from(
            self.http
                .get(format!("{}{path}", self.url))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn http_post(&self, path: &str, token: &str) -> Answer {
        Answer::from(
            self.http
                .post(format!("{}{path}", self.url))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Waits until the feed is live (a guard against hanging, not a timing
    /// assertion).
    pub async fn feed_live(&self) {
        let auth = self.auth.clone();
        eventually("the feed is live", || {
            let auth = auth.clone();
            async move { auth.health().feed == FeedState::Live }
        })
        .await;
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `check` every 20 ms until it holds; fails after 10 s. The bound
/// only keeps a broken build from hanging: the promised latencies (one
/// second for revocations) are measured by the propagation benchmark, not
/// asserted here.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the backend answers `token` on `path` with `status`, and
/// returns that answer (see [`eventually`] for the bound).
pub async fn until_status(backend: &Backend, path: &str, token: &str, status: u16) -> Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = backend.get(path, token).await;
        if answer.status == status {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} never answered {status}; last: {} {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
