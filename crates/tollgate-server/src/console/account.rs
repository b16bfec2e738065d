//! `/account/`: signing in and out, and every user's own page — profile and
//! plan, sessions (end one, or all others), usage.

use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use tollgate_core::usage::{DAY, Period, UsageGroup};
use tollgate_store::UsageQuery;

use super::session::{self, Posted, Viewer};
use super::views::{age, button, page, when};
use super::{LOGIN_PATH, Refusal, chart};
use crate::ApiError;
use crate::audit::{Actor, Origin};
use crate::extract::{PathId, Peer};
use crate::routes::auth::password_login;
use crate::state::AppState;
use crate::tokens;
use tollgate_core::audit::AuditEvent;

/// The period usage pages show: the last 30 days.
pub(super) const USAGE_SPAN: u64 = 30 * DAY;

fn login_form(message: Option<&str>, email: &str) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            @if let Some(message) = message {
                p class="error" role="alert" { (message) }
            }
            form class="card" method="post" action=(LOGIN_PATH) {
                label for="email" { "E-mail" }
                input id="email" name="email" type="email" autocomplete="username" required value=(email);
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// `GET /account/login`.
pub(super) async fn login_page() -> Html<String> {
    Html(login_form(None, "").into_string())
}

/// A cross-origin form post (login CSRF): refused when the browser names
/// an `Origin` that is not this host.
fn foreign_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host)
}

/// `POST /account/login`: the API's password login, limits included; the
/// session it starts is the console's.
pub(super) async fn login(
    State(state): State<AppState>,
    origin: Origin,
    Peer(peer): Peer,
    request: Request,
) -> Response {
    if foreign_origin(request.headers()) {
        return Refusal::Csrf.into_response();
    }
    let (parts, body) = request.into_parts();
    let form = match session::read_form(&parts.headers, body).await {
        Ok(form) => form,
        Err(refusal) => return refusal.into_response(),
    };
    let email = form.get("email").unwrap_or("").to_owned();
    let password = form.get("password").unwrap_or("").to_owned();
    let user = match password_login(&state, &origin, peer, &email, password).await {
        Ok(user) => user,
        Err(ApiError::InvalidCredentials) => {
            let html = login_form(Some("The e-mail or password is wrong."), &email);
            return (StatusCode::UNAUTHORIZED, Html(html.into_string())).into_response();
        }
        Err(other) => return Refusal::Api(other).into_response(),
    };
    let tokens = match tokens::start_session(&state, &origin, &user).await {
        Ok(tokens) => tokens,
        Err(error) => return Refusal::Api(error).into_response(),
    };
    tracing::info!(sub = %user.id, "signed in to the console");
    let to = if user.roles.iter().any(|r| r == "admin") {
        "/console/"
    } else {
        "/account/"
    };
    let mut response = Redirect::to(to).into_response();
    session::set_session_cookies(&state.config, response.headers_mut(), &tokens);
    response
}

/// `POST /account/logout`: ends the session, like `/v1/auth/logout`.
pub(super) async fn logout(
    State(state): State<AppState>,
    origin: Origin,
    Extension(viewer): Extension<Viewer>,
    Extension(_): Extension<Posted>,
) -> Result<Response, Refusal> {
    state.end_session(&viewer.sid).await?;
    tracing::info!(sub = %viewer.claims.sub, sid = %viewer.sid, "signed out of the console");
    state
        .audit
        .record(
            &origin,
            Actor::of(&viewer.claims),
            AuditEvent::Logout {
                user_id: viewer.claims.sub.clone(),
                sid: viewer.sid.clone(),
            },
        )
        .await;
    let mut response = Redirect::to(LOGIN_PATH).into_response();
    session::clear_session_cookies(&state.config, response.headers_mut());
    Ok(response)
}

/// Usage of one user (or all) in the last 30 days, grouped.
pub(super) async fn usage_rows(
    state: &AppState,
    user: Option<&str>,
    group_by: UsageGroup,
) -> Result<Vec<(String, u64)>, ApiError> {
    let now = state.now();
    let period =
        Period::covering(now.saturating_sub(USAGE_SPAN), now.max(1)).ok_or(ApiError::Internal)?;
    let rows = state
        .store
        .usage_report(UsageQuery {
            user,
            period,
            group_by,
        })
        .await?;
    // A report over every user has a row per user and group: sum them.
    let mut sums: Vec<(String, u64)> = Vec::new();
    for row in rows {
        match sums.iter_mut().find(|(key, _)| *key == row.key) {
            Some((_, calls)) => *calls += row.calls,
            None => sums.push((row.key, row.calls)),
        }
    }
    if group_by != UsageGroup::Day {
        sums.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    } else {
        sums.sort();
    }
    Ok(sums)
}

