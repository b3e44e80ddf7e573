//! The bus handle: publishing, subscribing and the health round trip.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::AbortHandle;
use tracing::Instrument;
use uuid::Uuid;

use crate::Event;
use crate::listener::{self, Connector};

/// Events the local broadcast holds for its slowest receiver before that receiver lags.
pub const BROADCAST_CAPACITY: usize = 4096;

/// Largest `NOTIFY` payload PostgreSQL accepts, in bytes (it must be shorter than 8000).
pub const PG_MAX_PAYLOAD: usize = 7999;

/// PostgreSQL truncates identifiers to 63 bytes: `LISTEN` would then listen on another name
/// than the one `pg_notify` sends to.
const PG_MAX_CHANNEL: usize = 63;

/// Limit for connecting and subscribing at start.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Limit for [`EventBus::health`].
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Limit for one publish: a server that stopped answering must not stall the publisher (a
/// worker reporting progress) for the length of the client's reconnection attempts.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);

/// Most events sent by one statement of [`EventBus::publish_many`] (bind parameters stay few).
const PUBLISH_BATCH: usize = 64;

/// Why an event bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// PostgreSQL refused or could not be reached.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] sqlx::Error),
    /// Redis refused or could not be reached.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The server did not answer in time.
    #[error("{what} did not complete within {after:?}")]
    Timeout {
        /// The step that timed out.
        what: &'static str,
        /// The limit that passed.
        after: Duration,
    },
    /// The channel name cannot be used on this transport.
    #[error("invalid event channel name {name:?}: {reason}")]
    InvalidChannel {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The event could not be serialised.
    #[error("cannot encode the event: {0}")]
    Encode(#[from] serde_json::Error),
    /// The event exceeds the PostgreSQL payload limit even with its `data` truncated.
    #[error("the event is {bytes} bytes even with its data truncated; PostgreSQL accepts at most {PG_MAX_PAYLOAD}")]
    TooLarge {
        /// Size of the truncated event.
        bytes: usize,
    },
}

/// A handle on the event bus; clones share one listener and one local broadcast.
///
/// `publish` returning `Err` with a transport error ([`BusError::Postgres`],
/// [`BusError::Redis`], [`BusError::Timeout`]) means the event reached this process's
/// subscribers only; [`BusError::TooLarge`], [`BusError::Encode`] mean it reached nobody.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    tx: broadcast::Sender<Arc<Event>>,
    transport: &'static str,
    channel: Arc<str>,
    publisher: Option<Publisher>,
    /// Sends the single-event publishes waiting at the same moment in one round trip.
    coalescer: Option<Coalescer>,
    probes: Arc<Probes>,
    listener: Option<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The listener owns only clones of the sender and the probe table, never `Inner`, so
        // the last handle going away is what ends it.
        if let Some(task) = &self.listener {
            task.abort();
        }
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("transport", &self.inner.transport)
            .field("channel", &self.inner.channel)
            .finish_non_exhaustive()
    }
}

