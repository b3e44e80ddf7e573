//! `/api/media`: the library — list with filters and full-text search, item details with a
//! signed download URL, tags and favourites, delete, statistics and bulk actions. Every route
//! sees only the caller's items; anyone else's are 404 so their existence does not leak.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use seidra_core::ValidationError;
use seidra_store::media::{self, Media, MediaFilter, MediaSort, TagChange, TagMatch};
use seidra_store::{RawJson, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{CanGenerate, CanRead};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, parse_uuid};
use crate::routes::jobs::{OutputView, output_view};
use crate::state::AppState;

/// A library item with its provenance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MediaView {
    /// Id.
    pub id: Uuid,
    /// `image`, `audio` or `video`.
    pub kind: String,
    /// `generated` or `upload`.
    pub source: String,
    /// File, with a short-lived signed URL.
    pub file: OutputView,
    /// Tags.
    pub tags: Vec<String>,
    /// Favourite.
    pub favorite: bool,
    /// Producing job.
    pub job_id: Option<Uuid>,
    /// Prompt it was made from.
    pub prompt: String,
    /// Negative prompt.
    pub negative_prompt: String,
    /// Engine.
    pub engine: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Seed.
    pub seed: Option<i64>,
    /// Every parameter of the request (submit it again to reproduce).
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<RawJson>,
    /// Persona.
    pub persona_id: Option<Uuid>,
    /// Persona version.
    pub persona_version: Option<i32>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Thumbnails: `pending`, `ready`, `failed` or `none` (audio, video).
    pub thumbnail_state: String,
    /// Signed URL of the 256 px JPEG thumbnail (null until ready).
    pub thumb_256_url: Option<String>,
    /// Signed URL of the 768 px JPEG thumbnail (null until ready).
    pub thumb_768_url: Option<String>,
    /// Duration of audio/video, seconds.
    pub duration_secs: Option<f64>,
    /// Sanitised file name of an upload.
    pub original_name: Option<String>,
}

impl MediaView {
    /// The view of an item (taking the row, so its strings and parameters move instead of being
    /// copied), with signed URLs.
    pub fn new(state: &AppState, m: Media) -> Self {
        let ready = m.thumb_state == "ready";
        let thumb = |key: &Option<String>| key.as_deref().filter(|_| ready).map(|k| state.signer.link(k));
        let (thumb_256_url, thumb_768_url) = (thumb(&m.thumb_256_key), thumb(&m.thumb_768_key));
        Self {
            id: m.id,
            file: output_view(state, &m),
            kind: m.kind,
            source: m.source,
            tags: m.tags.0,
            favorite: m.favorite,
            job_id: m.job_id,
            prompt: m.prompt,
            negative_prompt: m.negative_prompt,
            engine: m.engine,
            model: m.model,
            seed: m.seed,
            parameters: m.parameters.map(|p| p.0),
            persona_id: m.persona_id,
            persona_version: m.persona_version,
            created_at: m.created_at,
            thumbnail_state: m.thumb_state,
            thumb_256_url,
            thumb_768_url,
            duration_secs: m.duration_ms.map(|ms| ms as f64 / 1000.0),
            original_name: m.original_name,
        }
    }
}

/// Filters for `GET /api/media`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MediaQuery {
    /// `image`, `audio` or `video`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only favourites (`true`) or non-favourites (`false`).
    pub favorite: Option<bool>,
    /// Comma-separated tags.
    pub tags: Option<String>,
    /// `any` (default) or `all` of the tags.
    pub tags_mode: Option<String>,
    /// Producing job.
    pub job_id: Option<Uuid>,
    /// Persona.
    pub persona_id: Option<Uuid>,
    /// Created at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Full-text search over prompt and tags.
    pub q: Option<String>,
    /// `newest` (default), `oldest` or `largest`.
    pub sort: Option<String>,
    /// Page size (1–200, default 50).
    pub limit: Option<i64>,
    /// Offset.
    pub offset: Option<i64>,
}

/// A page of the library.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MediaPage {
    /// Items.
    pub items: Vec<MediaView>,
    /// Total matching.
    pub total: i64,
    /// Page size.
    pub limit: i64,
    /// Offset.
    pub offset: i64,
}

/// Normalises and checks tags: trimmed, lower-case, 1–50 characters of letters, digits, space, `-`, `_`.
pub fn normalize_tags(field: &str, raw: &[String]) -> Result<Vec<String>, ValidationError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, tag) in raw.iter().enumerate() {
        let t = tag.trim().to_lowercase();
        let ok = (1..=50).contains(&t.chars().count())
            && t.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'));
        if !ok {
            return Err(ValidationError::new(
                format!("{field}[{i}]"),
                "tags are 1–50 letters, digits, spaces, '-' or '_'",
            ));
        }
        out.push(t);
    }
    if out.len() > media::MAX_TAGS {
        return Err(ValidationError::new(field, format!("at most {} tags", media::MAX_TAGS)));
    }
    Ok(out)
}

