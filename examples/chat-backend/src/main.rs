//! `chat-backend`: configuration and start-up only; the service is the
//! library (`chat_backend::router`).
//!
//! Settings come from the Tollgate configuration builder, like every piece
//! of the platform: `TOLLGATE_ISSUER`, `TOLLGATE_AUDIENCE`,
//! `TOLLGATE_CLIENT_ID`/`TOLLGATE_CLIENT_SECRET` (aliases
//! `SERVICE_ID`/`SERVICE_SECRET`), `TOLLGATE_FEED_DOWN_POLICY`,
//! `TOLLGATE_FEED_MAX_STALENESS`,
//! `TOLLGATE_PLANS_FILE`, `TOLLGATE_ENV`, the WebSocket limits
//! (`TOLLGATE_WS_MAX_MESSAGE_SIZE`, `TOLLGATE_WS_SEND_QUEUE`,
//! `TOLLGATE_WS_SEND_TIMEOUT`, `TOLLGATE_WS_REFRESH_BUDGET`,
//! `TOLLGATE_WS_EXPIRY_NOTICE`, `TOLLGATE_WS_MAX_CONNECTIONS`), and `TOLLGATE_REDIS_URL` (with
//! `TOLLGATE_REDIS_PREFIX`): when set, tool rates, usage counts and each
//! user's WebSocket connection count are shared by every instance through
//! Redis, under
//! `<namespace>:chat-backend`; its own: `CHAT_BACKEND_BIND`,
//! `CHAT_BACKEND_PEER_URL`, `CHAT_BACKEND_ALLOWED_ORIGINS`, `CHAT_BACKEND_RECORD_USAGE`
//! (with `TOLLGATE_USAGE_SPOOL`, `TOLLGATE_USAGE_SPOOL_MAX`). Exit status 2
//! when the configuration is invalid or the token service cannot be used.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use tollgate_client::limits::{Plans, RedisLimits, ToolGate, UsageRecorder};
use tollgate_client::ws::{RedisSlots, WsAuth};
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
    /// Browser origins allowed to open WebSockets (comma list, e.g.
    /// `https://chat.example.com`); `*` for any, in development only.
    /// Default: any in development, none elsewhere. Clients that send no
    /// `Origin` (not browsers) are not subject to this list.
    #[arg(long, env = "CHAT_BACKEND_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Option<Vec<String>>,
    /// Record every admitted tool call as a durable usage event at the
    /// token service (the client needs scope `usage`; spool:
    /// `TOLLGATE_USAGE_SPOOL`, `TOLLGATE_USAGE_SPOOL_MAX`; docs/usage.md).
    #[arg(long, env = "CHAT_BACKEND_RECORD_USAGE")]
    record_usage: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    // RUST_LOG decides (tungstenite's `trace`, which prints messages and
    // so tokens, is always dropped); colour only on a terminal.
    chat_backend::logging::init();
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
    // The WebSocket limits (`TOLLGATE_WS_*`) come from the same builder.
    let mut ws = WsAuth::builder(auth.clone())
        .plans(plans.clone())
        .settings(&config);
    let tools = match &config.redis_url {
        Some(url) => {
            let url = url.expose_str().ok_or("TOLLGATE_REDIS_URL is not text")?;
            let prefix = format!("{}:chat-backend", config.redis_namespace());
            tracing::info!(
                %prefix,
                "tool limits, usage and WebSocket connection counts are shared through Redis"
            );
            ws = ws.shared_slots(RedisSlots::new(url, prefix.clone()).map_err(|e| e.to_string())?);
            ToolGate::shared(
                plans,
                RedisLimits::new(url, prefix).map_err(|e| e.to_string())?,
            )
        }
        None => ToolGate::new(plans),
    };
    let tools = match (&service_tokens, args.record_usage) {
        (Some(tokens), true) => tools
            .with_usage(UsageRecorder::builder(tokens.clone(), &config.issuer).settings(&config))
            .await
            .map_err(|e| e.to_string())?,
        (None, true) => {
            return Err(
                "--record-usage needs TOLLGATE_CLIENT_ID and TOLLGATE_CLIENT_SECRET".into(),
            );
        }
        (_, false) => tools,
    };
    let ws = websocket_rules(
        ws,
        args.allowed_origins.as_deref(),
        config.environment.as_str() == "development",
    )?;
    let state = chat_backend::AppState::new(auth, tools, peer_url, service_tokens).with_ws(ws);
    tracing::info!(%local, issuer = %config.issuer, "chat-backend listening");
    let recorder = state.tools.recorder().cloned();
    chat_backend::serve(listener, state, shutdown())
        .await
        .map_err(|e| e.to_string())?;
    // What is still queued goes out (or into the spool) before exiting.
    if let Some(recorder) = recorder
        && !recorder.flush().await
    {
        tracing::warn!(
            spooled = recorder.stats().spooled,
            "usage events left undelivered in the spool; replayed at the next start"
        );
    }
    Ok(())
}

/// The origin rule of CONTRACT §6 (any origin only in development): the
/// SDK's [`tollgate_client::ws::WsAuthBuilder::allowed_origins`].
fn websocket_rules(
    builder: tollgate_client::ws::WsAuthBuilder,
    origins: Option<&[String]>,
    is_development: bool,
) -> Result<WsAuth, String> {
    let origins: Vec<&str> = origins
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect();
    builder
        .allowed_origins(&origins, is_development)
        .map(tollgate_client::ws::WsAuthBuilder::build)
        .map_err(|err| format!("CHAT_BACKEND_ALLOWED_ORIGINS: {err}"))
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
