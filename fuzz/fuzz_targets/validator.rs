//! The validator: `Validator::validate` on anything, against a fixed key
//! set (an Ed25519 key and an HS256 key).
//!
//! An input whose first byte is ASCII is the token itself (the seeds are
//! real tokens). Any other input is read with `arbitrary` as one of:
//! a real token with byte edits; three segments spliced from real tokens,
//! encoded bytes and raw text; or a token *signed with a fixture key* over
//! a chosen header and payload, so that the header rules, the claims
//! parser and every check after the signature are reached through the
//! public validator.
//!
//! Invariants: no panic, and
//! - whatever is accepted is accepted by a reference check written without
//!   the core (strict base64 from the `base64` crate, `serde_json::Value`):
//!   three segments, a header naming a trusted key by `kid` with exactly
//!   its `alg`, `typ` `at+jwt`, no forbidden member, a signature that
//!   verifies under that key, claims equal to the JSON's, issuer,
//!   audience, type, times, lifetime and revocation as the policy says;
//! - what is accepted, re-minted with the same key, is accepted again with
//!   the same claims (Tollgate can issue what it accepts);
//! - the asymmetric-only validator agrees, except that it refuses HS256
//!   with `algorithm_not_allowed`;
//! - a token with the header Tollgate writes (the validator's fast path)
//!   gets exactly the answer of the same token with an equivalent
//!   reordered header (the full header parse);
//! - a token signed over well-formed claims that meet the policy is
//!   accepted (no false refusal).

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tollgate_core::jws;
use tollgate_core::validate::DEFAULT_LEEWAY;
use tollgate_core::validate::DEFAULT_MAX_LIFETIME;
use tollgate_core::{
    Algorithm, Claims, Error, Expect, MAX_TOKEN_BYTES, Revocations, SigningKey, TokenType,
    Validator,
};
use tollgate_fuzz::{
    AUDIENCES, FIXTURE, FORBIDDEN_HEADER_MEMBERS, Fixture, FuzzRevocations, ISSUER, NOW,
    assert_claims_match_json, b64, object_without_duplicate_members, reference_b64_decode,
};

fuzz_target!(|data: &[u8]| {
    let fx = &*FIXTURE;
    match data.split_first() {
        Some((first, rest)) if !first.is_ascii() => {
            if let Ok(input) = Structured::arbitrary_take_rest(Unstructured::new(rest)) {
                run(fx, input);
            }
        }
        _ => {
            let token = String::from_utf8_lossy(data);
            let _ = check(fx, &token, Expect::Any, NOW);
            let _ = check(fx, &token, Expect::Access, NOW + 600);
        }
    }
});

