//! Media items: the files jobs produce (and, later, uploads).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::with_pool;
use crate::{Db, StoreResult};

/// A stored media item.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Media {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner_id: Uuid,
    /// Producing job.
    pub job_id: Option<Uuid>,
    /// Position among the job's outputs.
    pub position: i32,
    /// Object storage key.
    pub storage_key: String,
    /// MIME type.
    pub mime: String,
    /// Size in bytes.
    pub bytes: i64,
    /// Width, pixels.
    pub width: Option<i32>,
    /// Height, pixels.
    pub height: Option<i32>,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// Seed that produced it.
    pub seed: Option<i64>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "id, owner_id, job_id, position, storage_key, mime, bytes, width, height, sha256, seed, created_at"
    };
}

/// Outputs of a job, in order.
pub async fn list_for_job(db: &Db, job_id: Uuid) -> StoreResult<Vec<Media>> {
    let sql = concat!("SELECT ", columns!(), " FROM media WHERE job_id = $1 ORDER BY position");
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(job_id).fetch_all(pool).await?))
}

/// Outputs of several jobs, in job then position order.
pub async fn list_for_jobs(db: &Db, job_ids: &[Uuid]) -> StoreResult<Vec<Media>> {
    let mut out = Vec::new();
    for id in job_ids {
        out.extend(list_for_job(db, *id).await?);
    }
    Ok(out)
}

/// One item.
pub async fn get(db: &Db, id: Uuid) -> StoreResult<Media> {
    let sql = concat!("SELECT ", columns!(), " FROM media WHERE id = $1");
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(id).fetch_one(pool).await?))
}

/// Number of media items and their total size.
pub async fn totals(db: &Db) -> StoreResult<(i64, i64)> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM media").fetch_one(pool).await?
    }))
}
