//! Recording the audit trail (issue 12; docs/audit.md).
//!
//! The one call a handler makes:
//!
//! ```ignore
//! state.audit.record(&origin, Actor::of(&claims), AuditEvent::KeysRotated { kid }).await;
//! ```
//!
//! `origin` is the [`Origin`] extractor (the trusted-proxy-aware client
//! address and the request's `x-request-id`; [`Origin::system`] outside a
//! request), the [`Actor`] says who acted, the [`AuditEvent`] (core) what
//! happened. `record` never fails and never waits on the database: it puts
//! the event on a bounded queue that one writer task appends to this
//! instance's chain (`instance:<uuid>`, one per process start) in batches.
//!
//! **When the queue is full** (the store is slow or down and 10 000 events
//! are waiting), `record` waits up to [`FULL_WAIT`] for room (back-pressure
//! on the request that records), and if there is still none the event is
//! dropped, counted in `tollgate_audit_dropped_total` and logged at error
//! level with its type: never silently lost. A failing append is retried
//! with back-off (100 ms doubling to 5 s), the batch kept in order, so a
//! short outage loses nothing; at shutdown the queue is drained and written
//! once more, and what cannot be written then is counted and logged the
//! same way.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tokio::sync::{mpsc, oneshot};
use tollgate_core::Claims;
use tollgate_core::audit::AuditEvent;
use tollgate_store::{NewAuditEvent, Store};

use crate::clock::Clock;
use crate::state::AppState;
use crate::webhook::Webhook;
use crate::{metrics, request_id};

/// Events waiting to be written, at most.
pub(crate) const QUEUE: usize = 10_000;
/// Events appended in one transaction, at most.
const BATCH: usize = 256;
/// How long `record` waits for room in a full queue before dropping.
pub(crate) const FULL_WAIT: Duration = Duration::from_millis(100);

/// Who acted: `user:<sub>`, `client:<id>`, `system` or `anonymous` (the
/// CLI records as `cli`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Actor(String);

impl Actor {
    /// Nobody authenticated (a login, a registration, a public refresh).
    pub fn anonymous() -> Actor {
        Actor("anonymous".to_owned())
    }

    /// The server itself (start-up, pruning).
    pub fn system() -> Actor {
        Actor("system".to_owned())
    }

    /// A user.
    pub fn user(sub: &str) -> Actor {
        Actor(format!("user:{sub}"))
    }

    /// A service client.
    pub fn client(client_id: &str) -> Actor {
        Actor(format!("client:{client_id}"))
    }

    /// The holder of a validated token.
    pub fn of(claims: &Claims) -> Actor {
        if claims.is_user() {
            Actor::user(&claims.sub)
        } else {
            Actor::client(&claims.client_id)
        }
    }
}

/// Where a request came from: the client address (the TCP peer, or what a
/// trusted proxy forwarded, [`crate::forwarded`]) and the request id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The client address.
    pub address: Option<String>,
    /// The request's `x-request-id` (set by [`request_id::layer`]).
    pub request_id: Option<String>,
}

impl Origin {
    /// Outside any request.
    pub fn system() -> Origin {
        Origin::default()
    }
}

impl FromRequestParts<AppState> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Origin, Self::Rejection> {
        let crate::extract::Peer(peer) =
            crate::extract::Peer::from_request_parts(parts, state).await?;
        Ok(Origin {
            address: peer.map(|ip| ip.to_string()),
            request_id: parts
                .headers
                .get(request_id::HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }
}

enum Message {
    Event(NewAuditEvent),
    Flush(oneshot::Sender<()>),
}

/// The handle handlers record through (in [`AppState`]); cheap to clone.
#[derive(Clone)]
pub(crate) struct Auditor {
    queue: mpsc::Sender<Message>,
    clock: Clock,
    chain: Arc<str>,
}

/// Waits until every event recorded before the call is written (or given
/// up on). For tests and shutdown; handlers never call it.
#[derive(Clone)]
pub struct AuditFlush(mpsc::Sender<Message>);

impl AuditFlush {
    /// Resolves once the writer has handled everything queued before.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.0.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// The writer's end: [`Writer::run`] is the background task.
pub(crate) struct Writer {
    queue: mpsc::Receiver<Message>,
    chain: String,
}

impl Auditor {
    /// An auditor and its writer, on a new chain for this instance.
    pub fn new(clock: Clock) -> (Auditor, Writer) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let chain = format!("instance:{}", uuid::Uuid::new_v4());
        (
            Auditor {
                queue,
                clock,
                chain: Arc::from(chain.as_str()),
            },
            Writer {
                queue: receiver,
                chain,
            },
        )
    }

    /// This instance's chain.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// A flush handle (see [`AuditFlush`]).
    pub fn flusher(&self) -> AuditFlush {
        AuditFlush(self.queue.clone())
    }

    /// Records `event` by `actor` from `origin`, now. Never fails; waits
    /// at most [`FULL_WAIT`] (module docs).
    pub async fn record(&self, origin: &Origin, actor: Actor, event: AuditEvent) {
        let kind = event.kind();
        let (subject, details) = event.into_parts();
        let new = NewAuditEvent {
            at: self.clock.now(),
            kind: kind.to_owned(),
            actor: actor.0,
            subject,
            address: origin.address.clone(),
            request_id: origin.request_id.clone(),
            details,
        };
        let message = match self.queue.try_send(Message::Event(new)) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(message)) => message,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                lost(kind, 1, "the audit writer has stopped");
                return;
            }
        };
        ::metrics::counter!(metrics::AUDIT_QUEUE_FULL).increment(1);
        if self.queue.send_timeout(message, FULL_WAIT).await.is_err() {
            lost(kind, 1, "the audit queue stayed full");
        }
    }
}