/// List the caller's library.
#[utoipa::path(get, path = "/api/media", tag = "media", params(MediaQuery), security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = MediaPage), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    AppQuery(q): AppQuery<MediaQuery>,
) -> ApiResult<Json<MediaPage>> {
    let (limit, offset) = crate::views::PageQuery { limit: q.limit, offset: q.offset }.resolve()?;
    if let Some(kind) = &q.kind
        && !["image", "audio", "video"].contains(&kind.as_str())
    {
        return Err(ValidationError::new("type", "must be image, audio or video").into());
    }
    let tags: Vec<String> = q
        .tags
        .as_deref()
        .map(|t| t.split(',').map(str::to_owned).filter(|t| !t.trim().is_empty()).collect())
        .unwrap_or_default();
    let tags = normalize_tags("tags", &tags)?;
    let tag_match = match q.tags_mode.as_deref() {
        None | Some("any") => TagMatch::Any,
        Some("all") => TagMatch::All,
        Some(_) => return Err(ValidationError::new("tags_mode", "must be `any` or `all`").into()),
    };
    let sort = match q.sort.as_deref() {
        None | Some("newest") => MediaSort::Newest,
        Some("oldest") => MediaSort::Oldest,
        Some("largest") => MediaSort::Largest,
        Some(_) => return Err(ValidationError::new("sort", "must be newest, oldest or largest").into()),
    };
    if q.q.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(ValidationError::new("q", "must be at most 200 characters").into());
    }
    let filter = MediaFilter {
        owner_id: principal.user.id,
        kind: q.kind,
        favorite: q.favorite,
        tags,
        tag_match,
        job_id: q.job_id,
        persona_id: q.persona_id,
        from: q.from,
        to: q.to,
        search: q.q,
        sort,
    };
    let (items, total) = media::list(&state.db, &filter, limit, offset).await?;
    Ok(Json(MediaPage { items: items.into_iter().map(|m| MediaView::new(&state, m)).collect(), total, limit, offset }))
}

/// One item with provenance and a signed download URL.
#[utoipa::path(get, path = "/api/media/{id}", tag = "media", params(("id" = Uuid, Path, description = "media id")),
    security(("bearer" = []), ("api_key" = ["read"])), responses((status = 200, body = MediaView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    Path(id): Path<String>,
) -> ApiResult<Json<MediaView>> {
    let id = parse_uuid("id", &id)?;
    let item =
        media::get_owned(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("media item"))?;
    Ok(Json(MediaView::new(&state, item)))
}

/// Changes to an item.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaUpdate {
    /// Favourite flag.
    #[serde(default)]
    pub favorite: Option<bool>,
    /// Replace all tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Add tags.
    #[serde(default)]
    pub add_tags: Option<Vec<String>>,
    /// Remove tags.
    #[serde(default)]
    pub remove_tags: Option<Vec<String>>,
}

async fn apply_tags(state: &AppState, owner: Uuid, id: Uuid, change: TagChange) -> ApiResult<Media> {
    media::change_tags(&state.db, owner, id, &change).await.map_err(tag_error)
}

/// Too many tags → 422 on `tags`; an item that is not the caller's → 404.
fn tag_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { constraint } => ApiError::validation(ValidationError::new("tags", constraint)),
        other => ApiError::or_not_found("media item")(other),
    }
}

/// Tag (replace/add/remove) and favourite an item.
#[utoipa::path(patch, path = "/api/media/{id}", tag = "media", request_body = MediaUpdate,
    params(("id" = Uuid, Path, description = "media id")), security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 200, body = MediaView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
    AppJson(body): AppJson<MediaUpdate>,
) -> ApiResult<Json<MediaView>> {
    let id = parse_uuid("id", &id)?;
    let owner = principal.user.id;
    let mut changes = Vec::new();
    if let Some(tags) = &body.tags {
        changes.push(TagChange::Set(normalize_tags("tags", tags)?));
    }
    if let Some(tags) = &body.add_tags {
        changes.push(TagChange::Add(normalize_tags("add_tags", tags)?));
    }
    if let Some(tags) = &body.remove_tags {
        changes.push(TagChange::Remove(normalize_tags("remove_tags", tags)?));
    }
    let item = if changes.is_empty() && body.favorite.is_none() {
        media::get_owned(&state.db, owner, id).await.map_err(ApiError::or_not_found("media item"))?
    } else {
        media::update(&state.db, owner, id, &changes, body.favorite).await.map_err(tag_error)?
    };
    Ok(Json(MediaView::new(&state, item)))
}

