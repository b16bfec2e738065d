//! The web console: `/console/` for operators (role `admin`) and
//! `/account/` for every user, served by the token service itself as
//! server-rendered HTML (maud templates), with one static CSS file built
//! into the binary and no JavaScript. Charts are SVG drawn here.
//!
//! Code map: `session` (cookies bound to a Tollgate session, the CSRF
//! token, the middlewares), `views` (the layout and shared bits of HTML),
//! `chart` (SVG bar charts), `account` (`/account/`: login, logout, the
//! user's profile, sessions and usage), `admin` (`/console/`: users,
//! sessions, clients, keys, revocations, configuration, usage).
//!
//! The console calls the same functions as the API for everything it does
//! (the password login and its limits, user updates and their last-admin
//! rule, session ends, revocations, key rotation, client registration);
//! it has no rules of its own beyond the page's security: every answer
//! carries [`security_headers`], every state change is a `POST` carrying the
//! session's CSRF token, and showing a new client secret or rotating keys
//! needs the password again.

mod account;
mod admin;
mod chart;
pub(crate) mod session;
mod views;

use std::borrow::Cow;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::ApiError;
use crate::state::AppState;

pub(crate) use session::CsrfKey;

/// The login page.
pub(crate) const LOGIN_PATH: &str = "/account/login";

/// The style sheet, built into the binary.
const STYLE: &str = include_str!("console.css");

/// Why a console request is refused, rendered as an HTML page with the
/// status of the API's answer for the same error.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// An error of the API (bad input, unknown id, limits, store down…).
    Api(ApiError),
    /// A state-changing form without the session's CSRF token. 403.
    Csrf,
    /// `/console/` for a user without role `admin`. 403.
    NotAdmin,
    /// A form posted without a live session. 401.
    SignIn,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Refusal {
        Refusal::Api(error)
    }
}

impl From<tollgate_store::StoreError> for Refusal {
    fn from(error: tollgate_store::StoreError) -> Refusal {
        Refusal::Api(ApiError::from(error))
    }
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::Api(error) => error.status(),
            Refusal::Csrf | Refusal::NotAdmin => StatusCode::FORBIDDEN,
            Refusal::SignIn => StatusCode::UNAUTHORIZED,
        }
    }

    fn message(&self) -> Cow<'static, str> {
        match self {
            Refusal::Api(error) => Cow::Owned(error.to_string()),
            Refusal::Csrf => Cow::Borrowed(
                "This form was refused: it does not carry this session's security token. Reload the page and try again.",
            ),
            Refusal::NotAdmin => Cow::Borrowed(
                "The console is for administrators (role admin). Your account page is at /account/.",
            ),
            Refusal::SignIn => Cow::Borrowed("Your session has ended. Sign in again."),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match &self {
            Refusal::Api(ApiError::TooManyAttempts { retry_after }) => Some(*retry_after),
            Refusal::Api(ApiError::Overloaded | ApiError::Unavailable) => Some(1),
            _ => None,
        };
        let page = views::error_page(status, &self.message());
        let mut response = (status, Html(page.into_string())).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        add_security_headers(response.headers_mut());
        response
    }
}

/// Whether `path` is the console's: unknown paths and methods there are
/// answered with HTML pages.
pub(crate) fn owns(path: &str) -> bool {
    path == "/console"
        || path.starts_with("/console/")
        || path == "/account"
        || path.starts_with("/account/")
}

/// The console's headers: a CSP without inline script or style, no
/// framing, no referrer outside the origin, no caching, no sniffing.
fn add_security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    add_security_headers(response.headers_mut());
    response
}

/// `GET /console/static/console.css`.
async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// `GET /console` and `/account`: the trailing slash.
async fn to_console() -> axum::response::Redirect {
    axum::response::Redirect::permanent("/console/")
}

async fn to_account() -> axum::response::Redirect {
    axum::response::Redirect::permanent("/account/")
}

/// The console's routes. None of them is on a token endpoint's path, and
/// their layers wrap only them: the hot paths are untouched.
pub(crate) fn router(state: AppState) -> Router<AppState> {
    let open = Router::new()
        .route(LOGIN_PATH, get(account::login_page).post(account::login))
        .route("/console/static/console.css", get(style))
        .route("/console", get(to_console))
        .route("/account", get(to_account));
    let account = Router::new()
        .route("/account/", get(account::home))
        .route("/account/logout", post(account::logout))
        .route("/account/sessions/{sid}/end", post(account::end_session))
        .route("/account/sessions/end-others", post(account::end_others));
    let console = Router::new()
        .route("/console/", get(admin::users))
        .route("/console/users", get(admin::users).post(admin::create_user))
        .route("/console/users/{id}", get(admin::user))
        .route("/console/users/{id}/plan", post(admin::set_plan))
        .route("/console/users/{id}/roles", post(admin::set_roles))
        .route("/console/users/{id}/disabled", post(admin::set_disabled))
        .route("/console/users/{id}/revoke", post(admin::revoke_user))
        .route(
            "/console/users/{id}/sessions/{sid}/end",
            post(admin::end_session),
        )
        .route(
            "/console/clients",
            get(admin::clients).post(admin::create_client),
        )
        .route("/console/clients/{id}", get(admin::client))
        .route(
            "/console/clients/{id}/rotate",
            post(admin::rotate_client_secret),
        )
        .route("/console/clients/{id}/delete", post(admin::delete_client))
        .route("/console/keys", get(admin::keys))
        .route("/console/keys/rotate", post(admin::rotate_keys))
        .route("/console/revocations", get(admin::revocations))
        .route("/console/config", get(admin::configuration))
        .route("/console/usage", get(admin::usage))
        .route_layer(middleware::from_fn(session::admin_only));
    let signed_in = account
        .merge(console)
        .route_layer(middleware::from_fn_with_state(
            state,
            session::authenticated,
        ));
    open.merge(signed_in)
        .layer(middleware::from_fn(security_headers))
}

/// The HTML answer of an unknown console path.
pub(crate) fn not_found() -> Response {
    Refusal::Api(ApiError::NotFound).into_response()
}

/// The HTML answer of a console path with the wrong method.
pub(crate) fn method_not_allowed() -> Response {
    Refusal::Api(ApiError::MethodNotAllowed).into_response()
}
