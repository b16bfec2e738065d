//! Wire bodies shared by the server and the SDK (version 1).
//!
//! Every JSON body that crosses HTTP between Tollgate pieces is defined once,
//! here, so the server and `tollgate-client` cannot disagree about a field.
//! Field docs give the role; CONTRACT §4 gives the endpoints. Optional
//! fields are omitted when absent, never sent as `null`.

use serde::{Deserialize, Serialize};

use crate::UnixTime;
use crate::claims::Claims;

macro_rules! wire {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        $(#[$m])*
        pub struct $name { $($body)* }
    };
    // A body that carries a token, a password or a secret: its `Debug` is
    // written by hand (below) and shows those fields as `[redacted]`.
    (secret $(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        $(#[$m])*
        pub struct $name { $($body)* }
    };
}

/// The `Debug` of a secret-bearing wire body: `[redacted]` for `secret`
/// fields (or `Some([redacted])` / `None` for optional ones).
macro_rules! redacted_debug {
    ($name:ident { $($field:ident),* } secret { $($secret:ident),* } optional { $($opt:ident),* }) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), &self.$field))*
                    $(.field(stringify!($secret), &crate::secret::REDACTED))*
                    $(.field(stringify!($opt), &self.$opt.as_ref().map(|_| crate::secret::REDACTED)))*
                    .finish()
            }
        }
    };
}

wire! {
    /// Every error answer: `{"error": code, "error_description": sentence}`.
    pub struct ErrorBody {
        /// Stable machine code (RFC 6749 §5.2 codes at the OAuth endpoints).
        pub error: String,
        /// A sentence for humans; never contains a token or secret.
        pub error_description: String,
        /// Milliseconds to wait, for `rate_limited`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retry_after_ms: Option<u64>,
    }
}

impl ErrorBody {
    /// An error body.
    pub fn new(error: impl Into<String>, description: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            error_description: description.into(),
            retry_after_ms: None,
        }
    }
}

wire! {
    secret
    /// A token answer (RFC 6749 §5.1), from `/oauth/token`, login and refresh.
    pub struct TokenResponse {
        /// The access token (a JWS).
        pub access_token: String,
        /// Always `Bearer`.
        pub token_type: String,
        /// Seconds until the access token expires.
        pub expires_in: u64,
        /// The new refresh token (login and refresh only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub refresh_token: Option<String>,
        /// Granted scopes, space-separated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scope: Option<String>,
    }
}

wire! {
    /// An introspection answer (RFC 7662 §2.2). Inactive tokens are exactly
    /// `{"active": false}`; active ones carry the token's claims.
    pub struct Introspection {
        /// Whether the token is currently valid.
        pub active: bool,
        /// Issuer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub iss: Option<String>,
        /// Subject.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sub: Option<String>,
        /// Audiences.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub aud: Option<Vec<String>>,
        /// Expiry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub exp: Option<UnixTime>,
        /// Issue time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub iat: Option<UnixTime>,
        /// Not-before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub nbf: Option<UnixTime>,
        /// Token id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub jti: Option<String>,
        /// Client the token was issued to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub client_id: Option<String>,
        /// Scopes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scope: Option<String>,
        /// `access` (user), `service` or `refresh`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub token_type: Option<String>,
        /// The user's e-mail, as RFC 7662 `username`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub username: Option<String>,
        /// Session id (user tokens).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub sid: Option<String>,
        /// E-mail (user tokens).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub email: Option<String>,
        /// Roles (user tokens).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub roles: Option<Vec<String>>,
        /// Plan (user tokens).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub plan: Option<String>,
        /// Permissions (user tokens).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub permissions: Option<Vec<String>>,
    }
}

impl Introspection {
    /// `{"active": false}`.
    pub fn inactive() -> Introspection {
        Introspection {
            active: false,
            iss: None,
            sub: None,
            aud: None,
            exp: None,
            iat: None,
            nbf: None,
            jti: None,
            client_id: None,
            scope: None,
            token_type: None,
            username: None,
            sid: None,
            email: None,
            roles: None,
            plan: None,
            permissions: None,
        }
    }

