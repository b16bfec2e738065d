//! `chat-backend`: configuration and start-up only; the service is the
//! library (`chat_backend::router`).
//!
//! Settings come from the Tollgate configuration builder, like every piece
//! of the platform: `TOLLGATE_ISSUER`, `TOLLGATE_AUDIENCE`,
//! `TOLLGATE_CLIENT_ID`/`TOLLGATE_CLIENT_SECRET` (aliases
//! `SERVICE_ID`/`SERVICE_SECRET`), `TOLLGATE_FEED_DOWN_POLICY`,
//! `TOLLGATE_PLANS_FILE`, `TOLLGATE_ENV`. Exit status 2 when the
//! configuration is invalid or the token service cannot be used.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use tollgate_client::limits::{Plans, ToolGate};
use tollgate_client::{Authenticator, ServiceTokenSource};

/// A chat backend protected by Tollgate.
#[derive(Debug, Parser)]
#[command(name = "chat-backend", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CHAT_BACKEND_BIND", default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// Base URL of the peer holding the agents (called with a service
    /// token); default: this service itself.
    #[arg(long, env = "CHAT_BACKEND_PEER_URL")]
    peer_url: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("chat-backend: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    tollgate_client::crypto::install_crypto_provider();
    let config = Authenticator::config_from_env().map_err(|e| e.to_string())?;
    let plans = match &config.plans_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the plans file {path}: {e}"))?;
            Plans::from_toml(&text).map_err(|e| format!("{path}: {e}"))?
        }
        None => Plans::builtin(),
    };
    let auth = Authenticator::builder_from_config(&config)
        .service_name("chat-backend")
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let service_tokens = match (&config.client_id, &config.client_secret) {
        (Some(_), Some(_)) => Some(
            ServiceTokenSource::from_config(&config)
                .await
                .map_err(|e| e.to_string())?,
        ),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.bind))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let peer_url = args.peer_url.unwrap_or_else(|| format!("http://{local}"));
    let state = chat_backend::AppState::new(auth, ToolGate::new(plans), peer_url, service_tokens);
    tracing::info!(%local, issuer = %config.issuer, "chat-backend listening");
    axum::serve(listener, chat_backend::router(state))
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| e.to_string())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
