//! [`ClientCache`]: service clients as client authentication reads them,
//! kept for a few seconds so that introspection and client-credentials
//! requests do not each wait on the store, and [`ClientCache::authenticate`],
//! the one check of a presented client secret.
//!
//! Unknown ids are kept too, as absent (issue 15, item 5): otherwise a known
//! id was answered from memory and an unknown one from the store every
//! time, and the difference in time said which ids exist. Both kinds share
//! one map of at most [`CAPACITY`] entries (past it the cache starts over,
//! so nobody can grow it, and a flood of unknown ids evicts known ones too),
//! each used for [`TTL`] seconds. A change made elsewhere (another instance,
//! the CLI) is seen within that time; a client created through this
//! instance's admin API is usable at once ([`ClientCache::forget`]). The
//! secret is digested and compared on every request, against the client's
//! digest or, for an unknown id, a dummy one: the same work either way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use tollgate_core::{UnixTime, opaque, secret};
use tollgate_store::{ClientRecord, Store, StoreError};

/// How long a client record, or the absence of one, is used before the
/// store is asked again (seconds).
pub(crate) const TTL: u64 = 5;
/// Most ids kept, known and unknown together; past it the cache starts over.
const CAPACITY: usize = 4096;
/// What an unknown id's secret is compared with: a digest no secret has
/// (not hex), as long as a real one.
const DUMMY_DIGEST: &str = "----------------------------------------------------------------";

/// A client as read at `read_at`, or `None` for an id the store did not know.
struct Entry {
    client: Option<ClientRecord>,
    read_at: UnixTime,
}

#[derive(Default)]
pub(crate) struct ClientCache {
    entries: RwLock<HashMap<String, Entry>>,
    /// Secrets checked so far (known and unknown ids alike).
    verifications: AtomicU64,
}

impl ClientCache {
    /// The client `client_id` when `secret` is its secret. The id's record
    /// (or its absence) comes from [`ClientCache::find`]; an id that cannot
    /// be a client id is not looked up. Every call digests and compares the
    /// secret once, whether the id exists or not.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        client_id: &str,
        presented: &[u8],
        now: UnixTime,
    ) -> Result<Option<ClientRecord>, StoreError> {
        let record = if crate::input::client_id(client_id).is_ok() {
            self.find(store, client_id, now).await?
        } else {
            None
        };
        let stored = record
            .as_ref()
            .map_or(DUMMY_DIGEST, |client| client.secret_digest.as_str());
        let digest = opaque::digest(presented);
        let matches = secret::ct_eq(digest.as_bytes(), stored.as_bytes());
        self.verifications.fetch_add(1, Ordering::Relaxed);
        Ok(record.filter(|_| matches))
    }

    /// The client `client_id`, from the cache when read (or found missing)
    /// less than [`TTL`] seconds ago, else from the store.
    pub async fn find(
        &self,
        store: &dyn Store,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<ClientRecord>, StoreError> {
        {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = entries.get(client_id)
                && now < entry.read_at.saturating_add(TTL)
                && now >= entry.read_at
            {
                return Ok(entry.client.clone());
            }
        }
        let found = store.find_client(client_id).await?;
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY && !entries.contains_key(client_id) {
            entries.clear();
        }
        entries.insert(
            client_id.to_owned(),
            Entry {
                client: found.clone(),
                read_at: now,
            },
        );
        Ok(found)
    }

    /// Drops what is kept about `client_id` (a client was just created
    /// with it here, so an "unknown" answered before must not stand).
    pub fn forget(&self, client_id: &str) {
        self.entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(client_id);
    }

    /// Secrets checked since start.
    #[cfg(test)]
    fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
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

    async fn store() -> (tempfile::TempDir, tollgate_store::SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let store = tollgate_store::SqliteStore::open(&url).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn known_and_unknown_clients_are_kept_for_the_ttl() {
        let (_dir, store) = store().await;
        let cache = ClientCache::default();
        assert!(cache.find(&store, "svc", 100).await.unwrap().is_none());
        store
            .create_client(client("svc", "introspect"))
            .await
            .unwrap();
        // Kept as missing for the TTL (issue 15, item 5)…
        assert!(
            cache
                .find(&store, "svc", 100 + TTL - 1)
                .await
                .unwrap()
                .is_none()
        );
        // …unless forgotten, as creating it through this instance does.
        cache.forget("svc");
        let found = cache.find(&store, "svc", 100).await.unwrap().unwrap();
        assert_eq!(found.scopes, ["introspect"]);

        // Read from the store again only once the TTL has passed (the
        // store is closed in between to prove it).
        assert!(cache.find(&store, "gone", 100).await.unwrap().is_none());
        store.close().await;
        let cached = cache.find(&store, "svc", 100 + TTL - 1).await.unwrap();
        assert_eq!(cached.unwrap().client_id, "svc");
        assert!(
            cache
                .find(&store, "gone", 100 + TTL - 1)
                .await
                .unwrap()
                .is_none()
        );
        assert!(cache.find(&store, "svc", 100 + TTL).await.is_err());
        assert!(cache.find(&store, "gone", 100 + TTL).await.is_err());
        // A clock going backwards does not keep an entry alive either.
        assert!(cache.find(&store, "svc", 99).await.is_err());
    }

    #[tokio::test]
    async fn the_cache_never_holds_more_than_its_capacity() {
        let (_dir, store) = store().await;
        let cache = ClientCache::default();
        for n in 0..CAPACITY + 10 {
            cache.find(&store, &format!("svc-{n}"), 100).await.unwrap();
        }
        let kept = cache.entries.read().unwrap().len();
        assert!((1..=CAPACITY).contains(&kept), "{kept}");
    }

    #[tokio::test]
    async fn every_attempt_checks_a_secret_whether_the_id_exists_or_not() {
        let (_dir, store) = store().await;
        let secret = b"cs_the-secret";
        let mut known = client("svc", "introspect");
        known.secret_digest = opaque::digest(secret);
        store.create_client(known).await.unwrap();
        let cache = ClientCache::default();

        let right = cache
            .authenticate(&store, "svc", secret, 100)
            .await
            .unwrap();
        assert_eq!(right.unwrap().client_id, "svc");
        assert_eq!(cache.verifications(), 1);
        let wrong = cache.authenticate(&store, "svc", b"cs_wrong", 100).await;
        assert!(wrong.unwrap().is_none());
        assert_eq!(cache.verifications(), 2);
        let unknown = cache.authenticate(&store, "nobody", secret, 100).await;
        assert!(unknown.unwrap().is_none());
        assert_eq!(cache.verifications(), 3);
        // An id that cannot exist is not looked up, and still checked.
        let malformed = cache.authenticate(&store, "no spaces", secret, 100).await;
        assert!(malformed.unwrap().is_none());
        assert_eq!(cache.verifications(), 4);
        // The dummy digest matches no secret: not even an empty one or the
        // dummy itself.
        for presented in [&b""[..], DUMMY_DIGEST.as_bytes()] {
            assert!(
                cache
                    .authenticate(&store, "nobody", presented, 100)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
    }
}
