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
//! The query is read strictly with the core's form parser: `user` and
//! `sid` only, each once, not both, never empty; anything else is a 400
//! `invalid_request` whose description names the parameter (a typo such as
//! `?usr=ann` must not list, let alone close, every connection).
//!
//! Both need a service token with the scope [`CONNECTIONS_SCOPE`]
//! (`connections:admin`): 401 without a good token, 403
//! `insufficient_scope` for a user token or a service token without it.
//! The answer is about this instance only.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::json;
use tollgate_core::form;

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

/// The parameters `/v1/connections` reads; any other is refused.
const PARAMETERS: [&str; 2] = ["user", "sid"];

/// The connections a query names, read strictly with the core's form
/// parser ([`tollgate_core::form::parse_known`]): only `user` or `sid`,
/// each at most once, not both; no query at all names every connection.
/// An empty value counts as absent, so `?user=` names nothing and is
/// refused rather than read as "everyone". The error is the 400's
/// description.
fn selection(query: Option<&str>) -> Result<Selection, String> {
    let raw = query.unwrap_or_default().as_bytes();
    let mut pairs = form::parse_known(raw, &PARAMETERS).map_err(|error| match error {
        tollgate_core::Error::UnknownParameter { at } => format!(
            "unknown parameter `{}`: give `user` or `sid`",
            named(raw, at)
        ),
        tollgate_core::Error::RepeatedParameter { at } => {
            format!("the `{}` parameter is repeated", named(raw, at))
        }
        _ => "the query is malformed".to_owned(),
    })?;
    match (pairs.pop(), pairs.pop()) {
        (None, _) if raw.iter().all(|b| *b == b'&') => Ok(Selection::All),
        (None, _) => Err("`user` or `sid` needs a value".to_owned()),
        (Some((name, value)), None) if name == "user" => Ok(Selection::User(value)),
        (Some((_, value)), None) => Ok(Selection::Session(value)),
        (Some(_), Some(_)) => Err("give one of `user` or `sid`, not both".to_owned()),
    }
}

/// The name at `at` of `raw` as the error may echo it (the core's rule:
/// short plain names only, never request text).
fn named(raw: &[u8], at: usize) -> String {
    let name = form::name_at(raw, at).unwrap_or_default();
    form::printable(&name).to_owned()
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

async fn list(State(ws): State<WsAuth>, uri: Uri) -> Response {
    match selection(uri.query()) {
        Ok(selection) => Json(json!({"connections": ws.connections(&selection)})).into_response(),
        Err(description) => bad_request(&description),
    }
}

async fn close(State(ws): State<WsAuth>, uri: Uri) -> Response {
    match selection(uri.query()) {
        Ok(Selection::All) => {
            bad_request("name the `user` or the `sid` whose connections to close")
        }
        Ok(selection) => {
            let closed = ws.close_connections(&selection);
            tracing::info!(closed, "WebSocket connections closed by an operator");
            Json(json!({"closed": closed})).into_response()
        }
        Err(description) => bad_request(&description),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Result<Selection, String> {
        Ok(Selection::User(name.to_owned()))
    }

    #[test]
    fn a_query_names_one_user_or_session_or_nothing() {
        assert_eq!(selection(None), Ok(Selection::All));
        assert_eq!(selection(Some("")), Ok(Selection::All));
        assert_eq!(selection(Some("user=ann")), user("ann"));
        assert_eq!(selection(Some("user=a%20b")), user("a b"));
        assert_eq!(
            selection(Some("sid=s-1")),
            Ok(Selection::Session("s-1".to_owned()))
        );
    }

    #[test]
    fn unknown_repeated_empty_or_conflicting_parameters_are_refused() {
        for (query, description) in [
            ("force=1", "unknown parameter `force`: give `user` or `sid`"),
            ("force", "unknown parameter `force`: give `user` or `sid`"),
            (
                "user=ann&force=1",
                "unknown parameter `force`: give `user` or `sid`",
            ),
            ("usr=ann", "unknown parameter `usr`: give `user` or `sid`"),
            ("<b>=1", "unknown parameter `?`: give `user` or `sid`"),
            ("user=ann&user=bob", "the `user` parameter is repeated"),
            ("sid=&sid=x", "the `sid` parameter is repeated"),
            ("user=", "`user` or `sid` needs a value"),
            ("user=ann&sid=s", "give one of `user` or `sid`, not both"),
            ("user=%zz", "the query is malformed"),
        ] {
            assert_eq!(
                selection(Some(query)),
                Err(description.to_owned()),
                "{query}"
            );
        }
    }
}
