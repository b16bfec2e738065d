//! Fixtures shared by the fuzz targets and the seed generator: fixed keys
//! (made for fuzzing, trusted nowhere else), validators trusting them,
//! minters, the real tokens the seeds and the `validator` target's
//! mutations start from, and small reference checks written without the
//! core's code (strict base64 from the `base64` crate, JSON from
//! `serde_json::Value`, a duplicate-member check).

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use tollgate_core::claims::Minter;
use tollgate_core::keys::seal::MasterKey;
use tollgate_core::{
    Algorithm, Claims, KeyStatus, ManagedKey, Revocations, Secret, SigningKey, TokenType, UnixTime,
    ValidationPolicy, Validator, VerifyingKeys,
};

/// The issuer every fixture token carries and every validator expects.
pub const ISSUER: &str = "https://auth.fuzz.test";
/// The audiences the validators accept (tokens carry the first, or both).
pub const AUDIENCES: [&str; 2] = ["api", "billing"];
/// The validators' clock: fixture tokens are issued at this second.
pub const NOW: UnixTime = 1_700_000_000;

/// An Ed25519 PKCS#8 v1 key made for these targets (`openssl genpkey
/// -algorithm ed25519`), and its RFC 7638 thumbprint (its kid).
const ED25519_PKCS8_HEX: &str = "302e020100300506032b657004220420b63a8feb91c5915384d23ff81635131c58e2a00c67e1d6b4ad7ec9dbbb906569";
/// The kid of the Ed25519 key: its thumbprint (checked when loading).
pub const ED25519_KID: &str = "DEHCACenFLPVgbM5jGJnwYTA_tuFh-t4_m84RRcmSaQ";
/// The HS256 fixture secret (32 bytes or more).
pub const HMAC_SECRET: &str = "fuzzing-only shared secret, not used anywhere else";
/// The master key the `seal` target seals and opens with.
pub const MASTER_KEY: &str = "fuzzing-only master key, 32 bytes or more";

/// Revoked identifiers known to [`FuzzRevocations`].
pub const REVOKED_JTI: &str = "revoked-jti";
/// A revoked session.
pub const REVOKED_SID: &str = "revoked-sid";
/// A user whose tokens issued before [`NOW`] are revoked.
pub const REVOKED_SUB: &str = "revoked-sub";

/// Revokes [`REVOKED_JTI`], [`REVOKED_SID`], and [`REVOKED_SUB`]'s tokens
/// issued before [`NOW`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FuzzRevocations;

impl Revocations for FuzzRevocations {
    fn is_token_revoked(&self, jti: &str) -> bool {
        jti == REVOKED_JTI
    }
    fn is_session_revoked(&self, sid: &str) -> bool {
        sid == REVOKED_SID
    }
    fn revoked_before(&self, sub: &str) -> Option<UnixTime> {
        (sub == REVOKED_SUB).then_some(NOW)
    }
}

/// Everything a target needs, built once per process.
pub struct Fixture {
    /// The Ed25519 signing key.
    pub ed: SigningKey,
    /// The HS256 signing key.
    pub hs: SigningKey,
    /// Accepts EdDSA and HS256 tokens signed by either key.
    pub validator: Validator,
    /// The same keys, with the default (asymmetric-only) algorithms.
    pub asym_validator: Validator,
    /// Mints with the Ed25519 key.
    pub ed_minter: Minter,
    /// Mints with the HS256 key.
    pub hs_minter: Minter,
    /// Real tokens (see [`fixture_claims`]), each signed by both keys.
    pub tokens: Vec<String>,
    /// The claims of [`Fixture::tokens`], in the same order (one entry per
    /// claims, the Ed25519 token first, then the HS256 one).
    pub claims: Vec<Claims>,
    /// The `seal` target's master key.
    pub master: MasterKey,
}

impl Fixture {
    /// The signing key with this kid, if it is one of the fixture's.
    pub fn signing_key(&self, kid: &str) -> Option<&SigningKey> {
        [&self.ed, &self.hs].into_iter().find(|k| k.kid() == kid)
    }

    /// The minter for the key with this kid.
    pub fn minter(&self, kid: &str) -> Option<&Minter> {
        [&self.ed_minter, &self.hs_minter]
            .into_iter()
            .find(|m| m.key().kid() == kid)
    }
}

/// The fixture, built on first use.
pub static FIXTURE: LazyLock<Fixture> = LazyLock::new(build);

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("fixture hex"))
        .collect()
}

