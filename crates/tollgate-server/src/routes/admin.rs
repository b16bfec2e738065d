//! The admin API: users (create, read, list, update, revoke all tokens),
//! service clients (register with a secret shown once, list) and signing
//! keys (list, rotate). Callers need role `admin` (a user token) or scope
//! `admin` (a service token) — the [`AdminAuth`] extractor.
//!
//! Client secrets are generated here, returned once, and stored only as a
//! digest; a client id can never equal a user id (RFC 9700 §4.15.1).

use axum::extract::State;
use axum::http::StatusCode;
use tollgate_core::wire::{
    AuditPage, Client, ClientCreated, ClientList, CreateClient, CreateUser, ErrorBody, KeyList,
    Rotated, UpdateUser, User, UserList,
};
use tollgate_store::{
    AuditFilter, AuditRow, ClientRecord, NewRevocation, RevocationKind, UserRecord, UserUpdate,
};

use crate::ApiError;
use crate::accounts::{self, NewUser};
use crate::audit::{Actor, Origin};
use crate::extract::{AdminAuth, Json, PathId, RawQuery};
use crate::routes::auth::new_user;
use crate::state::AppState;
use tollgate_core::Claims;
use tollgate_core::audit::AuditEvent;

fn user_view(user: UserRecord) -> User {
    User {
        user_id: user.id,
        email: user.email,
        plan: user.plan,
        roles: user.roles,
        disabled: user.disabled,
    }
}

/// `POST /v1/admin/users`.
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])), request_body = CreateUser,
    responses((status = 201, body = User),
              (status = 400, description = "invalid_email, weak_password, unknown_plan, invalid_request", body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, description = "email_taken", body = ErrorBody)))]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    origin: Origin,
    AdminAuth(admin): AdminAuth,
    Json(body): Json<CreateUser>,
) -> Result<(StatusCode, axum::Json<User>), ApiError> {
    let user = accounts::check_new_user(
        &state.plans,
        &body.email,
        &body.password,
        body.plan,
        body.roles,
    )?;
    let user = create_user_as(&state, &origin, &admin, user, body.password).await?;
    Ok((StatusCode::CREATED, axum::Json(user_view(user))))
}

/// Creates a checked new user for an admin (the API and the console), in
/// the audit trail.
pub(crate) async fn create_user_as(
    state: &AppState,
    origin: &Origin,
    admin: &Claims,
    user: NewUser,
    password: String,
) -> Result<UserRecord, ApiError> {
    let user = new_user(state, user, password).await?;
    tracing::info!(sub = %user.id, by = %admin.sub, "user created");
    state
        .audit
        .record(
            origin,
            Actor::of(admin),
            AuditEvent::UserCreated {
                user_id: user.id.clone(),
                plan: user.plan.clone(),
                roles: user.roles.clone(),
            },
        )
        .await;
    Ok(user)
}

/// `GET /v1/admin/users/{id}`.
#[utoipa::path(get, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_user(
    State(state): State<AppState>,
    _: AdminAuth,
    PathId(id): PathId,
) -> Result<axum::Json<User>, ApiError> {
    let user = state
        .store
        .find_user(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(user_view(user)))
}

/// `GET /v1/admin/users?after=ID&limit=N`.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("bearer" = [])),
    params(("after" = Option<String>, Query, description = "Last user id of the previous page"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–500 (default 100)")),
    responses((status = 200, body = UserList),
              (status = 400, description = "invalid_request: a malformed, repeated or non-numeric parameter", body = ErrorBody)))]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    _: AdminAuth,
    query: RawQuery,
) -> Result<axum::Json<UserList>, ApiError> {
    let query = query.parse()?;
    let limit = query.number("limit")?.unwrap_or(100).clamp(1, 500) as u32;
    let users = state.store.list_users(query.get("after"), limit).await?;
    Ok(axum::Json(UserList {
        users: users.into_iter().map(user_view).collect(),
    }))
}

/// `PATCH /v1/admin/users/{id}`.
#[utoipa::path(patch, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")), request_body = UpdateUser,
    responses((status = 200, description = "The user; `disabled: true` has revoked every token", body = User),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "last_admin: the change would disable or demote the last enabled admin", body = ErrorBody),
              (status = 503, description = "the store is down; repeat the call", body = ErrorBody)))]
