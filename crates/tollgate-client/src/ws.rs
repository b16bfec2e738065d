//! WebSocket authentication for axum services (feature `ws`, CONTRACT §6).
//!
//! [`WsAuth`] holds the rules (requirements, plans, allowed origins, where
//! a token may come from) and the live connections. [`AuthenticatedUpgrade`]
//! is the handshake extractor; [`Connection`] is what the service's handler
//! gets once the socket is open:
//!
//! ```rust,ignore
//! async fn ws(upgrade: AuthenticatedUpgrade) -> Response {
//!     upgrade.on_upgrade(|mut conn| async move {
//!         while let Some(message) = conn.recv().await {
//!             // `message` is a JSON object with a "type" other than auth.*
//!             let _ = conn.send(json!({"type": "echo", "got": message})).await;
//!         }
//!     })
//! }
//! ```
//!
//! **The handshake** (nothing is upgraded unless all of it passes): the
//! `Origin` of a browser must be allowed (403 `origin_not_allowed`; a
//! handshake without `Origin` is not from a browser and is not subject to
//! this rule); exactly one token, from `Authorization: Bearer`, a
//! `Sec-WebSocket-Protocol` entry `jwt.<t>` or `jwt-auth.<t>`, or the query
//! parameter when one is configured (none by default: URLs end up in logs);
//! the token is judged by the [`Authenticator`] (401 with an RFC 6750
//! challenge) and must meet the [`Requirements`] (403); the user's plan
//! must leave a connection free (403 `connection_limit`). The answer
//! selects the first offered protocol that carries no token, else the
//! token-carrying one (browsers fail a handshake whose answer names no
//! protocol they offered).
//!
//! **A live connection** is supervised beside the handler, in the same
//! task: before the token expires the client gets `{"type":
//! "auth.expiring", "expires_at": <unix>}` and may answer `{"type":
//! "auth.refresh", "access_token": "<new>"}` (judged like a handshake
//! token, same `sub` required) → `{"type": "auth.refreshed", "expires_at":
//! <unix>}`, or `{"type": "error", "code": …}` with the old expiry kept. At
//! expiry the connection closes with 4401 `token_expired`. When the
//! authenticator learns a revocation, the connections it can hit — those
//! holding that token (`jti`), of that session (`sid`), or of that user for
//! a user-wide revocation — recheck their current token in memory and close
//! with 4403 `token_revoked` if it is hit; no other connection wakes, and
//! no connection polls the token service (the index is `registry`). Messages over the maximum
//! ([`WsAuthBuilder::max_message_size`], 64 KiB by default) close with 1009,
//! text that is not JSON (or binary, or invalid UTF-8) with 1008, protocol
//! errors with 1002; [`WsAuth::shutdown`] closes every connection with 1001.
//! Valid JSON that is not an object with a string `type` gets
//! [`invalid_message`] and the connection stays (so does an `auth.refresh`
//! without a string `access_token`); the host answers types it does not
//! know the same way. Authentication outcomes never close with 1011.
//!
//! **Bounded resources.** Every limit is a setting of the core builder
//! (`TOLLGATE_WS_*`, applied with [`WsAuthBuilder::settings`]). An
//! instance holds at most [`WsAuthBuilder::max_connections`] connections
//! (10 000 by default); beyond it a handshake is refused with 503
//! `too_many_connections` before its token is judged. `auth.refresh` costs
//! a validation, so each connection may try
//! [`WsAuthBuilder::refresh_budget`] (5 by default; a burst of that many,
//! then one every `60 / n` s); beyond that the answer is `{"type":
//! "error", "code": "rate_limited", "retry_after_ms": N, "request":
//! "auth.refresh"}`, without a validation, and the connection is kept.
//! Messages to the client go through a bounded queue
//! ([`WsAuthBuilder::send_queue`], 64 by default), and each one must
//! reach the socket within the send timeout ([`WsAuthBuilder::send_timeout`],
//! default 10 s): a client that stops reading (or a queue that fills up)
//! is closed with 1008 `too_slow` — 1008 ("policy violation", RFC 6455
//! §7.4.1) rather than 1013 ("try again later", IANA registry), because
//! the fault is the client's, not a temporary condition of the server; a
//! client that reads nothing may only see the TCP connection end. Sending
//! never holds back the supervisor: expiry (4401), revocation (4403) and
//! shutdown (1001) close a connection on time whether or not the client
//! reads; the close frame gets [`CLOSE_GRACE`] to go out, then the socket
//! is dropped.
//!
//! Logs: nothing here logs a token, but tungstenite's `trace` level prints
//! every message (an `auth.refresh` carries a token); hosts keep the
//! `tungstenite` target at `debug` or below.
//!
//! **Invariant:** a connection slot (the per-user count) is held by a guard
//! that lives exactly as long as the connection's task, so it is released
//! when the socket ends, the handler returns or panics, or the task is
//! aborted.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tollgate_core::plans::{DEFAULT_PLAN, Plans};

use crate::limits::Bucket;
use crate::{AuthError, Authenticator, Principal, Requirements, bearer_token, clock};

mod connections;
mod hosted;
mod registry;
pub use connections::{CONNECTIONS_SCOPE, ConnectionInfo, connections_router};
pub use hosted::{Admission, Frame, FromClient, Gone, Handle, Incoming, ToClient};
pub use registry::Selection;
use registry::{Live, Registry};

#[cfg(feature = "redis")]
mod slots;
#[cfg(feature = "redis")]
pub use slots::RedisSlots;

