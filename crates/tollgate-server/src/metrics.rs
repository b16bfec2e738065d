//! Prometheus metrics: the recorder, the metric names, and the middleware
//! that counts every request by route and status.
//!
//! The recorder is process-global (the `metrics` facade has one), installed
//! once; several servers in one process (tests) share it. Route labels are
//! the matched route templates (`/v1/admin/users/{id}`), never raw paths, so
//! label cardinality is bounded and no identifier reaches a label.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Requests, by `route`, `method` and `status`.
pub(crate) const REQUESTS: &str = "tollgate_http_requests_total";
/// Request latency in seconds, by `route`, `method` and `status`.
pub(crate) const LATENCY: &str = "tollgate_http_request_duration_seconds";
/// Tokens issued, by `type` (`access`, `service`, `refresh`).
pub(crate) const ISSUED: &str = "tollgate_tokens_issued_total";
/// Token validation failures, by `code`.
pub(crate) const VALIDATION_FAILURES: &str = "tollgate_token_validation_failures_total";
/// Revocations written, by `kind` (`token`, `session`, `user`).
pub(crate) const REVOCATIONS: &str = "tollgate_revocations_total";
/// Tokens that validated but were answered 503 because the revocation view
/// was stale (issue 16).
pub(crate) const STALE_REFUSALS: &str = "tollgate_stale_refusals_total";
/// Refresh tokens presented again within the reuse grace (answered with
/// the same successor).
pub(crate) const REFRESH_RETRY: &str = "tollgate_refresh_retry_total";
/// Usage events received, by `outcome` (`accepted`, `duplicate`).
pub(crate) const USAGE_EVENTS: &str = "tollgate_usage_events_total";
/// 1 while the store answers, 0 while this instance knows it down
/// (issue 16).
pub(crate) const STORE_UP: &str = "tollgate_store_up";
/// Store calls answered at once (503) because the store was known down.
pub(crate) const STORE_SHORT_CIRCUITS: &str = "tollgate_store_short_circuits_total";
/// Refresh tokens presented a second time (each revokes its session).
pub(crate) const REFRESH_REUSE: &str = "tollgate_refresh_reuse_total";
/// Failed logins.
pub(crate) const LOGIN_FAILURES: &str = "tollgate_login_failures_total";
/// Notices published to other instances through Redis, by `kind`
/// (`revocations`, `keys`).
pub(crate) const NOTICES_SENT: &str = "tollgate_redis_notices_sent_total";
/// Notices received from other instances through Redis, by `kind`.
pub(crate) const NOTICES_RECEIVED: &str = "tollgate_redis_notices_received_total";

/// Audit events written to the store.
pub(crate) const AUDIT_WRITTEN: &str = "tollgate_audit_events_written_total";
/// Audit events that found the queue full (the request waited for room).
pub(crate) const AUDIT_QUEUE_FULL: &str = "tollgate_audit_queue_full_total";
/// Audit events lost (the queue stayed full, or the store failed at
/// shutdown); each is also logged at error level.
pub(crate) const AUDIT_DROPPED: &str = "tollgate_audit_dropped_total";
/// Failed appends of an audit batch (retried with back-off).
pub(crate) const AUDIT_WRITE_FAILURES: &str = "tollgate_audit_write_failures_total";

/// Audit events posted to the webhook.
pub(crate) const AUDIT_WEBHOOK_POSTED: &str = "tollgate_audit_webhook_posted_total";
/// Audit events the webhook gave up on after every retry.
pub(crate) const AUDIT_WEBHOOK_FAILURES: &str = "tollgate_audit_webhook_failures_total";
/// Audit events not posted because the webhook's queue was full.
pub(crate) const AUDIT_WEBHOOK_DROPPED: &str = "tollgate_audit_webhook_dropped_total";

/// The process-wide Prometheus handle.
pub(crate) fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(LATENCY.to_owned()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ) {
                Ok(builder) => builder,
                Err(_) => PrometheusBuilder::new(),
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (an embedding
            // program's); then this handle renders an empty page rather
            // than failing the server.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was installed already; /metrics will be empty");
            }
            handle
        })
        .clone()
}

/// Counts the request and logs one line for it (never the query string,
/// never a header value: either could carry a token).
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    // Set by the request-id layer, which runs first.
    let request_id = request
        .headers()
        .get(crate::request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed();
    let labels = [
        ("route", route.clone()),
        ("method", method.clone()),
        ("status", status),
    ];
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(LATENCY, &labels).record(elapsed.as_secs_f64());
    tracing::info!(
        request_id,
        method,
        route,
        status = response.status().as_u16(),
        latency_us = elapsed.as_micros() as u64,
        "request"
    );
    response
}
