//! The video studio: `/api/video/timelines` (CRUD per user), renders (`storyboard` jobs →
//! H.264/AAC MP4) and proxies (`video_proxy` jobs: fast low-resolution previews), and audio
//! waveform peaks (`GET /api/media/{id}/waveform`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use seidra_core::ValidationError;
use seidra_core::job::{JobType, PriorityClass};
use seidra_core::speech::SpeechEngine;
use seidra_core::timeline::{self, RenderJobRequest, TimelineSpec, TrackKind};
use seidra_media::process::ToolError;
use seidra_store::StoreError;
use seidra_store::jobs::NewJob;
use seidra_store::timelines::{self, Timeline};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{CanGenerate, CanRead, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppJson, AppQuery, parse_json, parse_uuid};
use crate::routes::jobs::internal_job;
use crate::state::AppState;

/// Largest height of a proxy render, pixels.
const PROXY_HEIGHT: u32 = 480;
/// Highest frame rate of a proxy render.
const PROXY_FPS: u32 = 15;
/// Most waveform peaks per request.
const MAX_PEAKS: usize = 4000;

/// A timeline as its owner sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimelineView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// 1 on creation, +1 per update.
    pub revision: i32,
    /// End of the last clip, seconds.
    pub duration_secs: f64,
    /// Tracks and clips.
    pub spec: TimelineSpec,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
}

impl From<&Timeline> for TimelineView {
    fn from(t: &Timeline) -> Self {
        Self {
            id: t.id,
            name: t.name.clone(),
            revision: t.revision,
            duration_secs: t.spec.0.duration(),
            spec: t.spec.0.clone(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A page of timelines.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TimelinePage {
    /// Most recently changed first.
    pub items: Vec<TimelineView>,
    /// All of yours.
    pub total: i64,
}

/// Paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    /// Page size (1–200, default 50).
    pub limit: Option<i64>,
    /// Offset.
    pub offset: Option<i64>,
}

/// Output of a render; each field defaults to the timeline's.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderOptions {
    /// Width, pixels (even, 64–3840).
    #[serde(default)]
    pub width: Option<u32>,
    /// Height, pixels (even, 64–3840).
    #[serde(default)]
    pub height: Option<u32>,
    /// Frames per second (1–60).
    #[serde(default)]
    pub fps: Option<u32>,
}

/// Waveform query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WaveformQuery {
    /// Number of peaks (1–4000, default 200).
    pub peaks: Option<usize>,
}

/// Peaks of an audio (or video) item's sound.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WaveformView {
    /// Media id.
    pub media_id: Uuid,
    /// Decoded length, seconds.
    pub duration_secs: f64,
    /// Largest absolute sample of each equal slice, 0–1.
    pub peaks: Vec<f32>,
}

/// Full validation of a timeline: structure, then every media reference (yours, existing, of
/// the track's kind, long enough) and every narration voice.
async fn validated(state: &AppState, owner: Uuid, mut spec: TimelineSpec) -> ApiResult<TimelineSpec> {
    spec.validate()?;
    spec.name = spec.name.trim().to_owned();
    for r in spec.media_refs() {
        let item = match seidra_store::media::get_owned(&state.db, owner, r.id).await {
            Ok(item) => item,
            // Someone else's item reads as missing: existence does not leak.
            Err(StoreError::NotFound) => {
                return Err(ValidationError::new(r.field, "no such media item in your library").into());
            }
            Err(e) => return Err(e.into()),
        };
        if item.kind != r.kind {
            return Err(
                ValidationError::new(r.field, format!("is a {} item; this track takes {}", item.kind, r.kind)).into()
            );
        }
        if let Some(ms) = item.duration_ms
            && r.needs_secs > ms as f64 / 1000.0 + 0.05
        {
            let at = r.field.trim_end_matches("media_id");
            return Err(ValidationError::new(
                format!("{at}duration"),
                format!("in_point + duration = {:.3} s, but the item lasts {:.3} s", r.needs_secs, ms as f64 / 1000.0),
            )
            .into());
        }
    }
    // Spoken and shown words obey the content policy like prompts do.
    let texts: Vec<(String, &str)> = spec
        .tracks
        .iter()
        .enumerate()
        .flat_map(|(t, track)| {
            track.clips.iter().enumerate().filter_map(move |(c, clip)| {
                clip.text.as_deref().map(|text| (format!("tracks[{t}].clips[{c}].text"), text))
            })
        })
        .collect();
    if !texts.is_empty() {
        crate::policy::enforce_texts(state, owner, &texts, "timeline").await?;
    }
    for (t, track) in spec.tracks.iter().enumerate() {
        if track.kind != TrackKind::Narration {
            continue;
        }
        for (c, clip) in track.clips.iter().enumerate() {
            if let Some(voice) = &clip.voice {
                crate::routes::speech::check_voice(
                    state,
                    SpeechEngine::EspeakNg,
                    voice,
                    &format!("tracks[{t}].clips[{c}].voice"),
                )
                .await?;
            }
        }
    }
    Ok(spec)
}

