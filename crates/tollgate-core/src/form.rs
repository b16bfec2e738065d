//! `application/x-www-form-urlencoded` bodies and query strings, parsed
//! strictly and in linear time: the OAuth endpoints' bodies and the
//! revocation feed's query come from anyone, before (or while)
//! authenticating them.
//!
//! Rules: `+` is a space, `%XX` escapes must be complete and the result
//! valid UTF-8, every name appears once (RFC 6749 §3.2), an empty value
//! counts as absent (RFC 6749 §3.1), and at most [`MAX_PARAMETERS`]
//! parameters (empty-valued ones included) are read: past that the input is
//! refused before the rest of it is looked at (issue 15, item 1: 17 000
//! empty names in a 64 KiB body used to cost ~290 ms of pairwise
//! comparisons).
//!
//! **Invariant:** the work is linear in the input: each byte is decoded
//! once, and a repeated name is found with one hash-set lookup per
//! parameter (the tests count every byte compared).

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use crate::Error;

/// Most parameters a form or query may hold. An OAuth request has fewer
/// than ten; 64 leaves room for extensions.
pub const MAX_PARAMETERS: usize = 64;

/// The parameters of `body` in order, empty-valued ones left out.
///
/// Errors: [`Error::MalformedForm`] (a broken `%`-escape, text that is not
/// UTF-8, more than [`MAX_PARAMETERS`] parameters) and
/// [`Error::RepeatedParameter`] (its `at` is the byte offset of the second
/// occurrence's name in `body`, so that a caller can name it with
/// [`name_at`] without the error carrying request text).
pub fn parse(body: &[u8]) -> Result<Vec<(String, String)>, Error> {
    parse_names(body, None)
}

/// [`parse`] for an input that may hold only the parameters named in
/// `known` (an operator API's query, say): any other name, even with an
/// empty value, is [`Error::UnknownParameter`], whose `at` is the byte
/// offset of that name in `body` (name it with [`name_at`]).
pub fn parse_known(body: &[u8], known: &[&str]) -> Result<Vec<(String, String)>, Error> {
    parse_names(body, Some(known))
}

fn parse_names(body: &[u8], known: Option<&[&str]>) -> Result<Vec<(String, String)>, Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut seen: HashSet<Name> = HashSet::new();
    let mut start = 0;
    for pair in body.split(|b| *b == b'&') {
        let at = start;
        start += pair.len() + 1;
        if pair.is_empty() {
            continue;
        }
        if seen.len() == MAX_PARAMETERS {
            return Err(Error::MalformedForm("more than 64 parameters"));
        }
        let (name, value) = split_pair(pair);
        let name = decode(name)?;
        let value = decode(value)?;
        if known.is_some_and(|known| !known.contains(&name.as_str())) {
            return Err(Error::UnknownParameter { at });
        }
        if !seen.insert(Name(name.clone())) {
            return Err(Error::RepeatedParameter { at });
        }
        // An empty value counts as absent, but its name is remembered
        // (in `seen`) so that a later duplicate is still caught.
        if !value.is_empty() {
            out.push((name, value));
        }
    }
    Ok(out)
}

/// `name` if it is safe to echo in an error message (at most 32 ASCII
/// letters, digits or `_`), else `"?"`: a refusal may name the parameter
/// it refuses without reflecting arbitrary request text.
pub fn printable(name: &str) -> &str {
    if name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        name
    } else {
        "?"
    }
}

/// The decoded name of the parameter starting at byte `at` of `body`
/// (the offset [`Error::RepeatedParameter`] carries), if it decodes.
pub fn name_at(body: &[u8], at: usize) -> Option<String> {
    let rest = body.get(at..)?;
    let pair = rest.split(|b| *b == b'&').next()?;
    decode(split_pair(pair).0).ok()
}

fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    match pair.iter().position(|b| *b == b'=') {
        Some(at) => (&pair[..at], &pair[at + 1..]),
        None => (pair, &b""[..]),
    }
}

