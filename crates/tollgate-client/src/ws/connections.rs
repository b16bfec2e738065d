//! The operators' view of live connections (issue 13), served by a host
//! through [`connections_router`]:
//!
//! - `GET /v1/connections[?user=SUB|?sid=SID]` → `{"connections": [{"user",
//!   "sid", "plan", "opened_at", "expires_at"}]}` (times in Unix seconds;
//!   no filter: every connection of this instance);
//! - `DELETE /v1/connections?user=SUB` or `?sid=SID` → `{"closed": N}`:
//!   those connections close with 4403 (`token_revoked`); exactly one of
//!   the two is required (400 `invalid_request` otherwise).
//!
//! Both need a service token with the scope [`CONNECTIONS_SCOPE`]
//! (`connections:admin`): 401 without a good token, 403
//! `insufficient_scope` for a user token or a service token without it.
//! The answer is about this instance only.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Selection, WsAuth};
use crate::{Principal, Requirements};

/// The scope a service token needs for `/v1/connections`.
pub const CONNECTIONS_SCOPE: &str = "connections:admin";

/// One live connection as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionInfo {
    /// The user (`sub`).
    pub user: String,
    /// The session (`sid`), if the token has one.
    pub sid: Option<String>,
    /// The plan of the current token.
    pub plan: Option<String>,
    /// When the connection opened (Unix seconds).
    pub opened_at: u64,
    /// When the current token expires (Unix seconds).
    pub expires_at: u64,
}

impl ConnectionInfo {
    pub(super) fn of(principal: &Principal, opened_at: u64) -> ConnectionInfo {
        ConnectionInfo {
            user: principal.subject().to_owned(),
            sid: principal.session().map(str::to_owned),
            plan: principal.plan().map(str::to_owned),
            opened_at,
            expires_at: principal.expires_at(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Filter {
    user: Option<String>,
    sid: Option<String>,
}

impl Filter {
    fn selection(self) -> Result<Selection, &'static str> {
        match (self.user, self.sid) {
            (Some(user), None) if !user.is_empty() => Ok(Selection::User(user)),
            (None, Some(sid)) if !sid.is_empty() => Ok(Selection::Session(sid)),
            (None, None) => Ok(Selection::All),
            _ => Err("give one of `user` or `sid`"),
        }
    }
}

fn bad_request(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_request", "error_description": description})),
    )
        .into_response()
}

/// `GET` and `DELETE /v1/connections` over `ws`'s live connections, for
/// service tokens with [`CONNECTIONS_SCOPE`] (see the module docs). Merge
/// it into the host's router.
pub fn connections_router(ws: WsAuth) -> Router {
    let require = ws
        .authenticator()
        .require(Requirements::service().scope(CONNECTIONS_SCOPE));
    Router::new()
        .route("/v1/connections", get(list).delete(close))
        .route_layer(require)
        .with_state(ws)
}

async fn list(
    State(ws): State<WsAuth>,
    filter: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let selection = match filter {
        Ok(Query(filter)) => filter.selection(),
        Err(_) => Err("the query is not `user=…` or `sid=…`"),
    };
    match selection {
        Ok(selection) => Json(json!({"connections": ws.connections(&selection)})).into_response(),
        Err(description) => bad_request(description),
    }
}

async fn close(
    State(ws): State<WsAuth>,
    filter: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let selection = match filter {
        Ok(Query(filter)) => filter.selection(),
        Err(_) => Err("the query is not `user=…` or `sid=…`"),
    };
    match selection {
        Ok(Selection::All) => {
            bad_request("name the `user` or the `sid` whose connections to close")
        }
        Ok(selection) => {
            let closed = ws.close_connections(&selection);
            tracing::info!(closed, "WebSocket connections closed by an operator");
            Json(json!({"closed": closed})).into_response()
        }
        Err(description) => bad_request(description),
    }
}
