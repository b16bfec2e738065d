//! A JSON-in / JSON-out peer for interoperability tests written with other
//! languages' JOSE libraries (see `tests/python/test_core_*.py`).
//!
//! Reads one JSON request on stdin, writes one JSON answer on stdout:
//!
//! - `{"op": "mint", "alg": "EdDSA", "issuer": "...", "audience": ["api", ...],
//!   "token_type": "access" | "service", "ttl": 900, "now": 1700000000,
//!   "hs256_secret": "..."}` generates a fresh key of `alg` (HS256 uses the
//!   given secret), mints a realistic token and answers
//!   `{"token", "jwks", "kid", "issuer", "audience", "alg", "claims"}`.
//!   `now` defaults to the wall clock, `ttl` to 900 s, `token_type` to
//!   `access`.
//! - `{"op": "validate", "token": "..." | "tokens": [...], "jwks": {...},
//!   "hs256_secret": "...", "hs256_kid": "...", "issuer": "...",
//!   "audience": [...], "expect": "access" | "service" | "any",
//!   "algorithms": ["EdDSA", ...], "now": ...}` validates with
//!   `tollgate_core::Validator` and answers `{"valid": bool, "code": "ok" |
//!   <error code>, "claims": {...}}` (or `{"results": [...]}` for `tokens`).
//!   `algorithms` defaults to the asymmetric ones, plus HS256 when a secret
//!   is given. A JWKS that does not import answers `valid: false` with its
//!   error code.
//!
//! A malformed request prints `{"error": "..."}` and exits with status 2.
//!
//! Run: `cargo run -p tollgate-core --example interop < request.json`.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tollgate_core::claims::{Minter, ServiceGrant, UserGrant};
use tollgate_core::keys::{Algorithm, Jwks, ManagedKey, VerifyingKey, VerifyingKeys};
use tollgate_core::validate::{Expect, ValidationPolicy, Validator, dangerous::NoRevocations};
use tollgate_core::{Claims, Error, Secret, UnixTime};

fn main() -> ExitCode {
    let mut input = String::new();
    let answer = std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("cannot read stdin: {e}"))
        .and_then(|_| serde_json::from_str::<Value>(&input).map_err(|e| format!("bad JSON: {e}")))
        .and_then(|request| handle(&request));
    let (text, code) = match answer {
        Ok(value) => (value.to_string(), ExitCode::SUCCESS),
        Err(message) => (json!({ "error": message }).to_string(), ExitCode::from(2)),
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe is not this program's problem.
    let _ = writeln!(out, "{text}");
    code
}

fn handle(request: &Value) -> Result<Value, String> {
    match request["op"].as_str() {
        Some("mint") => mint(request),
        Some("validate") => validate(request),
        _ => Err("`op` must be \"mint\" or \"validate\"".into()),
    }
}

fn wall_clock() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn string<'a>(request: &'a Value, name: &str) -> Result<&'a str, String> {
    request[name]
        .as_str()
        .ok_or_else(|| format!("`{name}` must be a string"))
}

fn strings(request: &Value, name: &str) -> Result<Vec<String>, String> {
    match &request[name] {
        Value::String(one) => Ok(vec![one.clone()]),
        Value::Array(many) => many
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("`{name}` must hold strings")),
        _ => Err(format!("`{name}` must be a string or an array of strings")),
    }
}

fn explain(err: Error) -> String {
    err.explain().to_string()
}

