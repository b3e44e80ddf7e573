//! Signed webhook deliveries from the durable outbox (`webhook_deliveries`).
//!
//! Body: the JSON stored at enqueue time, identical on every attempt. Headers:
//! `X-Seidra-Event`, `X-Seidra-Delivery` (the delivery id) and
//! `X-Seidra-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! A 2xx answer is delivered; anything else (status, timeout, refused address) is retried
//! after `retry_base × 1, 3, 12, 60, 360, 720…` until `max_attempts`, then failed.
//!
//! SSRF: the HTTP client resolves host names only through [`OutboundPolicy::resolve_vetted`]
//! (connects only to the vetted addresses: no DNS-rebinding gap), IP-literal URLs are checked
//! before each attempt, and redirects and proxies are off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use seidra_config::WebhookSettings;
use seidra_net::{NetError, OutboundPolicy};
use seidra_store::Db;
use seidra_store::webhooks::{self, AttemptResult, Delivery, Webhook};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Events an endpoint can subscribe to (`*` = all).
pub const EVENTS: &[&str] = &["job.succeeded", "job.failed", "job.cancelled", "export.ready", "*"];
/// The event sent by the "send test event" endpoint (always delivered, whatever the list).
pub const TEST_EVENT: &str = "webhook.test";
/// Back-off multipliers of `retry_base` per retry.
const BACKOFF: &[u32] = &[1, 3, 12, 60, 360, 720, 1440];
/// Deliveries claimed per poll.
const BATCH: i64 = 16;

/// A fresh signing secret: `whsec_` + 64 hex characters.
pub fn generate_secret() -> Result<String, getrandom::Error> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf)?;
    Ok(format!("whsec_{}", hex::encode(buf)))
}

/// Hex HMAC-SHA256 of `"<t>.<body>"` under `secret`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes keys of any length; this cannot happen.
        return String::new();
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `X-Seidra-Signature` header value.
pub fn signature_header(secret: &str, t: i64, body: &str) -> String {
    format!("t={t},v1={}", signature(secret, t, body))
}

/// Wait before retry number `attempt` (1 = after the first failure).
pub fn backoff(attempt: u32, base: Duration) -> Duration {
    let i = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX).min(BACKOFF.len() - 1);
    base.saturating_mul(BACKOFF.get(i).copied().unwrap_or(1440))
}

/// Enqueues `event` for the owner's subscribed endpoints (one INSERT); errors are logged.
pub async fn enqueue(db: &Db, owner_id: Uuid, event: &str, payload: &str) {
    match webhooks::enqueue(db, owner_id, event, payload).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(event, deliveries = n, "webhook deliveries enqueued"),
        Err(err) => tracing::warn!(%err, event, "could not enqueue webhook deliveries"),
    }
}