    /// The answer for a valid access or service token.
    pub fn active(claims: &Claims) -> Introspection {
        let user = claims.is_user();
        Introspection {
            active: true,
            iss: Some(claims.iss.clone()),
            sub: Some(claims.sub.clone()),
            aud: Some(claims.aud.clone()),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            nbf: claims.nbf,
            jti: Some(claims.jti.clone()),
            client_id: Some(claims.client_id.clone()),
            scope: Some(claims.scope.clone()),
            token_type: Some(claims.token_type.as_str().to_owned()),
            username: claims.email.clone(),
            sid: claims.sid.clone(),
            email: claims.email.clone(),
            roles: user.then(|| claims.roles.clone()),
            plan: claims.plan.clone(),
            permissions: user.then(|| claims.permissions.clone()),
        }
    }
}

impl Introspection {
    /// The claims of an active answer, shape-checked like a token's
    /// (the inverse of [`Introspection::active`]). An inactive answer, a
    /// missing required claim or a `token_type` that is neither `access` nor
    /// `service` (a refresh token) is an error.
    pub fn claims(&self) -> Result<Claims, crate::Error> {
        use crate::Error;
        use crate::claims::TokenType;
        if !self.active {
            return Err(Error::Revoked);
        }
        let text = |v: &Option<String>, name| v.clone().ok_or(Error::MissingClaim(name));
        let token_type = match self.token_type.as_deref() {
            Some("access") => TokenType::Access,
            Some("service") => TokenType::Service,
            Some(_) => return Err(Error::WrongTokenType),
            None => return Err(Error::MissingClaim("token_type")),
        };
        let claims = Claims {
            iss: text(&self.iss, "iss")?,
            sub: text(&self.sub, "sub")?,
            aud: self.aud.clone().ok_or(Error::MissingClaim("aud"))?,
            exp: self.exp.ok_or(Error::MissingClaim("exp"))?,
            iat: self.iat.ok_or(Error::MissingClaim("iat"))?,
            nbf: self.nbf,
            jti: text(&self.jti, "jti")?,
            client_id: text(&self.client_id, "client_id")?,
            scope: self.scope.clone().unwrap_or_default(),
            token_type,
            sid: self.sid.clone(),
            email: self.email.clone(),
            roles: self.roles.clone().unwrap_or_default(),
            plan: self.plan.clone(),
            permissions: self.permissions.clone().unwrap_or_default(),
        };
        claims.check_shape()?;
        Ok(claims)
    }
}

/// What a revocation kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RevocationKind {
    /// One token, by `jti`.
    Token,
    /// A session and every token with its `sid`.
    Session,
    /// Every token of a user (or client) issued before `at`.
    User,
    /// Not a revocation: the signing keys rotated. `value` names the key
    /// ids a follower must now hold, the active key's then the next key's,
    /// separated by a space ([`RevocationEvent::key_ids`]). An SDK
    /// refetches the JWKS at once (past its cool-down) until it holds them.
    Keys,
    /// Not a revocation: an admin changed a user's plan. `value` is the
    /// user id and the new plan separated by a space
    /// ([`RevocationEvent::plan`], [`RevocationEvent::plan_change`]). An SDK
    /// applies the new plan's limits to the user's live connections and next
    /// calls; the tokens' `plan` claim stays what it was minted with.
    Plan,
}

wire! {
    /// One entry of the revocation feed.
    pub struct RevocationEvent {
        /// Position in the feed; strictly increasing. The SSE event id.
        pub cursor: u64,
        /// What is revoked.
        pub kind: RevocationKind,
        /// The `jti`, `sid` or `sub` revoked (for `keys`: the key ids, see
        /// [`RevocationKind::Keys`]).
        pub value: String,
        /// When the revocation happened; for `user`, the cut-off: tokens
        /// issued before it are dead.
        pub at: UnixTime,
        /// After this moment every token the entry could kill has expired,
        /// so the entry may be forgotten.
        pub expires_at: UnixTime,
    }
}

