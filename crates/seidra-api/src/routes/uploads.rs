//! `POST /api/media/uploads`: images, audio and video for the studio, as multipart `file`
//! parts (plus an optional `tags` field).
//!
//! Nothing the client says about a file is trusted: the type comes from its magic bytes
//! (`seidra_media::sniff`), the size limit from that type, and the storage key from a fresh
//! UUID (`uploads/<owner>/<uuid>.<ext>`); the file name is only kept, sanitised, for display.
//! Each part is streamed to a spool file under `<data_dir>/tmp` while it is hashed and
//! counted, so a request holds one chunk in memory, not the file; the spool file is then
//! handed to the store (`ObjectStore::put_file`; the local and default backends read it into
//! memory there, up to the per-type limit). The request is all or nothing: every part is
//! checked before anything is stored, and one database transaction records them all.

use axum::Json;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use seidra_core::ValidationError;
use seidra_core::validation::sanitize_filename;
use seidra_media::probe::{self, ProbeError};
use seidra_media::sniff::{self, MediaKind, SNIFF_LEN, Sniffed};
use seidra_store::media_pipeline::{self, NewUpload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::CanGenerate;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::media::{MediaView, normalize_tags};
use crate::state::AppState;

/// The uploaded items.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadResponse {
    /// One item per `file` part, in order.
    pub items: Vec<MediaView>,
}

/// The multipart form (for the documentation; the handler reads the stream itself).
#[derive(Debug, ToSchema)]
#[allow(dead_code, reason = "documents the multipart form")]
pub struct UploadForm {
    /// One or more files: png, jpeg, gif, webp, wav, mp3, ogg/opus, flac, mp4, webm, mov.
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
    /// Comma-separated tags for every file.
    tags: Option<String>,
}

/// Largest `tags` field, bytes.
const MAX_TAGS_FIELD: usize = 4096;

struct Spooled {
    part: String,
    name: String,
    sniffed: Sniffed,
    bytes: u64,
    sha256: String,
    file: tempfile::NamedTempFile,
}

fn limit_for(state: &AppState, kind: MediaKind) -> (u64, &'static str) {
    let m = &state.settings.media;
    match kind {
        MediaKind::Image => (m.max_image_bytes, "media.max_image_bytes"),
        MediaKind::Audio => (m.max_audio_bytes, "media.max_audio_bytes"),
        MediaKind::Video => (m.max_video_bytes, "media.max_video_bytes"),
    }
}

fn human(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) { format!("{} MiB", bytes / MIB) } else { format!("{bytes} bytes") }
}

fn too_large(part: &str, what: &str, limit: u64, setting: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_too_large",
        format!("{part}: {what} is larger than the {} limit ({setting})", human(limit)),
    )
    .with_field(part.to_owned())
}

fn unsupported(part: &str, name: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!(
            "{part} (`{name}`) is not an accepted type: its content is none of png, jpeg, gif, webp, wav, mp3, \
             ogg/opus, flac, mp4, webm or mov"
        ),
    )
    .with_field(part.to_owned())
}

fn multipart_error(e: MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(status, "upload_too_large", e.body_text());
    }
    ApiError::validation(ValidationError::new("body", format!("malformed multipart body: {}", e.body_text())))
}

fn record(kind: &str, outcome: &'static str) {
    metrics::counter!("seidra_uploads_total", "kind" => kind.to_owned(), "outcome" => outcome).increment(1);
}

/// Streams one `file` part into a spool file: sniffs its first bytes, enforces the limit of
/// the sniffed type and of the whole request, hashes as it goes.
async fn spool(state: &AppState, mut field: Field<'_>, part: String, total: &mut u64) -> ApiResult<Spooled> {
    let name = sanitize_filename(field.file_name().unwrap_or(""));
    let dir = state.settings.data_dir.join("tmp");
    let spool_error = |e: std::io::Error| ApiError::io("spooling the upload", &e);
    tokio::fs::create_dir_all(&dir).await.map_err(spool_error)?;
    let file = tempfile::NamedTempFile::new_in(&dir).map_err(spool_error)?;
    let mut out = tokio::fs::File::from_std(file.reopen().map_err(spool_error)?);
    let max_request = state.settings.media.max_upload_request_bytes;
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_LEN);
    let mut sniffed: Option<Sniffed> = None;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        size += chunk.len() as u64;
        *total += chunk.len() as u64;
        if *total > max_request {
            return Err(too_large(&part, "the request", max_request, "media.max_upload_request_bytes"));
        }
        if sniffed.is_none() {
            let take = (SNIFF_LEN - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            if head.len() >= SNIFF_LEN {
                sniffed = Some(sniff::sniff(&head).ok_or_else(|| unsupported(&part, &name))?);
            }
        }
        if let Some(s) = sniffed {
            let (limit, setting) = limit_for(state, s.kind);
            if size > limit {
                record(s.kind.as_str(), "too_large");
                return Err(too_large(&part, &format!("this {}", s.kind.as_str()), limit, setting));
            }
        }
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(spool_error)?;
    }
    if size == 0 {
        return Err(ApiError::validation(ValidationError::new(part, "the file is empty")));
    }
    let sniffed = match sniffed {
        Some(s) => s,
        None => {
            let s = sniff::sniff(&head).ok_or_else(|| unsupported(&part, &name))?;
            let (limit, setting) = limit_for(state, s.kind);
            if size > limit {
                record(s.kind.as_str(), "too_large");
                return Err(too_large(&part, &format!("this {}", s.kind.as_str()), limit, setting));
            }
            s
        }
    };
    out.flush().await.map_err(spool_error)?;
    out.sync_all().await.map_err(spool_error)?;
    Ok(Spooled { part, name, sniffed, bytes: size, sha256: hex::encode(hasher.finalize()), file })
}

