//! [`Principal`]: who a validated token stands for, and [`Requirements`]:
//! what a route asks of it.
//!
//! A principal is either a user (a user's access token) or a service (a
//! client-credentials token); the two can never be confused (SECURITY
//! F43): the token type is checked by the core validator, and
//! [`Principal::is_user`] says which it is. Requirements are checked on
//! claims the validator already accepted; they decide authorization, not
//! validity.

use std::fmt;
use std::sync::Arc;

use tollgate_core::{Claims, Expect, TokenType, UnixTime};

use crate::AuthError;

/// The caller behind a validated token. Cheap to clone. Two principals
/// are equal when their claims are.
#[derive(Clone)]
pub struct Principal {
    claims: Arc<Claims>,
    /// Unix milliseconds of the last time the token service confirmed the
    /// token (introspection) when it was judged, or 0: what
    /// `Authenticator::recheck` trusts once the feed is too stale.
    confirmed_ms: u64,
}

impl PartialEq for Principal {
    fn eq(&self, other: &Principal) -> bool {
        self.claims == other.claims
    }
}

impl Eq for Principal {}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("sub", &self.claims.sub)
            .field("token_type", &self.claims.token_type)
            .field("plan", &self.claims.plan)
            .finish_non_exhaustive()
    }
}

impl Principal {
    pub(crate) fn new(claims: Claims) -> Principal {
        Principal {
            claims: Arc::new(claims),
            confirmed_ms: 0,
        }
    }

    /// The same principal, as confirmed by the token service at `at_ms`.
    pub(crate) fn confirmed_at(mut self, at_ms: u64) -> Principal {
        self.confirmed_ms = at_ms;
        self
    }

    /// When the token service last confirmed the token (Unix ms, 0: not
    /// while it was judged).
    pub(crate) fn confirmed_ms(&self) -> u64 {
        self.confirmed_ms
    }

    /// Every claim of the token.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The subject: the user id, or the client id of a service.
    pub fn subject(&self) -> &str {
        &self.claims.sub
    }

    /// Whether a user's access token stands behind this principal.
    pub fn is_user(&self) -> bool {
        self.claims.token_type == TokenType::Access
    }

    /// Whether a service's client-credentials token stands behind it.
    pub fn is_service(&self) -> bool {
        self.claims.token_type == TokenType::Service
    }

    /// The user's plan (`None` for services).
    pub fn plan(&self) -> Option<&str> {
        self.claims.plan.as_deref()
    }

    /// The user's e-mail (`None` for services).
    pub fn email(&self) -> Option<&str> {
        self.claims.email.as_deref()
    }

    /// The session id (`None` for services).
    pub fn session(&self) -> Option<&str> {
        self.claims.sid.as_deref()
    }

    /// When the token expires.
    pub fn expires_at(&self) -> UnixTime {
        self.claims.exp
    }

    /// Whether the token has `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims.has_scope(scope)
    }

    /// Whether the user has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.claims.has_role(role)
    }

    /// Whether the user has `permission` (`tool:search`).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.claims.has_permission(permission)
    }

    /// Whether the user may use `tool` (has `tool:<tool>`).
    pub fn may_use_tool(&self, tool: &str) -> bool {
        self.claims
            .permissions
            .iter()
            .any(|p| p.strip_prefix("tool:") == Some(tool))
    }

    /// Checks `requirements`, naming the first one that is not met.
    pub fn require(&self, requirements: &Requirements) -> Result<(), AuthError> {
        requirements.check(self)
    }
}

/// What a route requires of its caller: a token type, scopes, roles and
/// permissions (all of them). Build with [`Requirements::user`],
/// [`Requirements::service`] or [`Requirements::any`], then chain.
///
/// ```
/// use tollgate_client::Requirements;
/// let admin = Requirements::user().role("admin");
/// let tool = Requirements::user().tool("search");
/// let internal = Requirements::service().scope("agents:read");
/// # let _ = (admin, tool, internal);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    expect: Expect,
    scopes: Vec<String>,
    roles: Vec<String>,
    permissions: Vec<String>,
}

