//! `GET /metrics`: the SDK's metrics in Prometheus text, as the token
//! service serves its own (`crates/tollgate-server/src/metrics.rs`).
//!
//! The SDK records through the `metrics` facade
//! (`tollgate_client_ws_connections{plan}`,
//! `tollgate_client_ws_closes_total{code}`, the feed, the breaker, JWKS
//! fetches, rejections); this module installs the process-global Prometheus
//! recorder once (several backends in one test process share it) and renders
//! it. No label carries a user, a session or a token.

use std::sync::OnceLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process-wide Prometheus handle, installing the recorder the first
/// time.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (an embedding
            // program's); then this page stays empty rather than failing.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was installed already; /metrics will be empty");
            }
            handle
        })
        .clone()
}

/// `GET /metrics` (anyone, as the token service's).
pub(crate) fn router() -> Router {
    let handle = handle();
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    )
}