pub(crate) async fn update_user(
    State(state): State<AppState>,
    origin: Origin,
    AdminAuth(admin): AdminAuth,
    PathId(id): PathId,
    Json(body): Json<UpdateUser>,
) -> Result<axum::Json<User>, ApiError> {
    let update = UserUpdate {
        plan: accounts::check_plan(&state.plans, body.plan)?,
        roles: body.roles.map(accounts::check_roles).transpose()?,
        disabled: body.disabled,
    };
    let user = apply_user_update(&state, &origin, &admin, &id, update).await?;
    Ok(axum::Json(user_view(user)))
}

/// Applies a checked update to a user for an admin (the API's PATCH and the
/// console's forms): refuses to lose the last admin, revokes a disabled
/// user's tokens, records both in the audit trail. `NotFound` for an
/// unknown id.
pub(crate) async fn apply_user_update(
    state: &AppState,
    origin: &Origin,
    admin: &Claims,
    id: &str,
    update: UserUpdate,
) -> Result<UserRecord, ApiError> {
    let disabled = update.disabled == Some(true);
    let plan_changed = update.plan.is_some();
    let changes = AuditEvent::UserUpdated {
        user_id: id.to_owned(),
        plan: update.plan.clone(),
        roles: update.roles.clone(),
        disabled: update.disabled,
    };
    refuse_losing_the_last_admin(state, id, &update).await?;
    let user = state
        .store
        .update_user(id, update)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.audit.record(origin, Actor::of(admin), changes).await;
    if plan_changed {
        // Limits follow the new plan without a new token: SDKs read it on
        // the feed. If this fails the answer is 503 and repeating the PATCH
        // finishes the job.
        state.announce_plan(&user.id, &user.plan).await?;
    }
    if disabled {
        // The user can no longer log in or refresh; this kills the tokens
        // already out. If it fails the answer is 503 and repeating the
        // PATCH finishes the job.
        state.revoke_subject(&user.id).await?;
        tracing::info!(sub = %user.id, by = %admin.sub, "user disabled; every token revoked");
        state
            .audit
            .record(
                origin,
                Actor::of(admin),
                AuditEvent::Revoked {
                    kind: "user",
                    value: user.id.clone(),
                },
            )
            .await;
    } else {
        tracing::info!(sub = %user.id, by = %admin.sub, "user updated");
    }
    Ok(user)
}

/// Whether `user` is an enabled admin.
fn is_active_admin(user: &UserRecord) -> bool {
    !user.disabled && user.roles.iter().any(|r| r == "admin")
}

/// 409 `last_admin` when `update` would disable or demote the last enabled
/// admin (issue 15, item 4: otherwise only the offline CLI could make a new
/// one). Two admins demoting each other at the same moment can still both
/// pass this check; the CLI (`tollgate user set`) remains the way back.
async fn refuse_losing_the_last_admin(
    state: &AppState,
    id: &str,
    update: &UserUpdate,
) -> Result<(), ApiError> {
    let Some(target) = state.store.find_user(id).await? else {
        return Ok(());
    };
    let demoted = update
        .roles
        .as_ref()
        .is_some_and(|roles| !roles.iter().any(|r| r == "admin"));
    if !is_active_admin(&target) || !(demoted || update.disabled == Some(true)) {
        return Ok(());
    }
    let mut after: Option<String> = None;
    loop {
        let page = state.store.list_users(after.as_deref(), 500).await?;
        if page.iter().any(|u| u.id != target.id && is_active_admin(u)) {
            return Ok(());
        }
        match page.last() {
            Some(last) if page.len() == 500 => after = Some(last.id.clone()),
            _ => return Err(ApiError::LastAdmin),
        }
    }
}

/// `POST /v1/admin/users/{id}/revoke`.
#[utoipa::path(post, path = "/v1/admin/users/{id}/revoke", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 204, description = "Every token of the user issued before now is dead"),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn revoke_user(
    State(state): State<AppState>,
    origin: Origin,
    AdminAuth(admin): AdminAuth,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    revoke_user_as(&state, &origin, &admin, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every token of user `id` for an admin (the API and the
/// console), in the audit trail. `NotFound` for an unknown id.
pub(crate) async fn revoke_user_as(
    state: &AppState,
    origin: &Origin,
    admin: &Claims,
    id: &str,
) -> Result<UserRecord, ApiError> {
    let user = state.store.find_user(id).await?.ok_or(ApiError::NotFound)?;
    state.revoke_subject(&user.id).await?;
    tracing::info!(sub = %user.id, by = %admin.sub, "every token of the user revoked");
    state
        .audit
        .record(
            origin,
            Actor::of(admin),
            AuditEvent::Revoked {
                kind: "user",
                value: user.id.clone(),
            },
        )
        .await;
    Ok(user)
}

/// `POST /v1/admin/clients`.
#[utoipa::path(post, path = "/v1/admin/clients", tag = "admin", security(("bearer" = [])), request_body = CreateClient,
    responses((status = 201, description = "The secret is shown this once", body = ClientCreated),
              (status = 400, body = ErrorBody), (status = 409, description = "client_id_taken", body = ErrorBody)))]
