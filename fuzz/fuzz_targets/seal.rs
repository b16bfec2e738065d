//! Stored key material (`keys::seal::open`): the blobs the store reads
//! back, sealed with the master key (AES-256-GCM, kid as associated data)
//! or plain in development.
//!
//! The first byte of the input is the length of the kid, taken from the
//! rest; what follows is the stored blob. Invariants: no panic; a plain
//! (`TGK0`) blob opens to its material with or without a master key; a
//! sealed (`TGK1`) blob never opens without one; anything else never
//! opens; and material sealed under a kid opens under that kid only, to
//! the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::Secret;
use tollgate_core::keys::seal::{is_sealed, open, seal};
use tollgate_fuzz::FIXTURE;

fuzz_target!(|data: &[u8]| {
    let Some((&kid_len, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(kid_len).min(rest.len());
    let (kid, stored) = rest.split_at(at);
    let kid = String::from_utf8_lossy(kid);
    let master = &FIXTURE.master;

    let with = open(Some(master), &kid, stored);
    let without = open(None, &kid, stored);
    match stored.get(..4) {
        Some(b"TGK0") => {
            assert_eq!(with.as_ref().map(Secret::expose), Ok(&stored[4..]));
            assert_eq!(without.as_ref().map(Secret::expose), Ok(&stored[4..]));
        }
        Some(b"TGK1") => {
            assert!(is_sealed(stored));
            assert!(
                without.is_err(),
                "sealed material opened without the master key"
            );
        }
        _ => {
            assert!(with.is_err() && without.is_err(), "an unknown blob opened");
        }
    }

    let material = Secret::new(stored.to_vec());
    let sealed = seal(Some(master), &kid, &material).expect("sealing");
    assert!(is_sealed(&sealed));
    let opened = open(Some(master), &kid, &sealed).expect("sealed material opens");
    assert_eq!(opened.expose(), stored);
    let other = format!("{kid}x");
    assert!(
        open(Some(master), &other, &sealed).is_err(),
        "opened under another kid"
    );
    let plain = seal(None, &kid, &material).expect("plain storage");
    assert_eq!(
        open(None, &kid, &plain).expect("plain opens").expose(),
        stored
    );
});