/// Deletes an item, its file and its thumbnails.
async fn delete_one(state: &AppState, owner: Uuid, id: Uuid) -> ApiResult<()> {
    let keys = media::delete(&state.db, owner, id).await.map_err(ApiError::or_not_found("media item"))?;
    for key in keys {
        if let Err(err) = state.storage.delete(&key).await {
            // The row is gone; the orphaned object is logged (a sweeper removes orphans).
            tracing::warn!(%err, key, "could not delete an object of a deleted media item");
        }
    }
    Ok(())
}

/// Delete an item and its file.
#[utoipa::path(delete, path = "/api/media/{id}", tag = "media", params(("id" = Uuid, Path, description = "media id")),
    security(("bearer" = []), ("api_key" = ["generate"])), responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_uuid("id", &id)?;
    delete_one(&state, principal.user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Library statistics.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MediaStatsView {
    /// Items.
    pub total: i64,
    /// Bytes.
    pub total_bytes: i64,
    /// Favourites.
    pub favorites: i64,
    /// Count per kind.
    pub by_kind: std::collections::BTreeMap<String, i64>,
    /// Count per persona (`none` for items without one).
    pub by_persona: std::collections::BTreeMap<String, i64>,
    /// Count per day (UTC, last 30 days).
    pub by_day: std::collections::BTreeMap<String, i64>,
}

/// Counts by type, persona and day, and total bytes.
#[utoipa::path(get, path = "/api/media/stats", tag = "media", security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = MediaStatsView)))]
pub async fn stats(State(state): State<AppState>, CanRead(principal): CanRead) -> ApiResult<Json<MediaStatsView>> {
    let s = media::stats(&state.db, principal.user.id).await?;
    Ok(Json(MediaStatsView {
        total: s.total,
        total_bytes: s.total_bytes,
        favorites: s.favorites,
        by_kind: s.by_kind.into_iter().collect(),
        by_persona: s
            .by_persona
            .into_iter()
            .map(|(p, n)| (p.map_or_else(|| "none".to_owned(), |p| p.to_string()), n))
            .collect(),
        by_day: s.by_day.into_iter().collect(),
    }))
}

/// A bulk action on several items.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// Items (1–500).
    pub ids: Vec<Uuid>,
    /// `tag`, `untag`, `favorite`, `unfavorite` or `delete`.
    pub action: String,
    /// Tags for `tag`/`untag`.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Outcome for one item.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkItemResult {
    /// Item.
    pub id: Uuid,
    /// Whether it worked.
    pub ok: bool,
    /// Error code when it did not (`not_found`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Per-item results.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkResponse {
    /// One entry per requested id, in order.
    pub results: Vec<BulkItemResult>,
    /// How many succeeded.
    pub succeeded: usize,
    /// How many failed.
    pub failed: usize,
}

/// Tag, untag, favourite, unfavourite or delete several items; reports per item.
#[utoipa::path(post, path = "/api/media/bulk", tag = "media", request_body = BulkRequest, security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 200, body = BulkResponse), (status = 422, body = ErrorBody)))]
pub async fn bulk(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    AppJson(body): AppJson<BulkRequest>,
) -> ApiResult<Json<BulkResponse>> {
    if body.ids.is_empty() || body.ids.len() > 500 {
        return Err(ValidationError::new("ids", "must hold 1 to 500 ids").into());
    }
    let tags = normalize_tags("tags", &body.tags)?;
    if matches!(body.action.as_str(), "tag" | "untag") && tags.is_empty() {
        return Err(ValidationError::new("tags", "name at least one tag").into());
    }
    if !["tag", "untag", "favorite", "unfavorite", "delete"].contains(&body.action.as_str()) {
        return Err(ValidationError::new("action", "must be tag, untag, favorite, unfavorite or delete").into());
    }
    let owner = principal.user.id;
    let mut results = Vec::with_capacity(body.ids.len());
    for id in body.ids {
        let outcome = match body.action.as_str() {
            "tag" => apply_tags(&state, owner, id, TagChange::Add(tags.clone())).await.map(|_| ()),
            "untag" => apply_tags(&state, owner, id, TagChange::Remove(tags.clone())).await.map(|_| ()),
            "favorite" => media::set_favorite(&state.db, owner, id, true)
                .await
                .map(|_| ())
                .map_err(ApiError::or_not_found("media item")),
            "unfavorite" => media::set_favorite(&state.db, owner, id, false)
                .await
                .map(|_| ())
                .map_err(ApiError::or_not_found("media item")),
            _ => delete_one(&state, owner, id).await,
        };
        results.push(match outcome {
            Ok(()) => BulkItemResult { id, ok: true, error: None },
            Err(e) => BulkItemResult { id, ok: false, error: Some(e.code.to_owned()) },
        });
    }
    let succeeded = results.iter().filter(|r| r.ok).count();
    let failed = results.len() - succeeded;
    Ok(Json(BulkResponse { results, succeeded, failed }))
}
