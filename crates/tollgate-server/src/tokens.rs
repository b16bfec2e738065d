//! Issuing tokens: starting a session (login), rotating a refresh token
//! (`/oauth/token` refresh grant and `/v1/auth/refresh`), and service
//! tokens (client credentials). Shared by the routes so the three doors
//! issue exactly the same tokens.
//!
//! Refresh tokens are opaque ([`tollgate_core::opaque`]), stored only as
//! digests, single use; rotation is the store's one conditional update, and
//! presenting a used token revokes its whole session (RFC 9700 §4.14),
//! except within the reuse grace (`TOLLGATE_REFRESH_REUSE_GRACE`): a
//! successor is derived from the presented token and a stored salt, so a
//! retry whose answer was lost gets the very same successor again.
//! Tokens are never logged; only [`tollgate_core::token_fingerprint`]s.

use tollgate_core::claims::{ServiceGrant, UserGrant, new_id};
use tollgate_core::opaque::{self, REFRESH_PREFIX};
use tollgate_core::wire::TokenResponse;
use tollgate_core::{Secret, UnixTime};
use tollgate_store::{ClientRecord, NewRefresh, Rotation, SessionRecord, UserRecord};

use crate::audit::{Actor, Origin};
use crate::state::AppState;
use crate::{ApiError, input, metrics};
use tollgate_core::audit::AuditEvent;

/// The first-party public client: sessions from `/v1/auth/login` belong to it.
pub const FIRST_PARTY_CLIENT: &str = "tollgate";

/// The scopes of a user session (refresh may narrow them, never widen).
pub const USER_SCOPES: &str = "profile offline_access";

/// Longest refresh token accepted for lookup (ours are 47 characters).
const MAX_REFRESH_LEN: usize = 128;

/// A fresh refresh token and its stored form.
fn new_refresh(now: UnixTime, expires_at: UnixTime) -> Result<(Secret, NewRefresh), ApiError> {
    let token = opaque::generate(REFRESH_PREFIX)?;
    let stored = NewRefresh {
        digest: opaque::digest(token.expose()),
        created_at: now,
        expires_at,
        salt: None,
    };
    Ok((token, stored))
}

/// The successor of `presented` in a rotation, derived with a fresh salt
/// (see [`opaque::successor`]), and its stored form.
fn successor(
    presented: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> Result<(Secret, NewRefresh), ApiError> {
    let salt = opaque::salt()?;
    let token = opaque::successor(presented, &salt);
    let stored = NewRefresh {
        digest: opaque::digest(token.expose()),
        created_at: now,
        expires_at,
        salt: Some(salt),
    };
    Ok((token, stored))
}

fn text(secret: &Secret) -> Result<String, ApiError> {
    secret
        .expose_str()
        .map(str::to_owned)
        .ok_or(ApiError::Internal)
}

/// The user token for `user` in `session` with `scope`.
fn mint_user(
    state: &AppState,
    user: &UserRecord,
    session: &SessionRecord,
    scope: &str,
    now: UnixTime,
) -> Result<(String, u64, String), ApiError> {
    let permissions = match state.plans.find(&user.plan) {
        Some(plan) => plan.permissions(),
        None => {
            tracing::warn!(plan = %user.plan, "a user's plan is not defined; no permissions");
            Vec::new()
        }
    };
    let grant = UserGrant {
        sub: user.id.clone(),
        sid: session.sid.clone(),
        email: user.email.clone(),
        roles: user.roles.clone(),
        plan: user.plan.clone(),
        permissions,
        client_id: session.client_id.clone(),
        scope: scope.to_owned(),
    };
    let ttl = state.config.access_token_ttl;
    let (token, claims) = state.key_set().minter.user(grant, now, ttl)?;
    ::metrics::counter!(metrics::ISSUED, "type" => "access").increment(1);
    Ok((token, ttl, claims.jti))
}

/// Starts a session for `user` (already authenticated) and issues its
/// first access and refresh tokens; records `login.succeeded`.
pub(crate) async fn start_session(
    state: &AppState,
    origin: &Origin,
    user: &UserRecord,
) -> Result<TokenResponse, ApiError> {
    let now = state.now();
    let expires_at = now.saturating_add(state.config.refresh_token_ttl);
    let session = SessionRecord {
        sid: new_id()?,
        user_id: user.id.clone(),
        client_id: FIRST_PARTY_CLIENT.to_owned(),
        scope: USER_SCOPES.to_owned(),
        created_at: now,
        last_used_at: now,
        expires_at,
        revoked_at: None,
    };
    let (refresh, stored) = new_refresh(now, expires_at)?;
    state.store.create_session(session.clone(), stored).await?;
    ::metrics::counter!(metrics::ISSUED, "type" => "refresh").increment(1);
    let (access, ttl, _) = mint_user(state, user, &session, &session.scope, now)?;
    tracing::info!(sub = %user.id, sid = %session.sid, "session started");
    state
        .audit
        .record(
            origin,
            Actor::user(&user.id),
            AuditEvent::LoginSucceeded {
                user_id: user.id.clone(),
                sid: session.sid.clone(),
            },
        )
        .await;
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer".to_owned(),
        expires_in: ttl,
        refresh_token: Some(text(&refresh)?),
        scope: Some(session.scope),
    })
}

