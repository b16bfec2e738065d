//! Usage (issue 12, CONTRACT §5): services report admitted tool calls
//! (`POST /v1/usage/events`, a service token with scope `usage`), and
//! reports count them per user, tool, plan and hour (`GET /v1/usage` for
//! admins or a user's own, `GET /v1/auth/usage` for the caller's own).
//!
//! A batch is checked whole by [`tollgate_core::usage::check_batch`] (the
//! SDK runs the same check before sending) and stored in one transaction
//! ([`tollgate_store::Store::record_usage`]): a batch that breaks a rule,
//! or names a user that does not exist, stores nothing; a duplicate key
//! counts once, so a service may deliver a batch again whenever it does not
//! know whether the first delivery arrived.

use axum::extract::{FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use tollgate_core::usage::{self, DAY, Period, UsageGroup};
use tollgate_core::wire::{ErrorBody, UsageAccepted, UsageBatch, UsageReport};
use tollgate_core::{Claims, Expect, UnixTime, form};
use tollgate_store::{UsageQuery, UsageRecorded};

use crate::extract::{Json, RawQuery, UserAuth, bearer, service_bearer};
use crate::state::AppState;
use crate::{ApiError, input};

/// The scope a service needs to report usage.
pub(crate) const SCOPE: &str = "usage";

/// The period a report covers when `from` is not given: the 30 days
/// before `to`.
const DEFAULT_SPAN: u64 = 30 * DAY;

/// A service token with scope `usage`, checked before the body is read.
pub(crate) struct UsageService(Claims);

impl FromRequestParts<AppState> for UsageService {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        service_bearer(state, &parts.headers, SCOPE)?
            .map(UsageService)
            .ok_or(ApiError::MissingToken)
    }
}

/// `POST /v1/usage/events`: a batch of usage events.
#[utoipa::path(post, path = "/v1/usage/events", tag = "usage", security(("bearer" = [])), request_body = UsageBatch,
    responses((status = 200, description = "Stored: `accepted` events now, `duplicates` delivered before (counted once)", body = UsageAccepted),
              (status = 400, description = "invalid_usage (an empty batch, a bad name, `service` not the caller's client id, `at` more than 5 minutes ahead or 7 days behind, an unknown tool or plan), unknown_user, invalid_request (malformed JSON, an unknown member); nothing is stored", body = ErrorBody),
              (status = 401, description = "missing_token, or invalid_token (a user token is not a service token)", body = ErrorBody),
              (status = 403, description = "insufficient_scope: the service token lacks scope `usage`", body = ErrorBody),
              (status = 413, description = "payload_too_large (over 1 MiB) or invalid_usage (over 1000 events)", body = ErrorBody),
              (status = 503, description = "the store is down or the token cannot be confirmed: nothing stored, deliver again", body = ErrorBody)))]
pub(crate) async fn record(
    State(state): State<AppState>,
    UsageService(service): UsageService,
    Json(batch): Json<UsageBatch>,
) -> Result<axum::Json<UsageAccepted>, ApiError> {
    let now = state.now();
    usage::check_batch(&batch.events, now, &state.plans, Some(&service.sub)).map_err(|error| {
        match error {
            tollgate_core::Error::InvalidUsage(problem) => ApiError::InvalidUsage(problem),
            other => ApiError::from(other),
        }
    })?;
    match state.store.record_usage(&batch.events, now).await? {
        UsageRecorded::Stored {
            accepted,
            duplicates,
        } => {
            tracing::debug!(service = %service.sub, accepted, duplicates, "usage recorded");
            ::metrics::counter!(crate::metrics::USAGE_EVENTS, "outcome" => "accepted")
                .increment(accepted);
            ::metrics::counter!(crate::metrics::USAGE_EVENTS, "outcome" => "duplicate")
                .increment(duplicates);
            Ok(axum::Json(UsageAccepted {
                accepted,
                duplicates,
            }))
        }
        UsageRecorded::UnknownUser { index } => Err(ApiError::UnknownUser { index }),
    }
}

