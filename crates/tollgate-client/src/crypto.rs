//! The TLS crypto provider, installed explicitly.
//!
//! rustls needs exactly one process-wide crypto provider. Which ones are
//! compiled in depends on Cargo feature unification across the whole host
//! build: a host that also pulls rustls with `ring` would leave rustls with
//! two providers and no default, and code that asks rustls for "the"
//! default (`ClientConfig::builder()`) panics at run time. The SDK installs
//! aws-lc-rs as the process default before it builds its first HTTP client,
//! unless the host already installed one (then the host's choice stands).
//! This module owns that one decision and must not do anything else.

use std::sync::Once;

/// Installs aws-lc-rs as rustls' process-wide default crypto provider,
/// unless one is installed already. Idempotent and cheap after the first
/// call; every constructor of the SDK that makes an HTTP client calls it, and
/// a host may call it first thing in `main` to cover its own TLS clients.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race against another installer is fine: a provider
            // is installed either way, which is all that matters.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
    });
}

/// Whether rustls has a process-wide default provider (for health checks
/// and the host build test).
pub fn has_crypto_provider() -> bool {
    rustls::crypto::CryptoProvider::get_default().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installing_twice_is_harmless_and_leaves_a_provider() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(has_crypto_provider());
    }
}
