//! Operations: liveness, readiness, Prometheus metrics, the OpenAPI
//! document. None needs authentication; none reveals a secret.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::OpenApi;

use crate::state::AppState;

/// Liveness and readiness answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// `ok`, `ready` or `unavailable`.
    status: &'static str,
    /// Per dependency: `ok`, `down` or `stale` (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<Checks>,
}

/// Readiness of each dependency.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Checks {
    /// The database answers.
    store: &'static str,
    /// The revocation view was read from the store recently.
    revocations: &'static str,
    /// Redis (only when `TOLLGATE_REDIS_URL` is set): `ok` when this
    /// instance is subscribed to the other instances' notices and Redis
    /// answers, else `down`. Reported only: while Redis is down the instance
    /// still serves correctly (it polls the store and counts login failures
    /// alone), so it stays ready. Taking every instance out of the load
    /// balancer because a shared cache is away would turn a degradation
    /// into an outage.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<&'static str>,
}

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub(crate) async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok",
        checks: None,
    })
}

/// `GET /readyz`: 200 when the instance serves correctly (the store
/// answered its last call or probe, and the revocation view is current),
/// else 503; never waits for the database. Redis is
/// reported, never a reason for 503 (issue 9, item 9).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready; `checks.redis` may still say `down` (the instance works without Redis)", body = Health),
              (status = 503, description = "The store is down or the revocation view is stale: this instance cannot answer correctly", body = Health)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // The last known health (the background probe and every call keep
    // it): a hung database must not hang the readiness check (issue 16).
    let store = state.guarded.is_up();
    let revocations = state.revocations.is_current();
    let redis = match &state.fanout {
        Some(fanout) => Some(fanout.is_healthy().await),
        None => None,
    };
    // Redis is left out on purpose: see `Checks::redis`.
    let ready = store && revocations;
    let body = Health {
        status: if ready { "ready" } else { "unavailable" },
        checks: Some(Checks {
            store: if store { "ok" } else { "down" },
            revocations: if revocations { "ok" } else { "stale" },
            redis: redis.map(|up| if up { "ok" } else { "down" }),
        }),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ::metrics::gauge!("tollgate_revocation_view_entries").set(state.revocations.len() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// `GET /openapi.json`: this API, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
pub(crate) async fn openapi() -> impl IntoResponse {
    axum::Json(crate::openapi::ApiDoc::openapi())
}
