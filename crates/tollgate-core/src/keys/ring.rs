//! [`KeyRing`]: which key signs, which verify, which signs next, and when
//! an old key retires.
//!
//! Rotation never refuses a good token, old or fresh:
//! - the key a rotation promotes was published beforehand as the `next`
//!   key (it verifies and is in the JWKS, but does not sign), so every
//!   verifier already holds it when it starts signing; a rotation promotes
//!   it to active and publishes a new next key;
//! - the previous active key becomes verify-only until `now + overlap`
//!   (the longest lifetime of any token it may have signed, plus leeway),
//!   and only then retires and leaves the JWKS.

use super::{Algorithm, Jwks, KeyStatus, ManagedKey, SigningKey, VerifyingKeys};
use crate::{Error, Secret, UnixTime};

/// A set of managed keys and the rotation policy over them.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<ManagedKey>,
}

impl KeyRing {
    /// A ring over keys read from storage.
    pub fn new(keys: Vec<ManagedKey>) -> KeyRing {
        KeyRing { keys }
    }

    /// The ring of an HS256 deployment, never stored: the current shared
    /// secret signs and verifies; the previous one (secret rotation) only
    /// verifies, until `until` (left out once that has passed). The server
    /// and the SDK both build their HS256 keys here.
    pub fn shared_secret(
        current: &Secret,
        previous: Option<(&Secret, UnixTime)>,
        now: UnixTime,
    ) -> Result<KeyRing, Error> {
        let mut keys = vec![ManagedKey::from_hmac_secret(current, now)?];
        if let Some((secret, until)) = previous
            && now < until
        {
            let mut old = ManagedKey::from_hmac_secret(secret, now)?;
            if old.kid() != keys[0].kid() {
                old.status = KeyStatus::VerifyOnly;
                old.retire_at = Some(until);
                keys.push(old);
            }
        }
        Ok(KeyRing { keys })
    }

    /// When the ring's verifying keys change next by themselves: the
    /// earliest retirement of a verify-only key after `now`.
    pub fn changes_at(&self, now: UnixTime) -> Option<UnixTime> {
        self.keys
            .iter()
            .filter(|k| k.status == KeyStatus::VerifyOnly)
            .filter_map(|k| k.retire_at)
            .filter(|t| *t > now)
            .min()
    }

    /// Every key, including retired ones.
    pub fn keys(&self) -> &[ManagedKey] {
        &self.keys
    }

    /// The key that signs: the newest active one.
    pub fn active(&self) -> Option<&ManagedKey> {
        self.newest(KeyStatus::Active)
    }

    /// The pre-published key the next rotation promotes: the newest `next`
    /// one.
    pub fn next(&self) -> Option<&ManagedKey> {
        self.newest(KeyStatus::Next)
    }

    fn newest(&self, status: KeyStatus) -> Option<&ManagedKey> {
        self.keys
            .iter()
            .filter(|k| k.status == status)
            .max_by_key(|k| k.created_at)
    }

    /// The loaded signing key.
    pub fn signing_key(&self) -> Result<SigningKey, Error> {
        self.active()
            .ok_or(Error::InvalidKey("there is no active signing key"))?
            .signing_key()
    }

    /// How many new keys of `alg` a [`KeyRing::rotate`] needs: one (the new
    /// next key) when a next key of `alg` waits to be promoted, else two
    /// (a new active key and a new next key).
    pub fn keys_needed(&self, alg: Algorithm) -> usize {
        if self.next().is_some_and(|k| k.alg() == alg) {
            1
        } else {
            2
        }
    }

    /// Rotates: the next key becomes active (or, when there is no next key
    /// of their algorithm, the first of `fresh`), and the last of `fresh`
    /// becomes the new next key. Every other active or next key becomes
    /// verify-only until `now + overlap`. `fresh` must hold exactly
    /// [`KeyRing::keys_needed`] new keys of one algorithm. Returns the keys
    /// whose state changed, for the caller to persist.
    pub fn rotate(
        &mut self,
        mut fresh: Vec<ManagedKey>,
        now: UnixTime,
        overlap: u64,
    ) -> Result<Vec<ManagedKey>, Error> {
        let alg = fresh
            .first()
            .ok_or(Error::InvalidKey("a rotation needs a new key"))?
            .alg();
        if fresh.len() != self.keys_needed(alg) || fresh.iter().any(|k| k.alg() != alg) {
            return Err(Error::InvalidKey(
                "a rotation needs exactly the new keys the ring asks for, of one algorithm",
            ));
        }
        let promoted = self
            .next()
            .filter(|k| k.alg() == alg)
            .map(|k| k.kid().to_owned());
        let mut next = fresh.pop().ok_or(Error::InvalidKey("no new next key"))?;
        next.status = KeyStatus::Next;
        next.retire_at = None;
        let mut changed = Vec::new();
        for key in &mut self.keys {
            if promoted.as_deref() == Some(key.kid()) {
                key.status = KeyStatus::Active;
                key.retire_at = None;
                changed.push(key.clone());
            } else if matches!(key.status, KeyStatus::Active | KeyStatus::Next) {
                key.status = KeyStatus::VerifyOnly;
                key.retire_at = Some(now.saturating_add(overlap));
                changed.push(key.clone());
            }
        }
        if let Some(mut active) = fresh.pop() {
            active.status = KeyStatus::Active;
            active.retire_at = None;
            changed.push(active.clone());
            self.keys.push(active);
        }
        changed.push(next.clone());
        self.keys.push(next);
        Ok(changed)
    }

