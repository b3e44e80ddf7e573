//! `/api/models`: the model catalogue — base models, LoRAs and VAEs in the model directory,
//! with size, SHA-256 and architecture read from their safetensors headers. Everyone signed in
//! may read it; admins rescan, register, remove and download (a `model_download` job).

use std::path::{Component, Path as FsPath};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use seidra_core::ValidationError;
use seidra_core::job::{JobType, PriorityClass};
use seidra_models::download;
use seidra_models::scan::{self, Found};
use seidra_store::models::{self, Model, NewModel};
use seidra_worker::model_tasks::DownloadRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Admin, CanRead};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, parse_uuid};
use crate::routes::jobs::internal_job;
use crate::state::AppState;

/// A catalogued model.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    /// Id.
    pub id: Uuid,
    /// Name used in requests.
    pub name: String,
    /// `base`, `lora`, `vae` or `unknown`.
    pub kind: String,
    /// `sd15`, `sd21`, `sdxl` or `unknown`.
    pub architecture: String,
    /// `safetensors` or `diffusers`.
    pub format: String,
    /// Path in the model directory.
    pub path: String,
    /// Size, bytes.
    pub bytes: i64,
    /// Hex SHA-256 (files only).
    pub sha256: Option<String>,
    /// Safetensors metadata (training details of LoRAs…).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// `scan`, `download` or `registered`.
    pub source: String,
    /// Where a download came from.
    pub source_url: Option<String>,
    /// Description.
    pub description: String,
    /// First catalogued.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Model> for ModelView {
    fn from(m: Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            kind: m.kind,
            architecture: m.architecture,
            format: m.format,
            path: m.rel_path,
            bytes: m.bytes,
            sha256: m.sha256,
            metadata: m.metadata.0,
            source: m.source,
            source_url: m.source_url,
            description: m.description,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The catalogue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// Models by kind, then name.
    pub items: Vec<ModelView>,
    /// How many.
    pub total: usize,
}

/// Filters of the catalogue.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelQuery {
    /// `base`, `lora`, `vae` or `unknown`.
    pub kind: Option<String>,
    /// `sd15`, `sd21`, `sdxl` or `unknown`.
    pub architecture: Option<String>,
}

const KINDS: &[&str] = &["base", "lora", "vae", "unknown"];
const ARCHITECTURES: &[&str] = &["sd15", "sd21", "sdxl", "unknown"];

/// The model catalogue.
#[utoipa::path(get, path = "/api/models", tag = "models", params(ModelQuery), security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = ModelList), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _: CanRead,
    Query(q): Query<ModelQuery>,
) -> ApiResult<Json<ModelList>> {
    if let Some(kind) = &q.kind
        && !KINDS.contains(&kind.as_str())
    {
        return Err(ValidationError::new("kind", format!("must be one of {}", KINDS.join(", "))).into());
    }
    if let Some(arch) = &q.architecture
        && !ARCHITECTURES.contains(&arch.as_str())
    {
        return Err(ValidationError::new("architecture", format!("must be one of {}", ARCHITECTURES.join(", "))).into());
    }
    let items: Vec<ModelView> = models::list(&state.db, q.kind.as_deref(), q.architecture.as_deref())
        .await?
        .into_iter()
        .map(ModelView::from)
        .collect();
    Ok(Json(ModelList { total: items.len(), items }))
}

/// One model.
#[utoipa::path(get, path = "/api/models/{id}", tag = "models", security(("bearer" = []), ("api_key" = ["read"])),
    params(("id" = Uuid, Path, description = "model id")),
    responses((status = 200, body = ModelView), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<AppState>, _: CanRead, Path(id): Path<String>) -> ApiResult<Json<ModelView>> {
    let id = parse_uuid("id", &id)?;
    Ok(Json(models::get(&state.db, id).await.map_err(ApiError::or_not_found("model"))?.into()))
}

/// A file the scan did not catalogue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefusedFile {
    /// Path in the model directory.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What a rescan changed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RescanReport {
    /// New models.
    pub added: u64,
    /// Models whose file changed.
    pub updated: u64,
    /// Models whose file is gone.
    pub removed: u64,
    /// Files refused (pickles, broken safetensors).
    pub refused: Vec<RefusedFile>,
}

