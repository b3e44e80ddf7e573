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
