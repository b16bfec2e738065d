//! The first-party user API: register, login, refresh, logout, me, and the
//! caller's own sessions.
//!
//! Login safety (CONTRACT §4): argon2 runs on the bounded password pool;
//! an unknown e-mail, a wrong password and a disabled user get the same
//! answer after the same work (a verify against a real or dummy hash);
//! failures are limited per account and per address with a soft back-off.
//! Registrations are limited per address the same way, counting every
//! attempt (each costs a hash); a taken e-mail is answered exactly like a
//! free one, so registration does not tell who has an account.

use axum::extract::State;
use axum::http::StatusCode;
use tollgate_core::Secret;
use tollgate_core::wire::{
    Credentials, ErrorBody, Me, RefreshRequest, Registered, SessionInfo, SessionList, TokenResponse,
};
use tollgate_store::UserRecord;

use crate::accounts::{self, NewUser};
use crate::audit::{Actor, Origin};
use crate::extract::{Json, PathId, Peer, UserAuth};
use crate::state::AppState;
use crate::tokens::{self, FIRST_PARTY_CLIENT};
use crate::{ApiError, input, metrics};
use tollgate_core::audit::{AuditEvent, LoginFailure};

/// `POST /v1/auth/register`.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = Credentials,
    responses((status = 201, body = Registered),
              (status = 400, description = "invalid_email, weak_password, invalid_request", body = ErrorBody),
              (status = 403, description = "registration_closed", body = ErrorBody),
              (status = 429, description = "too_many_attempts from this address, with Retry-After", body = ErrorBody),
              (status = 503, description = "overloaded or the store is down", body = ErrorBody)))]
pub(crate) async fn register(
    State(state): State<AppState>,
    origin: Origin,
    Peer(peer): Peer,
    Json(body): Json<Credentials>,
) -> Result<(StatusCode, axum::Json<Registered>), ApiError> {
    if !state.config.registration_open {
        return Err(ApiError::RegistrationClosed);
    }
    let address = address_key(peer);
    let now = state.now();
    state
        .registrations
        .check(&address, now)
        .await
        .map_err(|retry_after| ApiError::TooManyAttempts { retry_after })?;
    // Counted before the work, successful or not.
    state.registrations.fail(&address, now).await;
    let user = accounts::check_new_user(&state.plans, &body.email, &body.password, None, None)?;
    let email = user.email.clone();
    let registered = match new_user(&state, user, body.password).await {
        Ok(user) => {
            tracing::info!(sub = %user.id, "user registered");
            state
                .audit
                .record(
                    &origin,
                    Actor::anonymous(),
                    AuditEvent::Registered {
                        user_id: user.id.clone(),
                    },
                )
                .await;
            Registered {
                user_id: user.id,
                email: user.email,
            }
        }
        // A taken e-mail gets the answer of a free one, after the same
        // work (the hash came first), with an id that names no account: the
        // endpoint cannot be used to learn who has an account. The owner's
        // password is untouched. The admin API still says `email_taken`.
        Err(ApiError::EmailTaken) => {
            tracing::info!("registration of a taken e-mail answered as a new one");
            Registered {
                user_id: uuid::Uuid::new_v4().to_string(),
                email,
            }
        }
        Err(other) => return Err(other),
    };
    Ok((StatusCode::CREATED, axum::Json(registered)))
}

/// The limiter key of a client address (the TCP peer, or the address a
/// trusted proxy forwarded: see [`crate::forwarded`]).
fn address_key(peer: Option<std::net::IpAddr>) -> String {
    format!(
        "address:{}",
        peer.map(|ip| ip.to_string()).unwrap_or_default()
    )
}

/// Hashes the password on the bounded pool and stores the user.
pub(crate) async fn new_user(
    state: &AppState,
    user: NewUser,
    password: String,
) -> Result<UserRecord, ApiError> {
    // Hash first: a taken e-mail then costs the same as a free one.
    let hash = state.passwords.hash(Secret::from(password)).await?;
    accounts::insert_user(state.store.as_ref(), user, hash, state.now()).await
}

/// `POST /v1/auth/login`.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = TokenResponse),
              (status = 401, description = "invalid_credentials (unknown e-mail, wrong password or disabled user)", body = ErrorBody),
              (status = 429, description = "too_many_attempts, with Retry-After", body = ErrorBody),
              (status = 503, description = "overloaded, with Retry-After", body = ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    origin: Origin,
    Peer(peer): Peer,
    Json(body): Json<Credentials>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    let user = password_login(&state, &origin, peer, &body.email, body.password).await?;
    Ok(axum::Json(
        tokens::start_session(&state, &origin, &user).await?,
    ))
}

