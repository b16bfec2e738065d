//! The live key state: which key signs, which verify, what the JWKS says.
//!
//! A [`KeySet`] is built from a [`KeyRing`] in one go (minter, validator,
//! JWKS bytes, fingerprint keys) and swapped atomically, so a request sees
//! either the old set or the new one, never a mix. [`KeyManager`] owns the
//! swap: rotation through the API, the periodic reload that picks up a
//! `tollgate keys rotate` run against the same store, and the retirement of
//! verify-only keys at their `retire_at` (checked on every read, so a key
//! leaves the JWKS at the second it retires, not at the next reload).
//!
//! It must not decide anything about tokens itself: validation is
//! [`tollgate_core::Validator`]'s.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use tollgate_core::cache::TokenCache;
use tollgate_core::claims::Minter;
use tollgate_core::config::Config;
use tollgate_core::keys::seal::MasterKey;
use tollgate_core::keys::{Algorithm, KeyRing, KeyStatus};
use tollgate_core::wire::{FingerprintKey, KeyList};
use tollgate_core::{Claims, Secret, UnixTime, ValidationPolicy, Validator};
use tollgate_store::Store;

use crate::{ApiError, ServerError, keystore};

/// Tokens kept in a key set's [`TokenCache`].
const VALIDATED_TOKENS: usize = 10_000;

/// Everything derived from one ring.
pub(crate) struct KeySet {
    /// The keys as stored (or the HS256 secret).
    pub ring: KeyRing,
    /// Signs with the active key.
    pub minter: Minter,
    /// Checks with every key that verifies.
    pub validator: Validator,
    /// Tokens this validator accepted, so the next sight of one skips the
    /// signature check. Part of the set: a new key set starts empty, so a
    /// token whose key was withdrawn is never answered from here.
    pub validated: TokenCache<Claims>,
    /// `/.well-known/jwks.json`, serialized once.
    pub jwks: Bytes,
    /// The verifying keys with their thumbprints (`/v1/fingerprint`).
    pub fingerprint_keys: Vec<FingerprintKey>,
    /// Algorithms of the keys that verify.
    pub algorithms: Vec<Algorithm>,
    /// When the set must be rebuilt: the next verify-only retirement.
    rebuild_at: Option<UnixTime>,
}

/// What a key set is built under; fixed for the server's life.
#[derive(Clone)]
struct KeyPolicy {
    issuer: String,
    audiences: Vec<String>,
    leeway: u64,
    max_lifetime: u64,
    alg: Algorithm,
    overlap: u64,
    hmac_secret: Option<Secret>,
    hmac_previous: Option<(Secret, UnixTime)>,
}

impl KeyPolicy {
    fn from_config(config: &Config) -> KeyPolicy {
        KeyPolicy {
            issuer: config.issuer.clone(),
            audiences: config.audiences.clone(),
            leeway: config.leeway,
            max_lifetime: config.access_token_ttl.max(config.service_token_ttl),
            alg: config.signing_alg,
            overlap: config.key_overlap(),
            hmac_secret: config.hmac_secret.clone(),
            hmac_previous: config.hmac_previous.clone(),
        }
    }

    fn build(&self, ring: KeyRing, now: UnixTime) -> Result<KeySet, tollgate_core::Error> {
        let minter = Minter::new(
            self.issuer.clone(),
            self.audiences.clone(),
            ring.signing_key()?,
        )?;
        let verifying = ring.verifying_keys(now)?;
        // Every key in the ring is ours and bound to its algorithm, so the
        // algorithms of the verifying keys are exactly the ones to accept
        // (HS256 only when it is the configured algorithm: it is never stored).
        let mut algorithms: Vec<Algorithm> = verifying.iter().map(|k| k.alg()).collect();
        algorithms.push(self.alg);
        algorithms.sort();
        algorithms.dedup();
        let policy = ValidationPolicy::new(self.issuer.clone(), self.audiences.clone())?
            .with_leeway(self.leeway)
            .with_max_lifetime(self.max_lifetime)
            .with_algorithms(&algorithms);
        let jwks = serde_json::to_vec(&ring.jwks(now)?)
            .map_err(|_| tollgate_core::Error::InvalidJwk("the key set does not serialize"))?;
        let mut fingerprint_keys = Vec::new();
        for key in verifying.iter() {
            if let Ok(thumbprint) = key.thumbprint() {
                let status = ring
                    .keys()
                    .iter()
                    .find(|k| k.kid() == key.kid())
                    .map(|k| k.status.as_str().to_owned());
                fingerprint_keys.push(FingerprintKey {
                    kid: key.kid().to_owned(),
                    alg: key.alg().as_str().to_owned(),
                    thumbprint,
                    status,
                });
            }
        }
        fingerprint_keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        let rebuild_at = ring.changes_at(now);
        Ok(KeySet {
            validator: Validator::new(policy, verifying),
            validated: TokenCache::new(VALIDATED_TOKENS),
            ring,
            minter,
            jwks: Bytes::from(jwks),
            fingerprint_keys,
            algorithms,
            rebuild_at,
        })
    }
}

