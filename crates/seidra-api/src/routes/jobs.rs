//! `/api/generate` and `/api/jobs`: submit, list, inspect, cancel, retry, statistics.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use seidra_core::ValidationError;
use seidra_core::job::{ImageRequest, JobError, JobStatus, JobType, PriorityClass};
use seidra_store::jobs::{
    self, CancelOutcome, Idempotency, Job, JobFilter, NewJob, SubmitError, SubmitEvents, SubmitLimits, Submitted,
};
use seidra_store::media::{self, Media};
use seidra_store::{RawJson, StoreError};
use seidra_worker::events::{JOB_CANCEL, JOBS_WAKE, control_event, job_event};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{CanGenerate, CanRead, Principal};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{AppQuery, parse_json, parse_uuid};
use crate::state::AppState;

/// Largest seed: 2^53 − 1, so seeds survive JavaScript clients intact.
pub const MAX_SEED: u64 = (1 << 53) - 1;
/// Most requests in one batch.
pub const MAX_BATCH: usize = 8;

/// One output file of a job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OutputView {
    /// Media id.
    pub media_id: Uuid,
    /// Short-lived signed download URL.
    pub url: String,
    /// MIME type.
    pub mime: String,
    /// Width, pixels.
    pub width: Option<i32>,
    /// Height, pixels.
    pub height: Option<i32>,
    /// Size.
    pub bytes: i64,
    /// Hex SHA-256.
    pub sha256: String,
    /// Seed that produced it.
    pub seed: Option<i64>,
}

/// A job as its owner sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner_id: Uuid,
    /// Status.
    pub status: JobStatus,
    /// Type.
    pub job_type: JobType,
    /// Priority class.
    pub priority: PriorityClass,
    /// Engine.
    pub engine: String,
    /// Model.
    pub model: String,
    /// Prompt as run.
    pub prompt: String,
    /// Negative prompt as run.
    pub negative_prompt: String,
    /// The accepted request, seed resolved (submit it again to reproduce).
    #[schema(value_type = Object)]
    pub request: RawJson,
    /// 0..=1.
    pub progress: f64,
    /// Stage message.
    pub stage: Option<String>,
    /// Estimated seconds left.
    pub eta_secs: Option<i64>,
    /// Claims so far.
    pub attempt: i32,
    /// Claims allowed.
    pub max_attempts: i32,
    /// A cancel was requested and the worker is stopping.
    pub cancel_requested: bool,
    /// Why it failed.
    pub error: Option<JobError>,
    /// The job this retries.
    pub retry_of: Option<Uuid>,
    /// Batch.
    pub batch_id: Option<Uuid>,
    /// Persona.
    pub persona_id: Option<Uuid>,
    /// Submitted.
    pub queued_at: DateTime<Utc>,
    /// First started.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Not retried before (back-off).
    pub run_after: DateTime<Utc>,
    /// Output files (on `GET /api/jobs/{id}` and for succeeded jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<OutputView>>,
}

impl JobView {
    /// Builds the view (taking the row, so its strings and request JSON move instead of being
    /// copied); outputs get signed URLs.
    pub fn new(state: &AppState, job: Job, outputs: Option<&[Media]>) -> Self {
        Self {
            id: job.id,
            owner_id: job.owner_id,
            status: job.status,
            job_type: job.job_type,
            priority: job.priority,
            engine: job.engine,
            model: job.model,
            prompt: job.prompt,
            negative_prompt: job.negative_prompt,
            request: job.request,
            progress: job.progress,
            stage: job.stage,
            eta_secs: job.eta_secs,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            cancel_requested: job.cancel_requested,
            error: job.error,
            retry_of: job.retry_of,
            batch_id: job.batch_id,
            persona_id: job.persona_id,
            queued_at: job.queued_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            run_after: job.run_after,
            outputs: outputs.map(|items| items.iter().map(|m| output_view(state, m)).collect()),
        }
    }
}

/// A signed URL for a media item's file.
pub fn output_view(state: &AppState, m: &Media) -> OutputView {
    OutputView {
        media_id: m.id,
        url: state.signer.link(&m.storage_key),
        mime: m.mime.clone(),
        width: m.width,
        height: m.height,
        bytes: m.bytes,
        sha256: m.sha256.clone(),
        seed: m.seed,
    }
}