/// Rescans the model directory and brings the catalogue in line (admins).
#[utoipa::path(post, path = "/api/models/rescan", tag = "models", security(("bearer" = []), ("api_key" = ["admin"])),
    responses((status = 200, body = RescanReport), (status = 403, body = ErrorBody)))]
pub async fn rescan(State(state): State<AppState>, _: Admin) -> ApiResult<Json<RescanReport>> {
    Ok(Json(rescan_directory(&state).await?))
}

/// The lease that lets one process at a time run the startup scan.
pub const STARTUP_SCAN_LEASE: &str = "model-startup-scan";

/// The startup scan, run by one replica at a time: when several API replicas start together
/// (a rollout), the first takes the lease and the others skip rather than hash the same
/// directory again. `None` when another process holds the lease.
pub async fn scan_at_startup(state: &AppState) -> ApiResult<Option<RescanReport>> {
    let holder = Uuid::now_v7();
    // Long enough for a first scan of a large directory; given back as soon as it is done.
    let ttl = chrono::Duration::minutes(30);
    if !seidra_store::workers::try_lead(&state.db, STARTUP_SCAN_LEASE, holder, ttl).await? {
        tracing::info!("another process is scanning the model directory; skipping the startup scan");
        return Ok(None);
    }
    let report = rescan_directory(state).await;
    if let Err(err) = seidra_store::workers::resign(&state.db, STARTUP_SCAN_LEASE, holder).await {
        tracing::warn!(%err, "could not give back the startup-scan lease; it expires by itself");
    }
    report.map(Some)
}

/// Scans the model directory into the catalogue (also run at startup).
pub async fn rescan_directory(state: &AppState) -> ApiResult<RescanReport> {
    let known = models::known_hashes(&state.db).await?;
    let reuse = |path: &str, bytes: u64, modified: i64| {
        known
            .get(path)
            .filter(|(b, m, _)| u64::try_from(*b).ok() == Some(bytes) && *m == modified)
            .map(|(_, _, sha)| sha.clone())
    };
    let scanned = scan::scan(&state.models.dir, &reuse).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "model_scan_failed",
            format!("cannot scan the model directory: {e}"),
        )
    })?;
    let found: Vec<NewModel> = scanned.found.iter().map(|f| new_model(f, "scan", None, String::new())).collect();
    let report = models::sync_scan(&state.db, &found).await?;
    tracing::info!(
        added = report.added,
        updated = report.updated,
        removed = report.removed,
        refused = scanned.refused.len(),
        "model directory scanned"
    );
    Ok(RescanReport {
        added: report.added,
        updated: report.updated,
        removed: report.removed,
        refused: scanned.refused.into_iter().map(|r| RefusedFile { path: r.rel_path, reason: r.reason }).collect(),
    })
}

fn new_model(f: &Found, source: &str, name: Option<String>, description: String) -> NewModel {
    NewModel {
        name: name.unwrap_or_else(|| f.name.clone()),
        kind: f.kind.as_str().to_owned(),
        architecture: f.architecture.as_str().to_owned(),
        format: f.format.to_owned(),
        rel_path: f.rel_path.clone(),
        bytes: i64::try_from(f.bytes).unwrap_or(i64::MAX),
        sha256: f.sha256.clone(),
        metadata: serde_json::to_value(&f.metadata).unwrap_or_default(),
        source: source.to_owned(),
        source_url: None,
        description,
        file_modified: f.modified,
    }
}

/// Registers a file (or diffusers directory) already in the model directory.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterModel {
    /// Path relative to the model directory.
    pub path: String,
    /// Catalogue name (default: the file stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// Registers one model file with a name and description (admins).
