//! The JWKS cache: the token service's public keys, as the core
//! [`Validator`] the SDK validates with.
//!
//! The keys are fetched at start, refreshed periodically, and refetched
//! when a token names a key the SDK does not know — at most once per
//! cool-down window (SECURITY B17): a flood of tokens with random `kid`s
//! costs the token service one JWKS request per window, and the tokens are
//! refused without waiting. Concurrent misses share one fetch. A fetch that
//! fails, or a key set the core refuses (a weak key fails the whole set),
//! leaves the previous keys in place.
//!
//! Rotations do not wait for the cool-down: the token service publishes
//! its next key in the JWKS before it signs (so a fresh token's key is
//! normally held already), and announces each rotation with a `keys` event
//! on the revocation feed. The follower hands the event's key ids to
//! [`KeySource::rotated`]; [`follow_rotations`] then fetches at once, past
//! the cool-down, and again a few times while the answer lacks one of them
//! (an instance behind a load balancer that has not read the rotation yet).
//! Only that event bypasses the cool-down: unknown `kid`s in tokens never do.
//!
//! Each key state carries a generation number, so a request that missed a
//! key can tell whether a fetch happened since it looked, without parsing
//! the token's header itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;
use tollgate_core::keys::Jwks;
use tollgate_core::{ValidationPolicy, Validator, VerifyingKeys};

use crate::http::{Failure, Http};

/// The keys in force.
#[derive(Debug)]
pub(crate) struct KeyState {
    pub validator: Validator,
    pub generation: u64,
    /// Unix milliseconds of the fetch (0 for keys given at construction).
    pub fetched_at_ms: u64,
}

/// What a refetch for an unknown key did.
#[derive(Debug)]
pub(crate) enum Refetch {
    /// The keys changed since the caller looked: validate again.
    Updated,
    /// The keys were fetched and nothing changed, or a fetch happened
    /// within the cool-down window: the key is unknown.
    Unchanged,
    /// The fetch failed.
    Failed(Failure),
}

/// Where keys come from and how often they may be fetched.
#[derive(Debug)]
pub(crate) struct KeySource {
    http: Http,
    url: String,
    policy: ValidationPolicy,
    state: Arc<ArcSwap<KeyState>>,
    cooldown: Duration,
    origin: Instant,
    /// Milliseconds since `origin` of the last fetch attempt, plus one
    /// (0 = never).
    last_attempt: AtomicU64,
    fetches: AtomicU64,
    /// Whether a fetch is under way (a token whose key is unknown waits for
    /// it rather than being refused during the cool-down it started).
    in_flight: AtomicBool,
    lock: tokio::sync::Mutex<()>,
    /// Key ids a `keys` event named, not yet seen in a fetched set.
    wanted: std::sync::Mutex<Vec<String>>,
    /// Wakes [`follow_rotations`].
    rotation: tokio::sync::Notify,
}

/// Fetches after a rotation: how often, and how long apart, while the key
/// set lacks the announced keys.
const ROTATION_ATTEMPTS: u32 = 10;
const ROTATION_RETRY: Duration = Duration::from_millis(200);

impl KeySource {
    pub(crate) fn new(
        http: Http,
        url: String,
        policy: ValidationPolicy,
        state: Arc<ArcSwap<KeyState>>,
        cooldown: Duration,
    ) -> KeySource {
        KeySource {
            http,
            url,
            policy,
            state,
            cooldown,
            origin: Instant::now(),
            last_attempt: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            in_flight: AtomicBool::new(false),
            lock: tokio::sync::Mutex::new(()),
            wanted: std::sync::Mutex::new(Vec::new()),
            rotation: tokio::sync::Notify::new(),
        }
    }

    /// How many JWKS requests were made.
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn cooling_down(&self) -> bool {
        let last = self.last_attempt.load(Ordering::Acquire);
        if last == 0 {
            return false;
        }
        let elapsed = Instant::now().saturating_duration_since(self.origin);
        let since = Duration::from_millis(last - 1);
        elapsed.saturating_sub(since) < self.cooldown
    }

