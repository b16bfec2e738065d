//! The OpenAPI 3 document served at `/openapi.json`, generated from the
//! handlers' `#[utoipa::path]` annotations and the wire types' schemas.
//! Nothing is fetched or generated at build time beyond the derive.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, auth, discovery, feed, oauth, ops};

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
        admin::list_keys, admin::rotate_keys,
        feed::page, feed::stream,
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
    ),
    modifiers(&Security),
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