/// Width/height of images, duration of audio and video.
async fn probe_one(state: &AppState, s: &Spooled) -> ApiResult<(Option<(u32, u32)>, Option<i64>)> {
    let invalid = |e: ProbeError| {
        ApiError::validation(ValidationError::new(s.part.clone(), format!("`{}`: {e}", s.name)))
            .with_field(s.part.clone())
    };
    match s.sniffed.kind {
        MediaKind::Image => {
            let path = s.file.path().to_path_buf();
            let dims = tokio::task::spawn_blocking(move || probe::image_dimensions(&path))
                .await
                .map_err(ApiError::internal)?
                .map_err(invalid)?;
            Ok((Some(dims), None))
        }
        MediaKind::Audio | MediaKind::Video => {
            match probe::duration_secs(&state.settings.media.ffprobe, s.file.path()).await {
                Ok(secs) => Ok((None, Some((secs * 1000.0).round() as i64))),
                Err(e @ ProbeError::Invalid(_)) => Err(invalid(e)),
                // Without ffprobe the file is still accepted, just without a duration.
                Err(err) => {
                    tracing::warn!(%err, "no duration for an upload");
                    Ok((None, None))
                }
            }
        }
    }
}

/// Upload images, audio or video (multipart `file` parts, optional `tags`).
#[utoipa::path(post, path = "/api/media/uploads", tag = "media",
    request_body(content = UploadForm, content_type = "multipart/form-data"), security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 201, body = UploadResponse), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<UploadResponse>)> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{e}; send multipart/form-data"),
        )
    })?;
    let owner = principal.user.id;
    let mut spooled: Vec<Spooled> = Vec::new();
    let mut raw_tags: Vec<String> = Vec::new();
    let mut total: u64 = 0;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("file") => {
                let part = format!("file[{}]", spooled.len());
                spooled.push(spool(&state, field, part, &mut total).await?);
            }
            Some("tags") => {
                let text = field.text().await.map_err(multipart_error)?;
                if text.len() > MAX_TAGS_FIELD {
                    return Err(ValidationError::new("tags", "at most 4096 bytes").into());
                }
                raw_tags.extend(text.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned));
            }
            other => {
                let name = other.unwrap_or("").to_owned();
                return Err(ValidationError::new(
                    if name.is_empty() { "body".to_owned() } else { name },
                    "unknown part; send `file` parts and an optional `tags` field",
                )
                .into());
            }
        }
    }
    if spooled.is_empty() {
        return Err(ValidationError::new("file", "send at least one `file` part").into());
    }
    let tags = normalize_tags("tags", &raw_tags)?;
    let quota = state.settings.media.user_quota_bytes;
    if quota > 0 {
        let used = u64::try_from(media_pipeline::owner_bytes(&state.db, owner).await?).unwrap_or(0);
        let adding: u64 = spooled.iter().map(|s| s.bytes).sum();
        if used + adding > quota {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "upload_quota_exceeded",
                format!(
                    "your library holds {used} bytes; these files ({adding} bytes) would pass your {} quota \
                     (media.user_quota_bytes)",
                    human(quota)
                ),
            ));
        }
    }
    let mut uploads = Vec::with_capacity(spooled.len());
    for s in &spooled {
        let (dims, duration_ms) = probe_one(&state, s).await?;
        let id = Uuid::now_v7();
        uploads.push(NewUpload {
            id,
            storage_key: format!("uploads/{owner}/{id}.{}", s.sniffed.ext),
            mime: s.sniffed.mime.to_owned(),
            bytes: i64::try_from(s.bytes).unwrap_or(i64::MAX),
            width: dims.and_then(|d| i32::try_from(d.0).ok()),
            height: dims.and_then(|d| i32::try_from(d.1).ok()),
            duration_ms,
            sha256: s.sha256.clone(),
            original_name: s.name.clone(),
            tags: tags.clone(),
        });
    }
    // Store every object, then record every row in one transaction; undo the objects on failure.
    let mut stored: Vec<&str> = Vec::with_capacity(uploads.len());
    let mut failure: Option<ApiError> = None;
    for (u, s) in uploads.iter().zip(&spooled) {
        match state.storage.put_file(&u.storage_key, s.file.path(), &u.mime).await {
            Ok(_) => stored.push(&u.storage_key),
            Err(err) => {
                failure = Some(ApiError::storage("storing the upload", &err));
                break;
            }
        }
    }
    let items = match failure {
        Some(e) => Err(e),
        None => media_pipeline::insert_uploads(&state.db, owner, &uploads).await.map_err(ApiError::from),
    };
    let items = match items {
        Ok(items) => items,
        Err(e) => {
            for key in stored {
                let _ = state.storage.delete(key).await;
            }
            for s in &spooled {
                record(s.sniffed.kind.as_str(), "error");
            }
            return Err(e);
        }
    };
    for s in &spooled {
        let kind = s.sniffed.kind.as_str();
        record(kind, "stored");
        metrics::counter!("seidra_upload_bytes_total", "kind" => kind).increment(s.bytes);
    }
    if spooled.iter().any(|s| s.sniffed.kind == MediaKind::Image) {
        let wake = seidra_worker::events::control_event(seidra_worker::media_tasks::MEDIA_PENDING, None);
        if let Err(err) = state.bus.publish(&wake).await {
            tracing::warn!(%err, "could not wake the thumbnail workers");
        }
    }
    let items = items.into_iter().map(|m| MediaView::new(&state, m)).collect();
    Ok((StatusCode::CREATED, Json(UploadResponse { items })))
}
