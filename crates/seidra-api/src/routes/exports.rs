//! `/api/media/export`: ZIP exports of library items, run as jobs of type `export` (queued,
//! claimed, heartbeated, cancelled and retried like any job, but run by the worker itself).
//! The archive holds each file, a `<name>.json` with its provenance, and `manifest.json`.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use seidra_core::ValidationError;
use seidra_core::job::{JobStatus, JobType, PriorityClass};
use seidra_store::jobs;
use seidra_store::media_pipeline::{self, ExportFilter, ExportSelection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{CanGenerate, CanRead};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, parse_uuid};
use crate::routes::jobs::internal_job;
use crate::routes::media::normalize_tags;
use crate::state::AppState;

/// Which items to export: `ids`, or a `filter` (the whole library when both are absent).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Items to export (all must be yours).
    #[serde(default)]
    pub ids: Option<Vec<Uuid>>,
    /// A library filter (resolved when the job runs).
    #[serde(default)]
    pub filter: Option<ExportFilterBody>,
}

/// The filters of `GET /api/media`, without paging.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportFilterBody {
    /// `image`, `audio` or `video`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Favourites only (`true`) or non-favourites only (`false`).
    #[serde(default)]
    pub favorite: Option<bool>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `any` (default) or `all`.
    #[serde(default)]
    pub tags_mode: Option<String>,
    /// Producing job.
    #[serde(default)]
    pub job_id: Option<Uuid>,
    /// Persona.
    #[serde(default)]
    pub persona_id: Option<Uuid>,
    /// Created at or after.
    #[serde(default)]
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    #[serde(default)]
    pub to: Option<DateTime<Utc>>,
    /// Full-text search.
    #[serde(default)]
    pub q: Option<String>,
}

/// A finished export.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportView {
    /// The export job.
    pub job_id: Uuid,
    /// Items archived.
    pub items: i32,
    /// Archive size.
    pub bytes: i64,
    /// Short-lived signed download URL of the ZIP.
    pub download_url: String,
    /// When the archive is deleted.
    pub expires_at: DateTime<Utc>,
}

/// Export items as a ZIP (a job of type `export`; follow it like any job).
#[utoipa::path(post, path = "/api/media/export", tag = "media", request_body = ExportRequest, security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 202, body = crate::routes::jobs::SubmitResponse), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_export(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    AppJson(body): AppJson<ExportRequest>,
) -> ApiResult<Response> {
    let owner = principal.user.id;
    let max = usize::try_from(state.settings.media.export_max_items).unwrap_or(usize::MAX);
    let selection = match (body.ids, body.filter) {
        (Some(_), Some(_)) => {
            return Err(ValidationError::new("filter", "send either `ids` or `filter`, not both").into());
        }
        (Some(ids), None) => {
            if ids.is_empty() {
                return Err(ValidationError::new("ids", "name at least one item").into());
            }
            ExportSelection { ids: Some(ids), filter: None }
        }
        (None, filter) => {
            let f = filter.unwrap_or_default();
            if let Some(kind) = &f.kind
                && !["image", "audio", "video"].contains(&kind.as_str())
            {
                return Err(ValidationError::new("filter.type", "must be image, audio or video").into());
            }
            if f.tags_mode.as_deref().is_some_and(|m| m != "any" && m != "all") {
                return Err(ValidationError::new("filter.tags_mode", "must be `any` or `all`").into());
            }
            let filter = ExportFilter {
                kind: f.kind,
                favorite: f.favorite,
                tags: normalize_tags("filter.tags", &f.tags)?,
                tags_mode: f.tags_mode,
                job_id: f.job_id,
                persona_id: f.persona_id,
                from: f.from,
                to: f.to,
                q: f.q,
            };
            ExportSelection { ids: None, filter: Some(filter) }
        }
    };
    // Checked now so the caller learns at once; the worker resolves the selection again.
    match media_pipeline::resolve_selection(&state.db, owner, &selection, max)
        .await
        .map_err(ApiError::or_not_found("media item"))?
    {
        Err(n) => {
            return Err(ValidationError::new(
                if selection.ids.is_some() { "ids" } else { "filter" },
                format!("{n} items selected; an export holds at most {max}"),
            )
            .into());
        }
        Ok(items) if items.is_empty() => {
            return Err(ValidationError::new("filter", "no items match; nothing to export").into());
        }
        Ok(_) => {}
    }
    let job = internal_job(&state, JobType::Export, PriorityClass::Batch, "zip", &selection)?;
    crate::routes::jobs::submit_jobs(&state, &principal, vec![job], None, None).await
}

/// A finished export with a fresh signed download URL (404 until the job succeeded).
#[utoipa::path(get, path = "/api/media/export/{job_id}", tag = "media",
    params(("job_id" = Uuid, Path, description = "export job id")), security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = ExportView), (status = 404, body = ErrorBody)))]
pub async fn get_export(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    Path(job_id): Path<String>,
) -> ApiResult<Json<ExportView>> {
    let job_id = parse_uuid("job_id", &job_id)?;
    let export = media_pipeline::get_export(&state.db, principal.user.id, job_id)
        .await
        .map_err(ApiError::or_not_found("export"))?;
    // A retried attempt may have recorded it before its job was refused; only succeeded jobs count.
    let job = jobs::get(&state.db, job_id).await.map_err(|_| ApiError::not_found("export"))?;
    if job.status != JobStatus::Succeeded || job.owner_id != principal.user.id {
        return Err(ApiError::not_found("export"));
    }
    Ok(Json(ExportView {
        job_id,
        items: export.items,
        bytes: export.bytes,
        download_url: state.signer.link(&export.storage_key),
        expires_at: export.expires_at,
    }))
}
