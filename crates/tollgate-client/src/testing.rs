//! [`TestIssuer`] (feature `testing`): real tokens for a service's own
//! tests (CONTRACT §1).
//!
//! The issuer holds a real EdDSA key and mints with the core `Minter`, so
//! its tokens have exactly the shape, header and signature of the token
//! service's. [`TestIssuer::authenticator`] is an [`Authenticator`] that
//! trusts that key and the issuer's own revocations, without HTTP: a
//! service's tests exercise the same validation path as production, and can
//! never sign with a secret production would not check.
//!
//! Tokens: users with any plan, roles and permissions (the plan's
//! permissions by default, as the token service gives them), services,
//! expired ones, and revoked ones (by token, session or user).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tollgate_core::claims::{Minter, ServiceGrant, UserGrant, new_id};
use tollgate_core::keys::{Algorithm, ManagedKey};
use tollgate_core::plans::Plans;
use tollgate_core::{Claims, Secret, UnixTime, ValidationPolicy, VerifyingKeys};

use crate::{AuthError, Authenticator, RevocationSet, clock};

/// The issuer a `TestIssuer` uses unless told otherwise.
pub const TEST_ISSUER: &str = "https://tollgate.test";

/// The audience a `TestIssuer` uses unless told otherwise.
pub const TEST_AUDIENCE: &str = "api";

/// What the issuer remembers of a token it minted: `jti`, `sid`, `exp`.
type Minted = (String, Option<String>, UnixTime);

/// Mints real tokens for tests. See the module docs.
#[derive(Debug, Clone)]
pub struct TestIssuer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    minter: Minter,
    issuer: String,
    audiences: Vec<String>,
    keys: VerifyingKeys,
    policy: ValidationPolicy,
    revocations: Arc<RevocationSet>,
    plans: Plans,
    /// Minted token → (jti, sid, exp), so tests can revoke by token.
    minted: Mutex<HashMap<String, Minted>>,
}

impl Default for TestIssuer {
    fn default() -> Self {
        TestIssuer::new()
    }
}

impl TestIssuer {
    /// An issuer `https://tollgate.test` minting for the audience `api`.
    ///
    /// # Panics
    /// When the operating system's random generator fails (key generation);
    /// this type is for tests only.
    #[allow(clippy::expect_used)]
    pub fn new() -> TestIssuer {
        TestIssuer::with(TEST_ISSUER, &[TEST_AUDIENCE]).expect("a test issuer can always be made")
    }

    /// An issuer with this name minting for these audiences.
    pub fn with(issuer: &str, audiences: &[&str]) -> Result<TestIssuer, AuthError> {
        let key = ManagedKey::generate(Algorithm::EdDSA, clock::now())?;
        TestIssuer::with_key(issuer, audiences, &key)
    }

    /// An issuer signing with HS256 under a shared `secret`, as an HS256
    /// deployment of the token service does (the same `kid`, derived from
    /// the secret); its authenticators accept HS256 only.
    pub fn with_hmac_secret(
        issuer: &str,
        audiences: &[&str],
        secret: &Secret,
    ) -> Result<TestIssuer, AuthError> {
        let key = ManagedKey::from_hmac_secret(secret, clock::now())?;
        TestIssuer::with_key(issuer, audiences, &key)
    }