pub(crate) async fn create_client(
    State(state): State<AppState>,
    origin: Origin,
    AdminAuth(admin): AdminAuth,
    Json(body): Json<CreateClient>,
) -> Result<(StatusCode, axum::Json<ClientCreated>), ApiError> {
    let (record, secret) =
        register_client(&state, &origin, &admin, &body.client_id, body.scopes).await?;
    let secret = secret.expose_str().ok_or(ApiError::Internal)?.to_owned();
    Ok((
        StatusCode::CREATED,
        axum::Json(ClientCreated {
            client_id: record.client_id,
            client_secret: secret,
            scopes: record.scopes,
        }),
    ))
}

/// Registers a client for an admin (the API and the console), in the audit
/// trail: its record and its secret, to be shown once.
pub(crate) async fn register_client(
    state: &AppState,
    origin: &Origin,
    admin: &Claims,
    client_id: &str,
    scopes: Vec<String>,
) -> Result<(ClientRecord, tollgate_core::Secret), ApiError> {
    let (record, secret) =
        accounts::create_client(state.store.as_ref(), client_id, scopes, state.now()).await?;
    // An attempt with this id may have been answered "unknown" and kept
    // (other instances see the client within `clients::TTL`).
    state.clients.forget(&record.client_id);
    tracing::info!(client_id = %record.client_id, by = %admin.sub, "client registered");
    state
        .audit
        .record(
            origin,
            Actor::of(admin),
            AuditEvent::ClientCreated {
                client_id: record.client_id.clone(),
                scopes: record.scopes.clone(),
            },
        )
        .await;
    Ok((record, secret))
}

/// Deletes a client for an admin (the console): its tokens are revoked in
/// the same transaction, this instance forgets it at once (others within
/// `clients::TTL`), in the audit trail. `NotFound` for an unknown id.
pub(crate) async fn delete_client_as(
    state: &AppState,
    origin: &Origin,
    admin: &Claims,
    client_id: &str,
) -> Result<(), ApiError> {
    let now = state.now();
    let longest = state
        .config
        .access_token_ttl
        .max(state.config.service_token_ttl);
    let revocation = NewRevocation {
        kind: RevocationKind::User,
        value: client_id.to_owned(),
        at: now,
        expires_at: now
            .saturating_add(longest)
            .saturating_add(state.config.leeway),
    };
    let event = state
        .store
        .delete_client(client_id, revocation)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.clients.forget(client_id);
    state.revoked(std::slice::from_ref(&event));
    tracing::info!(client_id, by = %admin.sub, "client deleted; its tokens revoked");
    state
        .audit
        .record(
            origin,
            Actor::of(admin),
            AuditEvent::ClientDeleted {
                client_id: client_id.to_owned(),
            },
        )
        .await;
    Ok(())
}

/// Gives a client a new secret for an admin (the console), to be shown
/// once; the old secret stops working here at once (elsewhere within
/// `clients::TTL`). In the audit trail. `NotFound` for an unknown id.
pub(crate) async fn rotate_client_secret_as(
    state: &AppState,
    origin: &Origin,
    admin: &Claims,
    client_id: &str,
) -> Result<tollgate_core::Secret, ApiError> {
    let secret = tollgate_core::opaque::generate(tollgate_core::opaque::CLIENT_SECRET_PREFIX)?;
    let digest = tollgate_core::opaque::digest(secret.expose());
    if !state.store.set_client_secret(client_id, &digest).await? {
        return Err(ApiError::NotFound);
    }
    state.clients.forget(client_id);
    tracing::info!(client_id, by = %admin.sub, "client secret rotated");
    state
        .audit
        .record(
            origin,
            Actor::of(admin),
            AuditEvent::ClientSecretRotated {
                client_id: client_id.to_owned(),
            },
        )
        .await;
    Ok(secret)
}

fn client_view(client: ClientRecord) -> Client {
    Client {
        client_id: client.client_id,
        scopes: client.scopes,
        created_at: client.created_at,
    }
}

