//! The console's login session: two cookies bound to a Tollgate session
//! (`sid`), the CSRF token derived from it, and the middleware that checks
//! both on every console request.
//!
//! - `tollgate_console` holds the session's access token. Every request
//!   checks it with [`AppState::authenticate`] — the revocation check of
//!   every bearer route — so logout, an admin's revoke, a disabled user and
//!   an ended session end the console session at once.
//! - `tollgate_console_refresh` holds the session's refresh token: when the
//!   access token has expired, the console rotates it through the same
//!   [`tokens::refresh`] as `/v1/auth/refresh` and sets both cookies again.
//!
//! Both are `HttpOnly; SameSite=Strict; Path=/`, and `Secure` unless the
//! server runs in the development environment on a loopback address.
//!
//! The CSRF token of a session is HMAC-SHA-256 of its `sid` under a key
//! derived from `TOLLGATE_MASTER_KEY` (or `TOLLGATE_HMAC_SECRET`; random per
//! process when neither is set), so every instance of a deployment computes
//! the same token and nobody without the key can. It is compared in
//! constant time.

use aws_lc_rs::hmac;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;
use tollgate_core::config::{Config, Environment};
use tollgate_core::wire::TokenResponse;
use tollgate_core::{Claims, Expect};

use super::Refusal;
use crate::audit::Origin;
use crate::extract::Form;
use crate::state::AppState;
use crate::tokens::{self, FIRST_PARTY_CLIENT};
use crate::{ApiError, input};

/// The access token cookie.
pub(crate) const ACCESS_COOKIE: &str = "tollgate_console";
/// The refresh token cookie.
pub(crate) const REFRESH_COOKIE: &str = "tollgate_console_refresh";
/// The name of the CSRF field of every form.
pub(crate) const CSRF_FIELD: &str = "csrf";
/// Largest console form body, in bytes.
pub(crate) const FORM_LIMIT: usize = 16 * 1024;
/// Longest cookie value read (an access token is at most 8 KiB).
const MAX_COOKIE: usize = tollgate_core::MAX_TOKEN_BYTES;

/// The key CSRF tokens are made with.
pub(crate) struct CsrfKey(hmac::Key);

impl CsrfKey {
    /// Derived from the deployment's secrets, so every instance agrees.
    pub fn from_config(config: &Config) -> Result<CsrfKey, tollgate_core::Error> {
        let mut material: Vec<u8> = b"tollgate console csrf key\0".to_vec();
        let mut derived = false;
        if let Some(master) = &config.master_key {
            material.extend_from_slice(master.expose());
            derived = true;
        }
        if let Some(secret) = &config.hmac_secret {
            material.push(0);
            material.extend_from_slice(secret.expose());
            derived = true;
        }
        if !derived {
            let random = tollgate_core::opaque::salt()?;
            material.extend_from_slice(random.as_bytes());
        }
        let key = hmac::Key::new(hmac::HMAC_SHA256, &material);
        zeroize::Zeroize::zeroize(&mut material);
        Ok(CsrfKey(key))
    }

