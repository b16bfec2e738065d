//! Helpers shared by the integration tests: a server with an HTTP client,
//! and short ways to log in, get tokens and read answers.

use std::sync::{Arc, Mutex, OnceLock};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tollgate_server::testkit::{TestServer, TestServerBuilder};

/// Every log line of the test process (see `logs.rs`).
pub fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

#[derive(Clone)]
struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        captured_logs().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every log line at every level, once per process.
pub fn init_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(|| Capture)
            .with_ansi(false)
            .try_init();
    });
}

/// A server and a client for it.
pub struct Api {
    pub server: TestServer,
    pub http: reqwest::Client,
}

/// An answer: status, headers and the JSON body (`Null` when empty or not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub async fn from(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// Asserts the status and, for errors, the JSON error code.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Answer {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        if let Some(code) = code {
            assert_eq!(self.body["error"], code, "body: {}", self.text);
            assert!(
                self.body["error_description"].is_string(),
                "body: {}",
                self.text
            );
        }
        self
    }

    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no `{field}` in {}", self.text))
            .to_owned()
    }
}

impl Api {
    pub async fn start() -> Api {
        Api::with(TestServer::builder()).await
    }

    pub async fn with(builder: TestServerBuilder) -> Api {
        init_logs();
        Api {
            server: builder.start().await,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        Answer::from(request.send().await.unwrap()).await
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path)).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        Answer::from(request.send().await.unwrap()).await
    }

    pub async fn post_json(&self, path: &str, bearer: Option<&str>, body: &Value) -> Answer {
        self.send_json(reqwest::Method::POST, path, bearer, body)
            .await
    }

    pub async fn post_empty(&self, path: &str, bearer: Option<&str>) -> Answer {
        let mut request = self.http.post(self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        Answer::from(request.send().await.unwrap()).await
    }

    /// A form POST, with Basic client authentication when given.
    pub async fn post_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        params: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.http.post(self.url(path)).form(params);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        Answer::from(request.send().await.unwrap()).await
    }

    /// Logs in; asserts success; returns the token answer.
    pub async fn login(&self, email: &str, password: &str) -> Answer {
        let answer = self
            .post_json(
                "/v1/auth/login",
                None,
                &serde_json::json!({"email": email, "password": password}),
            )
            .await;
        answer.expect(200, None);
        answer
    }

    /// An access token of the bootstrap admin.
    pub async fn admin_token(&self) -> String {
        self.login(self.server.admin_email(), self.server.admin_password())
            .await
            .str("access_token")
    }

    /// Registers a user through the API and logs them in.
    pub async fn user(&self, email: &str) -> Answer {
        self.post_json(
            "/v1/auth/register",
            None,
            &serde_json::json!({"email": email, "password": PASSWORD}),
        )
        .await
        .expect(201, None);
        self.login(email, PASSWORD).await
    }

    /// A client with `scopes`, and its secret.
    pub async fn client(&self, id: &str, scopes: &[&str]) -> (String, String) {
        (id.to_owned(), self.server.create_client(id, scopes).await)
    }

    /// A service token from the client credentials grant.
    pub async fn service_token(&self, id: &str, secret: &str) -> String {
        self.post_form(
            "/oauth/token",
            Some((id, secret)),
            &[("grant_type", "client_credentials")],
        )
        .await
        .expect(200, None)
        .str("access_token")
    }

    /// Introspects `token` as a client with scope `introspect`.
    pub async fn introspect(&self, introspector: &(String, String), token: &str) -> Answer {
        self.post_form(
            "/oauth/introspect",
            Some((&introspector.0, &introspector.1)),
            &[("token", token)],
        )
        .await
    }

    /// Whether introspection calls `token` active (asserting a 200 answer).
    pub async fn is_active(&self, introspector: &(String, String), token: &str) -> bool {
        let answer = self.introspect(introspector, token).await;
        answer.expect(200, None);
        let active = answer.body["active"].as_bool().unwrap();
        if !active {
            assert_eq!(answer.text, r#"{"active":false}"#);
        }
        active
    }
}

/// The password every test user has.
pub const PASSWORD: &str = "correct horse battery staple";