/// Answer to a submit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubmitResponse {
    /// Batch id (batch submits).
    pub batch_id: Option<Uuid>,
    /// Ids of the created jobs, in request order.
    pub job_ids: Vec<Uuid>,
    /// The jobs.
    pub jobs: Vec<JobView>,
}

/// Several image requests under one batch id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1–8 requests.
    pub requests: Vec<ImageRequest>,
    /// Priority class of every job (default `batch`).
    #[serde(default)]
    pub priority: Option<PriorityClass>,
}

/// The `Idempotency-Key` header with a hash of the (parsed) body, when sent.
pub(crate) fn idempotency(headers: &HeaderMap, body: &[u8]) -> ApiResult<Option<Idempotency>> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200 && k.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1–200 visible ASCII characters",
            )
            .with_field("Idempotency-Key")
        })?;
    // Hash the parsed JSON, not raw bytes, so whitespace changes do not count as a new body.
    let canonical = serde_json::from_slice::<serde_json::Value>(body).map(|v| v.to_string()).unwrap_or_default();
    Ok(Some(Idempotency { key: key.to_owned(), request_hash: hex::encode(Sha256::digest(canonical.as_bytes())) }))
}

fn random_seed() -> ApiResult<u64> {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).map_err(ApiError::internal)?;
    Ok(u64::from_le_bytes(buf) & MAX_SEED)
}

/// Keys the client actually sent in a request object (persona defaults fill only the others).
pub fn explicit_keys(raw: &serde_json::Value) -> Vec<String> {
    raw.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// An image-to-image request's `init_image` must be an image in the caller's library; another
/// user's item gets the same answer as an unknown id, so existence does not leak.
async fn check_init_image(state: &AppState, owner_id: Uuid, media_id: Uuid, prefix: &str) -> ApiResult<()> {
    let field = format!("{prefix}init_image");
    let media = seidra_store::media::get_owned(&state.db, owner_id, media_id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::validation(ValidationError::new(&field, "unknown media item")),
        other => other.into(),
    })?;
    if media.kind != "image" {
        return Err(ValidationError::new(field, format!("must be an image, not {}", media.kind)).into());
    }
    Ok(())
}

/// Validates one request, merges its persona, routes it to an engine, resolves the seed and
/// builds the job.
pub async fn prepare(
    state: &AppState,
    owner_id: Uuid,
    mut request: ImageRequest,
    explicit: &[String],
    prefix: &str,
    priority: PriorityClass,
    batch_id: Option<Uuid>,
) -> ApiResult<NewJob> {
    let mut persona_ref = None;
    if let Some(persona_id) = request.persona_id {
        let persona =
            seidra_store::personas::get_owned(&state.db, owner_id, persona_id).await.map_err(|e| match e {
                StoreError::NotFound => {
                    ApiError::validation(ValidationError::new(format!("{prefix}persona_id"), "unknown persona"))
                }
                other => other.into(),
            })?;
        let keys: Vec<&str> = explicit.iter().map(String::as_str).collect();
        request = seidra_core::persona::merge_image_request(&persona.spec.0, request, &keys);
        persona_ref = Some((persona.id, persona.version));
    }
    request.validate(prefix)?;
    if let Some(media_id) = request.init_image {
        check_init_image(state, owner_id, media_id, prefix).await?;
        // Recorded, so the job (and its outputs' provenance) can be reproduced.
        request.strength = request.img2img_strength();
    }
    crate::policy::enforce_request(state, owner_id, &request, prefix).await?;
    if let Some(seed) = request.seed
        && seed > MAX_SEED
    {
        return Err(ValidationError::new(format!("{prefix}seed"), format!("must be between 0 and {MAX_SEED}")).into());
    }
    let (engine, model) = state.engines.route(&request, prefix)?;
    request.seed = Some(match request.seed {
        Some(s) => s,
        None => random_seed()?,
    });
    request.engine = Some(engine.name().to_owned());
    request.model_name = Some(model.clone());
    request.priority = Some(priority);
    let prompt = request.prompt.trim().to_owned();
    let negative_prompt = request.negative_prompt.trim().to_owned();
    Ok(NewJob {
        id: Uuid::now_v7(),
        job_type: JobType::Image,
        priority,
        engine: engine.name().to_owned(),
        model,
        persona_id: persona_ref.map(|p| p.0),
        persona_version: persona_ref.map(|p| p.1),
        request: serde_json::to_value(&request).map_err(ApiError::internal)?,
        prompt,
        negative_prompt,
        max_attempts: i32::try_from(state.settings.queue.max_attempts).unwrap_or(3),
        retry_of: None,
        batch_id,
        policy: crate::policy::admitted_decision(state),
    })
}

