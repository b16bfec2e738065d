//! The binary's log output (issue 16 item 5): `RUST_LOG=info` means no
//! DEBUG line (a directive used to raise tungstenite to `debug` whatever
//! `RUST_LOG` said), and a log that is not a terminal gets no ANSI colour
//! codes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_log_file_gets_what_rust_log_asks_for_without_colour_codes_issue_16() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat-backend.log");
    let log = std::fs::File::create(&path).unwrap();
    // A token service that is not there: the binary logs its retries at
    // INFO (and would exit after its start-up timeout).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-backend"))
        .env_clear()
        .env("RUST_LOG", "info")
        .env("TOLLGATE_ISSUER", &issuer)
        .env("CHAT_BACKEND_BIND", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap();
        if text.contains("retrying") || Instant::now() > deadline {
            break text;
        }
        if child.try_wait().unwrap().is_some() {
            break std::fs::read_to_string(&path).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text:?}"
    );
    assert!(text.contains(" INFO "), "nothing logged at INFO: {text:?}");
    assert!(
        !text
            .lines()
            .any(|line| line.contains("DEBUG") || line.contains("TRACE")),
        "{text}"
    );
}
