//! Token claims: RFC 9068 access tokens with Tollgate's additions
//! (CONTRACT §3), and minting.
//!
//! One [`Claims`] type serves both kinds, told apart by [`TokenType`]:
//! user tokens (`"access"`) carry `sid`, `email`, `roles`, `plan` and
//! `permissions`; service tokens (`"service"`, client credentials) carry
//! none of them and have the client id as `sub`. The same shape rules are
//! applied when a token is minted and when one is parsed, so Tollgate can
//! never issue a token its own validator would refuse.
//!
//! Parsing is strict: a claim named twice, a time that is not a
//! non-negative integer (`"1"`, `1.5`, `-1`, `1e400`, `null`, `true`), an
//! `aud` that is neither a string nor an array of strings, or a control
//! character in any string claim makes the token malformed. (Services copy
//! `email`, `roles` and `permissions` into logs and UIs; a NUL, newline or
//! terminal escape there would be an injection Tollgate vouched for.)

use std::fmt;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::encoding::b64_encode;
use crate::jws::{self, CowStr};
use crate::keys::SigningKey;
use crate::{Error, UnixTime};

/// The `typ` header of every Tollgate access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// A user's access token (`"access"`).
    Access,
    /// A service's client-credentials token (`"service"`).
    Service,
}

impl TokenType {
    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Access => "access",
            TokenType::Service => "service",
        }
    }

    fn from_claim(value: &str) -> Option<TokenType> {
        match value {
            "access" => Some(TokenType::Access),
            "service" => Some(TokenType::Service),
            _ => None,
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of a validated (or about to be minted) token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Issuer; exactly the token service's configured issuer.
    pub iss: String,
    /// Subject: the user id, or the client id for service tokens.
    pub sub: String,
    /// Audiences (at least one).
    pub aud: Vec<String>,
    /// Expiry.
    pub exp: UnixTime,
    /// Issue time.
    pub iat: UnixTime,
    /// Not-before; Tollgate always sets it to `iat`.
    pub nbf: Option<UnixTime>,
    /// Unique token id; the key of per-token revocation.
    pub jti: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// User or service token.
    pub token_type: TokenType,
    /// Session id (user tokens only); the key of logout and session revocation.
    pub sid: Option<String>,
    /// The user's e-mail (user tokens only).
    pub email: Option<String>,
    /// Roles (user tokens only), e.g. `admin`.
    pub roles: Vec<String>,
    /// Plan name (user tokens only).
    pub plan: Option<String>,
    /// Permissions (user tokens only), e.g. `tool:search`.
    pub permissions: Vec<String>,
}

impl Claims {
    /// Whether this is a user's token (as opposed to a service's).
    pub fn is_user(&self) -> bool {
        self.token_type == TokenType::Access
    }

    /// The scopes, split on spaces.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the token has `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Whether the token has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the token has `permission` (e.g. `tool:search`).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// The token's shape rules (see the module docs), shared by minting and
    /// parsing.
    pub(crate) fn check_shape(&self) -> Result<(), Error> {
        for (value, name) in [
            (&self.iss, "iss"),
            (&self.sub, "sub"),
            (&self.jti, "jti"),
            (&self.client_id, "client_id"),
        ] {
            if value.is_empty() {
                return Err(Error::MissingClaim(name));
            }
            if has_control(value) {
                return Err(Error::Malformed(
                    "an identifier claim holds a control character",
                ));
            }
        }
        if self.aud.is_empty() {
            return Err(Error::WrongAudience);
        }
        let texts = (self.email.iter().chain(&self.plan))
            .chain([&self.scope])
            .chain(&self.aud)
            .chain(&self.roles)
            .chain(&self.permissions);
        for text in texts {
            if has_control(text) {
                return Err(Error::Malformed("a claim holds a control character"));
            }
        }
        if self.exp <= self.iat {
            return Err(Error::Malformed("exp is not after iat"));
        }
        match self.token_type {
            TokenType::Access => {
                let sid = self.sid.as_deref().ok_or(Error::MissingClaim("sid"))?;
                if sid.is_empty() || has_control(sid) {
                    return Err(Error::Malformed("the sid claim is not an identifier"));
                }
                if self.plan.is_none() {
                    return Err(Error::MissingClaim("plan"));
                }
            }
            TokenType::Service => {
                if self.sid.is_some()
                    || self.email.is_some()
                    || self.plan.is_some()
                    || !self.roles.is_empty()
                    || !self.permissions.is_empty()
                {
                    return Err(Error::Malformed("a service token carries user claims"));
                }
            }
        }
        Ok(())
    }
}

fn has_control(s: &str) -> bool {
    // Printable ASCII is the common case: one branch-free pass over the
    // bytes, no UTF-8 decoding.
    if s.bytes()
        .fold(true, |ascii, b| ascii & (0x20..0x7f).contains(&b))
    {
        return false;
    }
    s.chars().any(char::is_control)
}

impl Serialize for Claims {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let user = self.is_user();
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("iss", &self.iss)?;
        map.serialize_entry("sub", &self.sub)?;
        match self.aud.as_slice() {
            [one] => map.serialize_entry("aud", one)?,
            many => map.serialize_entry("aud", many)?,
        }
        map.serialize_entry("exp", &self.exp)?;
        map.serialize_entry("iat", &self.iat)?;
        if let Some(nbf) = self.nbf {
            map.serialize_entry("nbf", &nbf)?;
        }
        map.serialize_entry("jti", &self.jti)?;
        map.serialize_entry("client_id", &self.client_id)?;
        map.serialize_entry("scope", &self.scope)?;
        map.serialize_entry("token_type", self.token_type.as_str())?;
        if user {
            map.serialize_entry("sid", &self.sid)?;
            if let Some(email) = &self.email {
                map.serialize_entry("email", email)?;
            }
            map.serialize_entry("roles", &self.roles)?;
            map.serialize_entry("plan", &self.plan)?;
            map.serialize_entry("permissions", &self.permissions)?;
        }
        map.end()
    }
}

