//! The connection loop: accepts TCP connections and serves HTTP/1.1 on each
//! with hyper, under time limits that `axum::serve` does not set.
//!
//! Each connection is in one [`Phase`], and each phase but `Busy` has a
//! deadline at which the connection is closed:
//!
//! - `Fresh` (just accepted, nothing answered yet): the first request head
//!   must be complete within the header timeout of the accept (10 s), so a
//!   client that connects and sends nothing, or a head byte by byte
//!   (slowloris), holds a socket that long at most;
//! - `Idle` (between keep-alive requests): kept for the keep-alive timeout
//!   (`TOLLGATE_KEEP_ALIVE_TIMEOUT`, 75 s by default), longer than load
//!   balancers and client pools keep idle connections (60 s for AWS ALB and
//!   nginx, 50 s for the SDK), so they never reuse a connection the server
//!   has just closed;
//! - `Head` (the first byte of the next request head arrived): the head must
//!   be complete within the header timeout of that byte;
//! - `Busy` (a request is being answered): no deadline here; the router's
//!   request timeout bounds bodies and handlers, and the SSE feed sends
//!   keep-alive comments and ends at shutdown.
//!
//! hyper's own `header_read_timeout` is not used: it starts whenever hyper
//! waits for a head, so it also closed idle keep-alive connections after
//! 10 s (issue 9, item 3). Here the phase is kept by a [`Watched`] socket
//! (bytes read), the service (a request began) and a [`Tracked`] response
//! body (its answer is written), all of which run inside the connection's
//! own poll, so the deadline is always computed from the current phase.
//!
//! When the server decides to close a connection after an answer, the
//! answer says so with `Connection: close`: during shutdown (hyper then
//! finishes the request in flight and closes), so that clients retry
//! elsewhere instead of reusing a connection that is going away.
//!
//! Shutdown is graceful as with `axum::serve`: stop accepting, let each
//! connection finish its in-flight request, then return.
//!
//! It must not know about routes or tokens: it hands every request, with
//! its peer address as [`ConnectInfo`], to the router.

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// How long a connection may take to send a complete request head.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The time limits of every connection (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// From the accept, or from a head's first byte, to its end.
    pub header_read: Duration,
    /// How long an idle keep-alive connection is kept.
    pub keep_alive: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for
/// open connections to finish their current request.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
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
            limits,
            stop.clone(),
            open.clone(),
        ));
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(open);
    connections.closed().await;
}

/// One connection, until the client closes it, a deadline passes, or
/// shutdown lets its current request finish.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
) {
    // Answers are small: send them at once rather than wait for more.
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new(Instant::now()));
    let service = {
        let activity = activity.clone();
        let stop = stop.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            // Counted from here until the answer's body is written or dropped.
            let busy = Busy::begin(activity.clone());
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            let stop = stop.clone();
            async move {
                let mut response = router.oneshot(request).await?;
                if *stop.borrow() {
                    // The server closes this connection after this answer.
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(Tracked {
                        inner: body,
                        _busy: busy,
                    })
                }))
            }
        })
    };
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let mut conn = pin!(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
    let stopping = async {
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    tokio::select! {
        ended = within_deadlines(conn.as_mut(), &activity, limits) => {
            finished(peer, ended);
            return;
        }
        () = stopping => conn.as_mut().graceful_shutdown(),
    }
    // The deadlines still hold: a slow head must not stall the shutdown.
    finished(peer, within_deadlines(conn, &activity, limits).await);
}

fn finished(peer: SocketAddr, ended: Option<Result<(), hyper::Error>>) {
    match ended {
        Some(Ok(())) => {}
        Some(Err(error)) => {
            tracing::debug!(%peer, error = %error, "connection ended with an error");
        }
        None => tracing::debug!(%peer, "connection closed: idle or too slow"),
    }
}

/// Drives `conn` until it ends (`Some`) or the deadline of its phase
/// passes (`None`; dropping the connection then closes the socket).
async fn within_deadlines<F: Future>(
    mut conn: Pin<&mut F>,
    activity: &Activity,
    limits: Limits,
) -> Option<F::Output> {
    let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep(limits.header_read));
    poll_fn(|cx| {
        if let Poll::Ready(output) = conn.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        // Polling the connection is what moves the phase, so it is current.
        let Some(deadline) = activity.deadline(limits) else {
            return Poll::Pending;
        };
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(None)
    })
    .await
}