impl EventBus {
    /// A bus that only reaches subscribers of this process (`tokio::sync::broadcast`).
    pub fn in_process() -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            inner: Arc::new(Inner {
                tx,
                transport: "in_process",
                channel: Arc::from(""),
                publisher: None,
                coalescer: None,
                probes: Arc::default(),
                listener: None,
            }),
        }
    }

    /// A bus over PostgreSQL `LISTEN/NOTIFY` on `channel`; publishes go through `pool`, the
    /// listener keeps its own connection (same connect options) outside the pool.
    pub async fn postgres(pool: PgPool, channel: &str) -> Result<Self, BusError> {
        check_channel(channel, Some(PG_MAX_CHANNEL))?;
        let channel: Arc<str> = Arc::from(channel);
        // Outside the caller's pool so the listener neither occupies one of its slots forever
        // nor is closed by its idle and lifetime reaping.
        let options = (*pool.connect_options()).clone().application_name("seidra-events-listener");
        let connector = Connector::Postgres { options, channel: channel.clone() };
        let subscription = connector.connect().await?;
        Ok(Self::start("postgres", connector, subscription, Publisher::Postgres { pool: publish_pool(&pool), channel }))
    }

    /// A bus over Redis `PUBLISH/SUBSCRIBE` on `channel`.
    pub async fn redis(url: &str, channel: &str) -> Result<Self, BusError> {
        check_channel(channel, None)?;
        let channel: Arc<str> = Arc::from(channel);
        let client = redis_client(url)?;
        // Short timeouts and few retries: a publish during an outage must fail fast so the
        // event reaches local subscribers without stalling the publisher.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, ConnectionManager::new_with_config(client.clone(), config))
            .await
            .map_err(|_| BusError::Timeout { what: "connecting to Redis", after: CONNECT_TIMEOUT })??;
        let connector = Connector::Redis { client, channel: channel.clone() };
        let subscription = connector.connect().await?;
        Ok(Self::start("redis", connector, subscription, Publisher::Redis { conn, channel }))
    }

    fn start(
        transport: &'static str,
        connector: Connector,
        subscription: listener::Subscription,
        publisher: Publisher,
    ) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let probes = Arc::<Probes>::default();
        let channel = publisher.channel().clone();
        // tokio task names need `tokio_unstable`; the span names the task in every log line.
        let span = tracing::info_span!("seidra_events_listener", transport, channel = %channel);
        let task = tokio::spawn(
            listener::run(connector, subscription, publisher.clone(), tx.clone(), probes.clone()).instrument(span),
        );
        Self {
            inner: Arc::new(Inner {
                tx,
                transport,
                channel,
                coalescer: Some(Coalescer::start(publisher.clone())),
                publisher: Some(publisher),
                probes,
                listener: Some(task.abort_handle()),
            }),
        }
    }

    /// Publishes `event` to every subscriber of every process on this transport and channel.
    ///
    /// On a transport error the event is delivered to this process's subscribers directly and
    /// the error is returned for the caller to log or count.
    pub async fn publish(&self, event: &Event) -> Result<(), BusError> {
        let inner = &*self.inner;
        let (Some(publisher), Some(coalescer)) = (&inner.publisher, &inner.coalescer) else {
            // No receiver is not an error: nobody is watching.
            let _ = inner.tx.send(Arc::new(event.clone()));
            return Ok(());
        };
        let (payload, sent) = encode(event, publisher.max_payload(), &inner.channel)?;
        match coalescer.send(payload).await {
            Ok(()) => Ok(()),
            Err(err) => {
                metrics::counter!("seidra_events_publish_errors_total", "transport" => inner.transport).increment(1);
                // This process's clients keep seeing this process's events while the server is
                // away; the event did not go out, so it cannot come back through the listener.
                let _ = inner.tx.send(Arc::new(sent.into_owned()));
                Err(err)
            }
        }
    }

    /// Publishes `events` in order, in one round trip to the server (one statement of several
    /// `pg_notify` calls, or one Redis pipeline): what a worker uses when a batch of jobs
    /// changes at once. Errors as [`EventBus::publish`]; an event that cannot be encoded is
    /// skipped (and counted in the error) while the others go out.
    pub async fn publish_many(&self, events: &[Event]) -> Result<(), BusError> {
        let inner = &*self.inner;
        let Some(publisher) = &inner.publisher else {
            for event in events {
                let _ = inner.tx.send(Arc::new(event.clone()));
            }
            return Ok(());
        };
        let mut first_error = None;
        let mut payloads = Vec::with_capacity(events.len());
        let mut sent = Vec::with_capacity(events.len());
        for event in events {
            match encode(event, publisher.max_payload(), &inner.channel) {
                Ok((payload, ev)) => {
                    payloads.push(payload);
                    sent.push(ev);
                }
                Err(err) => first_error = first_error.or(Some(err)),
            }
        }
        for chunk in payloads.chunks(PUBLISH_BATCH).zip(sent.chunks(PUBLISH_BATCH)) {
            let (payloads, sent) = chunk;
            let sent_out = tokio::time::timeout(PUBLISH_TIMEOUT, publisher.send_many(payloads))
                .await
                .unwrap_or(Err(BusError::Timeout { what: "publishing events", after: PUBLISH_TIMEOUT }));
            if let Err(err) = sent_out {
                metrics::counter!("seidra_events_publish_errors_total", "transport" => inner.transport).increment(1);
                for ev in sent {
                    let _ = inner.tx.send(Arc::new(ev.clone().into_owned()));
                }
                first_error = first_error.or(Some(err));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The PostgreSQL channel when this bus runs over `LISTEN/NOTIFY`, so that a database
    /// transaction can send its own events with `pg_notify` (delivered at commit, in commit
    /// order, and never for a transaction that rolls back). `None` on other transports.
    pub fn notify_channel(&self) -> Option<&str> {
        match &self.inner.publisher {
            Some(Publisher::Postgres { channel, .. }) => Some(channel),
            _ => None,
        }
    }

    /// The payload [`EventBus::publish`] would send for `event` on this transport (with the
    /// PostgreSQL size limit applied).
    pub fn encode(&self, event: &Event) -> Result<String, BusError> {
        let limit = self.inner.publisher.as_ref().and_then(Publisher::max_payload);
        Ok(encode(event, limit, &self.inner.channel)?.0)
    }

    /// On the in-process bus, hands `event` to subscribers at once (no I/O, no await) and
    /// returns true; returns false on the other transports, which must use [`EventBus::publish`].
    pub fn publish_in_process(&self, event: &Event) -> bool {
        if self.inner.publisher.is_some() {
            return false;
        }
        let _ = self.inner.tx.send(Arc::new(event.clone()));
        true
    }

    /// A new subscription: every event published after this call, in order, until dropped.
    ///
    /// A receiver more than [`BROADCAST_CAPACITY`] events behind gets `RecvError::Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.tx.subscribe()
    }

    /// The transport: `"in_process"`, `"postgres"` or `"redis"`.
    pub fn transport(&self) -> &'static str {
        self.inner.transport
    }

    /// Round trip of a probe through the server and back through this process's listener.
    ///
    /// This proves both directions work, which a plain ping would not. In-process: zero.
    pub async fn health(&self) -> Result<Duration, BusError> {
        let started = Instant::now();
        let Some(publisher) = &self.inner.publisher else { return Ok(started.elapsed()) };
        let (id, _pending, answered) = self.inner.probes.register();
        let round_trip = async {
            publisher.send(&probe_payload(id)).await?;
            // The sender is only dropped by `_pending`, which outlives this future.
            let _ = answered.await;
            Ok::<_, BusError>(())
        };
        tokio::time::timeout(HEALTH_TIMEOUT, round_trip)
            .await
            .map_err(|_| BusError::Timeout { what: "event bus round trip", after: HEALTH_TIMEOUT })??;
        Ok(started.elapsed())
    }
}

