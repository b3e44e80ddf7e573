//! The media library: every job output (and, later, upload) with its provenance, tags and
//! favourite flag; filtering, full-text search, statistics and bulk changes.
//!
//! Full-text search is the one place the two databases differ in SQL: PostgreSQL matches a
//! generated `tsvector` column, SQLite an FTS5 table kept in sync by triggers. Both index the
//! prompt and the tags, behind the same [`MediaFilter::search`].

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::db::{BeginWrite, with_pool, with_write_pool};
use crate::sql::{Bind, Conditions, PageTotal, fetch_page};
use crate::{Db, RawJson, StoreError, StoreResult};

/// A stored media item.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Media {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner_id: Uuid,
    /// Producing job (None for uploads, or once the job was pruned).
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
    /// `image`, `audio` or `video`.
    pub kind: String,
    /// `generated` or `upload`.
    pub source: String,
    /// Favourite flag.
    pub favorite: bool,
    /// Prompt that produced it (after persona merge).
    pub prompt: String,
    /// Negative prompt.
    pub negative_prompt: String,
    /// Engine.
    pub engine: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// The full accepted request (parameters).
    pub parameters: Option<Json<RawJson>>,
    /// Persona used.
    pub persona_id: Option<Uuid>,
    /// Persona version used.
    pub persona_version: Option<i32>,
    /// Tags, sorted.
    pub tags: Json<Vec<String>>,
    /// Last change.
    pub updated_at: Option<DateTime<Utc>>,
    /// Sanitised file name of an upload (display only; never part of a storage key).
    pub original_name: Option<String>,
    /// Duration of audio/video, milliseconds (ffprobe).
    pub duration_ms: Option<i64>,
    /// `pending`, `ready`, `failed` or `none` (kinds without thumbnails).
    pub thumb_state: String,
    /// Key of the 256 px thumbnail once ready.
    pub thumb_256_key: Option<String>,
    /// Key of the 768 px thumbnail once ready.
    pub thumb_768_key: Option<String>,
}

macro_rules! columns {
    () => {
        "id, owner_id, job_id, position, storage_key, mime, bytes, width, height, sha256, seed, created_at, kind, source, \
         favorite, prompt, negative_prompt, engine, model, parameters, persona_id, persona_version, tags, updated_at, \
         original_name, duration_ms, thumb_state, thumb_256_key, thumb_768_key"
    };
}

/// The media kind of a MIME type.
pub fn kind_of(mime: &str) -> &'static str {
    if mime.starts_with("audio/") {
        "audio"
    } else if mime.starts_with("video/") {
        "video"
    } else {
        "image"
    }
}

/// Outputs of a job, in order.
pub async fn list_for_job(db: &Db, job_id: Uuid) -> StoreResult<Vec<Media>> {
    let sql = concat!("SELECT ", columns!(), " FROM media WHERE job_id = $1 ORDER BY position");
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(job_id).fetch_all(pool).await?))
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

/// How to combine several tags in a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagMatch {
    /// Items with at least one of the tags.
    #[default]
    Any,
    /// Items with every tag.
    All,
}

/// Sort order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaSort {
    /// Newest first.
    #[default]
    Newest,
    /// Oldest first.
    Oldest,
    /// Largest files first.
    Largest,
}

/// Filters for listing the library (always one owner's items).
#[derive(Debug, Clone, Default)]
pub struct MediaFilter {
    /// Owner.
    pub owner_id: Uuid,
    /// `image`, `audio`, `video`.
    pub kind: Option<String>,
    /// Only favourites (true) or only non-favourites (false).
    pub favorite: Option<bool>,
    /// Tags to match.
    pub tags: Vec<String>,
    /// Any or all of `tags`.
    pub tag_match: TagMatch,
    /// Producing job.
    pub job_id: Option<Uuid>,
    /// Persona.
    pub persona_id: Option<Uuid>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
    /// Full-text search over prompt and tags (words, all must match).
    pub search: Option<String>,
    /// Order.
    pub sort: MediaSort,
}

