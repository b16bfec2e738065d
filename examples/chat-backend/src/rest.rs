//! The REST handlers. Each names who may call it by its extractor
//! (`User`, `Service`) or by the layer on its route (see `router`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
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

/// `GET /api/usage`: the caller's calls per tool. With a usage recorder
/// (`ToolGate::with_usage`), the durable figures of the token service
/// (`GET /v1/auth/usage`, the last 30 days, asked with the caller's own
/// token) plus this instance's calls not yet stored there (`"durable":
/// true`); while the token service cannot answer, this process's counts
/// since it started (`"durable": false`); without a recorder, those counts
/// (no `durable` member). A call being
/// delivered at the very moment of the request may show twice (stored and
/// not yet marked delivered) until the next read.
pub(crate) async fn usage(
    State(state): State<AppState>,
    headers: HeaderMap,
    User(user): User,
) -> Json<Value> {
    let sub = user.subject();
    let Some(recorder) = state.tools.recorder() else {
        return Json(json!({ "user": sub, "usage": state.tools.usage_of(sub).await }));
    };
    match durable_usage(&state, &headers).await {
        Ok(mut counts) => {
            for (tool, calls) in recorder.pending_of(sub) {
                *counts.entry(tool).or_insert(0) += calls;
            }
            Json(json!({ "user": sub, "usage": counts, "durable": true }))
        }
        Err(why) => {
            tracing::warn!(
                why,
                "the token service's usage figures cannot be read; answering this process's counts"
            );
            Json(json!({
                "user": sub,
                "usage": state.tools.usage_of(sub).await,
                "durable": false,
            }))
        }
    }
}

/// The caller's durable calls per tool, from the token service.
async fn durable_usage(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<BTreeMap<String, u64>, &'static str> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .ok_or("no Authorization header")?;
    let url = format!(
        "{}/v1/auth/usage",
        state.auth.issuer().trim_end_matches('/')
    );
    let response = state
        .http
        .get(url)
        .header(header::AUTHORIZATION, authorization.clone())
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|_| "the token service cannot be reached")?;
    if !response.status().is_success() {
        return Err("the token service refused the usage report");
    }
    let report: Value = response
        .json()
        .await
        .map_err(|_| "the usage report is not JSON")?;
    let rows = report["rows"]
        .as_array()
        .ok_or("the usage report has no rows")?;
    let mut counts = BTreeMap::new();
    for row in rows {
        if let (Some(tool), Some(calls)) = (row["key"].as_str(), row["calls"].as_u64()) {
            counts.insert(tool.to_owned(), calls);
        }
    }
    Ok(counts)
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