/// Rotates `presented` for `client_id`, optionally narrowing the scope of
/// the new access token (the session keeps its scope). Records
/// `token.refreshed`, or `token.refresh_reuse` when a used token comes back.
pub(crate) async fn refresh(
    state: &AppState,
    origin: &Origin,
    presented: &str,
    client_id: &str,
    scope: Option<&str>,
) -> Result<TokenResponse, ApiError> {
    if !presented.starts_with(REFRESH_PREFIX) || presented.len() > MAX_REFRESH_LEN {
        return Err(ApiError::InvalidGrant);
    }
    let digest = opaque::digest(presented.as_bytes());
    let record = state
        .store
        .find_refresh(&digest)
        .await?
        .ok_or(ApiError::InvalidGrant)?;
    let session = state
        .store
        .find_session(&record.sid)
        .await?
        .ok_or(ApiError::InvalidGrant)?;
    // Bound to its client and scope (checked before rotating, so another
    // client cannot burn the token or trigger reuse detection).
    if session.client_id != client_id {
        return Err(ApiError::InvalidGrant);
    }
    let granted: Vec<&str> = session.scope.split(' ').filter(|s| !s.is_empty()).collect();
    let scope = match scope {
        Some(requested) => {
            let requested = input::scope_param(requested)?;
            if !requested.iter().all(|s| granted.contains(&s.as_str())) {
                return Err(ApiError::InvalidScope);
            }
            requested.join(" ")
        }
        None => session.scope.clone(),
    };
    let now = state.now();
    let expires_at = now
        .saturating_add(state.config.refresh_token_ttl)
        .min(session.expires_at);
    let (refresh, stored) = successor(presented, now, expires_at)?;
    let outcome = state
        .store
        .rotate_refresh(
            &digest,
            stored,
            now,
            state.access_horizon(now),
            state.config.refresh_reuse_grace,
        )
        .await?;
    match outcome {
        Rotation::Rotated { session, user } => {
            ::metrics::counter!(metrics::ISSUED, "type" => "refresh").increment(1);
            let (access, ttl, jti) = mint_user(state, &user, &session, &scope, now)?;
            record_refresh(state, origin, &session, false, jti).await;
            Ok(TokenResponse {
                access_token: access,
                token_type: "Bearer".to_owned(),
                expires_in: ttl,
                refresh_token: Some(text(&refresh)?),
                scope: Some(scope),
            })
        }
        Rotation::Retried {
            session,
            user,
            salt,
        } => {
            // A retry within the reuse grace: the same successor again (it
            // is still the session's one live refresh token) and a fresh
            // access token.
            tracing::info!(
                sid = %session.sid,
                token = %tollgate_core::token_fingerprint(presented),
                "a rotated refresh token was presented again within the reuse grace; same successor"
            );
            ::metrics::counter!(metrics::REFRESH_RETRY).increment(1);
            let successor = opaque::successor(presented, &salt);
            let (access, ttl, jti) = mint_user(state, &user, &session, &scope, now)?;
            record_refresh(state, origin, &session, true, jti).await;
            Ok(TokenResponse {
                access_token: access,
                token_type: "Bearer".to_owned(),
                expires_in: ttl,
                refresh_token: Some(text(&successor)?),
                scope: Some(scope),
            })
        }
        Rotation::Reused { event } => {
            tracing::warn!(
                sid = %event.value,
                token = %tollgate_core::token_fingerprint(presented),
                "a used refresh token was presented again; the session is revoked"
            );
            ::metrics::counter!(metrics::REFRESH_REUSE).increment(1);
            state.revoked(std::slice::from_ref(&event));
            state
                .audit
                .record(
                    origin,
                    Actor::anonymous(),
                    AuditEvent::RefreshReuse {
                        sid: event.value.clone(),
                        token_fingerprint: tollgate_core::token_fingerprint(presented),
                    },
                )
                .await;
            Err(ApiError::InvalidGrant)
        }
        Rotation::Invalid => Err(ApiError::InvalidGrant),
    }
}

async fn record_refresh(
    state: &AppState,
    origin: &Origin,
    session: &SessionRecord,
    retried: bool,
    jti: String,
) {
    state
        .audit
        .record(
            origin,
            Actor::user(&session.user_id),
            AuditEvent::Refreshed {
                user_id: session.user_id.clone(),
                sid: session.sid.clone(),
                client_id: session.client_id.clone(),
                retried,
                jti,
            },
        )
        .await;
}

/// A service token for an authenticated client; records `token.issued`. `scope` is the requested
/// scope parameter: it must be within the client's scopes; absent means all
/// of them.
pub(crate) async fn service_token(
    state: &AppState,
    origin: &Origin,
    client: &ClientRecord,
    scope: Option<&str>,
) -> Result<TokenResponse, ApiError> {
    let scopes = match scope {
        Some(requested) => {
            let requested = input::scope_param(requested)?;
            if !requested.iter().all(|s| client.scopes.contains(s)) {
                return Err(ApiError::InvalidScope);
            }
            requested
        }
        None => client.scopes.clone(),
    };
    let scope = scopes.join(" ");
    let now = state.now();
    let ttl = state.config.service_token_ttl;
    let grant = ServiceGrant {
        client_id: client.client_id.clone(),
        scope: scope.clone(),
    };
    let (token, claims) = state.key_set().minter.service(grant, now, ttl)?;
    ::metrics::counter!(metrics::ISSUED, "type" => "service").increment(1);
    state
        .audit
        .record(
            origin,
            Actor::client(&client.client_id),
            AuditEvent::TokenIssued {
                grant: "client_credentials",
                client_id: client.client_id.clone(),
                subject: claims.sub,
                jti: claims.jti,
                scope: scope.clone(),
            },
        )
        .await;
    Ok(TokenResponse {
        access_token: token,
        token_type: "Bearer".to_owned(),
        expires_in: ttl,
        refresh_token: None,
        scope: Some(scope),
    })
}