    fn mark_attempt(&self) {
        let elapsed = Instant::now().saturating_duration_since(self.origin);
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX - 1);
        self.last_attempt.store(ms + 1, Ordering::Release);
    }

    /// Fetches the key set now, whatever the cool-down (start-up and the
    /// periodic refresh). Returns the number of keys.
    pub(crate) async fn fetch(&self) -> Result<usize, Failure> {
        let _guard = self.lock.lock().await;
        self.fetch_locked().await
    }

    async fn fetch_locked(&self) -> Result<usize, Failure> {
        self.in_flight.store(true, Ordering::Release);
        let result = self.fetch_inner().await;
        self.in_flight.store(false, Ordering::Release);
        result
    }

    async fn fetch_inner(&self) -> Result<usize, Failure> {
        self.mark_attempt();
        self.fetches.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tollgate_client_jwks_fetches_total").increment(1);
        let jwks: Jwks = self.http.get_json(&self.url, None).await?;
        let keys = VerifyingKeys::from_jwks(&jwks).map_err(|err| {
            tracing::error!(reason = %err, "the token service's key set was refused; keeping the previous keys");
            Failure::Invalid("the key set was refused")
        })?;
        let count = keys.len();
        let previous = self.state.load();
        let unchanged = previous.validator.keys().len() == count
            && keys
                .iter()
                .all(|k| previous.validator.keys().find(k.kid()).is_some());
        if previous.validator.keys().is_empty() {
            tracing::info!(keys = count, "fetched the token service's keys");
        } else if !unchanged {
            tracing::info!(keys = count, "the token service's keys changed");
        }
        self.state.store(Arc::new(KeyState {
            validator: Validator::new(self.policy.clone(), keys),
            generation: previous.generation + u64::from(!unchanged),
            fetched_at_ms: crate::clock::now_ms(),
        }));
        Ok(count)
    }

    /// Called when a token named a key the validator of generation `seen`
    /// does not know.
    pub(crate) async fn refetch_after(&self, seen: u64) -> Refetch {
        if self.state.load().generation != seen {
            return Refetch::Updated;
        }
        if self.cooling_down() && !self.in_flight.load(Ordering::Acquire) {
            return Refetch::Unchanged;
        }
        let _guard = self.lock.lock().await;
        // Someone else may have fetched while this call waited.
        if self.state.load().generation != seen {
            return Refetch::Updated;
        }
        if self.cooling_down() {
            return Refetch::Unchanged;
        }
        match self.fetch_locked().await {
            Ok(_) if self.state.load().generation != seen => Refetch::Updated,
            Ok(_) => Refetch::Unchanged,
            Err(failure) => Refetch::Failed(failure),
        }
    }

    /// A `keys` event named `kids` (the new active and next keys): fetch the
    /// key set now, past the cool-down, until it holds them.
    pub(crate) fn rotated<'a>(&self, kids: impl IntoIterator<Item = &'a str>) {
        let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        for kid in kids {
            if !wanted.iter().any(|w| w == kid) {
                wanted.push(kid.to_owned());
            }
        }
        drop(wanted);
        self.rotation.notify_one();
    }

    /// Forgets the wanted keys the current set holds; whether any is left.
    fn still_wanted(&self) -> bool {
        let state = self.state.load();
        let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        wanted.retain(|kid| state.validator.keys().find(kid).is_none());
        !wanted.is_empty()
    }
}

/// Refetches the key set after each announced rotation (see the module
/// docs), until the task is aborted.
pub(crate) async fn follow_rotations(source: Arc<KeySource>) {
    loop {
        source.rotation.notified().await;
        for attempt in 0..ROTATION_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(ROTATION_RETRY).await;
            }
            if let Err(failure) = source.fetch().await {
                tracing::warn!(failure = %failure.describe(), "fetching the key set after a rotation failed");
                continue;
            }
            if !source.still_wanted() {
                break;
            }
        }
        if source.still_wanted() {
            tracing::warn!(
                "after a rotation, the token service's key set still lacks the announced keys"
            );
            source
                .wanted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
    }
}
