//! A TCP proxy in front of a dependency (Redis, Postgres) that can be cut
//! (every connection dropped, new ones refused: the port is closed) and
//! restored on the same port, or black-holed (connections stay open and new
//! ones are accepted, but no byte goes through in either direction, as
//! behind a partition that drops packets) and healed (the bytes held back
//! flow again, as TCP retransmits them).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) struct Proxy {
    port: u16,
    target: String,
    task: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// `true` while black-holed.
    hole: watch::Sender<bool>,
}

/// Waits until the proxy is not black-holed.
async fn open(hole: &mut watch::Receiver<bool>) {
    let _ = hole.wait_for(|holed| !*holed).await;
}

/// Copies `from` to `to`, holding every byte back while black-holed.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    mut hole: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        open(&mut hole).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Proxy {
    /// A proxy on 127.0.0.1 to `target` (`host:port`).
    pub(crate) async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            port: listener.local_addr().unwrap().port(),
            target,
            task: Mutex::new(None),
            connections: Arc::new(Mutex::new(Vec::new())),
            hole: watch::channel(false).0,
        };
        proxy.serve(listener);
        proxy
    }

    /// The port the proxy listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target.clone();
        let connections = self.connections.clone();
        let hole = self.hole.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                let mut hole = hole.subscribe();
                let connection = tokio::spawn(async move {
                    open(&mut hole).await;
                    if let Ok(outbound) = TcpStream::connect(&target).await {
                        let (in_read, in_write) = inbound.into_split();
                        let (out_read, out_write) = outbound.into_split();
                        tokio::join!(
                            pump(in_read, out_write, hole.clone()),
                            pump(out_read, in_write, hole),
                        );
                    }
                });
                connections.lock().unwrap().push(connection);
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Drops every connection and stops listening: the dependency is gone.
    pub(crate) fn cut(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Stops every byte in both directions, on open connections and new
    /// ones alike; nothing fails, everything waits.
    pub(crate) fn black_hole(&self) {
        self.hole.send_replace(true);
    }

    /// Lets the bytes flow again (those held back first).
    pub(crate) fn heal(&self) {
        self.hole.send_replace(false);
    }

    /// Listens again on the same port.
    pub(crate) async fn restore(&self) {
        let mut last = None;
        for _ in 0..100 {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => return self.serve(listener),
                Err(error) => last = Some(error),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rebinding the proxy: {last:?}");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
