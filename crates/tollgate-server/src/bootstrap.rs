//! The bootstrap admin: when `TOLLGATE_BOOTSTRAP_ADMIN_EMAIL` and
//! `TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD` are both set and no user has that
//! e-mail, one is created with role `admin` and plan `enterprise`. Nothing
//! else ever creates an account on its own: a fresh install without these
//! settings has no users.

use tollgate_core::config::Config;
use tollgate_core::plans::Plans;
use tollgate_core::{Secret, UnixTime};
use tollgate_store::Store;

use crate::{ApiError, ServerError, accounts};

pub(crate) async fn admin(
    config: &Config,
    store: &dyn Store,
    plans: &Plans,
    now: UnixTime,
) -> Result<(), ServerError> {
    let (email, password) = match (
        &config.bootstrap_admin_email,
        &config.bootstrap_admin_password,
    ) {
        (Some(email), Some(password)) => (email, password),
        (None, None) => return Ok(()),
        _ => {
            tracing::warn!(
                "only one of TOLLGATE_BOOTSTRAP_ADMIN_EMAIL and TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD is set; no admin is created"
            );
            return Ok(());
        }
    };
    let password = password.expose_str().ok_or_else(|| {
        ServerError::Bootstrap("TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD is not UTF-8".to_owned())
    })?;
    let plan = plans
        .contains("enterprise")
        .then(|| "enterprise".to_owned());
    let user =
        accounts::check_new_user(plans, email, password, plan, Some(vec!["admin".to_owned()]))
            .map_err(|error| ServerError::Bootstrap(error.to_string()))?;
    if store.find_user_by_email(&user.email).await?.is_some() {
        return Ok(());
    }
    let hash = accounts::hash_password(Secret::from(password))
        .await
        .map_err(|error| ServerError::Bootstrap(error.to_string()))?;
    match accounts::insert_user(store, user, hash, now).await {
        Ok(user) => {
            tracing::info!(sub = %user.id, email = %user.email, "created the bootstrap admin");
            Ok(())
        }
        // Another instance created it at the same moment.
        Err(ApiError::EmailTaken) => Ok(()),
        Err(ApiError::Unavailable) => Err(ServerError::Store(
            tollgate_store::StoreError::Unavailable("creating the bootstrap admin".to_owned()),
        )),
        Err(error) => Err(ServerError::Bootstrap(error.to_string())),
    }
}
