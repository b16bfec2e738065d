//! The `tollgate` command. Argument parsing and wiring only: every decision
//! lives in the library crates (see `src/cli/mod.rs` for the layout).

mod cli;

// argon2 fills a 19 MiB block per hash; glibc keeps freed blocks per arena
// and fragments them (250 MiB after a login flood), mimalloc returns them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::run()
}