async fn submit(
    state: &AppState,
    principal: &Principal,
    new_jobs: Vec<NewJob>,
    idem: Option<Idempotency>,
) -> ApiResult<(bool, Vec<Job>)> {
    let limits = SubmitLimits { max_queued: i64::from(state.settings.queue.max_queued_per_user) };
    // `job.queued` (and the workers' wake-up) leave from inside the submit transaction, so no
    // worker can claim a job — and announce `job.started` — before its `job.queued` is out.
    let bus = &state.bus;
    let payloads = |created: &[Job]| -> Vec<String> {
        queued_events(created)
            .iter()
            .filter_map(|e| bus.encode(e).map_err(|err| log_publish_error(e, &err)).ok())
            .collect()
    };
    let hand_over = |created: &[Job]| {
        for event in queued_events(created) {
            bus.publish_in_process(&event);
        }
    };
    let in_tx = match bus.notify_channel() {
        Some(channel) => Some(SubmitEvents::Notify { channel, payloads: &payloads }),
        None if bus.transport() == "in_process" => Some(SubmitEvents::Local(&hand_over)),
        None => None,
    };
    let outcome =
        jobs::submit_with_events(&state.db, principal.user.id, &new_jobs, limits, idem.as_ref(), in_tx.as_ref()).await;
    if let Err(SubmitError::QuotaExceeded { queued, max }) = &outcome {
        let message =
            format!("{queued} jobs are waiting (at most {max}); new submissions are refused until some finish.");
        seidra_notify::quota_reached(&state.db, &state.bus, principal.user.id, &message).await;
    }
    let outcome = outcome.map_err(|e| match e {
        SubmitError::QuotaExceeded { queued, max } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_quota_exceeded",
            format!("you have {queued} jobs waiting (at most {max}); wait for some to finish or cancel them"),
        )
        .with_header(http::header::RETRY_AFTER, HeaderValue::from_static("10")),
        SubmitError::KeyReused => ApiError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        )
        .with_field("Idempotency-Key"),
        SubmitError::Store(s) => s.into(),
    })?;
    match outcome {
        Submitted::Created(created) => {
            for job in &created {
                metrics::counter!("seidra_jobs_submitted_total", "job_type" => job.job_type.as_str(), "engine" => job.engine.clone())
                    .increment(1);
            }
            if in_tx.is_none() {
                // Redis: published after commit (a worker may, rarely, announce the start first).
                for event in queued_events(&created) {
                    publish(state, &event).await;
                }
            }
            Ok((true, created))
        }
        Submitted::Replayed(existing) => Ok((false, existing)),
    }
}

/// `job.queued` for each job, then one wake-up for idle workers.
fn queued_events(created: &[Job]) -> Vec<seidra_events::Event> {
    created.iter().map(|job| job_event("job.queued", job, None)).chain([control_event(JOBS_WAKE, None)]).collect()
}

fn log_publish_error(event: &seidra_events::Event, err: &seidra_events::BusError) {
    tracing::warn!(%err, kind = %event.kind, "could not publish event");
}

async fn publish(state: &AppState, event: &seidra_events::Event) {
    if let Err(err) = state.bus.publish(event).await {
        log_publish_error(event, &err);
    }
}

/// A job the worker runs itself (engine `internal`: exports, model downloads, speech, renders),
/// with no persona or prompt unless the caller sets them.
pub fn internal_job(
    state: &AppState,
    job_type: JobType,
    priority: PriorityClass,
    model: impl Into<String>,
    request: &impl Serialize,
) -> ApiResult<NewJob> {
    Ok(NewJob {
        id: Uuid::now_v7(),
        job_type,
        priority,
        engine: seidra_worker::media_tasks::INTERNAL_ENGINE.to_owned(),
        model: model.into(),
        persona_id: None,
        persona_version: None,
        request: serde_json::to_value(request).map_err(ApiError::internal)?,
        prompt: String::new(),
        negative_prompt: String::new(),
        max_attempts: i32::try_from(state.settings.queue.max_attempts).unwrap_or(3),
        retry_of: None,
        batch_id: None,
        policy: None,
    })
}

