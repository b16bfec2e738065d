//! What the commands that act on the server's own store share: the
//! resolved configuration, the store it names, and a runtime to drive it.
//!
//! These commands (`user`, `client`, `keys`, `token mint`) talk to the
//! database directly, as the running server does, so they work whether or
//! not a server is up; the server picks their writes up (keys within a few
//! seconds, revocations within a second). Those that change state record
//! it in the audit trail through [`Local::audit`] (chain and actor `cli`).

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::runtime::Runtime;
use tollgate_core::audit::AuditEvent;
use tollgate_core::config::{Component, Config};
use tollgate_core::keys::seal::MasterKey;
use tollgate_store::{NewAuditEvent, Store};

/// The audit chain the CLI appends to, and its actor.
pub const AUDIT_CHAIN: &str = "cli";

use super::settings::ConfigArgs;

/// The configuration, the store and a runtime.
pub struct Local {
    pub config: Config,
    pub store: Arc<dyn Store>,
    runtime: Runtime,
}

impl Local {
    /// Resolves the configuration and opens its store (creating a SQLite
    /// file and running migrations when needed).
    pub fn open(settings: &ConfigArgs) -> anyhow::Result<Local> {
        let config = settings.resolve(Component::Server)?;
        let runtime = runtime()?;
        let store = runtime.block_on(open_store(&config))?;
        Ok(Local {
            config,
            store,
            runtime,
        })
    }

    /// Runs a future to completion.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The master key, when one is configured.
    pub fn master_key(&self) -> anyhow::Result<Option<MasterKey>> {
        tollgate_server::keystore::master_key(self.config.master_key.as_ref())
            .context("TOLLGATE_MASTER_KEY is not usable")
    }

    /// Now, in seconds since the epoch.
    pub fn now(&self) -> u64 {
        tollgate_server::Clock::system_now()
    }

    /// Appends `events` (in order, one transaction) to the audit trail's
    /// `cli` chain with actor `cli`, now; each event's details also name the
    /// OS user (`os_user`, from `$USER` or `$LOGNAME`) when there is one.
    /// The events hold what the HTTP admin routes record for the same
    /// change, never a secret. An error means the change was made but not
    /// recorded.
    pub fn audit(&self, events: Vec<AuditEvent>) -> anyhow::Result<()> {
        let at = self.now();
        let os_user = os_user();
        let mut rows = Vec::with_capacity(events.len());
        for event in events {
            let kind = event.kind().to_owned();
            let (subject, details) = event.into_parts();
            let details = match &os_user {
                None => details,
                Some(name) => {
                    let mut value: serde_json::Value = serde_json::from_str(&details)
                        .context("an audit event's details are not JSON")?;
                    if let Some(object) = value.as_object_mut() {
                        object.insert("os_user".to_owned(), name.clone().into());
                    }
                    value.to_string()
                }
            };
            rows.push(NewAuditEvent {
                at,
                kind,
                actor: AUDIT_CHAIN.to_owned(),
                subject,
                address: None,
                request_id: None,
                details,
            });
        }
        self.block_on(self.store.append_audit(AUDIT_CHAIN, &rows))
            .context("the change is made, but recording it in the audit trail failed")?;
        Ok(())
    }

    /// Refuses commands that manage stored keys when keys are the HS256
    /// shared secret.
    pub fn require_stored_keys(&self) -> anyhow::Result<()> {
        if self.config.signing_alg.is_symmetric() {
            bail!(
                "the signing algorithm is HS256: the key is TOLLGATE_HMAC_SECRET, which is never stored or rotated"
            );
        }
        Ok(())
    }
}

/// Who runs the command, by the environment (`$USER`, else `$LOGNAME`): at
/// most 64 characters, none a control character; `None` when unset or not
/// such a name.
fn os_user() -> Option<String> {
    ["USER", "LOGNAME"].iter().find_map(|key| {
        let name = std::env::var(key).ok()?;
        let fits =
            !name.is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control);
        fits.then_some(name)
    })
}

/// A small multi-threaded runtime for one command.
pub fn runtime() -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Opens the store the configuration names.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    open_store_with(config, &tollgate_store::StoreOptions::default()).await
}

/// Opens the store the configuration names for `tollgate serve`: pooled
/// connections bounded by `TOLLGATE_STORE_TIMEOUT`.
pub async fn open_server_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let options = tollgate_store::StoreOptions {
        call_timeout: Some(std::time::Duration::from_secs(config.store_timeout)),
    };
    open_store_with(config, &options).await
}

async fn open_store_with(
    config: &Config,
    options: &tollgate_store::StoreOptions,
) -> anyhow::Result<Arc<dyn Store>> {
    let url = config
        .database_url
        .expose_str()
        .context("TOLLGATE_DATABASE_URL is not UTF-8")?;
    tollgate_store::open_store_with(url, options)
        .await
        .context("cannot open the database (TOLLGATE_DATABASE_URL)")
}
