//! What the commands that act on the server's own store share: the
//! resolved configuration, the store it names, and a runtime to drive it.
//!
//! These commands (`user`, `client`, `keys`, `token mint`) talk to the
//! database directly, as the running server does, so they work whether or
//! not a server is up; the server picks their writes up (keys within a few
//! seconds, revocations within a second).

use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::runtime::Runtime;
use tollgate_core::config::{Component, Config};
use tollgate_core::keys::seal::MasterKey;
use tollgate_store::Store;

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
