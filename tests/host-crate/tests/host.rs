//! The SDK in a host whose rustls has two crypto providers compiled in.

use std::time::Duration;

use tollgate_client::Authenticator;

#[tokio::test]
async fn the_sdk_works_in_a_host_whose_rustls_has_two_providers() {
    // The trap is real in this host: with aws-lc-rs (from the SDK) and ring
    // (from the host) both compiled in, rustls has no default provider and
    // asking for one panics.
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let trap = std::panic::catch_unwind(rustls::ClientConfig::builder);
    std::panic::set_hook(default_hook);
    assert!(
        trap.is_err(),
        "rustls should refuse to pick between two providers"
    );

    // A TLS endpoint that accepts and hangs up: building the SDK creates its
    // TLS client and tries a handshake, and must answer with an error, never
    // a panic.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let built = Authenticator::builder(format!("https://{addr}"), "api")
        .startup_timeout(Duration::from_millis(300))
        .build()
        .await;
    let err = built
        .err()
        .expect("an issuer that hangs up cannot be discovered");
    assert_eq!(err.code(), "discovery_failed", "{err}");

    // The SDK installed exactly one provider; the host's own TLS clients now
    // work too.
    assert!(tollgate_client::crypto::has_crypto_provider());
    let _ = rustls::ClientConfig::builder();
}
