//! Strict base64url (RFC 7515 §2: no padding, URL alphabet, zero trailing
//! bits). One engine for the whole crate so that every token byte is decoded
//! the same way.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Decodes strict base64url; `None` on padding, the standard alphabet,
/// whitespace or non-zero trailing bits.
pub(crate) fn b64_decode(input: &[u8]) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(input).ok()
}

/// Decodes strict base64url into `out`, returning the used length.
pub(crate) fn b64_decode_into(input: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    URL_SAFE_NO_PAD.decode_vec(input, out).ok()
}

/// Decodes strict base64url into `out`, returning the decoded length;
/// `None` when the input is not strict base64url *or* does not fit.
pub(crate) fn b64_decode_slice(input: &[u8], out: &mut [u8]) -> Option<usize> {
    URL_SAFE_NO_PAD.decode_slice(input, out).ok()
}

/// Encodes as base64url without padding.
pub(crate) fn b64_encode(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

/// Appends base64url of `input` to `out`.
pub(crate) fn b64_encode_into(input: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(input, out);
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
}