/// Submits prepared jobs and answers like the generate endpoints.
pub async fn submit_jobs(
    state: &AppState,
    principal: &Principal,
    jobs: Vec<NewJob>,
    idem: Option<Idempotency>,
    batch_id: Option<Uuid>,
) -> ApiResult<Response> {
    let (created, jobs) = submit(state, principal, jobs, idem).await?;
    Ok(submit_response(state, created, batch_id, jobs))
}

fn submit_response(state: &AppState, created: bool, batch_id: Option<Uuid>, jobs: Vec<Job>) -> Response {
    let body = SubmitResponse {
        batch_id,
        job_ids: jobs.iter().map(|j| j.id).collect(),
        jobs: jobs.into_iter().map(|j| JobView::new(state, j, None)).collect(),
    };
    let status = if created { StatusCode::ACCEPTED } else { StatusCode::OK };
    let mut response = (status, Json(body)).into_response();
    if !created {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Queue one image job. Every field is honoured or refused with a 422 naming it.
#[utoipa::path(post, path = "/api/generate/single", tag = "jobs", request_body = ImageRequest, security(("bearer" = []), ("api_key" = ["generate"])),
    params(("Idempotency-Key" = Option<String>, Header, description = "same key + same body → the same job")),
    responses((status = 202, body = SubmitResponse), (status = 200, description = "idempotent replay", body = SubmitResponse),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn generate_single(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    require_json(&headers)?;
    let request: ImageRequest = parse_json(&body)?;
    let explicit = explicit_keys(&serde_json::from_slice(&body).unwrap_or_default());
    let idem = idempotency(&headers, &body)?;
    let priority = request.priority.unwrap_or(PriorityClass::Interactive);
    let job = prepare(&state, principal.user.id, request, &explicit, "", priority, None).await?;
    let (created, jobs) = submit(&state, &principal, vec![job], idem).await?;
    Ok(submit_response(&state, created, None, jobs))
}

/// Queue up to 8 image jobs sharing one batch id.
#[utoipa::path(post, path = "/api/generate/batch", tag = "jobs", request_body = BatchRequest, security(("bearer" = []), ("api_key" = ["generate"])),
    params(("Idempotency-Key" = Option<String>, Header, description = "same key + same body → the same jobs")),
    responses((status = 202, body = SubmitResponse), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn generate_batch(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    require_json(&headers)?;
    let batch: BatchRequest = parse_json(&body)?;
    let raw: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if batch.requests.is_empty() || batch.requests.len() > MAX_BATCH {
        return Err(ValidationError::new("requests", format!("must hold 1 to {MAX_BATCH} requests")).into());
    }
    let idem = idempotency(&headers, &body)?;
    let batch_id = Uuid::now_v7();
    let priority = batch.priority.unwrap_or(PriorityClass::Batch);
    let mut new_jobs = Vec::with_capacity(batch.requests.len());
    for (i, request) in batch.requests.into_iter().enumerate() {
        if request.priority.is_some() {
            return Err(ValidationError::new(
                format!("requests[{i}].priority"),
                "set `priority` on the batch, not on its requests",
            )
            .into());
        }
        let explicit = explicit_keys(&raw["requests"][i]);
        new_jobs.push(
            prepare(
                &state,
                principal.user.id,
                request,
                &explicit,
                &format!("requests[{i}]."),
                priority,
                Some(batch_id),
            )
            .await?,
        );
    }
    let (created, jobs) = submit(&state, &principal, new_jobs, idem).await?;
    let batch_id = jobs.first().and_then(|j| j.batch_id);
    Ok(submit_response(&state, created, batch_id, jobs))
}

/// Refuses a body that is not declared as JSON (415).
pub(crate) fn require_json(headers: &HeaderMap) -> ApiResult<()> {
    let ok = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ))
    }
}

/// Filters for `GET /api/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    /// Status.
    pub status: Option<JobStatus>,
    /// Type.
    #[serde(rename = "type")]
    pub job_type: Option<JobType>,
    /// Persona.
    pub persona_id: Option<Uuid>,
    /// Batch.
    pub batch_id: Option<Uuid>,
    /// Case-insensitive text in the prompt.
    pub search: Option<String>,
    /// Queued at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Queued before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// `newest` (default) or `oldest`.
    pub sort: Option<String>,
    /// Page size (1–200, default 50).
    pub limit: Option<i64>,
    /// Offset.
    pub offset: Option<i64>,
    /// Admins: everyone's jobs instead of their own.
    pub all: Option<bool>,
}

