//! `GET /ws`: the chat over WebSocket (CONTRACT §6).
//!
//! Everything about the token — the handshake, `auth.expiring` /
//! `auth.refresh`, closing on expiry (4401) and revocation (4403), origins,
//! per-user connection limits, size limits, shutdown (1001) — is the SDK's
//! `tollgate_client::ws`; this module only answers the chat's own messages:
//!
//! - `{"type":"chat","text":…}` → `{"type":"chat.reply","text":…}`;
//! - `{"type":"tool.call","id":…,"tool":…,"input"?:…}` →
//!   `{"type":"tool.result","id":…,"tool":…,"result":…}`, or
//!   `{"type":"error","id":…,"code":…,"error_description":…}` (plus
//!   `retry_after_ms` for `rate_limited`). The same [`ToolGate`] as
//!   `POST /api/tools/{tool}`: permissions, rates and counts are shared.
//!
//! Any other `type`, or a member of the wrong shape (a `chat` without a
//! string `text`, a `tool.call` without a string `tool` or with an `input`
//! that is not a string), gets the SDK's
//! `{"type":"error","code":"invalid_message"}` (CONTRACT §6: a newer
//! client is never cut off by an older server). A refused message never
//! closes the connection.
//!
//! [`ToolGate`]: tollgate_client::limits::ToolGate

use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value, json};
use tollgate_client::ws::{AuthenticatedUpgrade, Connection, invalid_message};
use tollgate_client::{AuthError, Principal};

use crate::{AppState, tools};

/// The handshake (checked by the extractor), then the session.
pub(crate) async fn connect(
    State(state): State<AppState>,
    upgrade: AuthenticatedUpgrade,
) -> Response {
    upgrade.on_upgrade(move |connection| session(state, connection))
}

async fn session(state: AppState, mut connection: Connection) {
    while let Some(message) = connection.recv().await {
        // The principal of the latest token: a refresh may change the plan.
        let answer = answer(&state, &connection.principal(), &message).await;
        if connection.send(answer).await.is_err() {
            return;
        }
    }
}

/// The answer to one message (a JSON object with a string `type`).
async fn answer(state: &AppState, principal: &Principal, message: &Value) -> Value {
    let id = message.get("id");
    match message["type"].as_str() {
        Some("chat") => match message.get("text").and_then(Value::as_str) {
            Some(text) => json!({"type": "chat.reply", "text": text}),
            None => invalid_message(message, "a chat message needs a string `text`"),
        },
        Some("tool.call") => call_tool(state, principal, id, message).await,
        _ => invalid_message(
            message,
            "the message type is not one of chat, tool.call, auth.refresh",
        ),
    }
}

async fn call_tool(
    state: &AppState,
    principal: &Principal,
    id: Option<&Value>,
    message: &Value,
) -> Value {
    let Some(tool) = message.get("tool").and_then(Value::as_str) else {
        return invalid_message(message, "a tool call needs a string `tool`");
    };
    let input = match message.get("input") {
        None => "",
        Some(Value::String(input)) => input,
        Some(_) => return invalid_message(message, "a tool call's `input` is a string"),
    };
    if !tools::exists(state.tools.plans(), tool) {
        return error(id, "unknown_tool", "no plan offers this tool");
    }
    match state.tools.admit(principal, tool).await {
        Ok(()) => {
            let mut answer = json!({
                "type": "tool.result",
                "tool": tool,
                "result": tools::run(tool, input),
            });
            if let Some(id) = id {
                answer["id"] = id.clone();
            }
            answer
        }
        Err(err) => {
            let mut answer = error(id, err.code(), &err.to_string());
            if let AuthError::RateLimited { retry_after_ms } = err {
                answer["retry_after_ms"] = retry_after_ms.into();
            }
            answer
        }
    }
}

/// `{"type":"error","id"?,"code","error_description"}`.
fn error(id: Option<&Value>, code: &str, description: &str) -> Value {
    let mut answer = Map::new();
    answer.insert("type".into(), "error".into());
    if let Some(id) = id {
        answer.insert("id".into(), id.clone());
    }
    answer.insert("code".into(), code.into());
    answer.insert("error_description".into(), description.into());
    Value::Object(answer)
}
