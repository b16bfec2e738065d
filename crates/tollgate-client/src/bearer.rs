//! Reading a bearer token from an `Authorization` header value (RFC 6750
//! §2.1). Framework-neutral: the axum glue and the WebSocket handshake both
//! use it.

use tollgate_core::MAX_TOKEN_BYTES;

use crate::AuthError;

/// The token of an `Authorization: Bearer <token>` header value. The scheme
/// is matched without regard to case; the token must be one `b64token`
/// (RFC 6750 §2.1: letters, digits, `-._~+/`, then `=` padding). A value
/// longer than any token Tollgate accepts is refused before anything else.
pub fn bearer_token(header_value: &[u8]) -> Result<&str, AuthError> {
    if header_value.len() > MAX_TOKEN_BYTES + 64 {
        return Err(AuthError::Token(tollgate_core::Error::TooLarge));
    }
    let text = std::str::from_utf8(header_value).map_err(|_| AuthError::InvalidAuthorization)?;
    let (scheme, rest) = text
        .split_once(' ')
        .ok_or(AuthError::InvalidAuthorization)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = rest.trim_start_matches(' ');
    let body = token.trim_end_matches('=');
    let is_b64token = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if !is_b64token {
        return Err(AuthError::InvalidAuthorization);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer_token(b"Bearer a.b.c").unwrap(), "a.b.c");
        assert_eq!(bearer_token(b"bearer  a.b.c").unwrap(), "a.b.c");
        assert_eq!(bearer_token(b"BEARER tgr_x==").unwrap(), "tgr_x==");
        assert_eq!(
            bearer_token(b"Basic abc").unwrap_err(),
            AuthError::MissingToken
        );
        for bad in [
            &b"Bearer"[..],
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a\tb",
            b"Bearer \xff",
            b"Bearer =",
        ] {
            assert_eq!(
                bearer_token(bad).unwrap_err(),
                AuthError::InvalidAuthorization,
                "{bad:?}"
            );
        }
        let huge = format!("Bearer {}", "a".repeat(20_000));
        assert_eq!(
            bearer_token(huge.as_bytes()).unwrap_err().code(),
            "token_too_large"
        );
    }
}