/// What a connection is doing, for its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted at `since`; no request yet.
    Fresh { since: Instant },
    /// Between requests since `since`.
    Idle { since: Instant },
    /// The next request head began arriving at `since`.
    Head { since: Instant },
    /// This many requests are being answered.
    Busy { requests: usize },
}

/// The phase of one connection, shared by its socket, service and bodies
/// (all polled by the connection's one task, so the lock is uncontended).
#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
}

impl Activity {
    fn new(now: Instant) -> Activity {
        Activity {
            phase: Mutex::new(Phase::Fresh { since: now }),
        }
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = change(*phase);
    }

    /// Bytes arrived: between requests, they start the next head.
    fn read(&self, now: Instant) {
        self.update(|phase| match phase {
            Phase::Idle { .. } => Phase::Head { since: now },
            other => other,
        });
    }

    /// A request head is complete and its answer begins.
    fn begin(&self) {
        self.update(|phase| match phase {
            Phase::Busy { requests } => Phase::Busy {
                requests: requests + 1,
            },
            _ => Phase::Busy { requests: 1 },
        });
    }

    /// An answer is written (or abandoned).
    fn end(&self, now: Instant) {
        self.update(|phase| match phase {
            Phase::Busy { requests } if requests > 1 => Phase::Busy {
                requests: requests - 1,
            },
            _ => Phase::Idle { since: now },
        });
    }

    /// When the connection must be closed, if nothing changes.
    fn deadline(&self, limits: Limits) -> Option<Instant> {
        let phase = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        match phase {
            Phase::Fresh { since } | Phase::Head { since } => Some(since + limits.header_read),
            Phase::Idle { since } => Some(since + limits.keep_alive),
            Phase::Busy { .. } => None,
        }
    }
}

/// One request being answered; ends when dropped.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: Arc<Activity>) -> Busy {
        activity.begin();
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end(Instant::now());
    }
}

/// A response body that keeps its request [`Busy`] until hyper has written
/// it to the end (or given up on it).
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = <Body as hyper::body::Body>::Data;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.inner).poll_read(cx, buf));
        if result.is_ok() && buf.filled().len() > before {
            self.activity.read(Instant::now());
        }
        Poll::Ready(result)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        header_read: Duration::from_secs(10),
        keep_alive: Duration::from_secs(75),
    };

    #[test]
    fn each_phase_has_its_deadline() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let activity = Activity::new(start);
        // A fresh connection: the head from the accept, bytes or not.
        assert_eq!(activity.deadline(LIMITS), Some(at(10)));
        activity.read(at(3));
        assert_eq!(activity.deadline(LIMITS), Some(at(10)));
        // Answering: no deadline here, body bytes included.
        activity.begin();
        activity.read(at(4));
        assert_eq!(activity.deadline(LIMITS), None);
        // Idle after the answer: the keep-alive timeout.
        activity.end(at(5));
        assert_eq!(activity.deadline(LIMITS), Some(at(80)));
        // The next head's first byte, 60 s later: 10 s from there.
        activity.read(at(65));
        assert_eq!(activity.deadline(LIMITS), Some(at(75)));
        activity.read(at(70));
        assert_eq!(activity.deadline(LIMITS), Some(at(75)));
        // Two answers at once end one after the other.
        activity.begin();
        activity.begin();
        activity.end(at(71));
        assert_eq!(activity.deadline(LIMITS), None);
        activity.end(at(72));
        assert_eq!(activity.deadline(LIMITS), Some(at(147)));
    }
}