/// Words of a search, stripped of anything that is query syntax on either database.
fn search_words(search: &str) -> Vec<String> {
    search
        .split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_').collect::<String>().to_lowercase())
        .filter(|w| !w.is_empty())
        .take(16)
        .collect()
}

/// A search on SQLite: the FTS5 query (owner token + words) and how many items of the owner
/// match it, counted inside the index.
struct SqliteSearch {
    query: String,
    matches: i64,
}

/// Above this many matches a SQLite search walks the owner's items newest-first and stops at the
/// page; below it, it reads the matches by rowid and sorts them (cheaper when they are few).
const SEARCH_WALK_ABOVE: i64 = 256;

impl SqliteSearch {
    async fn prepare(pool: &sqlx::SqlitePool, owner_id: Uuid, words: &[String]) -> StoreResult<Self> {
        // Each word quoted (no operators reach the engine), prefix-matched, all required, in
        // prompt or tags; the owner is a token of its own column (migration 0013).
        let words = words.iter().map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" ");
        let query = format!("owner_token : \"{}\" AND {{prompt tags}} : ({words})", owner_id.simple());
        let matches = sqlx::query_scalar("SELECT COUNT(*) FROM media_fts WHERE media_fts MATCH $1")
            .bind(&query)
            .fetch_one(pool)
            .await?;
        Ok(Self { query, matches })
    }
}

/// Lists items matching `filter`, with the total.
pub async fn list(db: &Db, filter: &MediaFilter, limit: i64, offset: i64) -> StoreResult<(Vec<Media>, i64)> {
    let postgres = matches!(db, Db::Postgres(_));
    let words = filter.search.as_deref().map(search_words).unwrap_or_default();
    let sqlite_search = match db {
        Db::Sqlite(sqlite) if !words.is_empty() => {
            Some(SqliteSearch::prepare(&sqlite.read, filter.owner_id, &words).await?)
        }
        _ => None,
    };
    let mut conditions = Conditions::default();
    let mut push = |cond: &dyn Fn(usize) -> String, value: Bind| conditions.push(cond, value);
    // Owner, type and favourite come first, as `$1`, `$2`, `$3` (those present): the per-owner
    // counters' total query refers to them.
    push(&|n| format!("owner_id = ${n}"), Bind::Uuid(filter.owner_id));
    if let Some(kind) = &filter.kind {
        push(&|n| format!("kind = ${n}"), Bind::Text(kind.clone()));
    }
    if let Some(fav) = filter.favorite {
        push(&|n| format!("favorite = ${n}"), Bind::Bool(fav));
    }
    if let Some(job) = filter.job_id {
        push(&|n| format!("job_id = ${n}"), Bind::Uuid(job));
    }
    if let Some(persona) = filter.persona_id {
        push(&|n| format!("persona_id = ${n}"), Bind::Uuid(persona));
    }
    if let Some(from) = filter.from {
        push(&|n| format!("created_at >= ${n}"), Bind::Time(from));
    }
    if let Some(to) = filter.to {
        push(&|n| format!("created_at < ${n}"), Bind::Time(to));
    }
    if !filter.tags.is_empty() {
        let tags_json = serde_json::to_string(&filter.tags).map_err(|e| StoreError::Other(e.to_string()))?;
        let cond: &dyn Fn(usize) -> String = match (postgres, filter.tag_match) {
            (true, TagMatch::Any) => &|n| format!("tags ?| ARRAY(SELECT jsonb_array_elements_text(${n}::jsonb))"),
            (true, TagMatch::All) => &|n| format!("tags @> ${n}::jsonb"),
            (false, TagMatch::Any) => &|n| {
                format!(
                    "EXISTS (SELECT 1 FROM json_each(media.tags) t WHERE t.value IN (SELECT value FROM json_each(${n})))"
                )
            },
            (false, TagMatch::All) => &|n| {
                format!(
                    "NOT EXISTS (SELECT 1 FROM json_each(${n}) w WHERE w.value NOT IN (SELECT value FROM json_each(media.tags)))"
                )
            },
        };
        push(cond, Bind::Text(tags_json));
    }
    if let Some(search) = &sqlite_search {
        // `+rowid` keeps SQLite from driving the query by the matches' rowids, so it walks the
        // owner's index in page order and stops once the page is full.
        let cond: &dyn Fn(usize) -> String = if search.matches > SEARCH_WALK_ABOVE {
            &|n| format!("+rowid IN (SELECT rowid FROM media_fts WHERE media_fts MATCH ${n})")
        } else {
            &|n| format!("rowid IN (SELECT rowid FROM media_fts WHERE media_fts MATCH ${n})")
        };
        push(cond, Bind::Text(search.query.clone()));
    } else if !words.is_empty() {
        // Every word required, prefix-matched (as on SQLite). `search_words` keeps only letters,
        // digits, `-` and `_`, so each quoted lexeme is literal: no tsquery operator gets through.
        let query = words.iter().map(|w| format!("'{w}':*")).collect::<Vec<_>>().join(" & ");
        push(&|n| format!("search @@ to_tsquery('simple', ${n})"), Bind::Text(query));
    }
    let where_sql = conditions.where_clause();
    let order = match filter.sort {
        MediaSort::Newest => "created_at DESC, id DESC",
        MediaSort::Oldest => "created_at ASC, id ASC",
        MediaSort::Largest => "bytes DESC, id DESC",
    };
    let total = page_total(filter, sqlite_search.as_ref().map(|s| s.matches), &where_sql);
    let (column, limit_offset) = (total.column(), total.limit_offset(limit, offset, conditions.next_placeholder()));
    let sql = if postgres {
        format!("SELECT {}, {column} FROM media{where_sql} ORDER BY {order}{limit_offset}", columns!())
    } else {
        // Keys first, rows second: SQLite sorts (and skips) narrow keys and reads only the page's
        // rows in full; a search sorting its 2,000 matches this way takes a third of the time.
        format!(
            "SELECT {}, {column} FROM media WHERE rowid IN \
             (SELECT rowid FROM media{where_sql} ORDER BY {order}{limit_offset}) ORDER BY {order}",
            columns!(),
        )
    };
    let binds = &conditions.binds;
    let (rows, total) = with_pool!(db, pool => fetch_page!(pool, Media, sql.clone(), binds, total, limit, offset));
    Ok((rows, total))
}

