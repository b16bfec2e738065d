//! The revocation feed the SDK follows: `GET /v1/revocations?after=N`
//! (pages) and `GET /v1/revocations/stream` (Server-Sent Events).
//!
//! Callers: a client with scope `introspect` (Basic) or a service bearer
//! token with that scope. The stream replays from the store after the
//! requested cursor (`Last-Event-ID`, else `?after=`), then forwards the
//! pump's live events, skipping any it already sent; when it falls behind
//! the live channel it replays from the store again. Each event is
//! `id: <cursor>`, `event: revocation`, `data: <RevocationEvent JSON>`.
//! Streams end when the server shuts down, so graceful shutdown never
//! waits on an idle subscriber.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tollgate_core::wire::{ErrorBody, RevocationEvent, RevocationPage};

use crate::ApiError;
use crate::extract::{RawQuery, authenticate_client, service_bearer};
use crate::revocations::PAGE;
use crate::state::AppState;

/// The scope that lets a caller read the feed.
const SCOPE: &str = "introspect";

/// Who may read the feed: a client with scope `introspect` by Basic, or a
/// service token with that scope.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(claims) = service_bearer(state, headers, SCOPE)? {
        return Ok(claims.sub);
    }
    let client = authenticate_client(state, headers, None)
        .await?
        .ok_or(ApiError::InvalidClient)?;
    if !client.scopes.iter().any(|s| s == SCOPE) {
        return Err(ApiError::InsufficientScope);
    }
    Ok(client.client_id)
}

/// `GET /v1/revocations?after=CURSOR&limit=N`.
#[utoipa::path(get, path = "/v1/revocations", tag = "revocations", security(("client" = []), ("bearer" = [])),
    params(("after" = Option<u64>, Query, description = "Cursor to read after (default 0)"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 500)")),
    responses((status = 200, body = RevocationPage),
              (status = 400, description = "invalid_request: a malformed, repeated or non-numeric parameter, or more than 64 (read only once the caller is authorized)", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<axum::Json<RevocationPage>, ApiError> {
    // Only an authorized caller's query is read (issue 15, item 1).
    authorize(&state, &headers).await?;
    let query = query.parse()?;
    let after = query.number("after")?.unwrap_or(0);
    let limit = query
        .number("limit")?
        .unwrap_or(u64::from(PAGE))
        .clamp(1, u64::from(PAGE)) as u32;
    let mut events = state
        .store
        .revocations_after(after, limit + 1, state.now())
        .await?;
    let has_more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next_cursor = events.last().map_or(after, |e| e.cursor);
    Ok(axum::Json(RevocationPage {
        events,
        next_cursor,
        has_more,
    }))
}

/// `GET /v1/revocations/stream`.
#[utoipa::path(get, path = "/v1/revocations/stream", tag = "revocations", security(("client" = []), ("bearer" = [])),
    params(("after" = Option<u64>, Query, description = "Cursor to start after when there is no Last-Event-ID"),
           ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this cursor")),
    responses((status = 200, description = "text/event-stream of `revocation` events (id = cursor, data = RevocationEvent)", content_type = "text/event-stream"),
              (status = 400, description = "invalid_request: a malformed Last-Event-ID or query (read only once the caller is authorized)", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let who = authorize(&state, &headers).await?;
    let query = query.parse()?;
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or(ApiError::bad_request("Last-Event-ID is not a cursor"))?,
        None => query.number("after")?.unwrap_or(0),
    };
    // Subscribe before replaying, so nothing falls between the two.
    let live = state.pump.subscribe();
    let (sender, receiver) = mpsc::channel(64);
    tracing::info!(subscriber = %who, after, "revocation stream opened");
    tokio::spawn(follow(state.clone(), after, live, sender));
    let keep_alive = KeepAlive::new().interval(state.options.sse_keep_alive);
    Ok(Sse::new(ReceiverStream::new(receiver)).keep_alive(keep_alive))
}

type Sender = mpsc::Sender<Result<Event, Infallible>>;

fn event(revocation: &RevocationEvent) -> Option<Event> {
    Event::default()
        .id(revocation.cursor.to_string())
        .event("revocation")
        .json_data(revocation)
        .ok()
}

/// Sends stored events after `last`; returns the new `last`, or `None`
/// when the subscriber is gone or the store failed (the stream then ends
/// and the client reconnects with its Last-Event-ID).
async fn replay(state: &AppState, mut last: u64, sender: &Sender) -> Option<u64> {
    loop {
        let events = match state.store.revocations_after(last, PAGE, state.now()).await {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(error = %error, "revocation stream: the store cannot be read");
                return None;
            }
        };
        let full = events.len() == PAGE as usize;
        for revocation in &events {
            sender.send(Ok(event(revocation)?)).await.ok()?;
            last = revocation.cursor;
        }
        if !full {
            return Some(last);
        }
    }
}

async fn follow(
    state: AppState,
    after: u64,
    mut live: broadcast::Receiver<RevocationEvent>,
    sender: Sender,
) {
    let Some(mut last) = replay(&state, after, &sender).await else {
        return;
    };
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(revocation) if revocation.cursor > last => {
                    let Some(event) = event(&revocation) else { continue };
                    if sender.send(Ok(event)).await.is_err() {
                        return;
                    }
                    last = revocation.cursor;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let Some(caught_up) = replay(&state, last, &sender).await else { return };
                    last = caught_up;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = sender.closed() => return,
            () = state.stopped() => return,
        }
    }
}

/// How often an idle stream sends a keep-alive comment.
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