/// `GET /account/`.
pub(super) async fn home(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Html<String>, Refusal> {
    let sub = viewer.claims.sub.clone();
    let user = state
        .store
        .find_user(&sub)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = state.now();
    let sessions = state.store.list_sessions(&sub, now).await?;
    let by_tool = usage_rows(&state, Some(&sub), UsageGroup::Tool).await?;
    let by_day = usage_rows(&state, Some(&sub), UsageGroup::Day).await?;
    let content = html! {
        section aria-labelledby="profile" {
            h2 id="profile" { "Profile" }
            dl class="facts" {
                dt { "E-mail" } dd { (user.email) }
                dt { "Plan" } dd { (user.plan) }
                dt { "Roles" } dd { (if user.roles.is_empty() { "none".to_owned() } else { user.roles.join(", ") }) }
                dt { "Member since" } dd { (when(user.created_at)) }
            }
        }
        section aria-labelledby="sessions" {
            h2 id="sessions" { "Sessions" }
            p { "Every place you are signed in. Ending a session signs it out everywhere at once." }
            div class="scroll" {
                table class="stack" {
                    thead { tr {
                        th scope="col" { "Session" } th scope="col" { "Client" }
                        th scope="col" { "Started" } th scope="col" { "Last used" }
                        th scope="col" { "Ends" } th scope="col" { span class="sr" { "Action" } }
                    } }
                    tbody {
                        @for s in &sessions {
                            tr {
                                td data-label="Session" { code { (short(&s.sid)) } @if s.sid == viewer.sid { " " span class="tag" { "this one" } } }
                                td data-label="Client" { (s.client_id) }
                                td data-label="Started" { (when(s.created_at)) }
                                td data-label="Last used" { (age(now.saturating_sub(s.last_used_at))) " ago" }
                                td data-label="Ends" { (when(s.expires_at)) }
                                td data-label="" { (button(&viewer, &format!("/account/sessions/{}/end", s.sid), "End", "danger")) }
                            }
                        }
                    }
                }
            }
            @if sessions.len() > 1 {
                (button(&viewer, "/account/sessions/end-others", "End all other sessions", "danger"))
            }
        }
        section aria-labelledby="usage" {
            h2 id="usage" { "Usage (last 30 days)" }
            (chart::bars("Calls per tool", "calls", &by_tool))
            (chart::bars("Calls per day", "calls", &by_day))
        }
    };
    Ok(Html(
        page("My account", Some(&viewer), content).into_string(),
    ))
}

/// A session ended from the console, in the audit trail as the API's
/// `DELETE /v1/sessions/{sid}` records it.
pub(super) async fn record_session_end(
    state: &AppState,
    origin: &Origin,
    viewer: &Viewer,
    sid: &str,
) {
    state
        .audit
        .record(
            origin,
            Actor::of(&viewer.claims),
            AuditEvent::Revoked {
                kind: "session",
                value: sid.to_owned(),
            },
        )
        .await;
}

/// The first 8 characters of an id, for tables.
pub(super) fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// `POST /account/sessions/{sid}/end`: one of the user's own sessions;
/// another user's is answered like none (404).
pub(super) async fn end_session(
    State(state): State<AppState>,
    origin: Origin,
    Extension(viewer): Extension<Viewer>,
    Extension(_): Extension<Posted>,
    PathId(sid): PathId,
) -> Result<Response, Refusal> {
    match state.store.find_session(&sid).await? {
        Some(found) if found.user_id == viewer.claims.sub && found.revoked_at.is_none() => {
            state.end_session(&sid).await?;
            tracing::info!(sub = %viewer.claims.sub, sid = %sid, "session ended by its user (console)");
            record_session_end(&state, &origin, &viewer, &sid).await;
        }
        _ => return Err(ApiError::NotFound.into()),
    }
    let to = if sid == viewer.sid {
        LOGIN_PATH
    } else {
        "/account/"
    };
    Ok(Redirect::to(to).into_response())
}

/// `POST /account/sessions/end-others`: every session but this one.
pub(super) async fn end_others(
    State(state): State<AppState>,
    origin: Origin,
    Extension(viewer): Extension<Viewer>,
    Extension(_): Extension<Posted>,
) -> Result<Response, Refusal> {
    let sessions = state
        .store
        .list_sessions(&viewer.claims.sub, state.now())
        .await?;
    let mut ended = 0;
    for s in sessions.iter().filter(|s| s.sid != viewer.sid) {
        if state.end_session(&s.sid).await? {
            ended += 1;
            record_session_end(&state, &origin, &viewer, &s.sid).await;
        }
    }
    tracing::info!(sub = %viewer.claims.sub, ended, "other sessions ended by their user (console)");
    Ok(Redirect::to("/account/").into_response())
}
