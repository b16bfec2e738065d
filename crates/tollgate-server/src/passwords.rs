//! [`PasswordPool`]: argon2id hashing and verification off the event loop,
//! with bounded concurrency.
//!
//! Each hash holds 19 MiB for tens of milliseconds, so hashing runs on the
//! blocking pool behind a semaphore sized to the cores: memory stays bounded
//! however many logins arrive. A bounded number of callers may wait for a
//! slot; beyond that the answer is 503 `overloaded` at once, so `/healthz`,
//! introspection and token refreshes never queue behind logins.
//!
//! Unknown e-mails are verified against a dummy hash made at start with the
//! same parameters, so they cost what a wrong password costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tollgate_core::{Secret, password};

use crate::ApiError;

/// The hashing slots and the dummy hash.
pub(crate) struct PasswordPool {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    dummy: String,
}

impl PasswordPool {
    /// A pool of `slots` concurrent hashes (at least 1) with up to
    /// `16 × slots` callers waiting.
    pub async fn new(slots: usize) -> Result<PasswordPool, tollgate_core::Error> {
        let slots = slots.max(1);
        let dummy = tokio::task::spawn_blocking(|| {
            let random = tollgate_core::opaque::generate("dummy_")?;
            password::hash(&random)
        })
        .await
        .map_err(|_| tollgate_core::Error::PasswordHash("the dummy hash task failed"))??;
        Ok(PasswordPool {
            permits: Arc::new(Semaphore::new(slots)),
            waiting: AtomicUsize::new(0),
            max_waiting: slots * 16,
            dummy,
        })
    }

    async fn slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::Overloaded);
        }
        let permit = self.permits.clone().acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| ApiError::Overloaded)
    }

    /// Verifies `password` against `phc`, or against the dummy hash when
    /// there is no user (the answer is then always false). Returns whether
    /// it matched and, when it matched under old parameters, a fresh hash to
    /// store.
    pub async fn verify(
        &self,
        password: Secret,
        phc: Option<String>,
    ) -> Result<Verified, ApiError> {
        let permit = self.slot().await?;
        let real = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.dummy.clone());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let matched = match password::verify(&password, &phc) {
                Ok(matched) => matched && real,
                Err(error) => {
                    tracing::error!(code = error.code(), "a stored password hash is unusable");
                    false
                }
            };
            let rehash = if matched && password::needs_rehash(&phc) {
                password::hash(&password).ok()
            } else {
                None
            };
            Verified { matched, rehash }
        })
        .await
        .map_err(|_| ApiError::Internal)
    }

    /// Hashes a new password (registration, admin creation).
    pub async fn hash(&self, password: Secret) -> Result<String, ApiError> {
        let permit = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            password::hash(&password)
        })
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(ApiError::from)
    }
}

/// The outcome of [`PasswordPool::verify`].
pub(crate) struct Verified {
    /// The password matched a real user's hash.
    pub matched: bool,
    /// A re-hash under current parameters, to store.
    pub rehash: Option<String>,
}
