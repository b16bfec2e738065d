//! [`Authenticator`]: the one object a service asks "who is this token?".
//!
//! How a token is judged, cheapest first:
//! 1. over 8 KiB: refused before anything else;
//! 2. a cache hit (the exact token validated before): the cached claims go
//!    through `Validator::recheck` (time, token type, revocation) and are
//!    returned — unless the feed is down under the `introspect` policy and
//!    the token service has not confirmed the token within the last second,
//!    in which case it is asked again (and if it cannot answer, the cached
//!    answer stands);
//! 3. a compact JWS with keys at hand: `Validator::validate`; a token naming
//!    an unknown key triggers one rate-limited JWKS refetch; under the
//!    `introspect` policy with the feed down, the token service must also
//!    confirm the token, and if it cannot be reached the token is refused
//!    (fail closed: nothing cached can answer for a token never seen);
//! 4. deployments without a JWKS or shared secret: introspection, whose
//!    claims then pass `Validator::check_introspected` — but only for values
//!    that can be a Tollgate token (`Validator::check_form`: size, three
//!    base64url segments, a strict header with `typ`, `kid` and an `alg`
//!    the token service signs with). Tollgate never issues opaque access
//!    tokens (CONTRACT §3: an access token is a compact JWS), so a value
//!    that is not a JWS is refused everywhere without a network call
//!    (`malformed` and the other token codes: 401 `invalid_token` at the
//!    HTTP edge), and an "inactive" answer is kept for 5 s by the token's
//!    SHA-256 (see `introspect`), so a caller cannot turn its requests into
//!    as many introspections (issue 15, item 6).
//!
//! Both feed-down policies end at the maximum staleness
//! (`TOLLGATE_FEED_MAX_STALENESS`, default 30 s after the feed was last
//! current): beyond it the revocations held are too old to trust, so every
//! token, cached or new, must have been confirmed by the token service
//! within the last second, and when it cannot be asked the token is
//! refused with `Unavailable` (503 `token_service_unavailable`). Live
//! WebSocket connections are woken then (and every half maximum staleness
//! while it lasts), and [`Authenticator::recheck`] answers `Unavailable`
//! for a principal the token service has not confirmed within the maximum
//! staleness, which closes them with a "try again later" code: a
//! reconnection is judged afresh (by introspection).
//!
//! Every judgement is made by `tollgate_core::Validator`; this module only
//! decides which of its entry points to call, with which keys and
//! revocations. Background tasks (feed follower, periodic JWKS refresh) end
//! when the last clone of the authenticator is dropped.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;
use tollgate_core::config::{Component, Config, ConfigBuilder, FeedDownPolicy};
use tollgate_core::fingerprint::secret_fingerprint;
use tollgate_core::keys::{Algorithm, KeyRing};
use tollgate_core::validate::DEFAULT_LEEWAY;
use tollgate_core::wire::{Fingerprint, FingerprintKey};
use tollgate_core::{
    Error as CoreError, Expect, MAX_TOKEN_BYTES, Secret, UnixTime, ValidationPolicy, Validator,
    VerifyingKeys,
};

use crate::breaker::{BreakerConfig, BreakerState};
use crate::cache::{Cached, ClaimsCache};
use crate::feed::{FeedConfig, FeedState, FeedStatus, Follower};
use crate::http::{Credentials, Http, Timeouts};
use crate::introspect::{Answer, Introspector};
use crate::jwks::{KeySource, KeyState, Refetch};
use crate::{AuthError, Principal, RevocationSet, bearer_token, clock};
use tollgate_core::cache::Entry;

/// How an authenticator checks signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Locally, with the token service's published keys (the default).
    Jwks,
    /// Locally, with the HS256 secret shared with the token service.
    SharedSecret,
    /// Not at all: every new token is introspected (HS256 deployments where
    /// the service does not hold the secret).
    Introspection,
    /// With a `TestIssuer`'s key, without HTTP (feature `testing`).
    Test,
}

impl Mode {
    /// `jwks`, `shared_secret`, `introspection` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Jwks => "jwks",
            Mode::SharedSecret => "shared_secret",
            Mode::Introspection => "introspection",
            Mode::Test => "test",
        }
    }
}

/// A snapshot of the authenticator's state, for a service's health or
/// readiness endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// How signatures are checked.
    pub mode: Mode,
    /// The revocation feed's state.
    pub feed: FeedState,
    /// Unix milliseconds since which the feed is in that state.
    pub feed_since_ms: u64,
    /// What happens while the feed is not live.
    pub feed_down_policy: FeedDownPolicy,
    /// Revocations held in memory.
    pub revocations: usize,
    /// The feed cursor of the newest revocation applied.
    pub cursor: u64,
    /// The introspection breaker (`None` without client credentials).
    pub breaker: Option<BreakerState>,
    /// Verifying keys held.
    pub keys: usize,
    /// Unix milliseconds of the last successful key fetch (0: none).
    pub keys_fetched_at_ms: u64,
    /// JWKS requests made so far.
    pub jwks_fetches: u64,
    /// Introspection requests sent so far (an answer from the short cache
    /// of "inactive" answers sends none).
    pub introspections: u64,
    /// Tokens in the validated-claims cache.
    pub cached_tokens: usize,
    /// Milliseconds since the feed was last current (0 while it is live).
    pub revocations_behind_ms: u64,
    /// Whether that is beyond the maximum staleness: no token is accepted
    /// then without the token service's confirmation.
    pub revocations_stale: bool,
}

