//! Video-studio timelines (owner-scoped; the spec is one JSON document).

use chrono::{DateTime, Utc};
use seidra_core::timeline::TimelineSpec;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{with_pool, with_write_pool};
use crate::{Db, StoreError, StoreResult};

/// A stored timeline.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Timeline {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner_id: Uuid,
    /// Name (copied from the spec for listing).
    pub name: String,
    /// Tracks and clips.
    pub spec: Json<TimelineSpec>,
    /// 1 on creation, +1 per update.
    pub revision: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "id, owner_id, name, spec, revision, created_at, updated_at"
    };
}

/// Stores a new timeline at revision 1.
pub async fn create(db: &Db, owner_id: Uuid, spec: &TimelineSpec) -> StoreResult<Timeline> {
    let now = Utc::now();
    let sql = concat!(
        "INSERT INTO timelines (id, owner_id, name, spec, revision, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING ",
        columns!()
    );
    Ok(with_write_pool!(db, pool => sqlx::query_as(sql)
        .bind(Uuid::now_v7())
        .bind(owner_id)
        .bind(spec.name.trim())
        .bind(Json(spec))
        .bind(now)
        .fetch_one(pool)
        .await?))
}

/// A timeline of `owner_id`; `NotFound` for others' (existence does not leak).
pub async fn get_owned(db: &Db, owner_id: Uuid, id: Uuid) -> StoreResult<Timeline> {
    let sql = concat!("SELECT ", columns!(), " FROM timelines WHERE id = $1 AND owner_id = $2");
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(id).bind(owner_id).fetch_one(pool).await?))
}

/// Replaces the spec; `expected_revision` (when given) must match or the update is a `Conflict`.
pub async fn update(
    db: &Db,
    owner_id: Uuid,
    id: Uuid,
    spec: &TimelineSpec,
    expected_revision: Option<i32>,
) -> StoreResult<Timeline> {
    let sql = concat!(
        "UPDATE timelines SET name = $1, spec = $2, revision = revision + 1, updated_at = $3 \
         WHERE id = $4 AND owner_id = $5 AND ($6 IS NULL OR revision = $6) RETURNING ",
        columns!()
    );
    let row: Option<Timeline> = with_write_pool!(db, pool => sqlx::query_as(sql)
        .bind(spec.name.trim())
        .bind(Json(spec))
        .bind(Utc::now())
        .bind(id)
        .bind(owner_id)
        .bind(expected_revision)
        .fetch_optional(pool)
        .await?);
    match row {
        Some(row) => Ok(row),
        // Tell "gone" from "changed meanwhile".
        None => match get_owned(db, owner_id, id).await {
            Ok(_) => Err(StoreError::Conflict { constraint: "revision".to_owned() }),
            Err(e) => Err(e),
        },
    }
}

/// Deletes a timeline (rendered videos stay in the library).
pub async fn delete(db: &Db, owner_id: Uuid, id: Uuid) -> StoreResult<()> {
    let n = with_write_pool!(db, pool => sqlx::query("DELETE FROM timelines WHERE id = $1 AND owner_id = $2")
        .bind(id)
        .bind(owner_id)
        .execute(pool)
        .await?
        .rows_affected());
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Timelines of `owner_id`, most recently changed first, with the total.
pub async fn list(db: &Db, owner_id: Uuid, limit: i64, offset: i64) -> StoreResult<(Vec<Timeline>, i64)> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM timelines WHERE owner_id = $1 ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3"
    );
    Ok(with_pool!(db, pool => {
        let rows: Vec<Timeline> = sqlx::query_as(sql).bind(owner_id).bind(limit).bind(offset).fetch_all(pool).await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM timelines WHERE owner_id = $1")
            .bind(owner_id)
            .fetch_one(pool)
            .await?;
        (rows, total)
    }))
}
