//! [`UsageRecorder`]: every call a [`super::ToolGate`] admits becomes a
//! durable usage event at the token service (issue 12,
//! `POST /v1/usage/events`, a service token with scope `usage`).
//!
//! The call path only numbers the event and puts it on a bounded queue
//! ([`UsageRecorder::record`] never waits, never fails the call). A
//! background task takes events off the queue and, every flush interval or
//! batch of [`MAX_USAGE_BATCH`] events:
//! 1. appends them to the spool (`TOLLGATE_USAGE_SPOOL`, one JSON event per
//!    line, one write per batch; without a file the spool is memory),
//! 2. sends the spool's events in batches (each checked first by the
//!    core's [`usage::check_event`], the rule the server applies), with the
//!    service token of a [`ServiceTokenSource`],
//! 3. empties the spool once the token service has answered for them.
//!
//! When the token service cannot be reached (or answers 5xx, 401, 403,
//! 429) the events stay in the spool and the task tries again after an
//! exponential back-off with jitter (from 200 ms to 30 s by default); new
//! events keep going to the spool meanwhile. A process that starts with a
//! spool file left behind replays it: lines that are not an event (a line
//! cut short by a crash, a corrupt one) are skipped with a warning naming
//! the line, and the file is rewritten without them.
//!
//! Exactly once: the idempotency key is (service = the client id,
//! instance = a fresh id per process unless set, seq = 1, 2, … in that
//! process). A batch whose answer was lost, or a spool replayed after a
//! crash between the answer and the emptying, is sent again and the token
//! service counts each key once. What can be lost: the events of the last
//! flush interval when the process is killed (nothing is written before
//! the flush), and the events dropped when a bound is reached.
//!
//! Bounds: the queue holds 65 536 events; the spool `TOLLGATE_USAGE_SPOOL_MAX`
//! bytes (16 MiB, about 80 000 events). When either is full the newest
//! events are dropped — the call itself always proceeds — with one warning
//! per episode and `tollgate_client_usage_dropped_total{reason}`
//! (`queue_full`, `spool_full`; `invalid` for an event the core's rules
//! refuse, `refused` for one the token service refuses alone, e.g. an
//! unknown user: a batch it refuses is split until the refused event is
//! found, so the others are still counted).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tollgate_core::config::Config;
use tollgate_core::plans::Plans;
use tollgate_core::usage;
use tollgate_core::wire::{MAX_USAGE_BATCH, UsageAccepted, UsageBatch, UsageEvent};

use crate::http::{Failure, Http, Timeouts};
use crate::{AuthError, ServiceTokenSource};

/// Events that may wait between the call path and the recorder's task.
const QUEUE: usize = 65_536;

/// Default bound of the spool, bytes (`TOLLGATE_USAGE_SPOOL_MAX`).
const DEFAULT_SPOOL_MAX: u64 = 16 * 1024 * 1024;

/// Counters of a recorder, since it started ([`UsageRecorder::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageStats {
    /// Events queued by [`UsageRecorder::record`] (and replayed from the
    /// spool at start).
    pub recorded: u64,
    /// Events the token service stored.
    pub delivered: u64,
    /// Events the token service had stored already (a second delivery).
    pub duplicates: u64,
    /// Events dropped (a full queue or spool, a refused event).
    pub dropped: u64,
    /// Events waiting in the spool now.
    pub spooled: u64,
    /// Spool lines skipped at start-up (not an event).
    pub skipped_lines: u64,
}

/// What the call path and the task share.
#[derive(Default)]
struct Book {
    /// Undelivered calls per user and tool (queued or spooled).
    pending: Mutex<HashMap<String, HashMap<String, u64>>>,
    recorded: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    dropped: AtomicU64,
    spooled: AtomicU64,
    skipped_lines: AtomicU64,
    /// A drop was logged and nothing was delivered since (one warning per
    /// episode).
    drop_logged: AtomicBool,
}

impl Book {
    fn add_pending(&self, user: &str, tool: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        *pending
            .entry(user.to_owned())
            .or_default()
            .entry(tool.to_owned())
            .or_insert(0) += 1;
    }

