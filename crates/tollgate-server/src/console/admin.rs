//! `/console/`: the operators' pages (role `admin`, checked by
//! [`super::session::admin_only`]). Every change goes through the function
//! the admin API uses for it.

use axum::extract::{Extension, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use tollgate_core::usage::UsageGroup;
use tollgate_store::UserUpdate;

use super::account::{record_session_end, short, usage_rows};
use super::session::{Posted, Viewer};
use super::views::{age, button, csrf, page, when};
use super::{Refusal, chart};
use crate::audit::Origin;
use crate::extract::{Form, PathId, Peer, RawQuery};
use crate::routes::admin::{
    apply_user_update, create_user_as, delete_client_as, register_client, revoke_user_as, rotate,
    rotate_client_secret_as,
};
use crate::routes::auth::password_login;
use crate::state::AppState;
use crate::{ApiError, accounts, input};

/// Users per page.
const PAGE: u32 = 50;

fn html(title: &str, viewer: &Viewer, content: Markup) -> Html<String> {
    Html(page(title, Some(viewer), content).into_string())
}

/// Splits a text field of names (spaces or commas between them).
fn names(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("")
        .split([' ', ',', '\n', '\t', '\r'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The password again, before a secret is shown or keys rotate: the same
/// password login and limits as signing in, for the signed-in user.
async fn reauthenticate(
    state: &AppState,
    origin: &Origin,
    peer: Option<std::net::IpAddr>,
    viewer: &Viewer,
    form: &Form,
) -> Result<(), ApiError> {
    let password = form.get("password").unwrap_or("").to_owned();
    let user = password_login(state, origin, peer, viewer.email(), password).await?;
    if user.id != viewer.claims.sub {
        return Err(ApiError::InvalidCredentials);
    }
    Ok(())
}

fn password_field() -> Markup {
    html! {
        label for="password" { "Your password (again, to confirm)" }
        input id="password" name="password" type="password" autocomplete="current-password" required;
    }
}

fn plan_select(state: &AppState, current: &str) -> Markup {
    html! {
        select id="plan" name="plan" {
            @for plan in state.plans.iter() {
                option value=(plan.name) selected[plan.name == current] { (plan.name) }
            }
        }
    }
}

/// `GET /console/` and `/console/users?email=E&after=ID`: a search by
/// e-mail (the store's unique index) or a page of users in id order.
pub(super) async fn users(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    query: RawQuery,
) -> Result<Html<String>, Refusal> {
    let query = query.parse()?;
    let email = query.get("email");
    let after = query.get("after");
    if after.is_some_and(|a| !input::is_identifier(a)) {
        return Err(ApiError::bad_request("`after` is a user id").into());
    }
    let (users, searched) = match email {
        Some(email) => {
            let email = input::email(email)?;
            (
                state
                    .store
                    .find_user_by_email(&email)
                    .await?
                    .into_iter()
                    .collect(),
                true,
            )
        }
        None => (state.store.list_users(after, PAGE).await?, false),
    };
    let next = (!searched && users.len() == PAGE as usize)
        .then(|| users.last().map(|u| u.id.clone()))
        .flatten();
    let content = html! {
        form class="search" method="get" action="/console/users" role="search" {
            label for="search-email" { "Find a user by e-mail" }
            input id="search-email" name="email" type="email" value=(email.unwrap_or(""));
            button type="submit" { "Search" }
        }
        div class="scroll" {
            table class="stack" {
                thead { tr {
                    th scope="col" { "E-mail" } th scope="col" { "Plan" } th scope="col" { "Roles" }
                    th scope="col" { "Status" } th scope="col" { "Created" }
                } }
                tbody {
                    @for user in &users {
                        tr {
                            td data-label="E-mail" { a href=(format!("/console/users/{}", user.id)) { (user.email) } }
                            td data-label="Plan" { (user.plan) }
                            td data-label="Roles" { (user.roles.join(", ")) }
                            td data-label="Status" { @if user.disabled { span class="tag off" { "disabled" } } @else { "active" } }
                            td data-label="Created" { (when(user.created_at)) }
                        }
                    }
                }
            }
        }
        @if users.is_empty() { p class="empty" { "No user found." } }
        nav class="pages" aria-label="Pages" {
            @if searched || after.is_some() { a href="/console/users" { "First page" } }
            @if let Some(next) = next { a href=(format!("/console/users?after={next}")) { "Next page" } }
        }
        section aria-labelledby="create" {
            h2 id="create" { "Create a user" }
            form class="card" method="post" action="/console/users" {
                (csrf(&viewer))
                label for="new-email" { "E-mail" }
                input id="new-email" name="email" type="email" required autocomplete="off";
                label for="new-password" { "Password" }
                input id="new-password" name="password" type="password" required autocomplete="new-password";
                label for="plan" { "Plan" }
                (plan_select(&state, tollgate_core::plans::DEFAULT_PLAN))
                label for="new-roles" { "Roles (separated by spaces)" }
                input id="new-roles" name="roles" type="text" autocomplete="off";
                button type="submit" { "Create" }
            }
        }
    };
    Ok(html("Users", &viewer, content))
}

/// `POST /console/users`.
pub(super) async fn create_user(
    State(state): State<AppState>,
    origin: Origin,
    Extension(viewer): Extension<Viewer>,
    Extension(Posted(form)): Extension<Posted>,
) -> Result<Response, Refusal> {
    let password = form.require("password")?.to_owned();
    let user = accounts::check_new_user(
        &state.plans,
        form.require("email")?,
        &password,
        form.get("plan").map(str::to_owned),
        Some(names(form.get("roles"))),
    )?;
    let user = create_user_as(&state, &origin, &viewer.claims, user, password).await?;
    Ok(Redirect::to(&format!("/console/users/{}", user.id)).into_response())
}

/// `GET /console/users/{id}`: the user, their sessions and usage.
pub(super) async fn user(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    PathId(id): PathId,
) -> Result<Html<String>, Refusal> {
    let user = state
        .store
        .find_user(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = state.now();
    let sessions = state.store.list_sessions(&user.id, now).await?;
    let by_tool = usage_rows(&state, Some(&user.id), UsageGroup::Tool).await?;
    let base = format!("/console/users/{}", user.id);
    let content = html! {
        dl class="facts" {
            dt { "E-mail" } dd { (user.email) }
            dt { "Id" } dd { code { (user.id) } }
            dt { "Plan" } dd { (user.plan) }
            dt { "Roles" } dd { (user.roles.join(", ")) }
            dt { "Status" } dd { @if user.disabled { "disabled" } @else { "active" } }
            dt { "Created" } dd { (when(user.created_at)) }
        }
        div class="actions" {
            form class="card" method="post" action=(format!("{base}/plan")) {
                (csrf(&viewer))
                label for="plan" { "Plan" }
                (plan_select(&state, &user.plan))
                button type="submit" { "Set plan" }
            }
            form class="card" method="post" action=(format!("{base}/roles")) {
                (csrf(&viewer))
                label for="roles" { "Roles (separated by spaces)" }
                input id="roles" name="roles" type="text" value=(user.roles.join(" ")) autocomplete="off";
                button type="submit" { "Set roles" }
            }
            form class="card" method="post" action=(format!("{base}/disabled")) {
                (csrf(&viewer))
                @if user.disabled {
                    input type="hidden" name="disabled" value="false";
                    button type="submit" { "Enable" }
                } @else {
                    input type="hidden" name="disabled" value="true";
                    button type="submit" class="danger" { "Disable (and revoke every token)" }
                }
            }
            (button(&viewer, &format!("{base}/revoke"), "Revoke all tokens", "danger"))
        }
        section aria-labelledby="sessions" {
            h2 id="sessions" { "Sessions" }
            @if sessions.is_empty() { p class="empty" { "No live session." } }
            @else {
                div class="scroll" {
                    table class="stack" {
                        thead { tr {
                            th scope="col" { "Session" } th scope="col" { "Client" }
                            th scope="col" { "Started" } th scope="col" { "Last used" }
                            th scope="col" { span class="sr" { "Action" } }
                        } }
                        tbody {
                            @for s in &sessions {
                                tr {
                                    td data-label="Session" { code title=(s.sid) { (short(&s.sid)) } }
                                    td data-label="Client" { (s.client_id) }
                                    td data-label="Started" { (when(s.created_at)) }
                                    td data-label="Last used" { (age(now.saturating_sub(s.last_used_at))) " ago" }
                                    td data-label="" { (button(&viewer, &format!("{base}/sessions/{}/end", s.sid), "End", "danger")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="usage" {
            h2 id="usage" { "Usage (last 30 days)" }
            (chart::bars("Calls per tool", "calls", &by_tool))
        }
    };
    Ok(html(&user.email, &viewer, content))
}

async fn update(
    state: &AppState,
    origin: &Origin,
    viewer: &Viewer,
    id: &str,
    update: UserUpdate,
) -> Result<Response, Refusal> {
    let user = apply_user_update(state, origin, &viewer.claims, id, update).await?;
    Ok(Redirect::to(&format!("/console/users/{}", user.id)).into_response())
}

/// `POST /console/users/{id}/plan`.
pub(super) async fn set_plan(
    State(state): State<AppState>,
    origin: Origin,
    Extension(viewer): Extension<Viewer>,
    Extension(Posted(form)): Extension<Posted>,
    PathId(id): PathId,
) -> Result<Response, Refusal> {
    let plan = accounts::check_plan(&state.plans, Some(form.require("plan")?.to_owned()))?;
    let change = UserUpdate {
        plan,
        ..UserUpdate::default()
    };
    update(&state, &origin, &viewer, &id, change).await
}

/// `POST /console/users/{id}/roles`.
pub(super) async fn set_roles(
    State(state): State<AppState>,
    origin: Origin,
    Extension(viewer): Extension<Viewer>,
    Extension(Posted(form)): Extension<Posted>,
    PathId(id): PathId,
) -> Result<Response, Refusal> {
    let roles = accounts::check_roles(names(form.get("roles")))?;
    let change = UserUpdate {
        roles: Some(roles),
        ..UserUpdate::default()
    };
    update(&state, &origin, &viewer, &id, change).await
}

/// `POST /console/users/{id}/disabled` with `disabled=true|false`.
pub(super) async fn set_disabled(
    State(state): State<AppState>,
    origin: Origin,
    Extension(viewer): Extension<Viewer>,
    Extension(Posted(form)): Extension<Posted>,
    PathId(id): PathId,
) -> Result<Response, Refusal> {
    let disabled = match form.require("disabled")? {
        "true" => true,
        "false" => false,
        _ => return Err(ApiError::bad_request("`disabled` is `true` or `false`").into()),
    };
    let change = UserUpdate {
        disabled: Some(disabled),
        ..UserUpdate::default()
    };
    update(&state, &origin, &viewer, &id, change).await
}

/// `POST /console/users/{id}/revoke`: every token of the user.
pub(super) async fn revoke_user(
    State(state): State<AppState>,
    origin: Origin,
    Extension(viewer): Extension<Viewer>,
    Extension(_): Extension<Posted>,
    PathId(id): PathId,
) -> Result<Response, Refusal> {
    let user = revoke_user_as(&state, &origin, &viewer.claims, &id).await?;
    Ok(Redirect::to(&format!("/console/users/{}", user.id)).into_response())
}

/// `POST /console/users/{id}/sessions/{sid}/end`.
pub(super) async fn end_session(
    State(state): State<AppState>,
    origin: Origin,
    Extension(viewer): Extension<Viewer>,
    Extension(_): Extension<Posted>,
    axum::extract::Path((id, sid)): axum::extract::Path<(String, String)>,
) -> Result<Response, Refusal> {
    if !input::is_identifier(&id) || !input::is_identifier(&sid) {
        return Err(ApiError::NotFound.into());
    }
    match state.store.find_session(&sid).await? {
        Some(found) if found.user_id == id && found.revoked_at.is_none() => {
            state.end_session(&sid).await?;
            tracing::info!(sub = %id, sid = %sid, by = %viewer.claims.sub, "session ended by an admin (console)");
            record_session_end(&state, &origin, &viewer, &sid).await;
            Ok(Redirect::to(&format!("/console/users/{id}")).into_response())
        }
        _ => Err(ApiError::NotFound.into()),
    }
}

fn client_form(viewer: &Viewer) -> Markup {
    html! {
        section aria-labelledby="create" {
            h2 id="create" { "Register a client" }
            form class="card" method="post" action="/console/clients" {
                (csrf(viewer))
                label for="client-id" { "Client id" }
                input id="client-id" name="client_id" type="text" required autocomplete="off";
                label for="scopes" { "Scopes (separated by spaces)" }
                input id="scopes" name="scopes" type="text" autocomplete="off";
                (password_field())
                button type="submit" { "Register and show the secret" }
            }
        }
    }
}

/// `GET /console/clients`.
pub(super) async fn clients(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Html<String>, Refusal> {
    let clients = state.store.list_clients().await?;
    let content = html! {
        div class="scroll" {
            table {
                thead { tr { th scope="col" { "Client id" } th scope="col" { "Scopes" } th scope="col" { "Registered" } } }
                tbody {
                    @for client in &clients {
                        tr {
                            td data-label="Client id" { a href=(format!("/console/clients/{}", client.client_id)) { code { (client.client_id) } } }
                            td data-label="Scopes" { (client.scopes.join(" ")) }
                            td data-label="Registered" { (when(client.created_at)) }
                        }
                    }
                }
            }
        }
        @if clients.is_empty() { p class="empty" { "No service client yet." } }
        (client_form(&viewer))
    };
    Ok(html("Service clients", &viewer, content))
}

/// `POST /console/clients`: registers a client after the password again
/// and shows its secret in this answer only (never stored, never shown
/// again; the answer is `no-store`).
pub(super) async fn create_client(
    State(state): State<AppState>,
    origin: Origin,
    Peer(peer): Peer,
    Extension(viewer): Extension<Viewer>,
    Extension(Posted(form)): Extension<Posted>,
) -> Result<Html<String>, Refusal> {
    reauthenticate(&state, &origin, peer, &viewer, &form).await?;
    let (record, secret) = register_client(
        &state,
        &origin,
        &viewer.claims,
        form.require("client_id")?,
        names(form.get("scopes")),
    )
    .await?;
    let secret = secret.expose_str().ok_or(ApiError::Internal)?;
    Ok(secret_page(
        &viewer,
        &record.client_id,
        secret,
        "is registered",
    ))
}

/// `GET /console/clients/{id}`: one client; rotate its secret (after the
/// password again) or delete it.
pub(super) async fn client(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    PathId(id): PathId,
) -> Result<Html<String>, Refusal> {
    let client = state
        .store
        .find_client(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let base = format!("/console/clients/{}", client.client_id);
    let content = html! {
        dl class="facts" {
            dt { "Client id" } dd { code { (client.client_id) } }
            dt { "Scopes" } dd { (client.scopes.join(" ")) }
            dt { "Registered" } dd { (when(client.created_at)) }
        }
        div class="actions" {
            form class="card" method="post" action=(format!("{base}/rotate")) {
                (csrf(&viewer))
                p { "A new secret replaces the old one, which stops working." }
                (password_field())
                button type="submit" { "Rotate the secret and show it" }
            }
            form class="card" method="post" action=(format!("{base}/delete")) {
                (csrf(&viewer))
                p { "Deleting the client revokes every token it holds." }
                button type="submit" class="danger" { "Delete the client" }
            }
        }
    };
    Ok(html(
        &format!("Client {}", client.client_id),
        &viewer,
        content,
    ))
}

/// The one answer that shows a client's secret.
fn secret_page(viewer: &Viewer, client_id: &str, secret: &str, what: &str) -> Html<String> {
    let content = html! {
        p role="status" { "The client " code { (client_id) } " " (what) "." }
        div class="secret card" {
            label for="secret" { "Its secret — shown this once; copy it now" }
            input id="secret" type="text" readonly value=(secret) class="mono";
        }
        p { a href="/console/clients" { "Back to the clients" } }
    };
    html("Client secret", viewer, content)
}

/// `POST /console/clients/{id}/rotate`, after the password again: the new
/// secret is in this answer only.
pub(super) async fn rotate_client_secret(
    State(state): State<AppState>,
    origin: Origin,
    Peer(peer): Peer,
    Extension(viewer): Extension<Viewer>,
    Extension(Posted(form)): Extension<Posted>,
    PathId(id): PathId,
) -> Result<Html<String>, Refusal> {
    reauthenticate(&state, &origin, peer, &viewer, &form).await?;
    let secret = rotate_client_secret_as(&state, &origin, &viewer.claims, &id).await?;
    let secret = secret.expose_str().ok_or(ApiError::Internal)?;
    Ok(secret_page(&viewer, &id, secret, "has a new secret"))
}

/// `POST /console/clients/{id}/delete`.
pub(super) async fn delete_client(
    State(state): State<AppState>,
    origin: Origin,
    Extension(viewer): Extension<Viewer>,
    Extension(_): Extension<Posted>,
    PathId(id): PathId,
) -> Result<Response, Refusal> {
    delete_client_as(&state, &origin, &viewer.claims, &id).await?;
    Ok(Redirect::to("/console/clients").into_response())
}

/// `GET /console/keys`: each key's status and age, and when a retired key
/// leaves the JWKS.
pub(super) async fn keys(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Html<String> {
    let now = state.now();
    let list = state.keys.list(now);
    let content = html! {
        div class="scroll" {
            table {
                thead { tr {
                    th scope="col" { "Key id" } th scope="col" { "Algorithm" } th scope="col" { "Status" }
                    th scope="col" { "Age" } th scope="col" { "Leaves the JWKS" }
                } }
                tbody {
                    @for key in &list.keys {
                        tr {
                            td { code { (key.kid) } }
                            td { (key.alg) }
                            td { span class=(format!("tag {}", key.status)) { (key.status) } }
                            td { (age(now.saturating_sub(key.created_at))) }
                            td { @match key.retire_at {
                                Some(at) => { (when(at)) " (in " (age(at.saturating_sub(now))) ")" }
                                None => { "—" }
                            } }
                        }
                    }
                }
            }
        }
        @if state.keys.is_stored() {
            section aria-labelledby="rotate" {
                h2 id="rotate" { "Rotate" }
                p { "The next key becomes active; the active one verifies until the overlap ends, then leaves the JWKS." }
                form class="card" method="post" action="/console/keys/rotate" {
                    (csrf(&viewer))
                    (password_field())
                    button type="submit" class="danger" { "Rotate the signing keys" }
                }
            }
        } @else {
            p { "HS256: the key is TOLLGATE_HMAC_SECRET; it is never rotated here." }
        }
    };
    html("Signing keys", &viewer, content)
}

/// `POST /console/keys/rotate`, after the password again.
pub(super) async fn rotate_keys(
    State(state): State<AppState>,
    origin: Origin,
    Peer(peer): Peer,
    Extension(viewer): Extension<Viewer>,
    Extension(Posted(form)): Extension<Posted>,
) -> Result<Response, Refusal> {
    reauthenticate(&state, &origin, peer, &viewer, &form).await?;
    rotate(&state, &origin, &viewer.claims).await?;
    Ok(Redirect::to("/console/keys").into_response())
}

/// Events shown on the revocation page.
const FEED_PAGE: u32 = 50;

/// `GET /console/revocations`: the latest events of the feed, newest first.
pub(super) async fn revocations(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Html<String>, Refusal> {
    let now = state.now();
    let last = state.store.last_cursor().await?;
    let mut events = state
        .store
        .revocations_after(last.saturating_sub(u64::from(FEED_PAGE)), FEED_PAGE, now)
        .await?;
    events.reverse();
    let content = html! {
        p { "The latest " (FEED_PAGE) " events of the revocation feed (those still in force), newest first. Services follow them live at /v1/revocations/stream." }
        div class="scroll" {
            table {
                thead { tr {
                    th scope="col" { "Cursor" } th scope="col" { "Kind" } th scope="col" { "Value" }
                    th scope="col" { "At" } th scope="col" { "In force until" }
                } }
                tbody {
                    @for event in &events {
                        tr {
                            td class="num" { (event.cursor) }
                            td { (format!("{:?}", event.kind).to_lowercase()) }
                            td { code { (event.value) } }
                            td { (when(event.at)) }
                            td { (when(event.expires_at)) }
                        }
                    }
                }
            }
        }
        @if events.is_empty() { p class="empty" { "No revocation in force." } }
    };
    Ok(html("Revocation feed", &viewer, content))
}

/// `GET /console/config`: the effective settings with their sources, as
/// `tollgate config check` shows them (secrets masked by the core's report).
pub(super) async fn configuration(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Html<String> {
    let content = html! {
        p { "Environment: " strong { (state.config.environment) } ". Values of secret settings are masked." }
        @match &state.options.settings {
            Some(rows) => {
                div class="scroll" {
                    table {
                        thead { tr { th scope="col" { "Setting" } th scope="col" { "Value" } th scope="col" { "Source" } } }
                        tbody {
                            @for row in rows.iter() {
                                tr {
                                    td { code { (row.name) } }
                                    td { @match &row.value { Some(v) => { code { (v) } } None => { span class="empty" { "unset" } } } }
                                    td { (row.source) }
                                }
                            }
                        }
                    }
                }
            }
            None => { p class="empty" { "This server was started from a library, without a settings report." } }
        }
    };
    html("Configuration", &viewer, content)
}

/// `GET /console/usage`: calls per plan, per tool and per day over every
/// user, the last 30 days, from the durable usage store.
pub(super) async fn usage(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Html<String>, Refusal> {
    let by_plan = usage_rows(&state, None, UsageGroup::Plan).await?;
    let by_tool = usage_rows(&state, None, UsageGroup::Tool).await?;
    let by_day = usage_rows(&state, None, UsageGroup::Day).await?;
    let content = html! {
        p { "Tool calls recorded by the services (POST /v1/usage/events), the last 30 days." }
        (chart::bars("Calls per plan", "calls", &by_plan))
        (chart::bars("Calls per tool", "calls", &by_tool))
        (chart::bars("Calls per day", "calls", &by_day))
    };
    Ok(html("Usage", &viewer, content))
}
