//! `tollgate serve`: the token service.
//!
//! Resolves the configuration like every command, opens the store, loads
//! keys (creating the first one), creates the bootstrap admin when asked,
//! binds and serves until SIGTERM or Ctrl-C, then finishes in-flight
//! requests. Logs go to stderr: text by default, JSON lines with
//! `--log-format json`; the level comes from `RUST_LOG` (an `EnvFilter`
//! directive such as `info` or `tollgate_server=debug`; default `info`).
//!
//! Exit status: 0 after a clean shutdown, 2 when it cannot start (an
//! invalid configuration, an unreachable database, a port in use).

use anyhow::Context;
use clap::{Args, ValueEnum};
use tollgate_core::config::Component;
use tollgate_server::{Server, SettingRow};

use super::Outcome;
use super::local::{open_server_store, runtime};
use super::settings::ConfigArgs;

/// Arguments of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// How log lines are written to stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(flatten)]
    settings: ConfigArgs,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the server until a shutdown signal.
pub fn run(args: ServeArgs) -> anyhow::Result<Outcome> {
    init_logs(args.log_format);
    let config = args.settings.resolve(Component::Server)?;
    // The console's configuration page shows what `config check` shows.
    let settings = SettingRow::from_report(&args.settings.report(Component::Server)?);
    let runtime = runtime()?;
    runtime.block_on(async move {
        let store = open_server_store(&config).await?;
        let environment = config.environment;
        let server = Server::builder(config, store)
            .settings(settings)
            .bind()
            .await
            .context("the token service cannot start")?;
        let addr = server.local_addr()?;
        tracing::info!(%addr, %environment, "listening");
        server
            .run(tollgate_server::shutdown_signal())
            .await
            .context("the token service failed")?;
        tracing::info!("stopped");
        Ok(Outcome::Success)
    })
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A subscriber already installed (never, in the binary) is not fatal.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