/// How often the retention job runs (by the server's clock).
pub(crate) const PRUNE_EVERY: u64 = 3600;

/// Retention (`TOLLGATE_AUDIT_RETENTION`): deletes the events older than
/// the retention; the store records the `audit.pruned` event on this
/// instance's chain in the same transaction. Several instances may prune;
/// the store serialises them.
pub(crate) async fn prune(state: &AppState, now: u64) {
    let before = now.saturating_sub(state.config.audit_retention);
    match state
        .store
        .prune_audit(before, state.audit.chain(), now)
        .await
    {
        Ok(0) => {}
        Ok(rows) => tracing::info!(rows, before, "pruned audit events past the retention"),
        Err(error) => tracing::warn!(error = %error, "pruning the audit trail failed"),
    }
}

fn lost(kind: &str, count: u64, why: &'static str) {
    ::metrics::counter!(metrics::AUDIT_DROPPED).increment(count);
    tracing::error!(kind, count, why, "audit events lost");
}

impl Writer {
    /// Writes queued events until `stopped` resolves, then drains the
    /// queue once more.
    pub async fn run(
        mut self,
        store: Arc<dyn Store>,
        webhook: Option<Webhook>,
        stopped: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stopped);
        let mut batch: Vec<NewAuditEvent> = Vec::with_capacity(BATCH);
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        let mut backoff = Duration::from_millis(100);
        loop {
            if batch.is_empty() && flushes.is_empty() {
                tokio::select! {
                    message = self.queue.recv() => match message {
                        Some(message) => take(message, &mut batch, &mut flushes),
                        None => return,
                    },
                    () = &mut stopped => break,
                }
            }
            while batch.len() < BATCH {
                match self.queue.try_recv() {
                    Ok(message) => take(message, &mut batch, &mut flushes),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                match store.append_audit(&self.chain, &batch).await {
                    Ok(rows) => {
                        forward(webhook.as_ref(), rows);
                        ::metrics::counter!(metrics::AUDIT_WRITTEN).increment(batch.len() as u64);
                        batch.clear();
                        backoff = Duration::from_millis(100);
                    }
                    Err(error) => {
                        ::metrics::counter!(metrics::AUDIT_WRITE_FAILURES).increment(1);
                        tracing::warn!(error = %error, events = batch.len(), "writing audit events failed; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = &mut stopped => break,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            if batch.is_empty() {
                // Everything queued before these flushes is written.
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        }
        // Shutdown: what is queued now, in one last pass per batch.
        self.queue.close();
        while let Some(message) = self.queue.recv().await {
            take(message, &mut batch, &mut flushes);
        }
        for chunk in batch.chunks(BATCH) {
            match store.append_audit(&self.chain, chunk).await {
                Ok(rows) => forward(webhook.as_ref(), rows),
                Err(error) => {
                    tracing::error!(error = %error, "writing audit events at shutdown failed");
                    lost("any", chunk.len() as u64, "the store failed at shutdown");
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Hands the written events the webhook wants to it.
fn forward(webhook: Option<&Webhook>, rows: Vec<tollgate_store::AuditRow>) {
    let Some(webhook) = webhook else {
        return;
    };
    for row in rows {
        if webhook.wants(&row.event.kind) {
            webhook.offer(row.into_record());
        }
    }
}

fn take(message: Message, batch: &mut Vec<NewAuditEvent>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match message {
        Message::Event(event) => batch.push(event),
        Message::Flush(done) => flushes.push(done),
    }
}
