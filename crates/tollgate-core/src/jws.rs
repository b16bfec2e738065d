//! Compact JWS (RFC 7515 §7.1): splitting, the protected header, signing and
//! signature verification with one known key.
//!
//! This is the layer under [`crate::validate`]; it knows nothing of claims.
//! Cheap structural checks come first (size, segment count, empty
//! signature), the header is parsed strictly, and the payload is decoded
//! only after its signature has verified.
//!
//! Header rules: `alg` must be a string; members that let a token pick its
//! own key or change how it is read (`jku`, `x5u`, `jwk`, `x5c`, `x5t`,
//! `x5t#S256`, `cty`, `b64`, `zip` and the JWE members) are refused with
//! [`Error::HeaderNotAllowed`]; any `crit` is refused with
//! [`Error::CriticalHeader`]; a member named twice is malformed. Other
//! unknown members are ignored, as RFC 7515 §4 asks.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use crate::json::Checked;

use crate::encoding::{b64_decode, b64_encode_into};
use crate::keys::{Algorithm, SigningKey, VerifyingKey};
use crate::{Error, MAX_TOKEN_BYTES};

/// The three base64url segments of a compact JWS, borrowed from the token.
/// Its `Debug` shows lengths only: the segments are a bearer token.
#[derive(Clone, Copy)]
pub(crate) struct Parts<'a> {
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a [u8],
    pub header: &'a [u8],
    pub payload: &'a [u8],
    pub signature: &'a [u8],
}

impl fmt::Debug for Parts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parts")
            .field("header_len", &self.header.len())
            .field("payload_len", &self.payload.len())
            .field("signature_len", &self.signature.len())
            .finish()
    }
}

/// Splits a compact JWS after the size check: exactly three segments, none
/// empty. Five segments (a JWE) and the JSON serialization fail here,
/// before anything is decoded.
pub(crate) fn split(token: &str) -> Result<Parts<'_>, Error> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Error::TooLarge);
    }
    // This scan is on every validation's path: the memchr crate's SIMD
    // search, rather than `str::find`'s word-at-a-time one.
    let token = token.as_bytes();
    let segments = memchr::memchr(b'.', token).and_then(|first| {
        let second = first + 1 + memchr::memchr(b'.', &token[first + 1..])?;
        memchr::memchr(b'.', &token[second + 1..])
            .is_none()
            .then_some((first, second))
    });
    let Some((first, second)) = segments else {
        return Err(Error::Malformed(
            "a token has exactly three dot-separated parts",
        ));
    };
    let header = &token[..first];
    let payload = &token[first + 1..second];
    let signature = &token[second + 1..];
    if header.is_empty() || payload.is_empty() {
        return Err(Error::Malformed("the header or payload is empty"));
    }
    if signature.is_empty() {
        return Err(Error::Malformed("the signature is empty"));
    }
    Ok(Parts {
        signing_input: &token[..second],
        header,
        payload,
        signature,
    })
}

/// A parsed protected header: only the members Tollgate reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The `alg` string exactly as sent (after JSON unescaping).
    pub alg: String,
    /// The `kid`, if any.
    pub kid: Option<String>,
    /// The `typ`, if any.
    pub typ: Option<String>,
}

