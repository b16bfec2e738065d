//! Fan-out between instances through Redis: "poll the store now" notices.
//!
//! Instances sharing one database already converge by polling it (the
//! revocation pump about every half second, the keys every two seconds).
//! With Redis configured, an instance that commits a revocation or rotates
//! a key also publishes a [`Notice`] on the channel `<namespace>:notices`,
//! and every instance subscribed to it polls the store at once instead of
//! at its next tick.
//!
//! A notice carries no authority and no data: only its kind and the id of
//! the instance that sent it. What is revoked, and which keys exist, is read
//! from the store as always; so a lost notice costs at most one poll
//! interval, and a forged one at most one extra poll.
//!
//! The subscription runs on a connection of its own ([`subscription_loop`]):
//! it pings Redis every few seconds (a silently dead connection is noticed),
//! reconnects with a growing back-off when Redis goes away, and polls once
//! after every (re)subscription to catch up on notices it may have missed.
//! Publishing ([`publish_loop`]) coalesces bursts: many revocations in a
//! row make one notice per round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;

use crate::metrics;
use crate::redis_link::{COMMAND_TIMEOUT, MAX_BACKOFF, MIN_BACKOFF, RedisLink};
use crate::state::AppState;

/// How often the subscription checks that Redis still answers.
const PING_EVERY: Duration = Duration::from_secs(5);
/// Longest notice accepted; anything longer is not ours.
const MAX_NOTICE: usize = 128;

/// What changed in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// New revocation events: read them.
    Revocations,
    /// A key was rotated: reload the keys.
    Keys,
}

impl Notice {
    const ALL: [Notice; 2] = [Notice::Revocations, Notice::Keys];

    fn name(self) -> &'static str {
        match self {
            Notice::Revocations => "revocations",
            Notice::Keys => "keys",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Notice::Revocations => 1,
            Notice::Keys => 2,
        }
    }

    fn parse(name: &str) -> Option<Notice> {
        Notice::ALL.into_iter().find(|n| n.name() == name)
    }
}

/// This instance's side of the fan-out.
pub(crate) struct Fanout {
    link: Arc<RedisLink>,
    channel: String,
    /// Names this instance in its notices, so it skips its own.
    instance: String,
    /// Whether the subscription is live (readiness).
    subscribed: AtomicBool,
    /// Notices waiting to be published, as [`Notice::bit`]s.
    pending: AtomicU8,
    /// Wakes the publisher.
    wake: Notify,
}

impl Fanout {
    pub fn new(link: Arc<RedisLink>) -> Fanout {
        Fanout {
            channel: link.key("notices"),
            link,
            instance: uuid::Uuid::new_v4().simple().to_string(),
            subscribed: AtomicBool::new(false),
            pending: AtomicU8::new(0),
            wake: Notify::new(),
        }
    }

    /// Asks for `notice` to be published soon. Never waits: the change is
    /// durable already, and the notice only makes others see it sooner.
    pub fn announce(&self, notice: Notice) {
        self.pending.fetch_or(notice.bit(), Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Readiness: subscribed, and Redis answers a `PING` now.
    pub async fn is_healthy(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed) && self.link.ping().await
    }

    fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.store(subscribed, Ordering::Relaxed);
    }

    fn message(&self, notice: Notice) -> String {
        format!("v1 {} {}", notice.name(), self.instance)
    }

    /// The notice a message carries, unless it is malformed or this
    /// instance's own.
    fn read(&self, payload: &[u8]) -> Option<Notice> {
        if payload.len() > MAX_NOTICE {
            return None;
        }
        let text = std::str::from_utf8(payload).ok()?;
        let mut words = text.split(' ');
        if words.next() != Some("v1") {
            return None;
        }
        let notice = Notice::parse(words.next()?)?;
        let sender = words.next()?;
        if sender == self.instance || words.next().is_some() {
            return None;
        }
        Some(notice)
    }
}

