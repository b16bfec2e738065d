//! [`ServiceTokenSource`]: client-credentials tokens for calling other
//! services, cached and renewed before they expire.
//!
//! A token is renewed once three quarters of its lifetime have passed, or
//! 30 s before it expires if that comes first (but never before half of its
//! lifetime); concurrent callers
//! share one renewal. When renewal fails while the cached token is still
//! valid, the cached token is returned and the failure logged; once it has
//! expired, the failure is the caller's error.
//!
//! Credentials come from `TOLLGATE_CLIENT_ID` / `TOLLGATE_CLIENT_SECRET`
//! (aliases `SERVICE_ID` / `SERVICE_SECRET`) through the core configuration
//! builder ([`ServiceTokenSource::from_env`]), or are given explicitly.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use reqwest::header::HeaderValue;
use tokio::time::Instant;
use tollgate_core::Secret;
use tollgate_core::config::Config;
use tollgate_core::wire::TokenResponse;

use crate::AuthError;
use crate::http::{Credentials, Http, Timeouts};

/// A service token, ready to send. Its `Debug` never shows the token.
#[derive(Clone)]
pub struct ServiceToken {
    bearer: HeaderValue,
    expires_at: Instant,
}

impl fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceToken").finish_non_exhaustive()
    }
}

impl ServiceToken {
    /// The `Authorization` header value (`Bearer …`), marked sensitive.
    pub fn authorization(&self) -> HeaderValue {
        self.bearer.clone()
    }

    /// The raw access token. Send it; never log it.
    pub fn secret(&self) -> &str {
        self.bearer
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
    }

    /// Time left before the token expires.
    pub fn expires_in(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }
}

struct Cached {
    token: ServiceToken,
    renew_at: Instant,
}

/// Client-credentials tokens for this service. Cheap to clone.
#[derive(Clone)]
pub struct ServiceTokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Origin,
    client_id: String,
    current: ArcSwapOption<Cached>,
    renewal: tokio::sync::Mutex<()>,
}

/// Where tokens come from.
enum Origin {
    /// The token service's token endpoint (client_credentials grant).
    Http {
        http: Http,
        token_endpoint: String,
        credentials: Credentials,
        scope: Option<String>,
    },
    /// A `TestIssuer` (feature `testing`).
    #[cfg(feature = "testing")]
    Test {
        issuer: crate::testing::TestIssuer,
        scope: String,
        ttl: u64,
    },
}

