//! The OAuth endpoints: `/oauth/token` (RFC 6749: refresh_token and
//! client_credentials grants), `/oauth/introspect` (RFC 7662) and
//! `/oauth/revoke` (RFC 7009).
//!
//! All three take form bodies only and answer with `Cache-Control:
//! no-store` (set by the router). The password grant is refused (RFC 9700
//! §2.4). Refresh tokens of the first-party public client (`tollgate`) need
//! no client secret; every other client authenticates with
//! `client_secret_basic` or `client_secret_post`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tollgate_core::Expect;
use tollgate_core::opaque::{self, REFRESH_PREFIX};
use tollgate_core::wire::{ErrorBody, Introspection, TokenResponse};
use tollgate_store::{ClientRecord, NewRevocation, RevocationKind};

use crate::ApiError;
use crate::audit::{Actor, Origin};
use crate::extract::{Form, authenticate_client};
use crate::state::AppState;
use crate::tokens::{self, FIRST_PARTY_CLIENT};
use tollgate_core::audit::AuditEvent;

/// The caller of an endpoint that public clients may use: an authenticated
/// client, or the first-party public client (no secret; a `client_id`
/// parameter, when sent, must be `tollgate`).
async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(String, Option<ClientRecord>), ApiError> {
    match authenticate_client(state, headers, Some(form)).await? {
        Some(client) => Ok((client.client_id.clone(), Some(client))),
        None => match form.get("client_id") {
            None | Some(FIRST_PARTY_CLIENT) => Ok((FIRST_PARTY_CLIENT.to_owned(), None)),
            // A confidential client that did not authenticate.
            Some(_) => Err(ApiError::InvalidClient),
        },
    }
}

/// `POST /oauth/token`.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth", security((), ("client" = [])),
    request_body(content_type = "application/x-www-form-urlencoded",
        description = "`grant_type=refresh_token&refresh_token=…[&scope=…]` or `grant_type=client_credentials[&scope=…]` with client authentication"),
    responses((status = 200, body = TokenResponse),
              (status = 400, description = "invalid_request, invalid_grant, invalid_scope, unsupported_grant_type", body = ErrorBody),
              (status = 401, description = "invalid_client", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn token(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    form: Form,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    let grant_type = form.require("grant_type")?;
    let answer = match grant_type {
        "refresh_token" => {
            let (client_id, _) = caller(&state, &headers, &form).await?;
            let presented = form.require("refresh_token")?;
            tokens::refresh(&state, &origin, presented, &client_id, form.get("scope")).await?
        }
        "client_credentials" => {
            let client = authenticate_client(&state, &headers, Some(&form))
                .await?
                .ok_or(ApiError::InvalidClient)?;
            tokens::service_token(&state, &origin, &client, form.get("scope")).await?
        }
        _ => return Err(ApiError::UnsupportedGrantType),
    };
    Ok(axum::Json(answer))
}

/// `POST /oauth/introspect`.
#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth", security(("client" = [])),
    request_body(content_type = "application/x-www-form-urlencoded", description = "`token=…[&token_type_hint=…]`, client with scope `introspect`"),
    responses((status = 200, description = "`{\"active\": false}` or the token's claims", body = Introspection),
              (status = 401, description = "invalid_client", body = ErrorBody),
              (status = 403, description = "the client lacks scope `introspect`", body = ErrorBody),
              (status = 429, description = "rate_limited", body = ErrorBody),
              (status = 503, description = "the store cannot be read: the answer would not be certain", body = ErrorBody)))]
pub(crate) async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<axum::Json<Introspection>, ApiError> {
    let client = authenticate_client(&state, &headers, Some(&form))
        .await?
        .ok_or(ApiError::InvalidClient)?;
    if !client.scopes.iter().any(|s| s == "introspect") {
        return Err(ApiError::InsufficientScope);
    }
    state
        .introspection_rate
        .take(&client.client_id)
        .map_err(|retry_after_ms| ApiError::RateLimited { retry_after_ms })?;
    let token = form.require("token")?;
    if token.starts_with(REFRESH_PREFIX) {
        return introspect_refresh(&state, token).await.map(axum::Json);
    }
    // A stale view could miss another instance's revocation: no answer is
    // better than a wrong `active: true` (the rule bearer routes follow).
    Ok(axum::Json(match state.authenticate(token, Expect::Any) {
        Ok(claims) => Introspection::active(&claims),
        Err(ApiError::Unavailable) => return Err(ApiError::Unavailable),
        Err(_) => Introspection::inactive(),
    }))
}