    /// Whether the ring lacks a next key of the active key's algorithm
    /// (a store written before next keys existed).
    pub fn lacks_next(&self) -> bool {
        match (self.active(), self.next()) {
            (Some(active), Some(next)) => next.alg() != active.alg(),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Publishes `new` as the next key (see [`KeyRing::lacks_next`]); a next
    /// key of another algorithm becomes verify-only until `now + overlap`.
    /// Returns the keys that changed.
    pub fn add_next(
        &mut self,
        mut new: ManagedKey,
        now: UnixTime,
        overlap: u64,
    ) -> Vec<ManagedKey> {
        let mut changed = Vec::new();
        for key in &mut self.keys {
            if key.status == KeyStatus::Next {
                key.status = KeyStatus::VerifyOnly;
                key.retire_at = Some(now.saturating_add(overlap));
                changed.push(key.clone());
            }
        }
        new.status = KeyStatus::Next;
        new.retire_at = None;
        changed.push(new.clone());
        self.keys.push(new);
        changed
    }

    /// Retires verify-only keys whose overlap has passed. Returns the keys
    /// that changed, for the caller to persist.
    pub fn expire(&mut self, now: UnixTime) -> Vec<ManagedKey> {
        let mut changed = Vec::new();
        for key in &mut self.keys {
            if key.status == KeyStatus::VerifyOnly && key.retire_at.is_none_or(|t| t <= now) {
                key.status = KeyStatus::Retired;
                changed.push(key.clone());
            }
        }
        changed
    }

    fn verifies(key: &ManagedKey, now: UnixTime) -> bool {
        match key.status {
            KeyStatus::Next | KeyStatus::Active => true,
            KeyStatus::VerifyOnly => key.retire_at.is_some_and(|t| now < t),
            KeyStatus::Retired => false,
        }
    }

    /// The keys that verify at `now`: the active and next keys, and every
    /// verify-only key before its retirement time. (A next key verifies: an
    /// instance that has not yet read a rotation must accept what another
    /// instance already signs with it.)
    pub fn verifying_keys(&self, now: UnixTime) -> Result<VerifyingKeys, Error> {
        let mut keys = Vec::new();
        for key in &self.keys {
            if Self::verifies(key, now) {
                keys.push(key.verifying_key()?);
            }
        }
        Ok(VerifyingKeys::new(keys))
    }

    /// The public key set at `now` (the keys that verify, HS256 never),
    /// each with its `status` member, sorted by `kid`.
    pub fn jwks(&self, now: UnixTime) -> Result<Jwks, Error> {
        let mut jwks = self.verifying_keys(now)?.to_jwks();
        for jwk in &mut jwks.keys {
            jwk.status = self
                .keys
                .iter()
                .find(|k| Some(k.kid()) == jwk.kid.as_deref())
                .map(|k| k.status.as_str().to_owned());
        }
        Ok(jwks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Algorithm;

    #[test]
    fn a_previous_shared_secret_verifies_until_its_moment_and_never_signs() {
        let current = Secret::from("c".repeat(16) + &"d".repeat(16) + "e");
        let previous = Secret::from("p".repeat(16) + &"q".repeat(16) + "r");
        let ring = KeyRing::shared_secret(&current, Some((&previous, 1000)), 500).unwrap();
        let old_kid = format!(
            "hs256-{}",
            crate::fingerprint::secret_fingerprint(&previous)
        );
        let new_kid = format!("hs256-{}", crate::fingerprint::secret_fingerprint(&current));
        assert_eq!(ring.signing_key().unwrap().kid(), new_kid);
        let at = |now| {
            let keys = ring.verifying_keys(now).unwrap();
            (keys.find(&new_kid).is_some(), keys.find(&old_kid).is_some())
        };
        assert_eq!(at(999), (true, true));
        assert_eq!(at(1000), (true, false));
        assert_eq!(ring.changes_at(500), Some(1000));
        // Published nowhere: HS256 has no JWKS.
        assert!(ring.jwks(500).unwrap().keys.is_empty());
        // Past the moment, the previous secret is not even loaded.
        let later = KeyRing::shared_secret(&current, Some((&previous, 1000)), 1000).unwrap();
        assert_eq!(later.keys().len(), 1);
        // A weak previous secret is refused like a weak current one.
        assert!(
            KeyRing::shared_secret(&current, Some((&Secret::from("short"), 1000)), 500).is_err()
        );
    }

    fn key(now: UnixTime) -> ManagedKey {
        ManagedKey::generate(Algorithm::EdDSA, now).unwrap()
    }

    #[test]
    fn rotation_keeps_the_old_key_verifying_until_its_tokens_expire() {
        // A ring from before next keys: rotating needs an active and a next key.
        let first = key(100);
        let mut ring = KeyRing::new(vec![first.clone()]);
        assert!(ring.lacks_next());
        assert_eq!(ring.keys_needed(Algorithm::EdDSA), 2);
        assert!(ring.rotate(vec![key(200)], 200, 930).is_err());
        let (second, third) = (key(200), key(200));
        let changed = ring
            .rotate(vec![second.clone(), third.clone()], 200, 930)
            .unwrap();
        assert_eq!(changed.len(), 3);
        assert_eq!(ring.active().unwrap().kid(), second.kid());
        assert_eq!(ring.next().unwrap().kid(), third.kid());
        assert!(!ring.lacks_next());
        let at = |now| {
            let set = ring.verifying_keys(now).unwrap();
            (
                set.find(first.kid()).is_some(),
                set.find(second.kid()).is_some(),
                set.find(third.kid()).is_some(),
            )
        };
        assert_eq!(at(200), (true, true, true));
        assert_eq!(at(1129), (true, true, true));
        assert_eq!(at(1130), (false, true, true));
        assert!(ring.expire(1129).is_empty());
        let retired = ring.expire(1130);
        assert_eq!(retired.len(), 1);
        assert_eq!(retired[0].status, KeyStatus::Retired);
        assert_eq!(ring.signing_key().unwrap().kid(), second.kid());
    }

    #[test]
    fn rotation_promotes_the_published_next_key_and_publishes_a_new_one() {
        let (active, next) = (key(100), key(100));
        let mut ring = KeyRing::new(vec![]);
        ring.rotate(vec![active.clone(), next.clone()], 100, 930)
            .unwrap();
        let published = ring.jwks(100).unwrap();
        let status = |jwks: &Jwks, kid: &str| {
            jwks.keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .and_then(|k| k.status.clone())
        };
        assert_eq!(status(&published, next.kid()).as_deref(), Some("next"));
        assert_eq!(status(&published, active.kid()).as_deref(), Some("active"));

        // The next key signs after the rotation: every verifier that read
        // the JWKS before it already holds it.
        assert_eq!(ring.keys_needed(Algorithm::EdDSA), 1);
        let newer = key(200);
        let changed = ring.rotate(vec![newer.clone()], 200, 930).unwrap();
        assert_eq!(changed.len(), 3);
        assert_eq!(ring.active().unwrap().kid(), next.kid());
        assert_eq!(ring.next().unwrap().kid(), newer.kid());
        let after = ring.jwks(200).unwrap();
        assert_eq!(status(&after, next.kid()).as_deref(), Some("active"));
        assert_eq!(status(&after, newer.kid()).as_deref(), Some("next"));
        assert_eq!(status(&after, active.kid()).as_deref(), Some("verify_only"));
        // Rotating to another algorithm demotes the next key of the old one.
        let es = || ManagedKey::generate(Algorithm::ES256, 300).unwrap();
        assert_eq!(ring.keys_needed(Algorithm::ES256), 2);
        ring.rotate(vec![es(), es()], 300, 930).unwrap();
        assert_eq!(ring.active().unwrap().alg(), Algorithm::ES256);
        assert_eq!(ring.next().unwrap().alg(), Algorithm::ES256);
        let demoted = ring.keys().iter().find(|k| k.kid() == newer.kid()).unwrap();
        assert_eq!(demoted.status, KeyStatus::VerifyOnly);
    }
}
