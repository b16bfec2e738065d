//! The `tollgate` command. Argument parsing and wiring only: every decision
//! lives in the library crates.

fn main() {}