async fn owned(state: &AppState, principal: &Principal, id: &str) -> ApiResult<Timeline> {
    let id = parse_uuid("id", id)?;
    timelines::get_owned(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("timeline"))
}

/// List your timelines.
#[utoipa::path(get, path = "/api/video/timelines", tag = "video", params(TimelineQuery), security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = TimelinePage)))]
pub async fn list(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    AppQuery(q): AppQuery<TimelineQuery>,
) -> ApiResult<Json<TimelinePage>> {
    let (limit, offset) = crate::views::PageQuery { limit: q.limit, offset: q.offset }.resolve()?;
    let (items, total) = timelines::list(&state.db, principal.user.id, limit, offset).await?;
    Ok(Json(TimelinePage { items: items.iter().map(TimelineView::from).collect(), total }))
}

/// Create a timeline.
#[utoipa::path(post, path = "/api/video/timelines", tag = "video", request_body = TimelineSpec, security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 201, body = TimelineView), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    AppJson(spec): AppJson<TimelineSpec>,
) -> ApiResult<(StatusCode, Json<TimelineView>)> {
    let spec = validated(&state, principal.user.id, spec).await?;
    let t = timelines::create(&state.db, principal.user.id, &spec).await?;
    Ok((StatusCode::CREATED, Json(TimelineView::from(&t))))
}

/// One of your timelines.
#[utoipa::path(get, path = "/api/video/timelines/{id}", tag = "video", params(("id" = Uuid, Path, description = "timeline id")),
    security(("bearer" = []), ("api_key" = ["read"])), responses((status = 200, body = TimelineView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    Path(id): Path<String>,
) -> ApiResult<Json<TimelineView>> {
    Ok(Json(TimelineView::from(&owned(&state, &principal, &id).await?)))
}

/// Replace a timeline's content (its revision goes up by one).
/// With `If-Match: "<revision>"` the save only happens if nobody saved since that revision
/// (409 `revision_conflict` otherwise), so two editors never silently overwrite each other.
#[utoipa::path(put, path = "/api/video/timelines/{id}", tag = "video", request_body = TimelineSpec,
    params(("id" = Uuid, Path, description = "timeline id"),
        ("If-Match" = Option<String>, Header, description = "the revision the edit started from, e.g. `\"3\"`")),
    security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 200, body = TimelineView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
    headers: HeaderMap,
    AppJson(spec): AppJson<TimelineSpec>,
) -> ApiResult<Json<TimelineView>> {
    let expected = if_match_revision(&headers)?;
    let current = owned(&state, &principal, &id).await?;
    let spec = validated(&state, principal.user.id, spec).await?;
    let t =
        timelines::update(&state.db, principal.user.id, current.id, &spec, expected).await.map_err(|e| {
            match e {
        StoreError::Conflict { .. } => ApiError::conflict(
            "revision_conflict",
            "the timeline was saved elsewhere since this revision; reload it (or save without If-Match to overwrite)",
        )
        .with_field("If-Match"),
        other => ApiError::or_not_found("timeline")(other),
    }
        })?;
    Ok(Json(TimelineView::from(&t)))
}