/// What a user token is minted from.
#[derive(Debug, Clone)]
pub struct UserGrant {
    /// The user id.
    pub sub: String,
    /// The session the token belongs to.
    pub sid: String,
    /// The user's e-mail.
    pub email: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// The user's plan.
    pub plan: String,
    /// The permissions the plan (and roles) give.
    pub permissions: Vec<String>,
    /// The client the session belongs to.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
}

/// What a service token is minted from.
#[derive(Debug, Clone)]
pub struct ServiceGrant {
    /// The client id (also the token's `sub`).
    pub client_id: String,
    /// Space-separated scopes granted.
    pub scope: String,
}

/// Mints tokens for one issuer and audience set with one signing key.
#[derive(Debug, Clone)]
pub struct Minter {
    issuer: String,
    audiences: Vec<String>,
    key: SigningKey,
}

impl Minter {
    /// A minter. Refuses an empty issuer or audience list.
    pub fn new(
        issuer: impl Into<String>,
        audiences: Vec<String>,
        key: SigningKey,
    ) -> Result<Minter, Error> {
        let issuer = issuer.into();
        if issuer.is_empty() {
            return Err(Error::MissingClaim("iss"));
        }
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(Error::WrongAudience);
        }
        Ok(Minter {
            issuer,
            audiences,
            key,
        })
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Mints a user token valid from `now` for `ttl` seconds.
    pub fn user(
        &self,
        grant: UserGrant,
        now: UnixTime,
        ttl: u64,
    ) -> Result<(String, Claims), Error> {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: grant.sub,
            aud: self.audiences.clone(),
            exp: now.saturating_add(ttl),
            iat: now,
            nbf: Some(now),
            jti: new_id()?,
            client_id: grant.client_id,
            scope: grant.scope,
            token_type: TokenType::Access,
            sid: Some(grant.sid),
            email: Some(grant.email),
            roles: grant.roles,
            plan: Some(grant.plan),
            permissions: grant.permissions,
        };
        let token = self.sign(&claims)?;
        Ok((token, claims))
    }

    /// Mints a service token valid from `now` for `ttl` seconds.
    pub fn service(
        &self,
        grant: ServiceGrant,
        now: UnixTime,
        ttl: u64,
    ) -> Result<(String, Claims), Error> {
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: grant.client_id.clone(),
            aud: self.audiences.clone(),
            exp: now.saturating_add(ttl),
            iat: now,
            nbf: Some(now),
            jti: new_id()?,
            client_id: grant.client_id,
            scope: grant.scope,
            token_type: TokenType::Service,
            sid: None,
            email: None,
            roles: Vec::new(),
            plan: None,
            permissions: Vec::new(),
        };
        let token = self.sign(&claims)?;
        Ok((token, claims))
    }

    /// Signs arbitrary claims after checking their shape. For test issuers
    /// that need expired or odd-but-valid tokens; production code uses
    /// [`Minter::user`] and [`Minter::service`].
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        claims.check_shape()?;
        let payload = serde_json::to_vec(claims).map_err(|_| Error::Signing)?;
        jws::sign(&self.key, ACCESS_TOKEN_TYP, &payload)
    }
}

