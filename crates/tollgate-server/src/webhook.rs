//! The audit webhook (`TOLLGATE_AUDIT_WEBHOOK_URL`, docs/audit.md): events
//! of the chosen types, once written to the store, are posted one by one as
//! JSON (the `AuditRecord` of `GET /v1/admin/audit`), signed in
//! `X-Tollgate-Signature` (`sha256=` HMAC-SHA256 of the body), by one task
//! with a bounded queue of its own. A failed post (no answer within 5 s, or
//! not 2xx) is retried after 0.5 s, 1 s, 2 s, 4 s and 8 s, then given up
//! (`tollgate_audit_webhook_failures_total`, an error log); events behind
//! it wait, in order. The audit writer hands events over without waiting:
//! when this queue is full the event is not posted (it stays in the trail),
//! counted in `tollgate_audit_webhook_dropped_total` and logged.

use std::time::Duration;

use tokio::sync::mpsc;
use tollgate_core::Secret;
use tollgate_core::audit::webhook_signature;
use tollgate_core::config::Config;
use tollgate_core::wire::AuditRecord;

use crate::metrics;

/// Events waiting to be posted, at most.
const QUEUE: usize = 1000;
/// Attempts per event.
const ATTEMPTS: u32 = 6;
/// The first retry's delay; each further one doubles it.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// The signature header.
pub(crate) const SIGNATURE: &str = "x-tollgate-signature";

/// The hand-over end, held by the audit writer.
#[derive(Clone)]
pub(crate) struct Webhook {
    queue: mpsc::Sender<AuditRecord>,
    types: Vec<String>,
}

/// The posting end: [`Poster::run`] is the background task.
pub(crate) struct Poster {
    queue: mpsc::Receiver<AuditRecord>,
    url: String,
    key: Secret,
    http: reqwest::Client,
}

impl Webhook {
    /// The webhook of `config`, when one is configured (the configuration
    /// rules made sure it has an http(s) URL and a key).
    pub fn from_config(config: &Config) -> Result<Option<(Webhook, Poster)>, String> {
        let (Some(url), Some(key)) = (&config.audit_webhook_url, &config.audit_webhook_secret)
        else {
            return Ok(None);
        };
        let url = url
            .expose_str()
            .ok_or("TOLLGATE_AUDIT_WEBHOOK_URL is not text")?
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| "the audit webhook's HTTP client cannot be built".to_owned())?;
        let (queue, receiver) = mpsc::channel(QUEUE);
        Ok(Some((
            Webhook {
                queue,
                types: config.audit_webhook_types.clone(),
            },
            Poster {
                queue: receiver,
                url,
                key: key.clone(),
                http,
            },
        )))
    }

    /// Whether events of `kind` are posted.
    pub fn wants(&self, kind: &str) -> bool {
        self.types.iter().any(|t| t == "*" || t == kind)
    }

    /// Hands a written event over; never waits.
    pub fn offer(&self, record: AuditRecord) {
        if let Err(error) = self.queue.try_send(record) {
            let kind = match &error {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => {
                    r.kind.clone()
                }
            };
            ::metrics::counter!(metrics::AUDIT_WEBHOOK_DROPPED).increment(1);
            tracing::error!(
                kind,
                "the audit webhook's queue is full; the event is not posted"
            );
        }
    }
}

impl Poster {
    /// Posts queued events until the queue closes.
    pub async fn run(mut self) {
        while let Some(record) = self.queue.recv().await {
            let Ok(body) = serde_json::to_vec(&record) else {
                continue;
            };
            let signature = webhook_signature(self.key.expose(), &body);
            let mut delay = FIRST_RETRY;
            for attempt in 1..=ATTEMPTS {
                match self.post(&body, &signature, &record.kind).await {
                    Ok(()) => {
                        ::metrics::counter!(metrics::AUDIT_WEBHOOK_POSTED).increment(1);
                        break;
                    }
                    Err(why) if attempt == ATTEMPTS => {
                        ::metrics::counter!(metrics::AUDIT_WEBHOOK_FAILURES).increment(1);
                        tracing::error!(kind = %record.kind, cursor = record.cursor, why, attempts = ATTEMPTS,
                            "posting an audit event to the webhook failed; given up");
                    }
                    Err(why) => {
                        tracing::warn!(kind = %record.kind, cursor = record.cursor, why, attempt,
                            "posting an audit event to the webhook failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
    }

    async fn post(&self, body: &[u8], signature: &str, kind: &str) -> Result<(), String> {
        // The URL is never logged: hook URLs often hold a credential.
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE, signature)
            .header("x-tollgate-event", kind)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|error| {
                if error.is_timeout() {
                    "no answer in time".to_owned()
                } else {
                    "the request failed".to_owned()
                }
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", response.status().as_u16()))
        }
    }
}
