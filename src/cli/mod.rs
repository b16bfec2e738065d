//! The command line: [`Cli`] and the top-level [`Command`] enum, exit
//! codes, and where output goes.
//!
//! Adding a subcommand: a module under `src/cli/` with a clap `Subcommand`
//! or `Args` type whose doc comments are the help, one variant of
//! [`Command`], and one arm in [`Command::run`]. A command that needs the
//! configuration flattens [`settings::ConfigArgs`] and calls
//! [`settings::ConfigArgs::resolve`], so that every command reads flags,
//! the environment, `--env-file` and `tollgate.toml` the same way.
//!
//! Output: data goes to stdout, diagnostics (warnings, errors) to stderr.
//! Exit codes (STYLE §9): 0 success; 1 a clean "no" (an invalid token, a
//! configuration with errors); 2 an error (bad usage, a file that cannot be
//! read, a URL that cannot be fetched). A closed stdout pipe is success.
//! `anyhow` is used here and nowhere in the libraries.

pub mod audit;
pub mod client;
pub mod config;
pub mod consistency;
pub mod keys;
pub mod local;
pub mod mint;
pub mod serve;
pub mod settings;
pub mod token;
pub mod usage;
pub mod user;
pub mod webhook;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tollgate: the one place where a platform's tokens are made, checked and
/// taken back.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the effective configuration, or explain every setting.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Run the token service.
    Serve(serve::ServeArgs),
    /// Inspect tokens, or mint one for development.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Manage users in the token service's store.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage service clients in the token service's store.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Manage signing keys in the token service's store.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Compare what services trust with the token service.
    #[command(subcommand)]
    Consistency(consistency::ConsistencyCommand),
    /// Report recorded usage (tool calls) from the store: the billing export.
    #[command(subcommand)]
    Usage(usage::UsageCommand),
    /// Verify or follow the audit trail in the token service's store.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

impl Command {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self {
            Command::Config(command) => command.run(),
            Command::Serve(args) => serve::run(args),
            Command::Token(command) => command.run(),
            Command::User(command) => command.run(),
            Command::Client(command) => command.run(),
            Command::Keys(command) => command.run(),
            Command::Consistency(command) => command.run(),
            Command::Usage(command) => command.run(),
            Command::Audit(command) => command.run(),
        }
    }
}

/// What a command concluded; each maps to an exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: a clean "no" (the token is invalid, the configuration has
    /// errors).
    Negative,
    /// Another status the command documents (`consistency check` uses 0–3).
    #[allow(dead_code, reason = "for commands with more than two answers")]
    Status(u8),
}

/// Exit status of errors: bad usage, unreadable input, unreachable URLs.
pub const ERROR_STATUS: u8 = 2;

/// Parses the arguments, runs the command and maps the outcome to the exit
/// status.
pub fn run() -> ExitCode {
    // Usage errors exit 2, `--help` and `--version` 0 (clap's own codes).
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Negative) => ExitCode::from(1),
        Ok(Outcome::Status(status)) => ExitCode::from(status),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // Nothing useful is left to do if stderr is closed too.
            let _ = writeln!(io::stderr(), "error: {err:#}");
            ExitCode::from(ERROR_STATUS)
        }
    }
}

/// Whether the error is a write to a closed pipe (`tollgate … | head`):
/// the reader has what it wanted, which is success.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Prints diagnostics (warnings) to stderr, one line each.
pub fn warn(lines: &[String]) {
    let mut stderr = io::stderr().lock();
    for line in lines {
        let _ = writeln!(stderr, "warning: {line}");
    }
}