fn build() -> Fixture {
    let ed = ManagedKey::from_parts(
        ED25519_KID.to_owned(),
        Algorithm::EdDSA,
        KeyStatus::Active,
        0,
        None,
        Secret::new(hex(ED25519_PKCS8_HEX)),
    )
    .and_then(|k| k.signing_key())
    .expect("the fixture Ed25519 key loads");
    let hs = ManagedKey::from_hmac_secret(&Secret::from(HMAC_SECRET), 0)
        .and_then(|k| k.signing_key())
        .expect("the fixture HMAC key loads");
    let keys = VerifyingKeys::new([ed.verifying_key(), hs.verifying_key()]);
    let audiences: Vec<String> = AUDIENCES.iter().map(|a| (*a).to_owned()).collect();
    let policy = ValidationPolicy::new(ISSUER, audiences.clone()).expect("fixture policy");
    let validator = Validator::new(
        policy
            .clone()
            .with_algorithms(&[Algorithm::EdDSA, Algorithm::HS256]),
        keys.clone(),
    );
    let asym_validator = Validator::new(policy, keys);
    let ed_minter = Minter::new(ISSUER, vec![audiences[0].clone()], ed.clone()).expect("minter");
    let hs_minter = Minter::new(ISSUER, vec![audiences[0].clone()], hs.clone()).expect("minter");
    let mut tokens = Vec::new();
    let mut claims = Vec::new();
    for c in fixture_claims() {
        for minter in [&ed_minter, &hs_minter] {
            tokens.push(minter.sign(&c).expect("fixture claims sign"));
            claims.push(c.clone());
        }
    }
    let master = MasterKey::new(&Secret::from(MASTER_KEY)).expect("fixture master key");
    Fixture {
        ed,
        hs,
        validator,
        asym_validator,
        ed_minter,
        hs_minter,
        tokens,
        claims,
        master,
    }
}

/// A user token's claims as Tollgate mints them, issued at [`NOW`].
pub fn user_claims() -> Claims {
    Claims {
        iss: ISSUER.to_owned(),
        sub: "u1".to_owned(),
        aud: vec![AUDIENCES[0].to_owned()],
        exp: NOW + 900,
        iat: NOW,
        nbf: Some(NOW),
        jti: "jti-1".to_owned(),
        client_id: "web".to_owned(),
        scope: "openid profile".to_owned(),
        token_type: TokenType::Access,
        sid: Some("sid-1".to_owned()),
        email: Some("a@example.com".to_owned()),
        roles: vec!["admin".to_owned()],
        plan: Some("pro".to_owned()),
        permissions: vec!["tool:search".to_owned(), "tool:summarize".to_owned()],
    }
}

/// A service token's claims, issued at [`NOW`].
pub fn service_claims() -> Claims {
    Claims {
        iss: ISSUER.to_owned(),
        sub: "svc".to_owned(),
        aud: vec![AUDIENCES[0].to_owned()],
        exp: NOW + 3600,
        iat: NOW,
        nbf: Some(NOW),
        jti: "jti-2".to_owned(),
        client_id: "svc".to_owned(),
        scope: "read write".to_owned(),
        token_type: TokenType::Service,
        sid: None,
        email: None,
        roles: Vec::new(),
        plan: None,
        permissions: Vec::new(),
    }
}

/// The claims of the fixture tokens: valid ones, and ones that fail each
/// check after the signature (so mutations start next to every branch).
pub fn fixture_claims() -> Vec<Claims> {
    let user = user_claims();
    let mut both_audiences = user.clone();
    both_audiences.aud = AUDIENCES.iter().map(|a| (*a).to_owned()).collect();
    both_audiences.nbf = None;
    both_audiences.email = None;
    let mut expired = user.clone();
    expired.iat = NOW - 7200;
    expired.nbf = Some(NOW - 7200);
    expired.exp = NOW - 3600;
    let mut other_audience = user.clone();
    other_audience.aud = vec!["other".to_owned()];
    let mut revoked = user.clone();
    revoked.jti = REVOKED_JTI.to_owned();
    let mut non_ascii = user.clone();
    non_ascii.email = Some("été@exämple.com".to_owned());
    vec![
        user,
        service_claims(),
        both_audiences,
        expired,
        other_audience,
        revoked,
        non_ascii,
    ]
}

/// Strict base64url without padding, by the `base64` crate: the reference
/// the core's own decoder is compared with.
pub fn reference_b64_decode(input: &[u8]) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(input).ok()
}

