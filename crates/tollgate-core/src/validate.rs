//! The validator: the one function every server route, the introspection
//! endpoint and the SDK call to decide whether a token is good.
//!
//! [`Validator::validate`] runs, in order and stopping at the first failure:
//! size (8 KiB) → three non-empty segments → header (strict, see
//! [`crate::jws`]) → `typ` is `at+jwt` → `kid` names a trusted key (exact
//! match) → `alg` is exactly that key's algorithm and allowed by the policy
//! → signature → claims parse (strict, see [`crate::claims`]) → `iss` →
//! `aud` → `token_type` → `exp`, `nbf`, `iat` with leeway → lifetime →
//! revocation. Nothing from the payload is read before the signature has
//! verified.
//!
//! A header segment byte-identical to the one Tollgate writes for a trusted
//! key (`{"alg":…,"kid":…,"typ":"at+jwt"}`) skips the header parse: those
//! bytes can only parse to that key's `alg` and `kid` and the right `typ`,
//! so every header check would pass. Any other header takes the full path.
//!
//! A caller cannot validate without naming the issuer and audience (they are
//! required by [`ValidationPolicy::new`]) and the expected token type
//! ([`Expect`], a parameter of every call).

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::claims::{self, Claims, TokenType};
use crate::jws;
use crate::keys::{Algorithm, VerifyingKey, VerifyingKeys};
use crate::{Error, UnixTime};

/// Default clock-skew leeway, in seconds.
pub const DEFAULT_LEEWAY: u64 = 30;

/// Default longest accepted token lifetime (`exp - iat`), in seconds.
pub const DEFAULT_MAX_LIFETIME: u64 = 24 * 3600;

/// What a validator accepts, apart from keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationPolicy {
    issuer: String,
    audiences: Vec<String>,
    leeway: u64,
    max_lifetime: u64,
    algorithms: Vec<Algorithm>,
}

impl ValidationPolicy {
    /// A policy for tokens from `issuer` (matched exactly) meant for any of
    /// `audiences` (matched exactly). Defaults: 30 s leeway, 24 h longest
    /// lifetime, asymmetric algorithms only (EdDSA, ES256, RS256).
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Result<Self, Error> {
        let issuer = issuer.into();
        if issuer.is_empty() {
            return Err(Error::WrongIssuer);
        }
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(Error::WrongAudience);
        }
        Ok(ValidationPolicy {
            issuer,
            audiences,
            leeway: DEFAULT_LEEWAY,
            max_lifetime: DEFAULT_MAX_LIFETIME,
            algorithms: vec![Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256],
        })
    }

    /// Sets the clock-skew leeway applied to `exp`, `nbf` and `iat`.
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// Sets the longest accepted `exp - iat`.
    pub fn with_max_lifetime(mut self, seconds: u64) -> Self {
        self.max_lifetime = seconds;
        self
    }

    /// Sets the accepted algorithms. HS256 is accepted only when named here.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// The expected issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The accepted audiences.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The leeway in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The accepted algorithms.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }
}

/// The kind of token a caller expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A user's access token; a service token is `wrong_token_type`.
    Access,
    /// A service token; a user token is `wrong_token_type`.
    Service,
    /// Either (introspection, which reports the type).
    Any,
}

impl Expect {
    fn admits(self, token_type: TokenType) -> bool {
        match self {
            Expect::Access => token_type == TokenType::Access,
            Expect::Service => token_type == TokenType::Service,
            Expect::Any => true,
        }
    }
}

/// Where revocations are looked up. The server backs this with its store's
/// in-memory view, the SDK with the revocation feed. Implementations answer
/// from memory: the validator calls them on every token.
pub trait Revocations {
    /// Whether the token with this `jti` was revoked.
    fn is_token_revoked(&self, jti: &str) -> bool;
    /// Whether the session `sid` was ended (logout, deletion, refresh reuse).
    fn is_session_revoked(&self, sid: &str) -> bool;
    /// The moment before which every token of `sub` is revoked (admin
    /// revoke, disable, password change), if any.
    fn revoked_before(&self, sub: &str) -> Option<UnixTime>;
}

/// Whether `claims` are revoked by jti, by session, or by user cut-off. A
/// token issued at or after the cut-off second survives it; the server ends
/// the user's sessions at the same moment, so a token minted earlier within
/// that second dies by its `sid`.
pub fn is_revoked(claims: &Claims, revocations: &dyn Revocations) -> bool {
    revocations.is_token_revoked(&claims.jti)
        || claims
            .sid
            .as_deref()
            .is_some_and(|sid| revocations.is_session_revoked(sid))
        || revocations
            .revoked_before(&claims.sub)
            .is_some_and(|cutoff| claims.iat < cutoff)
}