impl RevocationEvent {
    /// For a `keys` event: the key ids it names (active, then next).
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        let ids = if self.kind == RevocationKind::Keys {
            self.value.as_str()
        } else {
            ""
        };
        ids.split(' ').filter(|id| !id.is_empty())
    }

    /// The `value` of a `plan` event: `"<sub> <plan>"`. Neither part may be
    /// empty or hold a space (user ids and plan names never do).
    pub fn plan_value(sub: &str, plan: &str) -> String {
        format!("{sub} {plan}")
    }

    /// For a `plan` event: the user and their new plan, or `None` for any
    /// other kind or a value that is not exactly two non-empty words.
    pub fn plan(&self) -> Option<(&str, &str)> {
        if self.kind != RevocationKind::Plan {
            return None;
        }
        let (sub, plan) = self.value.split_once(' ')?;
        (!sub.is_empty() && !plan.is_empty() && !plan.contains(' ')).then_some((sub, plan))
    }

    /// Whether the event revokes anything (`keys` and `plan` events do not).
    pub fn is_revocation(&self) -> bool {
        matches!(
            self.kind,
            RevocationKind::Token | RevocationKind::Session | RevocationKind::User
        )
    }
}

wire! {
    /// A page of the revocation feed (`GET /v1/revocations?after=CURSOR`).
    pub struct RevocationPage {
        /// Events after the requested cursor, oldest first.
        pub events: Vec<RevocationEvent>,
        /// The cursor to ask from next (the last event's, or the request's).
        pub next_cursor: u64,
        /// Whether more events are waiting beyond this page.
        pub has_more: bool,
    }
}

/// Most events one `POST /v1/usage/events` batch may carry.
pub const MAX_USAGE_BATCH: usize = 1000;

/// Largest `POST /v1/usage/events` body, in bytes: a full batch of events
/// whose names are all at the longest allowed
/// ([`crate::usage::MAX_NAME_BYTES`]) fits.
pub const MAX_USAGE_BODY_BYTES: usize = 1024 * 1024;

wire! {
    /// One admitted tool call, as a service reports it for billing. The
    /// idempotency key is (`service`, `instance`, `seq`): a second delivery
    /// of the same key is counted once.
    #[serde(deny_unknown_fields)]
    pub struct UsageEvent {
        /// The reporting service (its client id, say `chat-backend`).
        pub service: String,
        /// The reporting process of that service (unique per process start).
        pub instance: String,
        /// Sequence number within the instance; never reused by it.
        pub seq: u64,
        /// The user (`sub`) who made the call.
        pub user: String,
        /// The tool called.
        pub tool: String,
        /// The plan the call was admitted under.
        pub plan: String,
        /// When the call was admitted (Unix seconds).
        pub at: UnixTime,
    }
}

wire! {
    /// `POST /v1/usage/events` body: at most [`MAX_USAGE_BATCH`] events,
    /// stored all or none.
    #[serde(deny_unknown_fields)]
    pub struct UsageBatch {
        /// The events, in any order.
        pub events: Vec<UsageEvent>,
    }
}

wire! {
    /// `POST /v1/usage/events` answer (200).
    pub struct UsageAccepted {
        /// Events stored now.
        pub accepted: u64,
        /// Events whose key was already stored (delivered before): not
        /// counted again.
        pub duplicates: u64,
    }
}

wire! {
    /// One row of a usage report.
    pub struct UsageRow {
        /// The user, in a report over every user (one row per user and
        /// group, for billing); absent in a report on one user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user: Option<String>,
        /// The group: a tool name, a day (`YYYY-MM-DD`, UTC) or a plan.
        pub key: String,
        /// Calls in the group.
        pub calls: u64,
    }
}

wire! {
    /// `GET /v1/usage` and `GET /v1/auth/usage` answer.
    pub struct UsageReport {
        /// The user reported on; absent for every user.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user: Option<String>,
        /// Start of the period (Unix seconds, inclusive; counted by hour).
        pub from: UnixTime,
        /// End of the period (Unix seconds, exclusive; counted by hour).
        pub to: UnixTime,
        /// `tool`, `day` or `plan`.
        pub group_by: String,
        /// One row per group (per user and group over every user), ordered
        /// by user, then key.
        pub rows: Vec<UsageRow>,
        /// Sum of the rows' calls.
        pub total: u64,
    }
}