/// `GET /v1/usage?user=ID&from=T&to=T&group_by=tool|day|plan`.
#[utoipa::path(get, path = "/v1/usage", tag = "usage", security(("bearer" = [])),
    params(("user" = Option<String>, Query, description = "The user reported on; without it (admins only) every user, one row per user and group"),
           ("from" = Option<String>, Query, description = "Start (inclusive, rounded down to the hour): Unix seconds, `YYYY-MM-DD` (UTC) or RFC 3339; default 30 days before `to`"),
           ("to" = Option<String>, Query, description = "End (exclusive, rounded up to the hour), same forms; default now"),
           ("group_by" = Option<String>, Query, description = "`tool` (default), `day` (UTC) or `plan`")),
    responses((status = 200, body = UsageReport),
              (status = 400, description = "invalid_request: an unknown, repeated or malformed parameter, `from` not before `to`", body = ErrorBody),
              (status = 401, body = ErrorBody),
              (status = 403, description = "insufficient_scope: another user's usage (or every user's) without role `admin` or scope `admin`", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<axum::Json<UsageReport>, ApiError> {
    let token = bearer(&headers)?.ok_or(ApiError::MissingToken)?;
    let claims = state.authenticate(token, Expect::Any)?;
    let admin = if claims.is_user() {
        claims.has_role("admin")
    } else {
        claims.has_scope("admin")
    };
    let params = ReportParams::parse(&query, &["user", "from", "to", "group_by"], state.now())?;
    let user = match params.user {
        Some(user) if admin || (claims.is_user() && user == claims.sub) => Some(user),
        None if admin => None,
        // A user's own usage, when the user does not name themselves.
        None if claims.is_user() => Some(claims.sub.clone()),
        _ => return Err(ApiError::InsufficientScope),
    };
    answer(&state, user, params.period, params.group_by).await
}

/// `GET /v1/auth/usage?from=T&to=T&group_by=tool|day|plan`: the caller's own.
#[utoipa::path(get, path = "/v1/auth/usage", tag = "auth", security(("bearer" = [])),
    params(("from" = Option<String>, Query, description = "Start (inclusive, rounded down to the hour): Unix seconds, `YYYY-MM-DD` (UTC) or RFC 3339; default 30 days before `to`"),
           ("to" = Option<String>, Query, description = "End (exclusive, rounded up to the hour), same forms; default now"),
           ("group_by" = Option<String>, Query, description = "`tool` (default), `day` (UTC) or `plan`")),
    responses((status = 200, body = UsageReport),
              (status = 400, description = "invalid_request: an unknown, repeated or malformed parameter, `from` not before `to`", body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn own(
    State(state): State<AppState>,
    UserAuth(claims): UserAuth,
    query: RawQuery,
) -> Result<axum::Json<UsageReport>, ApiError> {
    let params = ReportParams::parse(&query, &["from", "to", "group_by"], state.now())?;
    answer(&state, Some(claims.sub), params.period, params.group_by).await
}

/// A report's query, read once the caller is authenticated.
struct ReportParams {
    user: Option<String>,
    period: Period,
    group_by: UsageGroup,
}

impl ReportParams {
    fn parse(query: &RawQuery, known: &[&str], now: UnixTime) -> Result<ReportParams, ApiError> {
        let raw = query.raw().unwrap_or("");
        let pairs = form::parse_known(raw.as_bytes(), known).map_err(|error| match error {
            tollgate_core::Error::UnknownParameter { at } => {
                let name = form::name_at(raw.as_bytes(), at).unwrap_or_default();
                ApiError::InvalidRequest(
                    format!(
                        "the `{}` parameter is not known here",
                        form::printable(&name)
                    )
                    .into(),
                )
            }
            _ => ApiError::bad_request("the query string is malformed or names a parameter twice"),
        })?;
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(key, value)| key == name && !value.is_empty())
                .map(|(_, value)| value.as_str())
        };
        let moment = |name: &'static str| {
            get(name)
                .map(|text| {
                    usage::parse_moment(text).ok_or_else(|| {
                        ApiError::InvalidRequest(
                            format!(
                                "`{name}` is not Unix seconds, a date (YYYY-MM-DD) or an RFC 3339 time"
                            )
                            .into(),
                        )
                    })
                })
                .transpose()
        };
        let to = moment("to")?.unwrap_or(now);
        let from = moment("from")?.unwrap_or(to.saturating_sub(DEFAULT_SPAN));
        let period = Period::covering(from, to)
            .ok_or_else(|| ApiError::bad_request("`from` must be before `to`"))?;
        let group_by = match get("group_by") {
            None => UsageGroup::Tool,
            Some(text) => UsageGroup::parse(text)
                .ok_or_else(|| ApiError::bad_request("`group_by` is `tool`, `day` or `plan`"))?,
        };
        let user = match get("user") {
            Some(user) if !input::is_identifier(user) => {
                return Err(ApiError::bad_request(
                    "`user` is a user id (1 to 128 visible ASCII characters)",
                ));
            }
            user => user.map(str::to_owned),
        };
        Ok(ReportParams {
            user,
            period,
            group_by,
        })
    }
}

async fn answer(
    state: &AppState,
    user: Option<String>,
    period: Period,
    group_by: UsageGroup,
) -> Result<axum::Json<UsageReport>, ApiError> {
    let rows = state
        .store
        .usage_report(UsageQuery {
            user: user.as_deref(),
            period,
            group_by,
        })
        .await?;
    let total = rows.iter().map(|row| row.calls).sum();
    Ok(axum::Json(UsageReport {
        user,
        from: period.from,
        to: period.to,
        group_by: group_by.as_str().to_owned(),
        rows,
        total,
    }))
}
