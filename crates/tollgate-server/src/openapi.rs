//! The OpenAPI 3 document served at `/openapi.json`, generated from the
//! handlers' `#[utoipa::path]` annotations and the wire types' schemas.
//! Nothing is fetched or generated at build time beyond the derive.
//!
//! The answers that come from the shared extractors rather than from a
//! handler (a bad body, a missing token, a caller without the role) are
//! added here, once, to every operation that uses them: a route written
//! tomorrow documents them without anyone remembering to.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, auth, discovery, feed, oauth, ops, usage};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tollgate token service", description = "CONTRACT §4: OAuth endpoints, the user API, the admin API and the revocation feed."),
    paths(
        discovery::metadata, discovery::jwks, discovery::fingerprint,
        oauth::token, oauth::introspect, oauth::revoke,
        auth::register, auth::login, auth::refresh, auth::logout, auth::me,
        auth::sessions, auth::end_session,
        admin::create_user, admin::get_user, admin::list_users, admin::update_user,
        admin::revoke_user, admin::create_client, admin::list_clients, admin::get_client,
        admin::list_keys, admin::rotate_keys, admin::audit,
        feed::page, feed::stream,
        usage::record, usage::report, usage::own,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
    ),
    modifiers(&Security, &SharedAnswers),
)]
pub(crate) struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "client",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// The answers of the extractors every route shares (`crate::extract`,
/// `crate::input`), added to each operation that uses them.
struct SharedAnswers;

/// `(status, description)` of the answers a JSON or form body can get before
/// the handler runs.
const BODY_ANSWERS: &[(&str, &str)] = &[
    (
        "400",
        "invalid_request: the body is malformed, misses a member or has an unknown one",
    ),
    ("408", "request_timeout: the body did not arrive in time"),
    ("413", "payload_too_large: the body is over the limit"),
    (
        "415",
        "unsupported_media_type: the body is not of the documented content type",
    ),
];

/// The answers of a route behind a bearer token.
const BEARER_ANSWERS: &[(&str, &str)] = &[
    (
        "401",
        "missing_token or invalid_token, with `WWW-Authenticate: Bearer`",
    ),
    (
        "503",
        "the revocation view is stale: the token cannot be confirmed",
    ),
];

/// The answer of a route that needs a role or scope the token may lack.
const ROLE_ANSWER: (&str, &str) = (
    "403",
    "insufficient_scope: the token lacks the role or scope",
);

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                add_shared_answers(path, operation);
            }
        }
    }
}

fn add_shared_answers(path: &str, operation: &mut Operation) {
    let mut answers: Vec<(&str, &str)> = Vec::new();
    if operation.request_body.is_some() {
        answers.extend_from_slice(BODY_ANSWERS);
    }
    if uses_bearer(operation) {
        answers.extend_from_slice(BEARER_ANSWERS);
        if path.starts_with("/v1/admin/")
            || path.starts_with("/v1/revocations")
            || path.starts_with("/v1/usage")
        {
            answers.push(ROLE_ANSWER);
        }
    }
    let responses = &mut operation.responses.responses;
    for (status, description) in answers {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| error_answer(description));
    }
}

fn uses_bearer(operation: &Operation) -> bool {
    operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement)
            .ok()
            .and_then(|value| value.get("bearer").map(|_| ()))
            .is_some()
    })
}

fn error_answer(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> serde_json::Value {
        serde_json::to_value(ApiDoc::openapi()).expect("the document serializes")
    }

    #[test]
    fn every_bearer_route_documents_401_and_every_admin_route_403() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let mut checked = 0;
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("path item") {
                let secured = operation["security"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|r| r.get("bearer").is_some()));
                let responses = &operation["responses"];
                if secured {
                    checked += 1;
                    assert!(responses.get("401").is_some(), "{method} {path} lacks 401");
                    if path.starts_with("/v1/admin/") {
                        assert!(responses.get("403").is_some(), "{method} {path} lacks 403");
                    }
                }
                if operation.get("requestBody").is_some() {
                    for status in ["400", "413", "415"] {
                        assert!(
                            responses.get(status).is_some(),
                            "{method} {path} lacks {status}"
                        );
                    }
                }
            }
        }
        assert!(checked >= 15, "only {checked} secured operations seen");
    }

    #[test]
    fn a_handlers_own_description_is_kept() {
        let doc = document();
        let login_401 = &doc["paths"]["/v1/auth/login"]["post"]["responses"]["401"]["description"];
        assert!(
            login_401
                .as_str()
                .is_some_and(|d| d.contains("invalid_credentials")),
            "{login_401}"
        );
    }
}