impl fmt::Debug for ServiceTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceTokenSource")
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ServiceTokenSource`].
#[derive(Debug)]
pub struct ServiceTokenSourceBuilder {
    issuer: String,
    client_id: String,
    client_secret: Secret,
    scope: Option<String>,
    token_endpoint: Option<String>,
}

impl ServiceTokenSourceBuilder {
    /// Asks for these scopes (space-separated); default: every scope the
    /// client was given.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Uses this token endpoint instead of discovering it.
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// Discovers the token endpoint (unless given) and builds the source.
    /// No token is fetched until the first [`ServiceTokenSource::token`].
    pub async fn build(self) -> Result<ServiceTokenSource, AuthError> {
        let http = Http::new(Timeouts::default())?;
        let token_endpoint = match self.token_endpoint {
            Some(url) => url,
            None => {
                crate::discovery::discover(&http, &self.issuer)
                    .await?
                    .token_endpoint
            }
        };
        Ok(ServiceTokenSource::from_parts(
            http,
            token_endpoint,
            Credentials::new(&self.client_id, &self.client_secret)?,
            self.scope,
        ))
    }
}

impl ServiceTokenSource {
    /// A builder for the client `client_id` of the token service `issuer`.
    pub fn builder(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> ServiceTokenSourceBuilder {
        ServiceTokenSourceBuilder {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret,
            scope: None,
            token_endpoint: None,
        }
    }

    /// A source from a resolved configuration (`TOLLGATE_ISSUER`,
    /// `TOLLGATE_CLIENT_ID`, `TOLLGATE_CLIENT_SECRET`).
    pub async fn from_config(config: &Config) -> Result<ServiceTokenSource, AuthError> {
        let (Some(client_id), Some(secret)) = (&config.client_id, &config.client_secret) else {
            return Err(AuthError::Config(
                "service tokens need TOLLGATE_CLIENT_ID and TOLLGATE_CLIENT_SECRET".into(),
            ));
        };
        ServiceTokenSource::builder(config.issuer.clone(), client_id.clone(), secret.clone())
            .build()
            .await
    }

    /// A source configured from the process environment through the core
    /// configuration builder (see [`crate::Authenticator::config_from_env`]).
    pub async fn from_env() -> Result<ServiceTokenSource, AuthError> {
        let config = crate::Authenticator::config_from_env()?;
        ServiceTokenSource::from_config(&config).await
    }

    pub(crate) fn from_parts(
        http: Http,
        token_endpoint: String,
        credentials: Credentials,
        scope: Option<String>,
    ) -> ServiceTokenSource {
        let client_id = credentials.client_id().to_owned();
        ServiceTokenSource::from_origin(
            client_id,
            Origin::Http {
                http,
                token_endpoint,
                credentials,
                scope,
            },
        )
    }

    fn from_origin(client_id: String, origin: Origin) -> ServiceTokenSource {
        ServiceTokenSource {
            inner: Arc::new(Inner {
                origin,
                client_id,
                current: ArcSwapOption::empty(),
                renewal: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A source minting service tokens for `client_id` with a
    /// `TestIssuer` (lifetime `ttl` seconds), for a service's tests.
    #[cfg(feature = "testing")]
    pub fn from_test_issuer(
        issuer: &crate::testing::TestIssuer,
        client_id: &str,
        scope: &str,
        ttl: u64,
    ) -> ServiceTokenSource {
        ServiceTokenSource::from_origin(
            client_id.to_owned(),
            Origin::Test {
                issuer: issuer.clone(),
                scope: scope.to_owned(),
                ttl,
            },
        )
    }

    /// The client id tokens are issued to.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// A valid service token: the cached one, or a fresh one when the cached
    /// one is due for renewal.
    pub async fn token(&self) -> Result<ServiceToken, AuthError> {
        let now = Instant::now();
        if let Some(cached) = self.inner.current.load_full()
            && now < cached.renew_at
        {
            return Ok(cached.token.clone());
        }
        let _guard = self.inner.renewal.lock().await;
        // Another caller may have renewed while this one waited.
        let cached = self.inner.current.load_full();
        if let Some(cached) = &cached
            && Instant::now() < cached.renew_at
        {
            return Ok(cached.token.clone());
        }
        match self.fetch().await {
            Ok(fresh) => {
                let token = fresh.token.clone();
                self.inner.current.store(Some(Arc::new(fresh)));
                Ok(token)
            }
            Err(err) => match cached {
                Some(cached) if Instant::now() < cached.token.expires_at => {
                    tracing::warn!(error = %err, "service token renewal failed; using the current token until it expires");
                    Ok(cached.token.clone())
                }
                _ => Err(err),
            },
        }
    }

    /// Forgets the cached token (for example after a peer answered 401), so
    /// the next call fetches a new one.
    pub fn invalidate(&self) {
        self.inner.current.store(None);
    }

    async fn fetch(&self) -> Result<Cached, AuthError> {
        let started = Instant::now();
        let (access_token, expires_in) = match &self.inner.origin {
            Origin::Http {
                http,
                token_endpoint,
                credentials,
                scope,
            } => {
                let mut form = vec![("grant_type", "client_credentials")];
                if let Some(scope) = scope {
                    form.push(("scope", scope.as_str()));
                }
                let answer: TokenResponse = http
                    .post_form(token_endpoint, Some(credentials.header()), &form)
                    .await
                    .map_err(|failure| {
                        tracing::warn!(client_id = self.client_id(), failure = %failure.describe(), "client_credentials grant failed");
                        failure.into_auth_error()
                    })?;
                if !answer.token_type.eq_ignore_ascii_case("bearer") || answer.expires_in == 0 {
                    return Err(AuthError::Unavailable(
                        "the token endpoint's answer is not a bearer token",
                    ));
                }
                (answer.access_token, answer.expires_in)
            }
            #[cfg(feature = "testing")]
            Origin::Test { issuer, scope, ttl } => {
                let (token, _) = issuer
                    .service(&self.inner.client_id)
                    .scope(scope)
                    .ttl(*ttl)
                    .mint_with_claims()?;
                (token, *ttl)
            }
        };
        let mut bearer = HeaderValue::from_str(&format!("Bearer {access_token}"))
            .map_err(|_| AuthError::Unavailable("the token endpoint's token is not header-safe"))?;
        bearer.set_sensitive(true);
        let lifetime = Duration::from_secs(expires_in);
        let expires_at = started + lifetime;
        let renew_in = (lifetime * 3 / 4)
            .min(lifetime.saturating_sub(Duration::from_secs(30)))
            .max(lifetime / 2);
        Ok(Cached {
            token: ServiceToken { bearer, expires_at },
            renew_at: started + renew_in,
        })
    }
}
