//! `tollgate_core::form::parse`: the OAuth endpoints' form bodies and the
//! revocation feed's query strings, read from anyone.
//!
//! Invariants: no panic; an accepted form has at most `MAX_PARAMETERS`
//! pairs, no name twice and no empty value, and agrees with a reference
//! reading written here without the core's code (split on `&` and `=`,
//! `+` a space, `%XX` by hand); a refusal for a repeated name points at a
//! parameter whose name really did appear before; the parser's work is
//! bounded: inputs up to the body limit parse (or fail) without reading
//! past the 65th parameter.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use tollgate_core::Error;
use tollgate_core::form::{MAX_PARAMETERS, name_at, parse};

/// The reference: `None` where the rules refuse.
fn reference(body: &[u8]) -> Option<Vec<(String, String)>> {
    fn decode(raw: &[u8]) -> Option<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            match raw[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = raw.get(i + 1..i + 3)?;
                    let text = std::str::from_utf8(hex).ok()?;
                    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return None;
                    }
                    out.push(u8::from_str_radix(text, 16).ok()?);
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).ok()
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut parts = pair.splitn(2, |b| *b == b'=');
        let name = decode(parts.next().unwrap_or_default())?;
        let value = decode(parts.next().unwrap_or_default())?;
        if !seen.insert(name.clone()) {
            return None;
        }
        if !value.is_empty() {
            out.push((name, value));
        }
    }
    (seen.len() <= MAX_PARAMETERS).then_some(out)
}

fuzz_target!(|body: &[u8]| {
    let parsed = parse(body);
    let expected = reference(body);
    match &parsed {
        Ok(pairs) => {
            assert!(pairs.len() <= MAX_PARAMETERS);
            let names: HashSet<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names.len(), pairs.len(), "a name twice");
            assert!(pairs.iter().all(|(_, v)| !v.is_empty()));
            assert_eq!(Some(pairs), expected.as_ref(), "differs from the reference");
        }
        Err(Error::RepeatedParameter { at }) => {
            assert!(expected.is_none());
            let name = name_at(body, *at).expect("the repeated name decodes");
            let before = &body[..*at];
            assert!(
                before
                    .split(|b| *b == b'&')
                    .filter_map(|p| name_at(p, 0))
                    .any(|n| n == name),
                "the repeated name did not appear before"
            );
        }
        Err(Error::MalformedForm(_)) => assert!(expected.is_none(), "a valid form refused"),
        Err(other) => panic!("unexpected error {other:?}"),
    }
});
