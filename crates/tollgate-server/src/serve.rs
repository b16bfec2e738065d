//! The connection loop: accepts TCP connections and serves HTTP/1.1 on each
//! with hyper, under limits that `axum::serve` does not set.
//!
//! Why not `axum::serve`: it gives hyper no timer, so hyper's header read
//! timeout never runs, and a client that opens a connection and sends a
//! request head byte by byte (slowloris), or nothing at all, holds a task
//! and a socket forever. Here every connection must deliver a complete
//! request head within [`HEADER_READ_TIMEOUT`] (from the moment the server
//! waits for one: at connect, and between keep-alive requests), or it is
//! closed. Bodies and handlers are bounded by the router's request timeout.
//!
//! Shutdown is graceful as with `axum::serve`: stop accepting, let each
//! connection finish its in-flight request, then return.
//!
//! It must not know about routes or tokens: it hands every request, with
//! its peer address as [`ConnectInfo`], to the router.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// How long a connection may take to send a complete request head.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then waits for
/// open connections to finish their current request.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    // Every connection task holds a receiver; `closed()` resolves when the
    // last one is gone.
    let (connections, open) = watch::channel(());
    let (stopping, stop) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            header_read_timeout,
            stop.clone(),
            open.clone(),
        ));
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(open);
    connections.closed().await;
}

/// One connection, until the client closes it, it times out, or shutdown
/// lets its current request finish.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    header_read_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
) {
    // Answers are small: send them at once rather than wait for more.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let stopping = async {
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, error = %error, "connection ended with an error");
            }
            return;
        }
        () = stopping => conn.as_mut().graceful_shutdown(),
    }
    if let Err(error) = conn.await {
        tracing::debug!(%peer, error = %error, "connection ended with an error");
    }
}

/// A failed `accept`: a connection that died before it was accepted is
/// skipped; anything else (out of file descriptors) is logged and waited
/// out, so the loop does not spin.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
