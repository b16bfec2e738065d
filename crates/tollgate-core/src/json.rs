//! [`Checked`]: like serde's `IgnoredAny`, skips a JSON value, but reads
//! every string in it (member names included), so that the parser checks
//! it: valid UTF-8, and no lone surrogate escape (`"\ud800"`).
//!
//! serde_json skips the strings of an ignored value without decoding them,
//! so a header or claims member nobody reads could otherwise carry what no
//! JSON text may (RFC 8259 §8.1, RFC 7493 §2.1). Tollgate refuses such a
//! token as malformed, whichever member holds it (SECURITY.md D32).
//!
//! [`UniqueMembers`] reads a claims object the same way and also refuses a
//! member named twice (even one nobody reads) and anything but an object.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

use crate::jws::CowStr;

/// A JSON value that was read completely and thrown away.
pub(crate) struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// A JSON object read completely like [`Checked`], in which no member
/// name is given twice (RFC 7519 §4, RFC 7515 §4: a name given twice is
/// refused, whether or not anyone reads that member). Anything but an
/// object is refused too. Names inside nested values are not compared:
/// they are not claim or header names.
pub(crate) struct UniqueMembers;

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(UniqueMembersVisitor)
    }
}

struct UniqueMembersVisitor;

impl<'de> Visitor<'de> for UniqueMembersVisitor {
    type Value = UniqueMembers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object naming each member once")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMembers, A::Error> {
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(name) = map.next_key::<CowStr<'de>>()? {
            map.next_value::<Checked>()?;
            if !seen.insert(name.0) {
                return Err(de::Error::custom("a member is named twice"));
            }
        }
        Ok(UniqueMembers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_is_read() {
        for ok in [
            r#"{"a":[1,"b",{"c":null}],"é":"\ud83d\ude00"}"#,
            "1.5e3",
            "[]",
        ] {
            assert!(serde_json::from_str::<Checked>(ok).is_ok(), "{ok}");
        }
        for bad in [
            r#"{"a":"\ud800"}"#,
            r#"{"\udfff":1}"#,
            r#"[["\ud800x"]]"#,
            r#"{"a":{"b":"\udc00\ud800"}}"#,
        ] {
            assert!(serde_json::from_str::<Checked>(bad).is_err(), "{bad}");
            // What serde's own IgnoredAny lets through.
            assert!(serde_json::from_str::<de::IgnoredAny>(bad).is_ok(), "{bad}");
        }
    }

    #[test]
    fn unique_members_are_an_object_naming_each_member_once() {
        for ok in [
            r#"{}"#,
            r#"{"a":1,"b":{"a":1,"a":2}}"#,
            r#"{"a":"x","A":1}"#,
        ] {
            assert!(serde_json::from_str::<UniqueMembers>(ok).is_ok(), "{ok}");
        }
        for bad in [
            r#"{"a":1,"a":1}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"a":"\ud800"}"#,
            r#"["a"]"#,
            "1",
        ] {
            assert!(serde_json::from_str::<UniqueMembers>(bad).is_err(), "{bad}");
        }
    }
}
