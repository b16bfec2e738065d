//! End-to-end tests of Tollgate (see `tests/it/`): the real token service
//! booted by the server's test-kit on 127.0.0.1:0, services built with the
//! SDK (`examples/chat-backend`), and the network between them.
//!
//! The crate has no code of its own. It exists so that these tests may
//! depend on both `tollgate-server` and `tollgate-client` while the SDK
//! itself never depends on the server.