/// The password check of every login — `POST /v1/auth/login`, the
/// console's sign-in form and its re-authentication — under the same limits
/// and in the same audit trail: the user when `sent_email` and `password`
/// match an enabled user, else `invalid_credentials` (counted) or
/// `too_many_attempts`.
pub(crate) async fn password_login(
    state: &AppState,
    origin: &Origin,
    peer: Option<std::net::IpAddr>,
    sent_email: &str,
    password: String,
) -> Result<UserRecord, ApiError> {
    let now = state.now();
    // An address that is not an e-mail cannot match a user; it still costs
    // a dummy verify so the answer says nothing.
    let email = input::email(sent_email).unwrap_or_default();
    let address = address_key(peer);
    // The account limit is per account *and* address (issue 15): one
    // address's failures never hold back another's login. The global
    // per-account limit bounds a distributed guesser, and applies only to
    // addresses that have failed for this account themselves, so the owner
    // can always log in from an address that has not failed.
    let account = format!("account:{email}|{address}");
    let account_global = format!("account:{email}");
    let (by_account, by_address, failed_here) = tokio::join!(
        state.account_failures.check(&account, now),
        state.address_failures.check(&address, now),
        state.account_failures.has_failed(&account, now),
    );
    let by_global = if failed_here {
        state
            .account_global_failures
            .check(&account_global, now)
            .await
    } else {
        Ok(())
    };
    let wait = [by_account.err(), by_address.err(), by_global.err()]
        .into_iter()
        .flatten()
        .max();
    if let Some(retry_after) = wait {
        tracing::info!(client = %address, retry_after, "login refused: too many failed attempts");
        state
            .audit
            .record(
                origin,
                Actor::anonymous(),
                AuditEvent::LoginLocked {
                    email_fingerprint: tollgate_core::token_fingerprint(sent_email),
                    retry_after,
                },
            )
            .await;
        return Err(ApiError::TooManyAttempts { retry_after });
    }
    let user = if email.is_empty() {
        None
    } else {
        state.store.find_user_by_email(&email).await?
    };
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = state.passwords.verify(Secret::from(password), hash).await?;
    let user = match user {
        Some(user) if verified.matched && !user.disabled => user,
        user => {
            let (user_id, reason) = match user {
                None => (None, LoginFailure::UnknownAccount),
                Some(user) if !verified.matched => (Some(user.id), LoginFailure::WrongPassword),
                Some(user) => (Some(user.id), LoginFailure::Disabled),
            };
            let now = state.now();
            tokio::join!(
                state.account_failures.fail(&account, now),
                state.account_global_failures.fail(&account_global, now),
                state.address_failures.fail(&address, now),
            );
            tracing::info!(client = %address, "login failed");
            ::metrics::counter!(metrics::LOGIN_FAILURES).increment(1);
            state
                .audit
                .record(
                    origin,
                    Actor::anonymous(),
                    AuditEvent::LoginFailed {
                        user_id,
                        email_fingerprint: tollgate_core::token_fingerprint(sent_email),
                        reason,
                    },
                )
                .await;
            return Err(ApiError::InvalidCredentials);
        }
    };
    state.account_failures.clear(&account).await;
    if let Some(phc) = verified.rehash {
        // Best effort: the login succeeds either way.
        if let Err(error) = state.store.set_password_hash(&user.id, &phc).await {
            tracing::warn!(sub = %user.id, error = %error, "storing a re-hashed password failed");
        }
    }
    Ok(user)
}

/// `POST /v1/auth/refresh`.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse),
              (status = 400, description = "invalid_grant (unknown, expired, used: the session is revoked)", body = ErrorBody)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    origin: Origin,
    Json(body): Json<RefreshRequest>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    let answer = tokens::refresh(
        &state,
        &origin,
        &body.refresh_token,
        FIRST_PARTY_CLIENT,
        None,
    )
    .await?;
    Ok(axum::Json(answer))
}

/// `POST /v1/auth/logout`: ends the token's session.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "The session is ended"),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    origin: Origin,
    UserAuth(claims): UserAuth,
) -> Result<StatusCode, ApiError> {
    if let Some(sid) = &claims.sid {
        state.end_session(sid).await?;
        tracing::info!(sub = %claims.sub, sid = %sid, "logged out");
        state
            .audit
            .record(
                &origin,
                Actor::of(&claims),
                AuditEvent::Logout {
                    user_id: claims.sub.clone(),
                    sid: sid.clone(),
                },
            )
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/auth/me`.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody),
              (status = 503, description = "the revocation view is stale: the token cannot be confirmed", body = ErrorBody)))]
pub(crate) async fn me(UserAuth(claims): UserAuth) -> axum::Json<Me> {
    axum::Json(Me {
        sub: claims.sub,
        email: claims.email.unwrap_or_default(),
        roles: claims.roles,
        plan: claims.plan.unwrap_or_default(),
        permissions: claims.permissions,
        sid: claims.sid.unwrap_or_default(),
    })
}

/// `GET /v1/sessions`: the caller's live sessions.
#[utoipa::path(get, path = "/v1/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody),
              (status = 503, description = "the revocation view is stale: the token cannot be confirmed", body = ErrorBody)))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    UserAuth(claims): UserAuth,
) -> Result<axum::Json<SessionList>, ApiError> {
    let records = state.store.list_sessions(&claims.sub, state.now()).await?;
    let sessions = records
        .into_iter()
        .map(|s| SessionInfo {
            current: claims.sid.as_deref() == Some(s.sid.as_str()),
            sid: s.sid,
            client_id: s.client_id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
        })
        .collect();
    Ok(axum::Json(SessionList { sessions }))
}

/// `DELETE /v1/sessions/{sid}`: ends one of the caller's sessions.
#[utoipa::path(delete, path = "/v1/sessions/{sid}", tag = "auth", security(("bearer" = [])),
    params(("sid" = String, Path, description = "Session id")),
    responses((status = 204, description = "Ended"),
              (status = 404, description = "No such session of the caller's", body = ErrorBody)))]
pub(crate) async fn end_session(
    State(state): State<AppState>,
    origin: Origin,
    UserAuth(claims): UserAuth,
    PathId(sid): PathId,
) -> Result<StatusCode, ApiError> {
    match state.store.find_session(&sid).await? {
        // Another user's session is indistinguishable from none.
        Some(session) if session.user_id == claims.sub => {
            state.end_session(&sid).await?;
            tracing::info!(sub = %claims.sub, sid = %sid, "session ended by its user");
            state
                .audit
                .record(
                    &origin,
                    Actor::of(&claims),
                    AuditEvent::Revoked {
                        kind: "session",
                        value: sid.clone(),
                    },
                )
                .await;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::NotFound),
    }
}
