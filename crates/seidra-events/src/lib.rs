//! Live events that cross processes.
//!
//! A worker process publishes (`job.progress` …); every API replica receives every event and
//! forwards it to its own WebSocket clients, filtered by owner. Transports:
//! - in-process (`tokio::sync::broadcast`) for the embedded default (SQLite, one process);
//! - PostgreSQL `LISTEN/NOTIFY` when the database is PostgreSQL and no Redis is configured;
//! - Redis pub/sub when `SEIDRA_REDIS_URL` is set.
//!
//! CONTRACT (used by the worker and the API; keep these signatures):
//! - `Event` (serde JSON, the wire format on every transport).
//! - `EventBus::in_process()`, `EventBus::postgres(pool, channel).await`,
//!   `EventBus::redis(url, channel).await`, `bus.publish(&event).await`, `bus.subscribe()`.
//!
//! # Delivery
//!
//! Every subscription of every process attached to the same transport and channel receives
//! every event once, including the events its own process published: with PostgreSQL and Redis
//! a local publish travels through the server and comes back through this process's listener,
//! so it is never delivered twice. Events of one publisher arrive in publish order. Delivery is
//! at most once: events published while a listener is disconnected are not replayed to it.
//!
//! Each process has one listener (a background task holding a dedicated connection) that feeds
//! a bounded local broadcast of [`BROADCAST_CAPACITY`] events. A receiver that falls further
//! behind than that gets [`tokio::sync::broadcast::error::RecvError::Lagged`] with the number
//! of events it missed; handling that (resynchronise, tell the client) is the caller's job.
//!
//! # Degradation
//!
//! - The listener reconnects on its own with exponential back-off (100 ms doubling to 5 s),
//!   logging each loss at `warn` and counting it in `seidra_events_reconnects_total`. A connection
//!   that dies silently is noticed by a keep-alive: the listener publishes a probe every 10 s
//!   and reconnects when it has heard nothing, not even a probe, for 35 s.
//! - Redis stopped → events from other processes stop, events from this process still reach
//!   this process's clients, recovery is automatic. When `PUBLISH` fails the event is handed to
//!   the local broadcast directly and `publish` returns the error ([`BusError::Redis`] or
//!   [`BusError::Timeout`]) so the caller can log or count it
//!   (`seidra_events_publish_errors_total` counts it too). PostgreSQL behaves the same way
//!   when `pg_notify` fails. A publish gives up after 3 s; one that timed out may in rare cases still have gone out,
//!   and then this process sees it twice. An event handed over locally can also overtake this
//!   process's earlier events that were still travelling through the server.
//! - PostgreSQL `LISTEN` needs a session: point the pool at PostgreSQL itself or at a
//!   session-mode pooler, never at a transaction-mode PgBouncer.
//! - PostgreSQL refuses `NOTIFY` payloads of 8000 bytes or more: a larger event is sent with
//!   its `data` replaced by `{"truncated": true}` and a warning is logged
//!   (`seidra_events_truncated_total`).
//!
//! The background task stops when the last clone of the [`EventBus`] is dropped.

mod bus;
mod listener;

pub use bus::{BROADCAST_CAPACITY, BusError, EventBus, PG_MAX_PAYLOAD, redis_client};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which stream an event belongs to; WebSocket clients subscribe per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Job lifecycle and progress.
    Jobs,
    /// User notifications.
    Notifications,
    /// Instance-level events (admins).
    System,
    /// Internal control messages between processes (never sent to clients): job wake-ups, cancels.
    Control,
}

/// One event. `owner_id` None means "admins only" on the system channel, "nobody" elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event type (`job.queued`, `job.progress`, `job.succeeded`, `jobs.wake`, `job.cancel` …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Channel.
    pub channel: Channel,
    /// The user the event belongs to.
    pub owner_id: Option<Uuid>,
    /// The job it is about, if any.
    pub job_id: Option<Uuid>,
    /// Event data.
    pub data: serde_json::Value,
    /// When it was produced.
    pub at: DateTime<Utc>,
}
