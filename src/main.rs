//! The `tollgate` command. Argument parsing and wiring only: every decision
//! lives in the library crates (see `src/cli/mod.rs` for the layout).

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
