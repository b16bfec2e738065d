//! `x-request-id`: every response carries one. A well-formed incoming id
//! (1–128 visible ASCII characters) is propagated; otherwise a UUID is made.
//! The request carries the chosen id onward, so handlers and logs see it.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The header name.
pub(crate) const HEADER: &str = "x-request-id";

pub(crate) async fn layer(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .filter(|v| is_acceptable(v.as_bytes()))
        .cloned()
        .unwrap_or_else(generate);
    request.headers_mut().insert(HEADER, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(HEADER, id);
    response
}

fn is_acceptable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 128 && id.iter().all(|b| b.is_ascii_graphic())
}

fn generate() -> HeaderValue {
    let id = uuid::Uuid::new_v4().to_string();
    HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ids_are_propagated() {
        assert!(is_acceptable(b"abc-123"));
        for bad in [&b""[..], b"a b", b"\x01", &[b'a'; 129]] {
            assert!(!is_acceptable(bad));
        }
        assert_eq!(generate().len(), 36);
    }
}