fn check_channel(name: &str, max_len: Option<usize>) -> Result<(), BusError> {
    let invalid = |reason| Err(BusError::InvalidChannel { name: name.to_owned(), reason });
    if name.is_empty() {
        return invalid("it is empty");
    }
    if max_len.is_some_and(|max| name.len() > max) {
        return invalid("PostgreSQL channel names are at most 63 bytes");
    }
    if name.contains('\0') {
        return invalid("it contains a NUL byte");
    }
    Ok(())
}

/// A Redis client whose connections send small commands at once: a multiplexed connection
/// writes concurrent callers' commands back to back, and with Nagle's algorithm the second
/// waited for the server's delayed ACK of the first (up to 40 ms).
pub fn redis_client(url: &str) -> Result<redis::Client, redis::RedisError> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    redis::Client::open(info.set_tcp_settings(tcp))
}

/// Connections a process keeps for publishing on PostgreSQL: the coalescer sends one batch at a
/// time, and workers' `publish_many` calls add a few more.
const PG_PUBLISH_CONNECTIONS: u32 = 4;

/// A small pool of its own for `NOTIFY`, committing without waiting for the WAL flush.
///
/// PostgreSQL serialises every transaction that notified, server-wide, from pre-commit until
/// its commit is over (a lock on the notify queue), and a synchronous commit includes the disk
/// flush: ~3 ms here, which capped all processes together at ~300 publishing transactions a
/// second and made more worker slots *slower* (they queued on that lock). Events need no
/// durability — a listener that misses some resynchronises from the database — so these
/// commits skip the flush and hold the lock for microseconds.
fn publish_pool(pool: &PgPool) -> PgPool {
    let options = (*pool.connect_options())
        .clone()
        .application_name("seidra-events-publisher")
        .options([("synchronous_commit", "off")]);
    PgPoolOptions::new()
        .max_connections(PG_PUBLISH_CONNECTIONS)
        .min_connections(0)
        .acquire_timeout(PUBLISH_TIMEOUT)
        .connect_lazy_with(options)
}