/// Where a listing's total comes from: the per-owner counters (`media_counts`, kept by
/// triggers) when the filter uses nothing but type and favourites, the SQLite index's own count
/// of a plain search, else counting the matching rows.
fn page_total(filter: &MediaFilter, search_matches: Option<i64>, where_sql: &str) -> PageTotal {
    let MediaFilter { kind, favorite, tags, job_id, persona_id, from, to, search, .. } = filter;
    let count = || PageTotal::Count(format!("SELECT COUNT(*) FROM media{where_sql}"));
    if !tags.is_empty() || job_id.is_some() || persona_id.is_some() || from.is_some() || to.is_some() {
        return count();
    }
    if search.as_deref().is_some_and(|s| !search_words(s).is_empty()) {
        let plain = kind.is_none() && favorite.is_none();
        return match search_matches {
            Some(matches) if plain => PageTotal::Known(matches),
            _ => count(),
        };
    }
    // Owner, type and favourite are `$1`, `$2`, `$3` of the listing (those present).
    let mut sql = "SELECT SUM(item_count) FROM media_counts WHERE owner_id = $1".to_owned();
    if kind.is_some() {
        sql.push_str(" AND kind = $2");
    }
    if favorite.is_some() {
        sql.push_str(if kind.is_some() { " AND favorite = $3" } else { " AND favorite = $2" });
    }
    PageTotal::Lookup(sql)
}

/// How to change an item's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagChange {
    /// Replace all tags.
    Set(Vec<String>),
    /// Add these.
    Add(Vec<String>),
    /// Remove these.
    Remove(Vec<String>),
}