/// The revision named by `If-Match` (`"3"`, `W/"3"` or `3`); `None` without the header.
fn if_match_revision(headers: &HeaderMap) -> ApiResult<Option<i32>> {
    let Some(value) = headers.get(http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    bare.parse::<i32>()
        .map(Some)
        .map_err(|_| ValidationError::new("If-Match", "must be the timeline's revision, e.g. \"3\"").into())
}

/// Delete a timeline (videos rendered from it stay in the library).
#[utoipa::path(delete, path = "/api/video/timelines/{id}", tag = "video", params(("id" = Uuid, Path, description = "timeline id")),
    security(("bearer" = []), ("api_key" = ["generate"])), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_uuid("id", &id)?;
    timelines::delete(&state.db, principal.user.id, id).await.map_err(ApiError::or_not_found("timeline"))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn submit_render(
    state: &AppState,
    principal: &Principal,
    t: &Timeline,
    spec: TimelineSpec,
    (width, height, fps): (u32, u32, u32),
    proxy: bool,
) -> ApiResult<Response> {
    spec.validate_renderable()?;
    let request =
        RenderJobRequest { timeline_id: t.id, revision: t.revision, timeline: spec, width, height, fps, proxy };
    let (job_type, priority) = if proxy {
        (JobType::VideoProxy, PriorityClass::Interactive)
    } else {
        (JobType::Storyboard, PriorityClass::Batch)
    };
    let job = NewJob { prompt: t.name.clone(), ..internal_job(state, job_type, priority, "ffmpeg", &request)? };
    crate::routes::jobs::submit_jobs(state, principal, vec![job], None, None).await
}

/// Render a timeline to an H.264/AAC MP4 (a `storyboard` job; the output is a video item whose
/// parameters name the timeline). The body is optional.
#[utoipa::path(post, path = "/api/video/timelines/{id}/render", tag = "video", request_body = Option<RenderOptions>,
    params(("id" = Uuid, Path, description = "timeline id")), security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 202, body = crate::routes::jobs::SubmitResponse), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn render(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let options: RenderOptions =
        if body.iter().all(u8::is_ascii_whitespace) { RenderOptions::default() } else { parse_json(&body)? };
    let t = owned(&state, &principal, &id).await?;
    // Checked again: media may have been deleted since the timeline was saved.
    let spec = validated(&state, principal.user.id, t.spec.0.clone()).await?;
    let format =
        (options.width.unwrap_or(spec.width), options.height.unwrap_or(spec.height), options.fps.unwrap_or(spec.fps));
    timeline::validate_format(format.0, format.1, format.2, "")?;
    submit_render(&state, &principal, &t, spec, format, false).await
}

/// Render a fast low-resolution preview (a `video_proxy` job: at most 480 p and 15 fps, x264 ultrafast).
#[utoipa::path(post, path = "/api/video/timelines/{id}/proxy", tag = "video",
    params(("id" = Uuid, Path, description = "timeline id")), security(("bearer" = []), ("api_key" = ["generate"])),
    responses((status = 202, body = crate::routes::jobs::SubmitResponse), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn proxy(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let t = owned(&state, &principal, &id).await?;
    let spec = validated(&state, principal.user.id, t.spec.0.clone()).await?;
    let height = spec.height.min(PROXY_HEIGHT);
    let width = ((f64::from(spec.width) * f64::from(height) / f64::from(spec.height) / 2.0).round() as u32 * 2).max(64);
    let format = (width, height, spec.fps.min(PROXY_FPS));
    submit_render(&state, &principal, &t, spec, format, true).await
}

/// Peaks of an audio or video item's sound, for waveform displays.
#[utoipa::path(get, path = "/api/media/{id}/waveform", tag = "media", params(("id" = Uuid, Path, description = "media id"), WaveformQuery),
    security(("bearer" = []), ("api_key" = ["read"])), responses((status = 200, body = WaveformView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn waveform(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<WaveformQuery>,
) -> ApiResult<Json<WaveformView>> {
    let id = parse_uuid("id", &id)?;
    let n = q.peaks.unwrap_or(200);
    if !(1..=MAX_PEAKS).contains(&n) {
        return Err(ValidationError::new("peaks", format!("must be 1 to {MAX_PEAKS}")).into());
    }
    let item = seidra_store::media::get_owned(&state.db, principal.user.id, id)
        .await
        .map_err(ApiError::or_not_found("media item"))?;
    if item.kind != "audio" && item.kind != "video" {
        return Err(ValidationError::new(
            "id",
            format!("is an {} item; only audio and video have a waveform", item.kind),
        )
        .into());
    }
    let bytes = state.storage.get(&item.storage_key).await.map_err(|e| {
        tracing::warn!(%e, "cannot read a media file");
        ApiError::unavailable("storage_unavailable", "the file cannot be read right now")
    })?;
    let spool = tempfile::NamedTempFile::new().map_err(ApiError::internal)?;
    tokio::fs::write(spool.path(), bytes).await.map_err(ApiError::internal)?;
    let wave = seidra_media::waveform::peaks(&state.settings.media.ffmpeg, spool.path(), n, &CancellationToken::new())
        .await
        .map_err(|e| match e {
            ToolError::Failed { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "undecodable_media",
                "the file's sound cannot be decoded",
            )
            .with_field("id"),
            ToolError::Missing { .. } => {
                ApiError::unavailable("ffmpeg_unavailable", "ffmpeg is not installed on this server")
            }
            other => ApiError::internal(other),
        })?;
    Ok(Json(WaveformView { media_id: id, duration_secs: wave.duration_secs, peaks: wave.peaks }))
}
