//! End-to-end: the real token service, the SDK and chat-backend over HTTP.
//! Each test boots its own token service (test-kit, 127.0.0.1:0) behind a
//! TCP proxy that can cut the network, and its own backend.

mod hs256;
mod logs;
mod outage;
mod plans;
mod revocation;
mod rotation;
mod sdk;
mod support;
mod usage;
mod websocket;