/// The largest message (and frame) a connection accepts by default: 64 KiB
/// ([`WsAuthBuilder::max_message_size`], `TOLLGATE_WS_MAX_MESSAGE_SIZE`).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Close codes sent by the supervisor, with their reasons.
pub mod close {
    /// The server is shutting down (reason `going_away`).
    pub const GOING_AWAY: u16 = 1001;
    /// A WebSocket protocol error (reason `protocol_error`).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Text that is not JSON, invalid UTF-8, or a binary message (reason
    /// `invalid_message`). Valid JSON of an unknown shape does not close:
    /// it gets [`super::invalid_message`].
    pub const INVALID_MESSAGE: u16 = 1008;
    /// A message over 64 KiB (reason `message_too_big`).
    pub const TOO_BIG: u16 = 1009;
    /// The client does not read what it is sent: a message did not reach
    /// the socket within the send timeout, or the queue to it filled up
    /// (reason `too_slow`). 1008 ("policy violation", RFC 6455 §7.4.1),
    /// not 1013 ("try again later"): nothing on the server's side is
    /// temporary.
    pub const TOO_SLOW: u16 = 1008;
    /// The token expired without a refresh (reason `token_expired`).
    pub const TOKEN_EXPIRED: u16 = 4401;
    /// The token, its session or its user was revoked (reason
    /// `token_revoked`).
    pub const TOKEN_REVOKED: u16 = 4403;
    /// The revocation feed has been down beyond the maximum staleness, so
    /// the token can no longer be vouched for (reason
    /// `token_service_unavailable`): 1013, "try again later" (RFC 6455
    /// §7.4.2 registry); a reconnection is judged afresh.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// How many messages may wait between the supervisor and the handler in
/// each direction before the slower side holds the other back.
const QUEUE: usize = 32;

/// How long a closing connection has to send what is queued and its close
/// frame and to wait for the client's close frame; then the socket is
/// dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Messages queued for the client's socket by default
/// ([`WsAuthBuilder::send_queue`]); when the queue is full the client is
/// too slow and is closed with 1008.
pub const SEND_QUEUE: usize = 64;

/// Places in the write queue kept for the supervisor's own messages
/// (`auth.*` answers), at most: the handler's messages wait instead.
const RESERVED: usize = 8;

/// `auth.refresh` attempts one connection may make per minute by default
/// (also the burst; [`WsAuthBuilder::refresh_budget`]). Each costs a
/// validation; a client refreshes once per token.
pub const MAX_REFRESHES_PER_MINUTE: u32 = 5;

/// Connections one instance holds by default
/// ([`WsAuthBuilder::max_connections`]).
pub const MAX_CONNECTIONS: usize = 10_000;

/// Default [`WsAuthBuilder::send_timeout`].
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// WebSocket authentication for one service. Cheap to clone; clones share
/// the connection counts and the shutdown signal. Build with
/// [`WsAuth::builder`]; the router's state must give it (`WsAuth:
/// FromRef<S>`) to [`AuthenticatedUpgrade`].
#[derive(Clone, Debug)]
pub struct WsAuth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    authenticator: Authenticator,
    requirements: Requirements,
    plans: Plans,
    origins: Origins,
    query_parameter: Option<String>,
    expiry_notice: Duration,
    send_timeout: Duration,
    max_message_size: usize,
    send_queue: usize,
    refresh_budget: u32,
    max_connections: usize,
    /// Per-user counts shared with other instances, when configured.
    #[cfg(feature = "redis")]
    shared_slots: Option<RedisSlots>,
    /// The open connections (and accepted handshakes), indexed; a listener
    /// of the authenticator's revocations.
    registry: Arc<Registry>,
}

#[derive(Debug, Clone)]
enum Origins {
    /// Exactly these (lower-cased, without a trailing `/`).
    Only(Vec<String>),
    /// Any origin (development only; see
    /// [`WsAuthBuilder::dangerous_allow_any_origin`]).
    Any,
}

/// Builds a [`WsAuth`]. Every setting's doc gives its default.
#[derive(Debug)]
#[must_use]
pub struct WsAuthBuilder {
    authenticator: Authenticator,
    requirements: Requirements,
    plans: Plans,
    origins: Origins,
    query_parameter: Option<String>,
    expiry_notice: Duration,
    send_timeout: Duration,
    max_message_size: usize,
    send_queue: usize,
    refresh_budget: u32,
    max_connections: usize,
    #[cfg(feature = "redis")]
    shared_slots: Option<RedisSlots>,
}

impl WsAuth {
    /// A builder judging tokens with `authenticator`.
    pub fn builder(authenticator: Authenticator) -> WsAuthBuilder {
        WsAuthBuilder {
            authenticator,
            requirements: Requirements::user(),
            plans: Plans::builtin(),
            origins: Origins::Only(Vec::new()),
            query_parameter: None,
            expiry_notice: Duration::from_secs(60),
            send_timeout: SEND_TIMEOUT,
            max_message_size: MAX_MESSAGE_BYTES,
            send_queue: SEND_QUEUE,
            refresh_budget: MAX_REFRESHES_PER_MINUTE,
            max_connections: MAX_CONNECTIONS,
            #[cfg(feature = "redis")]
            shared_slots: None,
        }
    }

    /// The authenticator that judges the tokens.
    pub fn authenticator(&self) -> &Authenticator {
        &self.inner.authenticator
    }

    /// Connections open now.
    pub fn live_connections(&self) -> usize {
        self.inner.registry.open()
    }

    /// The live connections `selection` names: user, session, plan, when
    /// each opened and when its current token expires.
    pub fn connections(&self, selection: &Selection) -> Vec<ConnectionInfo> {
        self.inner
            .registry
            .select(selection)
            .iter()
            .map(|live| ConnectionInfo::of(&live.principal(), live.opened_at()))
            .collect()
    }

    /// Closes the connections `selection` names with 4403
    /// (`token_revoked`), as an operator's order; how many were ordered
    /// closed (a connection already closing is not counted twice).
    pub fn close_connections(&self, selection: &Selection) -> usize {
        self.inner
            .registry
            .select(selection)
            .iter()
            .filter(|live| live.order_close(close::TOKEN_REVOKED))
            .count()
    }

    /// How many times a connection was woken by a revocation that could hit
    /// it and rechecked its token, since start (also the counter
    /// `tollgate_client_ws_rechecks_total`). Revocations of tokens, sessions
    /// and users no connection holds add nothing.
    pub fn rechecks(&self) -> u64 {
        self.inner.registry.rechecks()
    }

