//! Personas with versions.

use chrono::{DateTime, Utc};
use seidra_core::persona::PersonaSpec;
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{BeginWrite, with_pool, with_write_pool};
use crate::{Db, StoreError, StoreResult};

/// A stored persona (its current version).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Persona {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner_id: Uuid,
    /// Name (copied from the spec for listing).
    pub name: String,
    /// Current spec.
    pub spec: Json<PersonaSpec>,
    /// Current version (1 on creation, +1 per edit).
    pub version: i32,
    /// Favourite flag (not versioned).
    pub favorite: bool,
    /// NSFW flag (copied from the spec).
    pub nsfw: bool,
    /// Tags (copied from the spec).
    pub tags: Json<Vec<String>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last edit.
    pub updated_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "id, owner_id, name, spec, version, favorite, nsfw, tags, created_at, updated_at"
    };
}

/// Creates a persona at version 1.
pub async fn create(db: &Db, owner_id: Uuid, spec: &PersonaSpec) -> StoreResult<Persona> {
    let now = Utc::now();
    let id = Uuid::now_v7();
    let sql = concat!(
        "INSERT INTO personas (id, owner_id, name, spec, version, favorite, nsfw, tags, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 1, FALSE, $5, $6, $7, $7) RETURNING ",
        columns!()
    );
    Ok(with_write_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        let row: Persona = sqlx::query_as(sql)
            .bind(id)
            .bind(owner_id)
            .bind(spec.name.trim())
            .bind(Json(spec))
            .bind(spec.nsfw)
            .bind(Json(&spec.tags))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO persona_versions (persona_id, version, spec, created_at) VALUES ($1, 1, $2, $3)")
            .bind(id)
            .bind(Json(spec))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        row
    }))
}

/// A live persona of `owner_id`; `NotFound` otherwise (existence does not leak).
pub async fn get_owned(db: &Db, owner_id: Uuid, id: Uuid) -> StoreResult<Persona> {
    let sql = concat!("SELECT ", columns!(), " FROM personas WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL");
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(id).bind(owner_id).fetch_one(pool).await?))
}

/// Saves a new version of the spec; returns the persona at its new version.
pub async fn update(db: &Db, owner_id: Uuid, id: Uuid, spec: &PersonaSpec) -> StoreResult<Persona> {
    let now = Utc::now();
    let sql = concat!(
        "UPDATE personas SET name = $1, spec = $2, version = version + 1, nsfw = $3, tags = $4, updated_at = $5 \
         WHERE id = $6 AND owner_id = $7 AND deleted_at IS NULL RETURNING ",
        columns!()
    );
    Ok(with_write_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        let row: Option<Persona> = sqlx::query_as(sql)
            .bind(spec.name.trim())
            .bind(Json(spec))
            .bind(spec.nsfw)
            .bind(Json(&spec.tags))
            .bind(now)
            .bind(id)
            .bind(owner_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Err(StoreError::NotFound) };
        sqlx::query("INSERT INTO persona_versions (persona_id, version, spec, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(row.version)
            .bind(Json(spec))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        row
    }))
}

/// Sets the favourite flag (not a new version).
pub async fn set_favorite(db: &Db, owner_id: Uuid, id: Uuid, favorite: bool) -> StoreResult<Persona> {
    let sql = concat!(
        "UPDATE personas SET favorite = $1 WHERE id = $2 AND owner_id = $3 AND deleted_at IS NULL RETURNING ",
        columns!()
    );
    Ok(with_write_pool!(db, pool => sqlx::query_as(sql).bind(favorite).bind(id).bind(owner_id).fetch_one(pool).await?))
}

/// Hides a persona (its versions stay for the provenance of past jobs).
pub async fn delete(db: &Db, owner_id: Uuid, id: Uuid) -> StoreResult<()> {
    let n = with_write_pool!(db, pool => {
        sqlx::query("UPDATE personas SET deleted_at = $1 WHERE id = $2 AND owner_id = $3 AND deleted_at IS NULL")
            .bind(Utc::now())
            .bind(id)
            .bind(owner_id)
            .execute(pool)
            .await?
            .rows_affected()
    });
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// Lists live personas of `owner_id` (name search, favourites first option), with the total.
pub async fn list(
    db: &Db,
    owner_id: Uuid,
    search: Option<&str>,
    favorite: Option<bool>,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Persona>, i64)> {
    let pattern = search.map(|s| format!("%{}%", s.to_lowercase().replace(['%', '_', '\\'], "")));
    macro_rules! filter {
        () => {
            " FROM personas WHERE owner_id = $1 AND deleted_at IS NULL AND ($2 IS NULL OR LOWER(name) LIKE $2) \
              AND ($3 IS NULL OR favorite = $3)"
        };
    }
    let sql = concat!("SELECT ", columns!(), filter!(), " ORDER BY favorite DESC, updated_at DESC LIMIT $4 OFFSET $5");
    let count = concat!("SELECT COUNT(*)", filter!());
    Ok(with_pool!(db, pool => {
        let rows = sqlx::query_as(sql).bind(owner_id).bind(pattern.as_deref()).bind(favorite).bind(limit).bind(offset).fetch_all(pool).await?;
        let total = sqlx::query_scalar(count).bind(owner_id).bind(pattern.as_deref()).bind(favorite).fetch_one(pool).await?;
        (rows, total)
    }))
}

/// One version of a persona (also of a deleted one: job provenance).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PersonaVersion {
    /// Version number.
    pub version: i32,
    /// The spec at that version.
    pub spec: Json<PersonaSpec>,
    /// When it was saved.
    pub created_at: DateTime<Utc>,
}

/// Every version of a persona of `owner_id`, newest first.
pub async fn versions(db: &Db, owner_id: Uuid, id: Uuid) -> StoreResult<Vec<PersonaVersion>> {
    let rows: Vec<PersonaVersion> = with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT v.version, v.spec, v.created_at FROM persona_versions v JOIN personas p ON p.id = v.persona_id \
             WHERE v.persona_id = $1 AND p.owner_id = $2 ORDER BY v.version DESC",
        )
        .bind(id)
        .bind(owner_id)
        .fetch_all(pool)
        .await?
    });
    if rows.is_empty() { Err(StoreError::NotFound) } else { Ok(rows) }
}