/// Decodes one form-urlencoded component (`+` is a space, `%XX` escapes).
pub fn decode(raw: &[u8]) -> Result<String, Error> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| Some((hex_value(h[0])? << 4) | hex_value(h[1])?))
                    .ok_or(Error::MalformedForm("a %-escape is broken"))?;
                bytes.push(hex);
                i += 2;
            }
            b => bytes.push(b),
        }
        i += 1;
    }
    #[cfg(test)]
    work::add(raw.len());
    String::from_utf8(bytes).map_err(|_| Error::MalformedForm("the text is not UTF-8"))
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

/// A parameter name in the set of names seen. Its `Eq` counts the bytes it
/// compares in tests, so the linear-time property can be checked by
/// counting work rather than timing it.
#[derive(Debug)]
struct Name(String);

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        #[cfg(test)]
        work::add(self.0.len().min(other.0.len()).max(1));
        self.0 == other.0
    }
}

impl Eq for Name {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// Work done by the parser on this thread, in bytes decoded or compared
/// (tests only).
#[cfg(test)]
mod work {
    use std::cell::Cell;

    thread_local! {
        static UNITS: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn add(units: usize) {
        UNITS.with(|u| u.set(u.get() + units));
    }

    pub(super) fn take() -> usize {
        UNITS.with(|u| u.replace(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn forms_parse_strictly() {
        assert_eq!(
            parse(b"grant_type=refresh_token&scope=a+b%20c&empty=&x").unwrap(),
            pairs(&[("grant_type", "refresh_token"), ("scope", "a b c")])
        );
        assert_eq!(parse(b"").unwrap(), []);
        assert_eq!(parse(b"&&a=1&&").unwrap(), pairs(&[("a", "1")]));
        assert_eq!(
            parse(b"caf%C3%A9=%E2%9C%93").unwrap(),
            pairs(&[("café", "✓")])
        );
        for bad in [
            &b"a=%zz"[..],
            b"a=%4",
            b"a=%",
            b"a=%+1",
            b"a=%ff%fe",
            b"a=\xff",
            b"%C3=1",
        ] {
            assert!(
                matches!(parse(bad), Err(Error::MalformedForm(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_repeated_name_is_refused_and_can_be_named() {
        let body = b"a=1&bb=2&a=3";
        assert_eq!(parse(body), Err(Error::RepeatedParameter { at: 9 }));
        assert_eq!(name_at(body, 9).as_deref(), Some("a"));
        // An empty value still counts as the name's one appearance.
        assert_eq!(parse(b"a=&a=2"), Err(Error::RepeatedParameter { at: 3 }));
        assert_eq!(parse(b"a&a"), Err(Error::RepeatedParameter { at: 2 }));
        // Names compare after decoding.
        assert_eq!(parse(b"a=1&%61=2"), Err(Error::RepeatedParameter { at: 4 }));
        assert_eq!(name_at(b"x", 5), None);
    }

    #[test]
    fn only_known_names_are_accepted_when_names_are_given() {
        let known = ["user", "sid"];
        assert_eq!(
            parse_known(b"user=ann&sid=", &known).unwrap(),
            pairs(&[("user", "ann")])
        );
        assert_eq!(parse_known(b"", &known).unwrap(), []);
        // An unknown name is refused even with no value (`parse` would
        // drop it), and can be named.
        for (body, at, name) in [
            (&b"force=1"[..], 0, "force"),
            (b"user=ann&force", 9, "force"),
            (b"user=ann&%75ser2=", 9, "user2"),
            (b"User=ann", 0, "User"),
        ] {
            assert_eq!(
                parse_known(body, &known),
                Err(Error::UnknownParameter { at }),
                "{body:?}"
            );
            assert_eq!(name_at(body, at).as_deref(), Some(name));
        }
        assert_eq!(
            parse_known(b"sid=a&sid=b", &known),
            Err(Error::RepeatedParameter { at: 6 })
        );
        assert!(matches!(
            parse_known(b"user=%zz", &known),
            Err(Error::MalformedForm(_))
        ));
    }

    #[test]
    fn only_plain_short_names_are_printable() {
        assert_eq!(printable("user_2"), "user_2");
        for bad in ["a b", "<script>", "é", "a%", &"n".repeat(33)] {
            assert_eq!(printable(bad), "?");
        }
    }

    #[test]
    fn at_most_max_parameters_are_read() {
        let names: Vec<String> = (0..MAX_PARAMETERS).map(|i| format!("p{i}")).collect();
        let body = names.join("&");
        assert_eq!(parse(body.as_bytes()).unwrap(), []);
        let over = format!("{body}&one_more=1");
        assert_eq!(
            parse(over.as_bytes()),
            Err(Error::MalformedForm("more than 64 parameters"))
        );
        // Issue 15: 17 000 empty names are refused at the 65th, having
        // decoded about 65 names' worth of the input and no more.
        let many: String = (0..17_000).map(|i| format!("{i:x}&")).collect();
        work::take();
        assert!(parse(many.as_bytes()).is_err());
        assert!(work::take() < 65 * 8, "the parser read past the limit");
    }

    /// Bodies of many distinct, repeated or empty names, and escapes.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let name = prop_oneof![
            "[a-c]{0,3}",
            "[a-z_]{1,40}",
            Just("grant_type".to_owned()),
            "%[0-9A-Fa-f]{2}",
        ];
        let value = prop_oneof![Just(String::new()), "[a-z0-9+%]{0,20}"];
        proptest::collection::vec((name, value, any::<bool>()), 0..400).prop_map(|pairs| {
            let mut out = Vec::new();
            for (name, value, with_value) in pairs {
                out.extend_from_slice(name.as_bytes());
                if with_value {
                    out.push(b'=');
                    out.extend_from_slice(value.as_bytes());
                }
                out.push(b'&');
            }
            out
        })
    }

    proptest! {
        /// Linear time, measured as work rather than time: the bytes the
        /// parser decodes plus the bytes it compares to find a repeated
        /// name are bounded by a constant per input byte, whatever the
        /// input (pairwise comparison did 17 000² / 2 of them).
        #[test]
        fn work_is_bounded_per_byte(body in body()) {
            work::take();
            let _ = parse(&body);
            let units = work::take();
            prop_assert!(units <= 2 * body.len() + 2, "{units} units of work for {} bytes", body.len());
        }

        /// The same, with parameters up to the limit and no duplicates: the
        /// worst case a valid input can reach.
        #[test]
        fn work_is_bounded_for_valid_forms(len in 1usize..400, count in 1usize..=MAX_PARAMETERS) {
            let body: String = (0..count)
                .map(|i| format!("{}{i}=v&", "n".repeat(len)))
                .collect();
            work::take();
            let parsed = parse(body.as_bytes()).unwrap();
            prop_assert_eq!(parsed.len(), count);
            prop_assert!(work::take() <= 2 * body.len() + 2);
        }

        /// Accepted forms: no name twice, no empty value, each pair written
        /// back (escaped) parses to the same pairs.
        #[test]
        fn accepted_forms_round_trip(body in body()) {
            if let Ok(parsed) = parse(&body) {
                let names: HashSet<&str> = parsed.iter().map(|(n, _)| n.as_str()).collect();
                prop_assert_eq!(names.len(), parsed.len());
                prop_assert!(parsed.iter().all(|(_, v)| !v.is_empty()));
                let written: Vec<String> = parsed
                    .iter()
                    .map(|(n, v)| format!("{}={}", escape(n), escape(v)))
                    .collect();
                prop_assert_eq!(parse(written.join("&").as_bytes()).unwrap(), parsed);
            }
        }
    }

    fn escape(text: &str) -> String {
        text.bytes().map(|b| format!("%{b:02X}")).collect()
    }
}