    /// Closes every connection with 1001 (`going_away`) and waits until
    /// all have ended, at most `grace`. Handshakes that arrive afterwards
    /// are closed the same way at once. Call it from the host's graceful
    /// shutdown, before the server stops: axum's graceful shutdown does not
    /// wait for upgraded connections.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.registry.shut_down();
        let _ = tokio::time::timeout(grace, self.inner.registry.until_empty()).await;
    }

    /// Takes a connection slot for `principal`, within their plan's limit:
    /// across instances when the slots are shared and Redis answers, else
    /// in this process.
    async fn take_slot(&self, principal: &Principal) -> Result<Slot, AuthError> {
        let plans = &self.inner.plans;
        let limit = principal
            .plan()
            .and_then(|name| plans.find(name))
            .or_else(|| plans.find(DEFAULT_PLAN))
            .map_or(0, |plan| plan.ws_connections);
        if limit == 0 {
            return Err(AuthError::PermissionDenied(
                "a plan with WebSocket connections".into(),
            ));
        }
        #[cfg(feature = "redis")]
        let mut lease = None;
        #[cfg(feature = "redis")]
        if let Some(slots) = &self.inner.shared_slots {
            match slots.acquire(principal.subject(), limit).await {
                slots::Admission::Leased(id) => lease = Some(id),
                slots::Admission::Refused => return Err(AuthError::ConnectionLimit { limit }),
                slots::Admission::Unavailable => {}
            }
        }
        #[cfg(feature = "redis")]
        let decided = lease.is_some();
        #[cfg(not(feature = "redis"))]
        let decided = false;
        // With a lease, Redis counted every instance's connections.
        let admitted = self.inner.registry.admit(
            principal.clone(),
            (!decided).then_some(limit),
            self.inner.max_connections,
        );
        #[cfg(feature = "redis")]
        if let (Err(_), Some(id), Some(slots)) = (&admitted, &lease, &self.inner.shared_slots) {
            slots.release(id);
        }
        let live = admitted?;
        #[cfg(feature = "redis")]
        if let (None, Some(slots)) = (&lease, &self.inner.shared_slots) {
            lease = slots.register(principal.subject());
        }
        Ok(Slot {
            ws: self.clone(),
            live,
            #[cfg(feature = "redis")]
            lease,
        })
    }

    /// Whether a browser's `Origin` may connect; no `Origin`, not a browser.
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let mut values = headers.get_all(header::ORIGIN).iter();
        let (Some(origin), None) = (values.next(), values.next()) else {
            return if headers.contains_key(header::ORIGIN) {
                Err(AuthError::OriginNotAllowed)
            } else {
                Ok(())
            };
        };
        let allowed = match &self.inner.origins {
            Origins::Any => true,
            Origins::Only(list) => origin
                .to_str()
                .map(normalize_origin)
                .is_ok_and(|origin| list.contains(&origin)),
        };
        if allowed {
            Ok(())
        } else {
            Err(AuthError::OriginNotAllowed)
        }
    }

    /// The handshake's token and the protocol to select in the answer.
    fn find_token<'a>(
        &self,
        parts: &'a Parts,
        protocols: &'a [&'a str],
    ) -> Result<(&'a str, Option<&'a str>), AuthError> {
        let mut found: Option<&str> = None;
        let mut add = |token: &'a str| {
            if found.replace(token).is_some() {
                // Two tokens: which one would the handler think it got?
                Err(AuthError::InvalidAuthorization)
            } else {
                Ok(())
            }
        };
        if let Some(value) = crate::axum::authorization(&parts.headers)? {
            add(bearer_token(value)?)?;
        }
        let mut token_protocol = None;
        for protocol in protocols {
            let token = protocol
                .strip_prefix("jwt.")
                .or_else(|| protocol.strip_prefix("jwt-auth."));
            if let Some(token) = token {
                if token.is_empty() {
                    return Err(AuthError::InvalidAuthorization);
                }
                add(token)?;
                token_protocol = Some(*protocol);
            }
        }
        if let (Some(name), Some(query)) = (&self.inner.query_parameter, parts.uri.query()) {
            let mut values = query.split('&').filter_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key == name).then_some(value)
            });
            if let Some(value) = values.next() {
                // JWTs and opaque tokens need no percent-decoding; a value
                // that would is not a token.
                if value.is_empty() || values.next().is_some() || value.contains('%') {
                    return Err(AuthError::InvalidAuthorization);
                }
                add(value)?;
            }
        }
        let token = found.ok_or(AuthError::MissingToken)?;
        let selected = protocols
            .iter()
            .copied()
            .find(|p| !p.starts_with("jwt.") && !p.starts_with("jwt-auth."))
            .or(token_protocol);
        Ok((token, selected))
    }

    async fn handshake(
        &self,
        parts: &Parts,
    ) -> Result<(Principal, Option<HeaderValue>), AuthError> {
        // Full: refused before the token costs a validation (`admit`
        // decides for good, under the registry's lock).
        self.inner.registry.check_room(self.inner.max_connections)?;
        self.check_origin(&parts.headers)?;
        let protocols = offered_protocols(&parts.headers)?;
        let (token, selected) = self.find_token(parts, &protocols)?;
        let requirements = &self.inner.requirements;
        let principal = self
            .inner
            .authenticator
            .authenticate(token, requirements.expect())
            .await?;
        requirements.check(&principal)?;
        let selected = selected
            .map(HeaderValue::from_str)
            .transpose()
            .map_err(|_| AuthError::InvalidAuthorization)?;
        Ok((principal, selected))
    }
}

impl WsAuthBuilder {
    /// What a connection's token must meet, at the handshake and at every
    /// refresh; default [`Requirements::user`].
    pub fn requirements(mut self, requirements: Requirements) -> Self {
        self.requirements = requirements;
        self
    }

    /// The plans giving each user's connection limit; default the
    /// built-in plans.
    pub fn plans(mut self, plans: Plans) -> Self {
        self.plans = plans;
        self
    }

