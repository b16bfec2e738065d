//! Extractors: typed inputs pulled out of a request, each refusing with an
//! [`ApiError`] (never axum's plain-text rejections).
//!
//! - bodies: [`Form`] (strict `application/x-www-form-urlencoded`) and
//!   [`Json`] (`application/json`), both under the body limit;
//! - the URL: [`PathId`] and [`RawQuery`] (parsed on demand into a
//!   [`Query`]);
//! - callers: [`UserAuth`] (a user's bearer token), [`AdminAuth`] (role
//!   `admin` or service scope `admin`), [`authenticate_client`] (OAuth client
//!   authentication, Basic or form), and [`Peer`] (the client address).
//!
//! Bearer tokens are checked for size before anything decodes them, and go
//! to [`tollgate_core::Validator`] only through [`AppState::authenticate`]
//! (which answers 503 rather than accept a token while the revocation view
//! is stale).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use tollgate_core::{Claims, Expect, MAX_TOKEN_BYTES};
use tollgate_store::ClientRecord;

use crate::state::AppState;
use crate::{ApiError, input};

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

async fn body(request: Request) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, &())
        .await
        .map_err(|rejection: BytesRejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request("the request body could not be read")
            }
        })
}

/// The media type of the request without parameters, lower-cased.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    Some(essence)
}

/// A strictly parsed form body (see [`input::form`]).
#[derive(Debug)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// A form already parsed by [`input::form`] (the console reads its own
    /// bodies, to answer with HTML pages).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Form {
        Form(pairs)
    }

    /// The parameter's value, when present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The parameter's value, or `invalid_request` naming it.
    pub fn require(&self, name: &'static str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| {
            ApiError::InvalidRequest(Cow::Owned(format!("the `{name}` parameter is missing")))
        })
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Form, ApiError> {
        // The OAuth endpoints speak OAuth (RFC 6749 §5.2): a body that is
        // not a form, an empty one included, is a malformed request (400
        // `invalid_request`), not HTTP's 415 (issue 9, item 7).
        if media_type(request.headers()).as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(ApiError::bad_request(
                "send the parameters as application/x-www-form-urlencoded",
            ));
        }
        let bytes = body(request).await?;
        Ok(Form(input::form(&bytes)?))
    }
}

/// A JSON body of type `T`.
#[derive(Debug)]
pub(crate) struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Json<T>, ApiError> {
        let is_json = media_type(request.headers()).is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as application/json",
            ));
        }
        let bytes = body(request).await?;
        // Every body of the API is an object; serde would also fill a
        // struct from an array (`[null, null]` was a PATCH that changed
        // nothing and answered 200).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request("the JSON body must be an object"));
        }
        // serde's messages can quote the input, so only the class is told.
        serde_json::from_slice(&bytes).map(Json).map_err(|error| {
            use serde_json::error::Category;
            if let Some(member) = unknown_member(&error.to_string()) {
                return ApiError::InvalidRequest(Cow::Owned(format!(
                    "the JSON body has an unknown member `{member}`"
                )));
            }
            match error.classify() {
                Category::Data => ApiError::bad_request(
                    "the JSON body lacks a required field or has a field of the wrong type",
                ),
                _ => ApiError::bad_request("the body is not valid JSON"),
            }
        })
    }
}

/// The member named by serde's "unknown field" error, when it is short
/// plain ASCII (anything else is shown as `?`: request text is echoed only
/// when it cannot carry anything but a name).
fn unknown_member(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    let name = &rest[..rest.find('`')?];
    let plain = name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    Some(if plain { name } else { "?" })
}

/// A path segment naming a user or session; anything that cannot be an id
/// is a 404 (it cannot exist).
#[derive(Debug)]
pub(crate) struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathId, ApiError> {
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::NotFound)?;
        if !input::is_identifier(&id) {
            return Err(ApiError::NotFound);
        }
        Ok(PathId(id))
    }
}

