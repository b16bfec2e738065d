//! Integration tests of the `tollgate` binary: each runs the real binary
//! with a cleared environment (only `PATH`) in its own temporary directory,
//! so neither the developer's variables nor a stray `tollgate.toml` leak in.

mod config;
mod consistency;
mod serve;
mod store_commands;
mod token;
mod util;
