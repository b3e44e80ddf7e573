//! The background listener: one dedicated connection per bus, kept alive forever.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use crate::Event;
use crate::bus::{BusError, CONNECT_TIMEOUT, Incoming, Probes, Publisher, decode, probe_payload};

/// First delay before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A connection that lived this long was healthy: the next loss starts back-off afresh.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How often each process publishes a keep-alive probe.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(10);
/// Silence after which the subscription is presumed dead (several keep-alives missed).
const WATCHDOG: Duration = Duration::from_secs(35);

/// How to open the subscribing connection.
pub(crate) enum Connector {
    Postgres { options: PgConnectOptions, channel: Arc<str> },
    Redis { client: redis::Client, channel: Arc<str> },
}

/// An open subscribing connection.
pub(crate) enum Subscription {
    Postgres(PgListener),
    Redis(redis::aio::PubSub),
}

impl Connector {
    fn transport(&self) -> &'static str {
        match self {
            Self::Postgres { .. } => "postgres",
            Self::Redis { .. } => "redis",
        }
    }

    /// Connects and subscribes; returns once the server confirmed the subscription, so events
    /// published afterwards are sure to be heard.
    pub(crate) async fn connect(&self) -> Result<Subscription, BusError> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect_unbounded())
            .await
            .map_err(|_| BusError::Timeout { what: "subscribing to the event channel", after: CONNECT_TIMEOUT })?
    }

    async fn connect_unbounded(&self) -> Result<Subscription, BusError> {
        match self {
            Self::Postgres { options, channel } => {
                // A fresh one-connection pool per attempt: a listener dropped on a wedged
                // connection hands it back asynchronously (`UNLISTEN *`), and that must not
                // block the next attempt on a shared slot.
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .min_connections(0)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .max_lifetime(None)
                    .idle_timeout(None)
                    .connect_with(options.clone())
                    .await?;
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.ignore_pool_close_event(true);
                // Reconnection is ours, with back-off and logs; the listener just reports loss.
                listener.eager_reconnect(false);
                listener.listen(channel).await?;
                Ok(Subscription::Postgres(listener))
            }
            Self::Redis { client, channel } => {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&**channel).await?;
                Ok(Subscription::Redis(pubsub))
            }
        }
    }
}

impl Subscription {
    /// The next payload; `Ok(None)` when the connection is gone.
    ///
    /// Cancel-safe for Redis; for PostgreSQL it is only cancelled when the listener is then
    /// dropped, since a half-read message would otherwise be lost.
    async fn next(&mut self) -> Result<Option<String>, BusError> {
        match self {
            Self::Postgres(listener) => Ok(listener.try_recv().await?.map(|n| n.payload().to_owned())),
            Self::Redis(pubsub) => match pubsub.on_message().next().await {
                Some(msg) => Ok(Some(msg.get_payload::<String>()?)),
                None => Ok(None),
            },
        }
    }
}

/// The listener task: feeds the local broadcast and answers probes until aborted.
pub(crate) async fn run(
    connector: Connector,
    first: Subscription,
    publisher: Publisher,
    tx: broadcast::Sender<Arc<Event>>,
    probes: Arc<Probes>,
) {
    tokio::select! {
        never = listen_forever(&connector, first, &tx, &probes) => match never {},
        never = keep_alive(&publisher) => match never {},
    }
}

async fn listen_forever(
    connector: &Connector,
    first: Subscription,
    tx: &broadcast::Sender<Arc<Event>>,
    probes: &Probes,
) -> Infallible {
    let mut next_subscription = Some(first);
    let mut backoff = MIN_BACKOFF;
    let mut failed_attempts: u32 = 0;
    let mut lost_at: Option<Instant> = None;
    loop {
        let mut subscription = match next_subscription.take() {
            Some(subscription) => subscription,
            None => match connector.connect().await {
                Ok(subscription) => {
                    if let Some(lost_at) = lost_at.take() {
                        tracing::info!(
                            down_for = ?lost_at.elapsed(),
                            failed_attempts,
                            "event bus listener reconnected"
                        );
                    }
                    failed_attempts = 0;
                    subscription
                }
                Err(err) => {
                    failed_attempts = failed_attempts.saturating_add(1);
                    tracing::warn!(error = %err, failed_attempts, retry_in = ?backoff, "event bus listener cannot reconnect");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let connected_at = Instant::now();
        let reason = pump(&mut subscription, tx, probes).await;
        drop(subscription);
        metrics::counter!("seidra_events_reconnects_total", "transport" => connector.transport()).increment(1);
        if connected_at.elapsed() >= STABLE_AFTER {
            backoff = MIN_BACKOFF;
        }
        tracing::warn!(
            reason = %reason,
            retry_in = ?backoff,
            "event bus listener lost its connection; events published until it reconnects will not reach this process"
        );
        lost_at = Some(Instant::now());
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Forwards payloads until the connection is lost or silent too long; returns why.
async fn pump(subscription: &mut Subscription, tx: &broadcast::Sender<Arc<Event>>, probes: &Probes) -> String {
    let watchdog = tokio::time::sleep(WATCHDOG);
    tokio::pin!(watchdog);
    loop {
        tokio::select! {
            next = subscription.next() => match next {
                Ok(Some(payload)) => {
                    watchdog.as_mut().reset(Instant::now() + WATCHDOG);
                    dispatch(&payload, tx, probes);
                }
                Ok(None) => return "connection closed".to_owned(),
                Err(err) => return err.to_string(),
            },
            () = &mut watchdog => {
                return format!("nothing received for {WATCHDOG:?}, not even keep-alive probes");
            }
        }
    }
}

fn dispatch(payload: &str, tx: &broadcast::Sender<Arc<Event>>, probes: &Probes) {
    match decode(payload) {
        Ok(Incoming::Event(event)) => {
            // No receiver is not an error: nobody is watching.
            let _ = tx.send(Arc::new(event));
        }
        Ok(Incoming::Probe(id)) => probes.complete(id),
        Err(err) => {
            tracing::warn!(error = %err, bytes = payload.len(), "ignoring a message on the event channel that is not an event");
        }
    }
}

/// Publishes a probe now and then so that every listener on the channel hears something even
/// when no events flow; silence then means a dead connection.
async fn keep_alive(publisher: &Publisher) -> Infallible {
    // The nil id matches no pending health check: it only proves the path works.
    let payload = probe_payload(Uuid::nil());
    let mut ticks = tokio::time::interval_at(Instant::now() + KEEPALIVE_EVERY, KEEPALIVE_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(err) = publisher.send(&payload).await {
            tracing::debug!(error = %err, "event bus keep-alive probe not sent");
        }
    }
}