#[derive(Arbitrary, Debug)]
struct Structured {
    mode: Mode,
    expect: ExpectSel,
    now: NowSel,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum ExpectSel {
    Access,
    Service,
    Any,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum NowSel {
    Fixed,
    Offset(i32),
    Any(u64),
}

#[derive(Arbitrary, Debug)]
enum Mode {
    /// A fixture token with byte edits.
    Mutated { seed: u8, edits: Vec<Edit> },
    /// Three segments from anywhere.
    Spliced {
        header: Segment,
        payload: Segment,
        signature: Segment,
        extra: Option<String>,
    },
    /// Signed with a fixture key: the signature verifies whenever the
    /// header names that key with its algorithm.
    Signed {
        key: KeySel,
        header: HeaderSel,
        payload: Box<PayloadSel>,
    },
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Replace(u16, u8),
    Insert(u16, u8),
    Remove(u16),
    Truncate(u16),
    Copy { from: u16, len: u8, to: u16 },
}

#[derive(Arbitrary, Debug)]
enum Segment {
    /// Segment `part` of fixture token `token`.
    Fixture { token: u8, part: u8 },
    /// Base64url of these bytes.
    Encoded(Vec<u8>),
    /// This text as it is.
    Raw(String),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum KeySel {
    Ed,
    Hs,
}

#[derive(Arbitrary, Debug)]
enum HeaderSel {
    /// The header Tollgate writes for the key (the validator's fast path);
    /// the same token with a reordered header is checked to agree.
    Canonical,
    /// Chosen members, in order.
    Fields {
        members: Vec<(HeaderName, JsonValue)>,
        spaced: bool,
    },
    /// Any bytes.
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum HeaderName {
    Alg,
    Kid,
    Typ,
    Forbidden(u8),
    Other(String),
}

/// A JSON value; `Right` is the value that belongs there (the key's
/// `alg` and `kid`, `at+jwt`, a claim's good value).
#[derive(Arbitrary, Debug, Clone)]
enum JsonValue {
    Right,
    Str(String),
    Int(i64),
    UInt(u64),
    /// The clock plus this.
    Offset(i32),
    Float(f64),
    Bool(bool),
    Null,
    Strings(Vec<String>),
    Object(Vec<(String, String)>),
    /// Any text in the value's place (may be no JSON at all).
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum PayloadSel {
    /// Claims built member by member.
    Claims(Box<ClaimsSpec>),
    /// A fixture token's claims, edited.
    Fixture { claims: u8, edits: Vec<Edit> },
    /// Any bytes.
    Bytes(Vec<u8>),
}

/// The members of a claims object in Tollgate's order (so the fast
/// claims reader is reached), with extra members. A short input reads as
/// good claims (`arbitrary` picks the first variant when it runs out).
#[derive(Arbitrary, Debug)]
struct ClaimsSpec {
    service: bool,
    members: [Member; 15],
    extra: Vec<(String, JsonValue)>,
    duplicate: Option<u8>,
    spaced: bool,
}

#[derive(Arbitrary, Debug)]
enum Member {
    /// The value that belongs there.
    Right,
    Absent,
    Value(JsonValue),
}

const CLAIM_NAMES: [&str; 15] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "token_type",
    "sid",
    "email",
    "roles",
    "plan",
    "permissions",
];

fn run(fx: &Fixture, input: Structured) {
    let expect = match input.expect {
        ExpectSel::Access => Expect::Access,
        ExpectSel::Service => Expect::Service,
        ExpectSel::Any => Expect::Any,
    };
    let now = match input.now {
        NowSel::Fixed => NOW,
        NowSel::Offset(d) => NOW.saturating_add_signed(i64::from(d)),
        NowSel::Any(n) => n,
    };
    match input.mode {
        Mode::Mutated { seed, edits } => {
            let token = &fx.tokens[usize::from(seed) % fx.tokens.len()];
            let bytes = apply(token.as_bytes().to_vec(), &edits);
            let _ = check(fx, &String::from_utf8_lossy(&bytes), expect, now);
        }
        Mode::Spliced {
            header,
            payload,
            signature,
            extra,
        } => {
            let mut token = [header, payload, signature]
                .into_iter()
                .map(|s| segment(fx, s))
                .collect::<Vec<_>>()
                .join(".");
            if let Some(extra) = extra {
                token.push('.');
                token.push_str(&extra);
            }
            let _ = check(fx, &token, expect, now);
        }
        Mode::Signed {
            key,
            header,
            payload,
        } => {
            let key = match key {
                KeySel::Ed => &fx.ed,
                KeySel::Hs => &fx.hs,
            };
            let (payload, well_formed) = match *payload {
                PayloadSel::Claims(spec) => claims_text(&spec),
                PayloadSel::Fixture { claims, edits } => {
                    let claims = &fx.claims[usize::from(claims) % fx.claims.len()];
                    let text = serde_json::to_vec(claims).expect("claims serialize");
                    (apply(text, &edits), None)
                }
                PayloadSel::Bytes(bytes) => (bytes, None),
            };
            match header {
                HeaderSel::Canonical => {
                    let fast = jws::sign(key, "at+jwt", &payload).expect("signing");
                    let reordered = format!(
                        r#"{{"typ":"at+jwt","kid":{},"alg":"{}"}}"#,
                        serde_json::to_string(key.kid()).expect("kid"),
                        key.alg()
                    );
                    let slow = sign_over(key, reordered.as_bytes(), &payload);
                    let fast_result = check(fx, &fast, expect, now);
                    let slow_result = check(fx, &slow, expect, now);
                    assert_eq!(
                        fast_result, slow_result,
                        "the canonical-header fast path and the full header parse disagree"
                    );
                    let admitted = match (expect, well_formed) {
                        (_, None) => false,
                        (Expect::Any, Some(_)) => true,
                        (Expect::Access, Some(kind)) => kind == TokenType::Access,
                        (Expect::Service, Some(kind)) => kind == TokenType::Service,
                    };
                    if admitted && now == NOW && fast.len() <= MAX_TOKEN_BYTES {
                        assert!(
                            fast_result.is_ok(),
                            "well-formed claims refused: {fast_result:?} {:?}",
                            String::from_utf8_lossy(&payload)
                        );
                    }
                }
                HeaderSel::Fields { members, spaced } => {
                    let sep = if spaced { ", " } else { "," };
                    let text = members
                        .iter()
                        .map(|(name, value)| {
                            let (name, right) = match name {
                                HeaderName::Alg => ("alg".to_owned(), json_str(key.alg().as_str())),
                                HeaderName::Kid => ("kid".to_owned(), json_str(key.kid())),
                                HeaderName::Typ => ("typ".to_owned(), json_str("at+jwt")),
                                HeaderName::Forbidden(i) => {
                                    let names = FORBIDDEN_HEADER_MEMBERS;
                                    (names[usize::from(*i) % names.len()].to_owned(), "1".into())
                                }
                                HeaderName::Other(name) => (name.clone(), "0".to_owned()),
                            };
                            format!("{}:{}", json_str(&name), render(value, &right))
                        })
                        .collect::<Vec<_>>()
                        .join(sep);
                    let header = format!("{{{text}}}");
                    let _ = check(
                        fx,
                        &sign_over(key, header.as_bytes(), &payload),
                        expect,
                        now,
                    );
                }
                HeaderSel::Bytes(header) => {
                    let _ = check(fx, &sign_over(key, &header, &payload), expect, now);
                }
            }
        }
    }
}

fn json_str(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

fn render(value: &JsonValue, right: &str) -> String {
    match value {
        JsonValue::Right => right.to_owned(),
        JsonValue::Str(s) => json_str(s),
        JsonValue::Int(n) => n.to_string(),
        JsonValue::UInt(n) => n.to_string(),
        JsonValue::Offset(d) => NOW.saturating_add_signed(i64::from(*d)).to_string(),
        JsonValue::Float(f) => serde_json::to_string(f).unwrap_or_else(|_| "null".into()),
        JsonValue::Bool(b) => b.to_string(),
        JsonValue::Null => "null".to_owned(),
        JsonValue::Strings(items) => serde_json::to_string(items).expect("strings"),
        JsonValue::Object(members) => {
            let map: serde_json::Map<String, serde_json::Value> = members
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            serde_json::Value::Object(map).to_string()
        }
        JsonValue::Raw(text) => text.clone(),
    }
}

/// The claims text, and its token type when it is well-formed claims
/// meeting the policy at [`NOW`] (every member `Right` or absent where
/// optional, no duplicate, extra members with other names, each once, and
/// proper JSON values).
fn claims_text(spec: &ClaimsSpec) -> (Vec<u8>, Option<TokenType>) {
    let service = spec.service;
    let right = |name: &str| -> String {
        match name {
            "iss" => json_str(ISSUER),
            "sub" => json_str("u1"),
            "aud" => json_str(AUDIENCES[0]),
            "exp" => (NOW + 900).to_string(),
            "iat" | "nbf" => NOW.to_string(),
            "jti" => json_str("jti-1"),
            "client_id" => json_str("web"),
            "scope" => json_str("openid"),
            "token_type" => json_str(if service { "service" } else { "access" }),
            "sid" => json_str("sid-1"),
            "email" => json_str("a@example.com"),
            "roles" => r#"["admin"]"#.to_owned(),
            "plan" => json_str("pro"),
            "permissions" => r#"["tool:search"]"#.to_owned(),
            _ => "null".to_owned(),
        }
    };
    let sep = if spec.spaced { ", " } else { "," };
    let colon = if spec.spaced { ": " } else { ":" };
    let mut members = Vec::new();
    let mut well_formed = spec.duplicate.is_none();
    for (name, value) in CLAIM_NAMES.iter().zip(&spec.members) {
        let user_only = matches!(*name, "sid" | "email" | "roles" | "plan" | "permissions");
        let value = match value {
            Member::Right => Some(&JsonValue::Right),
            Member::Absent => None,
            Member::Value(value) => Some(value),
        };
        match value {
            Some(value) => {
                if !matches!(value, JsonValue::Right) || (service && user_only) {
                    well_formed = false;
                }
                members.push(format!("\"{name}\"{colon}{}", render(value, &right(name))));
            }
            None => {
                let optional = matches!(*name, "nbf" | "scope" | "email" | "roles" | "permissions")
                    || (service && user_only);
                if !optional {
                    well_formed = false;
                }
            }
        }
    }
    let mut extra_names = std::collections::HashSet::new();
    for (name, value) in &spec.extra {
        if CLAIM_NAMES.contains(&name.as_str())
            || matches!(value, JsonValue::Raw(_))
            || !extra_names.insert(name.as_str())
        {
            well_formed = false;
        }
        members.push(format!("{}{colon}{}", json_str(name), render(value, "0")));
    }
    if let Some(i) = spec.duplicate
        && !members.is_empty()
    {
        let again = members[usize::from(i) % members.len()].clone();
        members.push(again);
    }
    let text = format!("{{{}}}", members.join(sep));
    let kind = if service {
        TokenType::Service
    } else {
        TokenType::Access
    };
    (text.into_bytes(), well_formed.then_some(kind))
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits.iter().take(16) {
        let at = |pos: u16, len: usize| usize::from(pos) % (len + 1);
        match *edit {
            Edit::Replace(pos, b) => {
                if !bytes.is_empty() {
                    let i = usize::from(pos) % bytes.len();
                    bytes[i] = b;
                }
            }
            Edit::Insert(pos, b) => {
                let i = at(pos, bytes.len());
                bytes.insert(i, b);
            }
            Edit::Remove(pos) => {
                if !bytes.is_empty() {
                    let i = usize::from(pos) % bytes.len();
                    bytes.remove(i);
                }
            }
            Edit::Truncate(pos) => {
                let i = at(pos, bytes.len());
                bytes.truncate(i);
            }
            Edit::Copy { from, len, to } => {
                if !bytes.is_empty() {
                    let start = usize::from(from) % bytes.len();
                    let end = (start + usize::from(len)).min(bytes.len());
                    let chunk = bytes[start..end].to_vec();
                    let i = at(to, bytes.len());
                    bytes.splice(i..i, chunk);
                }
            }
        }
    }
    bytes
}

fn segment(fx: &Fixture, segment: Segment) -> String {
    match segment {
        Segment::Fixture { token, part } => {
            let token = &fx.tokens[usize::from(token) % fx.tokens.len()];
            token
                .split('.')
                .nth(usize::from(part) % 3)
                .unwrap_or_default()
                .to_owned()
        }
        Segment::Encoded(bytes) => b64(&bytes),
        Segment::Raw(text) => text,
    }
}

fn sign_over(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    let mut token = format!("{}.{}", b64(header), b64(payload));
    let signature = key.sign(token.as_bytes()).expect("signing");
    token.push('.');
    token.push_str(&b64(&signature));
    token
}

/// Runs every check on one token and returns the main validator's answer.
fn check(fx: &Fixture, token: &str, expect: Expect, now: u64) -> Result<Claims, Error> {
    // The offline reader of `tollgate token inspect`: must not panic.
    let _ = jws::dangerous::insecure_decode(token);
    for key in [&fx.ed, &fx.hs] {
        let key = key.verifying_key();
        if let Ok((header, payload)) = jws::verify(token, &key) {
            let parts = reference_parts(token);
            assert_eq!(header.alg, key.alg().as_str());
            assert!(header.kid.as_deref().is_none_or(|kid| kid == key.kid()));
            assert_eq!(reference_b64_decode(parts[1].as_bytes()), Some(payload));
            let signature = reference_b64_decode(parts[2].as_bytes()).expect("signature b64");
            let input = format!("{}.{}", parts[0], parts[1]);
            assert!(
                key.verify(input.as_bytes(), &signature),
                "jws::verify forged"
            );
        }
    }

    let revocations = FuzzRevocations;
    let result = fx.validator.validate(token, expect, now, &revocations);
    let asym = fx.asym_validator.validate(token, expect, now, &revocations);
    assert!(
        asym == result || asym == Err(Error::AlgorithmNotAllowed),
        "the asymmetric-only validator answered {asym:?} where the other answered {result:?}"
    );
    if let Ok(claims) = &asym {
        let key = reference_accepts(&fx.asym_validator, token, claims, expect, now);
        assert_ne!(
            key,
            Algorithm::HS256,
            "HS256 accepted by an asymmetric-only policy"
        );
    }
    if let Ok(claims) = &result {
        reference_accepts(&fx.validator, token, claims, expect, now);
        // What is accepted can be minted again and is accepted again.
        let kid = reference_kid(token);
        let minter = fx.minter(&kid).expect("accepted under a fixture key");
        let again = minter.sign(claims).expect("accepted claims can be minted");
        assert_eq!(
            fx.validator
                .validate(&again, expect, now, &revocations)
                .as_ref(),
            Ok(claims),
            "re-minted accepted claims are refused or read differently"
        );
    }
    result
}

fn reference_parts(token: &str) -> Vec<&str> {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token without three segments");
    parts
}

fn reference_header(token: &str) -> serde_json::Map<String, serde_json::Value> {
    let parts = reference_parts(token);
    let bytes = reference_b64_decode(parts[0].as_bytes()).expect("accepted header is base64url");
    let text = std::str::from_utf8(&bytes).expect("accepted header is UTF-8");
    assert!(
        object_without_duplicate_members(text),
        "accepted header names a member twice"
    );
    let value: serde_json::Value = serde_json::from_str(text).expect("accepted header is JSON");
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("accepted header is not an object: {other}"),
    }
}

fn reference_kid(token: &str) -> String {
    reference_header(token)
        .get("kid")
        .and_then(|k| k.as_str())
        .expect("accepted header has a string kid")
        .to_owned()
}

/// The reference check of an accepted token; returns its key's algorithm.
fn reference_accepts(
    validator: &Validator,
    token: &str,
    claims: &Claims,
    expect: Expect,
    now: u64,
) -> Algorithm {
    assert!(
        token.len() <= MAX_TOKEN_BYTES,
        "accepted an oversized token"
    );
    let parts = reference_parts(token);
    assert!(parts.iter().all(|p| !p.is_empty()));
    let header = reference_header(token);
    let kid = reference_kid(token);
    let key = validator
        .keys()
        .find(&kid)
        .expect("accepted under an unknown kid");
    assert_eq!(
        header.get("alg").and_then(|a| a.as_str()),
        Some(key.alg().as_str()),
        "accepted with an alg that is not the key's"
    );
    assert!(validator.policy().algorithms().contains(&key.alg()));
    let typ = header
        .get("typ")
        .and_then(|t| t.as_str())
        .expect("accepted without a string typ");
    let typ = typ.strip_prefix("application/").unwrap_or(typ);
    assert!(typ.eq_ignore_ascii_case("at+jwt"), "accepted typ {typ:?}");
    for name in FORBIDDEN_HEADER_MEMBERS {
        assert!(!header.contains_key(*name), "accepted a header with {name}");
    }
    let signature = reference_b64_decode(parts[2].as_bytes()).expect("accepted signature b64");
    let input = format!("{}.{}", parts[0], parts[1]);
    assert!(
        key.verify(input.as_bytes(), &signature),
        "accepted a signature that does not verify"
    );
    let payload = reference_b64_decode(parts[1].as_bytes()).expect("accepted payload b64");
    assert_claims_match_json(&payload, claims);

    let policy = validator.policy();
    assert_eq!(claims.iss, policy.issuer());
    assert!(claims.aud.iter().any(|a| policy.audiences().contains(a)));
    match expect {
        Expect::Access => assert!(claims.is_user()),
        Expect::Service => assert!(!claims.is_user()),
        Expect::Any => {}
    }
    let leeway = DEFAULT_LEEWAY;
    assert_eq!(policy.leeway(), leeway);
    assert!(now <= claims.exp.saturating_add(leeway), "accepted expired");
    assert!(
        claims
            .nbf
            .is_none_or(|nbf| nbf <= now.saturating_add(leeway))
    );
    assert!(claims.iat <= now.saturating_add(leeway));
    assert!(claims.exp - claims.iat <= DEFAULT_MAX_LIFETIME);
    let revocations = FuzzRevocations;
    assert!(!revocations.is_token_revoked(&claims.jti));
    assert!(
        claims
            .sid
            .as_deref()
            .is_none_or(|sid| !revocations.is_session_revoked(sid))
    );
    assert!(
        revocations
            .revoked_before(&claims.sub)
            .is_none_or(|cut| claims.iat >= cut)
    );
    key.alg()
}
