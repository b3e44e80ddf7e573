//! Webhook endpoints and their delivery outbox.
//!
//! An event is enqueued with one `INSERT … SELECT` that writes a `pending` delivery row for
//! every active endpoint of the owner subscribed to it; the delivery loop claims due rows
//! (PostgreSQL `FOR UPDATE SKIP LOCKED`, SQLite one `UPDATE … RETURNING`, writes being
//! serialised), so several processes can run it without sending a delivery twice. A claim is
//! a short lease (`locked_until`): a process that dies mid-delivery leaves the row to be
//! claimed again once the lease passed.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::{BeginWrite, with_pool, with_write_pool};
use crate::{Db, StoreError, StoreResult};

/// A webhook endpoint.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Webhook {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner_id: Uuid,
    /// Target URL (http or https).
    pub url: String,
    /// Signing secret.
    pub secret: String,
    /// Subscribed events, a JSON array (`["job.succeeded", "*"]`).
    pub events: String,
    /// Whether deliveries are made.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Webhook {
    /// The subscribed events as a list.
    pub fn event_list(&self) -> Vec<String> {
        serde_json::from_str(&self.events).unwrap_or_default()
    }
}

macro_rules! webhook_columns {
    () => {
        "id, owner_id, url, secret, events, active, created_at, updated_at"
    };
}

fn encode_events(events: &[String]) -> StoreResult<String> {
    serde_json::to_string(events).map_err(|e| StoreError::Other(e.to_string()))
}

/// Creates an endpoint.
pub async fn create(db: &Db, owner_id: Uuid, url: &str, secret: &str, events: &[String]) -> StoreResult<Webhook> {
    let sql = concat!(
        "INSERT INTO webhooks (id, owner_id, url, secret, events, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, TRUE, $6, $6) RETURNING ",
        webhook_columns!()
    );
    let events = encode_events(events)?;
    Ok(with_write_pool!(db, pool => {
        sqlx::query_as(sql)
            .bind(Uuid::now_v7())
            .bind(owner_id)
            .bind(url)
            .bind(secret)
            .bind(&events)
            .bind(Utc::now())
            .fetch_one(pool)
            .await?
    }))
}

/// An endpoint of `owner_id`; `NotFound` for anyone else's.
pub async fn get_owned(db: &Db, owner_id: Uuid, id: Uuid) -> StoreResult<Webhook> {
    let sql = concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE id = $1 AND owner_id = $2");
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(id).bind(owner_id).fetch_one(pool).await?))
}

/// An endpoint by id (delivery loop).
pub async fn get(db: &Db, id: Uuid) -> StoreResult<Webhook> {
    let sql = concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE id = $1");
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(id).fetch_one(pool).await?))
}

/// Every endpoint of `owner_id`, oldest first.
pub async fn list(db: &Db, owner_id: Uuid) -> StoreResult<Vec<Webhook>> {
    let sql = concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE owner_id = $1 ORDER BY created_at, id");
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(owner_id).fetch_all(pool).await?))
}

/// Fields to change on an endpoint (None = keep).
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    /// New URL (already vetted).
    pub url: Option<String>,
    /// New secret.
    pub secret: Option<String>,
    /// New event list.
    pub events: Option<Vec<String>>,
    /// Enable or pause.
    pub active: Option<bool>,
}

/// Updates an endpoint of `owner_id`.
pub async fn update(db: &Db, owner_id: Uuid, id: Uuid, change: &WebhookChange) -> StoreResult<Webhook> {
    let events = change.events.as_deref().map(encode_events).transpose()?;
    let sql = concat!(
        "UPDATE webhooks SET url = COALESCE($1, url), secret = COALESCE($2, secret), events = COALESCE($3, events), \
         active = COALESCE($4, active), updated_at = $5 WHERE id = $6 AND owner_id = $7 RETURNING ",
        webhook_columns!()
    );
    Ok(with_write_pool!(db, pool => {
        sqlx::query_as(sql)
            .bind(change.url.as_deref())
            .bind(change.secret.as_deref())
            .bind(events.as_deref())
            .bind(change.active)
            .bind(Utc::now())
            .bind(id)
            .bind(owner_id)
            .fetch_one(pool)
            .await?
    }))
}