    /// The CSRF token of session `sid`.
    pub fn token(&self, sid: &str) -> String {
        let tag = hmac::sign(&self.0, sid.as_bytes());
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Whether cookies get `Secure`: always, except in the development
/// environment on a loopback address (plain `http://127.0.0.1`).
pub(crate) fn secure_cookies(config: &Config) -> bool {
    !(config.environment == Environment::Development && config.bind.ip().is_loopback())
}

/// A `Set-Cookie` value.
fn cookie(config: &Config, name: &str, value: &str, max_age: Option<u64>) -> Option<HeaderValue> {
    let secure = if secure_cookies(config) {
        "; Secure"
    } else {
        ""
    };
    let age = match max_age {
        Some(seconds) => format!("; Max-Age={seconds}"),
        None => String::new(),
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/{secure}{age}"
    ))
    .ok()
}

/// Sets both cookies for a fresh or renewed session.
pub(crate) fn set_session_cookies(
    config: &Config,
    headers: &mut HeaderMap,
    tokens: &TokenResponse,
) {
    let refresh_age = config.refresh_token_ttl;
    if let Some(value) = cookie(
        config,
        ACCESS_COOKIE,
        &tokens.access_token,
        Some(refresh_age),
    ) {
        headers.append(header::SET_COOKIE, value);
    }
    if let Some(refresh) = &tokens.refresh_token
        && let Some(value) = cookie(config, REFRESH_COOKIE, refresh, Some(refresh_age))
    {
        headers.append(header::SET_COOKIE, value);
    }
}

/// Removes both cookies.
pub(crate) fn clear_session_cookies(config: &Config, headers: &mut HeaderMap) {
    for name in [ACCESS_COOKIE, REFRESH_COOKIE] {
        if let Some(value) = cookie(config, name, "", Some(0)) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// The value of cookie `name`, if sent once and of a sane size.
pub(crate) fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            let Some((key, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if key == name {
                if found.is_some() {
                    // Twice (a cookie tossed in by a sibling domain): trust neither.
                    return None;
                }
                found = Some(value);
            }
        }
    }
    found.filter(|v| !v.is_empty() && v.len() <= MAX_COOKIE)
}

/// The signed-in user of a console request.
#[derive(Clone, Debug)]
pub(crate) struct Viewer {
    /// The access token's claims.
    pub claims: Claims,
    /// Its session.
    pub sid: String,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
}

impl Viewer {
    /// Whether the viewer has role `admin`.
    pub fn is_admin(&self) -> bool {
        self.claims.has_role("admin")
    }

    /// The viewer's e-mail.
    pub fn email(&self) -> &str {
        self.claims.email.as_deref().unwrap_or("")
    }
}

/// A console form that passed the CSRF check (inserted by [`authenticated`]).
#[derive(Debug, Clone)]
pub(crate) struct Posted(pub std::sync::Arc<Form>);

/// Reads a console form body: `application/x-www-form-urlencoded`, at
/// most [`FORM_LIMIT`] bytes, parsed by the server's strict form parser.
pub(crate) async fn read_form(headers: &HeaderMap, body: Body) -> Result<Form, Refusal> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(Refusal::Api(ApiError::bad_request(
            "send the form as application/x-www-form-urlencoded",
        )));
    }
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| Refusal::Api(ApiError::PayloadTooLarge))?;
    Ok(Form::from_pairs(input::form(&bytes)?))
}

/// Why a request has no console session.
enum NoSession {
    /// No cookie, or a token that is refused: sign in again.
    SignIn,
    /// The session cannot be confirmed now (503).
    Refused(ApiError),
}

/// The viewer of a request, renewing an expired access token with the
/// refresh cookie; `Some(tokens)` when cookies must be set again.
async fn session(
    state: &AppState,
    origin: &Origin,
    headers: &HeaderMap,
) -> Result<(Viewer, Option<TokenResponse>), NoSession> {
    let access = read_cookie(headers, ACCESS_COOKIE);
    let checked = match access {
        Some(token) => state.authenticate(token, Expect::Access),
        None => Err(ApiError::MissingToken),
    };
    let (claims, renewed) = match checked {
        Ok(claims) => (claims, None),
        Err(ApiError::InvalidToken(tollgate_core::Error::Expired))
        | Err(ApiError::MissingToken) => {
            let Some(refresh) = read_cookie(headers, REFRESH_COOKIE) else {
                return Err(NoSession::SignIn);
            };
            let tokens =
                match tokens::refresh(state, origin, refresh, FIRST_PARTY_CLIENT, None).await {
                    Ok(tokens) => tokens,
                    Err(ApiError::InvalidGrant) => return Err(NoSession::SignIn),
                    Err(other) => return Err(NoSession::Refused(other)),
                };
            let claims = state
                .authenticate(&tokens.access_token, Expect::Access)
                .map_err(NoSession::Refused)?;
            (claims, Some(tokens))
        }
        Err(ApiError::InvalidToken(_)) => return Err(NoSession::SignIn),
        Err(other) => return Err(NoSession::Refused(other)),
    };
    let Some(sid) = claims.sid.clone() else {
        return Err(NoSession::SignIn);
    };
    let csrf = state.console_csrf.token(&sid);
    Ok((Viewer { claims, sid, csrf }, renewed))
}

