//! [`PasswordPool`]: argon2id hashing and verification off the event loop,
//! on a few dedicated threads behind a bounded queue.
//!
//! Each hash fills 19 MiB for tens of milliseconds. The pool owns one
//! thread per core (the `hash_slots` option), so at most that many hashes
//! run at once, and each thread hashes in one block it keeps
//! ([`password::Hasher`]): memory is `hash_slots × 19 MiB` however many
//! logins arrive, never a block per login for the allocator to fragment
//! (a login flood once left 250 MiB resident). A bounded number of
//! jobs may wait; beyond that the answer is 503 `overloaded` at once, so
//! `/healthz`, introspection and token refreshes never queue behind logins.
//!
//! Unknown e-mails are verified against a dummy hash made at start with the
//! same parameters, so they cost what a wrong password costs.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;
use tollgate_core::{Secret, password};

use crate::ApiError;

type Job = Box<dyn FnOnce(&mut password::Hasher) + Send>;

/// The hashing threads, their queue and the dummy hash.
pub(crate) struct PasswordPool {
    jobs: SyncSender<Job>,
    dummy: Arc<str>,
}

impl PasswordPool {
    /// A pool of `slots` hashing threads (at least 1) with up to
    /// `16 × slots` jobs waiting. The threads end when the pool is dropped.
    pub async fn new(slots: usize) -> Result<PasswordPool, tollgate_core::Error> {
        let slots = slots.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(slots * 16);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..slots {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("tollgate-argon2-{n}"))
                .spawn(move || work(&queue))
                .map_err(|_| tollgate_core::Error::PasswordHash("no thread for hashing"))?;
        }
        let mut pool = PasswordPool {
            jobs,
            dummy: Arc::from(""),
        };
        let dummy = pool
            .run(|hasher| {
                let random = tollgate_core::opaque::generate("dummy_")?;
                hasher.hash(&random)
            })
            .await
            .map_err(|_| tollgate_core::Error::PasswordHash("the dummy hash job failed"))??;
        pool.dummy = Arc::from(dummy);
        Ok(pool)
    }

    /// Runs `job` on a hashing thread; `overloaded` when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut password::Hasher) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |hasher| {
            // The caller may have gone (a dropped request): nothing to do.
            let _ = reply.send(job(hasher));
        });
        self.jobs.try_send(job).map_err(|error| match error {
            TrySendError::Full(_) => ApiError::Overloaded,
            TrySendError::Disconnected(_) => ApiError::Internal,
        })?;
        answer.await.map_err(|_| ApiError::Internal)
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
        let dummy = self.dummy.clone();
        self.run(move |hasher| {
            let real = phc.is_some();
            let phc = phc.as_deref().unwrap_or(&dummy);
            let matched = match hasher.verify(&password, phc) {
                Ok(matched) => matched && real,
                Err(error) => {
                    tracing::error!(code = error.code(), "a stored password hash is unusable");
                    false
                }
            };
            let rehash = if matched && password::needs_rehash(phc) {
                hasher.hash(&password).ok()
            } else {
                None
            };
            Verified { matched, rehash }
        })
        .await
    }

    /// Hashes a new password (registration, admin creation).
    pub async fn hash(&self, password: Secret) -> Result<String, ApiError> {
        self.run(move |hasher| hasher.hash(&password))
            .await?
            .map_err(ApiError::from)
    }
}

/// A hashing thread: takes jobs until the pool is dropped, all in one
/// argon2 memory block.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut hasher = password::Hasher::new();
    loop {
        // The lock is held only while waiting for the next job, never
        // while one runs.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match job {
            Ok(job) => job(&mut hasher),
            Err(_) => return,
        }
    }
}

/// The outcome of [`PasswordPool::verify`].
pub(crate) struct Verified {
    /// The password matched a real user's hash.
    pub matched: bool,
    /// A re-hash under current parameters, to store.
    pub rehash: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_hashes_and_refuses_beyond_the_queue() {
        let pool = PasswordPool::new(1).await.unwrap();
        let phc = pool.hash(Secret::from("a long password")).await.unwrap();
        let ok = pool
            .verify(Secret::from("a long password"), Some(phc.clone()))
            .await
            .unwrap();
        assert!(ok.matched && ok.rehash.is_none());
        let wrong = pool
            .verify(Secret::from("another one"), Some(phc))
            .await
            .unwrap();
        assert!(!wrong.matched);
        let unknown = pool
            .verify(Secret::from("a long password"), None)
            .await
            .unwrap();
        assert!(!unknown.matched);

        // One thread, sixteen places: of many jobs sent at once, those
        // beyond the places are refused at once, and the rest all finish.
        let pool = Arc::new(pool);
        let jobs: Vec<_> = (0..40)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.verify(Secret::from("x"), None).await })
            })
            .collect();
        let mut refused = 0;
        for job in jobs {
            match job.await.unwrap() {
                Ok(verified) => assert!(!verified.matched),
                Err(ApiError::Overloaded) => refused += 1,
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(refused >= 20, "only {refused} refused");
    }
}