/// A page of jobs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    /// Jobs.
    pub items: Vec<JobView>,
    /// Total matching.
    pub total: i64,
    /// Page size.
    pub limit: i64,
    /// Offset.
    pub offset: i64,
}

fn scope_owner(principal: &Principal, all: Option<bool>) -> ApiResult<Option<Uuid>> {
    if all.unwrap_or(false) {
        principal.require_admin()?;
        return Ok(None);
    }
    Ok(Some(principal.user.id))
}

/// List jobs (own; admins may pass `all=true`).
#[utoipa::path(get, path = "/api/jobs", tag = "jobs", params(JobListQuery), security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = JobPage), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    AppQuery(q): AppQuery<JobListQuery>,
) -> ApiResult<Json<JobPage>> {
    let (limit, offset) = crate::views::PageQuery { limit: q.limit, offset: q.offset }.resolve()?;
    let oldest_first = match q.sort.as_deref() {
        None | Some("newest") => false,
        Some("oldest") => true,
        Some(_) => return Err(ValidationError::new("sort", "must be `newest` or `oldest`").into()),
    };
    if let Some(search) = &q.search
        && search.chars().count() > 200
    {
        return Err(ValidationError::new("search", "must be at most 200 characters").into());
    }
    let filter = JobFilter {
        owner_id: scope_owner(&principal, q.all)?,
        status: q.status,
        job_type: q.job_type,
        persona_id: q.persona_id,
        batch_id: q.batch_id,
        search: q.search.filter(|s| !s.trim().is_empty()),
        from: q.from,
        to: q.to,
        oldest_first,
    };
    let (jobs, total) = jobs::list(&state.db, &filter, limit, offset).await?;
    let items = jobs.into_iter().map(|j| JobView::new(&state, j, None)).collect();
    Ok(Json(JobPage { items, total, limit, offset }))
}

/// Loads a job the caller may see (owner or admin); 404 otherwise, so ids do not leak.
async fn visible_job(state: &AppState, principal: &Principal, raw_id: &str) -> ApiResult<Job> {
    let id = parse_uuid("id", raw_id)?;
    let job = jobs::get(&state.db, id).await.map_err(ApiError::or_not_found("job"))?;
    if job.owner_id != principal.user.id && !principal.is_admin() {
        return Err(ApiError::not_found("job"));
    }
    Ok(job)
}

/// A job with its outputs and their signed download URLs.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs", security(("bearer" = []), ("api_key" = ["read"])),
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let job = visible_job(&state, &principal, &id).await?;
    let outputs = media::list_for_job(&state.db, job.id).await?;
    Ok(Json(JobView::new(&state, job, Some(&outputs))))
}

/// Cancel: queued jobs at once; running jobs stop between engine steps.
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs", security(("bearer" = []), ("api_key" = ["generate"])),
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 200, description = "cancelled, or cancel requested (running)", body = JobView),
        (status = 404, body = ErrorBody), (status = 409, description = "already finished", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let job = visible_job(&state, &principal, &id).await?;
    match jobs::request_cancel(&state.db, job.id).await? {
        CancelOutcome::Cancelled(job) => {
            publish(&state, &job_event("job.cancelled", &job, None)).await;
            // A queued job ends here, not in a worker: its webhook deliveries start here too.
            seidra_notify::job_finished(&state.db, &state.bus, &job).await;
            Ok(Json(JobView::new(&state, job, None)))
        }
        CancelOutcome::Requested(job) => {
            // Tell the worker now; its next heartbeat would see the flag anyway.
            publish(&state, &control_event(JOB_CANCEL, Some(job.id))).await;
            Ok(Json(JobView::new(&state, job, None)))
        }
        CancelOutcome::AlreadyFinished(job) => {
            Err(ApiError::conflict("job_finished", format!("the job already finished ({})", job.status.as_str())))
        }
    }
}