/// Middleware of every console route but the login page: a live session
/// (else the login page for a `GET`, 401 otherwise), and for any other
/// method a form body within the limit carrying the session's CSRF token
/// (else 403). The viewer and the form go into the request's extensions.
pub(crate) async fn authenticated(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(origin) = Origin::from_request_parts(&mut parts, &state).await;
    let request = Request::from_parts(parts, body);
    let (viewer, renewed) = match session(&state, &origin, request.headers()).await {
        Ok(found) => found,
        Err(NoSession::SignIn) => {
            if request.method() == Method::GET || request.method() == Method::HEAD {
                let mut response = Redirect::to(super::LOGIN_PATH).into_response();
                clear_session_cookies(&state.config, response.headers_mut());
                return response;
            }
            return Refusal::SignIn.into_response();
        }
        Err(NoSession::Refused(error)) => return Refusal::Api(error).into_response(),
    };
    let mut request = request;
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let (parts, body) = request.into_parts();
        let form = match read_form(&parts.headers, body).await {
            Ok(form) => form,
            Err(refusal) => return refusal.into_response(),
        };
        let presented = form.get(CSRF_FIELD).unwrap_or("");
        if !bool::from(presented.as_bytes().ct_eq(viewer.csrf.as_bytes())) {
            tracing::warn!(sub = %viewer.claims.sub, "console form refused: missing or wrong CSRF token");
            return Refusal::Csrf.into_response();
        }
        request = Request::from_parts(parts, Body::empty());
        request
            .extensions_mut()
            .insert(Posted(std::sync::Arc::new(form)));
    }
    request.extensions_mut().insert(viewer);
    let mut response = next.run(request).await;
    if let Some(tokens) = renewed {
        set_session_cookies(&state.config, response.headers_mut(), &tokens);
    }
    response
}

/// Middleware of `/console/`: role `admin`, else 403.
pub(crate) async fn admin_only(request: Request, next: Next) -> Response {
    match request.extensions().get::<Viewer>() {
        Some(viewer) if viewer.is_admin() => next.run(request).await,
        _ => Refusal::NotAdmin.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_sent_twice_is_not_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tollgate_console=x"),
        );
        assert_eq!(read_cookie(&headers, ACCESS_COOKIE), Some("x"));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("tollgate_console=y"),
        );
        assert_eq!(read_cookie(&headers, ACCESS_COOKIE), None);
    }

    #[test]
    fn cookies_are_secure_except_in_development_on_loopback() {
        let mut config = Config::development();
        config.bind = "127.0.0.1:8080".parse().unwrap();
        assert!(!secure_cookies(&config));
        config.bind = "0.0.0.0:8080".parse().unwrap();
        assert!(secure_cookies(&config));
        config.bind = "[::1]:8080".parse().unwrap();
        assert!(!secure_cookies(&config));
        config.environment = Environment::Production;
        assert!(secure_cookies(&config));
        let mut headers = HeaderMap::new();
        clear_session_cookies(&config, &mut headers);
        for value in headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            assert!(text.ends_with("; Secure; Max-Age=0"), "{text}");
            assert!(
                text.contains("; HttpOnly; SameSite=Strict; Path=/"),
                "{text}"
            );
        }
    }

    #[test]
    fn csrf_tokens_differ_by_session_and_key() {
        let config =
            tollgate_core::config::ConfigBuilder::new(tollgate_core::config::Component::Server)
                .env([("TOLLGATE_ENV", "development")])
                .build()
                .into_config()
                .unwrap()
                .0;
        let one = CsrfKey::from_config(&config).unwrap();
        let two = CsrfKey::from_config(&config).unwrap();
        assert_eq!(one.token("s1"), one.token("s1"));
        assert_ne!(one.token("s1"), one.token("s2"));
        // No secret configured: a random key per process.
        assert_ne!(one.token("s1"), two.token("s1"));
        assert_eq!(one.token("s1").len(), 64);
    }
}