    /// Also allows browsers from `origin` (`https://app.example.com`,
    /// compared without regard to case or a trailing `/`). Default: no
    /// browser origin; handshakes without `Origin` are always allowed.
    pub fn allow_origin(mut self, origin: &str) -> Self {
        if let Origins::Only(list) = &mut self.origins {
            list.push(normalize_origin(origin));
        }
        self
    }

    /// Allows browsers from any origin, which lets any web page a user
    /// visits open connections with the user's credentials. For
    /// development only; the host decides (chat-backend allows it only when
    /// `TOLLGATE_ENV=development`).
    pub fn dangerous_allow_any_origin(mut self) -> Self {
        self.origins = Origins::Any;
        self
    }

    /// The origin rule of a service's setting (chat-backend's
    /// `CHAT_BACKEND_ALLOWED_ORIGINS`, CONTRACT §6): these origins (blank
    /// entries ignored); `*` for any origin, which only development may
    /// ask for; and no list at all in development means any origin. Outside
    /// development, `*` is an `invalid_config` error.
    pub fn allowed_origins(
        mut self,
        origins: &[&str],
        development: bool,
    ) -> Result<Self, AuthError> {
        let origins: Vec<&str> = origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
            .collect();
        if origins.contains(&"*") || (origins.is_empty() && development) {
            if !development {
                return Err(AuthError::Config(
                    "`*` (any origin) is for development only: list the origins allowed to open WebSockets".into(),
                ));
            }
            tracing::warn!("WebSockets accept any browser origin (development)");
            self = self.dangerous_allow_any_origin();
        }
        for origin in origins.iter().filter(|o| **o != "*") {
            self = self.allow_origin(origin);
        }
        Ok(self)
    }

    /// Also accepts the token as the query parameter `name`
    /// (`/ws?access_token=…`). Default: off, as URLs end up in logs and
    /// browser history; prefer the `jwt.<t>` protocol entry.
    pub fn query_parameter(mut self, name: &str) -> Self {
        self.query_parameter = Some(name.to_owned());
        self
    }

    /// How long before expiry `auth.expiring` is sent; default 60 s, and
    /// never more than half the token's lifetime (so short-lived tokens get
    /// their notice half-way).
    pub fn expiry_notice(mut self, lead: Duration) -> Self {
        self.expiry_notice = lead;
        self
    }

    /// How long one message may take to reach the client's socket before
    /// the client is deemed not to read and is closed with 1008
    /// (`too_slow`); default 10 s. (Expiry, revocation and shutdown closes
    /// never wait for it.)
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// The largest message (and frame) accepted from a client; one byte
    /// more closes the connection with 1009 (`message_too_big`). Default
    /// [`MAX_MESSAGE_BYTES`] (64 KiB); at least 1 KiB.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes.max(1024);
        self
    }

    /// How many messages may wait for the client's socket; a client that
    /// lets the queue fill up is closed with 1008 (`too_slow`). Default
    /// [`SEND_QUEUE`] (64); at least 1.
    pub fn send_queue(mut self, messages: usize) -> Self {
        self.send_queue = messages.max(1);
        self
    }

    /// `auth.refresh` attempts one connection may make per minute (also
    /// the burst); default [`MAX_REFRESHES_PER_MINUTE`] (5); at least 1.
    pub fn refresh_budget(mut self, per_minute: u32) -> Self {
        self.refresh_budget = per_minute.max(1);
        self
    }

    /// The most connections this instance holds (accepted handshakes
    /// included); beyond it a handshake is refused with 503
    /// `too_many_connections` before any upgrade (and before its token is
    /// judged). Default [`MAX_CONNECTIONS`] (10 000).
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// The WebSocket limits of a resolved configuration (the core
    /// builder's `TOLLGATE_WS_*` settings): [`Self::max_message_size`],
    /// [`Self::send_queue`], [`Self::send_timeout`],
    /// [`Self::refresh_budget`], [`Self::expiry_notice`] and
    /// [`Self::max_connections`].
    pub fn settings(self, config: &tollgate_core::config::Config) -> Self {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        self.max_message_size(size(config.ws_max_message_size))
            .send_queue(size(config.ws_send_queue))
            .send_timeout(Duration::from_secs(config.ws_send_timeout))
            .refresh_budget(u32::try_from(config.ws_refresh_budget).unwrap_or(u32::MAX))
            .expiry_notice(Duration::from_secs(config.ws_expiry_notice))
            .max_connections(size(config.ws_max_connections))
    }

    /// Counts each user's connections across every instance sharing
    /// `slots`' Redis and prefix (features `ws` and `redis`); default: this
    /// process only. While Redis cannot be used, this process's own count
    /// decides (see [`RedisSlots`]).
    #[cfg(feature = "redis")]
    pub fn shared_slots(mut self, slots: RedisSlots) -> Self {
        self.shared_slots = Some(slots);
        self
    }

    /// The finished [`WsAuth`].
    pub fn build(self) -> WsAuth {
        let registry = Arc::new(Registry::new());
        let listener: Arc<dyn crate::RevocationListener> = registry.clone();
        self.authenticator
            .revocations()
            .listen(Arc::downgrade(&listener));
        WsAuth {
            inner: Arc::new(Inner {
                authenticator: self.authenticator,
                requirements: self.requirements,
                plans: self.plans,
                origins: self.origins,
                query_parameter: self.query_parameter,
                expiry_notice: self.expiry_notice,
                send_timeout: self.send_timeout,
                max_message_size: self.max_message_size,
                send_queue: self.send_queue,
                refresh_budget: self.refresh_budget,
                max_connections: self.max_connections,
                #[cfg(feature = "redis")]
                shared_slots: self.shared_slots,
                registry,
            }),
        }
    }
}

/// One connection's place in the registry (and so in the per-user
/// count); released on drop.
#[derive(Debug)]
struct Slot {
    ws: WsAuth,
    live: Arc<Live>,
    /// The connection's lease in Redis, when the slots are shared.
    #[cfg(feature = "redis")]
    lease: Option<String>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.ws.inner.registry.remove(&self.live);
        #[cfg(feature = "redis")]
        if let (Some(id), Some(slots)) = (&self.lease, &self.ws.inner.shared_slots) {
            slots.release(id);
        }
    }
}