/// Checks tokens against a policy and a set of trusted keys. Cheap to build;
/// holders swap in a new one when keys change.
#[derive(Debug, Clone)]
pub struct Validator {
    policy: ValidationPolicy,
    keys: VerifyingKeys,
    /// Each key by the exact header segment Tollgate writes for it (see
    /// [`Validator::verify`]).
    /// Hashed with foldhash (seeded per process): SipHash was a visible
    /// part of an HS256 validation, and the set is fixed when the validator
    /// is built, so a token can only look up, never fill, this map.
    canonical_headers: HashMap<Box<[u8]>, VerifyingKey, RandomState>,
}

impl Validator {
    /// A validator trusting `keys` under `policy`.
    pub fn new(policy: ValidationPolicy, keys: VerifyingKeys) -> Validator {
        let canonical_headers = keys
            .iter()
            .filter_map(|key| {
                let segment =
                    jws::header_segment(key.alg(), key.kid(), claims::ACCESS_TOKEN_TYP).ok()?;
                Some((segment.into_bytes().into_boxed_slice(), key.clone()))
            })
            .collect();
        Validator {
            policy,
            keys,
            canonical_headers,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &ValidationPolicy {
        &self.policy
    }

    /// The trusted keys.
    pub fn keys(&self) -> &VerifyingKeys {
        &self.keys
    }

    /// What can be decided about `token` without any key: whether it can
    /// be a Tollgate access token at all (CONTRACT §3: every access token is
    /// a compact JWS). At most [`crate::MAX_TOKEN_BYTES`]; three non-empty
    /// base64url segments; a header that parses under the strict rules,
    /// with `typ` `at+jwt`, a `kid`, and an `alg` of this policy. The same
    /// checks, with the same errors, as [`Validator::validate`] makes before
    /// it looks for the key — except that a token [`Validator::validate`]
    /// would refuse later for an unknown key may be refused here first for
    /// its `alg`. Passing says nothing about the signature or the claims.
    ///
    /// For holders that cannot verify a signature themselves (an SDK that
    /// introspects HS256 tokens): what fails here needs no question to the
    /// token service.
    pub fn check_form(&self, token: &str) -> Result<(), Error> {
        let parts = jws::split(token)?;
        let base64url = |segment: &[u8]| {
            segment
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        };
        if !base64url(parts.payload) {
            return Err(Error::Malformed("the payload is not base64url"));
        }
        if !base64url(parts.signature) {
            return Err(Error::Malformed("the signature is not base64url"));
        }
        if self.canonical_headers.contains_key(parts.header) {
            return Ok(());
        }
        let header = jws::parse_header(parts.header)?;
        if !header.typ.as_deref().is_some_and(is_access_token_typ) {
            return Err(Error::WrongTyp);
        }
        if header.kid.is_none() {
            return Err(Error::UnknownKey);
        }
        match Algorithm::from_name(&header.alg) {
            Some(alg) if self.policy.algorithms.contains(&alg) => Ok(()),
            _ => Err(Error::AlgorithmNotAllowed),
        }
    }

    /// Validates `token` completely (see the module docs) and returns its claims.
    pub fn validate(
        &self,
        token: &str,
        expect: Expect,
        now: UnixTime,
        revocations: &dyn Revocations,
    ) -> Result<Claims, Error> {
        let claims = self.verify(token)?;
        self.check_claims(&claims, expect, now)?;
        if is_revoked(&claims, revocations) {
            return Err(Error::Revoked);
        }
        Ok(claims)
    }

    /// Re-checks claims that validated earlier (an SDK cache hit): type,
    /// time and revocation. Issuer, audience and signature do not change.
    pub fn recheck(
        &self,
        claims: &Claims,
        expect: Expect,
        now: UnixTime,
        revocations: &dyn Revocations,
    ) -> Result<(), Error> {
        if !expect.admits(claims.token_type) {
            return Err(Error::WrongTokenType);
        }
        self.check_times(claims, now)?;
        if is_revoked(claims, revocations) {
            return Err(Error::Revoked);
        }
        Ok(())
    }

    /// Checks claims the token service vouched for over TLS (an
    /// introspection answer: there is no signature to verify here):
    /// everything [`Validator::validate`] checks after the signature —
    /// issuer, audience, token type, times, lifetime and revocation. The SDK
    /// uses it so that an introspected token meets exactly the same rules as
    /// a locally validated one (a token for another audience stays refused).
    pub fn check_introspected(
        &self,
        claims: &Claims,
        expect: Expect,
        now: UnixTime,
        revocations: &dyn Revocations,
    ) -> Result<(), Error> {
        self.check_claims(claims, expect, now)?;
        if is_revoked(claims, revocations) {
            return Err(Error::Revoked);
        }
        Ok(())
    }

    /// Everything up to and including the signature, then the claims parse.
    fn verify(&self, token: &str) -> Result<Claims, Error> {
        let parts = jws::split(token)?;
        let key = match self.canonical_headers.get(parts.header) {
            // The header is byte for byte the one Tollgate writes for this
            // key, so it parses to exactly this key's `alg` and `kid` and
            // `typ: at+jwt`: parsing it again would decide nothing new.
            Some(key) => key,
            None => self.key_for_header(&parts)?,
        };
        if !self.policy.algorithms.contains(&key.alg()) {
            return Err(Error::AlgorithmNotAllowed);
        }
        jws::check_key_signature(&parts, key)?;
        // Tollgate's payloads fit a small stack buffer (no allocation);
        // larger ones are decoded on the heap.
        let mut stack = [0u8; 1024];
        let heap;
        let payload = match crate::encoding::b64_decode_slice(parts.payload, &mut stack) {
            Some(len) => &stack[..len],
            None => {
                heap = crate::encoding::b64_decode(parts.payload)
                    .ok_or(Error::Malformed("the payload is not base64url"))?;
                &heap[..]
            }
        };
        claims::parse(payload)
    }

    /// Any other header: parsed strictly, `typ` checked, the key found by
    /// exact `kid`, and `alg` required to be exactly that key's.
    fn key_for_header(&self, parts: &jws::Parts<'_>) -> Result<&VerifyingKey, Error> {
        let header = jws::parse_header(parts.header)?;
        if !header.typ.as_deref().is_some_and(is_access_token_typ) {
            return Err(Error::WrongTyp);
        }
        let kid = header.kid.as_deref().ok_or(Error::UnknownKey)?;
        let key = self.keys.find(kid).ok_or(Error::UnknownKey)?;
        if Algorithm::from_name(&header.alg) != Some(key.alg()) {
            return Err(Error::AlgorithmNotAllowed);
        }
        Ok(key)
    }

    fn check_claims(&self, claims: &Claims, expect: Expect, now: UnixTime) -> Result<(), Error> {
        if claims.iss != self.policy.issuer {
            return Err(Error::WrongIssuer);
        }
        if !claims
            .aud
            .iter()
            .any(|aud| self.policy.audiences.contains(aud))
        {
            return Err(Error::WrongAudience);
        }
        if !expect.admits(claims.token_type) {
            return Err(Error::WrongTokenType);
        }
        self.check_times(claims, now)?;
        if claims.exp - claims.iat > self.policy.max_lifetime {
            return Err(Error::LifetimeTooLong);
        }
        Ok(())
    }

    fn check_times(&self, claims: &Claims, now: UnixTime) -> Result<(), Error> {
        let leeway = self.policy.leeway;
        if now > claims.exp.saturating_add(leeway) {
            return Err(Error::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(Error::NotYetValid);
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(Error::IssuedInFuture);
        }
        Ok(())
    }
}

/// `at+jwt` or `application/at+jwt`, in any ASCII case (RFC 9068 §2.1,
/// RFC 7515 §4.1.9).
fn is_access_token_typ(typ: &str) -> bool {
    let typ = typ.strip_prefix("application/").unwrap_or(typ);
    typ.eq_ignore_ascii_case(claims::ACCESS_TOKEN_TYP)
}

/// Validation without revocation checks: for tests and for tools that
/// explain a token offline. Never use in a request path.
pub mod dangerous {
    use super::*;

    /// A [`Revocations`] that has never heard of a revocation.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct NoRevocations;

    impl Revocations for NoRevocations {
        fn is_token_revoked(&self, _: &str) -> bool {
            false
        }
        fn is_session_revoked(&self, _: &str) -> bool {
            false
        }
        fn revoked_before(&self, _: &str) -> Option<UnixTime> {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_matching() {
        for ok in ["at+jwt", "AT+JWT", "application/at+jwt", "At+Jwt"] {
            assert!(is_access_token_typ(ok), "{ok}");
        }
        for bad in ["JWT", "jwt", "at+jwt ", "", "application/jwt", "dpop+jwt"] {
            assert!(!is_access_token_typ(bad), "{bad}");
        }
    }

    #[test]
    fn policy_needs_issuer_and_audience() {
        assert!(ValidationPolicy::new("", vec!["api".into()]).is_err());
        assert!(ValidationPolicy::new("https://a", vec![]).is_err());
        assert!(ValidationPolicy::new("https://a", vec![String::new()]).is_err());
    }
}