    fn with_key(
        issuer: &str,
        audiences: &[&str],
        key: &ManagedKey,
    ) -> Result<TestIssuer, AuthError> {
        let audiences: Vec<String> = audiences.iter().map(|a| (*a).to_owned()).collect();
        let minter = Minter::new(issuer, audiences.clone(), key.signing_key()?)?;
        let keys = VerifyingKeys::new([key.verifying_key()?]);
        let policy =
            ValidationPolicy::new(issuer, audiences.clone())?.with_algorithms(&[key.alg()]);
        Ok(TestIssuer {
            inner: Arc::new(Inner {
                minter,
                issuer: issuer.to_owned(),
                audiences,
                keys,
                policy,
                revocations: Arc::new(RevocationSet::new()),
                plans: Plans::builtin(),
                minted: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The public halves of the keys this issuer signs with (to build a
    /// core `Validator` next to the SDK, in benchmarks).
    pub fn verifying_keys(&self) -> &VerifyingKeys {
        &self.inner.keys
    }

    /// The validation policy of this issuer's authenticators (its first
    /// audience, its one algorithm).
    pub fn policy(&self) -> &ValidationPolicy {
        &self.inner.policy
    }

    /// The issuer name.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// An [`Authenticator`] that trusts this issuer's tokens for its first
    /// audience and sees its revocations at once. No HTTP.
    pub fn authenticator(&self) -> Authenticator {
        self.authenticator_for(&self.inner.audiences[0])
    }

    /// An authenticator expecting `audience` (to test audience mismatches).
    pub fn authenticator_for(&self, audience: &str) -> Authenticator {
        self.authenticator_named(audience, "service")
    }

    /// An authenticator expecting `audience` that reports itself as
    /// `service_name` in its fingerprint.
    pub fn authenticator_named(&self, audience: &str, service_name: &str) -> Authenticator {
        // An empty audience cannot make a policy: such an authenticator
        // expects the issuer's first audience instead.
        let policy = ValidationPolicy::new(self.inner.issuer.clone(), vec![audience.to_owned()])
            .map(|policy| policy.with_algorithms(self.inner.policy.algorithms()))
            .unwrap_or_else(|_| self.inner.policy.clone());
        Authenticator::offline(
            policy,
            self.inner.keys.clone(),
            self.inner.revocations.clone(),
            service_name,
        )
    }

    /// Starts a user token for `sub` (plan `free`, no roles, the plan's
    /// permissions, a fresh session).
    pub fn user(&self, sub: &str) -> UserToken<'_> {
        UserToken {
            issuer: self,
            grant: UserGrant {
                sub: sub.to_owned(),
                sid: new_id().unwrap_or_else(|_| format!("sid-{sub}")),
                email: format!("{sub}@example.test"),
                roles: Vec::new(),
                plan: tollgate_core::plans::DEFAULT_PLAN.to_owned(),
                permissions: Vec::new(),
                client_id: "tollgate".to_owned(),
                scope: "openid profile".to_owned(),
            },
            permissions_set: false,
            ttl: 900,
            issued_at: None,
        }
    }

    /// Starts a service token for the client `client_id`.
    pub fn service(&self, client_id: &str) -> ServiceToken<'_> {
        ServiceToken {
            issuer: self,
            grant: ServiceGrant {
                client_id: client_id.to_owned(),
                scope: String::new(),
            },
            ttl: 3600,
            issued_at: None,
        }
    }

    /// Revokes one token this issuer minted (unknown tokens are ignored).
    pub fn revoke(&self, token: &str) {
        let found = self.minted().get(token).cloned();
        if let Some((jti, _, exp)) = found {
            self.inner
                .revocations
                .revoke_token(&jti, exp.saturating_add(60));
        }
    }

    /// Ends the session of a token this issuer minted (as logout does).
    pub fn logout(&self, token: &str) {
        let found = self.minted().get(token).cloned();
        if let Some((_, Some(sid), _)) = found {
            self.revoke_session(&sid);
        }
    }

    /// Ends the session `sid`.
    pub fn revoke_session(&self, sid: &str) {
        self.inner
            .revocations
            .revoke_session(sid, clock::now().saturating_add(24 * 3600));
    }

    /// Revokes every token of `sub` issued before now (admin revoke,
    /// disable). Tokens minted afterwards are good.
    pub fn revoke_user(&self, sub: &str) {
        let now = clock::now();
        self.inner
            .revocations
            .revoke_user(sub, now, now.saturating_add(24 * 3600));
    }

    fn minted(&self) -> std::sync::MutexGuard<'_, HashMap<String, Minted>> {
        self.inner
            .minted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, token: &str, claims: &Claims) {
        self.minted().insert(
            token.to_owned(),
            (claims.jti.clone(), claims.sid.clone(), claims.exp),
        );
    }
}

/// A user token being described. Finish with [`UserToken::mint`].
#[derive(Debug)]
#[must_use]
pub struct UserToken<'a> {
    issuer: &'a TestIssuer,
    grant: UserGrant,
    permissions_set: bool,
    ttl: u64,
    issued_at: Option<UnixTime>,
}

impl UserToken<'_> {
    /// The plan (its permissions become the token's unless
    /// [`UserToken::permissions`] is called).
    pub fn plan(mut self, plan: &str) -> Self {
        plan.clone_into(&mut self.grant.plan);
        self
    }

    /// Adds a role.
    pub fn role(mut self, role: &str) -> Self {
        self.grant.roles.push(role.to_owned());
        self
    }

    /// Sets the permissions exactly (replacing the plan's).
    pub fn permissions(mut self, permissions: &[&str]) -> Self {
        self.grant.permissions = permissions.iter().map(|p| (*p).to_owned()).collect();
        self.permissions_set = true;
        self
    }

    /// The e-mail.
    pub fn email(mut self, email: &str) -> Self {
        email.clone_into(&mut self.grant.email);
        self
    }

    /// The session id.
    pub fn session(mut self, sid: &str) -> Self {
        sid.clone_into(&mut self.grant.sid);
        self
    }

    /// The scopes (space-separated).
    pub fn scope(mut self, scope: &str) -> Self {
        scope.clone_into(&mut self.grant.scope);
        self
    }

    /// Lifetime in seconds (default 900).
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.ttl = seconds;
        self
    }