/// Base64url without padding.
pub fn b64(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

/// Whether `text` is a JSON object that names no member twice (RFC 7519
/// §4, RFC 7515 §4; serde_json's `Value` keeps the last silently). Names
/// inside nested values are not claim or header names and not compared.
pub fn object_without_duplicate_members(text: &str) -> bool {
    serde_json::from_str::<UniqueTopLevel>(text).is_ok()
}

struct UniqueTopLevel;

impl<'de> Deserialize<'de> for UniqueTopLevel {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(UniqueTopLevelVisitor)
    }
}

struct UniqueTopLevelVisitor;

impl<'de> Visitor<'de> for UniqueTopLevelVisitor {
    type Value = UniqueTopLevel;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueTopLevel, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom("duplicate member"));
            }
            map.next_value::<de::IgnoredAny>()?;
        }
        Ok(UniqueTopLevel)
    }
}

/// The members a JOSE header may not carry (refused by the core).
pub const FORBIDDEN_HEADER_MEMBERS: &[&str] = &[
    "jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "cty", "b64", "zip", "enc", "epk", "apu", "apv",
    "iv", "tag", "p2s", "p2c", "crit",
];

/// Checks, without the core's parsers, that claims the core read from
/// `payload` are what the JSON says. Panics on any difference.
pub fn assert_claims_match_json(payload: &[u8], claims: &Claims) {
    let text = std::str::from_utf8(payload).expect("accepted claims are UTF-8");
    assert!(
        object_without_duplicate_members(text),
        "accepted claims name a member twice: {text:?}"
    );
    let value: serde_json::Value =
        serde_json::from_str(text).expect("accepted claims are JSON for serde_json");
    let obj = value.as_object().expect("accepted claims are an object");
    let string = |name: &str| obj.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let strings = |name: &str| -> Option<Vec<String>> {
        obj.get(name).map(|v| {
            v.as_array()
                .expect("an array claim")
                .iter()
                .map(|s| s.as_str().expect("an array of strings").to_owned())
                .collect()
        })
    };
    let number = |name: &str| obj.get(name).map(|v| v.as_u64().expect("a u64 time"));
    assert_eq!(string("iss").as_deref(), Some(claims.iss.as_str()));
    assert_eq!(string("sub").as_deref(), Some(claims.sub.as_str()));
    assert_eq!(string("jti").as_deref(), Some(claims.jti.as_str()));
    assert_eq!(
        string("client_id").as_deref(),
        Some(claims.client_id.as_str())
    );
    assert_eq!(string("scope").unwrap_or_default(), claims.scope);
    assert_eq!(
        string("token_type").as_deref(),
        Some(claims.token_type.as_str())
    );
    assert_eq!(string("sid"), claims.sid);
    assert_eq!(string("email"), claims.email);
    assert_eq!(string("plan"), claims.plan);
    assert_eq!(strings("roles").unwrap_or_default(), claims.roles);
    assert_eq!(
        strings("permissions").unwrap_or_default(),
        claims.permissions
    );
    assert_eq!(number("exp"), Some(claims.exp));
    assert_eq!(number("iat"), Some(claims.iat));
    assert_eq!(number("nbf"), claims.nbf);
    let aud = match obj.get("aud").expect("aud") {
        serde_json::Value::String(one) => vec![one.clone()],
        _ => strings("aud").expect("aud"),
    };
    assert_eq!(aud, claims.aud);
    // The shape rules, restated.
    for id in [&claims.iss, &claims.sub, &claims.jti, &claims.client_id] {
        assert!(!id.is_empty(), "an empty identifier was accepted");
    }
    let texts = [&claims.iss, &claims.sub, &claims.jti, &claims.client_id]
        .into_iter()
        .chain([&claims.scope])
        .chain(&claims.aud)
        .chain(&claims.roles)
        .chain(&claims.permissions)
        .chain(claims.sid.iter())
        .chain(claims.email.iter())
        .chain(claims.plan.iter());
    for text in texts {
        assert!(
            !text.chars().any(char::is_control),
            "a control character was accepted: {text:?}"
        );
    }
    assert!(!claims.aud.is_empty());
    assert!(claims.exp > claims.iat, "exp not after iat was accepted");
    match claims.token_type {
        TokenType::Access => {
            assert!(claims.sid.as_deref().is_some_and(|s| !s.is_empty()));
            assert!(claims.plan.is_some());
        }
        TokenType::Service => {
            assert!(claims.sid.is_none() && claims.email.is_none() && claims.plan.is_none());
            assert!(claims.roles.is_empty() && claims.permissions.is_empty());
        }
    }
}
