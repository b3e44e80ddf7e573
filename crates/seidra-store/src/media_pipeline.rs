//! The media pipeline around the library: uploads, thumbnail work and ZIP exports.
//!
//! Thumbnails are a durable follow-up step without a queue of their own: a media row is born
//! `thumb_state = 'pending'` (the column default, so it commits in the same transaction as the
//! row), and workers claim pending rows under a short lease (`thumb_lease_until`). A worker that
//! dies mid-way leaves the lease to expire and another worker takes the row again; after
//! [`MAX_THUMB_ATTEMPTS`] claims the row is marked `failed`. Thumbnail keys are derived from
//! the media id, so two workers racing on one row write the same objects.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{BeginWrite, with_pool, with_write_pool};
use crate::media::{Media, MediaFilter, MediaSort, TagMatch};
use crate::{Db, StoreResult};

/// Claims a row gets before its thumbnails are given up as `failed`.
pub const MAX_THUMB_ATTEMPTS: i32 = 3;

/// An uploaded file to record.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// Id.
    pub id: Uuid,
    /// Storage key (`uploads/<owner>/<uuid>.<ext>`).
    pub storage_key: String,
    /// Sniffed MIME type.
    pub mime: String,
    /// Size.
    pub bytes: i64,
    /// Width (images).
    pub width: Option<i32>,
    /// Height (images).
    pub height: Option<i32>,
    /// Duration (audio/video), ms.
    pub duration_ms: Option<i64>,
    /// Hex SHA-256.
    pub sha256: String,
    /// Sanitised display name.
    pub original_name: String,
    /// Normalised tags.
    pub tags: Vec<String>,
}

/// Records uploads of `owner_id` in one transaction (all or none); images start with pending
/// thumbnails, other kinds with none.
pub async fn insert_uploads(db: &Db, owner_id: Uuid, uploads: &[NewUpload]) -> StoreResult<Vec<Media>> {
    let now = Utc::now();
    let mut ids = Vec::with_capacity(uploads.len());
    with_write_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        for u in uploads {
            let kind = crate::media::kind_of(&u.mime);
            let thumb_state = if kind == "image" { "pending" } else { "none" };
            let mut tags = u.tags.clone();
            tags.sort();
            tags.dedup();
            sqlx::query(
                "INSERT INTO media (id, owner_id, job_id, position, storage_key, mime, bytes, width, height, sha256, seed, \
                 created_at, kind, source, tags, updated_at, original_name, duration_ms, thumb_state) \
                 VALUES ($1, $2, NULL, 0, $3, $4, $5, $6, $7, $8, NULL, $9, $10, 'upload', $11, $9, $12, $13, $14)",
            )
            .bind(u.id)
            .bind(owner_id)
            .bind(&u.storage_key)
            .bind(&u.mime)
            .bind(u.bytes)
            .bind(u.width)
            .bind(u.height)
            .bind(&u.sha256)
            .bind(now)
            .bind(kind)
            .bind(Json(&tags))
            .bind(&u.original_name)
            .bind(u.duration_ms)
            .bind(thumb_state)
            .execute(&mut *tx)
            .await?;
            ids.push(u.id);
        }
        tx.commit().await?;
    });
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        items.push(crate::media::get(db, id).await?);
    }
    Ok(items)
}

/// Total bytes of an owner's library (the upload quota check).
pub async fn owner_bytes(db: &Db, owner_id: Uuid) -> StoreResult<i64> {
    Ok(with_pool!(db, pool => {
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM media WHERE owner_id = $1")
            .bind(owner_id)
            .fetch_one(pool)
            .await?
    }))
}

/// A media row whose thumbnails are due.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ThumbWork {
    /// Media id.
    pub id: Uuid,
    /// Owner.
    pub owner_id: Uuid,
    /// Key of the original.
    pub storage_key: String,
    /// MIME of the original.
    pub mime: String,
    /// Claims so far (this one included).
    pub thumb_attempts: i32,
}