impl Requirements {
    /// Any valid token, user or service.
    pub fn any() -> Requirements {
        Requirements {
            expect: Expect::Any,
            scopes: Vec::new(),
            roles: Vec::new(),
            permissions: Vec::new(),
        }
    }

    /// A user's access token (a service token is `wrong_token_type`).
    pub fn user() -> Requirements {
        Requirements {
            expect: Expect::Access,
            ..Requirements::any()
        }
    }

    /// A service token (a user token is `wrong_token_type`).
    pub fn service() -> Requirements {
        Requirements {
            expect: Expect::Service,
            ..Requirements::any()
        }
    }

    /// Also requires `scope`.
    pub fn scope(mut self, scope: impl Into<String>) -> Requirements {
        self.scopes.push(scope.into());
        self
    }

    /// Also requires `role` (user tokens carry roles).
    pub fn role(mut self, role: impl Into<String>) -> Requirements {
        self.roles.push(role.into());
        self
    }

    /// Also requires `permission`.
    pub fn permission(mut self, permission: impl Into<String>) -> Requirements {
        self.permissions.push(permission.into());
        self
    }

    /// Also requires the permission `tool:<tool>`.
    pub fn tool(self, tool: &str) -> Requirements {
        self.permission(format!("tool:{tool}"))
    }

    /// The token type the validator must be asked for.
    pub fn expect(&self) -> Expect {
        self.expect
    }

    /// Checks a principal; the error names the first unmet requirement.
    pub fn check(&self, principal: &Principal) -> Result<(), AuthError> {
        let type_ok = match self.expect {
            Expect::Access => principal.is_user(),
            Expect::Service => principal.is_service(),
            Expect::Any => true,
        };
        if !type_ok {
            return Err(AuthError::Token(tollgate_core::Error::WrongTokenType));
        }
        if let Some(scope) = self.scopes.iter().find(|s| !principal.has_scope(s)) {
            return Err(AuthError::InsufficientScope(scope.clone()));
        }
        if let Some(role) = self.roles.iter().find(|r| !principal.has_role(r)) {
            return Err(AuthError::PermissionDenied(format!("role {role}")));
        }
        if let Some(permission) = self
            .permissions
            .iter()
            .find(|p| !principal.has_permission(p))
        {
            return Err(AuthError::PermissionDenied(permission.clone()));
        }
        Ok(())
    }
}

impl Default for Requirements {
    fn default() -> Self {
        Requirements::any()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Principal {
        Principal::new(Claims {
            iss: "i".into(),
            sub: "u1".into(),
            aud: vec!["api".into()],
            exp: 100,
            iat: 1,
            nbf: None,
            jti: "j".into(),
            client_id: "tollgate".into(),
            scope: "openid profile".into(),
            token_type: TokenType::Access,
            sid: Some("s".into()),
            email: Some("a@example.com".into()),
            roles: vec!["admin".into()],
            plan: Some("free".into()),
            permissions: vec!["tool:search".into()],
        })
    }

    #[test]
    fn requirements_name_what_is_missing() {
        let p = user();
        assert!(
            Requirements::user()
                .role("admin")
                .tool("search")
                .scope("openid")
                .check(&p)
                .is_ok()
        );
        assert_eq!(
            Requirements::service().check(&p).unwrap_err().code(),
            "wrong_token_type"
        );
        assert_eq!(
            Requirements::user().scope("write").check(&p).unwrap_err(),
            AuthError::InsufficientScope("write".into())
        );
        assert_eq!(
            Requirements::user()
                .tool("data_export")
                .check(&p)
                .unwrap_err(),
            AuthError::PermissionDenied("tool:data_export".into())
        );
        assert_eq!(
            Requirements::user()
                .role("ops")
                .check(&p)
                .unwrap_err()
                .code(),
            "permission_denied"
        );
        assert!(p.may_use_tool("search") && !p.may_use_tool("searc"));
    }
}