/// A fresh random identifier (128 bits, base64url): token and session ids.
pub fn new_id() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Signing)?;
    Ok(b64_encode(&bytes))
}

/// Parses and shape-checks a verified payload.
pub(crate) fn parse(payload: &[u8]) -> Result<Claims, Error> {
    // One UTF-8 check of the whole payload (ASCII runs word at a time)
    // instead of one per string inside the JSON parser.
    let text = std::str::from_utf8(payload)
        .map_err(|_| Error::Malformed("the claims are not valid UTF-8"))?;
    let raw: RawClaims<'_> = serde_json::from_str(text)
        .map_err(|_| Error::Malformed("the claims are not a valid JSON object"))?;
    let owned = |v: Option<CowStr<'_>>| v.map(|s| s.0.into_owned());
    let required =
        |v: Option<CowStr<'_>>, name| v.map(|s| s.0.into_owned()).ok_or(Error::MissingClaim(name));
    let token_type = raw.token_type.ok_or(Error::MissingClaim("token_type"))?;
    let token_type = TokenType::from_claim(&token_type.0).ok_or(Error::WrongTokenType)?;
    let claims = Claims {
        iss: required(raw.iss, "iss")?,
        sub: required(raw.sub, "sub")?,
        aud: raw.aud.ok_or(Error::MissingClaim("aud"))?.0,
        exp: raw.exp.ok_or(Error::MissingClaim("exp"))?,
        iat: raw.iat.ok_or(Error::MissingClaim("iat"))?,
        nbf: raw.nbf,
        jti: required(raw.jti, "jti")?,
        client_id: required(raw.client_id, "client_id")?,
        scope: owned(raw.scope).unwrap_or_default(),
        token_type,
        sid: owned(raw.sid),
        email: owned(raw.email),
        roles: raw.roles.map(|v| v.0).unwrap_or_default(),
        plan: owned(raw.plan),
        permissions: raw.permissions.map(|v| v.0).unwrap_or_default(),
    };
    claims.check_shape()?;
    Ok(claims)
}

/// The claims as they arrive. Every field rejects `null` and wrong types;
/// serde's derive rejects a member named twice.
#[derive(Deserialize)]
struct RawClaims<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    iss: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    sub: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "present")]
    aud: Option<Audience>,
    #[serde(default, deserialize_with = "present")]
    exp: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<u64>,
    #[serde(borrow, default, deserialize_with = "present")]
    jti: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    client_id: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    scope: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    token_type: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    sid: Option<CowStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    email: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "present")]
    roles: Option<Strings>,
    #[serde(borrow, default, deserialize_with = "present")]
    plan: Option<CowStr<'a>>,
    #[serde(default, deserialize_with = "present")]
    permissions: Option<Strings>,
}

/// A present member: `null` is a type error, not an absent claim.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: de::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `aud`: a string or a non-empty array of strings.
struct Audience(Vec<String>);

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Audience, A::Error> {
                let Strings(list) = Strings::from_seq(seq)?;
                Ok(Audience(list))
            }
        }
        d.deserialize_any(V)
    }
}

/// An array of strings, nothing else.
struct Strings(Vec<String>);