/// Group commit for events: single publishes from many tasks (a worker's jobs reporting
/// progress) queue here and one task sends whatever is waiting in one statement or pipeline,
/// then answers each caller. On PostgreSQL every `NOTIFY` transaction's commit is serialised
/// server-wide, so one `pg_notify` per event made the commit lock, not the CPU, the limit.
/// A caller's events still go out in the order it published them: it waits for its answer.
struct Coalescer {
    tx: mpsc::Sender<(String, oneshot::Sender<Result<(), BusError>>)>,
}

impl Coalescer {
    fn start(publisher: Publisher) -> Self {
        let (tx, mut rx) = mpsc::channel::<(String, oneshot::Sender<Result<(), BusError>>)>(PUBLISH_BATCH * 16);
        // Ends when the last bus handle (and with it the sender) is dropped.
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(PUBLISH_BATCH);
            while rx.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
                let payloads: Vec<String> = batch.iter_mut().map(|(p, _)| std::mem::take(p)).collect();
                let sending = async {
                    match &payloads[..] {
                        [one] => publisher.send(one).await,
                        many => publisher.send_many(many).await,
                    }
                };
                let sent = tokio::time::timeout(PUBLISH_TIMEOUT, sending)
                    .await
                    .unwrap_or(Err(BusError::Timeout { what: "publishing events", after: PUBLISH_TIMEOUT }));
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(sent.as_ref().copied().map_err(BusError::duplicate));
                }
            }
        });
        Self { tx }
    }

    async fn send(&self, payload: String) -> Result<(), BusError> {
        let gone = || BusError::Timeout { what: "publishing an event", after: PUBLISH_TIMEOUT };
        let (reply, answer) = oneshot::channel();
        self.tx.send((payload, reply)).await.map_err(|_| gone())?;
        // The sender's own limit applies per batch; this bounds a caller queued behind others.
        match tokio::time::timeout(PUBLISH_TIMEOUT * 2, answer).await {
            Ok(Ok(result)) => result,
            _ => Err(gone()),
        }
    }
}

impl BusError {
    /// The same failure for another caller of one batched send (the transport errors are not
    /// `Clone`; the kind is kept and the cause becomes text).
    fn duplicate(&self) -> BusError {
        match self {
            Self::Postgres(err) => Self::Postgres(sqlx::Error::Protocol(err.to_string())),
            Self::Redis(err) => {
                Self::Redis(redis::RedisError::from((redis::ErrorKind::Io, "publishing events", err.to_string())))
            }
            // A send fails only with the transport's error or a timeout; encoding and channel
            // errors are caught before anything is queued.
            Self::Timeout { what, after } => Self::Timeout { what, after: *after },
            Self::InvalidChannel { .. } | Self::Encode(_) | Self::TooLarge { .. } => {
                Self::Timeout { what: "publishing events", after: PUBLISH_TIMEOUT }
            }
        }
    }
}