impl Health {
    /// Whether revocations are current and the token service reachable:
    /// the feed is live (or disabled by design) and the breaker not open.
    pub fn is_healthy(&self) -> bool {
        matches!(self.feed, FeedState::Live | FeedState::Disabled)
            && self.breaker != Some(BreakerState::Open)
    }

    /// The snapshot as JSON: `{"status": "ok"|"degraded", "mode", "feed",
    /// "feed_since_ms", "feed_down_policy", "revocations", "cursor",
    /// "breaker", "keys", "keys_fetched_at_ms", "jwks_fetches",
    /// "introspections", "cached_tokens", "revocations_behind_ms", "revocations_stale"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "status": if self.is_healthy() { "ok" } else { "degraded" },
            "mode": self.mode.as_str(),
            "feed": self.feed.as_str(),
            "feed_since_ms": self.feed_since_ms,
            "feed_down_policy": match self.feed_down_policy {
                FeedDownPolicy::Introspect => "introspect",
                FeedDownPolicy::Local => "local",
            },
            "revocations": self.revocations,
            "cursor": self.cursor,
            "breaker": self.breaker.map(BreakerState::as_str),
            "keys": self.keys,
            "keys_fetched_at_ms": self.keys_fetched_at_ms,
            "jwks_fetches": self.jwks_fetches,
            "introspections": self.introspections,
            "cached_tokens": self.cached_tokens,
            "revocations_behind_ms": self.revocations_behind_ms,
            "revocations_stale": self.revocations_stale,
        })
    }
}

/// How far the revocations an authenticator holds can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Freshness {
    /// The feed is live (or there is none by design).
    Current,
    /// The feed is down, within the maximum staleness: the feed-down
    /// policy decides.
    Lagging,
    /// Beyond the maximum staleness: nothing is accepted that the token
    /// service has not just confirmed.
    Stale,
}

/// Why a token is refused when the revocations are too stale and the
/// token service cannot confirm it.
const STALE: &str =
    "the revocation feed has been down too long and the token service cannot confirm the token";

/// Validates tokens for one service. Cheap to clone; clones share
/// everything (keys, caches, feed).
#[derive(Clone, Debug)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    issuer: String,
    audiences: Vec<String>,
    service_name: String,
    mode: Mode,
    feed_down_policy: FeedDownPolicy,
    keys: Arc<ArcSwap<KeyState>>,
    key_source: Option<Arc<KeySource>>,
    introspector: Option<Introspector>,
    revocations: Arc<RevocationSet>,
    feed: Arc<FeedStatus>,
    cache: ClaimsCache,
    confirm_for_ms: u64,
    /// How far behind the revocations may be before nothing is trusted
    /// without the token service.
    max_staleness_ms: u64,
    secret_fingerprint: Option<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Builds an [`Authenticator`]. Every setting's doc gives its default.
#[derive(Debug)]
pub struct AuthenticatorBuilder {
    issuer: String,
    audiences: Vec<String>,
    client: Option<(String, Secret)>,
    service_name: String,
    feed_down_policy: FeedDownPolicy,
    leeway: u64,
    breaker: BreakerConfig,
    jwks_cooldown: Duration,
    jwks_refresh: Duration,
    cache_capacity: usize,
    confirm_for: Duration,
    max_staleness: Duration,
    shared_secret: Option<Secret>,
    previous_secret: Option<(Secret, UnixTime)>,
    feed: FeedConfig,
    startup_timeout: Duration,
    feed_wait: Duration,
    timeouts: Timeouts,
}

impl AuthenticatorBuilder {
    /// Also accepts tokens for `audience`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The service's client credentials (a client with scope `introspect`):
    /// needed for the revocation feed and introspection. Default: none
    /// (revocations are then not followed; a warning is logged).
    pub fn client_credentials(mut self, client_id: impl Into<String>, secret: Secret) -> Self {
        self.client = Some((client_id.into(), secret));
        self
    }

    /// The name the fingerprint reports; default `service`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// What to do while the feed is down; default
    /// [`FeedDownPolicy::Introspect`].
    pub fn feed_down_policy(mut self, policy: FeedDownPolicy) -> Self {
        self.feed_down_policy = policy;
        self
    }

    /// Clock-skew leeway in seconds; default 30.
    pub fn leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// The introspection breaker; default [`BreakerConfig::default`].
    pub fn breaker(mut self, config: BreakerConfig) -> Self {
        self.breaker = config;
        self
    }

