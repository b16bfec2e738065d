//! Parsing untrusted text into typed values, once, at the edge: e-mail
//! addresses, role and scope names, client ids, and
//! `application/x-www-form-urlencoded` bodies.
//!
//! Everything here is pure and refuses rather than repairs: a value that
//! does not parse is a 4xx, never something "cleaned up" into a different
//! value that then gets stored.

use std::borrow::Cow;

use crate::ApiError;

/// An e-mail address in its normal form (NFKC, lower-cased), or
/// `invalid_email` for look-alikes, invisible characters and anything that
/// is not one `@` before a host-shaped domain: see [`tollgate_core::email`].
/// Every place the server takes an address goes through here.
pub(crate) fn email(raw: &str) -> Result<String, ApiError> {
    tollgate_core::email::normalize(raw).map_err(|_| ApiError::InvalidEmail)
}

fn is_name(text: &str, max: usize, extra: &[char]) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-') || extra.contains(&c))
}

/// Role names: 1–32 of `[A-Za-z0-9_-]`, at most 16, duplicates dropped.
pub(crate) fn roles(raw: Vec<String>) -> Result<Vec<String>, ApiError> {
    if raw.len() > 16 {
        return Err(ApiError::bad_request("at most 16 roles"));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for role in raw {
        if !is_name(&role, 32, &[]) {
            return Err(ApiError::bad_request(
                "a role name is 1 to 32 letters, digits, `_` or `-`",
            ));
        }
        if !out.contains(&role) {
            out.push(role);
        }
    }
    Ok(out)
}

/// Scope names: 1–64 of `[A-Za-z0-9_:./-]`, at most 32, duplicates dropped.
pub(crate) fn scopes(raw: Vec<String>) -> Result<Vec<String>, ApiError> {
    if raw.len() > 32 {
        return Err(ApiError::bad_request("at most 32 scopes"));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for scope in raw {
        if !is_scope(&scope) {
            return Err(ApiError::bad_request(
                "a scope is 1 to 64 letters, digits, `_`, `-`, `:`, `.` or `/`",
            ));
        }
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    Ok(out)
}

fn is_scope(scope: &str) -> bool {
    is_name(scope, 64, &[':', '.', '/'])
}

/// A requested `scope` parameter (space-separated, RFC 6749 §3.3).
pub(crate) fn scope_param(raw: &str) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = raw
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if list.iter().any(|s| !is_scope(s)) {
        return Err(ApiError::InvalidScope);
    }
    scopes(list).map_err(|_| ApiError::InvalidScope)
}

/// Client ids: 3–64 of `[A-Za-z0-9._-]`.
pub(crate) fn client_id(raw: &str) -> Result<String, ApiError> {
    if raw.len() < 3 || !is_name(raw, 64, &['.']) {
        return Err(ApiError::bad_request(
            "a client id is 3 to 64 letters, digits, `.`, `_` or `-`",
        ));
    }
    Ok(raw.to_owned())
}

/// Opaque identifiers in paths (user ids, session ids): 1–128 printable
/// ASCII characters without spaces. Anything else cannot exist.
pub(crate) fn is_identifier(raw: &str) -> bool {
    !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_graphic())
}

/// Parses a form body or query string strictly and in linear time (see
/// [`tollgate_core::form`]): every name once, at most
/// [`tollgate_core::form::MAX_PARAMETERS`] parameters, empty values
/// dropped. Every refusal is a 400 `invalid_request`; a repeated name is
/// named when it is short plain ASCII.
pub(crate) fn form(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    tollgate_core::form::parse(body).map_err(|error| form_error(body, &error))
}

/// Decodes one form-urlencoded component (`+` is a space, `%XX` escapes).
pub(crate) fn decode_component(raw: &[u8]) -> Result<String, ApiError> {
    tollgate_core::form::decode(raw).map_err(|error| form_error(raw, &error))
}

fn form_error(body: &[u8], error: &tollgate_core::Error) -> ApiError {
    match error {
        tollgate_core::Error::RepeatedParameter { at } => {
            let name = tollgate_core::form::name_at(body, *at).unwrap_or_default();
            ApiError::InvalidRequest(Cow::Owned(format!(
                "the `{}` parameter is repeated",
                tollgate_core::form::printable(&name)
            )))
        }
        tollgate_core::Error::MalformedForm(why) => ApiError::InvalidRequest(Cow::Owned(format!(
            "the form body or query is malformed: {why}"
        ))),
        _ => ApiError::bad_request("the form body or query is malformed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_or_refused() {
        assert_eq!(email("  Ann@Example.COM ").unwrap(), "ann@example.com");
        assert_eq!(
            email("ａｄｍｉｎ@example.com").unwrap(),
            "admin@example.com"
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "a b@example.com",
            "a\u{0}@x",
            &format!("{}@x", "a".repeat(260)),
            "ad\u{200b}min@example.com",
            "admin@example.com.",
            "a@b@c",
        ] {
            assert_eq!(email(bad), Err(ApiError::InvalidEmail), "{bad:?}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            roles(vec!["admin".into(), "admin".into()]).unwrap(),
            ["admin"]
        );
        assert!(roles(vec!["no spaces".into()]).is_err());
        assert!(roles(vec![String::new()]).is_err());
        assert_eq!(
            scopes(vec!["tool:search".into(), "a/b.c".into()])
                .unwrap()
                .len(),
            2
        );
        assert!(scopes(vec!["x\"y".into()]).is_err());
        assert_eq!(scope_param(" a  b a ").unwrap(), ["a", "b"]);
        assert_eq!(scope_param("a\"b"), Err(ApiError::InvalidScope));
        assert!(client_id("svc.billing-1_a").is_ok());
        for bad in ["ab", "has space", "ünï", &"x".repeat(65)] {
            assert!(client_id(bad).is_err(), "{bad}");
        }
        assert!(is_identifier("abc-DEF_123"));
        assert!(!is_identifier("a b") && !is_identifier("") && !is_identifier("é"));
    }

    #[test]
    fn forms_parse_strictly() {
        let parsed = form(b"grant_type=refresh_token&scope=a+b%20c&empty=&x").unwrap();
        assert_eq!(
            parsed,
            [
                ("grant_type".into(), "refresh_token".into()),
                ("scope".into(), "a b c".into())
            ]
        );
        assert_eq!(
            form(b"a=1&a=2"),
            Err(ApiError::bad_request("the `a` parameter is repeated"))
        );
        assert_eq!(
            form("é=1&é=2".as_bytes()),
            Err(ApiError::bad_request("the `?` parameter is repeated"))
        );
        let many: String = (0..100).map(|i| format!("p{i}&")).collect();
        assert_eq!(
            form(many.as_bytes()),
            Err(ApiError::bad_request(
                "the form body or query is malformed: more than 64 parameters"
            ))
        );
        assert!(form(b"a=&a=2").is_err());
        assert!(form(b"a=%zz").is_err());
        assert!(form(b"a=%4").is_err());
        assert!(form(b"a=%ff%fe").is_err());
        assert!(form(b"a=\xff").is_err());
        assert_eq!(form(b"").unwrap(), []);
        assert_eq!(
            form(b"caf%C3%A9=%E2%9C%93").unwrap(),
            [("café".into(), "✓".into())]
        );
    }
}
