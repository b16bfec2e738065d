//! The JWS protected-header parser (`tollgate_core::fuzzing::parse_header`).
//!
//! The input is tried twice: as the base64url segment itself, and as the
//! JSON text inside a segment (encoded here, so that mutations work on the
//! JSON). Invariants: no panic, and a header the parser accepts is, by a
//! reference written without the core, strict base64url of UTF-8 JSON: an
//! object naming no member twice, with a string `alg` equal to the parsed
//! one, `kid` and `typ` equal when present, and none of the refused
//! members (`jku`, `x5u`, `jwk`, `x5c`, `crit`, …).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::fuzzing::parse_header;
use tollgate_core::jws::Header;
use tollgate_fuzz::{
    FORBIDDEN_HEADER_MEMBERS, b64, object_without_duplicate_members, reference_b64_decode,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = parse_header(data) {
        let json = reference_b64_decode(data).expect("an accepted segment is strict base64url");
        check(&json, &header);
        // The same header re-encoded parses the same way.
        assert_eq!(parse_header(b64(&json).as_bytes()), Ok(header));
    }
    if let Ok(header) = parse_header(b64(data).as_bytes()) {
        check(data, &header);
    }
});

fn check(json: &[u8], header: &Header) {
    let text = std::str::from_utf8(json).expect("an accepted header is UTF-8");
    assert!(
        object_without_duplicate_members(text),
        "an accepted header names a member twice: {text:?}"
    );
    let value: serde_json::Value = serde_json::from_str(text).expect("an accepted header is JSON");
    let object = value.as_object().expect("an accepted header is an object");
    let string = |name: &str| {
        object
            .get(name)
            .map(|v| v.as_str().expect("a string member"))
    };
    assert_eq!(string("alg"), Some(header.alg.as_str()));
    assert_eq!(string("kid"), header.kid.as_deref());
    assert_eq!(string("typ"), header.typ.as_deref());
    for name in FORBIDDEN_HEADER_MEMBERS {
        assert!(
            !object.contains_key(*name),
            "accepted a header with {name}: {text:?}"
        );
    }
}