/// Deletes an endpoint of `owner_id` (its deliveries go with it).
pub async fn delete(db: &Db, owner_id: Uuid, id: Uuid) -> StoreResult<()> {
    let n = with_write_pool!(db, pool => {
        sqlx::query("DELETE FROM webhooks WHERE id = $1 AND owner_id = $2")
            .bind(id)
            .bind(owner_id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// A delivery (one event to one endpoint) with its latest attempt.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Delivery {
    /// Id (sent as `X-Seidra-Delivery`).
    pub id: i64,
    /// Endpoint.
    pub webhook_id: Uuid,
    /// Event name.
    pub event: String,
    /// The exact JSON body sent (and signed) on every attempt.
    pub payload: String,
    /// `pending`, `delivering`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made (or in progress).
    pub attempts: i32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// HTTP status of the last attempt.
    pub last_status_code: Option<i32>,
    /// Error of the last attempt.
    pub last_error: Option<String>,
    /// Duration of the last attempt, ms.
    pub last_duration_ms: Option<i64>,
    /// When a 2xx was received.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Enqueued.
    pub created_at: DateTime<Utc>,
}

macro_rules! delivery_columns {
    () => {
        "id, webhook_id, event, payload, status, attempts, next_attempt_at, last_status_code, last_error, \
         last_duration_ms, delivered_at, created_at"
    };
}

/// Whether an endpoint's `events` column (a JSON array of names) takes `event`: the name itself
/// or `*`. The one rule for both enqueue statements; event names are plain dotted names, so
/// the `LIKE` pattern can be built from them.
macro_rules! subscribed_to {
    ($events:literal, $event:literal) => {
        concat!("(", $events, " LIKE '%\"' || ", $event, " || '\"%' OR ", $events, " LIKE '%\"*\"%')")
    };
}

/// The outbox INSERT of [`enqueue`] (also run inside other transactions, see
/// `jobs::complete_many`); bind it with [`bind_enqueue!`].
pub(crate) const ENQUEUE_SQL: &str = concat!(
    "INSERT INTO webhook_deliveries (webhook_id, event, payload, status, attempts, next_attempt_at, created_at, updated_at) \
     SELECT id, $1, $2, 'pending', 0, $3, $3, $3 FROM webhooks WHERE owner_id = $4 AND active = TRUE AND ",
    subscribed_to!("events", "$1")
);

/// Binds owner, event, payload and time to [`ENQUEUE_SQL`].
macro_rules! bind_enqueue {
    ($query:expr, $owner:expr, $event:expr, $payload:expr, $now:expr) => {
        $query.bind($event).bind($payload).bind($now).bind($owner)
    };
}
pub(crate) use bind_enqueue;

/// Enqueues `event` for every active endpoint of `owner_id` subscribed to it (or to `*`), in
/// one statement; returns how many deliveries were written. `event` must be a plain dotted
/// name (letters and dots), which the callers guarantee.
pub async fn enqueue(db: &Db, owner_id: Uuid, event: &str, payload: &str) -> StoreResult<u64> {
    let now = Utc::now();
    Ok(with_write_pool!(db, pool => {
        bind_enqueue!(sqlx::query(ENQUEUE_SQL), owner_id, event, payload, now).execute(pool).await?.rows_affected()
    }))
}

/// [`ENQUEUE_SQL`] for many owners' events in one statement (PostgreSQL arrays), inside the
/// caller's transaction.
pub(crate) async fn enqueue_many_pg(
    tx: &mut sqlx::PgConnection,
    events: &[(Uuid, &OutboxEvent)],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query(concat!(
        "INSERT INTO webhook_deliveries (webhook_id, event, payload, status, attempts, next_attempt_at, created_at, updated_at) \
         SELECT w.id, e.event, e.payload, 'pending', 0, $1, $1, $1 \
         FROM unnest($2::uuid[], $3::text[], $4::text[]) WITH ORDINALITY AS e(owner_id, event, payload, n) \
         JOIN webhooks w ON w.owner_id = e.owner_id AND w.active = TRUE AND ",
        subscribed_to!("w.events", "e.event"),
        " ORDER BY e.n, w.id"
    ))
    .bind(now)
    .bind(events.iter().map(|(owner, _)| *owner).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.event).collect::<Vec<_>>())
    .bind(events.iter().map(|(_, e)| e.payload.as_str()).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// A webhook event to enqueue for a job's owner inside the job's own transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Event name (`job.succeeded`…; letters and dots).
    pub event: &'static str,
    /// The JSON body.
    pub payload: String,
}

/// Writes one delivery for one endpoint already claimed by the caller (the test event, sent
/// at once): status `delivering`, attempt 1, locked until `locked_until`.
pub async fn enqueue_claimed(
    db: &Db,
    webhook_id: Uuid,
    event: &str,
    payload: &str,
    locked_until: DateTime<Utc>,
) -> StoreResult<Delivery> {
    let now = Utc::now();
    let sql = concat!(
        "INSERT INTO webhook_deliveries (webhook_id, event, payload, status, attempts, next_attempt_at, locked_until, created_at, updated_at) \
         VALUES ($1, $2, $3, 'delivering', 1, NULL, $4, $5, $5) RETURNING ",
        delivery_columns!()
    );
    Ok(with_write_pool!(db, pool => {
        sqlx::query_as(sql).bind(webhook_id).bind(event).bind(payload).bind(locked_until).bind(now).fetch_one(pool).await?
    }))
}

/// Claims up to `limit` due deliveries (pending and due, or delivering with a lapsed lock),
/// counting the attempt; each claimed row is locked until `locked_until`.
pub async fn claim_due(db: &Db, limit: i64, locked_until: DateTime<Utc>) -> StoreResult<Vec<Delivery>> {
    let now = Utc::now();
    macro_rules! claim {
        ($lock:literal) => {
            concat!(
                "UPDATE webhook_deliveries SET status = 'delivering', attempts = attempts + 1, locked_until = $1, \
                 next_attempt_at = NULL, updated_at = $2 WHERE id IN (SELECT id FROM webhook_deliveries \
                 WHERE (status = 'pending' AND next_attempt_at <= $2) OR (status = 'delivering' AND locked_until < $2) \
                 ORDER BY next_attempt_at LIMIT $3",
                $lock,
                ") RETURNING ",
                delivery_columns!()
            )
        };
    }
    Ok(match db {
        Db::Postgres(pool) => {
            sqlx::query_as(claim!(" FOR UPDATE SKIP LOCKED"))
                .bind(locked_until)
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
        Db::Sqlite(pool) => {
            sqlx::query_as(claim!("")).bind(locked_until).bind(now).bind(limit).fetch_all(&pool.write).await?
        }
    })
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    /// HTTP status, when a response came.
    pub status_code: Option<i32>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
    /// True on 2xx.
    pub delivered: bool,
    /// When to try again (None with `delivered` false = give up: failed).
    pub retry_at: Option<DateTime<Utc>>,
}

/// Records an attempt of a delivery claimed by the caller and moves it to `delivered`,
/// `pending` (retry at `retry_at`) or `failed`. Returns the updated delivery.
pub async fn record_attempt(db: &Db, delivery: &Delivery, result: &AttemptResult) -> StoreResult<Delivery> {
    let now = Utc::now();
    let status = if result.delivered {
        "delivered"
    } else if result.retry_at.is_some() {
        "pending"
    } else {
        "failed"
    };
    let delivered_at = result.delivered.then_some(now);
    let sql = concat!(
        "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, locked_until = NULL, last_status_code = $3, \
         last_error = $4, last_duration_ms = $5, delivered_at = $6, updated_at = $7 WHERE id = $8 RETURNING ",
        delivery_columns!()
    );
    Ok(with_write_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error, duration_ms, at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (delivery_id, attempt) DO NOTHING",
        )
        .bind(delivery.id)
        .bind(delivery.attempts)
        .bind(result.status_code)
        .bind(result.error.as_deref())
        .bind(result.duration_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query_as(sql)
            .bind(status)
            .bind(result.retry_at)
            .bind(result.status_code)
            .bind(result.error.as_deref())
            .bind(result.duration_ms)
            .bind(delivered_at)
            .bind(now)
            .bind(delivery.id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row
    }))
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Attempt {
    /// Delivery.
    pub delivery_id: i64,
    /// 1-based attempt number.
    pub attempt: i32,
    /// HTTP status, when a response came.
    pub status_code: Option<i32>,
    /// Error, when it failed.
    pub error: Option<String>,
    /// Duration, ms.
    pub duration_ms: i64,
    /// When.
    pub at: DateTime<Utc>,
}

/// The most recent deliveries of an endpoint of `owner_id`, newest first, with their attempts.
pub async fn list_deliveries(
    db: &Db,
    owner_id: Uuid,
    webhook_id: Uuid,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Delivery>, Vec<Attempt>, i64)> {
    get_owned(db, owner_id, webhook_id).await?;
    let sql = concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
    );
    Ok(with_pool!(db, pool => {
        let rows: Vec<Delivery> = sqlx::query_as(sql).bind(webhook_id).bind(limit).bind(offset).fetch_all(pool).await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1")
            .bind(webhook_id)
            .fetch_one(pool)
            .await?;
        let (lo, hi) = (rows.iter().map(|d| d.id).min().unwrap_or(0), rows.iter().map(|d| d.id).max().unwrap_or(-1));
        let attempts: Vec<Attempt> = sqlx::query_as(
            "SELECT a.delivery_id, a.attempt, a.status_code, a.error, a.duration_ms, a.at FROM webhook_attempts a \
             JOIN webhook_deliveries d ON d.id = a.delivery_id \
             WHERE d.webhook_id = $1 AND a.delivery_id BETWEEN $2 AND $3 ORDER BY a.delivery_id, a.attempt",
        )
        .bind(webhook_id)
        .bind(lo)
        .bind(hi)
        .fetch_all(pool)
        .await?;
        (rows, attempts, total)
    }))
}

/// Deletes finished deliveries (and their attempts) older than `before`; returns how many.
pub async fn prune(db: &Db, before: DateTime<Utc>) -> StoreResult<u64> {
    Ok(with_write_pool!(db, pool => {
        sqlx::query("DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND updated_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}
