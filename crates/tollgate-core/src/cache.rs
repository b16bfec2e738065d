//! [`TokenCache`]: what a validator learned about a token, keyed by the
//! full token, so the next sight of it skips the signature check.
//!
//! A hit skips the signature check, never the rest: the caller runs
//! [`Validator::recheck`](crate::Validator::recheck) (time, token type,
//! revocation) on the cached claims, so a cached token dies the moment it
//! expires or its revocation arrives. The token service and the SDK use this
//! same cache in front of the same validator.
//!
//! Keys are hashed with foldhash seeded at random per process (no hash
//! flooding), compared in full (a hash collision never returns someone
//! else's claims), and spread over shards so readers on different tokens
//! rarely share a lock. The size is bounded: a full shard first drops
//! expired entries, then an arbitrary one. Callers insert only tokens that
//! validated, so an attacker cannot fill the cache with garbage.

use std::hash::BuildHasher;
use std::ops::Deref;
use std::sync::{Arc, PoisonError, RwLock};

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use crate::UnixTime;

const SHARDS: usize = 16;

/// A cached value: it is useless after its token's expiry.
pub trait Expiring {
    /// The token's `exp` (Unix seconds).
    fn expires(&self) -> UnixTime;
}

impl Expiring for crate::Claims {
    fn expires(&self) -> UnixTime {
        self.exp
    }
}

/// One cached token and its value (which the entry derefs to).
#[derive(Debug)]
pub struct Entry<V> {
    token: Box<str>,
    hash: u64,
    value: V,
}

impl<V> Deref for Entry<V> {
    type Target = V;

    fn deref(&self) -> &V {
        &self.value
    }
}

/// A bounded, sharded map from token to `V`.
#[derive(Debug)]
pub struct TokenCache<V> {
    hasher: RandomState,
    shards: Vec<RwLock<Shard<V>>>,
    per_shard: usize,
}

#[derive(Debug)]
struct Shard<V> {
    table: HashTable<Arc<Entry<V>>>,
    /// No entry expires before this moment (Unix seconds, leeway included):
    /// until then a full shard evicts without scanning for expired ones.
    sweep_at: UnixTime,
}

impl<V: Expiring> TokenCache<V> {
    /// A cache holding at most about `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> TokenCache<V> {
        let per_shard = capacity.div_ceil(SHARDS);
        TokenCache {
            hasher: RandomState::default(),
            shards: (0..SHARDS)
                .map(|_| {
                    RwLock::new(Shard {
                        table: HashTable::new(),
                        sweep_at: 0,
                    })
                })
                .collect(),
            per_shard,
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard<V>> {
        // The table uses the low bits for buckets and the top seven for
        // control bytes; pick the shard from bits in between.
        &self.shards[((hash >> 32) as usize) % SHARDS]
    }

    /// The entry for exactly `token`, if cached.
    pub fn get(&self, token: &str) -> Option<Arc<Entry<V>>> {
        if self.per_shard == 0 {
            return None;
        }
        let hash = self.hasher.hash_one(token);
        let shard = self
            .shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard
            .table
            .find(hash, |e| e.hash == hash && &*e.token == token)
            .cloned()
    }

    /// Caches `value` for `token` (replacing what was there). `now` and
    /// `leeway` decide which entries are expired when room is needed.
    pub fn insert(&self, token: &str, value: V, now: UnixTime, leeway: u64) {
        if self.per_shard == 0 {
            return;
        }
        let hash = self.hasher.hash_one(token);
        let expires = value.expires().saturating_add(leeway);
        let entry = Arc::new(Entry {
            token: token.into(),
            hash,
            value,
        });
        // Every write leaves the table consistent.
        let mut shard = self
            .shard(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let shard = &mut *shard;
        if let Ok(existing) = shard.table.find_entry(hash, |e| &*e.token == token) {
            existing.remove();
        }
        if shard.table.len() >= self.per_shard && now >= shard.sweep_at {
            let expiry = |e: &Entry<V>| e.value.expires().saturating_add(leeway);
            shard.table.retain(|e| expiry(e) >= now);
            shard.sweep_at = shard.table.iter().map(|e| expiry(e)).min().unwrap_or(0);
        }
        if shard.table.len() >= self.per_shard {
            let victim = shard.table.iter().next().map(|e| (e.hash, e.token.clone()));
            if let Some((victim_hash, victim_token)) = victim
                && let Ok(found) = shard
                    .table
                    .find_entry(victim_hash, |e| e.token == victim_token)
            {
                found.remove();
            }
        }
        if shard.table.is_empty() || expires < shard.sweep_at {
            shard.sweep_at = expires;
        }
        shard.table.insert_unique(hash, entry, |e| e.hash);
    }

    /// Forgets `token`.
    pub fn remove(&self, token: &str) {
        if self.per_shard == 0 {
            return;
        }
        let hash = self.hasher.hash_one(token);
        let mut shard = self
            .shard(hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Ok(found) = shard.table.find_entry(hash, |e| &*e.token == token) {
            found.remove();
        }
    }

    /// Tokens cached now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).table.len())
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Exp(&'static str, UnixTime);

    impl Expiring for Exp {
        fn expires(&self) -> UnixTime {
            self.1
        }
    }

    #[test]
    fn hits_need_the_full_token_and_size_is_bounded() {
        let cache = TokenCache::new(32);
        cache.insert("a.b.c", Exp("u1", 100), 10, 0);
        assert_eq!(cache.get("a.b.c").unwrap().0, "u1");
        assert!(cache.get("a.b.").is_none());
        assert!(cache.get("a.b.cd").is_none());
        for i in 0..1000 {
            cache.insert(&format!("t{i}"), Exp("x", 100), 10, 0);
        }
        assert!(cache.len() <= 32, "{}", cache.len());
        cache.insert("t999", Exp("y", 100), 10, 0);
        assert_eq!(cache.get("t999").unwrap().0, "y");
        cache.remove("t999");
        assert!(cache.get("t999").is_none());
    }

    #[test]
    fn a_full_shard_drops_expired_entries_first() {
        let cache = TokenCache::new(SHARDS);
        for i in 0..200 {
            cache.insert(&format!("old{i}"), Exp("old", 5), 1, 0);
        }
        cache.insert("fresh", Exp("new", 100), 50, 0);
        assert!(cache.get("fresh").is_some());
    }

    #[test]
    fn capacity_zero_disables_the_cache() {
        let cache = TokenCache::new(0);
        cache.insert("t", Exp("u", 100), 1, 0);
        assert!(cache.get("t").is_none());
        assert!(cache.is_empty());
    }
}
