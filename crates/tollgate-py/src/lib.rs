//! `tollgate._native`: the Python SDK's extension module (PyO3, abi3,
//! Python 3.9+). It wraps `tollgate-client` and nothing else: every token
//! judgement, every limit, every WebSocket rule is the Rust SDK's; this
//! crate converts arguments and results and runs the SDK's futures.
//!
//! One module per wrapped piece: `authenticator` (`Authenticator`,
//! `Principal`, `Requirements`), `errors` (`AuthError` and the one HTTP
//! mapping, borrowed from the SDK's axum glue), `limits` (`ToolGate`),
//! `service` (`ServiceTokenSource`), `testing` (`TestIssuer`), `ws`
//! (`WsAuth`, `Admission`, `Connection`, `Transport`: CONTRACT §6 for ASGI
//! servers), `bridge` (the tokio runtime, awaitables, the panic boundary),
//! `convert` (JSON and argument conversions).
//!
//! **Invariant:** no Rust panic crosses into Python: every entry point runs
//! inside [`bridge::guard`] (or a future wrapped by it), which turns a panic
//! into `AuthError("internal_error")`.
//! **Invariant:** the GIL is released whenever Rust may wait or do real
//! work (a signature check, a network call); awaitables never block the
//! event loop: a future that is not ready at once runs on the tokio runtime
//! and completes the asyncio future from there.
//! **Invariant:** no Python code here re-implements a check; the Python
//! package's modules are framework glue only.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authenticator;
mod bridge;
mod convert;
mod errors;
mod limits;
mod service;
mod testing;
mod ws;

use pyo3::prelude::*;

/// The extension module `tollgate._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    tollgate_client::crypto::install_crypto_provider();
    m.add("AuthError", m.py().get_type::<errors::AuthError>())?;
    m.add_class::<authenticator::Authenticator>()?;
    m.add_class::<authenticator::Principal>()?;
    m.add_class::<authenticator::Requirements>()?;
    m.add_class::<bridge::Ready>()?;
    m.add_class::<limits::ToolGate>()?;
    m.add_class::<service::ServiceTokenSource>()?;
    m.add_class::<testing::TestIssuer>()?;
    m.add_class::<ws::WsAuth>()?;
    m.add_class::<ws::Admission>()?;
    m.add_class::<ws::Connection>()?;
    m.add_class::<ws::Transport>()?;
    m.add_function(wrap_pyfunction!(ws::invalid_message, m)?)?;
    m.add_function(wrap_pyfunction!(testing::core_validation_ns, m)?)?;
    m.add_function(wrap_pyfunction!(bridge::panic_at_the_boundary, m)?)?;
    m.add("MAX_TOKEN_BYTES", tollgate_core::MAX_TOKEN_BYTES)?;
    m.add("MAX_MESSAGE_BYTES", tollgate_client::ws::MAX_MESSAGE_BYTES)?;
    Ok(())
}
