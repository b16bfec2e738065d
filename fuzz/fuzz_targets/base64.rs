//! The strict base64url decoder every token byte goes through
//! (`base64-simd`), against the `base64` crate's strict `URL_SAFE_NO_PAD`.
//!
//! Invariants: no panic; both refuse the same inputs and decode the rest
//! to the same bytes, with the allocating decoder and with the slice
//! decoder the validator uses for payloads and signatures (given a buffer
//! of a size chosen by the input: what does not fit is refused, never cut).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::fuzzing::{base64_agrees, base64_slice_agrees};

fuzz_target!(|data: &[u8]| {
    assert!(base64_agrees(data), "decoders disagree on {data:?}");
    if let Some((&capacity, rest)) = data.split_first() {
        let capacity = usize::from(capacity) * 4;
        assert!(
            base64_slice_agrees(rest, capacity),
            "the slice decoder with {capacity} bytes disagrees on {rest:?}"
        );
    }
});