    fn settle(&self, events: &[UsageEvent]) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            if let Some(tools) = pending.get_mut(&event.user) {
                if let Some(count) = tools.get_mut(&event.tool) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        tools.remove(&event.tool);
                    }
                }
                if tools.is_empty() {
                    pending.remove(&event.user);
                }
            }
        }
    }

    fn drop_events(&self, events: &[UsageEvent], reason: &'static str) {
        if events.is_empty() {
            return;
        }
        self.settle(events);
        let count = events.len() as u64;
        self.dropped.fetch_add(count, Ordering::Relaxed);
        metrics::counter!("tollgate_client_usage_dropped_total", "reason" => reason)
            .increment(count);
        if !self.drop_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                reason,
                events = count,
                "usage events dropped (the calls proceeded; they are not billed): see tollgate_client_usage_dropped_total"
            );
        }
    }

    fn set_spooled(&self, events: usize) {
        self.spooled.store(events as u64, Ordering::Relaxed);
        metrics::gauge!("tollgate_client_usage_spooled").set(events as f64);
    }
}

/// Asks the task to deliver now; answered with whether the spool is empty.
struct Flush(oneshot::Sender<bool>);

/// The handles' side: dropping the last handle ends the task (after one
/// last delivery attempt; what it cannot deliver stays in the spool file).
struct Handle {
    service: String,
    instance: String,
    seq: AtomicU64,
    events: mpsc::Sender<UsageEvent>,
    flush: mpsc::Sender<Flush>,
}

/// Records admitted calls as usage events and delivers them to the token
/// service. See the module docs. Cheap to clone.
#[derive(Clone)]
pub struct UsageRecorder {
    handle: Arc<Handle>,
    book: Arc<Book>,
}

impl fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageRecorder")
            .field("service", &self.handle.service)
            .field("instance", &self.handle.instance)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Builds a [`UsageRecorder`].
#[derive(Debug)]
pub struct UsageRecorderBuilder {
    tokens: ServiceTokenSource,
    endpoint: String,
    plans: Plans,
    instance: Option<String>,
    spool: Option<PathBuf>,
    spool_max: u64,
    flush_interval: Duration,
    backoff: (Duration, Duration),
    request_timeout: Duration,
}

impl UsageRecorderBuilder {
    /// The plans events are checked against (those of the [`super::ToolGate`]
    /// the recorder serves; [`super::ToolGate::with_usage`] sets them).
    pub fn plans(mut self, plans: Plans) -> Self {
        self.plans = plans;
        self
    }

    /// The instance part of the idempotency key; default a fresh random id
    /// per start. Set it only to a name no other process of the service
    /// uses, and never reuse it after a restart (sequence numbers start
    /// over).
    pub fn instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// The spool file (`TOLLGATE_USAGE_SPOOL`) and its bound in bytes
    /// (`TOLLGATE_USAGE_SPOOL_MAX`).
    pub fn spool(mut self, path: impl Into<PathBuf>, max_bytes: u64) -> Self {
        self.spool = Some(path.into());
        self.spool_max = max_bytes;
        self
    }

    /// Takes `TOLLGATE_USAGE_SPOOL` and `TOLLGATE_USAGE_SPOOL_MAX` from a
    /// resolved configuration.
    pub fn settings(mut self, config: &Config) -> Self {
        self.spool = config.usage_spool.as_ref().map(PathBuf::from);
        self.spool_max = config.usage_spool_max;
        self
    }