/// An authenticated WebSocket handshake: the token was good, the origin
/// allowed and a connection slot taken. Finish with
/// [`AuthenticatedUpgrade::on_upgrade`]. A refused handshake answers with
/// the [`AuthError`]'s HTTP mapping (401/403/503) and never upgrades; a
/// request that is not a WebSocket handshake gets axum's refusal.
#[derive(Debug)]
pub struct AuthenticatedUpgrade {
    upgrade: WebSocketUpgrade,
    principal: Principal,
    slot: Slot,
}

impl<S> FromRequestParts<S> for AuthenticatedUpgrade
where
    WsAuth: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let mut upgrade = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ws = WsAuth::from_ref(state);
        let refuse = |err: AuthError| {
            tracing::debug!(code = err.code(), "WebSocket handshake refused");
            err.into_response()
        };
        let (principal, selected) = ws.handshake(parts).await.map_err(refuse)?;
        let slot = ws.take_slot(&principal).await.map_err(refuse)?;
        // Indexed after it was judged: a revocation in between found
        // nothing to wake, so look once more (see `registry`).
        ws.inner
            .authenticator
            .recheck(&principal, ws.inner.requirements.expect())
            .map_err(refuse)?;
        if let Some(protocol) = selected {
            upgrade.set_selected_protocol(protocol);
        }
        Ok(AuthenticatedUpgrade {
            upgrade: upgrade
                .max_message_size(ws.inner.max_message_size)
                .max_frame_size(ws.inner.max_message_size)
                // tungstenite's 128 KiB read buffer per connection is most
                // of an idle connection's memory; chat frames are small and
                // the buffer grows for a large one.
                .read_buffer_size(4096)
                .write_buffer_size(0),
            principal,
            slot,
        })
    }
}

impl AuthenticatedUpgrade {
    /// Who connects.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The handshake's answer: upgrades, then runs `handler` with the
    /// [`Connection`] while the supervisor (expiry, refresh, revocation,
    /// limits, shutdown) runs beside it. The connection ends when either
    /// side does: the supervisor closing makes [`Connection::recv`] return
    /// `None`; the handler returning closes the socket with 1000.
    pub fn on_upgrade<F, Fut>(self, handler: F) -> Response
    where
        F: FnOnce(Connection) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let AuthenticatedUpgrade {
            upgrade,
            principal,
            slot,
        } = self;
        drop(principal);
        upgrade.on_upgrade(move |socket| async move {
            let (connection, supervisor, incoming) = supervised(slot);
            // One task for both: a panic or an abort ends them together
            // and drops the slot.
            let (sink, stream) = socket.split();
            tokio::join!(supervisor.run(sink, stream, incoming), handler(connection));
        })
    }
}

/// A new connection's two sides: the handler's [`Connection`], and the
/// [`Supervisor`] with the sender of the handler's incoming messages.
fn supervised(slot: Slot) -> (Connection, Supervisor, mpsc::Sender<Value>) {
    let (incoming_tx, incoming) = mpsc::channel(QUEUE);
    let (outgoing, outgoing_rx) = mpsc::channel(QUEUE);
    let connection = Connection {
        incoming,
        outgoing,
        live: slot.live.clone(),
    };
    let supervisor = Supervisor {
        outgoing: outgoing_rx,
        refreshes: Bucket::full(slot.ws.inner.refresh_budget, Instant::now()),
        slot,
    };
    (connection, supervisor, incoming_tx)
}

/// The handler's side of a live connection: JSON messages in and out (the
/// supervisor answers `auth.*` messages itself), and the current principal.
#[derive(Debug)]
pub struct Connection {
    incoming: mpsc::Receiver<Value>,
    outgoing: mpsc::Sender<Value>,
    live: Arc<Live>,
}

/// The connection is closed; nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the WebSocket connection is closed")]
pub struct Closed;

impl Connection {
    /// The next message from the client: a JSON object whose `type` is a
    /// string (not `auth.refresh`). `None` once the connection is closed.
    /// Answer a `type` the service does not know, or members of the wrong
    /// shape, with [`invalid_message`].
    pub async fn recv(&mut self) -> Option<Value> {
        self.incoming.recv().await
    }

    /// Sends `message` (as JSON text).
    pub async fn send(&self, message: Value) -> Result<(), Closed> {
        self.outgoing.send(message).await.map_err(|_| Closed)
    }

    /// Who is connected, as of the latest accepted token (a refresh may
    /// have brought a new plan or permissions).
    pub fn principal(&self) -> Principal {
        self.live.principal()
    }
}

/// Runs a connection's socket: relays messages, handles `auth.*`, closes
/// on expiry, revocation, bad input and shutdown.
struct Supervisor {
    outgoing: mpsc::Receiver<Value>,
    /// The connection's place in the registry (its principal, its wakes).
    slot: Slot,
    /// This connection's `auth.refresh` budget.
    refreshes: Bucket,
}

/// How the writer ended.
enum Written {
    /// Its queue closed, or it sent a close frame.
    Done,
    /// A message did not reach the socket in time (a close was tried).
    Stalled,
    /// The socket failed.
    Gone,
}

/// Sends what is queued to the socket, each message within `timeout`.
/// Runs beside the supervisor, so a client that does not read holds back
/// only this.
async fn write<W: Sink<Message> + Unpin>(
    mut sink: W,
    mut queue: mpsc::Receiver<Message>,
    timeout: Duration,
) -> Written {
    while let Some(message) = queue.recv().await {
        let closing = matches!(message, Message::Close(_));
        match tokio::time::timeout(timeout, sink.send(message)).await {
            Ok(Ok(())) if closing => return Written::Done,
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Written::Gone,
            Err(_) => {
                tracing::debug!(
                    code = close::TOO_SLOW,
                    "a WebSocket client does not read: closing"
                );
                let frame = CloseFrame {
                    code: close::TOO_SLOW,
                    reason: "too_slow".into(),
                };
                let _ =
                    tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
                return Written::Stalled;
            }
        }
    }
    Written::Done
}