/// How deliveries are made; cheap to clone.
#[derive(Clone)]
pub struct DeliveryConfig {
    /// Which addresses may be reached.
    pub policy: Arc<OutboundPolicy>,
    /// First retry delay.
    pub retry_base: Duration,
    /// Attempts before failing.
    pub max_attempts: u32,
    /// Per-request limit.
    pub timeout: Duration,
    /// Outbox poll interval.
    pub poll_interval: Duration,
    /// How long finished deliveries stay in the log.
    pub retention: chrono::Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for DeliveryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryConfig")
            .field("policy", &self.policy)
            .field("retry_base", &self.retry_base)
            .field("max_attempts", &self.max_attempts)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DeliveryConfig {
    /// Builds the configuration and its guarded HTTP client from the settings.
    pub fn from_settings(settings: &WebhookSettings) -> Result<Self, String> {
        let policy = Arc::new(
            OutboundPolicy::parse(&settings.allow_private)
                .map_err(|e| format!("SEIDRA_WEBHOOKS__ALLOW_PRIVATE: {e}"))?,
        );
        let timeout = Duration::from_secs(settings.timeout_secs.max(1));
        let client = seidra_net::guarded_client(policy.clone(), concat!("seidra-webhooks/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Self {
            policy,
            retry_base: Duration::from_millis(settings.retry_base_ms),
            max_attempts: settings.max_attempts.max(1),
            timeout,
            poll_interval: Duration::from_millis(settings.poll_interval_ms.max(10)),
            retention: chrono::Duration::days(i64::from(settings.retention_days)),
            client,
        })
    }

    /// Vets a URL for an endpoint being created or changed (scheme, credentials, and every
    /// address its host resolves to).
    pub async fn vet_url(&self, url: &str) -> Result<String, NetError> {
        self.policy.vet_url(url).await.map(|u| u.to_string())
    }

    /// Makes one attempt at a claimed delivery and records it (delivered, retry or failed).
    pub async fn deliver(&self, db: &Db, delivery: &Delivery) -> seidra_store::StoreResult<Delivery> {
        let attempt = u32::try_from(delivery.attempts).unwrap_or(u32::MAX);
        let webhook = match webhooks::get(db, delivery.webhook_id).await {
            Ok(w) => Some(w),
            Err(seidra_store::StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let (outcome, retryable) = match &webhook {
            _ if attempt > self.max_attempts => (Outcome::error("no attempts left", 0), false),
            Some(w) if w.active => self.send(w, delivery).await,
            _ => (Outcome::error("the endpoint is disabled", 0), false),
        };
        let delivered = outcome.status.is_some_and(|s| (200..300).contains(&s));
        let retry_at = (!delivered && retryable && attempt < self.max_attempts)
            .then(|| Utc::now() + chrono::Duration::from_std(backoff(attempt, self.retry_base)).unwrap_or_default());
        let label = if delivered {
            "delivered"
        } else if retry_at.is_some() {
            "retry"
        } else {
            "failed"
        };
        metrics::counter!("seidra_webhook_deliveries_total", "outcome" => label).increment(1);
        metrics::histogram!("seidra_webhook_delivery_duration_seconds").record(outcome.duration_ms as f64 / 1000.0);
        let result = AttemptResult {
            status_code: outcome.status.map(i32::from),
            error: outcome.error,
            duration_ms: outcome.duration_ms,
            delivered,
            retry_at,
        };
        webhooks::record_attempt(db, delivery, &result).await
    }

    /// Sends one request; returns what happened and whether a retry makes sense.
    async fn send(&self, webhook: &Webhook, delivery: &Delivery) -> (Outcome, bool) {
        if let Err(err) = self.policy.check_url_literal(&webhook.url) {
            return (Outcome::error(&format!("url {err}"), 0), false);
        }
        let t = Utc::now().timestamp();
        let started = Instant::now();
        let response = self
            .client
            .post(&webhook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Seidra-Event", &delivery.event)
            .header("X-Seidra-Delivery", delivery.id.to_string())
            .header("X-Seidra-Signature", signature_header(&webhook.secret, t, &delivery.payload))
            .body(delivery.payload.clone())
            .send()
            .await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        match response {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let error = (!resp.status().is_success()).then(|| format!("HTTP {status}"));
                (Outcome { status: Some(status), error, duration_ms }, true)
            }
            Err(err) => {
                let text = error_chain(&err);
                let refused = text.contains("outbound requests to it are refused");
                (Outcome::error(&text, duration_ms), !refused)
            }
        }
    }

    /// Sends the test event to one endpoint now (whatever its event list); the delivery is
    /// recorded like any other and retried on failure.
    pub async fn send_test(&self, db: &Db, webhook: &Webhook) -> seidra_store::StoreResult<Delivery> {
        let payload = serde_json::json!({
            "event": TEST_EVENT,
            "created_at": Utc::now(),
            "data": { "webhook_id": webhook.id, "message": "This is a test event from SEIDRA." },
        })
        .to_string();
        let locked_until = Utc::now() + chrono::Duration::from_std(self.timeout * 3).unwrap_or_default();
        let delivery = webhooks::enqueue_claimed(db, webhook.id, TEST_EVENT, &payload, locked_until).await?;
        self.deliver(db, &delivery).await
    }

    /// The delivery loop: claims due deliveries and sends them until `stop`. Safe to run in
    /// several processes at once (claims skip rows another process holds).
    pub async fn run(self, db: Db, stop: CancellationToken) {
        let lock_for = chrono::Duration::from_std(self.timeout * 3).unwrap_or(chrono::Duration::seconds(30));
        let mut last_prune = Instant::now();
        loop {
            let claimed = match webhooks::claim_due(&db, BATCH, Utc::now() + lock_for).await {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::warn!(%err, "cannot claim webhook deliveries");
                    Vec::new()
                }
            };
            let full = i64::try_from(claimed.len()).unwrap_or(0) >= BATCH;
            let mut sends = tokio::task::JoinSet::new();
            for delivery in claimed {
                let (me, db) = (self.clone(), db.clone());
                sends.spawn(async move {
                    if let Err(err) = me.deliver(&db, &delivery).await {
                        tracing::warn!(%err, delivery_id = delivery.id, "could not record a webhook attempt");
                    }
                });
            }
            while sends.join_next().await.is_some() {}
            if last_prune.elapsed() > Duration::from_secs(3600) {
                last_prune = Instant::now();
                if let Err(err) = webhooks::prune(&db, Utc::now() - self.retention).await {
                    tracing::warn!(%err, "pruning the webhook delivery log failed");
                }
            }
            if full {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll_interval) => {}
                () = stop.cancelled() => break,
            }
        }
    }
}

/// One attempt's result before it is recorded.
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    duration_ms: i64,
}