/// Claims up to `limit` pending rows for `lease`. Rows whose attempts ran out are marked
/// `failed` first. The outer `WHERE` repeats the conditions so that, on PostgreSQL, a row
/// claimed concurrently is re-checked after the row lock and skipped.
pub async fn claim_thumbnails(db: &Db, lease: Duration, limit: i64) -> StoreResult<Vec<ThumbWork>> {
    let now = Utc::now();
    with_write_pool!(db, pool => {
        sqlx::query(
            "UPDATE media SET thumb_state = 'failed', thumb_lease_until = NULL WHERE thumb_state = 'pending' \
             AND thumb_attempts >= $1 AND (thumb_lease_until IS NULL OR thumb_lease_until < $2)",
        )
        .bind(MAX_THUMB_ATTEMPTS)
        .bind(now)
        .execute(pool)
        .await?;
    });
    let sql = "UPDATE media SET thumb_lease_until = $1, thumb_attempts = thumb_attempts + 1 \
               WHERE thumb_state = 'pending' AND (thumb_lease_until IS NULL OR thumb_lease_until < $2) \
               AND thumb_attempts < $3 AND id IN (SELECT id FROM media WHERE thumb_state = 'pending' \
               AND (thumb_lease_until IS NULL OR thumb_lease_until < $2) AND thumb_attempts < $3 \
               ORDER BY created_at LIMIT $4) \
               RETURNING id, owner_id, storage_key, mime, thumb_attempts";
    Ok(with_write_pool!(db, pool => {
        sqlx::query_as(sql).bind(now + lease).bind(now).bind(MAX_THUMB_ATTEMPTS).bind(limit).fetch_all(pool).await?
    }))
}

/// Records finished thumbnails; `false` when the row is gone (deleted meanwhile: the caller
/// removes the objects it wrote).
pub async fn thumbnails_ready(db: &Db, id: Uuid, small_key: &str, large_key: &str) -> StoreResult<bool> {
    let done = thumbnails_ready_many(db, &[(id, small_key.to_owned(), large_key.to_owned())]).await?;
    Ok(done.first().copied().unwrap_or(false))
}

/// [`thumbnails_ready`] for several items `(id, small key, large key)` in one transaction (a
/// worker's sweep records its whole batch with one commit); one flag per item, in order.
pub async fn thumbnails_ready_many(db: &Db, items: &[(Uuid, String, String)]) -> StoreResult<Vec<bool>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    Ok(with_write_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        let mut done = Vec::with_capacity(items.len());
        for (id, small, large) in items {
            let n = sqlx::query(
                "UPDATE media SET thumb_state = 'ready', thumb_256_key = $1, thumb_768_key = $2, thumb_lease_until = NULL \
                 WHERE id = $3",
            )
            .bind(small)
            .bind(large)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            done.push(n > 0);
        }
        tx.commit().await?;
        done
    }))
}

