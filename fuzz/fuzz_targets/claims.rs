//! The claims parser (`tollgate_core::fuzzing::parse_claims`: the fast
//! compact reader, then serde_json, then the shape rules), on the decoded
//! payload as the validator hands it over after the signature verified.
//!
//! Invariants: no panic; the fast reader, whenever it accepts a text,
//! reads exactly the members serde_json reads (`compact_reader_agrees`
//! never `Some(false)`); the control-character rule agrees with
//! `char::is_control`; the base64url decoder agrees with the `base64`
//! crate on the same bytes; accepted claims are what a reference reading
//! with `serde_json::Value` finds, obey the shape rules, and serialize
//! (as the minter writes them) to a text that parses back to the same
//! claims.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::fuzzing::{base64_agrees, compact_reader_agrees, has_control, parse_claims};
use tollgate_fuzz::assert_claims_match_json;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_claims(data);
    if let Ok(text) = std::str::from_utf8(data) {
        assert_ne!(
            compact_reader_agrees(text),
            Some(false),
            "the compact reader and serde_json disagree on {text:?}"
        );
        assert_eq!(has_control(text), text.chars().any(char::is_control));
    }
    assert!(
        base64_agrees(data),
        "base64url decoders disagree on {data:?}"
    );
    if let Ok(claims) = parsed {
        assert_claims_match_json(data, &claims);
        let written = serde_json::to_vec(&claims).expect("claims serialize");
        assert_eq!(
            parse_claims(&written),
            Ok(claims),
            "claims do not survive being written and read again"
        );
    }
});