/// Retry a failed or cancelled job as a new job linked by `retry_of` (same request and seed).
#[utoipa::path(post, path = "/api/jobs/{id}/retry", tag = "jobs", security(("bearer" = []), ("api_key" = ["generate"])),
    params(("id" = Uuid, Path, description = "job id")),
    responses((status = 202, body = SubmitResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    CanGenerate(principal): CanGenerate,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let job = visible_job(&state, &principal, &id).await?;
    if !matches!(job.status, JobStatus::Failed | JobStatus::Cancelled) {
        return Err(ApiError::conflict(
            "job_not_retryable",
            format!("only failed or cancelled jobs can be retried; this one is {}", job.status.as_str()),
        ));
    }
    if job.owner_id != principal.user.id {
        return Err(ApiError::forbidden("not_owner", "only the owner can retry a job"));
    }
    if job.job_type != JobType::Image {
        // Internal jobs (exports) are not image requests: run the stored request again as is.
        let new_job = NewJob {
            id: Uuid::now_v7(),
            job_type: job.job_type,
            priority: job.priority,
            engine: job.engine.clone(),
            model: job.model.clone(),
            persona_id: job.persona_id,
            persona_version: job.persona_version,
            request: job.request.parse().map_err(ApiError::internal)?,
            prompt: job.prompt.clone(),
            negative_prompt: job.negative_prompt.clone(),
            max_attempts: job.max_attempts,
            retry_of: Some(job.id),
            batch_id: job.batch_id,
            policy: None,
        };
        let (_, jobs) = submit(&state, &principal, vec![new_job], None).await?;
        return Ok(submit_response(&state, true, None, jobs));
    }
    let mut request: ImageRequest = job.request.parse().map_err(ApiError::internal)?;
    // The stored request is already merged: retry it as is, keeping the persona reference.
    let persona = request.persona_id.take();
    let every_key: Vec<String> = explicit_keys(&job.request.parse().map_err(ApiError::internal)?);
    let mut new_job = prepare(&state, principal.user.id, request, &every_key, "", job.priority, job.batch_id).await?;
    new_job.persona_id = persona.or(job.persona_id);
    new_job.persona_version = job.persona_version;
    if let Some(obj) = new_job.request.as_object_mut() {
        obj.insert("persona_id".to_owned(), serde_json::json!(new_job.persona_id));
    }
    new_job.retry_of = Some(job.id);
    let (_, jobs) = submit(&state, &principal, vec![new_job], None).await?;
    Ok(submit_response(&state, true, None, jobs))
}

/// Job counts and durations.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobStatsView {
    /// Count per status (every status present, zero included).
    pub by_status: std::collections::BTreeMap<String, i64>,
    /// Total jobs.
    pub total: i64,
    /// Mean queue wait of finished jobs, seconds.
    pub average_queue_wait_secs: Option<f64>,
    /// Mean run time of succeeded jobs, seconds.
    pub average_run_secs: Option<f64>,
}

/// Statistics query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Admins: everyone's jobs.
    pub all: Option<bool>,
}

/// Counts by status, average queue wait and run time.
#[utoipa::path(get, path = "/api/jobs/stats", tag = "jobs", params(StatsQuery), security(("bearer" = []), ("api_key" = ["read"])),
    responses((status = 200, body = JobStatsView)))]
pub async fn stats(
    State(state): State<AppState>,
    CanRead(principal): CanRead,
    AppQuery(q): AppQuery<StatsQuery>,
) -> ApiResult<Json<JobStatsView>> {
    let stats = jobs::stats(&state.db, scope_owner(&principal, q.all)?).await?;
    let mut by_status: std::collections::BTreeMap<String, i64> =
        JobStatus::ALL.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
    for (status, n) in &stats.by_status {
        by_status.insert(status.as_str().to_owned(), *n);
    }
    Ok(Json(JobStatsView {
        total: by_status.values().sum(),
        by_status,
        average_queue_wait_secs: stats.avg_wait_ms.map(|ms| ms / 1000.0),
        average_run_secs: stats.avg_run_ms.map(|ms| ms / 1000.0),
    }))
}
