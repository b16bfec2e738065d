//! Integration tests of the token service: each boots the real server on
//! 127.0.0.1:0 over a temporary SQLite store (the test-kit) and talks HTTP.

mod admin;
mod attacks;
mod audit;
mod auth;
mod bad_input;
mod common;
mod connections;
mod console;
mod discovery;
mod feed;
mod hostile;
mod hung;
mod instances;
mod keys;
mod limits;
mod logs;
mod oauth;
mod outage;
mod proxy;
mod refresh;
mod revocation;
mod scaled;
mod stale;
mod usage;
