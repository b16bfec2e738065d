//! [`KeyRing`]: which key signs, which verify, and when an old key retires.
//!
//! Rotation never invalidates a token before its expiry: the new key signs
//! at once, the previous active key becomes verify-only until
//! `now + overlap` (the longest lifetime of any token it may have signed,
//! plus leeway), and only then retires and leaves the JWKS.

use super::{KeyStatus, ManagedKey, SigningKey, VerifyingKeys};
use crate::{Error, UnixTime};

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

    /// Every key, including retired ones.
    pub fn keys(&self) -> &[ManagedKey] {
        &self.keys
    }

    /// The key that signs: the newest active one.
    pub fn active(&self) -> Option<&ManagedKey> {
        self.keys
            .iter()
            .filter(|k| k.status == KeyStatus::Active)
            .max_by_key(|k| k.created_at)
    }

    /// The loaded signing key.
    pub fn signing_key(&self) -> Result<SigningKey, Error> {
        self.active()
            .ok_or(Error::InvalidKey("there is no active signing key"))?
            .signing_key()
    }

    /// Makes `new` the active key. Every other active key becomes
    /// verify-only until `now + overlap`. Returns the keys whose state changed
    /// (the new one first), for the caller to persist.
    pub fn rotate(&mut self, mut new: ManagedKey, now: UnixTime, overlap: u64) -> Vec<ManagedKey> {
        let mut changed = Vec::new();
        new.status = KeyStatus::Active;
        new.retire_at = None;
        for key in &mut self.keys {
            if key.status == KeyStatus::Active {
                key.status = KeyStatus::VerifyOnly;
                key.retire_at = Some(now.saturating_add(overlap));
                changed.push(key.clone());
            }
        }
        changed.insert(0, new.clone());
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

    /// The keys that verify at `now`: every active key and every verify-only
    /// key before its retirement time.
    pub fn verifying_keys(&self, now: UnixTime) -> Result<VerifyingKeys, Error> {
        let mut keys = Vec::new();
        for key in &self.keys {
            let verifies = match key.status {
                KeyStatus::Active => true,
                KeyStatus::VerifyOnly => key.retire_at.is_some_and(|t| now < t),
                KeyStatus::Retired => false,
            };
            if verifies {
                keys.push(key.verifying_key()?);
            }
        }
        Ok(VerifyingKeys::new(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Algorithm;

    #[test]
    fn rotation_keeps_the_old_key_verifying_until_its_tokens_expire() {
        let first = ManagedKey::generate(Algorithm::EdDSA, 100).unwrap();
        let mut ring = KeyRing::new(vec![first.clone()]);
        let second = ManagedKey::generate(Algorithm::EdDSA, 200).unwrap();
        let changed = ring.rotate(second.clone(), 200, 930);
        assert_eq!(changed.len(), 2);
        assert_eq!(ring.active().unwrap().kid(), second.kid());
        let at = |now| {
            let set = ring.verifying_keys(now).unwrap();
            (
                set.find(first.kid()).is_some(),
                set.find(second.kid()).is_some(),
            )
        };
        assert_eq!(at(200), (true, true));
        assert_eq!(at(1129), (true, true));
        assert_eq!(at(1130), (false, true));
        assert!(ring.expire(1129).is_empty());
        let retired = ring.expire(1130);
        assert_eq!(retired.len(), 1);
        assert_eq!(retired[0].status, KeyStatus::Retired);
        assert_eq!(ring.signing_key().unwrap().kid(), second.kid());
    }
}