/// Most tags per item.
pub const MAX_TAGS: usize = 50;

/// Applies a tag change to one item of `owner_id`; returns the item. `NotFound` when it is not theirs.
pub async fn change_tags(db: &Db, owner_id: Uuid, id: Uuid, change: &TagChange) -> StoreResult<Media> {
    update(db, owner_id, id, std::slice::from_ref(change), None).await
}

/// Applies tag changes (in order) and an optional favourite flag to one item of `owner_id`, in
/// one write transaction: the tags are read and written under the row's write lock, so two
/// concurrent changes of the same item cannot lose each other's tags. `NotFound` when it is not
/// theirs; `Conflict` past [`MAX_TAGS`] (nothing is changed then).
pub async fn update(
    db: &Db,
    owner_id: Uuid,
    id: Uuid,
    changes: &[TagChange],
    favorite: Option<bool>,
) -> StoreResult<Media> {
    // SQLite's BEGIN IMMEDIATE already holds the write lock; PostgreSQL locks the row.
    let read_sql = match db {
        Db::Postgres(_) => "SELECT tags, favorite FROM media WHERE id = $1 AND owner_id = $2 FOR UPDATE",
        Db::Sqlite(_) => "SELECT tags, favorite FROM media WHERE id = $1 AND owner_id = $2",
    };
    let write_sql = concat!(
        "UPDATE media SET tags = $1, favorite = $2, updated_at = $3 WHERE id = $4 AND owner_id = $5 RETURNING ",
        columns!()
    );
    Ok(with_write_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        let (current, current_favorite): (Json<Vec<String>>, bool) =
            sqlx::query_as(read_sql).bind(id).bind(owner_id).fetch_one(&mut *tx).await?;
        let mut tags = current.0;
        for change in changes {
            match change {
                TagChange::Set(new) => tags.clone_from(new),
                TagChange::Add(new) => tags.extend(new.iter().cloned()),
                TagChange::Remove(old) => tags.retain(|t| !old.contains(t)),
            }
        }
        tags.sort();
        tags.dedup();
        if tags.len() > MAX_TAGS {
            return Err(StoreError::Conflict { constraint: format!("at most {MAX_TAGS} tags per item") });
        }
        let row: Media = sqlx::query_as(write_sql)
            .bind(Json(&tags))
            .bind(favorite.unwrap_or(current_favorite))
            .bind(Utc::now())
            .bind(id)
            .bind(owner_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        row
    }))
}

/// Sets or clears the favourite flag.
pub async fn set_favorite(db: &Db, owner_id: Uuid, id: Uuid, favorite: bool) -> StoreResult<Media> {
    let sql = concat!(
        "UPDATE media SET favorite = $1, updated_at = $2 WHERE id = $3 AND owner_id = $4 RETURNING ",
        columns!()
    );
    Ok(with_write_pool!(db, pool => {
        sqlx::query_as(sql).bind(favorite).bind(Utc::now()).bind(id).bind(owner_id).fetch_one(pool).await?
    }))
}

/// An item of `owner_id`; `NotFound` for anyone else's (existence does not leak).
pub async fn get_owned(db: &Db, owner_id: Uuid, id: Uuid) -> StoreResult<Media> {
    let sql = concat!("SELECT ", columns!(), " FROM media WHERE id = $1 AND owner_id = $2");
    Ok(with_pool!(db, pool => sqlx::query_as(sql).bind(id).bind(owner_id).fetch_one(pool).await?))
}

/// Deletes an item of `owner_id`; returns the keys of its objects (file and thumbnails) so the
/// caller removes them.
pub async fn delete(db: &Db, owner_id: Uuid, id: Uuid) -> StoreResult<Vec<String>> {
    type Keys = (String, Option<String>, Option<String>);
    let keys: Option<Keys> = with_write_pool!(db, pool => {
        sqlx::query_as(
            "DELETE FROM media WHERE id = $1 AND owner_id = $2 RETURNING storage_key, thumb_256_key, thumb_768_key",
        )
        .bind(id)
        .bind(owner_id)
        .fetch_optional(pool)
        .await?
    });
    let (file, small, large) = keys.ok_or(StoreError::NotFound)?;
    Ok(std::iter::once(file).chain(small).chain(large).collect())
}