fn mint(request: &Value) -> Result<Value, String> {
    let alg: Algorithm = string(request, "alg")?.parse().map_err(explain)?;
    let now = request["now"].as_u64().unwrap_or_else(wall_clock);
    let ttl = request["ttl"].as_u64().unwrap_or(900);
    let issuer = string(request, "issuer")?;
    let audience = strings(request, "audience")?;
    let key = match alg {
        Algorithm::HS256 => {
            let secret = string(request, "hs256_secret")?;
            ManagedKey::from_hmac_secret(&Secret::new(secret.as_bytes()), now)
        }
        _ => ManagedKey::generate(alg, now),
    }
    .map_err(explain)?;
    let signing = key.signing_key().map_err(explain)?;
    let jwks = VerifyingKeys::new([signing.verifying_key()]).to_jwks();
    let minter = Minter::new(issuer, audience.clone(), signing).map_err(explain)?;
    let (token, claims) = match request["token_type"].as_str().unwrap_or("access") {
        "access" => minter.user(
            UserGrant {
                sub: "user-4821".into(),
                sid: "sid-55aa".into(),
                email: "ada@example.com".into(),
                roles: vec!["user".into(), "beta".into(), "support".into()],
                plan: "pro".into(),
                permissions: [
                    "tool:search",
                    "tool:code",
                    "chat:send",
                    "chat:read",
                    "usage:read",
                ]
                .map(String::from)
                .to_vec(),
                client_id: "web".into(),
                scope: "openid profile tools".into(),
            },
            now,
            ttl,
        ),
        "service" => minter.service(
            ServiceGrant {
                client_id: "billing-worker".into(),
                scope: "usage:write".into(),
            },
            now,
            ttl,
        ),
        _ => return Err("`token_type` must be \"access\" or \"service\"".into()),
    }
    .map_err(explain)?;
    Ok(json!({
        "token": token,
        "jwks": jwks,
        "kid": key.kid(),
        "issuer": issuer,
        "audience": audience,
        "alg": alg.as_str(),
        "claims": claims_json(&claims),
    }))
}

fn claims_json(claims: &Claims) -> Value {
    serde_json::to_value(claims).unwrap_or(Value::Null)
}

fn validate(request: &Value) -> Result<Value, String> {
    let now = request["now"].as_u64().unwrap_or_else(wall_clock);
    let expect = match request["expect"].as_str().unwrap_or("access") {
        "access" => Expect::Access,
        "service" => Expect::Service,
        "any" => Expect::Any,
        _ => return Err("`expect` must be \"access\", \"service\" or \"any\"".into()),
    };
    let tokens = match (&request["token"], &request["tokens"]) {
        (Value::String(one), Value::Null) => vec![one.clone()],
        (Value::Null, Value::Array(_)) => strings(request, "tokens")?,
        _ => return Err("give `token` (a string) or `tokens` (an array)".into()),
    };
    let results: Vec<Value> = match validator(request) {
        Ok(validator) => tokens
            .iter()
            .map(
                |token| match validator.validate(token, expect, now, &NoRevocations) {
                    Ok(claims) => {
                        json!({ "valid": true, "code": "ok", "claims": claims_json(&claims) })
                    }
                    Err(err) => {
                        json!({ "valid": false, "code": err.code(), "reason": err.to_string() })
                    }
                },
            )
            .collect(),
        // The key set itself was refused: every token is invalid for it.
        Err(err) => tokens
            .iter()
            .map(|_| json!({ "valid": false, "code": err.code(), "reason": err.to_string() }))
            .collect(),
    };
    match (request["token"].is_string(), results.as_slice()) {
        (true, [one]) => Ok(one.clone()),
        _ => Ok(json!({ "results": results })),
    }
}

fn validator(request: &Value) -> Result<Validator, Error> {
    let issuer = request["issuer"].as_str().unwrap_or_default();
    let audience = strings(request, "audience").unwrap_or_default();
    let mut keys: Vec<VerifyingKey> = Vec::new();
    if !request["jwks"].is_null() {
        let jwks: Jwks = serde_json::from_value(request["jwks"].clone())
            .map_err(|_| Error::InvalidJwk("not a JWKS document"))?;
        keys.extend(VerifyingKeys::from_jwks(&jwks)?.iter().cloned());
    }
    let mut algorithms = vec![Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];
    if let Some(secret) = request["hs256_secret"].as_str() {
        let kid = request["hs256_kid"].as_str().unwrap_or("hs256");
        keys.push(VerifyingKey::from_hmac_secret(
            kid,
            &Secret::new(secret.as_bytes()),
        )?);
        algorithms.push(Algorithm::HS256);
    }
    if let Ok(names) = strings(request, "algorithms") {
        algorithms = names
            .iter()
            .map(|name| name.parse())
            .collect::<Result<_, Error>>()?;
    }
    let policy = ValidationPolicy::new(issuer, audience)?.with_algorithms(&algorithms);
    Ok(Validator::new(policy, VerifyingKeys::new(keys)))
}
