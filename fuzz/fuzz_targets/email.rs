//! `tollgate_core::email::normalize`: the addresses anyone registers or
//! logs in with (issue 15, item 2).
//!
//! Invariants: no panic; an accepted address is its own normal form
//! (normalising it again gives it back: what is stored is what a later
//! login finds), at most `MAX_BYTES`, has exactly one `@` with a non-empty
//! local part and a host-shaped domain (dot-separated, non-empty labels of
//! lower-case letters, digits and hyphens, none starting or ending with a
//! hyphen, at most 63 bytes), holds no whitespace, control or format
//! character, and has no upper-case letter; surrounding whitespace does
//! not change the answer; a refusal is `InvalidEmail`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::Error;
use tollgate_core::email::{MAX_BYTES, normalize};

fn host_shaped(domain: &str) -> bool {
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    })
}

fuzz_target!(|raw: &str| {
    match normalize(raw) {
        Ok(email) => {
            assert_eq!(
                normalize(&email).as_deref(),
                Ok(email.as_str()),
                "not a fixed point"
            );
            assert!(email.len() <= MAX_BYTES);
            let (local, domain) = email.split_once('@').expect("an `@`");
            assert!(!local.is_empty());
            assert!(!domain.contains('@'), "two `@`");
            assert!(host_shaped(domain), "domain {domain:?}");
            assert!(!email.chars().any(|c| c.is_whitespace() || c.is_control()));
            assert_eq!(email.to_lowercase(), email, "not lower case");
            let padded = format!("  {raw}\t");
            assert_eq!(normalize(&padded).as_deref(), Ok(email.as_str()));
        }
        Err(Error::InvalidEmail(_)) => {}
        Err(other) => panic!("unexpected error {other:?}"),
    }
});
