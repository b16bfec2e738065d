//! The integration tests of `tollgate-core`: published test vectors,
//! interoperability with an independent JOSE library, the SECURITY.md attack
//! catalogue and property tests. One binary (`tests/it/`), one module per
//! concern; fixtures live in `support`.

mod attacks;
mod conformance;
mod jsonwebtoken_interop;
mod properties;
mod support;