/// Records that thumbnails cannot be made: `failed` for good (undecodable), `none` (a kind
/// without thumbnails), or back to waiting until `retry_at` (storage trouble).
pub async fn thumbnails_not_made(db: &Db, id: Uuid, state: &str, retry_at: Option<DateTime<Utc>>) -> StoreResult<()> {
    with_write_pool!(db, pool => {
        sqlx::query("UPDATE media SET thumb_state = $1, thumb_lease_until = $2 WHERE id = $3 AND thumb_state = 'pending'")
            .bind(state)
            .bind(retry_at)
            .bind(id)
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Which items an export job archives: named ids, or a library filter (resolved when it runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSelection {
    /// Named items (all must be the owner's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<Uuid>>,
    /// A library filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<ExportFilter>,
}

/// The serialisable part of a library filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFilter {
    /// `image`, `audio`, `video`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Favourites only / non-favourites only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub favorite: Option<bool>,
    /// Tags (normalised).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `all` to require every tag (default any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags_mode: Option<String>,
    /// Producing job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    /// Persona.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona_id: Option<Uuid>,
    /// Created at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// Full-text search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

impl ExportFilter {
    /// The library filter for `owner_id` (oldest first, so an archive reads chronologically).
    pub fn to_media_filter(&self, owner_id: Uuid) -> MediaFilter {
        MediaFilter {
            owner_id,
            kind: self.kind.clone(),
            favorite: self.favorite,
            tags: self.tags.clone(),
            tag_match: if self.tags_mode.as_deref() == Some("all") { TagMatch::All } else { TagMatch::Any },
            job_id: self.job_id,
            persona_id: self.persona_id,
            from: self.from,
            to: self.to,
            search: self.q.clone(),
            sort: MediaSort::Oldest,
        }
    }
}

/// The owner's items a selection names, at most `max`; `Ok(Err(n))` when it names more.
/// Named ids that are not the owner's are reported as `NotFound`.
pub async fn resolve_selection(
    db: &Db,
    owner_id: Uuid,
    selection: &ExportSelection,
    max: usize,
) -> StoreResult<Result<Vec<Media>, i64>> {
    if let Some(ids) = &selection.ids {
        if ids.len() > max {
            return Ok(Err(i64::try_from(ids.len()).unwrap_or(i64::MAX)));
        }
        let mut items = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            if seen.insert(*id) {
                items.push(crate::media::get_owned(db, owner_id, *id).await?);
            }
        }
        return Ok(Ok(items));
    }
    let filter = selection.filter.clone().unwrap_or_default().to_media_filter(owner_id);
    let mut items: Vec<Media> = Vec::new();
    loop {
        let offset = i64::try_from(items.len()).unwrap_or(i64::MAX);
        let (page, total) = crate::media::list(db, &filter, 500, offset).await?;
        if usize::try_from(total).unwrap_or(usize::MAX) > max {
            return Ok(Err(total));
        }
        let done = page.len() < 500;
        items.extend(page);
        if done {
            break;
        }
    }
    Ok(Ok(items))
}

/// A finished ZIP export.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MediaExport {
    /// The export job.
    pub job_id: Uuid,
    /// Owner.
    pub owner_id: Uuid,
    /// Key of the archive.
    pub storage_key: String,
    /// Archive size.
    pub bytes: i64,
    /// Items in it.
    pub items: i32,
    /// Made at.
    pub created_at: DateTime<Utc>,
    /// Deleted after.
    pub expires_at: DateTime<Utc>,
}

/// Records (or replaces, for a retried attempt) an export.
pub async fn record_export(db: &Db, export: &MediaExport) -> StoreResult<()> {
    with_write_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO media_exports (job_id, owner_id, storage_key, bytes, items, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (job_id) DO UPDATE SET storage_key = EXCLUDED.storage_key, \
             bytes = EXCLUDED.bytes, items = EXCLUDED.items, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
        )
        .bind(export.job_id)
        .bind(export.owner_id)
        .bind(&export.storage_key)
        .bind(export.bytes)
        .bind(export.items)
        .bind(export.created_at)
        .bind(export.expires_at)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// An export of `owner_id`; `NotFound` for anyone else's.
pub async fn get_export(db: &Db, owner_id: Uuid, job_id: Uuid) -> StoreResult<MediaExport> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT job_id, owner_id, storage_key, bytes, items, created_at, expires_at FROM media_exports \
             WHERE job_id = $1 AND owner_id = $2",
        )
        .bind(job_id)
        .bind(owner_id)
        .fetch_one(pool)
        .await?
    }))
}

/// Forgets an export (its job did not complete after all).
pub async fn delete_export(db: &Db, job_id: Uuid) -> StoreResult<()> {
    with_write_pool!(db, pool => {
        sqlx::query("DELETE FROM media_exports WHERE job_id = $1").bind(job_id).execute(pool).await?;
    });
    Ok(())
}

/// Removes exports that expired before `now`; returns their keys (the caller deletes the objects).
pub async fn take_expired_exports(db: &Db, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
    Ok(with_write_pool!(db, pool => {
        sqlx::query_scalar("DELETE FROM media_exports WHERE expires_at < $1 RETURNING storage_key")
            .bind(now)
            .fetch_all(pool)
            .await?
    }))
}