#[utoipa::path(post, path = "/api/models", tag = "models", request_body = RegisterModel, security(("bearer" = []), ("api_key" = ["admin"])),
    responses((status = 201, body = ModelView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    _: Admin,
    AppJson(body): AppJson<RegisterModel>,
) -> ApiResult<(StatusCode, Json<ModelView>)> {
    let rel = FsPath::new(body.path.trim());
    let inside = !rel.as_os_str().is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !inside {
        return Err(ValidationError::new("path", "must be a relative path inside the model directory (no `..`)").into());
    }
    let name = body.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    check_name("name", name.as_deref())?;
    let full = state.models.dir.join(rel);
    if !tokio::fs::try_exists(&full).await.unwrap_or(false) {
        return Err(ApiError::not_found("model file"));
    }
    let found = scan::inspect(&state.models.dir, &full)
        .await
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()).with_field("path"))?;
    let model =
        models::upsert(&state.db, &new_model(&found, "registered", name, body.description.unwrap_or_default())).await?;
    Ok((StatusCode::CREATED, Json(model.into())))
}

/// Query of a removal.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Also delete the file (default: only the catalogue row; a rescan brings it back).
    #[serde(default)]
    pub delete_file: bool,
}

/// Removes a model from the catalogue, and its file when asked (admins).
#[utoipa::path(delete, path = "/api/models/{id}", tag = "models", security(("bearer" = []), ("api_key" = ["admin"])),
    params(("id" = Uuid, Path, description = "model id"), DeleteQuery),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let id = parse_uuid("id", &id)?;
    let model = models::delete(&state.db, id).await.map_err(ApiError::or_not_found("model"))?;
    if q.delete_file {
        let path = state.models.dir.join(&model.rel_path);
        let removed = if model.format == "diffusers" {
            tokio::fs::remove_dir_all(&path).await
        } else {
            tokio::fs::remove_file(&path).await
        };
        if let Err(err) = removed
            && err.kind() != std::io::ErrorKind::NotFound
        {
            return Err(ApiError::internal(format!(
                "the model was removed from the catalogue but not from disk: {err}"
            )));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A download by URL.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadModel {
    /// `https` URL of a `.safetensors` file (`http` only when `models.allow_http`).
    pub url: String,
    /// File name in the model directory (default: the URL's last segment); `.safetensors`.
    #[serde(default)]
    pub file_name: Option<String>,
    /// Expected hex SHA-256; the download is refused when the content differs.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Catalogue name (default: the file stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// Downloads a model into the directory as a `model_download` job (admins): follow it like any
/// job; the model appears in the catalogue only once it is complete and verified.
#[utoipa::path(post, path = "/api/models/download", tag = "models", request_body = DownloadModel,
    security(("bearer" = []), ("api_key" = ["admin"])),
    responses((status = 202, body = crate::routes::jobs::SubmitResponse), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    Admin(principal): Admin,
    AppJson(body): AppJson<DownloadModel>,
) -> ApiResult<Response> {
    fn refused(field: &'static str) -> impl Fn(seidra_models::ModelError) -> ApiError {
        move |e| ApiError::validation(ValidationError::new(field, e.to_string()))
    }
    let url = download::check_url(&body.url, state.models.allow_http).map_err(refused("url"))?;
    let file_name = match &body.file_name {
        Some(name) => download::check_file_name(name.trim()).map_err(refused("file_name"))?,
        None => {
            let last = url.path_segments().and_then(|mut s| s.next_back()).unwrap_or_default().to_owned();
            download::check_file_name(&last).map_err(refused("url"))?
        }
    };
    let sha256 = body.sha256.map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
    if let Some(sha) = &sha256
        && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ValidationError::new("sha256", "must be 64 hexadecimal characters").into());
    }
    let name = body.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    check_name("name", name.as_deref())?;
    if tokio::fs::try_exists(state.models.dir.join(&file_name)).await.unwrap_or(false) {
        return Err(ApiError::conflict("model_exists", format!("`{file_name}` is already in the model directory"))
            .with_field("file_name"));
    }
    let request = DownloadRequest {
        url: url.to_string(),
        file_name: file_name.clone(),
        sha256,
        name,
        description: body.description,
    };
    let job = internal_job(&state, JobType::ModelDownload, PriorityClass::Batch, file_name, &request)?;
    crate::routes::jobs::submit_jobs(&state, &principal, vec![job], None, None).await
}

fn check_name(field: &str, name: Option<&str>) -> ApiResult<()> {
    if let Some(n) = name
        && (n.chars().count() > 120 || n.chars().any(char::is_control))
    {
        return Err(ValidationError::new(field, "must be at most 120 characters, without control characters").into());
    }
    Ok(())
}