    /// How often queued events are delivered (default 1 s; a full batch of
    /// 1000 goes at once).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The back-off between delivery attempts while the token service is
    /// unreachable: from `min`, doubling up to `max`, with jitter (default
    /// 200 ms to 30 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = (min, max.max(min));
        self
    }

    /// Reads the spool left by an earlier process (if any) and starts the
    /// background task on the current tokio runtime.
    ///
    /// Fails when the spool file cannot be read or created.
    pub async fn start(self) -> Result<UsageRecorder, AuthError> {
        let instance = match self.instance {
            Some(instance) => instance,
            None => tollgate_core::claims::new_id()
                .map(|id| format!("i-{id}"))
                .map_err(|_| AuthError::Config("no random instance id for usage events".into()))?,
        };
        let book = Arc::new(Book::default());
        let spool = Spool::open(self.spool.clone(), self.spool_max, &book).map_err(|err| {
            AuthError::Config(format!(
                "the usage spool {} cannot be used: {err}",
                self.spool
                    .as_deref()
                    .map_or_else(String::new, |p| p.display().to_string())
            ))
        })?;
        let http = Http::new(Timeouts {
            connect: Duration::from_secs(2),
            request: self.request_timeout,
        })?;
        let (events_tx, events_rx) = mpsc::channel(QUEUE);
        let (flush_tx, flush_rx) = mpsc::channel(16);
        let service = self.tokens.client_id().to_owned();
        let task = Task {
            sender: Sender {
                http,
                endpoint: self.endpoint,
                tokens: self.tokens,
            },
            service: service.clone(),
            plans: self.plans,
            spool,
            book: book.clone(),
            flush_interval: self.flush_interval,
            backoff: self.backoff,
        };
        tokio::spawn(task.run(events_rx, flush_rx));
        Ok(UsageRecorder {
            handle: Arc::new(Handle {
                service,
                instance,
                seq: AtomicU64::new(0),
                events: events_tx,
                flush: flush_tx,
            }),
            book,
        })
    }
}

impl UsageRecorder {
    /// A recorder delivering to `issuer`'s `POST /v1/usage/events` with
    /// `tokens` (a client with scope `usage`).
    pub fn builder(tokens: ServiceTokenSource, issuer: &str) -> UsageRecorderBuilder {
        UsageRecorderBuilder {
            tokens,
            endpoint: format!("{}/v1/usage/events", issuer.trim_end_matches('/')),
            plans: Plans::default(),
            instance: None,
            spool: None,
            spool_max: DEFAULT_SPOOL_MAX,
            flush_interval: Duration::from_secs(1),
            backoff: (Duration::from_millis(200), Duration::from_secs(30)),
            request_timeout: Duration::from_secs(5),
        }
    }

    /// Records one admitted call of `tool` by `user` under `plan`, now.
    /// Never waits: when the queue is full the event is dropped and
    /// counted.
    pub fn record(&self, user: &str, tool: &str, plan: &str) {
        let seq = self.handle.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let event = UsageEvent {
            service: self.handle.service.clone(),
            instance: self.handle.instance.clone(),
            seq,
            user: user.to_owned(),
            tool: tool.to_owned(),
            plan: plan.to_owned(),
            at: crate::clock::now(),
        };
        self.book.add_pending(user, tool);
        match self.handle.events.try_send(event) {
            Ok(()) => {
                self.book.recorded.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("tollgate_client_usage_events_total", "outcome" => "recorded")
                    .increment(1);
            }
            Err(mpsc::error::TrySendError::Full(event)) => {
                self.book.drop_events(&[event], "queue_full");
            }
            Err(mpsc::error::TrySendError::Closed(event)) => {
                self.book.drop_events(&[event], "closed");
            }
        }
    }

