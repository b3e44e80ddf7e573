//! The model catalogue: one row per model file (or diffusers directory) in the model
//! directory, kept in step with the files by scans, registrations and downloads.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{BeginWrite, with_pool, with_write_pool};
use crate::{Db, StoreResult};

/// A catalogued model.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Model {
    /// Id.
    pub id: Uuid,
    /// Display name (what requests name in `model_name`/`loras`).
    pub name: String,
    /// `base`, `lora`, `vae` or `unknown`.
    pub kind: String,
    /// `sd15`, `sd21`, `sdxl` or `unknown`.
    pub architecture: String,
    /// `safetensors` or `diffusers`.
    pub format: String,
    /// Path relative to the model directory.
    pub rel_path: String,
    /// Size.
    pub bytes: i64,
    /// Hex SHA-256 (files only).
    pub sha256: Option<String>,
    /// Safetensors `__metadata__`.
    pub metadata: Json<Value>,
    /// `scan`, `download` or `registered`.
    pub source: String,
    /// Where a downloaded model came from.
    pub source_url: Option<String>,
    /// Admin's description.
    pub description: String,
    /// File modification time, Unix seconds (to skip re-hashing unchanged files).
    pub file_modified: i64,
    /// First catalogued.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// A model to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModel {
    /// Display name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Architecture.
    pub architecture: String,
    /// Format.
    pub format: String,
    /// Path relative to the model directory.
    pub rel_path: String,
    /// Size.
    pub bytes: i64,
    /// SHA-256.
    pub sha256: Option<String>,
    /// Safetensors metadata.
    pub metadata: Value,
    /// Source.
    pub source: String,
    /// Download URL.
    pub source_url: Option<String>,
    /// Description.
    pub description: String,
    /// File modification time.
    pub file_modified: i64,
}

macro_rules! columns {
    () => {
        "id, name, kind, architecture, format, rel_path, bytes, sha256, metadata, source, source_url, description, \
         file_modified, created_at, updated_at"
    };
}

/// Models, optionally of one kind and architecture, by kind then name.
pub async fn list(db: &Db, kind: Option<&str>, architecture: Option<&str>) -> StoreResult<Vec<Model>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM models WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR architecture = $2) ORDER BY kind, name, rel_path"
    );
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(kind).bind(architecture).fetch_all(pool).await?))
}

/// One model.
pub async fn get(db: &Db, id: Uuid) -> StoreResult<Model> {
    let sql = concat!("SELECT ", columns!(), " FROM models WHERE id = $1");
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(id).fetch_one(pool).await?))
}

/// SHA-256 of each catalogued file with the size and modification time it was computed for.
pub async fn known_hashes(db: &Db) -> StoreResult<HashMap<String, (i64, i64, String)>> {
    let rows: Vec<(String, i64, i64, Option<String>)> = with_pool!(db, pool => {
        sqlx::query_as("SELECT rel_path, bytes, file_modified, sha256 FROM models").fetch_all(pool).await?
    });
    Ok(rows.into_iter().filter_map(|(path, bytes, modified, sha)| Some((path, (bytes, modified, sha?)))).collect())
}

/// The INSERT of one model row; bind it with [`bind_new!`].
macro_rules! insert_sql {
    () => {
        "INSERT INTO models (id, name, kind, architecture, format, rel_path, bytes, sha256, metadata, source, source_url, \
         description, file_modified, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)"
    };
}

/// Binds a fresh id, a [`NewModel`]'s fields and the time to [`insert_sql!`].
macro_rules! bind_new {
    ($query:expr, $new:expr, $now:expr) => {
        $query
            .bind(Uuid::now_v7())
            .bind(&$new.name)
            .bind(&$new.kind)
            .bind(&$new.architecture)
            .bind(&$new.format)
            .bind(&$new.rel_path)
            .bind($new.bytes)
            .bind(&$new.sha256)
            .bind(Json(&$new.metadata))
            .bind(&$new.source)
            .bind(&$new.source_url)
            .bind(&$new.description)
            .bind($new.file_modified)
            .bind($now)
    };
}

/// Records one model (a registration or a download); a row for the same path is replaced
/// in place (its id and creation time stay).
pub async fn upsert(db: &Db, new: &NewModel) -> StoreResult<Model> {
    let sql = concat!(
        insert_sql!(),
        " ON CONFLICT (rel_path) DO UPDATE SET name = excluded.name, kind = excluded.kind, \
         architecture = excluded.architecture, format = excluded.format, bytes = excluded.bytes, \
         sha256 = excluded.sha256, metadata = excluded.metadata, source = excluded.source, \
         source_url = excluded.source_url, description = excluded.description, \
         file_modified = excluded.file_modified, updated_at = excluded.updated_at RETURNING ",
        columns!()
    );
    let now = Utc::now();
    Ok(with_write_pool!(db, pool => bind_new!(sqlx::query_as(sql), new, now).fetch_one(pool).await?))
}

/// What a scan changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// New rows.
    pub added: u64,
    /// Rows whose file changed.
    pub updated: u64,
    /// Rows whose file is gone.
    pub removed: u64,
}

/// Makes the catalogue match a scan, in one transaction: new files are added (source
/// `scan`), changed files updated (name, source and description kept), missing files removed.
pub async fn sync_scan(db: &Db, found: &[NewModel]) -> StoreResult<SyncReport> {
    let existing: HashMap<String, Model> =
        list(db, None, None).await?.into_iter().map(|m| (m.rel_path.clone(), m)).collect();
    let now = Utc::now();
    let mut report = SyncReport::default();
    with_write_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        for new in found {
            match existing.get(&new.rel_path) {
                Some(old)
                    if old.bytes == new.bytes
                        && old.sha256 == new.sha256
                        && old.file_modified == new.file_modified
                        && old.kind == new.kind
                        && old.architecture == new.architecture => {}
                Some(old) => {
                    sqlx::query(
                        "UPDATE models SET kind = $1, architecture = $2, format = $3, bytes = $4, sha256 = $5, \
                         metadata = $6, file_modified = $7, updated_at = $8 WHERE id = $9",
                    )
                    .bind(&new.kind)
                    .bind(&new.architecture)
                    .bind(&new.format)
                    .bind(new.bytes)
                    .bind(&new.sha256)
                    .bind(Json(&new.metadata))
                    .bind(new.file_modified)
                    .bind(now)
                    .bind(old.id)
                    .execute(&mut *tx)
                    .await?;
                    report.updated += 1;
                }
                None => {
                    bind_new!(sqlx::query(insert_sql!()), new, now).execute(&mut *tx).await?;
                    report.added += 1;
                }
            }
        }
        let present: std::collections::HashSet<&str> = found.iter().map(|f| f.rel_path.as_str()).collect();
        for old in existing.values() {
            if !present.contains(old.rel_path.as_str()) {
                sqlx::query("DELETE FROM models WHERE id = $1").bind(old.id).execute(&mut *tx).await?;
                report.removed += 1;
            }
        }
        tx.commit().await?;
    });
    Ok(report)
}

/// Removes a model's row; returns it (the caller deletes the file when asked to).
pub async fn delete(db: &Db, id: Uuid) -> StoreResult<Model> {
    let sql = concat!("DELETE FROM models WHERE id = $1 RETURNING ", columns!());
    Ok(with_write_pool!(db, pool => sqlx::query_as(sql).bind(id).fetch_one(pool).await?))
}