async fn introspect_refresh(state: &AppState, token: &str) -> Result<Introspection, ApiError> {
    if token.len() > 128 {
        return Ok(Introspection::inactive());
    }
    let now = state.now();
    let Some(record) = state
        .store
        .find_refresh(&opaque::digest(token.as_bytes()))
        .await?
    else {
        return Ok(Introspection::inactive());
    };
    if record.used_at.is_some() || record.expires_at <= now {
        return Ok(Introspection::inactive());
    }
    let Some(session) = state.store.find_session(&record.sid).await? else {
        return Ok(Introspection::inactive());
    };
    if session.revoked_at.is_some() || session.expires_at <= now {
        return Ok(Introspection::inactive());
    }
    let Some(user) = state.store.find_user(&session.user_id).await? else {
        return Ok(Introspection::inactive());
    };
    if user.disabled {
        return Ok(Introspection::inactive());
    }
    let mut answer = Introspection::inactive();
    answer.active = true;
    answer.iss = Some(state.config.issuer.clone());
    answer.sub = Some(user.id);
    answer.exp = Some(record.expires_at);
    answer.iat = Some(record.created_at);
    answer.client_id = Some(session.client_id);
    answer.scope = Some(session.scope);
    answer.token_type = Some("refresh".to_owned());
    answer.username = Some(user.email);
    answer.sid = Some(session.sid);
    Ok(answer)
}

/// `POST /oauth/revoke`.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth", security((), ("client" = [])),
    request_body(content_type = "application/x-www-form-urlencoded", description = "`token=…[&token_type_hint=…]`; client authentication unless the token is the first-party client's"),
    responses((status = 200, description = "Done, or nothing to do (unknown tokens included)"),
              (status = 401, description = "invalid_client", body = ErrorBody),
              (status = 503, description = "the revocation could not be made durable; nothing was revoked", body = ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    form: Form,
) -> Result<StatusCode, ApiError> {
    let (caller, client) = caller(&state, &headers, &form).await?;
    let may_revoke_any = client
        .as_ref()
        .is_some_and(|c| c.scopes.iter().any(|s| s == "revoke"));
    let token = form.require("token")?;
    // token_type_hint is only a hint (RFC 7009 §2.1): the token's shape says.
    if token.starts_with(REFRESH_PREFIX) {
        if token.len() > 128 {
            return Ok(StatusCode::OK);
        }
        let digest = opaque::digest(token.as_bytes());
        let Some(record) = state.store.find_refresh(&digest).await? else {
            return Ok(StatusCode::OK);
        };
        let Some(session) = state.store.find_session(&record.sid).await? else {
            return Ok(StatusCode::OK);
        };
        if session.client_id == caller || may_revoke_any {
            state.end_session(&session.sid).await?;
            tracing::info!(sid = %session.sid, by = %caller, "refresh token revoked: session ended");
            // A public client's caller is the token's holder.
            let actor = if client.is_some() {
                Actor::client(&caller)
            } else {
                Actor::user(&session.user_id)
            };
            state
                .audit
                .record(
                    &origin,
                    actor,
                    AuditEvent::Revoked {
                        kind: "session",
                        value: session.sid.clone(),
                    },
                )
                .await;
        }
        return Ok(StatusCode::OK);
    }
    // An invalid, expired or already revoked token needs nothing done.
    let Ok(claims) = state.validate(token, Expect::Any) else {
        return Ok(StatusCode::OK);
    };
    if claims.client_id != caller && !may_revoke_any {
        return Ok(StatusCode::OK);
    }
    let now = state.now();
    let event = state
        .store
        .revoke_token(NewRevocation {
            kind: RevocationKind::Token,
            value: claims.jti.clone(),
            at: now,
            expires_at: claims.exp.saturating_add(state.config.leeway),
        })
        .await?;
    state.revoked(std::slice::from_ref(&event));
    tracing::info!(jti = %claims.jti, by = %caller, "token revoked");
    let actor = if client.is_some() {
        Actor::client(&caller)
    } else {
        Actor::of(&claims)
    };
    state
        .audit
        .record(
            &origin,
            actor,
            AuditEvent::Revoked {
                kind: "token",
                value: claims.jti.clone(),
            },
        )
        .await;
    Ok(StatusCode::OK)
}