    /// Least time between two JWKS fetches caused by unknown keys; default
    /// 5 s.
    pub fn jwks_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks_cooldown = cooldown;
        self
    }

    /// How often the JWKS is refreshed anyway; default 5 min.
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_refresh = interval;
        self
    }

    /// Most tokens kept in the validated-claims cache; default 10 000
    /// (0 disables the cache).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// While the feed is down under the `introspect` policy, how long the
    /// token service's confirmation of a cached token counts; default 1 s
    /// (the revocation promise).
    pub fn introspection_confirm_for(mut self, duration: Duration) -> Self {
        self.confirm_for = duration;
        self
    }

    /// How long after the feed was last current its revocations are
    /// trusted, under either feed-down policy
    /// (`TOLLGATE_FEED_MAX_STALENESS`); default 30 s. Beyond it every
    /// token must be confirmed by introspection (see
    /// [`AuthenticatorBuilder::introspection_confirm_for`]) and is refused
    /// with `token_service_unavailable` when the token service cannot
    /// answer.
    pub fn feed_max_staleness(mut self, max: Duration) -> Self {
        self.max_staleness = max;
        self
    }

    /// Validates HS256 tokens locally with the secret shared with the token
    /// service. Default: none.
    pub fn shared_secret(mut self, secret: Secret) -> Self {
        self.shared_secret = Some(secret);
        self
    }

    /// During an HS256 secret rotation: also accepts tokens signed with the
    /// previous shared secret until `until` (Unix seconds;
    /// `TOLLGATE_HMAC_PREVIOUS_SECRET`, `TOLLGATE_HMAC_PREVIOUS_UNTIL`).
    /// Default: none.
    pub fn previous_shared_secret(mut self, secret: Secret, until: UnixTime) -> Self {
        self.previous_secret = Some((secret, until));
        self
    }

    /// Reconnection delays of the feed (doubling from `min` up to `max`);
    /// default 100 ms to 5 s.
    pub fn feed_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.feed.backoff_min = min;
        self.feed.backoff_max = max.max(min);
        self
    }

    /// Silence after which the feed's stream counts as dead; default 45 s
    /// (the token service sends a keep-alive every 15 s).
    pub fn feed_idle_timeout(mut self, timeout: Duration) -> Self {
        self.feed.idle_timeout = timeout;
        self
    }

    /// How long [`AuthenticatorBuilder::build`] keeps retrying discovery
    /// while the token service is unreachable; default 10 s.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// How long `build` waits for the feed to catch up before returning
    /// (it returns either way); default 2 s.
    pub fn feed_wait(mut self, wait: Duration) -> Self {
        self.feed_wait = wait;
        self
    }

    /// Timeout of each request to the token service (not the stream);
    /// default 5 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.request = timeout;
        self
    }

    /// Discovers the token service, fetches its keys, starts the feed, and
    /// returns the authenticator. Fails when the configuration is invalid,
    /// the token service cannot be reached within the start-up timeout, or
    /// it is not the configured issuer.
    pub async fn build(self) -> Result<Authenticator, AuthError> {
        let mut policy = ValidationPolicy::new(self.issuer.clone(), self.audiences.clone())
            .map_err(|_| {
                AuthError::Config("the issuer and at least one audience are required".into())
            })?
            .with_leeway(self.leeway);
        let http = Http::new(self.timeouts)?;
        let metadata = discover_with_retry(&http, &self.issuer, self.startup_timeout).await?;
        let credentials = match &self.client {
            Some((id, secret)) => Some(Credentials::new(id, secret)?),
            None => None,
        };

        let (mode, validator, secret_fp) = match (&self.shared_secret, &metadata.jwks_uri) {
            (Some(secret), _) => {
                let fp = secret_fingerprint(secret);
                // The same ring as the token service's: the previous secret
                // verifies until its moment, never after.
                let ring = KeyRing::shared_secret(
                    secret,
                    self.previous_secret.as_ref().map(|(s, until)| (s, *until)),
                    clock::now(),
                )
                .and_then(|ring| ring.verifying_keys(clock::now()))
                .map_err(|err| AuthError::Config(format!("the shared secret is refused: {err}")))?;
                policy = policy.with_algorithms(&[Algorithm::HS256]);
                let validator = Validator::new(policy.clone(), ring);
                (Mode::SharedSecret, validator, Some(fp))
            }
            (None, Some(_)) => (
                Mode::Jwks,
                Validator::new(policy.clone(), VerifyingKeys::default()),
                None,
            ),
            (None, None) => {
                if credentials.is_none() {
                    return Err(AuthError::Config(
                        "the token service publishes no JWKS (HS256): give the service the shared secret \
                         (TOLLGATE_HMAC_SECRET) or client credentials to introspect with \
                         (TOLLGATE_CLIENT_ID, TOLLGATE_CLIENT_SECRET)"
                            .into(),
                    ));
                }
                // No JWKS: an HS256 deployment. What the token service says
                // it signs with is what `check_form` lets through to
                // introspection.
                let mut algorithms: Vec<Algorithm> = metadata
                    .token_signing_alg_values_supported
                    .iter()
                    .filter_map(|name| Algorithm::from_name(name))
                    .collect();
                if algorithms.is_empty() {
                    algorithms.push(Algorithm::HS256);
                }
                policy = policy.with_algorithms(&algorithms);
                (
                    Mode::Introspection,
                    Validator::new(policy.clone(), VerifyingKeys::default()),
                    None,
                )
            }
        };
        let keys = Arc::new(ArcSwap::from_pointee(KeyState {
            validator,
            generation: 0,
            fetched_at_ms: 0,
        }));

        let mut tasks = Vec::new();
        if mode == Mode::SharedSecret
            && let (Some(secret), Some((_, until))) = (&self.shared_secret, &self.previous_secret)
            && *until > clock::now()
        {
            tasks.push(tokio::spawn(end_secret_overlap(
                keys.clone(),
                policy.clone(),
                secret.clone(),
                *until,
            )));
        }
        let key_source = match (&metadata.jwks_uri, mode) {
            (Some(url), Mode::Jwks) => {
                let source = Arc::new(KeySource::new(
                    http.clone(),
                    url.clone(),
                    policy.clone(),
                    keys.clone(),
                    self.jwks_cooldown,
                ));
                source.fetch().await.map_err(|failure| {
                    AuthError::Discovery(format!("the key set at {url}: {}", failure.describe()))
                })?;
                tasks.push(tokio::spawn(refresh_keys(
                    source.clone(),
                    self.jwks_refresh,
                )));
                tasks.push(tokio::spawn(crate::jwks::follow_rotations(source.clone())));
                Some(source)
            }
            _ => None,
        };

        let revocations = Arc::new(RevocationSet::new());
        let introspector = credentials.as_ref().map(|credentials| {
            Introspector::new(
                http.clone(),
                metadata.introspection_endpoint.clone(),
                credentials.clone(),
                self.breaker,
            )
        });
        let feed = match credentials {
            Some(credentials) => {
                let status = Arc::new(FeedStatus::new(FeedState::Connecting));
                let page_url = metadata.tollgate_revocations_endpoint.clone();
                let follower = Follower {
                    http: http.clone(),
                    stream_url: format!("{}/stream", page_url.trim_end_matches('/')),
                    page_url,
                    credentials,
                    revocations: revocations.clone(),
                    status: status.clone(),
                    config: self.feed,
                    keys: key_source.clone(),
                };
                tasks.push(tokio::spawn(follower.run()));
                status
            }
            None => {
                tracing::warn!(
                    "no client credentials: revocations are not followed and tokens cannot be \
                     introspected; set TOLLGATE_CLIENT_ID and TOLLGATE_CLIENT_SECRET (a client with scope `introspect`)"
                );
                Arc::new(FeedStatus::new(FeedState::Disabled))
            }
        };
        let max_staleness_ms = millis(self.max_staleness);
        if feed.state() != FeedState::Disabled {
            tasks.push(tokio::spawn(wake_when_stale(
                feed.clone(),
                revocations.clone(),
                max_staleness_ms,
            )));
        }

        let authenticator = Authenticator {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audiences: self.audiences,
                service_name: self.service_name,
                mode,
                feed_down_policy: self.feed_down_policy,
                keys,
                key_source,
                introspector,
                revocations,
                feed,
                cache: ClaimsCache::new(self.cache_capacity),
                confirm_for_ms: millis(self.confirm_for),
                max_staleness_ms,
                secret_fingerprint: secret_fp,
                tasks,
            }),
        };
        authenticator.wait_for_feed(self.feed_wait).await;
        Ok(authenticator)
    }
}