/// Why the supervisor stops.
enum End {
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The socket is gone (or closed by the client); nothing to send.
    Gone,
}

impl Supervisor {
    /// Supervises until the connection ends, then closes it. `incoming`
    /// (to the handler) is dropped as soon as supervision ends, so the
    /// handler's `recv` returns `None` without waiting for the close
    /// handshake. Whatever happens, this returns within [`CLOSE_GRACE`] of
    /// the end of supervision, and the socket is dropped with it.
    async fn run<W, R>(mut self, sink: W, mut stream: R, incoming: mpsc::Sender<Value>)
    where
        W: Sink<Message> + Unpin,
        R: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        let (to_writer, queue) = mpsc::channel(self.slot.ws.inner.send_queue);
        let timeout = self.slot.ws.inner.send_timeout;
        let mut writer = std::pin::pin!(write(sink, queue, timeout));
        let end = tokio::select! {
            end = self.supervise(&mut stream, &to_writer, incoming) => end,
            // The writer ends first only when the socket failed or the
            // client stopped reading (its close was tried).
            _ = &mut writer => End::Gone,
        };
        let End::Close(code, reason) = end else {
            metrics::counter!("tollgate_client_ws_closes_total", "code" => "none").increment(1);
            return;
        };
        metrics::counter!("tollgate_client_ws_closes_total", "code" => code.to_string())
            .increment(1);
        tracing::debug!(code, reason, "closing a WebSocket connection");
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(CLOSE_GRACE, async move {
            // What is queued goes first, then the close frame.
            let (_, written) = tokio::join!(
                async move {
                    let _ = to_writer.send(Message::Close(Some(frame))).await;
                },
                writer
            );
            if !matches!(written, Written::Done) {
                return;
            }
            // Wait for the client's close, so the close frame is not lost
            // to a reset of the connection.
            let mut errors = 0;
            while let Some(message) = stream.next().await {
                if message.is_err() {
                    errors += 1;
                    if errors > 8 {
                        break;
                    }
                }
            }
        })
        .await;
    }

    async fn supervise<R>(
        &mut self,
        stream: &mut R,
        to_writer: &mpsc::Sender<Message>,
        incoming: mpsc::Sender<Value>,
    ) -> End
    where
        R: Stream<Item = Result<Message, axum::Error>> + Unpin,
    {
        let ws = self.slot.ws.clone();
        let live = self.slot.live.clone();
        let authenticator = ws.inner.authenticator.clone();
        let expect = ws.inner.requirements.expect();
        let mut pending: Option<Value> = None;
        let reserved = (ws.inner.send_queue / 8).min(RESERVED);
        let budget = ws.inner.refresh_budget;
        let mut timers = Timers::new(&live.principal(), ws.inner.expiry_notice);
        // One timer per connection: the notice, then the expiry.
        let timer = tokio::time::sleep_until(timers.next());
        tokio::pin!(timer);
        loop {
            tokio::select! {
                biased;
                // Shutdown, an operator, or a revocation that can hit this
                // connection's token (see `registry`).
                () = live.woken() => {
                    if let Some(code) = live.ordered_close() {
                        return End::Close(code, reason_for_code(code));
                    }
                    ws.inner.registry.count_recheck();
                    if let Err(err) = authenticator.recheck(&live.principal(), expect) {
                        return End::Close(close_for(&err), reason_for(&err));
                    }
                }
                () = &mut timer => {
                    if timers.noticed {
                        return End::Close(close::TOKEN_EXPIRED, "token_expired");
                    }
                    timers.noticed = true;
                    timer.as_mut().reset(timers.next());
                    let expires_at = live.principal().expires_at();
                    let notice = json!({"type": "auth.expiring", "expires_at": expires_at});
                    if let Err(end) = queue(to_writer, &notice) {
                        return end;
                    }
                }
                permit = incoming.reserve(), if pending.is_some() => {
                    let (Ok(permit), Some(message)) = (permit, pending.take()) else {
                        return End::Close(1000, "");
                    };
                    permit.send(message);
                }
                // The handler's messages wait while the queue is nearly
                // full; the rest of it is for the answers sent here.
                outgoing = self.outgoing.recv(), if to_writer.capacity() > reserved => {
                    let Some(message) = outgoing else {
                        return End::Close(1000, "");
                    };
                    if let Err(end) = queue(to_writer, &message) {
                        return end;
                    }
                }
                received = stream.next(), if pending.is_none() => {
                    let message = match received {
                        None | Some(Ok(Message::Close(_))) => return End::Gone,
                        Some(Err(err)) => return end_for_error(err),
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_))) => {
                            return End::Close(close::INVALID_MESSAGE, "invalid_message");
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    };
                    // Text that is not JSON is not this protocol at all;
                    // JSON of a shape this side does not know may be a newer
                    // client's: it gets an answer and the connection stays.
                    let Ok(message) = serde_json::from_str::<Value>(message.as_str()) else {
                        return End::Close(close::INVALID_MESSAGE, "invalid_message");
                    };
                    if !message.get("type").is_some_and(Value::is_string) {
                        let answer = invalid_message(&message, "a message is a JSON object with a string `type`");
                        if let Err(end) = queue(to_writer, &answer) {
                            return end;
                        }
                    } else if message["type"] == "auth.refresh" {
                        let answer = match self.refreshes.take(budget, Instant::now()) {
                            Ok(()) => refresh(&ws, &live, &message).await,
                            Err(wait) => refresh_limited(wait),
                        };
                        if answer["type"] == "auth.refreshed" {
                            // Re-indexed after it was judged: look once more.
                            let principal = live.principal();
                            if let Err(err) = authenticator.recheck(&principal, expect) {
                                return End::Close(close_for(&err), reason_for(&err));
                            }
                            timers = Timers::new(&principal, ws.inner.expiry_notice);
                            timer.as_mut().reset(timers.next());
                        }
                        if let Err(end) = queue(to_writer, &answer) {
                            return end;
                        }
                    } else {
                        pending = Some(message);
                    }
                }
            }
        }
    }
}

