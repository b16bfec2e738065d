//! `tollgate.AuthError` from the SDK's `AuthError`.
//!
//! The HTTP answer a refusal deserves (status, `WWW-Authenticate`,
//! `Retry-After`, the JSON body) is not decided here: it is the SDK's one
//! mapping, `impl IntoResponse for AuthError` (feature `axum`), rendered
//! and handed to Python as attributes, so FastAPI and Starlette answer
//! exactly as an axum service would.
//!
//! The exception class is defined in Python (`tollgate/_errors.py`, so it
//! pickles and subclasses like any exception) and created lazily, which
//! lets a future finishing on a tokio thread without the GIL fail with it.

use axum::response::IntoResponse;
use futures::FutureExt;
use pyo3::prelude::*;
use tollgate_client::AuthError as SdkError;

pyo3::import_exception!(tollgate._errors, AuthError);

/// The code of a failure inside the extension itself (a bug: a Rust panic
/// caught at the boundary).
pub(crate) const INTERNAL: &str = "internal_error";

/// What `AuthError.__init__` takes: code, description, HTTP status,
/// headers, the JSON body, `retry_after_ms`.
type Args = (
    String,
    String,
    u16,
    Vec<(String, String)>,
    String,
    Option<u64>,
);

/// The Python exception for `err`, with the SDK's HTTP mapping.
pub(crate) fn to_py(err: SdkError) -> PyErr {
    let code = err.code().to_owned();
    let description = err.to_string();
    let retry_after_ms = match &err {
        SdkError::RateLimited { retry_after_ms } => Some(*retry_after_ms),
        _ => None,
    };
    let response = err.into_response();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    // The body is a JSON buffer already in memory: collecting it never waits.
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .now_or_never()
        .and_then(Result::ok)
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .unwrap_or_default();
    let args: Args = (code, description, status, headers, body, retry_after_ms);
    PyErr::new::<AuthError, _>(args)
}

/// `AuthError("internal_error")`: the extension failed, not the token.
pub(crate) fn internal() -> PyErr {
    tracing::error!("a panic in the tollgate extension was stopped at the Python boundary");
    let args: Args = (
        INTERNAL.to_owned(),
        "the tollgate extension failed (a bug); the request is refused".to_owned(),
        500,
        vec![("cache-control".to_owned(), "no-store".to_owned())],
        String::new(),
        None,
    );
    PyErr::new::<AuthError, _>(args)
}

/// `Result<T, SdkError>` → `PyResult<T>`.
pub(crate) trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, SdkError> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
