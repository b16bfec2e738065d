//! The binary's logs: `RUST_LOG` decides what is written (default `info`),
//! with one exception, and colour only goes to a terminal.
//!
//! The exception: tungstenite's `trace` level prints every WebSocket
//! message, and an `auth.refresh` carries a token, so `trace` events of
//! `tungstenite` and `tokio_tungstenite` are dropped whatever `RUST_LOG`
//! says. This is a cap, not a directive: a directive `tungstenite=debug`
//! would also *raise* tungstenite to `debug` when `RUST_LOG` asks for
//! `info` (issue 16 item 5).

use std::io::IsTerminal;

use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt, registry};

/// Installs the subscriber of the binary: `RUST_LOG` from the environment,
/// lines on stderr, ANSI colour only when stderr is a terminal.
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let colour = std::io::stderr().is_terminal();
    subscriber(rust_log.as_deref(), std::io::stderr, colour).init();
}

/// A subscriber for `rust_log` (a `RUST_LOG` value; unset, empty or
/// invalid: `info`) writing to `writer`, with colour when `colour`.
pub fn subscriber<W>(
    rust_log: Option<&str>,
    writer: W,
    colour: bool,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = rust_log
        .filter(|value| !value.trim().is_empty())
        .and_then(|value| EnvFilter::try_new(value).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let layer = fmt::layer()
        .with_writer(writer)
        .with_ansi(colour)
        .with_filter(filter)
        .with_filter(FilterFn::new(|meta: &Metadata<'_>| {
            !is_websocket_trace(meta)
        }));
    registry().with(layer)
}

/// A `trace` event or span of the WebSocket library (it would print
/// message contents).
fn is_websocket_trace(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::TRACE
        && ["tungstenite", "tokio_tungstenite"]
            .iter()
            .any(|crate_name| {
                meta.target()
                    .strip_prefix(crate_name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What one event of each kind leaves in the log under `rust_log`.
    fn logged(rust_log: Option<&str>) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = subscriber(rust_log, move || writer.clone(), false);
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "tungstenite::protocol", "tungstenite-trace");
            tracing::debug!(target: "tungstenite::protocol", "tungstenite-debug");
            tracing::trace!(target: "tokio_tungstenite", "tokio-tungstenite-trace");
            tracing::trace!(target: "tungstenite_lookalike", "lookalike-trace");
            tracing::debug!(target: "chat_backend", "app-debug");
            tracing::info!(target: "chat_backend", "app-info");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn rust_log_decides_and_tungstenite_trace_never_passes_issue_16() {
        // `info` means info: no DEBUG line of anyone (the old directive
        // raised tungstenite to debug).
        let info = logged(Some("info"));
        assert!(info.contains("app-info"), "{info}");
        assert!(!info.contains("DEBUG") && !info.contains("TRACE"), "{info}");
        for fallback in [None, Some(""), Some("not a [valid filter")] {
            let text = logged(fallback);
            assert!(
                text.contains("app-info") && !text.contains("DEBUG"),
                "{text}"
            );
        }

        let trace = logged(Some("trace"));
        assert!(trace.contains("tungstenite-debug"), "{trace}");
        assert!(trace.contains("app-debug") && trace.contains("lookalike-trace"));
        assert!(!trace.contains("tungstenite-trace"), "{trace}");
        assert!(!trace.contains("tokio-tungstenite-trace"), "{trace}");
        let explicit = logged(Some("warn,tungstenite=trace,tokio_tungstenite=trace"));
        assert!(explicit.contains("tungstenite-debug"), "{explicit}");
        assert!(
            !explicit.contains("tungstenite-trace") && !explicit.contains("app-debug"),
            "{explicit}"
        );
        // No colour codes when not asked for.
        assert!(!trace.contains('\u{1b}'), "{trace:?}");
    }
}