/// Queues one JSON message for the client. A full queue means the client
/// does not keep up: close it (1008); a closed one, that the writer ended.
fn queue(to_writer: &mpsc::Sender<Message>, message: &Value) -> Result<(), End> {
    match to_writer.try_send(Message::Text(message.to_string().into())) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(_)) => Err(End::Close(close::TOO_SLOW, "too_slow")),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(End::Gone),
    }
}

/// The code of [`invalid_message`] answers.
pub const INVALID_MESSAGE: &str = "invalid_message";

/// The answer to a message that is valid JSON but not one this side
/// understands (CONTRACT §6): a missing or unknown `type`, or members of
/// the wrong shape. `{"type": "error", "code": "invalid_message",
/// "error_description": description}`, with the message's `id` when it has
/// one. The connection stays open, so that a newer client is never cut off
/// by an older server; hosts answer their own unknown types with it too.
pub fn invalid_message(message: &Value, description: &str) -> Value {
    let mut answer = json!({
        "type": "error",
        "code": INVALID_MESSAGE,
        "error_description": description,
    });
    if let Some(id) = message.get("id") {
        answer["id"] = id.clone();
    }
    answer
}

/// The answer to an `auth.refresh` over this connection's budget: nothing
/// was validated.
fn refresh_limited(wait: Duration) -> Value {
    let retry_after_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
    let err = AuthError::RateLimited { retry_after_ms };
    json!({
        "type": "error",
        "code": err.code(),
        "error_description": err.to_string(),
        "retry_after_ms": retry_after_ms,
        "request": "auth.refresh",
    })
}

/// Judges an `auth.refresh`; on success the connection's principal is
/// the new token's (and it is indexed under its keys). The answer to send
/// back.
async fn refresh(ws: &WsAuth, live: &Arc<Live>, message: &Value) -> Value {
    let authenticator = &ws.inner.authenticator;
    let requirements = &ws.inner.requirements;
    let judged = match message.get("access_token").and_then(Value::as_str) {
        None => {
            let mut answer =
                invalid_message(message, "an `auth.refresh` needs a string `access_token`");
            answer["request"] = "auth.refresh".into();
            return answer;
        }
        Some(token) => authenticator
            .authenticate(token, requirements.expect())
            .await
            .and_then(|principal| requirements.check(&principal).map(|()| principal))
            .and_then(|principal| {
                if principal.subject() == live.principal().subject() {
                    Ok(principal)
                } else {
                    Err(AuthError::SubjectMismatch)
                }
            }),
    };
    match judged {
        Ok(principal) => {
            let expires_at = principal.expires_at();
            ws.inner.registry.replace_principal(live, principal);
            json!({"type": "auth.refreshed", "expires_at": expires_at})
        }
        Err(err) => json!({
            "type": "error",
            "code": err.code(),
            "error_description": err.to_string(),
            "request": "auth.refresh",
        }),
    }
}

/// When the current token's `auth.expiring` is due and when it expires.
struct Timers {
    notice: Instant,
    expires: Instant,
    noticed: bool,
}

impl Timers {
    /// When the timer must fire next: the notice until it was sent, then
    /// the expiry.
    fn next(&self) -> Instant {
        if self.noticed {
            self.expires
        } else {
            self.notice
        }
    }

    fn new(principal: &Principal, lead: Duration) -> Timers {
        let claims = principal.claims();
        let now_ms = clock::now_ms();
        let expires_ms = claims.exp.saturating_mul(1000);
        let lifetime = Duration::from_secs(claims.exp.saturating_sub(claims.iat));
        let lead = lead.min(lifetime / 2);
        let now = Instant::now();
        let expires = now + Duration::from_millis(expires_ms.saturating_sub(now_ms));
        Timers {
            notice: expires.checked_sub(lead).unwrap_or(now),
            expires,
            noticed: false,
        }
    }
}

/// The close for a token that no longer passes: revoked → 4403, too stale
/// to vouch for → 1013, anything else (expired, in practice) → 4401.
fn close_for(err: &AuthError) -> u16 {
    if is_revoked(err) {
        close::TOKEN_REVOKED
    } else if matches!(err, AuthError::Unavailable(_)) {
        close::TRY_AGAIN_LATER
    } else {
        close::TOKEN_EXPIRED
    }
}

/// The reason sent with a close ordered from outside.
fn reason_for_code(code: u16) -> &'static str {
    match code {
        close::GOING_AWAY => "going_away",
        close::TOKEN_REVOKED => "token_revoked",
        _ => "",
    }
}

fn reason_for(err: &AuthError) -> &'static str {
    if is_revoked(err) {
        "token_revoked"
    } else if matches!(err, AuthError::Unavailable(_)) {
        "token_service_unavailable"
    } else {
        "token_expired"
    }
}

fn is_revoked(err: &AuthError) -> bool {
    matches!(
        err,
        AuthError::Token(tollgate_core::Error::Revoked) | AuthError::Inactive
    )
}

/// What a failed read means for the connection.
fn end_for_error(err: axum::Error) -> End {
    match err.into_inner().downcast::<tungstenite::Error>() {
        Ok(err) => match *err {
            tungstenite::Error::Capacity(_) => End::Close(close::TOO_BIG, "message_too_big"),
            tungstenite::Error::Protocol(_) => End::Close(close::PROTOCOL_ERROR, "protocol_error"),
            tungstenite::Error::Utf8(_) => End::Close(close::INVALID_MESSAGE, "invalid_message"),
            _ => End::Gone,
        },
        Err(_) => End::Gone,
    }
}

/// The `Sec-WebSocket-Protocol` entries, in the order offered.
fn offered_protocols(headers: &HeaderMap) -> Result<Vec<&str>, AuthError> {
    let mut protocols = Vec::new();
    for value in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        let text = value
            .to_str()
            .map_err(|_| AuthError::InvalidAuthorization)?;
        protocols.extend(text.split(',').map(str::trim).filter(|p| !p.is_empty()));
    }
    Ok(protocols)
}