    /// Issued at this Unix time instead of now.
    pub fn issued_at(mut self, at: UnixTime) -> Self {
        self.issued_at = Some(at);
        self
    }

    /// Already expired (beyond the default leeway).
    pub fn expired(self) -> Self {
        let ttl = self.ttl;
        self.issued_at(clock::now().saturating_sub(ttl + 120))
    }

    /// Signs the token; returns it with its claims.
    pub fn mint_with_claims(mut self) -> Result<(String, Claims), AuthError> {
        if !self.permissions_set {
            self.grant.permissions = self
                .issuer
                .inner
                .plans
                .find(&self.grant.plan)
                .map(|plan| plan.permissions())
                .unwrap_or_default();
        }
        let at = self.issued_at.unwrap_or_else(clock::now);
        let (token, claims) = self.issuer.inner.minter.user(self.grant, at, self.ttl)?;
        self.issuer.remember(&token, &claims);
        Ok((token, claims))
    }

    /// Signs the token.
    ///
    /// # Panics
    /// When signing fails (it does not with a generated key); for tests.
    #[allow(clippy::expect_used)]
    pub fn mint(self) -> String {
        self.mint_with_claims()
            .expect("a test token can be signed")
            .0
    }
}

/// A service token being described. Finish with [`ServiceToken::mint`].
#[derive(Debug)]
#[must_use]
pub struct ServiceToken<'a> {
    issuer: &'a TestIssuer,
    grant: ServiceGrant,
    ttl: u64,
    issued_at: Option<UnixTime>,
}