impl Strings {
    fn from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Strings, A::Error> {
        let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
        while let Some(item) = seq.next_element::<CowStr<'de>>()? {
            list.push(item.0.into_owned());
        }
        Ok(Strings(list))
    }
}

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Strings, A::Error> {
                Strings::from_seq(seq)
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_json() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://auth.example", "sub": "u1", "aud": "api", "exp": 2000, "iat": 1000,
            "nbf": 1000, "jti": "j1", "client_id": "tollgate", "scope": "openid",
            "token_type": "access", "sid": "s1", "email": "a@example.com", "roles": ["admin"],
            "plan": "pro", "permissions": ["tool:search"],
        })
    }

    fn parse_json(value: &serde_json::Value) -> Result<Claims, Error> {
        parse(value.to_string().as_bytes())
    }

    fn with(key: &str, value: serde_json::Value) -> Result<Claims, Error> {
        let mut json = user_json();
        json[key] = value;
        parse_json(&json)
    }

    fn without(key: &str) -> Result<Claims, Error> {
        let mut json = user_json();
        json.as_object_mut().unwrap().remove(key);
        parse_json(&json)
    }

    #[test]
    fn a_complete_user_token_parses_and_round_trips() {
        let claims = parse_json(&user_json()).unwrap();
        assert!(claims.is_user());
        assert!(claims.has_role("admin") && claims.has_permission("tool:search"));
        let again = parse(&serde_json::to_vec(&claims).unwrap()).unwrap();
        assert_eq!(again, claims);
    }

    #[test]
    fn times_must_be_non_negative_integers() {
        for bad in [
            serde_json::json!("9999999999"),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(true),
            serde_json::json!(null),
            serde_json::json!([]),
            serde_json::json!({}),
        ] {
            for key in ["exp", "iat", "nbf"] {
                assert_eq!(
                    with(key, bad.clone()).unwrap_err().code(),
                    "malformed",
                    "{key}={bad}"
                );
            }
        }
        for raw in ["1e400", "18446744073709551616", "2e3"] {
            let text = user_json()
                .to_string()
                .replace("\"exp\":2000", &format!("\"exp\":{raw}"));
            assert_eq!(
                parse(text.as_bytes()).unwrap_err().code(),
                "malformed",
                "{raw}"
            );
        }
    }

    #[test]
    fn required_claims_are_required() {
        for key in [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "client_id",
            "token_type",
            "sid",
            "plan",
        ] {
            assert_eq!(without(key).unwrap_err().code(), "missing_claim", "{key}");
        }
        assert!(without("nbf").is_ok());
        assert!(without("email").is_ok());
    }

    #[test]
    fn duplicate_members_are_malformed() {
        let text = user_json().to_string();
        for (from, to) in [
            ("\"sub\":\"u1\"", "\"sub\":\"u1\",\"sub\":\"admin\""),
            ("\"exp\":2000", "\"exp\":2000,\"exp\":9000"),
            ("\"aud\":\"api\"", "\"aud\":\"api\",\"aud\":\"other\""),
        ] {
            let dup = text.replacen(from, to, 1);
            assert_ne!(dup, text);
            assert_eq!(
                parse(dup.as_bytes()).unwrap_err().code(),
                "malformed",
                "{dup}"
            );
        }
    }

    #[test]
    fn audience_shapes() {
        assert_eq!(
            with("aud", serde_json::json!(["api", "x"])).unwrap().aud,
            ["api", "x"]
        );
        assert_eq!(
            with("aud", serde_json::json!([])).unwrap_err().code(),
            "wrong_audience"
        );
        for bad in [
            serde_json::json!({}),
            serde_json::json!(1),
            serde_json::json!([1]),
            serde_json::json!(null),
        ] {
            assert_eq!(with("aud", bad).unwrap_err().code(), "malformed");
        }
    }

    #[test]
    fn identifiers_and_types() {
        assert_eq!(
            with("sub", serde_json::json!("a\u{0}b"))
                .unwrap_err()
                .code(),
            "malformed"
        );
        assert_eq!(
            with("sub", serde_json::json!("")).unwrap_err().code(),
            "missing_claim"
        );
        assert_eq!(
            with("token_type", serde_json::json!("refresh"))
                .unwrap_err()
                .code(),
            "wrong_token_type"
        );
        assert_eq!(
            with("exp", serde_json::json!(1000)).unwrap_err().code(),
            "malformed"
        );
        // A service token must not carry user claims.
        let mut json = user_json();
        json["token_type"] = "service".into();
        assert_eq!(parse_json(&json).unwrap_err().code(), "malformed");
        for key in ["sid", "email", "plan", "roles", "permissions"] {
            json.as_object_mut().unwrap().remove(key);
        }
        assert!(!parse_json(&json).unwrap().is_user());
    }

    #[test]
    fn lone_surrogates_and_bad_utf8_are_malformed() {
        let text = user_json().to_string().replace("\"u1\"", "\"\\ud800\"");
        assert!(parse(text.as_bytes()).is_err());
        let mut bytes = user_json().to_string().into_bytes();
        let at = bytes.iter().position(|b| *b == b'u').unwrap();
        bytes[at] = 0xff;
        assert!(parse(&bytes).is_err());
        assert!(parse(b"\xef\xbb\xbf{}").is_err());
    }
}