/// Owns the current [`KeySet`] and every change to it.
pub(crate) struct KeyManager {
    current: ArcSwap<KeySet>,
    policy: KeyPolicy,
    master: Option<MasterKey>,
    store: Arc<dyn Store>,
    /// Serialises rotation and reload within this instance.
    write: tokio::sync::Mutex<()>,
}

impl KeyManager {
    /// Loads the keys, creating the first one when none is active.
    pub async fn start(
        config: &Config,
        store: Arc<dyn Store>,
        now: UnixTime,
    ) -> Result<KeyManager, ServerError> {
        let policy = KeyPolicy::from_config(config);
        let master = keystore::master_key(config.master_key.as_ref())?;
        let ring = if policy.alg.is_symmetric() {
            keystore::hmac_ring(
                policy.hmac_secret.as_ref(),
                policy.hmac_previous.as_ref(),
                now,
            )?
        } else {
            let (ring, created) = keystore::prepare(
                store.as_ref(),
                master.as_ref(),
                policy.alg,
                now,
                policy.overlap,
            )
            .await?;
            if let Some(kid) = created {
                tracing::info!(kid, alg = %policy.alg, "created a new active signing key");
            }
            ring
        };
        let set = policy.build(ring, now).map_err(ServerError::Keys)?;
        Ok(KeyManager {
            current: ArcSwap::from_pointee(set),
            policy,
            master,
            store,
            write: tokio::sync::Mutex::new(()),
        })
    }

    /// The key set in force at `now`. When a verify-only key has reached
    /// its retirement since the set was built, rebuilds without it first.
    pub fn current(&self, now: UnixTime) -> Arc<KeySet> {
        let set = self.current.load_full();
        if set.rebuild_at.is_none_or(|at| now < at) {
            return set;
        }
        let mut ring = set.ring.clone();
        ring.expire(now);
        match self.policy.build(ring, now) {
            Ok(rebuilt) => {
                let rebuilt = Arc::new(rebuilt);
                self.current.store(rebuilt.clone());
                rebuilt
            }
            Err(error) => {
                tracing::error!(
                    code = error.code(),
                    "rebuilding the key set failed: {error}"
                );
                set
            }
        }
    }

    /// Whether keys live in the store (false for HS256).
    pub fn is_stored(&self) -> bool {
        !self.policy.alg.is_symmetric()
    }

    /// Rotates to a new key of the configured algorithm; returns its id.
    pub async fn rotate(&self, now: UnixTime) -> Result<String, ApiError> {
        if !self.is_stored() {
            return Err(ApiError::RotationNotSupported);
        }
        let _guard = self.write.lock().await;
        let kid = keystore::rotate(
            self.store.as_ref(),
            self.master.as_ref(),
            self.policy.alg,
            now,
            self.policy.overlap,
        )
        .await
        .map_err(ServerError::into_api)?;
        self.reload_locked(now)
            .await
            .map_err(ServerError::into_api)?;
        tracing::info!(kid, "rotated the signing key");
        Ok(kid)
    }

    /// Re-reads the keys from the store (a rotation by another instance or
    /// the CLI), persists retirements that are due, and swaps in the new set
    /// when anything changed.
    pub async fn reload(&self, now: UnixTime) -> Result<(), ServerError> {
        if !self.is_stored() {
            return Ok(());
        }
        let _guard = self.write.lock().await;
        self.reload_locked(now).await
    }

    async fn reload_locked(&self, now: UnixTime) -> Result<(), ServerError> {
        let mut ring = keystore::load_ring(self.store.as_ref(), self.master.as_ref()).await?;
        let expired = ring.expire(now);
        keystore::save(self.store.as_ref(), self.master.as_ref(), &expired).await?;
        if ring.active().is_none() {
            // Every key was retired or deleted behind our back: keep signing
            // with what we have rather than stop; `prepare` at the next
            // start makes a new key.
            tracing::error!("the store holds no active signing key; keeping the current one");
            return Ok(());
        }
        let current = self.current.load();
        if same_keys(&current.ring, &ring) {
            return Ok(());
        }
        let set = self.policy.build(ring, now).map_err(ServerError::Keys)?;
        self.current.store(Arc::new(set));
        Ok(())
    }

    /// `GET /v1/admin/keys`: every key, newest first.
    pub fn list(&self, now: UnixTime) -> KeyList {
        keystore::key_list(&self.current(now).ring)
    }
}

fn same_keys(a: &KeyRing, b: &KeyRing) -> bool {
    let summary = |ring: &KeyRing| {
        let mut keys: Vec<(String, KeyStatus, Option<UnixTime>)> = ring
            .keys()
            .iter()
            .map(|k| (k.kid().to_owned(), k.status, k.retire_at))
            .collect();
        keys.sort_by(|x, y| x.0.cmp(&y.0));
        keys
    };
    summary(a) == summary(b)
}