/// Parses a base64url header segment under the rules in the module docs.
pub(crate) fn parse_header(segment: &[u8]) -> Result<Header, Error> {
    let bytes = b64_decode(segment).ok_or(Error::Malformed("the header is not base64url"))?;
    // UTF-8 is checked first, over the whole header: serde_json checks the
    // strings it reads, but skips the ones of ignored members unchecked,
    // and an invalid byte there is still not a JOSE header (RFC 7515 §4).
    let text =
        std::str::from_utf8(&bytes).map_err(|_| Error::Malformed("the header is not UTF-8"))?;
    let raw: RawHeader = serde_json::from_str(text)
        .map_err(|_| Error::Malformed("the header is not a JSON object"))?;
    if raw.duplicate {
        return Err(Error::Malformed("the header names a member twice"));
    }
    if let Some(name) = raw.forbidden {
        return Err(Error::HeaderNotAllowed(name));
    }
    if raw.crit {
        return Err(Error::CriticalHeader);
    }
    let alg = match raw.alg {
        Some(Field::Str(alg)) => alg,
        Some(Field::Other) | None => return Err(Error::AlgorithmNotAllowed),
    };
    let string = |field: Option<Field>, what| match field {
        None => Ok(None),
        Some(Field::Str(s)) => Ok(Some(s)),
        Some(Field::Other) => Err(Error::Malformed(what)),
    };
    Ok(Header {
        alg,
        kid: string(raw.kid, "the header's kid is not a string")?,
        typ: string(raw.typ, "the header's typ is not a string")?,
    })
}

/// Header members that are refused outright, with the name reported.
const FORBIDDEN: &[&str] = &[
    "jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "cty", "b64", "zip", "enc", "epk", "apu", "apv",
    "iv", "tag", "p2s", "p2c",
];

#[derive(Default)]
struct RawHeader {
    alg: Option<Field>,
    kid: Option<Field>,
    typ: Option<Field>,
    forbidden: Option<&'static str>,
    crit: bool,
    duplicate: bool,
}

/// A header value: a string, or anything else (kept only as "not a string").
enum Field {
    Str(String),
    Other,
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RawHeaderVisitor)
    }
}

struct RawHeaderVisitor;

impl<'de> Visitor<'de> for RawHeaderVisitor {
    type Value = RawHeader;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
        let mut raw = RawHeader::default();
        let mut seen_other: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let key = key.0;
            let slot = match key.as_ref() {
                "alg" => &mut raw.alg,
                "kid" => &mut raw.kid,
                "typ" => &mut raw.typ,
                name => {
                    map.next_value::<Checked>()?;
                    if seen_other.iter().any(|k| k == name) {
                        raw.duplicate = true;
                    }
                    if name == "crit" {
                        raw.crit = true;
                    } else if let Some(f) = FORBIDDEN.iter().find(|f| **f == name) {
                        raw.forbidden.get_or_insert(f);
                    }
                    seen_other.push(key);
                    continue;
                }
            };
            let value = map.next_value::<FieldValue>()?.0;
            if slot.replace(value).is_some() {
                raw.duplicate = true;
            }
        }
        Ok(raw)
    }
}

