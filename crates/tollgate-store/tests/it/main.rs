//! Integration tests of the stores. The conformance suite (`conformance`) is
//! written once against `dyn Store` and run per backend (`sqlite`, and
//! `postgres` against the server on 127.0.0.1:5432); each backend module
//! adds the tests only it can have (file permissions, URLs, a second
//! process on one file).

#[macro_use]
mod conformance;
#[macro_use]
mod usage;
mod postgres;
mod sqlite;