/// Publishes announced notices until shutdown.
pub(crate) async fn publish_loop(state: AppState) {
    let Some(fanout) = state.fanout.clone() else {
        return;
    };
    loop {
        tokio::select! {
            () = fanout.wake.notified() => {}
            () = state.stopped() => return,
        }
        let pending = fanout.pending.swap(0, Ordering::Relaxed);
        for notice in Notice::ALL {
            if pending & notice.bit() == 0 {
                continue;
            }
            let message = fanout.message(notice);
            let channel = fanout.channel.clone();
            let sent = fanout
                .link
                .call("publishing a notice", |mut conn| async move {
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(message)
                        .query_async::<i64>(&mut conn)
                        .await
                })
                .await;
            if sent.is_some() {
                ::metrics::counter!(metrics::NOTICES_SENT, "kind" => notice.name()).increment(1);
            }
        }
    }
}

/// Keeps a subscription to the notices until shutdown, reconnecting with
/// back-off; polls the store on every notice from another instance.
pub(crate) async fn subscription_loop(state: AppState) {
    let Some(fanout) = state.fanout.clone() else {
        return;
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        let outcome = tokio::select! {
            outcome = subscribe_once(&state, &fanout) => outcome,
            () = state.stopped() => return,
        };
        fanout.set_subscribed(false);
        match outcome {
            // The subscription was up: start the back-off afresh.
            Ok(()) => backoff = MIN_BACKOFF,
            Err(error) => fanout.link.failed("subscribing to notices", &error),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = state.stopped() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One subscription, from connecting until it breaks. `Ok` when it was up
/// before it broke, `Err` when it never came up.
async fn subscribe_once(state: &AppState, fanout: &Fanout) -> Result<(), String> {
    let connect = async {
        let mut pubsub = fanout.link.client().get_async_pubsub().await?;
        pubsub.subscribe(&fanout.channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    let pubsub = match tokio::time::timeout(COMMAND_TIMEOUT, connect).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => return Err("timed out".to_owned()),
    };
    let (mut sink, mut messages) = pubsub.split();
    fanout.set_subscribed(true);
    fanout.link.succeeded();
    tracing::info!("subscribed to notices from other instances");
    // Notices sent while this instance was not listening are lost: catch up.
    state.pump.wake();
    reload_keys(state).await;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    fanout.link.failed("reading notices", "the connection closed");
                    return Ok(());
                };
                if let Some(notice) = fanout.read(message.get_payload_bytes()) {
                    ::metrics::counter!(metrics::NOTICES_RECEIVED, "kind" => notice.name())
                        .increment(1);
                    match notice {
                        Notice::Revocations => state.pump.wake(),
                        Notice::Keys => reload_keys(state).await,
                    }
                }
            }
            () = tokio::time::sleep(PING_EVERY) => {
                // In subscribed mode (RESP2) the answer is `["pong", ""]`.
                match tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        fanout.link.failed("pinging the subscription", &error.to_string());
                        return Ok(());
                    }
                    Err(_) => {
                        fanout.link.failed("pinging the subscription", "timed out");
                        return Ok(());
                    }
                }
            }
        }
    }
}

async fn reload_keys(state: &AppState) {
    if let Err(error) = state.keys.reload(state.now()).await {
        tracing::warn!(error = %error, "reloading signing keys after a notice failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fanout() -> Fanout {
        let link = RedisLink::open("redis://127.0.0.1:1", "t".to_owned()).unwrap();
        Fanout::new(Arc::new(link))
    }

    #[tokio::test]
    async fn notices_round_trip_and_an_instance_skips_its_own() {
        let (a, b) = (fanout(), fanout());
        assert_eq!(a.channel, "t:notices");
        for notice in Notice::ALL {
            let message = a.message(notice);
            assert_eq!(b.read(message.as_bytes()), Some(notice));
            assert_eq!(a.read(message.as_bytes()), None, "its own notice");
        }
    }

    #[tokio::test]
    async fn malformed_notices_are_ignored() {
        let a = fanout();
        for bad in [
            "",
            "v1",
            "v1 revocations",
            "v2 revocations x",
            "v1 everything x",
            "v1 keys x extra",
            "v1  keys x",
        ] {
            assert_eq!(a.read(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(a.read(&[0xff, 0xfe]), None);
        let long = format!("v1 keys {}", "x".repeat(MAX_NOTICE));
        assert_eq!(a.read(long.as_bytes()), None);
    }
}