struct FieldValue(Field);

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue, E> {
                Ok(FieldValue(Field::Str(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<FieldValue, E> {
                Ok(FieldValue(Field::Str(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<FieldValue, E> {
                Ok(FieldValue(Field::Other))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<FieldValue, E> {
                Ok(FieldValue(Field::Other))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<FieldValue, E> {
                Ok(FieldValue(Field::Other))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<FieldValue, E> {
                Ok(FieldValue(Field::Other))
            }
            fn visit_unit<E: de::Error>(self) -> Result<FieldValue, E> {
                Ok(FieldValue(Field::Other))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<FieldValue, A::Error> {
                while seq.next_element::<Checked>()?.is_some() {}
                Ok(FieldValue(Field::Other))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldValue, A::Error> {
                while map.next_entry::<Checked, Checked>()?.is_some() {}
                Ok(FieldValue(Field::Other))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string borrowed from the input when it has no escapes.
#[cfg_attr(any(test, feature = "fuzzing"), derive(Debug, PartialEq))]
pub(crate) struct CowStr<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Signs `payload` as a compact JWS with header `{"alg","kid","typ"}`.
pub fn sign(key: &SigningKey, typ: &str, payload: &[u8]) -> Result<String, Error> {
    let header = header_segment(key.alg(), key.kid(), typ)?;
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
    token.push_str(&header);
    token.push('.');
    b64_encode_into(payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    b64_encode_into(&signature, &mut token);
    Ok(token)
}

/// The header segment [`sign`] writes: base64url of
/// `{"alg":…,"kid":…,"typ":…}`, members in that order, no whitespace. The
/// validator recognises these exact bytes to skip parsing a header Tollgate
/// wrote itself (same bytes, same parse).
pub(crate) fn header_segment(alg: Algorithm, kid: &str, typ: &str) -> Result<String, Error> {
    let header = serde_json::json!({ "alg": alg.as_str(), "kid": kid, "typ": typ });
    let header = serde_json::to_vec(&header).map_err(|_| Error::Signing)?;
    Ok(crate::encoding::b64_encode(&header))
}

/// Verifies a compact JWS against one known key and returns its header and
/// payload bytes. The header's `alg` must be exactly the key's algorithm, and
/// a `kid`, when present, must be the key's. Checks no claims and no `typ`:
/// access tokens go through [`crate::Validator`], which adds those.
pub fn verify(token: &str, key: &VerifyingKey) -> Result<(Header, Vec<u8>), Error> {
    let parts = split(token)?;
    let header = parse_header(parts.header)?;
    if header.kid.as_deref().is_some_and(|kid| kid != key.kid()) {
        return Err(Error::UnknownKey);
    }
    check_signature(&parts, &header, key)?;
    let payload =
        b64_decode(parts.payload).ok_or(Error::Malformed("the payload is not base64url"))?;
    Ok((header, payload))
}

/// The signature check shared by [`verify`] and the validator: the header's
/// `alg` must name exactly the key's algorithm.
pub(crate) fn check_signature(
    parts: &Parts<'_>,
    header: &Header,
    key: &VerifyingKey,
) -> Result<(), Error> {
    if Algorithm::from_name(&header.alg) != Some(key.alg()) {
        return Err(Error::AlgorithmNotAllowed);
    }
    check_key_signature(parts, key)
}

/// The signature check alone, once the caller has established that the
/// token's `alg` is the key's.
pub(crate) fn check_key_signature(parts: &Parts<'_>, key: &VerifyingKey) -> Result<(), Error> {
    // Every signature Tollgate verifies (up to RSA-4096) fits on the stack;
    // longer ones are decoded on the heap so that they fail exactly as
    // before (malformed if not base64url, a bad signature otherwise).
    let mut stack = [0u8; 512];
    let heap;
    let signature = match crate::encoding::b64_decode_slice(parts.signature, &mut stack) {
        Some(len) => &stack[..len],
        None => {
            heap = b64_decode(parts.signature)
                .ok_or(Error::Malformed("the signature is not base64url"))?;
            &heap[..]
        }
    };
    if key.verify(parts.signing_input, signature) {
        Ok(())
    } else {
        Err(Error::BadSignature)
    }
}

/// Reading a token without trusting it: for `tollgate token inspect` to show
/// what a token claims while explaining why it is or is not valid. Never use
/// what these functions return to make a decision.
pub mod dangerous {
    use super::*;

    /// The header and payload JSON of a token, unverified. `None` when the
    /// token is not three base64url segments.
    pub fn insecure_decode(token: &str) -> Option<(serde_json::Value, serde_json::Value)> {
        let parts = split(token).ok()?;
        let header = serde_json::from_slice(&b64_decode(parts.header)?).ok()?;
        let payload = serde_json::from_slice(&b64_decode(parts.payload)?).ok()?;
        Some((header, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::b64_encode;

    fn header(json: &str) -> Result<Header, Error> {
        parse_header(b64_encode(json.as_bytes()).as_bytes())
    }

    #[test]
    fn split_wants_three_non_empty_segments() {
        let parts = split("ab.cd.e").unwrap();
        assert_eq!(
            (parts.header, parts.payload, parts.signature),
            (&b"ab"[..], &b"cd"[..], &b"e"[..])
        );
        assert_eq!(parts.signing_input, b"ab.cd");
        for bad in [
            "a.b",
            "a.b.",
            ".b.c",
            "a..c",
            "a.b.c.d",
            "a.b.c.d.e",
            "abc",
            "",
            "..",
            "a.b.c.",
        ] {
            assert_eq!(split(bad).unwrap_err().code(), "malformed", "{bad:?}");
        }
        assert_eq!(
            split(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err(),
            Error::TooLarge
        );
    }

    #[test]
    fn header_rules() {
        let ok = header(r#"{"alg":"EdDSA","kid":"k","typ":"at+jwt","x-unknown":1}"#).unwrap();
        assert_eq!(ok.alg, "EdDSA");
        let check = |json: &str, code: &str| {
            assert_eq!(header(json).unwrap_err().code(), code, "{json}");
        };
        check(r#"{"alg":"EdDSA","alg":"none"}"#, "malformed");
        check(r#"{"alg":"EdDSA","kid":"a","kid":"b"}"#, "malformed");
        check(r#"{"alg":"EdDSA","x":1,"x":2}"#, "malformed");
        check(
            r#"{"alg":"EdDSA","jku":"http://127.0.0.1/"}"#,
            "header_not_allowed",
        );
        check(
            r#"{"alg":"EdDSA","x5u":"http://127.0.0.1/"}"#,
            "header_not_allowed",
        );
        check(
            r#"{"alg":"EdDSA","jwk":{"kty":"OKP"}}"#,
            "header_not_allowed",
        );
        check(r#"{"alg":"EdDSA","x5c":["MIIB"]}"#, "header_not_allowed");
        check(r#"{"alg":"EdDSA","cty":"JWT"}"#, "header_not_allowed");
        check(r#"{"alg":"EdDSA","zip":"DEF"}"#, "header_not_allowed");
        check(
            r#"{"alg":"EdDSA","crit":["exp"]}"#,
            "unsupported_critical_header",
        );
        check(
            r#"{"alg":"EdDSA","crit":[]}"#,
            "unsupported_critical_header",
        );
        check(
            r#"{"alg":"EdDSA","crit":"x"}"#,
            "unsupported_critical_header",
        );
        check(r#"{"alg":1}"#, "algorithm_not_allowed");
        check(r#"{"alg":null}"#, "algorithm_not_allowed");
        check(r#"{"alg":["EdDSA"]}"#, "algorithm_not_allowed");
        check(r#"{"alg":{"a":1}}"#, "algorithm_not_allowed");
        check(r#"{"kid":"k"}"#, "algorithm_not_allowed");
        check(r#"{"alg":"EdDSA","kid":7}"#, "malformed");
        check(r#"["alg"]"#, "malformed");
        check(r#"{"alg":"EdDSA"} x"#, "malformed");
        check("\u{feff}{\"alg\":\"EdDSA\"}", "malformed");
        // Fuzzing found (fuzz/artifacts, jws_header): invalid UTF-8 inside
        // a member the parser ignores was accepted, because serde_json
        // skips ignored strings without checking them.
        let raw = b"{\"ty0\":\"appliO5Bp5Nm1j\xc2YQrM2PVn8XpIJCE\",\"alg\":\"RS256\",\"x\":0}";
        assert_eq!(
            parse_header(crate::encoding::b64_encode(raw).as_bytes()).unwrap_err(),
            Error::Malformed("the header is not UTF-8")
        );
        for text in [
            r#"{"alg":"EdDSA","x":"\ud800"}"#,
            r#"{"alg":"EdDSA","x":["\udfff"]}"#,
        ] {
            assert_eq!(header(text).unwrap_err().code(), "malformed", "{text}");
        }
        // JSON escapes are decoded before comparison: "\u0045S256" is "ES256".
        assert_eq!(header(r#"{"alg":"\u0045S256"}"#).unwrap().alg, "ES256");
    }
}