wire! {
    /// One key of a fingerprint.
    pub struct FingerprintKey {
        /// Key id.
        pub kid: String,
        /// Algorithm.
        pub alg: String,
        /// RFC 7638 thumbprint.
        pub thumbprint: String,
        /// The key's status at the token service (`next`, `active`,
        /// `verify_only`); services omit it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status: Option<String>,
    }
}

wire! {
    /// What must agree across services (`GET /v1/fingerprint`, CONTRACT §7).
    /// A field a service does not know is omitted and not compared.
    pub struct Fingerprint {
        /// Which piece answers (`tollgate`, or the service's name).
        pub service: String,
        /// The issuer trusted (or, for the token service, used).
        pub issuer: String,
        /// Audiences issued (token service) or expected (a service).
        pub audiences: Vec<String>,
        /// Algorithms signed with or accepted.
        pub algorithms: Vec<String>,
        /// Keys that verify.
        pub keys: Vec<FingerprintKey>,
        /// Access token lifetime, seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub access_token_ttl: Option<u64>,
        /// Refresh token lifetime, seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub refresh_token_ttl: Option<u64>,
        /// Service token lifetime, seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub service_token_ttl: Option<u64>,
        /// Clock-skew leeway, seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub leeway: Option<u64>,
        /// Keyed 64-bit fingerprint of the shared HS256 secret, if one is held.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub secret_fingerprint: Option<String>,
        /// During an HS256 secret rotation: the keyed fingerprint of the
        /// previous secret, which still verifies (never signs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub previous_secret_fingerprint: Option<String>,
        /// When the previous secret stops verifying (Unix seconds).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub previous_secret_until: Option<UnixTime>,
    }
}

wire! {
    /// `GET /v1/auth/me`.
    pub struct Me {
        /// User id.
        pub sub: String,
        /// E-mail.
        pub email: String,
        /// Roles.
        pub roles: Vec<String>,
        /// Plan.
        pub plan: String,
        /// Permissions.
        pub permissions: Vec<String>,
        /// The session of the presented token.
        pub sid: String,
    }
}

wire! {
    secret
    /// `{email, password}` for register and login.
    /// Unknown members are refused (issue 15, item 7), not ignored.
    #[serde(deny_unknown_fields)]
    pub struct Credentials {
        /// E-mail address.
        pub email: String,
        /// Password (never logged, never echoed).
        pub password: String,
    }
}

wire! {
    /// `POST /v1/auth/register` answer.
    pub struct Registered {
        /// The new user's id.
        pub user_id: String,
        /// E-mail address.
        pub email: String,
    }
}

wire! {
    secret
    /// `POST /v1/auth/refresh` body.
    pub struct RefreshRequest {
        /// The refresh token to rotate.
        pub refresh_token: String,
    }
}

wire! {
    /// One session of the caller (`GET /v1/sessions`).
    pub struct SessionInfo {
        /// Session id (the tokens' `sid`).
        pub sid: String,
        /// Client the session belongs to.
        pub client_id: String,
        /// When the session began.
        pub created_at: UnixTime,
        /// When its refresh token was last used.
        pub last_used_at: UnixTime,
        /// When the session ends at the latest.
        pub expires_at: UnixTime,
        /// Whether the presented token belongs to this session.
        pub current: bool,
    }
}

wire! {
    /// `GET /v1/sessions`.
    pub struct SessionList {
        /// The caller's live sessions, newest first.
        pub sessions: Vec<SessionInfo>,
    }
}

wire! {
    secret
    /// `POST /v1/admin/users` body.
    /// Unknown members are refused (issue 15, item 7), not ignored.
    #[serde(deny_unknown_fields)]
    pub struct CreateUser {
        /// E-mail address.
        pub email: String,
        /// Password.
        pub password: String,
        /// Plan; `free` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub plan: Option<String>,
        /// Roles; none when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub roles: Option<Vec<String>>,
    }
}

