//! Signing keys at rest: loading the [`KeyRing`] from the store, creating
//! the first key, rotating and retiring. Shared by the running server and
//! the `tollgate keys …` commands, which act on the same store while the
//! server runs (the server reloads keys every few seconds).
//!
//! Private material is sealed with the master key
//! ([`tollgate_core::keys::seal`]) before it reaches the store and opened
//! only here. HS256 keys are never stored: they are the configured shared
//! secret ([`hmac_ring`]).
//!
//! Rotation is seamless: the ring always holds a `next` key, published in
//! the JWKS (and verifying) before it signs. [`rotate`] promotes it to
//! active, publishes a new next key, and appends a `keys` event to the
//! revocation feed in the same transaction, so that every instance and
//! every following SDK reloads its keys at once ([`KEYS_EVENT_TTL`]).
//!
//! Concurrency: two writers (two instances, or the server and the CLI) may
//! rotate at once. The store keeps at most one active and one next key: of
//! two writes that each promote the next key they read and add their own
//! next key, the second is `StoreError::Conflict("key")` and writes nothing. [`rotate`] then reads
//! the ring again (now with the winner's key) and rotates once more on top
//! of it; only a second conflict in a row is an error
//! ([`ServerError::RotationConflict`]). Every instance converges on the
//! next reload, and no token is invalidated early by a race, because
//! demoted keys keep verifying for the overlap.

use tollgate_core::keys::seal::{self, MasterKey};
use tollgate_core::keys::{Algorithm, KeyRing, KeyStatus, ManagedKey};
use tollgate_core::wire::{KeyInfo, KeyList};
use tollgate_core::{Secret, UnixTime};
use tollgate_store::{KeyRecord, Store, StoreError};

use crate::ServerError;

/// The master key from the configuration, derived once.
pub fn master_key(master: Option<&Secret>) -> Result<Option<MasterKey>, ServerError> {
    master
        .map(MasterKey::new)
        .transpose()
        .map_err(ServerError::Keys)
}

/// Every stored key, opened with `master`. A key that does not open (another
/// master key, a corrupted row) fails the whole load: signing with a partial
/// ring could publish a JWKS that lacks a key still in use.
pub async fn load_ring(
    store: &dyn Store,
    master: Option<&MasterKey>,
) -> Result<KeyRing, ServerError> {
    let records = store.list_keys().await?;
    let mut keys = Vec::with_capacity(records.len());
    for record in records {
        keys.push(open_record(master, record)?);
    }
    Ok(KeyRing::new(keys))
}

fn open_record(master: Option<&MasterKey>, record: KeyRecord) -> Result<ManagedKey, ServerError> {
    let alg = Algorithm::from_name(&record.alg).ok_or_else(|| ServerError::StoredKey {
        kid: record.kid.clone(),
        reason: "its algorithm is unknown",
    })?;
    let status = KeyStatus::from_name(&record.status).ok_or_else(|| ServerError::StoredKey {
        kid: record.kid.clone(),
        reason: "its status is unknown",
    })?;
    let material =
        seal::open(master, &record.kid, &record.material).map_err(|_| ServerError::StoredKey {
            kid: record.kid.clone(),
            reason: "it cannot be decrypted with this master key (TOLLGATE_MASTER_KEY)",
        })?;
    ManagedKey::from_parts(
        record.kid.clone(),
        alg,
        status,
        record.created_at,
        record.retire_at,
        material,
    )
    .map_err(|_| ServerError::StoredKey {
        kid: record.kid,
        reason: "its material does not load or does not match its kid",
    })
}

/// Seals and writes `keys` in one transaction.
pub async fn save(
    store: &dyn Store,
    master: Option<&MasterKey>,
    keys: &[ManagedKey],
) -> Result<(), ServerError> {
    if keys.is_empty() {
        return Ok(());
    }
    store.save_keys(&records(master, keys)?).await?;
    Ok(())
}

fn records(master: Option<&MasterKey>, keys: &[ManagedKey]) -> Result<Vec<KeyRecord>, ServerError> {
    let mut records = Vec::with_capacity(keys.len());
    for key in keys {
        records.push(KeyRecord {
            kid: key.kid().to_owned(),
            alg: key.alg().as_str().to_owned(),
            status: key.status.as_str().to_owned(),
            created_at: key.created_at,
            retire_at: key.retire_at,
            material: seal::seal(master, key.kid(), key.material()).map_err(ServerError::Keys)?,
        });
    }
    Ok(records)
}

/// A new key of `alg`, generated on the blocking pool (RSA generation takes
/// long enough to stall an event loop).
pub async fn generate(alg: Algorithm, now: UnixTime) -> Result<ManagedKey, ServerError> {
    if alg.is_symmetric() {
        return Err(ServerError::HmacKeysAreNotStored);
    }
    tokio::task::spawn_blocking(move || ManagedKey::generate(alg, now))
        .await
        .map_err(|_| ServerError::Keys(tollgate_core::Error::InvalidKey("key generation failed")))?
        .map_err(ServerError::Keys)
}

/// `count` new keys of `alg`.
async fn generate_keys(
    alg: Algorithm,
    now: UnixTime,
    count: usize,
) -> Result<Vec<ManagedKey>, ServerError> {
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        keys.push(generate(alg, now).await?);
    }
    Ok(keys)
}