fn normalize_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestIssuer;

    fn parts(headers: &[(&str, &str)], uri: &str) -> Parts {
        let mut request = axum::http::Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn find(
        ws: &WsAuth,
        headers: &[(&str, &str)],
        uri: &str,
    ) -> Result<(String, Option<String>), AuthError> {
        let parts = parts(headers, uri);
        let protocols = offered_protocols(&parts.headers)?;
        ws.find_token(&parts, &protocols)
            .map(|(t, p)| (t.to_owned(), p.map(str::to_owned)))
    }

    #[test]
    fn tokens_come_from_one_place_and_the_right_protocol_is_echoed() {
        let issuer = TestIssuer::new();
        let ws = WsAuth::builder(issuer.authenticator()).build();
        let proto = "sec-websocket-protocol";
        assert_eq!(
            find(&ws, &[("authorization", "Bearer a.b.c")], "/ws").unwrap(),
            ("a.b.c".into(), None)
        );
        assert_eq!(
            find(&ws, &[(proto, "jwt.a.b.c")], "/ws").unwrap(),
            ("a.b.c".into(), Some("jwt.a.b.c".into()))
        );
        assert_eq!(
            find(&ws, &[(proto, "jwt-auth.a.b.c, chat.v1, other")], "/ws").unwrap(),
            ("a.b.c".into(), Some("chat.v1".into()))
        );
        assert_eq!(
            find(&ws, &[(proto, "chat.v1"), (proto, "jwt.x")], "/ws").unwrap(),
            ("x".into(), Some("chat.v1".into()))
        );
        assert_eq!(
            find(&ws, &[], "/ws?access_token=a.b.c").unwrap_err(),
            AuthError::MissingToken,
            "the query is off by default"
        );
        for (headers, uri) in [
            (
                &[("authorization", "Bearer a.b.c"), (proto, "jwt.d.e.f")][..],
                "/ws",
            ),
            (&[(proto, "jwt.a, jwt-auth.b")][..], "/ws"),
            (&[(proto, "jwt.")][..], "/ws"),
        ] {
            assert_eq!(
                find(&ws, headers, uri).unwrap_err(),
                AuthError::InvalidAuthorization,
                "{headers:?}"
            );
        }

        let with_query = WsAuth::builder(issuer.authenticator())
            .query_parameter("access_token")
            .build();
        assert_eq!(
            find(&with_query, &[], "/ws?x=1&access_token=a.b.c").unwrap(),
            ("a.b.c".into(), None)
        );
        assert_eq!(
            find(&with_query, &[], "/ws?access_token=a&access_token=b").unwrap_err(),
            AuthError::InvalidAuthorization
        );
    }

    #[test]
    fn origins_are_checked_only_for_browsers() {
        let issuer = TestIssuer::new();
        let ws = WsAuth::builder(issuer.authenticator())
            .allow_origin("https://App.example.com/")
            .build();
        let check = |headers: &[(&str, &str)]| ws.check_origin(&parts(headers, "/ws").headers);
        assert!(check(&[]).is_ok(), "no Origin: not a browser");
        assert!(check(&[("origin", "https://app.example.com")]).is_ok());
        for bad in ["https://evil.example.com", "null", "http://app.example.com"] {
            assert_eq!(
                check(&[("origin", bad)]).unwrap_err(),
                AuthError::OriginNotAllowed
            );
        }
        assert_eq!(
            check(&[
                ("origin", "https://app.example.com"),
                ("origin", "https://evil.example")
            ])
            .unwrap_err(),
            AuthError::OriginNotAllowed
        );
        let any = WsAuth::builder(issuer.authenticator())
            .dangerous_allow_any_origin()
            .build();
        assert!(
            any.check_origin(&parts(&[("origin", "https://evil.example.com")], "/ws").headers)
                .is_ok()
        );
    }

    #[tokio::test]
    async fn slots_follow_the_plan_and_are_released_on_drop() {
        let issuer = TestIssuer::new();
        let auth = issuer.authenticator();
        let ws = WsAuth::builder(auth.clone()).build();
        let free = auth
            .authenticate_user(&issuer.user("u1").mint())
            .await
            .unwrap();
        let a = ws.take_slot(&free).await.unwrap();
        let b = ws.take_slot(&free).await.unwrap();
        assert_eq!(
            ws.take_slot(&free).await.unwrap_err(),
            AuthError::ConnectionLimit { limit: 2 }
        );
        assert_eq!(ws.live_connections(), 2);
        drop(a);
        let c = ws.take_slot(&free).await.unwrap();
        drop((b, c));
        assert_eq!(ws.live_connections(), 0);
    }

    #[tokio::test]
    async fn with_redis_unreachable_slots_are_counted_in_process() {
        let port = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let slots = RedisSlots::new(&format!("redis://127.0.0.1:{port}"), "p").unwrap();
        let issuer = TestIssuer::new();
        let auth = issuer.authenticator();
        let ws = WsAuth::builder(auth.clone()).shared_slots(slots).build();
        let free = auth
            .authenticate_user(&issuer.user("u1").mint())
            .await
            .unwrap();
        let a = ws.take_slot(&free).await.unwrap();
        let _b = ws.take_slot(&free).await.unwrap();
        assert_eq!(
            ws.take_slot(&free).await.unwrap_err(),
            AuthError::ConnectionLimit { limit: 2 }
        );
        drop(a);
        ws.take_slot(&free).await.unwrap();
    }

    #[test]
    fn short_tokens_get_their_notice_half_way() {
        let issuer = TestIssuer::new();
        let (_, claims) = issuer.user("u").ttl(10).mint_with_claims().unwrap();
        let timers = Timers::new(&Principal::new(claims), Duration::from_secs(60));
        let gap = timers.expires - timers.notice;
        assert_eq!(gap, Duration::from_secs(5));
    }
}