wire! {
    /// `PATCH /v1/admin/users/{id}` body; absent fields are left alone.
    /// Unknown members are refused (issue 15, item 7), not ignored.
    #[serde(deny_unknown_fields)]
    pub struct UpdateUser {
        /// New plan.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub plan: Option<String>,
        /// New roles (replacing the old ones).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub roles: Option<Vec<String>>,
        /// Disable (revoking every token at once) or re-enable.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub disabled: Option<bool>,
    }
}

wire! {
    /// A user as the admin API shows it.
    pub struct User {
        /// User id.
        pub user_id: String,
        /// E-mail address.
        pub email: String,
        /// Plan.
        pub plan: String,
        /// Roles.
        pub roles: Vec<String>,
        /// Whether the user is disabled.
        pub disabled: bool,
    }
}

wire! {
    /// `GET /v1/admin/users`.
    pub struct UserList {
        /// Users, oldest first.
        pub users: Vec<User>,
    }
}

wire! {
    /// `POST /v1/admin/clients` body.
    /// Unknown members are refused (issue 15, item 7), not ignored.
    #[serde(deny_unknown_fields)]
    pub struct CreateClient {
        /// The client id to register.
        pub client_id: String,
        /// Scopes the client may ask for.
        #[serde(default)]
        pub scopes: Vec<String>,
    }
}

wire! {
    secret
    /// `POST /v1/admin/clients` answer; the secret is never shown again.
    pub struct ClientCreated {
        /// Client id.
        pub client_id: String,
        /// The client secret, shown once.
        pub client_secret: String,
        /// Scopes the client may ask for.
        pub scopes: Vec<String>,
    }
}

wire! {
    /// A service client, without its secret.
    pub struct Client {
        /// Client id.
        pub client_id: String,
        /// Scopes the client may ask for.
        pub scopes: Vec<String>,
        /// When it was registered.
        pub created_at: UnixTime,
    }
}

wire! {
    /// `GET /v1/admin/clients`.
    pub struct ClientList {
        /// Clients, oldest first.
        pub clients: Vec<Client>,
    }
}

wire! {
    /// One signing key as the admin API shows it.
    pub struct KeyInfo {
        /// Key id.
        pub kid: String,
        /// Algorithm.
        pub alg: String,
        /// `active`, `verify_only` or `retired`.
        pub status: String,
        /// When the key was made.
        pub created_at: UnixTime,
        /// When a verify-only key retires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub retire_at: Option<UnixTime>,
    }
}

wire! {
    /// `GET /v1/admin/keys`.
    pub struct KeyList {
        /// Keys, newest first.
        pub keys: Vec<KeyInfo>,
    }
}

wire! {
    /// `POST /v1/admin/keys/rotate` answer.
    pub struct Rotated {
        /// The new active key.
        pub kid: String,
    }
}

wire! {
    /// RFC 8414 authorization server metadata, with Tollgate's extensions.
    pub struct ServerMetadata {
        /// Issuer; exactly the tokens' `iss`.
        pub issuer: String,
        /// Token endpoint.
        pub token_endpoint: String,
        /// JWKS; absent for HS256 deployments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub jwks_uri: Option<String>,
        /// Introspection endpoint (RFC 7662).
        pub introspection_endpoint: String,
        /// Revocation endpoint (RFC 7009).
        pub revocation_endpoint: String,
        /// Grant types.
        pub grant_types_supported: Vec<String>,
        /// Response types. Tollgate has no authorization endpoint, so there
        /// are none, and RFC 8414 §3.2 says a member with zero elements is
        /// omitted: the member is left out when empty and read as empty
        /// when absent.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub response_types_supported: Vec<String>,
        /// Client authentication at the token endpoint.
        pub token_endpoint_auth_methods_supported: Vec<String>,
        /// Client authentication at introspection.
        pub introspection_endpoint_auth_methods_supported: Vec<String>,
        /// Client authentication at revocation.
        pub revocation_endpoint_auth_methods_supported: Vec<String>,
        /// Scopes a client may be given.
        pub scopes_supported: Vec<String>,
        /// Token signing algorithms.
        pub token_signing_alg_values_supported: Vec<String>,
        /// Tollgate: the revocation feed (`GET`, and `/stream` for SSE).
        pub tollgate_revocations_endpoint: String,
        /// Tollgate: the fingerprint endpoint.
        pub tollgate_fingerprint_endpoint: String,
    }
}