/// Serialises `event`, truncating its data when the transport has a payload limit.
fn encode<'e>(event: &'e Event, limit: Option<usize>, channel: &str) -> Result<(String, Cow<'e, Event>), BusError> {
    let payload = serde_json::to_string(event)?;
    let Some(limit) = limit.filter(|limit| payload.len() > *limit) else { return Ok((payload, Cow::Borrowed(event))) };
    let truncated = Event {
        kind: event.kind.clone(),
        channel: event.channel,
        owner_id: event.owner_id,
        job_id: event.job_id,
        data: serde_json::json!({ "truncated": true }),
        at: event.at,
    };
    let small = serde_json::to_string(&truncated)?;
    if small.len() > limit {
        return Err(BusError::TooLarge { bytes: small.len() });
    }
    tracing::warn!(
        kind = %event.kind,
        job_id = ?event.job_id,
        bytes = payload.len(),
        limit,
        channel,
        "event too large for the transport; sending it with its data truncated"
    );
    metrics::counter!("seidra_events_truncated_total").increment(1);
    Ok((small, Cow::Owned(truncated)))
}

/// The sending half of a server transport; cheap to clone.
#[derive(Clone)]
pub(crate) enum Publisher {
    Postgres { pool: PgPool, channel: Arc<str> },
    Redis { conn: ConnectionManager, channel: Arc<str> },
}

impl Publisher {
    fn channel(&self) -> &Arc<str> {
        match self {
            Self::Postgres { channel, .. } | Self::Redis { channel, .. } => channel,
        }
    }

    fn max_payload(&self) -> Option<usize> {
        match self {
            Self::Postgres { .. } => Some(PG_MAX_PAYLOAD),
            Self::Redis { .. } => None,
        }
    }

    /// Sends several raw payloads on the channel in one round trip, in order.
    pub(crate) async fn send_many(&self, payloads: &[String]) -> Result<(), BusError> {
        match self {
            Self::Postgres { pool, channel } => {
                let calls: Vec<String> = (0..payloads.len()).map(|i| format!("pg_notify($1, ${})", i + 2)).collect();
                // Assembled from fixed fragments; the channel and payloads are bound.
                let sql = format!("SELECT {}", calls.join(", "));
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&**channel);
                for p in payloads {
                    q = q.bind(p.as_str());
                }
                q.execute(pool).await?;
            }
            Self::Redis { conn, channel } => {
                let mut conn = conn.clone();
                let mut pipe = redis::pipe();
                for p in payloads {
                    pipe.cmd("PUBLISH").arg(&**channel).arg(p).ignore();
                }
                let () = pipe.query_async(&mut conn).await?;
            }
        }
        Ok(())
    }

    /// Sends one raw payload on the channel.
    pub(crate) async fn send(&self, payload: &str) -> Result<(), BusError> {
        match self {
            Self::Postgres { pool, channel } => {
                sqlx::query("SELECT pg_notify($1, $2)").bind(&**channel).bind(payload).execute(pool).await?;
            }
            Self::Redis { conn, channel } => {
                let mut conn = conn.clone();
                let _receivers: i64 = redis::cmd("PUBLISH").arg(&**channel).arg(payload).query_async(&mut conn).await?;
            }
        }
        Ok(())
    }
}

/// A message on the channel: an event, or a probe that only proves the path works.
pub(crate) enum Incoming {
    Event(Event),
    Probe(Uuid),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    seidra_bus_probe: Uuid,
}

/// The wire form of a probe; never mistaken for an event (it has no `type`).
pub(crate) fn probe_payload(id: Uuid) -> String {
    format!(r#"{{"seidra_bus_probe":"{id}"}}"#)
}

/// Decodes one payload; the error is the event's, since events are what we expect.
pub(crate) fn decode(payload: &str) -> Result<Incoming, serde_json::Error> {
    match serde_json::from_str::<Event>(payload) {
        Ok(event) => Ok(Incoming::Event(event)),
        Err(err) => {
            serde_json::from_str::<Probe>(payload).map(|p| Incoming::Probe(p.seidra_bus_probe)).map_err(|_| err)
        }
    }
}

/// Health probes waiting for their round trip.
#[derive(Default)]
pub(crate) struct Probes(Mutex<HashMap<Uuid, oneshot::Sender<()>>>);

impl Probes {
    fn register(self: &Arc<Self>) -> (Uuid, PendingProbe, oneshot::Receiver<()>) {
        let id = Uuid::new_v4();
        let (tx, rx) = oneshot::channel();
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(id, tx);
        (id, PendingProbe { probes: self.clone(), id }, rx)
    }

    /// Wakes the health check waiting for `id`; probes of other processes are ignored.
    pub(crate) fn complete(&self, id: Uuid) {
        if let Some(tx) = self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&id) {
            let _ = tx.send(());
        }
    }
}