/// `GET /v1/admin/clients`.
#[utoipa::path(get, path = "/v1/admin/clients", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = ClientList)))]
pub(crate) async fn list_clients(
    State(state): State<AppState>,
    _: AdminAuth,
) -> Result<axum::Json<ClientList>, ApiError> {
    let clients = state.store.list_clients().await?;
    Ok(axum::Json(ClientList {
        clients: clients.into_iter().map(client_view).collect(),
    }))
}

/// `GET /v1/admin/clients/{id}`.
#[utoipa::path(get, path = "/v1/admin/clients/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Client id")),
    responses((status = 200, body = Client), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_client(
    State(state): State<AppState>,
    _: AdminAuth,
    PathId(id): PathId,
) -> Result<axum::Json<Client>, ApiError> {
    let client = state
        .store
        .find_client(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(client_view(client)))
}

/// `GET /v1/admin/keys`.
#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = KeyList)))]
pub(crate) async fn list_keys(State(state): State<AppState>, _: AdminAuth) -> axum::Json<KeyList> {
    axum::Json(state.keys.list(state.now()))
}

/// `POST /v1/admin/keys/rotate`.
#[utoipa::path(post, path = "/v1/admin/keys/rotate", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "The new active key", body = Rotated),
              (status = 409, description = "rotation_not_supported (HS256)", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn rotate_keys(
    State(state): State<AppState>,
    origin: Origin,
    AdminAuth(admin): AdminAuth,
) -> Result<axum::Json<Rotated>, ApiError> {
    let kid = rotate(&state, &origin, &admin).await?;
    Ok(axum::Json(Rotated { kid }))
}

/// Rotates the signing keys for an admin and publishes the rotation (the
/// API and the console), in the audit trail; the new active key's id.
pub(crate) async fn rotate(
    state: &AppState,
    origin: &Origin,
    admin: &Claims,
) -> Result<String, ApiError> {
    let kid = state.keys.rotate(state.now()).await?;
    // The rotation's `keys` event is in the store: publish it on this
    // instance's feed now, and have the others reload and publish it too.
    state.pump.wake();
    state.announce(crate::fanout::Notice::Keys);
    state.announce(crate::fanout::Notice::Revocations);
    tracing::info!(kid, by = %admin.sub, "keys rotated");
    state
        .audit
        .record(
            origin,
            Actor::of(admin),
            AuditEvent::KeysRotated { kid: kid.clone() },
        )
        .await;
    Ok(kid)
}

/// Largest page of `GET /v1/admin/audit`.
const AUDIT_PAGE_MAX: u64 = 1000;

/// `GET /v1/admin/audit?after=CURSOR&type=…&subject=…&limit=N`: the audit
/// trail, oldest first (docs/audit.md). Events recorded in the last moment
/// may still be in this instance's queue.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("bearer" = [])),
    params(("after" = Option<u64>, Query, description = "Cursor of the last event seen (0, the default, is the start)"),
           ("type" = Option<String>, Query, description = "Only events of this type, e.g. `login.failed`"),
           ("subject" = Option<String>, Query, description = "Only events about this subject (a user id, session id, client id, kid…)"),
           ("limit" = Option<u32>, Query, description = "Page size, 1–1000 (default 100)")),
    responses((status = 200, body = AuditPage),
              (status = 400, description = "invalid_request: a malformed, repeated or non-numeric parameter", body = ErrorBody),
              (status = 503, description = "the store is down, or the revocation view is stale", body = ErrorBody)))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    _: AdminAuth,
    query: RawQuery,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let query = query.parse()?;
    let after = query.number("after")?.unwrap_or(0);
    let limit = query
        .number("limit")?
        .unwrap_or(100)
        .clamp(1, AUDIT_PAGE_MAX) as u32;
    let filter = AuditFilter {
        kind: audit_filter(&query, "type")?,
        subject: audit_filter(&query, "subject")?,
    };
    let rows = state.store.audit_after(after, filter, limit).await?;
    let next_cursor = rows.last().map_or(after, |row| row.cursor);
    Ok(axum::Json(AuditPage {
        events: rows.into_iter().map(AuditRow::into_record).collect(),
        next_cursor,
    }))
}

/// A filter value: at most 256 visible characters (what a stored type or
/// subject can be), else `invalid_request`.
fn audit_filter<'q>(
    query: &'q crate::extract::Query,
    name: &'static str,
) -> Result<Option<&'q str>, ApiError> {
    match query.get(name) {
        Some(value) if value.len() > 256 || value.chars().any(char::is_control) => {
            Err(ApiError::InvalidRequest(std::borrow::Cow::Owned(format!(
                "the `{name}` parameter is too long or has control characters"
            ))))
        }
        value => Ok(value),
    }
}