redacted_debug!(TokenResponse { token_type, expires_in, scope } secret { access_token } optional { refresh_token });
redacted_debug!(Credentials { email } secret { password } optional {});
redacted_debug!(RefreshRequest {} secret { refresh_token } optional {});
redacted_debug!(CreateUser { email, plan, roles } secret { password } optional {});
redacted_debug!(ClientCreated { client_id, scopes } secret { client_secret } optional {});

wire! {
    /// One event of the audit trail (`GET /v1/admin/audit`, `tollgate audit
    /// tail --json`). Never holds a token, secret or password.
    pub struct AuditRecord {
        /// Position in the whole trail (ask `after=` it for the next page).
        pub cursor: u64,
        /// The writer's hash chain (`instance:…`, `cli`).
        pub chain: String,
        /// Position on the chain, from 1.
        pub seq: u64,
        /// When (Unix seconds).
        pub at: UnixTime,
        /// Type, e.g. `login.failed` (docs/audit.md lists them).
        #[serde(rename = "type")]
        pub kind: String,
        /// Who: `user:<sub>`, `client:<id>`, `cli`, `system` or `anonymous`.
        pub actor: String,
        /// Whom or what the event is about.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub subject: Option<String>,
        /// The client address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub address: Option<String>,
        /// The request's `x-request-id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub request_id: Option<String>,
        /// Details (a JSON object, per type).
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub details: serde_json::Value,
        /// The previous event's hash on the chain.
        pub prev_hash: String,
        /// SHA-256 of `prev_hash` and this event's content.
        pub hash: String,
    }
}