/// The query string, parsed as strictly as a form, but only when the
/// handler asks ([`RawQuery::parse`]): a route that needs an authenticated
/// caller authenticates first, so an anonymous caller's query costs nothing
/// (issue 15, item 1).
#[derive(Debug)]
pub(crate) struct RawQuery(Option<String>);

impl RawQuery {
    /// The query as sent, for a reader with its own rules.
    pub fn raw(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Parses the query (see [`input::form`]); 400 `invalid_request`.
    pub fn parse(&self) -> Result<Query, ApiError> {
        let query = self.0.as_deref().unwrap_or("");
        Ok(Query(Form(input::form(query.as_bytes())?)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RawQuery {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<RawQuery, Self::Rejection> {
        Ok(RawQuery(parts.uri.query().map(str::to_owned)))
    }
}

/// A parsed query string.
#[derive(Debug)]
pub(crate) struct Query(Form);

impl Query {
    /// A numeric parameter; absent → `None`, not a number → 400.
    pub fn number(&self, name: &'static str) -> Result<Option<u64>, ApiError> {
        self.0
            .get(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::InvalidRequest(Cow::Owned(format!(
                        "the `{name}` parameter is not a non-negative integer"
                    )))
                })
            })
            .transpose()
    }

    /// A text parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)
    }
}

/// The client's IP address: the TCP peer, or, from a trusted proxy
/// (`TOLLGATE_TRUSTED_PROXIES`), the address its forwarding headers name
/// ([`crate::forwarded`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub Option<IpAddr>);

impl FromRequestParts<AppState> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Peer, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(
            |ConnectInfo(addr)| {
                crate::forwarded::client_address(
                    addr.ip(),
                    &parts.headers,
                    &state.config.trusted_proxies,
                )
            },
        )))
    }
}

/// What an `Authorization` header holds.
enum Authorization<'a> {
    None,
    Bearer(&'a str),
    Basic(&'a str),
}

fn authorization(headers: &HeaderMap) -> Result<Authorization<'_>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Authorization::None);
    };
    // The 8 KiB token cap applies before any decoding (SECURITY D33).
    if value.len() > MAX_TOKEN_BYTES + 16 {
        return Err(ApiError::InvalidToken(tollgate_core::Error::TooLarge));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken(tollgate_core::Error::Malformed("not ASCII")))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim_start_matches(' ');
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Authorization::Bearer(rest))
    } else if scheme.eq_ignore_ascii_case("basic") {
        Ok(Authorization::Basic(rest))
    } else {
        Ok(Authorization::None)
    }
}

/// The bearer token of the request, if one was sent.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    match authorization(headers)? {
        Authorization::Bearer(token) if token.len() > MAX_TOKEN_BYTES => {
            Err(ApiError::InvalidToken(tollgate_core::Error::TooLarge))
        }
        Authorization::Bearer(token) => Ok(Some(token)),
        _ => Ok(None),
    }
}

/// A validated user access token.
#[derive(Debug)]
pub(crate) struct UserAuth(pub Claims);

impl FromRequestParts<AppState> for UserAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?.ok_or(ApiError::MissingToken)?;
        state.authenticate(token, Expect::Access).map(UserAuth)
    }
}

/// A validated token of an administrator: a user with role `admin` or a
/// service with scope `admin`.
#[derive(Debug)]
pub(crate) struct AdminAuth(pub Claims);

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?.ok_or(ApiError::MissingToken)?;
        let claims = state.authenticate(token, Expect::Any)?;
        let allowed = if claims.is_user() {
            claims.has_role("admin")
        } else {
            claims.has_scope("admin")
        };
        if !allowed {
            return Err(ApiError::InsufficientScope);
        }
        Ok(AdminAuth(claims))
    }
}

