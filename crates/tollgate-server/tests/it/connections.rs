//! Connections: a client that never completes its request head (slowloris),
//! or sends nothing at all, is disconnected after the header read timeout,
//! and the server keeps serving everyone else.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate_server::testkit::TestServer;

use crate::common::Api;

/// A server whose header read timeout is short, so the tests do not wait.
async fn api() -> Api {
    Api::with(TestServer::builder().header_read_timeout(Duration::from_millis(500))).await
}

/// Reads until the server closes the connection; what it sent before.
/// Panics when the connection is still open after a generous deadline.
async fn until_closed(stream: &mut TcpStream, mut trickle: Option<&[u8]>) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server kept the connection open for 30 s"
        );
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                // Keep the head growing byte by byte, as slowloris does.
                if let Some(bytes) = trickle.as_mut()
                    && let Some((first, rest)) = bytes.split_first()
                {
                    if stream.write_all(&[*first]).await.is_err() {
                        return received;
                    }
                    *bytes = rest;
                }
            }
        }
    }
}

#[tokio::test]
async fn a_request_head_sent_byte_by_byte_is_cut_off() {
    let api = api().await;
    let mut slow = TcpStream::connect(api.server.addr()).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: tollgate\r\nX-Slow: ")
        .await
        .unwrap();
    // Far more bytes than the timeout lets through, never the end of the head.
    let trickle = [b'a'; 600];
    let answer = until_closed(&mut slow, Some(&trickle)).await;
    // Whatever was sent before closing, it was not the health answer.
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
    // Everyone else is still served.
    api.get("/healthz", None).await.expect(200, None);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let api = api().await;
    let mut idle = TcpStream::connect(api.server.addr()).await.unwrap();
    let answer = until_closed(&mut idle, None).await;
    assert!(answer.is_empty() || !String::from_utf8_lossy(&answer).contains("200 OK"));
    api.get("/healthz", None).await.expect(200, None);
}

#[tokio::test]
async fn a_complete_request_on_a_raw_connection_is_answered() {
    let api = api().await;
    let mut stream = TcpStream::connect(api.server.addr()).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tollgate\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut stream, None).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-request-id: "),
        "{text}"
    );
}
