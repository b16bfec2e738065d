//! [`ClientCache`]: service clients as client authentication reads them,
//! kept for a few seconds so that introspection and client-credentials
//! requests do not each wait on the store.
//!
//! Only clients that exist are kept (unknown ids always ask the store, so
//! nobody can fill the cache), at most [`CAPACITY`] of them, each for
//! [`TTL`] seconds: a change to a client made elsewhere (another instance,
//! the CLI) is seen within that time. The secret is still compared on every
//! request, against the cached digest.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use tollgate_core::UnixTime;
use tollgate_store::{ClientRecord, Store, StoreError};

/// How long a client record is used before it is read again (seconds).
pub(crate) const TTL: u64 = 5;
/// Most clients kept; past it the cache starts over.
const CAPACITY: usize = 4096;

#[derive(Default)]
pub(crate) struct ClientCache {
    entries: RwLock<HashMap<String, (ClientRecord, UnixTime)>>,
}

impl ClientCache {
    /// The client `client_id`, from the cache when read less than [`TTL`]
    /// seconds ago, else from the store.
    pub async fn find(
        &self,
        store: &dyn Store,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<ClientRecord>, StoreError> {
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((client, read_at)) = entries.get(client_id)
                && now < read_at.saturating_add(TTL)
                && now >= *read_at
            {
                return Ok(Some(client.clone()));
            }
        }
        let found = store.find_client(client_id).await?;
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        match &found {
            Some(client) => {
                if entries.len() >= CAPACITY {
                    entries.clear();
                }
                entries.insert(client_id.to_owned(), (client.clone(), now));
            }
            None => {
                entries.remove(client_id);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str, scope: &str) -> ClientRecord {
        ClientRecord {
            client_id: id.into(),
            secret_digest: "0".repeat(64),
            scopes: vec![scope.into()],
            created_at: 1,
        }
    }

    #[tokio::test]
    async fn known_clients_are_kept_for_the_ttl_and_unknown_ones_never() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = tollgate_store::SqliteStore::open(&url).await.unwrap();
        let cache = ClientCache::default();
        assert!(cache.find(&store, "svc", 100).await.unwrap().is_none());
        store
            .create_client(client("svc", "introspect"))
            .await
            .unwrap();
        // Not cached as missing: found at once.
        let found = cache.find(&store, "svc", 100).await.unwrap().unwrap();
        assert_eq!(found.scopes, ["introspect"]);

        // Read from the store again only once the TTL has passed (the
        // store is closed in between to prove it).
        store.close().await;
        let cached = cache.find(&store, "svc", 100 + TTL - 1).await.unwrap();
        assert_eq!(cached.unwrap().client_id, "svc");
        assert!(cache.find(&store, "svc", 100 + TTL).await.is_err());
        // A clock going backwards does not keep an entry alive either.
        assert!(cache.find(&store, "svc", 99).await.is_err());
    }
}