/// Removes a probe that timed out or was cancelled.
struct PendingProbe {
    probes: Arc<Probes>,
    id: Uuid,
}

impl Drop for PendingProbe {
    fn drop(&mut self) {
        self.probes.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channel;

    #[tokio::test]
    async fn postgres_publishes_commit_without_waiting_for_the_flush() {
        let pool = PgPoolOptions::new()
            .connect_lazy("postgres://seidra@127.0.0.1/seidra")
            .expect("a lazy pool needs no server");
        let publishing = publish_pool(&pool);
        let options = publishing.connect_options();
        assert_eq!(options.get_options(), Some("-c synchronous_commit=off"));
        assert_eq!(options.get_application_name(), Some("seidra-events-publisher"));
        assert_eq!(options.get_database(), Some("seidra"), "the same server and database as the caller's pool");
    }

    fn event(data: serde_json::Value) -> Event {
        Event {
            kind: "job.progress".into(),
            channel: Channel::Jobs,
            owner_id: Some(Uuid::new_v4()),
            job_id: Some(Uuid::new_v4()),
            data,
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn small_events_are_sent_whole() {
        let ev = event(serde_json::json!({"progress": 0.5}));
        let (payload, sent) = encode(&ev, Some(PG_MAX_PAYLOAD), "c").unwrap();
        assert!(matches!(sent, Cow::Borrowed(_)));
        assert_eq!(serde_json::from_str::<Event>(&payload).unwrap(), ev);
    }

    #[test]
    fn large_events_are_truncated_with_a_marker() {
        let ev = event(serde_json::json!({"blob": "x".repeat(10_000)}));
        let (payload, sent) = encode(&ev, Some(PG_MAX_PAYLOAD), "c").unwrap();
        assert!(payload.len() <= PG_MAX_PAYLOAD);
        let back: Event = serde_json::from_str(&payload).unwrap();
        assert_eq!(back.data, serde_json::json!({"truncated": true}));
        assert_eq!((back.kind.as_str(), back.job_id, back.at), (ev.kind.as_str(), ev.job_id, ev.at));
        assert_eq!(*sent, back);
        // Without a limit (Redis) nothing is cut.
        let (payload, _) = encode(&ev, None, "c").unwrap();
        assert_eq!(serde_json::from_str::<Event>(&payload).unwrap(), ev);
    }

    #[test]
    fn an_event_too_large_even_truncated_is_refused() {
        let mut ev = event(serde_json::Value::Null);
        ev.kind = "k".repeat(PG_MAX_PAYLOAD);
        assert!(matches!(encode(&ev, Some(PG_MAX_PAYLOAD), "c"), Err(BusError::TooLarge { .. })));
    }

    #[test]
    fn probes_and_events_are_told_apart() {
        let id = Uuid::new_v4();
        assert!(matches!(decode(&probe_payload(id)), Ok(Incoming::Probe(p)) if p == id));
        let ev = event(serde_json::json!({}));
        assert!(matches!(decode(&serde_json::to_string(&ev).unwrap()), Ok(Incoming::Event(e)) if e == ev));
        assert!(decode("{\"type\": 1}").is_err());
        assert!(decode("not json").is_err());
    }

    #[test]
    fn channel_names_are_checked() {
        assert!(check_channel("seidra_events", Some(PG_MAX_CHANNEL)).is_ok());
        assert!(check_channel("", None).is_err());
        assert!(check_channel(&"c".repeat(64), Some(PG_MAX_CHANNEL)).is_err());
        assert!(check_channel(&"c".repeat(64), None).is_ok());
    }
}
