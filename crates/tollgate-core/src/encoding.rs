//! Strict base64url (RFC 7515 §2: no padding, URL alphabet, zero trailing
//! bits). One decoder for the whole crate so that every token byte is
//! decoded the same way.
//!
//! Decoding uses `base64-simd`: every validation decodes the whole payload,
//! and the `base64` crate's scalar loop was the largest cost of an HS256
//! validation after the HMAC itself (BENCHMARKS.md). Both refuse padding,
//! the standard alphabet, whitespace and non-zero trailing bits; a unit
//! property here and the `base64` and `claims` fuzz targets compare them.
//! Encoding (never of untrusted input) stays with the `base64` crate.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64_simd::{Out, URL_SAFE_NO_PAD as DECODER};

/// Decodes strict base64url; `None` on padding, the standard alphabet,
/// whitespace or non-zero trailing bits.
pub(crate) fn b64_decode(input: &[u8]) -> Option<Vec<u8>> {
    DECODER.decode_to_vec(input).ok()
}

/// Decodes strict base64url into `out`, returning the decoded length;
/// `None` when the input is not strict base64url *or* does not fit.
pub(crate) fn b64_decode_slice(input: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = DECODER.decoded_length(input).ok()?;
    let decoded = DECODER
        .decode(input, Out::from_slice(out.get_mut(..len)?))
        .ok()?;
    Some(decoded.len())
}

/// Encodes as base64url without padding.
pub(crate) fn b64_encode(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

/// Appends base64url of `input` to `out`.
pub(crate) fn b64_encode_into(input: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(input, out);
}

/// The `base64` crate's strict decoder: the reference the decoder above is
/// compared with (unit property, fuzz target).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn reference_decode(input: &[u8]) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(input).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_canonical_forms() {
        assert_eq!(b64_decode(b"YQ").as_deref(), Some(&b"a"[..]));
        for bad in [&b"YQ=="[..], b"YR", b"Y Q", b"YQ\n", b"+/8", b"a"] {
            assert!(
                b64_decode(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(b64_decode(b"-_8").as_deref(), Some(&[0xfb, 0xff][..]));
    }

    #[test]
    fn every_bad_byte_at_every_position_is_judged_like_the_base64_crate() {
        let good = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVpBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWg";
        for len in [good.len(), good.len() - 1, good.len() - 2, 2, 3, 4] {
            let good = &good[..len];
            for at in 0..good.len() {
                for byte in 0..=255u8 {
                    let mut bad = good.to_vec();
                    bad[at] = byte;
                    assert_eq!(
                        b64_decode(&bad),
                        reference_decode(&bad),
                        "{byte:#x} at {at}"
                    );
                    let mut out = [0u8; 128];
                    let sliced = b64_decode_slice(&bad, &mut out).map(|n| out[..n].to_vec());
                    assert_eq!(sliced, reference_decode(&bad), "{byte:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn the_slice_decoder_refuses_what_does_not_fit() {
        let mut out = [0u8; 2];
        assert_eq!(b64_decode_slice(b"YWI", &mut out), Some(2));
        assert_eq!(&out, b"ab");
        assert_eq!(b64_decode_slice(b"YWJj", &mut out), None);
        assert_eq!(b64_decode_slice(b"YW=", &mut out), None);
    }

    proptest::proptest! {
        /// Same acceptance and bytes as the `base64` crate's strict
        /// URL_SAFE_NO_PAD, on any input from a confusable alphabet.
        #[test]
        fn agrees_with_the_base64_crate(input in proptest::collection::vec(
            proptest::sample::select(b"AQgw-_=+/ Z9a.\n\xff\0".to_vec()), 0..80,
        )) {
            proptest::prop_assert_eq!(b64_decode(&input), reference_decode(&input));
        }

        /// And on encodings of any bytes with every possible last character
        /// (so every trailing-bit pattern).
        #[test]
        fn agrees_on_encodings(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
            last in 0..64usize,
        ) {
            let mut encoded = b64_encode(&bytes).into_bytes();
            if let Some(ch) = encoded.last_mut() {
                *ch = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last];
            }
            proptest::prop_assert_eq!(b64_decode(&encoded), reference_decode(&encoded));
        }
    }
}