impl ServiceToken<'_> {
    /// The scopes (space-separated).
    pub fn scope(mut self, scope: &str) -> Self {
        scope.clone_into(&mut self.grant.scope);
        self
    }

    /// Lifetime in seconds (default 3600).
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.ttl = seconds;
        self
    }

    /// Already expired (beyond the default leeway).
    pub fn expired(mut self) -> Self {
        self.issued_at = Some(clock::now().saturating_sub(self.ttl + 120));
        self
    }

    /// Signs the token; returns it with its claims.
    pub fn mint_with_claims(self) -> Result<(String, Claims), AuthError> {
        let at = self.issued_at.unwrap_or_else(clock::now);
        let (token, claims) = self.issuer.inner.minter.service(self.grant, at, self.ttl)?;
        self.issuer.remember(&token, &claims);
        Ok((token, claims))
    }

    /// Signs the token.
    ///
    /// # Panics
    /// When signing fails (it does not with a generated key); for tests.
    #[allow(clippy::expect_used)]
    pub fn mint(self) -> String {
        self.mint_with_claims()
            .expect("a test token can be signed")
            .0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::Expect;

    #[tokio::test]
    async fn minted_tokens_validate_and_revocations_bite() {
        let issuer = TestIssuer::new();
        let auth = issuer.authenticator();
        let token = issuer.user("u1").plan("pro").role("admin").mint();
        let p = auth.authenticate_user(&token).await.unwrap();
        assert!(
            p.has_role("admin") && p.may_use_tool("web_browse") && !p.may_use_tool("data_export")
        );
        assert_eq!(p.plan(), Some("pro"));

        let service = issuer.service("billing").scope("usage:write").mint();
        assert_eq!(
            auth.authenticate_user(&service).await.unwrap_err().code(),
            "wrong_token_type"
        );
        assert!(
            auth.authenticate_service(&service)
                .await
                .unwrap()
                .has_scope("usage:write")
        );

        let expired = issuer.user("u2").expired().mint();
        assert_eq!(
            auth.authenticate_user(&expired).await.unwrap_err().code(),
            "expired"
        );

        issuer.revoke(&token);
        assert_eq!(
            auth.authenticate_user(&token).await.unwrap_err().code(),
            "revoked"
        );

        let other = issuer.user("u3").mint();
        auth.authenticate_user(&other).await.unwrap();
        issuer.logout(&other);
        assert_eq!(
            auth.authenticate_user(&other).await.unwrap_err().code(),
            "revoked"
        );

        let before = issuer.user("u4").issued_at(clock::now() - 10).mint();
        issuer.revoke_user("u4");
        assert_eq!(
            auth.authenticate(&before, Expect::Any)
                .await
                .unwrap_err()
                .code(),
            "revoked"
        );
    }

    #[tokio::test]
    async fn an_hmac_issuer_mints_hs256_that_only_the_same_secret_accepts() {
        let secret = Secret::new("a-shared-secret-of-at-least-thirty-two-bytes");
        let issuer = TestIssuer::with_hmac_secret(TEST_ISSUER, &["api"], &secret).unwrap();
        let token = issuer.user("u1").mint();
        assert!(
            issuer
                .verifying_keys()
                .iter()
                .all(|k| k.alg() == Algorithm::HS256)
        );
        assert_eq!(issuer.policy().algorithms(), &[Algorithm::HS256]);
        issuer
            .authenticator()
            .authenticate_user(&token)
            .await
            .unwrap();
        let for_billing = issuer.authenticator_for("billing");
        assert_eq!(
            for_billing
                .authenticate_user(&token)
                .await
                .unwrap_err()
                .code(),
            "wrong_audience"
        );

        let other = Secret::new("another-shared-secret-of-thirty-two-bytes!");
        let stranger = TestIssuer::with_hmac_secret(TEST_ISSUER, &["api"], &other).unwrap();
        assert!(
            stranger
                .authenticator()
                .authenticate_user(&token)
                .await
                .is_err()
        );
        // An EdDSA issuer's authenticator never takes HS256.
        let eddsa = TestIssuer::new();
        assert!(
            eddsa
                .authenticator()
                .authenticate_user(&token)
                .await
                .is_err()
        );
        let weak = TestIssuer::with_hmac_secret(TEST_ISSUER, &["api"], &Secret::new("short"));
        assert!(weak.is_err());
    }

    #[tokio::test]
    async fn another_audience_or_issuer_is_refused() {
        let issuer = TestIssuer::new();
        let token = issuer.user("u1").mint();
        let other_audience = issuer.authenticator_for("billing");
        assert_eq!(
            other_audience
                .authenticate_user(&token)
                .await
                .unwrap_err()
                .code(),
            "wrong_audience"
        );
        let stranger = TestIssuer::with("https://elsewhere.test", &["api"]).unwrap();
        let foreign = stranger.user("u1").mint();
        assert_eq!(
            issuer
                .authenticator()
                .authenticate_user(&foreign)
                .await
                .unwrap_err()
                .code(),
            "unknown_key"
        );
    }
}
