//! The SDK's HTTP client: one `reqwest::Client` per [`Http`], TLS through
//! rustls with the explicitly installed provider, no redirects, bounded
//! answers, and a three-way classification of failures that the breaker,
//! the feed and the callers act on.
//!
//! Client credentials are sent as `client_secret_basic` (RFC 6749 §2.3.1:
//! id and secret form-urlencoded, then base64). The header value is marked
//! sensitive so it never shows in a `Debug` output.

use std::time::Duration;

use base64::Engine;
use reqwest::header::{self, HeaderValue};
use serde::de::DeserializeOwned;
use tollgate_core::Secret;
use tollgate_core::wire::ErrorBody;

use crate::AuthError;

/// Largest JSON answer the SDK reads (metadata, JWKS, pages, introspection).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How a call to the token service failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No answer: connection refused, timeout, reset, or a 5xx (the service
    /// or a proxy in front of it is failing). Counts against the breaker.
    Unreachable(&'static str),
    /// A 4xx answer: the service is up and said no (wrong credentials, bad
    /// request). Not a breaker failure.
    Refused { status: u16, code: Option<String> },
    /// A 2xx answer that is not what the contract says (bad JSON, too big).
    Invalid(&'static str),
}

impl Failure {
    /// The caller-facing error for a failure during a request path.
    pub(crate) fn into_auth_error(self) -> AuthError {
        match self {
            Failure::Unreachable(why) | Failure::Invalid(why) => AuthError::Unavailable(why),
            Failure::Refused { status, code } => AuthError::refused(status, code.as_deref()),
        }
    }

    /// A short description for logs and start-up errors.
    pub(crate) fn describe(&self) -> String {
        match self {
            Failure::Unreachable(why) => format!("unreachable ({why})"),
            Failure::Refused { status, code } => format!(
                "refused with HTTP {status} ({})",
                code.as_deref().unwrap_or("no error code")
            ),
            Failure::Invalid(why) => format!("invalid answer ({why})"),
        }
    }
}

/// How long an idle pooled connection to the token service is kept: less
/// than the token service keeps it (`TOLLGATE_KEEP_ALIVE_TIMEOUT`, 75 s by
/// default) and than the 60 s load balancers in front commonly keep, so the
/// SDK never sends a request on a connection the other side has just closed
/// (reqwest's own default, 90 s, is longer than both).
pub(crate) const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Timeouts of the SDK's requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// Establishing a connection.
    pub connect: Duration,
    /// A whole request/answer (not used for the event stream).
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
        }
    }
}

/// A configured HTTP client.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
    timeouts: Timeouts,
}

impl Http {
    pub(crate) fn new(timeouts: Timeouts) -> Result<Http, AuthError> {
        crate::crypto::install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tollgate-client/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .build()
            .map_err(|err| {
                tracing::error!(error = %err, "the HTTP client cannot be built");
                AuthError::Discovery("the HTTP client cannot be built".into())
            })?;
        Ok(Http { client, timeouts })
    }

    /// The underlying client, for the event stream.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `GET url` and parse the JSON answer.
    pub(crate) async fn get_json<T: DeserializeOwned>(
        &self,
        url: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<T, Failure> {
        let mut request = self
            .client
            .get(url)
            .timeout(self.timeouts.request)
            .header(header::ACCEPT, "application/json");
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        read_json(request.send().await).await
    }

    /// `POST url` with a form body and parse the JSON answer.
    pub(crate) async fn post_form<T: DeserializeOwned>(
        &self,
        url: &str,
        auth: Option<&HeaderValue>,
        form: &[(&str, &str)],
    ) -> Result<T, Failure> {
        let mut request = self
            .client
            .post(url)
            .timeout(self.timeouts.request)
            .header(header::ACCEPT, "application/json")
            .form(form);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        read_json(request.send().await).await
    }

    /// `POST url` with a JSON body and parse the JSON answer.
    pub(crate) async fn post_json<B: serde::Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        url: &str,
        auth: Option<&HeaderValue>,
        body: &B,
    ) -> Result<T, Failure> {
        let mut request = self
            .client
            .post(url)
            .timeout(self.timeouts.request)
            .header(header::ACCEPT, "application/json")
            .json(body);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        read_json(request.send().await).await
    }
}

/// Classifies a send error.
pub(crate) fn send_failure(err: &reqwest::Error) -> Failure {
    if err.is_timeout() {
        Failure::Unreachable("timed out")
    } else if err.is_connect() {
        Failure::Unreachable("connection failed")
    } else {
        Failure::Unreachable("the request failed")
    }
}

/// Classifies a non-success status, reading the error body's code.
pub(crate) async fn status_failure(response: reqwest::Response) -> Failure {
    let status = response.status();
    if status.is_server_error() {
        return Failure::Unreachable("the token service answered with a server error");
    }
    let code = read_limited(response, 16 * 1024)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ErrorBody>(&bytes).ok())
        .map(|body| body.error);
    Failure::Refused {
        status: status.as_u16(),
        code,
    }
}

async fn read_json<T: DeserializeOwned>(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, Failure> {
    let response = sent.map_err(|err| send_failure(&err))?;
    if !response.status().is_success() {
        return Err(status_failure(response).await);
    }
    let bytes = read_limited(response, MAX_BODY_BYTES).await?;
    serde_json::from_slice(&bytes)
        .map_err(|_| Failure::Invalid("the answer is not the expected JSON"))
}

/// Reads a body of at most `limit` bytes.
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Failure> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(Failure::Invalid("the answer is too large"));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(Failure::Invalid("the answer is too large"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(err) => return Err(send_failure(&err)),
        }
    }
}

/// Client credentials of the service, ready to send.
#[derive(Clone)]
pub(crate) struct Credentials {
    client_id: String,
    basic: HeaderValue,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// `client_secret_basic` credentials. Fails when the secret is not text
    /// (client secrets Tollgate issues always are).
    pub(crate) fn new(client_id: &str, secret: &Secret) -> Result<Credentials, AuthError> {
        let secret = secret
            .expose_str()
            .ok_or_else(|| AuthError::Config("TOLLGATE_CLIENT_SECRET is not valid UTF-8".into()))?;
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(client_id), encode(secret));
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
        );
        let mut basic = HeaderValue::from_str(&value).map_err(|_| {
            AuthError::Config("the client credentials cannot be sent in a header".into())
        })?;
        basic.set_sensitive(true);
        Ok(Credentials {
            client_id: client_id.to_owned(),
            basic,
        })
    }

    /// The client id.
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The `Authorization` header value.
    pub(crate) fn header(&self) -> &HeaderValue {
        &self.basic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 9, item 3: the SDK lets a pooled connection go before the
    /// token service (its default keep-alive timeout) or a load balancer in
    /// front (60 s) would close it.
    #[test]
    fn the_pool_lets_idle_connections_go_before_the_server_does() {
        let server_keeps = tollgate_core::config::Config::development().keep_alive_timeout;
        assert!(POOL_IDLE_TIMEOUT < Duration::from_secs(server_keeps));
        assert!(POOL_IDLE_TIMEOUT < Duration::from_secs(60));
    }

    #[test]
    fn basic_credentials_are_form_encoded_then_base64() {
        let creds = Credentials::new("svc a", &Secret::from("s:e/c")).unwrap();
        let value = creds.header().to_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"svc+a:s%3Ae%2Fc");
        assert!(creds.header().is_sensitive());
        assert!(!format!("{creds:?}").contains("Basic"));
    }
}
