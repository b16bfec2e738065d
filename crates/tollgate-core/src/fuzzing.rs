//! Entry points for the `cargo fuzz` targets in `fuzz/` (feature
//! `fuzzing`, off by default): the parsers of untrusted bytes that sit
//! behind a signature check in the public API, reachable here without one.
//!
//! Not an API: nothing outside `fuzz/` may use it, and enabling the feature
//! changes no behaviour, it only adds these functions.

use crate::Error;
use crate::claims::Claims;
use crate::jws::Header;

/// The strict JWS header parser on one base64url segment.
pub fn parse_header(segment: &[u8]) -> Result<Header, Error> {
    crate::jws::parse_header(segment)
}

/// The claims parser on a decoded payload (the fast reader, then
/// serde_json, then the shape rules), as the validator runs it after the
/// signature verified.
pub fn parse_claims(payload: &[u8]) -> Result<Claims, Error> {
    crate::claims::parse(payload)
}

/// The fast claims reader against serde_json on the same text: `None` when
/// the fast reader declines, otherwise whether serde_json read exactly the
/// same members. `Some(false)` is a bug.
pub fn compact_reader_agrees(text: &str) -> Option<bool> {
    crate::claims::compact_reader_agrees(text)
}

/// Whether a string holds a character the claims refuse (control
/// characters), by the rule minting and parsing share.
pub fn has_control(text: &str) -> bool {
    crate::claims::has_control(text)
}

/// The crate's base64url decoder against the `base64` crate's strict
/// `URL_SAFE_NO_PAD`: whether both refuse `input`, or both accept it with
/// the same bytes.
pub fn base64_agrees(input: &[u8]) -> bool {
    crate::encoding::b64_decode(input) == crate::encoding::reference_decode(input)
}

/// The slice decoder the validator uses for payloads and signatures
/// (into a buffer of `capacity` bytes) against the same reference: it
/// yields the reference's bytes when they fit, and refuses otherwise.
pub fn base64_slice_agrees(input: &[u8], capacity: usize) -> bool {
    let mut out = vec![0u8; capacity];
    let sliced = crate::encoding::b64_decode_slice(input, &mut out).map(|n| out[..n].to_vec());
    match crate::encoding::reference_decode(input) {
        Some(bytes) if bytes.len() <= capacity => sliced == Some(bytes),
        _ => sliced.is_none(),
    }
}