async fn discover_with_retry(
    http: &Http,
    issuer: &str,
    timeout: Duration,
) -> Result<tollgate_core::wire::ServerMetadata, AuthError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(100);
    loop {
        match crate::discovery::discover_once(http, issuer).await {
            Ok(metadata) => return Ok(metadata),
            // Only an unreachable service is worth waiting for; a wrong
            // issuer or a bad URL will not fix itself.
            Err((_, true)) if tokio::time::Instant::now() + delay < deadline => {
                tracing::info!(%issuer, "the token service is not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err((err, _)) => return Err(err),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Wakes every holder of a token (live WebSocket connections) when the
/// revocations become too stale to trust, and again every half maximum
/// staleness while they stay so, so that each rechecks (and is closed,
/// see [`Authenticator::recheck`]) instead of trusting a token that may
/// have been revoked meanwhile. Sleeps on the feed's state otherwise.
async fn wake_when_stale(feed: Arc<FeedStatus>, revocations: Arc<RevocationSet>, max_ms: u64) {
    let max_ms = max_ms.max(1);
    loop {
        let changed = feed.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let wait = match feed.staleness_ms(clock::now_ms()) {
            None => None,
            // Every half bound while it lasts, so no holder confirmed by
            // the token service outlives its confirmation by more than half.
            Some(staleness) if staleness > max_ms => {
                revocations.recheck_all();
                Some(max_ms.div_ceil(2))
            }
            // Just past the bound.
            Some(staleness) => Some(max_ms - staleness + 1),
        };
        match wait {
            None => changed.await,
            Some(ms) => {
                tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                }
            }
        }
    }
}

/// At the end of an HS256 secret overlap, drops the previous secret.
async fn end_secret_overlap(
    keys: Arc<ArcSwap<KeyState>>,
    policy: ValidationPolicy,
    secret: Secret,
    until: UnixTime,
) {
    let wait = until.saturating_sub(clock::now());
    tokio::time::sleep(Duration::from_secs(wait)).await;
    while clock::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match KeyRing::shared_secret(&secret, None, until).and_then(|r| r.verifying_keys(until)) {
        Ok(current) => {
            let generation = keys.load().generation + 1;
            keys.store(Arc::new(KeyState {
                validator: Validator::new(policy, current),
                generation,
                fetched_at_ms: clock::now_ms(),
            }));
            tracing::info!("the previous shared secret's overlap ended; it verifies no more");
        }
        Err(err) => tracing::error!(reason = %err, "ending the shared secret overlap failed"),
    }
}

async fn refresh_keys(source: Arc<KeySource>, every: Duration) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_secs(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(failure) = source.fetch().await {
            tracing::warn!(failure = %failure.describe(), "periodic key refresh failed; keeping the current keys");
        }
    }
}

impl Authenticator {
    /// A builder for tokens of `issuer` (compared exactly) meant for
    /// `audience`.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> AuthenticatorBuilder {
        AuthenticatorBuilder {
            issuer: issuer.into(),
            audiences: vec![audience.into()],
            client: None,
            service_name: "service".to_owned(),
            feed_down_policy: FeedDownPolicy::Introspect,
            leeway: DEFAULT_LEEWAY,
            breaker: BreakerConfig::default(),
            jwks_cooldown: Duration::from_secs(5),
            jwks_refresh: Duration::from_secs(300),
            cache_capacity: 10_000,
            confirm_for: Duration::from_secs(1),
            max_staleness: Duration::from_secs(30),
            shared_secret: None,
            previous_secret: None,
            feed: FeedConfig::default(),
            startup_timeout: Duration::from_secs(10),
            feed_wait: Duration::from_secs(2),
            timeouts: Timeouts::default(),
        }
    }

    /// A builder from a resolved configuration: issuer, audiences, leeway,
    /// client credentials, the feed-down policy, and the shared secret when
    /// the signing algorithm is HS256.
    pub fn builder_from_config(config: &Config) -> AuthenticatorBuilder {
        let mut builder = Authenticator::builder(config.issuer.clone(), String::new());
        builder.audiences = config.audiences.clone();
        builder.leeway = config.leeway;
        builder.feed_down_policy = config.feed_down_policy;
        builder.max_staleness = Duration::from_secs(config.feed_max_staleness);
        if let (Some(id), Some(secret)) = (&config.client_id, &config.client_secret) {
            builder.client = Some((id.clone(), secret.clone()));
        }
        if config.signing_alg == Algorithm::HS256 {
            builder.shared_secret = config.hmac_secret.clone();
            builder.previous_secret = config.hmac_previous.clone();
        }
        builder
    }

    /// Resolves the SDK's configuration from the process environment
    /// through the core builder (`Component::Sdk`): `TOLLGATE_ISSUER`,
    /// `TOLLGATE_AUDIENCE`, `TOLLGATE_CLIENT_ID`/`TOLLGATE_CLIENT_SECRET`
    /// (aliases `SERVICE_ID`/`SERVICE_SECRET`), `TOLLGATE_LEEWAY`,
    /// `TOLLGATE_FEED_DOWN_POLICY`, … Warnings are logged; errors returned,
    /// one per line.
    pub fn config_from_env() -> Result<Config, AuthError> {
        // Variables that are not UTF-8 cannot be settings; skip them rather
        // than panic as `std::env::vars` would.
        let vars = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        let report = ConfigBuilder::new(Component::Sdk).env(vars).build();
        let (config, warnings) = report.into_config()?;
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        Ok(config)
    }

    /// An authenticator configured from the process environment (see
    /// [`Authenticator::config_from_env`]), reporting itself as `service`.
    pub async fn from_env(service_name: &str) -> Result<Authenticator, AuthError> {
        let config = Authenticator::config_from_env()?;
        Authenticator::builder_from_config(&config)
            .service_name(service_name)
            .build()
            .await
    }

    /// An authenticator that trusts `keys` and reads `revocations`, with no
    /// HTTP at all (the `TestIssuer`'s).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn offline(
        policy: ValidationPolicy,
        keys: VerifyingKeys,
        revocations: Arc<RevocationSet>,
        service_name: &str,
    ) -> Authenticator {
        Authenticator {
            inner: Arc::new(Inner {
                issuer: policy.issuer().to_owned(),
                audiences: policy.audiences().to_vec(),
                service_name: service_name.to_owned(),
                mode: Mode::Test,
                feed_down_policy: FeedDownPolicy::Local,
                keys: Arc::new(ArcSwap::from_pointee(KeyState {
                    validator: Validator::new(policy, keys),
                    generation: 0,
                    fetched_at_ms: 0,
                })),
                key_source: None,
                introspector: None,
                revocations,
                feed: Arc::new(FeedStatus::new(FeedState::Live)),
                cache: ClaimsCache::new(10_000),
                confirm_for_ms: 1000,
                max_staleness_ms: 30_000,
                secret_fingerprint: None,
                tasks: Vec::new(),
            }),
        }
    }

    async fn wait_for_feed(&self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while self.inner.feed.state() == FeedState::Connecting
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The issuer trusted.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The audiences accepted.
    pub fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }

    /// The revocations known (shared with the feed).
    pub fn revocations(&self) -> &RevocationSet {
        &self.inner.revocations
    }

    /// Validates `token` as `expect` (see the module docs for how).
    pub async fn authenticate(&self, token: &str, expect: Expect) -> Result<Principal, AuthError> {
        let result = self.judge(token, expect).await;
        if let Err(err) = &result {
            metrics::counter!("tollgate_client_rejections_total", "code" => err.code())
                .increment(1);
            tracing::debug!(token = %tollgate_core::token_fingerprint(token), code = err.code(), "token refused");
        }
        result
    }

    /// Whether the next judgement of `token` is expected from memory: it was
    /// judged before under the keys in force (a cache hit: well under a
    /// microsecond, unless the feed is stale and it must be rechecked). A
    /// host that hands judgements to another thread, or releases a lock
    /// around them (the Python extension's GIL), can skip that for these.
    pub fn is_cached(&self, token: &str) -> bool {
        self.inner
            .cache
            .get(token)
            .is_some_and(|entry| entry.generation == self.inner.keys.load().generation)
    }

    /// Judges again, in memory, a principal this authenticator accepted
    /// earlier: `Validator::recheck` (time, token type, revocation) against
    /// the revocations known now. For holders of a token that outlive one
    /// request (a WebSocket connection), together with
    /// [`Authenticator::revocation_changes`].
    ///
    /// When the revocations are beyond the maximum staleness (the feed has
    /// been down too long) and the token service has not confirmed this
    /// principal's token within that time either (when it was judged), the
    /// answer is [`AuthError::Unavailable`]: the token may have been
    /// revoked meanwhile and nothing in memory can say; the holder should
    /// make the client come back later (a WebSocket closes with 1013, "try
    /// again later"), when the token is judged afresh.
    pub fn recheck(&self, principal: &Principal, expect: Expect) -> Result<(), AuthError> {
        {
            let state = self.inner.keys.load();
            let revocations = self.inner.revocations.read();
            state
                .validator
                .recheck(principal.claims(), expect, clock::now(), &*revocations)
                .map_err(AuthError::Token)?;
        }
        let confirmed = principal.confirmed_ms();
        if self.freshness() == Freshness::Stale
            && (confirmed == 0
                || clock::now_ms().saturating_sub(confirmed) > self.inner.max_staleness_ms)
        {
            return Err(AuthError::Unavailable(STALE));
        }
        Ok(())
    }

    /// Wakes on every revocation this authenticator learns (from the feed,
    /// or a `TestIssuer`'s revocations); see [`RevocationSet::subscribe`].
    pub fn revocation_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.revocations.subscribe()
    }

    /// Validates a user's access token (a service token is refused).
    pub async fn authenticate_user(&self, token: &str) -> Result<Principal, AuthError> {
        self.authenticate(token, Expect::Access).await
    }

    /// Validates a service token (a user token is refused).
    pub async fn authenticate_service(&self, token: &str) -> Result<Principal, AuthError> {
        self.authenticate(token, Expect::Service).await
    }

    /// Validates the token of an `Authorization` header value; `None` (no
    /// header) is [`AuthError::MissingToken`].
    pub async fn authenticate_header(
        &self,
        authorization: Option<&[u8]>,
        expect: Expect,
    ) -> Result<Principal, AuthError> {
        let token = bearer_token(authorization.ok_or(AuthError::MissingToken)?)?;
        self.authenticate(token, expect).await
    }

    /// How far the revocations held can be trusted now.
    fn freshness(&self) -> Freshness {
        match self.inner.feed.staleness_ms(clock::now_ms()) {
            None => Freshness::Current,
            Some(ms) if ms > self.inner.max_staleness_ms => Freshness::Stale,
            Some(_) => Freshness::Lagging,
        }
    }

    /// Whether local judgements are current: the feed is live, there is no
    /// feed by design, or the policy says to trust local validation anyway
    /// (and the revocations are within the maximum staleness).
    fn local_is_current(&self) -> bool {
        match self.freshness() {
            Freshness::Current => true,
            Freshness::Lagging => self.inner.feed_down_policy == FeedDownPolicy::Local,
            Freshness::Stale => false,
        }
    }

    async fn judge(&self, token: &str, expect: Expect) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Token(CoreError::TooLarge));
        }
        let now = clock::now();
        match self.inner.cache.get(token) {
            // Judged under the keys in force: only time, type and revocation
            // can have changed. Judged under other keys (a key may have been
            // withdrawn since): judged again.
            Some(entry) if entry.generation == self.inner.keys.load().generation => {
                self.judge_cached(token, &entry, expect, now).await
            }
            _ => self.judge_new(token, expect, now).await,
        }
    }

    async fn judge_cached(
        &self,
        token: &str,
        entry: &Entry<Cached>,
        expect: Expect,
        now: UnixTime,
    ) -> Result<Principal, AuthError> {
        let rechecked = {
            let state = self.inner.keys.load();
            let revocations = self.inner.revocations.read();
            state
                .validator
                .recheck(entry.principal.claims(), expect, now, &*revocations)
        };
        if let Err(err) = rechecked {
            if matches!(err, CoreError::Expired | CoreError::Revoked) {
                self.inner.cache.remove(token);
            }
            return Err(AuthError::Token(err));
        }
        let cached = || entry.principal.clone().confirmed_at(entry.confirmed_ms());
        if self.local_is_current() {
            return Ok(cached());
        }
        let now_ms = clock::now_ms();
        if now_ms.saturating_sub(entry.confirmed_ms()) < self.inner.confirm_for_ms {
            return Ok(cached());
        }
        match self.introspect(token, expect, now).await {
            Ok(_) => {
                entry.confirm(now_ms);
                Ok(cached())
            }
            // The token service cannot be asked: the cached judgement
            // stands, as long as the revocations are not too stale for it.
            Err(AuthError::Unavailable(_) | AuthError::Refused { .. }) => {
                if self.freshness() == Freshness::Stale {
                    return Err(AuthError::Unavailable(STALE));
                }
                Ok(cached())
            }
            Err(err) => {
                self.inner.cache.remove(token);
                Err(err)
            }
        }
    }

    async fn judge_new(
        &self,
        token: &str,
        expect: Expect,
        now: UnixTime,
    ) -> Result<Principal, AuthError> {
        let (leeway, generation) = {
            let keys = self.inner.keys.load();
            (keys.validator.policy().leeway(), keys.generation)
        };
        if self.inner.mode == Mode::Introspection {
            // What cannot be a Tollgate token is not worth a question.
            self.inner
                .keys
                .load()
                .validator
                .check_form(token)
                .map_err(AuthError::Token)?;
            let principal = self.introspect(token, expect, now).await?;
            let confirmed_ms = clock::now_ms();
            self.inner.cache.insert(
                token,
                Cached::new(principal.clone(), confirmed_ms, generation),
                now,
                leeway,
            );
            return Ok(principal.confirmed_at(confirmed_ms));
        }
        let principal = Principal::new(self.validate_locally(token, expect, now).await?);
        let confirmed_ms = if self.local_is_current() {
            0
        } else {
            // Revocations may be missing: the token service must agree, and
            // when it cannot be asked the token is refused (fail closed).
            self.introspect(token, expect, now).await?;
            clock::now_ms()
        };
        self.inner.cache.insert(
            token,
            Cached::new(principal.clone(), confirmed_ms, generation),
            now,
            leeway,
        );
        Ok(principal.confirmed_at(confirmed_ms))
    }

    async fn validate_locally(
        &self,
        token: &str,
        expect: Expect,
        now: UnixTime,
    ) -> Result<tollgate_core::Claims, AuthError> {
        let (result, generation) = self.validate_with_current_keys(token, expect, now);
        match (result, &self.inner.key_source) {
            (Err(CoreError::UnknownKey), Some(source)) => {
                match source.refetch_after(generation).await {
                    Refetch::Updated => self
                        .validate_with_current_keys(token, expect, now)
                        .0
                        .map_err(AuthError::Token),
                    Refetch::Unchanged => Err(AuthError::Token(CoreError::UnknownKey)),
                    Refetch::Failed(failure) => {
                        tracing::warn!(failure = %failure.describe(), "a token names an unknown key and the key set cannot be fetched");
                        Err(AuthError::Unavailable("the token's key cannot be fetched"))
                    }
                }
            }
            (result, _) => result.map_err(AuthError::Token),
        }
    }

    fn validate_with_current_keys(
        &self,
        token: &str,
        expect: Expect,
        now: UnixTime,
    ) -> (Result<tollgate_core::Claims, CoreError>, u64) {
        let state = self.inner.keys.load();
        let revocations = self.inner.revocations.read();
        (
            state.validator.validate(token, expect, now, &*revocations),
            state.generation,
        )
    }

    /// Asks the token service, then checks the claims it vouches for with
    /// the validator.
    async fn introspect(
        &self,
        token: &str,
        expect: Expect,
        now: UnixTime,
    ) -> Result<Principal, AuthError> {
        let Some(introspector) = &self.inner.introspector else {
            return Err(AuthError::Unavailable(
                "the service has no client credentials to ask the token service with",
            ));
        };
        match introspector.introspect(token).await {
            Answer::Active(claims) => {
                {
                    let state = self.inner.keys.load();
                    let revocations = self.inner.revocations.read();
                    state
                        .validator
                        .check_introspected(&claims, expect, now, &*revocations)
                        .map_err(AuthError::Token)?;
                }
                Ok(Principal::new(*claims))
            }
            Answer::Inactive => Err(AuthError::Inactive),
            Answer::Unavailable(failure) => Err(failure.into_auth_error()),
        }
    }

    /// The authenticator's state (feed, breaker, keys, caches).
    pub fn health(&self) -> Health {
        let state = self.inner.keys.load();
        Health {
            mode: self.inner.mode,
            feed: self.inner.feed.state(),
            feed_since_ms: self.inner.feed.since_ms(),
            feed_down_policy: self.inner.feed_down_policy,
            revocations: self.inner.revocations.len(),
            cursor: self.inner.revocations.cursor(),
            breaker: self
                .inner
                .introspector
                .as_ref()
                .map(Introspector::breaker_state),
            keys: state.validator.keys().len(),
            keys_fetched_at_ms: state.fetched_at_ms,
            jwks_fetches: self.inner.key_source.as_ref().map_or(0, |s| s.fetches()),
            introspections: self
                .inner
                .introspector
                .as_ref()
                .map_or(0, Introspector::requests),
            cached_tokens: self.inner.cache.len(),
            revocations_behind_ms: self.inner.feed.staleness_ms(clock::now_ms()).unwrap_or(0),
            revocations_stale: self.freshness() == Freshness::Stale,
        }
    }

    /// How many stream sessions of the revocation feed went live (a
    /// reconnection makes one more).
    pub fn feed_sessions(&self) -> u64 {
        self.inner.feed.sessions()
    }

    /// What this service trusts, for `GET /v1/fingerprint` (CONTRACT §7):
    /// its name, the issuer, audiences, accepted algorithms, the keys it
    /// holds with their RFC 7638 thumbprints, the leeway, and the keyed
    /// fingerprint of a shared secret when it holds one.
    pub fn fingerprint(&self) -> Fingerprint {
        let state = self.inner.keys.load();
        let policy = state.validator.policy();
        let mut keys: Vec<FingerprintKey> = state
            .validator
            .keys()
            .iter()
            .filter_map(|key| {
                Some(FingerprintKey {
                    kid: key.kid().to_owned(),
                    alg: key.alg().as_str().to_owned(),
                    thumbprint: key.thumbprint().ok()?,
                    status: None,
                })
            })
            .collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        Fingerprint {
            service: self.inner.service_name.clone(),
            issuer: self.inner.issuer.clone(),
            audiences: self.inner.audiences.clone(),
            algorithms: policy
                .algorithms()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            keys,
            access_token_ttl: None,
            refresh_token_ttl: None,
            service_token_ttl: None,
            leeway: Some(policy.leeway()),
            secret_fingerprint: self.inner.secret_fingerprint.clone(),
            previous_secret_fingerprint: None,
            previous_secret_until: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use tollgate_core::claims::{Minter, UserGrant};
    use tollgate_core::keys::ManagedKey;

    use super::*;

    /// An authenticator whose feed has never been current (beyond any
    /// maximum staleness), and a token it accepted.
    fn stale() -> (Authenticator, Principal) {
        let key = ManagedKey::generate(Algorithm::EdDSA, clock::now()).unwrap();
        let minter = Minter::new(
            "https://issuer.test",
            vec!["api".into()],
            key.signing_key().unwrap(),
        )
        .unwrap();
        let policy = ValidationPolicy::new("https://issuer.test", vec!["api".into()]).unwrap();
        let keys = VerifyingKeys::new([key.verifying_key().unwrap()]);
        let grant = UserGrant {
            sub: "u1".into(),
            sid: "s1".into(),
            email: "u1@example.test".into(),
            roles: Vec::new(),
            plan: "free".into(),
            permissions: Vec::new(),
            client_id: "tollgate".into(),
            scope: String::new(),
        };
        let (_, claims) = minter.user(grant, clock::now(), 900).unwrap();
        let mut auth = Authenticator::offline(policy, keys, Arc::new(RevocationSet::new()), "svc");
        let inner = Arc::get_mut(&mut auth.inner).unwrap();
        inner.feed = Arc::new(FeedStatus::new(FeedState::Down));
        inner.max_staleness_ms = 30_000;
        (auth, Principal::new(claims))
    }

    #[test]
    fn beyond_the_maximum_staleness_recheck_trusts_only_a_recent_confirmation_issue_16() {
        let (auth, principal) = stale();
        assert!(auth.health().revocations_stale);
        // Judged locally (never confirmed): nothing can vouch for it now.
        assert_eq!(
            auth.recheck(&principal, Expect::Access),
            Err(AuthError::Unavailable(STALE))
        );
        // Confirmed by the token service just now (a reconnection's
        // handshake): good for another maximum staleness.
        let now_ms = clock::now_ms();
        let confirmed = principal.clone().confirmed_at(now_ms);
        assert_eq!(auth.recheck(&confirmed, Expect::Access), Ok(()));
        let long_ago = principal.clone().confirmed_at(now_ms - 31_000);
        assert_eq!(
            auth.recheck(&long_ago, Expect::Access),
            Err(AuthError::Unavailable(STALE))
        );
        // A revocation known in memory is still a revocation.
        auth.revocations().revoke_session("s1", clock::now() + 900);
        assert_eq!(
            auth.recheck(&confirmed, Expect::Access),
            Err(AuthError::Token(CoreError::Revoked))
        );
    }
}