/// Most keys [`referenced_keys`] checks in one query (well under every bind-parameter limit).
pub const REFERENCED_KEYS_BATCH: usize = 500;

/// Which of `keys` a media row still references (`media.storage_key`), for the orphan sweeper.
/// At most [`REFERENCED_KEYS_BATCH`] keys per call; more are an error.
pub async fn referenced_keys(db: &Db, keys: &[String]) -> StoreResult<std::collections::HashSet<String>> {
    if keys.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    if keys.len() > REFERENCED_KEYS_BATCH {
        return Err(StoreError::Other(format!("referenced_keys takes at most {REFERENCED_KEYS_BATCH} keys")));
    }
    let placeholders = (1..=keys.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT DISTINCT storage_key FROM media WHERE storage_key IN ({placeholders})");
    let found: Vec<String> = with_pool!(db, pool => {
        // Only numbered placeholders are spliced in; the keys are bound.
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()));
        for key in keys {
            query = query.bind(key);
        }
        query.fetch_all(pool).await?
    });
    Ok(found.into_iter().collect())
}

/// Library statistics for one owner.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MediaStats {
    /// Items.
    pub total: i64,
    /// Bytes.
    pub total_bytes: i64,
    /// Favourites.
    pub favorites: i64,
    /// `(kind, count)`.
    pub by_kind: Vec<(String, i64)>,
    /// `(persona id or None, count)`.
    pub by_persona: Vec<(Option<Uuid>, i64)>,
    /// `(YYYY-MM-DD, count)` for the last 30 days.
    pub by_day: Vec<(String, i64)>,
}

/// Counts by kind, persona and day, and total size.
pub async fn stats(db: &Db, owner_id: Uuid) -> StoreResult<MediaStats> {
    let day_expr = match db {
        Db::Postgres(_) => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        Db::Sqlite(_) => "substr(created_at, 1, 10)",
    };
    let by_day_sql = format!(
        "SELECT {day_expr} AS day, COUNT(*) FROM media WHERE owner_id = $1 AND created_at >= $2 GROUP BY day ORDER BY day"
    );
    let since = Utc::now() - chrono::Duration::days(30);
    type Totals = (i64, i64, i64);
    type Counts = Vec<(String, i64)>;
    type PersonaCounts = Vec<(Option<Uuid>, i64)>;
    let (totals, by_kind, by_persona, by_day): (Totals, Counts, PersonaCounts, Counts) = with_pool!(db, pool => {
        let totals = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(bytes), 0) AS BIGINT), COUNT(CASE WHEN favorite THEN 1 END) FROM media WHERE owner_id = $1",
        )
        .bind(owner_id)
        .fetch_one(pool)
        .await?;
        let by_kind = sqlx::query_as("SELECT kind, COUNT(*) FROM media WHERE owner_id = $1 GROUP BY kind ORDER BY kind")
            .bind(owner_id)
            .fetch_all(pool)
            .await?;
        let by_persona = sqlx::query_as(
            "SELECT persona_id, COUNT(*) FROM media WHERE owner_id = $1 GROUP BY persona_id ORDER BY COUNT(*) DESC LIMIT 50",
        )
        .bind(owner_id)
        .fetch_all(pool)
        .await?;
        let by_day = sqlx::query_as(sqlx::AssertSqlSafe(by_day_sql.clone())).bind(owner_id).bind(since).fetch_all(pool).await?;
        (totals, by_kind, by_persona, by_day)
    });
    Ok(MediaStats { total: totals.0, total_bytes: totals.1, favorites: totals.2, by_kind, by_persona, by_day })
}