    /// `user`'s calls per tool recorded here and not yet stored by the token
    /// service (queued or spooled): add them to the token service's report
    /// for a figure that includes the last moments.
    pub fn pending_of(&self, user: &str) -> BTreeMap<String, u64> {
        let pending = self
            .book
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pending
            .get(user)
            .map(|tools| tools.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    /// Delivers what is queued and spooled now (past any back-off); true
    /// when nothing is left undelivered. For shutdown and tests.
    pub async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.handle.flush.send(Flush(tx)).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// The counters since start.
    pub fn stats(&self) -> UsageStats {
        let book = &self.book;
        UsageStats {
            recorded: book.recorded.load(Ordering::Relaxed),
            delivered: book.delivered.load(Ordering::Relaxed),
            duplicates: book.duplicates.load(Ordering::Relaxed),
            dropped: book.dropped.load(Ordering::Relaxed),
            spooled: book.spooled.load(Ordering::Relaxed),
            skipped_lines: book.skipped_lines.load(Ordering::Relaxed),
        }
    }

    /// The instance part of this recorder's idempotency keys.
    pub fn instance(&self) -> &str {
        &self.handle.instance
    }
}

/// Posts batches with the service token.
struct Sender {
    http: Http,
    endpoint: String,
    tokens: ServiceTokenSource,
}

impl Sender {
    async fn post(&self, events: &[UsageEvent]) -> Result<UsageAccepted, Failure> {
        let token = self.tokens.token().await.map_err(|err| {
            tracing::debug!(error = %err, "no service token for usage delivery");
            Failure::Unreachable("no service token")
        })?;
        // One copy per attempt: the wire type owns its events.
        let batch = UsageBatch {
            events: events.to_vec(),
        };
        self.http
            .post_json(&self.endpoint, Some(&token.authorization()), &batch)
            .await
    }
}

/// Undelivered events: a file of JSON lines mirrored in memory, or memory
/// alone.
struct Spool {
    file: Option<(PathBuf, File)>,
    events: Vec<UsageEvent>,
    bytes: u64,
    max: u64,
}

impl Spool {
    /// Opens (or creates) the spool and reads what an earlier process left.
    fn open(path: Option<PathBuf>, max: u64, book: &Book) -> io::Result<Spool> {
        let Some(path) = path else {
            return Ok(Spool {
                file: None,
                events: Vec::new(),
                bytes: 0,
                max,
            });
        };
        let mut text = Vec::new();
        match File::open(&path) {
            Ok(mut file) => {
                file.read_to_end(&mut text)?;
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        let mut events = Vec::new();
        let mut bytes = 0;
        let mut clean = text.is_empty() || text.ends_with(b"\n");
        for (index, line) in text.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<UsageEvent>(line) {
                Ok(event) => {
                    bytes += line.len() as u64 + 1;
                    events.push(event);
                }
                Err(_) => {
                    clean = false;
                    book.skipped_lines.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("tollgate_client_usage_spool_skipped_total").increment(1);
                    tracing::warn!(
                        spool = %path.display(),
                        line = index + 1,
                        "usage spool line {} is not a usage event (cut short or corrupt); skipped",
                        index + 1
                    );
                }
            }
        }
        if !clean {
            rewrite(&path, &events)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        for event in &events {
            book.add_pending(&event.user, &event.tool);
        }
        let replayed = events.len() as u64;
        book.recorded.fetch_add(replayed, Ordering::Relaxed);
        book.set_spooled(events.len());
        if replayed > 0 {
            tracing::info!(spool = %path.display(), events = replayed, "replaying usage events spooled by an earlier process");
        }
        Ok(Spool {
            file: Some((path, file)),
            events,
            bytes,
            max,
        })
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Appends `batch` (one write), dropping what does not fit.
    fn append(&mut self, batch: Vec<UsageEvent>, book: &Book) {
        if batch.is_empty() {
            return;
        }
        let mut buffer = Vec::with_capacity(batch.len() * 160);
        let mut kept = Vec::with_capacity(batch.len());
        let mut over = Vec::new();
        for event in batch {
            let start = buffer.len();
            if serde_json::to_writer(&mut buffer, &event).is_err() {
                buffer.truncate(start);
                continue;
            }
            buffer.push(b'\n');
            let size = (buffer.len() - start) as u64;
            if self.bytes + size > self.max {
                buffer.truncate(start);
                over.push(event);
                continue;
            }
            self.bytes += size;
            kept.push(event);
        }
        book.drop_events(&over, "spool_full");
        if let Some((path, file)) = &mut self.file
            && let Err(err) = file.write_all(&buffer)
        {
            // Kept in memory: delivered if the service answers before the
            // process ends.
            tracing::error!(spool = %path.display(), error = %err, "cannot write the usage spool");
        }
        self.events.extend(kept);
        book.set_spooled(self.events.len());
    }

    /// Removes the first `n` events but those whose `keep` is set.
    fn remove_front(&mut self, n: usize, keep: &[bool], book: &Book) {
        let mut index = 0;
        self.events.retain(|_| {
            let retain = index >= n || keep.get(index).copied().unwrap_or(false);
            index += 1;
            retain
        });
        self.bytes = if self.events.is_empty() {
            0
        } else {
            self.events
                .iter()
                .map(|e| serde_json::to_vec(e).map_or(0, |v| v.len() as u64 + 1))
                .sum()
        };
        book.set_spooled(self.events.len());
        if let Some((path, file)) = &mut self.file {
            let done = if self.events.is_empty() {
                file.set_len(0)
            } else {
                rewrite(path, &self.events).and_then(|()| {
                    *file = OpenOptions::new().append(true).open(&*path)?;
                    Ok(())
                })
            };
            if let Err(err) = done {
                tracing::error!(spool = %path.display(), error = %err, "cannot rewrite the usage spool (delivered events may be sent again: counted once)");
            }
        }
    }
}

/// Replaces the spool file with `events` (a temporary file renamed over it).
fn rewrite(path: &Path, events: &[UsageEvent]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut buffer = Vec::new();
    for event in events {
        serde_json::to_writer(&mut buffer, event).map_err(io::Error::other)?;
        buffer.push(b'\n');
    }
    let mut file = File::create(&temporary)?;
    file.write_all(&buffer)?;
    file.sync_data()?;
    std::fs::rename(&temporary, path)
}

/// The background task.
struct Task {
    sender: Sender,
    service: String,
    plans: Plans,
    spool: Spool,
    book: Arc<Book>,
    flush_interval: Duration,
    backoff: (Duration, Duration),
}

impl Task {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<UsageEvent>,
        mut flushes: mpsc::Receiver<Flush>,
    ) {
        let mut batch: Vec<UsageEvent> = Vec::new();
        let mut delay = self.backoff.0;
        let mut attempt: u64 = 0;
        let jitter = std::collections::hash_map::RandomState::new();
        let mut retry_at: Option<Instant> = None;
        let mut ticker = tokio::time::interval(self.flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut forced: Option<Flush> = None;
            let mut last = false;
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => {
                        batch.push(event);
                        if batch.len() < MAX_USAGE_BATCH {
                            continue;
                        }
                    }
                    None => last = true,
                },
                _ = ticker.tick() => {}
                Some(flush) = flushes.recv() => {
                    while batch.len() < 64 * MAX_USAGE_BATCH {
                        match events.try_recv() {
                            Ok(event) => batch.push(event),
                            Err(_) => break,
                        }
                    }
                    forced = Some(flush);
                }
            }
            self.spool.append(std::mem::take(&mut batch), &self.book);
            let waiting = retry_at.is_some_and(|at| Instant::now() < at);
            if !self.spool.is_empty() && (!waiting || forced.is_some() || last) {
                match self.deliver().await {
                    Ok(()) => {
                        delay = self.backoff.0;
                        attempt = 0;
                        retry_at = None;
                    }
                    Err(failure) => {
                        attempt += 1;
                        let spread = jitter.hash_one(attempt) % 1000;
                        let wait = delay / 2 + delay.mul_f64(spread as f64 / 2000.0);
                        tracing::warn!(
                            failure = %failure.describe(),
                            spooled = self.spool.events.len(),
                            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                            "usage events not delivered; kept in the spool"
                        );
                        retry_at = Some(Instant::now() + wait);
                        delay = (delay * 2).min(self.backoff.1);
                    }
                }
            }
            if let Some(Flush(reply)) = forced {
                let _ = reply.send(self.spool.is_empty());
            }
            if last {
                return;
            }
        }
    }

    /// Sends the spool, a batch at a time, until every batch is answered
    /// for or one cannot be delivered; then removes what was answered for.
    async fn deliver(&mut self) -> Result<(), Failure> {
        let total = self.spool.events.len();
        let now = crate::clock::now();
        let mut invalid = Vec::new();
        let mut valid = Vec::with_capacity(total);
        for (index, event) in self.spool.events.iter().enumerate() {
            match usage::check_event(0, event, now, &self.plans, Some(&self.service)) {
                Ok(()) => valid.push(index),
                Err(err) => {
                    tracing::debug!(error = %err, "usage event refused by the core's rules");
                    invalid.push(event.clone());
                }
            }
        }
        self.book.drop_events(&invalid, "invalid");
        let mut keep = vec![false; total];
        let mut outcome = Ok(());
        for chunk in valid.chunks(MAX_USAGE_BATCH) {
            if outcome.is_err() {
                for &index in chunk {
                    keep[index] = true;
                }
                continue;
            }
            outcome = self.send(chunk, &mut keep).await;
        }
        // `keep` marks what is still undelivered.
        self.spool.remove_front(total, &keep, &self.book);
        outcome
    }

    /// Sends the events at `indices` of the spool; a 400 splits the batch
    /// until the refused event is alone (and dropped). On failure every
    /// event not yet answered for is marked in `keep`.
    async fn send(&self, indices: &[usize], keep: &mut [bool]) -> Result<(), Failure> {
        let mut parts: Vec<&[usize]> = vec![indices];
        while let Some(part) = parts.pop() {
            if part.is_empty() {
                continue;
            }
            let events: Vec<UsageEvent> =
                part.iter().map(|&i| self.spool.events[i].clone()).collect();
            match self.sender.post(&events).await {
                Ok(accepted) => {
                    self.book.settle(&events);
                    self.book
                        .delivered
                        .fetch_add(accepted.accepted, Ordering::Relaxed);
                    self.book
                        .duplicates
                        .fetch_add(accepted.duplicates, Ordering::Relaxed);
                    self.book.drop_logged.store(false, Ordering::Relaxed);
                    metrics::counter!("tollgate_client_usage_events_total", "outcome" => "delivered")
                        .increment(accepted.accepted);
                    metrics::counter!("tollgate_client_usage_events_total", "outcome" => "duplicate")
                        .increment(accepted.duplicates);
                }
                Err(Failure::Refused { status: 400, code }) => {
                    if part.len() == 1 {
                        tracing::warn!(
                            code = code.as_deref().unwrap_or("-"),
                            "the token service refused a usage event; dropped"
                        );
                        self.book.drop_events(&events, "refused");
                    } else {
                        let (left, right) = part.split_at(part.len() / 2);
                        parts.push(right);
                        parts.push(left);
                    }
                }
                Err(failure) => {
                    for rest in parts.iter().chain(std::iter::once(&part)) {
                        for &i in *rest {
                            keep[i] = true;
                        }
                    }
                    return Err(failure);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> UsageEvent {
        UsageEvent {
            service: "svc".into(),
            instance: "i-1".into(),
            seq,
            user: "u1".into(),
            tool: "search".into(),
            plan: "free".into(),
            at: 1_700_000_000,
        }
    }

    #[test]
    fn a_spool_skips_bad_lines_rewrites_itself_and_keeps_its_bound() {
        let dir = tempdir();
        let path = dir.join("usage.spool");
        let good = serde_json::to_string(&event(1)).unwrap();
        let other = serde_json::to_string(&event(2)).unwrap();
        // A good line, garbage, a good line, and one cut short by a crash.
        std::fs::write(
            &path,
            format!("{good}\nnot json\n{other}\n{}", &good[..good.len() / 2]),
        )
        .unwrap();
        let book = Book::default();
        let mut spool = Spool::open(Some(path.clone()), 1024, &book).unwrap();
        assert_eq!(spool.events, vec![event(1), event(2)]);
        assert_eq!(book.skipped_lines.load(Ordering::Relaxed), 2);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{good}\n{other}\n")
        );
        // Appends fit under the bound; the rest is dropped and counted.
        spool.append((3..20).map(event).collect(), &book);
        assert!(spool.bytes <= 1024);
        let kept = spool.events.len();
        assert!(kept > 2 && kept < 19, "{kept}");
        assert_eq!(book.dropped.load(Ordering::Relaxed), 19 - kept as u64);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, kept);
        // Delivered events leave; the file follows.
        spool.remove_front(2, &[false, true], &book);
        assert_eq!(spool.events[0], event(2));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            kept - 1
        );
        let n = spool.events.len();
        spool.remove_front(n, &[], &book);
        assert!(spool.is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        // A new process finds an empty spool.
        let again = Spool::open(Some(path), 1024, &Book::default()).unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn pending_counts_follow_delivery() {
        let book = Book::default();
        book.add_pending("u1", "search");
        book.add_pending("u1", "search");
        book.settle(&[event(1)]);
        let pending = book.pending.lock().unwrap();
        assert_eq!(pending["u1"]["search"], 1);
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-usage-{}-{}",
            std::process::id(),
            tollgate_core::claims::new_id().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
