//! chat-backend: a small real service protected only through the Tollgate
//! SDK — the reference for how a service uses Tollgate.
//!
//! - `GET /api/agents/status` (any user): the caller, their tools, and the
//!   agents, fetched from the service-only route below with a service token
//!   (the service-to-service call);
//! - `POST /api/tools/{tool}` (a user with `tool:<tool>`, within the plan's
//!   rate): runs a (pretend) tool and counts the call;
//! - `GET /api/usage` (any user): the caller's calls per tool — with a
//!   usage recorder (`--record-usage`), the token service's durable figures
//!   plus this instance's calls not yet delivered;
//! - `GET /api/admin/usage` (role `admin`): everyone's counts;
//! - `GET /internal/agents` (service tokens only);
//! - `GET /ws` (a user; CONTRACT §6): chat and tool calls over WebSocket,
//!   authenticated and supervised by the SDK's `tollgate_client::ws`;
//! - `GET /v1/connections?user=…|sid=…` and `DELETE /v1/connections?…`
//!   (service tokens with scope `connections:admin`): the live WebSocket
//!   connections, and closing them with 4403 (the SDK's
//!   `tollgate_client::ws::connections_router`);
//! - `GET /v1/fingerprint` (what this service trusts), `GET /healthz`;
//! - `GET /metrics` (anyone): Prometheus text of the SDK's metrics, among
//!   them open WebSocket connections by plan and closes by code.
//!
//! Everything about tokens goes through `tollgate_client`: this crate never
//! sees a key or a secret. The state ([`AppState`]) is shared by the REST
//! routes and the WebSocket: tool permissions, rates and counts are one
//! [`ToolGate`]. [`serve`] runs the router with a graceful shutdown that
//! closes every WebSocket with 1001 first. [`logging`] sets up the binary's
//! logs.

mod error;
pub mod logging;
pub mod metrics;
mod peer;
mod rest;
mod tools;
mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tollgate_client::limits::ToolGate;
use tollgate_client::ws::WsAuth;
use tollgate_client::{Authenticator, Requirements, ServiceTokenSource};

pub use error::ApiError;
pub use peer::Peer;

/// Everything the routes share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Judges every token.
    pub auth: Authenticator,
    /// Tool permissions, per-user rates and usage counts.
    pub tools: Arc<ToolGate>,
    /// Where the agents live (this service itself by default), called with
    /// a service token.
    pub peer: Arc<Peer>,
    /// WebSocket authentication and the live connections.
    pub ws: WsAuth,
    /// Reads the token service's durable usage figures (`/api/usage`).
    pub http: reqwest::Client,
}

impl AppState {
    /// State over an authenticator, the plans' tool gate, and the peer to
    /// call for agents (`service_tokens` identifies this service to it).
    /// WebSockets get the SDK's defaults (the tool gate's plans; no
    /// browser origin allowed) until [`AppState::with_ws`].
    pub fn new(
        auth: Authenticator,
        tools: ToolGate,
        peer_url: String,
        service_tokens: Option<ServiceTokenSource>,
    ) -> AppState {
        let ws = WsAuth::builder(auth.clone())
            .plans(tools.plans().clone())
            .build();
        AppState {
            auth,
            tools: Arc::new(tools),
            peer: Arc::new(Peer::new(peer_url, service_tokens)),
            ws,
            http: reqwest::Client::new(),
        }
    }

    /// The same state with these WebSocket rules (origins, query
    /// parameter, expiry notice…).
    pub fn with_ws(mut self, ws: WsAuth) -> AppState {
        self.ws = ws;
        self
    }
}

impl FromRef<AppState> for WsAuth {
    fn from_ref(state: &AppState) -> WsAuth {
        state.ws.clone()
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Authenticator {
        state.auth.clone()
    }
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    let admin = Router::new()
        .route("/api/admin/usage", get(rest::all_usage))
        .route_layer(state.auth.require(Requirements::user().role("admin")));
    let internal = Router::new()
        .route("/internal/agents", get(rest::agents))
        .route_layer(state.auth.require(Requirements::service()));
    let health = Router::new()
        .route("/healthz", get(tollgate_client::axum::health))
        .with_state(state.auth.clone());
    Router::new()
        .route("/api/agents/status", get(rest::status))
        .route("/api/tools/{tool}", post(rest::call_tool))
        .route("/api/usage", get(rest::usage))
        .route("/ws", get(ws::connect))
        .merge(admin)
        .merge(internal)
        .fallback(rest::not_found)
        .with_state(state.clone())
        .merge(tollgate_client::axum::fingerprint_router(
            state.auth.clone(),
        ))
        .merge(tollgate_client::ws::connections_router(state.ws.clone()))
        .merge(metrics::router())
        .merge(health)
}

/// How long shutting down waits for WebSocket connections to close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves [`router`] on `listener` until `shutdown` completes; then every
/// WebSocket is closed with 1001 (at most [`SHUTDOWN_GRACE`]) before the
/// HTTP server drains: axum's graceful shutdown does not wait for upgraded
/// connections, so without this they would just drop.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ws = state.ws.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            ws.shutdown(SHUTDOWN_GRACE).await;
        })
        .await
}
