//! Alerts that leave the machine: a [`Webhook`] posts JSON bodies to a URL
//! from a task of its own, so the loop that raises them never waits.
//!
//! [`Webhook::post`] puts the body on a bounded queue ([`QUEUE`]) and
//! returns at once; when the queue is full the oldest alert is dropped and
//! said so on stderr. The task posts one alert at a time, in order; a
//! failure (no connection, a timeout, 5xx, 429) is retried with exponential
//! back-off and jitter (from 500 ms, doubling up to 30 s) up to [`ATTEMPTS`]
//! times, then the alert is given up with a warning; another 4xx is given up
//! at once (the receiver will not take it).

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::sync::Notify;

/// Alerts that may wait for the receiver.
pub const QUEUE: usize = 64;

/// Tries per alert.
pub const ATTEMPTS: u32 = 6;

/// First and longest wait between two tries.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

/// A webhook receiver and its queue.
#[derive(Clone)]
pub struct Webhook {
    queue: Arc<Mutex<VecDeque<Value>>>,
    ready: Arc<Notify>,
}

impl Webhook {
    /// Checks `url` (http or https) and starts the posting task on the
    /// current runtime.
    pub fn start(url: &str, timeout: Duration) -> anyhow::Result<Webhook> {
        let parsed =
            reqwest::Url::parse(url).with_context(|| format!("--webhook {url:?} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            bail!("--webhook {url:?} is not an http:// or https:// URL");
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot start the HTTP client")?;
        let webhook = Webhook {
            queue: Arc::new(Mutex::new(VecDeque::with_capacity(QUEUE))),
            ready: Arc::new(Notify::new()),
        };
        tokio::spawn(webhook.clone().run(client, parsed));
        Ok(webhook)
    }

    /// Queues `body`; never waits.
    pub fn post(&self, body: Value) {
        let dropped = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let dropped = if queue.len() >= QUEUE {
                queue.pop_front()
            } else {
                None
            };
            queue.push_back(body);
            dropped
        };
        if dropped.is_some() {
            let _ = writeln!(
                io::stderr(),
                "warning: the webhook is not keeping up ({QUEUE} alerts waiting): dropped the oldest"
            );
        }
        self.ready.notify_one();
    }

    async fn run(self, client: reqwest::Client, url: reqwest::Url) {
        let jitter = std::collections::hash_map::RandomState::new();
        let mut attempts: u64 = 0;
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            let Some(body) = next else {
                self.ready.notified().await;
                continue;
            };
            let mut delay = BACKOFF.0;
            for attempt in 1..=ATTEMPTS {
                let outcome = client
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .map_err(|err| {
                        if err.is_timeout() {
                            "timed out".to_owned()
                        } else {
                            "connection failed".to_owned()
                        }
                    })
                    .and_then(|response| {
                        let status = response.status();
                        if status.is_success() {
                            Ok(())
                        } else {
                            Err(format!("answered HTTP {}", status.as_u16()))
                        }
                    });
                let retryable = match &outcome {
                    Ok(()) => break,
                    Err(why) => !why.starts_with("answered HTTP 4") || why == "answered HTTP 429",
                };
                let why = outcome.err().unwrap_or_default();
                if !retryable || attempt == ATTEMPTS {
                    let _ = writeln!(
                        io::stderr(),
                        "warning: the webhook {why}; alert given up after {attempt} attempt(s)"
                    );
                    break;
                }
                attempts += 1;
                let spread = jitter.hash_one(attempts) % 1000;
                let wait = delay / 2 + delay.mul_f64(spread as f64 / 2000.0);
                let _ = writeln!(
                    io::stderr(),
                    "warning: the webhook {why}; retrying in {} ms",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(BACKOFF.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_and_bad_urls_are_refused() {
        // A receiver that never answers: nothing leaves the queue but the
        // first alert, taken by the task.
        let webhook = Webhook {
            queue: Arc::new(Mutex::new(VecDeque::new())),
            ready: Arc::new(Notify::new()),
        };
        for n in 0..(QUEUE + 5) {
            webhook.post(serde_json::json!({ "n": n }));
        }
        let queue = webhook.queue.lock().unwrap();
        assert_eq!(queue.len(), QUEUE);
        assert_eq!(queue.front().unwrap()["n"], 5);
        assert_eq!(queue.back().unwrap()["n"], QUEUE + 4);
        drop(queue);
        for bad in ["not a url", "ftp://example.com/x", "file:///etc/passwd"] {
            let err = Webhook::start(bad, Duration::from_secs(1)).err().unwrap();
            assert!(err.to_string().contains("--webhook"), "{err}");
        }
    }
}