impl Outcome {
    fn error(message: &str, duration_ms: i64) -> Self {
        Self { status: None, error: Some(message.chars().take(500).collect()), duration_ms }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let sig = signature("whsec_test", 1_700_000_000, r#"{"a":1}"#);
        assert_eq!(sig, "38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789");
        assert_eq!(signature_header("whsec_test", 1_700_000_000, r#"{"a":1}"#), format!("t=1700000000,v1={sig}"));
        assert_ne!(sig, signature("whsec_other", 1_700_000_000, r#"{"a":1}"#));
    }

    #[tokio::test]
    async fn the_client_refuses_to_connect_to_internal_addresses() {
        // A listener that would accept: the refusal must come from the resolver, not the network.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await;
        let Ok(listener) = listener else { panic!("bind") };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let Ok(config) = DeliveryConfig::from_settings(&WebhookSettings::default()) else { panic!("config") };
        let err = config.client.post(format!("http://localhost:{port}/")).send().await.err();
        let text = err.as_ref().map(|e| error_chain(e)).unwrap_or_default();
        assert!(text.contains("refused"), "{text}");
        let allowed = WebhookSettings { allow_private: vec!["localhost".into()], ..WebhookSettings::default() };
        let Ok(config) = DeliveryConfig::from_settings(&allowed) else { panic!("config") };
        let accept = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
        let _ =
            tokio::time::timeout(Duration::from_secs(2), config.client.get(format!("http://localhost:{port}/")).send())
                .await;
        assert!(
            matches!(tokio::time::timeout(Duration::from_secs(2), accept).await, Ok(Ok(Ok(())))),
            "allow-listed host connects"
        );
    }

    #[test]
    fn backoff_grows_then_caps() {
        let base = Duration::from_secs(10);
        assert_eq!(backoff(1, base), Duration::from_secs(10));
        assert_eq!(backoff(2, base), Duration::from_secs(30));
        assert_eq!(backoff(3, base), Duration::from_secs(120));
        assert_eq!(backoff(5, base), Duration::from_secs(3600));
        assert_eq!(backoff(50, base), Duration::from_secs(14_400));
    }
}
