//! Creating users and service clients: the checks and the writes shared by
//! the HTTP API (registration, admin), the bootstrap admin and the
//! `tollgate user add` / `tollgate client add` commands, so every door
//! applies the same rules.
//!
//! Rules: e-mails are trimmed and lower-cased; passwords follow
//! [`tollgate_core::password::check_policy`]; plans must exist; role and
//! scope names are short identifiers; client ids are 3–64 of
//! `[A-Za-z0-9._-]`, never the first-party client's id nor a user's id.
//! Client secrets come from [`opaque::generate`] and only their digest is
//! stored.

use tollgate_core::config::Config;
use tollgate_core::opaque::{self, CLIENT_SECRET_PREFIX};
use tollgate_core::plans::{DEFAULT_PLAN, Plans};
use tollgate_core::wire::RevocationEvent;
use tollgate_core::{Secret, UnixTime, password};
use tollgate_store::{ClientRecord, NewRevocation, RevocationKind, Store, StoreError, UserRecord};

use crate::tokens::FIRST_PARTY_CLIENT;
use crate::{ApiError, input};

/// A new user's checked fields.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Normalised e-mail.
    pub email: String,
    /// An existing plan (default `free`).
    pub plan: String,
    /// Valid, distinct role names.
    pub roles: Vec<String>,
}

/// Checks a new user's fields and password against the rules.
pub fn check_new_user(
    plans: &Plans,
    email: &str,
    password: &str,
    plan: Option<String>,
    roles: Option<Vec<String>>,
) -> Result<NewUser, ApiError> {
    let email = input::email(email)?;
    password::check_policy(password).map_err(weak)?;
    let plan = check_plan(plans, plan)?.unwrap_or_else(|| DEFAULT_PLAN.to_owned());
    let roles = input::roles(roles.unwrap_or_default())?;
    Ok(NewUser { email, plan, roles })
}

/// Checks a plan name, when one is given.
pub fn check_plan(plans: &Plans, plan: Option<String>) -> Result<Option<String>, ApiError> {
    match plan {
        Some(name) if !plans.contains(&name) => Err(ApiError::UnknownPlan),
        other => Ok(other),
    }
}

/// Checks role names.
pub fn check_roles(roles: Vec<String>) -> Result<Vec<String>, ApiError> {
    input::roles(roles)
}

/// The policy refusal as an API error.
pub(crate) fn weak(error: tollgate_core::Error) -> ApiError {
    match error {
        tollgate_core::Error::WeakPassword(sentence) => ApiError::WeakPassword(sentence),
        other => ApiError::from(other),
    }
}

/// Hashes a password on the blocking pool, without the server's bound
/// (the CLI and the bootstrap admin; requests use the bounded pool).
pub async fn hash_password(password: Secret) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(ApiError::from)
}

/// Stores a user with an already computed hash. `email_taken` when the
/// e-mail is registered.
pub async fn insert_user(
    store: &dyn Store,
    user: NewUser,
    password_hash: String,
    now: UnixTime,
) -> Result<UserRecord, ApiError> {
    let record = UserRecord {
        id: uuid::Uuid::new_v4().to_string(),
        email: user.email,
        password_hash,
        plan: user.plan,
        roles: user.roles,
        disabled: false,
        created_at: now,
    };
    match store.create_user(record.clone()).await {
        Ok(()) => Ok(record),
        Err(StoreError::Conflict(_)) => Err(ApiError::EmailTaken),
        Err(other) => Err(other.into()),
    }
}

/// Registers a service client; returns it and its secret (shown once).
pub async fn create_client(
    store: &dyn Store,
    client_id: &str,
    scopes: Vec<String>,
    now: UnixTime,
) -> Result<(ClientRecord, Secret), ApiError> {
    let client_id = input::client_id(client_id)?;
    let scopes = input::scopes(scopes)?;
    // RFC 9700 §4.15.1: a client must not be able to pose as a user.
    if client_id == FIRST_PARTY_CLIENT || store.find_user(&client_id).await?.is_some() {
        return Err(ApiError::ClientIdTaken);
    }
    let secret = opaque::generate(CLIENT_SECRET_PREFIX)?;
    let record = ClientRecord {
        client_id,
        secret_digest: opaque::digest(secret.expose()),
        scopes,
        created_at: now,
    };
    match store.create_client(record.clone()).await {
        Ok(()) => Ok((record, secret)),
        Err(StoreError::Conflict(_)) => Err(ApiError::ClientIdTaken),
        Err(other) => Err(other.into()),
    }
}

/// Puts `user`'s new plan on the feed (a `plan` notice), kept for as long
/// as a token minted before the change may live, so SDKs apply the new
/// plan's limits at once (the API's PATCH and `tollgate user set --plan`).
pub async fn announce_plan(
    store: &dyn Store,
    config: &Config,
    user: &str,
    plan: &str,
    now: UnixTime,
) -> Result<RevocationEvent, ApiError> {
    let until = now
        .saturating_add(config.access_token_ttl)
        .saturating_add(config.leeway);
    Ok(store.announce_plan(user, plan, now, until).await?)
}

/// Revokes every token of `sub` (a user or client id) issued before `now`
/// and ends the user's sessions, durably. The events are remembered until
/// every token they could kill has expired. Returns the events written.
pub async fn revoke_subject(
    store: &dyn Store,
    config: &Config,
    sub: &str,
    now: UnixTime,
) -> Result<Vec<RevocationEvent>, ApiError> {
    let longest = config.access_token_ttl.max(config.service_token_ttl);
    let revocation = NewRevocation {
        kind: RevocationKind::User,
        value: sub.to_owned(),
        at: now,
        expires_at: now.saturating_add(longest).saturating_add(config.leeway),
    };
    let sessions_until = now
        .saturating_add(config.access_token_ttl)
        .saturating_add(config.leeway);
    Ok(store.revoke_user(revocation, sessions_until).await?)
}