/// A validated service token with scope `scope`, if the request carries a
/// bearer token at all.
pub(crate) fn service_bearer(
    state: &AppState,
    headers: &HeaderMap,
    scope: &str,
) -> Result<Option<Claims>, ApiError> {
    let Some(token) = bearer(headers)? else {
        return Ok(None);
    };
    let claims = state.authenticate(token, Expect::Service)?;
    if !claims.has_scope(scope) {
        return Err(ApiError::InsufficientScope);
    }
    Ok(Some(claims))
}

/// Client credentials as presented, before checking.
struct Presented {
    id: String,
    secret: String,
}

/// Decodes `client_secret_basic` (RFC 6749 §2.3.1: id and secret are each
/// form-urlencoded, then joined by `:` and base64-encoded).
fn basic_credentials(encoded: &str) -> Result<Presented, ApiError> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ApiError::InvalidClient)?;
    let (id, secret) = decoded
        .iter()
        .position(|b| *b == b':')
        .map(|at| (&decoded[..at], &decoded[at + 1..]))
        .ok_or(ApiError::InvalidClient)?;
    let decode = |raw: &[u8]| input::decode_component(raw).map_err(|_| ApiError::InvalidClient);
    Ok(Presented {
        id: decode(id)?,
        secret: decode(secret)?,
    })
}

/// OAuth client authentication at the token, introspection and revocation
/// endpoints and the revocation feed: `client_secret_basic` or
/// `client_secret_post`.
///
/// - `Ok(None)`: no credentials were presented (a public client, or none);
/// - `Ok(Some(client))`: the secret is the client's;
/// - `invalid_request` when both methods are used at once; `invalid_client`
///   for an unknown client or a wrong secret (indistinguishable: both are
///   answered after the same work, see [`crate::clients`]).
pub(crate) async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    form: Option<&Form>,
) -> Result<Option<ClientRecord>, ApiError> {
    let basic = match authorization(headers)? {
        Authorization::Basic(encoded) => Some(basic_credentials(encoded)?),
        _ => None,
    };
    let posted = form.and_then(|f| f.get("client_secret"));
    let presented = match (basic, posted) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "use one client authentication method, not both",
            ));
        }
        (Some(basic), None) => {
            // A client_id parameter next to Basic must name the same client.
            if form
                .and_then(|f| f.get("client_id"))
                .is_some_and(|id| id != basic.id)
            {
                return Err(ApiError::bad_request(
                    "client_id does not match the authenticated client",
                ));
            }
            basic
        }
        (None, Some(secret)) => Presented {
            id: form
                .and_then(|f| f.get("client_id"))
                .ok_or(ApiError::InvalidClient)?
                .to_owned(),
            secret: secret.to_owned(),
        },
        (None, None) => return Ok(None),
    };
    // An unknown id costs what a known one with a wrong secret does: its
    // absence is cached like a record, and the secret is digested and
    // compared against a dummy digest (`ClientCache::authenticate`).
    state
        .clients
        .authenticate(
            state.store.as_ref(),
            &presented.id,
            presented.secret.as_bytes(),
            state.now(),
        )
        .await?
        .map(Some)
        .ok_or(ApiError::InvalidClient)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        map
    }

    #[test]
    fn bearer_tokens_are_size_checked_before_use() {
        assert_eq!(bearer(&headers("Bearer abc")).unwrap(), Some("abc"));
        assert_eq!(bearer(&headers("bearer  abc")).unwrap(), Some("abc"));
        assert_eq!(bearer(&headers("Basic abc")).unwrap(), None);
        assert_eq!(bearer(&HeaderMap::new()).unwrap(), None);
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(
            bearer(&headers(&huge)).unwrap_err(),
            ApiError::InvalidToken(tollgate_core::Error::TooLarge)
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("svc%3Aa:s%2Bc+ret");
        let presented = basic_credentials(&encoded).unwrap();
        assert_eq!(presented.id, "svc:a");
        assert_eq!(presented.secret, "s+c ret");
        assert!(basic_credentials("%%%").is_err());
        let no_colon = base64::engine::general_purpose::STANDARD.encode("svc");
        assert!(basic_credentials(&no_colon).is_err());
    }
}
