//! The REST handlers. Each names who may call it by its extractor
//! (`User`, `Service`) or by the layer on its route (see `router`).

use axum::Json;
use axum::extract::{Path, State};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_client::axum::{Service, User};

use crate::{ApiError, AppState, tools};

/// `GET /api/agents/status`.
pub(crate) async fn status(State(state): State<AppState>, User(user): User) -> Json<Value> {
    let tools: Vec<&str> = user
        .claims()
        .permissions
        .iter()
        .filter_map(|p| p.strip_prefix("tool:"))
        .collect();
    let mut body = json!({
        "user": user.subject(),
        "plan": user.plan(),
        "tools": tools,
    });
    match state.peer.agents().await {
        Ok(agents) => body["agents"] = agents,
        Err(code) => {
            body["agents"] = Value::Null;
            body["agents_error"] = code.into();
        }
    }
    Json(body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolCall {
    #[serde(default)]
    input: String,
}

/// `POST /api/tools/{tool}` with an optional JSON body `{"input": "…"}`.
pub(crate) async fn call_tool(
    State(state): State<AppState>,
    User(user): User,
    Path(tool): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if !tools::exists(state.tools.plans(), &tool) {
        return Err(ApiError::UnknownTool);
    }
    let call = if body.is_empty() {
        ToolCall {
            input: String::new(),
        }
    } else {
        serde_json::from_slice::<ToolCall>(&body).map_err(|_| {
            ApiError::BadRequest("the body must be a JSON object {\"input\": string}")
        })?
    };
    state.tools.admit(&user, &tool).await?;
    let calls = state
        .tools
        .usage_of(user.subject())
        .await
        .get(&tool)
        .copied()
        .unwrap_or(0);
    Ok(Json(json!({
        "tool": tool,
        "result": tools::run(&tool, &call.input),
        "calls": calls,
    })))
}

/// `GET /api/usage`.
pub(crate) async fn usage(State(state): State<AppState>, User(user): User) -> Json<Value> {
    Json(json!({
        "user": user.subject(),
        "usage": state.tools.usage_of(user.subject()).await,
    }))
}

/// `GET /api/admin/usage` (role `admin`, checked by the route's layer).
pub(crate) async fn all_usage(State(state): State<AppState>, User(admin): User) -> Json<Value> {
    tracing::info!(admin = admin.subject(), "usage report read");
    Json(json!({ "usage": state.tools.usage_all().await }))
}

/// `GET /internal/agents` (service tokens only, checked by the route's
/// layer).
pub(crate) async fn agents(Service(caller): Service) -> Json<Value> {
    Json(json!({
        "caller": caller.subject(),
        "agents": [
            {"name": "researcher", "status": "idle"},
            {"name": "writer", "status": "idle"},
        ],
    }))
}

/// Anything else.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}
