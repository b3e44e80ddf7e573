//! Registered worker processes and the singleton leases that elect one maintenance loop.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{with_pool, with_write_pool};
use crate::{Db, StoreResult};

/// A registered worker.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Worker {
    /// Id (also the lease owner of its jobs).
    pub id: Uuid,
    /// Display name (`host:pid`).
    pub name: String,
    /// Host name.
    pub host: String,
    /// Binary version.
    pub version: String,
    /// Engines it runs.
    pub engines: Json<Vec<String>>,
    /// Models by engine.
    pub models: Json<Value>,
    /// Jobs at once.
    pub concurrency: i32,
    /// `active`, `draining`, `stopped` or `dead`.
    pub status: String,
    /// Jobs it runs now.
    pub current_jobs: Json<Vec<Uuid>>,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// Last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// Stop time.
    pub stopped_at: Option<DateTime<Utc>>,
}

macro_rules! columns {
    () => {
        "id, name, host, version, engines, models, concurrency, status, current_jobs, started_at, heartbeat_at, stopped_at"
    };
}

/// Data to register a worker.
#[derive(Debug, Clone)]
pub struct NewWorker {
    /// Id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Host.
    pub host: String,
    /// Version.
    pub version: String,
    /// Engines.
    pub engines: Vec<String>,
    /// Models by engine.
    pub models: Value,
    /// Concurrency.
    pub concurrency: i32,
}

/// Registers (or re-registers) a worker as active.
pub async fn register(db: &Db, w: &NewWorker) -> StoreResult<()> {
    let now = Utc::now();
    with_write_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO workers (id, name, host, version, engines, models, concurrency, status, current_jobs, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $9) \
             ON CONFLICT (id) DO UPDATE SET status = 'active', heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
        )
        .bind(w.id)
        .bind(&w.name)
        .bind(&w.host)
        .bind(&w.version)
        .bind(Json(&w.engines))
        .bind(Json(&w.models))
        .bind(w.concurrency)
        .bind(Json(Vec::<Uuid>::new()))
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())?
    });
    Ok(())
}

/// Records a heartbeat with the jobs in hand and the worker's status (`active`/`draining`).
pub async fn heartbeat(db: &Db, id: Uuid, status: &str, current_jobs: &[Uuid]) -> StoreResult<()> {
    with_write_pool!(db, pool => {
        sqlx::query("UPDATE workers SET heartbeat_at = $1, status = $2, current_jobs = $3 WHERE id = $4")
            .bind(Utc::now())
            .bind(status)
            .bind(Json(current_jobs))
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())?
    });
    Ok(())
}

/// Marks a worker stopped (clean shutdown).
pub async fn deregister(db: &Db, id: Uuid) -> StoreResult<()> {
    let now = Utc::now();
    with_write_pool!(db, pool => {
        sqlx::query("UPDATE workers SET status = 'stopped', stopped_at = $1, heartbeat_at = $1, current_jobs = $2 WHERE id = $3")
            .bind(now)
            .bind(Json(Vec::<Uuid>::new()))
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())?
    });
    Ok(())
}

/// Workers that are not stopped, newest heartbeat first.
pub async fn list_live(db: &Db) -> StoreResult<Vec<Worker>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM workers WHERE status IN ('active', 'draining') ORDER BY heartbeat_at DESC"
    );
    Ok(with_pool!(db, pool => sqlx::query_as(sql).fetch_all(pool).await?))
}

/// Marks workers without a heartbeat since `stale_before` dead and forgets stopped/dead workers
/// older than `forget_before`; returns how many were marked dead.
pub async fn reap(db: &Db, stale_before: DateTime<Utc>, forget_before: DateTime<Utc>) -> StoreResult<u64> {
    Ok(with_write_pool!(db, pool => {
        let dead = sqlx::query("UPDATE workers SET status = 'dead', stopped_at = $1 WHERE status IN ('active', 'draining') AND heartbeat_at < $2")
            .bind(Utc::now())
            .bind(stale_before)
            .execute(pool)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM workers WHERE status IN ('stopped', 'dead') AND heartbeat_at < $1")
            .bind(forget_before)
            .execute(pool)
            .await?;
        dead
    }))
}

/// Takes or renews the singleton lease `name` for `holder`; true when `holder` has it.
pub async fn try_lead(db: &Db, name: &str, holder: Uuid, ttl: Duration) -> StoreResult<bool> {
    let now = Utc::now();
    let got: Option<Uuid> = with_write_pool!(db, pool => {
        sqlx::query_scalar(
            "INSERT INTO leader_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leader_leases.expires_at < $4 OR leader_leases.holder = excluded.holder \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl)
        .bind(now)
        .fetch_optional(pool)
        .await?
    });
    Ok(got == Some(holder))
}

/// Gives the lease up (clean shutdown) so another process takes over at once.
pub async fn resign(db: &Db, name: &str, holder: Uuid) -> StoreResult<()> {
    with_write_pool!(db, pool => {
        sqlx::query("DELETE FROM leader_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(pool)
            .await
            .map(|_| ())?
    });
    Ok(())
}
