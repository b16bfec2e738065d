//! The service-to-service call: this service asks a peer (by default
//! itself) for its agents with a service token from
//! `ServiceTokenSource`. The peer's route accepts only service tokens.

use serde_json::Value;
use tollgate_client::ServiceTokenSource;

/// The peer holding the agents.
pub struct Peer {
    base_url: String,
    http: reqwest::Client,
    tokens: Option<ServiceTokenSource>,
}

impl Peer {
    /// A peer at `base_url`, called with tokens from `tokens`.
    pub fn new(base_url: String, tokens: Option<ServiceTokenSource>) -> Peer {
        tollgate_client::crypto::install_crypto_provider();
        Peer {
            base_url: base_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            tokens,
        }
    }

    /// The peer's agents, or why they cannot be had (a short code).
    pub async fn agents(&self) -> Result<Value, &'static str> {
        let Some(tokens) = &self.tokens else {
            return Err("no_service_credentials");
        };
        // A token the peer refuses (say, revoked) is dropped and fetched
        // again once.
        for attempt in 0..2 {
            let token = tokens
                .token()
                .await
                .map_err(|_| "service_token_unavailable")?;
            let response = self
                .http
                .get(format!("{}/internal/agents", self.base_url))
                .header(reqwest::header::AUTHORIZATION, token.authorization())
                .send()
                .await
                .map_err(|_| "peer_unreachable")?;
            if response.status() == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 {
                tokens.invalidate();
                continue;
            }
            if !response.status().is_success() {
                return Err("peer_refused");
            }
            let body: Value = response.json().await.map_err(|_| "peer_invalid_answer")?;
            return Ok(body.get("agents").cloned().unwrap_or(Value::Null));
        }
        Err("peer_refused")
    }
}