wire! {
    /// A page of the audit trail.
    pub struct AuditPage {
        /// Events after the requested cursor that match the filters, oldest
        /// first.
        pub events: Vec<AuditRecord>,
        /// The cursor to ask from next (the last event's, or the request's).
        pub next_cursor: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_introspection_is_exactly_active_false() {
        assert_eq!(
            serde_json::to_string(&Introspection::inactive()).unwrap(),
            r#"{"active":false}"#
        );
    }

    #[test]
    fn introspection_claims_round_trip() {
        let claims = Claims {
            iss: "https://a".into(),
            sub: "u1".into(),
            aud: vec!["api".into()],
            exp: 2000,
            iat: 1000,
            nbf: Some(1000),
            jti: "j".into(),
            client_id: "tollgate".into(),
            scope: "openid".into(),
            token_type: crate::TokenType::Access,
            sid: Some("s".into()),
            email: Some("a@example.com".into()),
            roles: vec!["admin".into()],
            plan: Some("pro".into()),
            permissions: vec!["tool:search".into()],
        };
        assert_eq!(Introspection::active(&claims).claims().unwrap(), claims);
        assert!(Introspection::inactive().claims().is_err());
        let mut refresh = Introspection::active(&claims);
        refresh.token_type = Some("refresh".into());
        assert_eq!(refresh.claims().unwrap_err().code(), "wrong_token_type");
        let mut no_sid = Introspection::active(&claims);
        no_sid.sid = None;
        assert_eq!(no_sid.claims().unwrap_err().code(), "missing_claim");
    }

    #[test]
    fn debug_never_shows_tokens_passwords_or_secrets() {
        let secret = "tgr_s3cr3t-value-that-must-not-print";
        let shown = [
            format!(
                "{:?}",
                TokenResponse {
                    access_token: secret.into(),
                    token_type: "Bearer".into(),
                    expires_in: 900,
                    refresh_token: Some(secret.into()),
                    scope: None,
                }
            ),
            format!(
                "{:?}",
                Credentials {
                    email: "a@example.com".into(),
                    password: secret.into()
                }
            ),
            format!(
                "{:?}",
                RefreshRequest {
                    refresh_token: secret.into()
                }
            ),
            format!(
                "{:?}",
                CreateUser {
                    email: "a@example.com".into(),
                    password: secret.into(),
                    plan: None,
                    roles: None,
                }
            ),
            format!(
                "{:?}",
                ClientCreated {
                    client_id: "worker".into(),
                    client_secret: secret.into(),
                    scopes: vec![],
                }
            ),
        ];
        for text in shown {
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
    }

    fn feed_event(kind: RevocationKind, value: &str) -> RevocationEvent {
        RevocationEvent {
            cursor: 7,
            kind,
            value: value.into(),
            at: 100,
            expires_at: 200,
        }
    }

    #[test]
    fn revocation_kinds_keep_their_json_and_plan_is_new() {
        for (kind, name) in [
            (RevocationKind::Token, "token"),
            (RevocationKind::Session, "session"),
            (RevocationKind::User, "user"),
            (RevocationKind::Keys, "keys"),
            (RevocationKind::Plan, "plan"),
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<RevocationKind>(&json).unwrap(), kind);
        }
        let event = feed_event(RevocationKind::Plan, "u1 pro");
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"cursor":7,"kind":"plan","value":"u1 pro","at":100,"expires_at":200}"#
        );
        assert_eq!(
            serde_json::from_str::<RevocationEvent>(&json).unwrap(),
            event
        );
    }

    #[test]
    fn plan_events_carry_user_and_plan() {
        let value = RevocationEvent::plan_value("u1", "enterprise");
        assert_eq!(value, "u1 enterprise");
        let event = feed_event(RevocationKind::Plan, &value);
        assert_eq!(event.plan(), Some(("u1", "enterprise")));
        assert!(!event.is_revocation());
        assert_eq!(event.key_ids().count(), 0);
        for bad in ["", "u1", "u1 ", " pro", "u1 pro extra"] {
            assert_eq!(
                feed_event(RevocationKind::Plan, bad).plan(),
                None,
                "{bad:?}"
            );
        }
        // Other kinds are never read as plan changes.
        assert_eq!(feed_event(RevocationKind::User, "u1 pro").plan(), None);
        assert!(feed_event(RevocationKind::User, "u1").is_revocation());
        assert!(!feed_event(RevocationKind::Keys, "k1 k2").is_revocation());
    }

    #[test]
    fn usage_bodies_round_trip_and_refuse_unknown_members() {
        let batch = UsageBatch {
            events: vec![UsageEvent {
                service: "chat-backend".into(),
                instance: "i-1".into(),
                seq: 42,
                user: "u1".into(),
                tool: "search".into(),
                plan: "free".into(),
                at: 1_700_000_000,
            }],
        };
        let json = serde_json::to_string(&batch).unwrap();
        assert_eq!(
            json,
            r#"{"events":[{"service":"chat-backend","instance":"i-1","seq":42,"user":"u1","tool":"search","plan":"free","at":1700000000}]}"#
        );
        assert_eq!(serde_json::from_str::<UsageBatch>(&json).unwrap(), batch);
        let extra_event = json.replace(r#""seq":42"#, r#""seq":42,"n":1"#);
        assert!(serde_json::from_str::<UsageBatch>(&extra_event).is_err());
        assert!(serde_json::from_str::<UsageBatch>(r#"{"events":[],"x":1}"#).is_err());

        let accepted = UsageAccepted {
            accepted: 3,
            duplicates: 1,
        };
        let json = serde_json::to_string(&accepted).unwrap();
        assert_eq!(json, r#"{"accepted":3,"duplicates":1}"#);
        assert_eq!(
            serde_json::from_str::<UsageAccepted>(&json).unwrap(),
            accepted
        );

        let mut report = UsageReport {
            user: None,
            from: 0,
            to: 3600,
            group_by: "tool".into(),
            rows: vec![UsageRow {
                user: None,
                key: "search".into(),
                calls: 2,
            }],
            total: 2,
        };
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(
            json,
            r#"{"from":0,"to":3600,"group_by":"tool","rows":[{"key":"search","calls":2}],"total":2}"#
        );
        assert_eq!(serde_json::from_str::<UsageReport>(&json).unwrap(), report);
        report.user = Some("u1".into());
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.starts_with(r#"{"user":"u1","#), "{json}");
        assert_eq!(serde_json::from_str::<UsageReport>(&json).unwrap(), report);
    }
}
