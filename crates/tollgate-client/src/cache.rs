//! The cache of validated claims, keyed by the full token.
//!
//! A hit skips the signature check, never the rest: the caller still runs
//! `Validator::recheck` (time, token type, revocation) on the cached claims,
//! so a cached token dies the moment it expires or its revocation arrives.
//!
//! Keys are hashed with foldhash seeded at random per process (no hash
//! flooding), compared in full (a hash collision never returns someone
//! else's claims), and spread over shards so readers on different tokens
//! rarely share a lock. The size is bounded: a full shard first drops
//! expired entries, then an arbitrary one. Only tokens that validated are
//! ever inserted, so an attacker cannot fill the cache with garbage.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use tollgate_core::UnixTime;

use crate::Principal;

const SHARDS: usize = 16;

/// One cached token.
#[derive(Debug)]
pub(crate) struct Entry {
    token: Box<str>,
    hash: u64,
    /// Who the token stands for.
    pub principal: Principal,
    /// Unix milliseconds of the last time the token service confirmed the
    /// token (introspection), or 0. Used while the feed is down.
    pub confirmed_ms: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct ClaimsCache {
    hasher: RandomState,
    shards: Vec<RwLock<Shard>>,
    per_shard: usize,
}

#[derive(Debug, Default)]
struct Shard {
    table: HashTable<Arc<Entry>>,
    /// No entry expires before this moment (Unix seconds, leeway included):
    /// until then a full shard evicts without scanning for expired ones.
    sweep_at: UnixTime,
}

impl ClaimsCache {
    /// A cache holding at most about `capacity` tokens (0 disables it).
    pub(crate) fn new(capacity: usize) -> ClaimsCache {
        let per_shard = capacity.div_ceil(SHARDS);
        ClaimsCache {
            hasher: RandomState::default(),
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            per_shard,
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        // The table uses the low bits for buckets and the top seven for
        // control bytes; pick the shard from bits in between.
        &self.shards[((hash >> 32) as usize) % SHARDS]
    }

    pub(crate) fn get(&self, token: &str) -> Option<Arc<Entry>> {
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

    /// Caches `principal` for `token`. `now` and `leeway` decide which
    /// entries are expired when room is needed.
    pub(crate) fn insert(
        &self,
        token: &str,
        principal: Principal,
        confirmed_ms: u64,
        now: UnixTime,
        leeway: u64,
    ) {
        if self.per_shard == 0 {
            return;
        }
        let hash = self.hasher.hash_one(token);
        let entry = Arc::new(Entry {
            token: token.into(),
            hash,
            principal,
            confirmed_ms: AtomicU64::new(confirmed_ms),
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
            let expiry = |e: &Entry| e.principal.claims().exp.saturating_add(leeway);
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
        let expires = entry.principal.claims().exp.saturating_add(leeway);
        if shard.table.is_empty() || expires < shard.sweep_at {
            shard.sweep_at = expires;
        }
        shard.table.insert_unique(hash, entry, |e| e.hash);
    }

    pub(crate) fn remove(&self, token: &str) {
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

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).table.len())
            .sum()
    }
}

impl Entry {
    pub(crate) fn confirmed_ms(&self) -> u64 {
        self.confirmed_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn confirm(&self, at_ms: u64) {
        self.confirmed_ms.store(at_ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::{Claims, TokenType};

    fn principal(sub: &str, exp: u64) -> Principal {
        Principal::new(Claims {
            iss: "i".into(),
            sub: sub.into(),
            aud: vec!["api".into()],
            exp,
            iat: 1,
            nbf: None,
            jti: sub.into(),
            client_id: "c".into(),
            scope: String::new(),
            token_type: TokenType::Service,
            sid: None,
            email: None,
            roles: vec![],
            plan: None,
            permissions: vec![],
        })
    }

    #[test]
    fn hits_need_the_full_token_and_size_is_bounded() {
        let cache = ClaimsCache::new(32);
        cache.insert("a.b.c", principal("u1", 100), 0, 10, 0);
        assert_eq!(cache.get("a.b.c").unwrap().principal.subject(), "u1");
        assert!(cache.get("a.b.").is_none());
        for i in 0..1000 {
            cache.insert(&format!("t{i}"), principal("x", 100), 0, 10, 0);
        }
        assert!(cache.len() <= 32, "{}", cache.len());
        cache.remove("t999");
        assert!(cache.get("t999").is_none());
    }

    #[test]
    fn a_full_shard_drops_expired_entries_first() {
        let cache = ClaimsCache::new(SHARDS);
        for i in 0..200 {
            cache.insert(&format!("old{i}"), principal("old", 5), 0, 1, 0);
        }
        cache.insert("fresh", principal("new", 100), 0, 50, 0);
        assert!(cache.get("fresh").is_some());
    }

    #[test]
    fn capacity_zero_disables_the_cache() {
        let cache = ClaimsCache::new(0);
        cache.insert("t", principal("u", 100), 0, 1, 0);
        assert!(cache.get("t").is_none());
    }
}