/// How long a `keys` event stays on the feed: a follower that reconnects
/// within this time still reads it (one that comes back later refetches the
/// key set on its own, at start or on the first unknown key).
pub const KEYS_EVENT_TTL: u64 = 3600;

/// Rotates: the next key (published before, so every verifier holds it)
/// becomes active now, a new next key of `alg` is published, and the
/// previous active key verifies for `overlap` more seconds. Reads the ring
/// fresh from the store so that a rotation elsewhere is not undone. Appends
/// a `keys` event to the feed with the write. Returns the new active key's
/// id.
///
/// When another writer rotated between the read and the write (the store
/// refuses a second active key), tries once more on top of its key; a
/// second conflict is [`ServerError::RotationConflict`], with nothing
/// written.
pub async fn rotate(
    store: &dyn Store,
    master: Option<&MasterKey>,
    alg: Algorithm,
    now: UnixTime,
    overlap: u64,
) -> Result<String, ServerError> {
    match rotate_once(store, master, alg, now, overlap).await {
        Err(ServerError::Store(StoreError::Conflict(_))) => {
            tracing::info!(
                "another process rotated the signing keys at the same moment; rotating again on top of its key"
            );
            match rotate_once(store, master, alg, now, overlap).await {
                Err(ServerError::Store(StoreError::Conflict(_))) => {
                    Err(ServerError::RotationConflict)
                }
                other => other,
            }
        }
        other => other,
    }
}

async fn rotate_once(
    store: &dyn Store,
    master: Option<&MasterKey>,
    alg: Algorithm,
    now: UnixTime,
    overlap: u64,
) -> Result<String, ServerError> {
    let mut ring = load_ring(store, master).await?;
    let fresh = generate_keys(alg, now, ring.keys_needed(alg)).await?;
    let changed = ring
        .rotate(fresh, now, overlap)
        .map_err(ServerError::Keys)?;
    let (Some(active), Some(next)) = (ring.active(), ring.next()) else {
        return Err(ServerError::Keys(tollgate_core::Error::InvalidKey(
            "a rotation left no active or no next key",
        )));
    };
    let kid = active.kid().to_owned();
    let key_ids = format!("{kid} {}", next.kid());
    let records = records(master, &changed)?;
    store
        .rotate_keys(&records, &key_ids, now, now.saturating_add(KEYS_EVENT_TTL))
        .await?;
    Ok(kid)
}

/// Retires verify-only keys whose overlap has passed and makes sure an
/// active and a next key of `alg` exist (creating the first keys, rotating
/// when the configured algorithm changed, or publishing a next key in a
/// store from before next keys). Returns the ring as stored afterwards and
/// the id of an active key it created, if any.
pub async fn prepare(
    store: &dyn Store,
    master: Option<&MasterKey>,
    alg: Algorithm,
    now: UnixTime,
    overlap: u64,
) -> Result<(KeyRing, Option<String>), ServerError> {
    if alg.is_symmetric() {
        return Err(ServerError::HmacKeysAreNotStored);
    }
    let mut ring = load_ring(store, master).await?;
    let expired = ring.expire(now);
    save(store, master, &expired).await?;
    if ring.active().is_some_and(|key| key.alg() == alg) {
        if ring.lacks_next() {
            let next = generate(alg, now).await?;
            let changed = ring.add_next(next, now, overlap);
            // Another instance starting at once may have published one:
            // then its key is the next one, and ours is not needed.
            match save(store, master, &changed).await {
                Err(ServerError::Store(StoreError::Conflict(_))) => {
                    ring = load_ring(store, master).await?;
                }
                other => other?,
            }
        }
        return Ok((ring, None));
    }
    let fresh = generate_keys(alg, now, ring.keys_needed(alg)).await?;
    let changed = ring
        .rotate(fresh, now, overlap)
        .map_err(ServerError::Keys)?;
    let kid = ring.active().map(|k| k.kid().to_owned());
    save(store, master, &changed).await?;
    Ok((ring, kid))
}

/// The ring of an HS256 deployment, never stored: the shared secret, and
/// during a secret rotation the previous one, verify-only until its moment
/// ([`KeyRing::shared_secret`]).
pub fn hmac_ring(
    secret: Option<&Secret>,
    previous: Option<&(Secret, UnixTime)>,
    now: UnixTime,
) -> Result<KeyRing, ServerError> {
    let secret = secret.ok_or(ServerError::MissingHmacSecret)?;
    KeyRing::shared_secret(secret, previous.map(|(s, until)| (s, *until)), now)
        .map_err(ServerError::Keys)
}

/// The keys of a ring as the admin API and `tollgate keys list` show them:
/// newest first; keys made in the same second by status (next, active,
/// verify-only, retired), so the order never depends on random key ids.
pub fn key_list(ring: &KeyRing) -> KeyList {
    let mut keys: Vec<KeyInfo> = ring
        .keys()
        .iter()
        .map(|k| KeyInfo {
            kid: k.kid().to_owned(),
            alg: k.alg().as_str().to_owned(),
            status: k.status.as_str().to_owned(),
            created_at: k.created_at,
            retire_at: k.retire_at,
        })
        .collect();
    let rank = |status: &str| match status {
        "next" => 0,
        "active" => 1,
        "verify_only" => 2,
        _ => 3,
    };
    keys.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then(rank(&a.status).cmp(&rank(&b.status)))
            .then(a.kid.cmp(&b.kid))
    });
    KeyList { keys }
}
