//! Work the worker does itself, without a generation engine: thumbnails of new media (a
//! sweep of `thumb_state = 'pending'` rows under a lease, see `seidra_store::media_pipeline`)
//! and ZIP exports (the `export` job type). Jobs of internal types carry the engine name
//! [`INTERNAL_ENGINE`], which every worker claims whatever engines it has.

use std::sync::Arc;

use futures_util::StreamExt;
use std::time::{Duration, Instant};

use chrono::Utc;
use seidra_engines::{EngineError, Progress, ProgressSink};
use seidra_media::archive::{self, Entry, Summary};
use seidra_media::thumbnail;
use seidra_storage::StorageError;
use seidra_store::StoreError;
use seidra_store::jobs::Job;
use seidra_store::media::Media;
use seidra_store::media_pipeline::{self, ExportSelection, ThumbWork};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::runner::WorkerDeps;

/// Engine name of jobs the worker runs itself (exports).
pub const INTERNAL_ENGINE: &str = "internal";
/// Control event: media rows with pending thumbnails were added (wakes thumbnail sweeps).
pub const MEDIA_PENDING: &str = "media.pending";
/// Lifetime of the download URL carried by `job.succeeded` of an export, seconds.
pub const EXPORT_URL_TTL_SECS: i64 = 3600;
/// Rows claimed per sweep query (their results are recorded with one commit).
const THUMB_BATCH: i64 = 16;
/// Thumbnails made at once (decoding and encoding are CPU-bound).
const THUMB_PARALLEL: usize = 2;
/// How often expired exports are looked for.
const EXPORT_SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Storage keys of an item's thumbnails (derived from its id, so racing workers agree).
pub fn thumbnail_keys(owner_id: uuid::Uuid, media_id: uuid::Uuid) -> [String; 2] {
    thumbnail::SIZES.map(|size| format!("thumbs/{owner_id}/{media_id}-{size}.jpg"))
}

/// Makes thumbnails until `stop`: drains pending rows, then waits for a wake-up (`wake`, a
/// `media.pending` event, or `poll`). Also deletes expired exports now and then.
pub async fn thumbnail_loop(
    deps: WorkerDeps,
    wake: Arc<Notify>,
    poll: Duration,
    lease: Duration,
    stop: CancellationToken,
) {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30));
    let mut events = deps.bus.subscribe();
    let mut last_export_sweep: Option<Instant> = None;
    loop {
        loop {
            match media_pipeline::claim_thumbnails(&deps.db, lease, THUMB_BATCH).await {
                Ok(batch) if batch.is_empty() => break,
                Ok(batch) => {
                    if stop.is_cancelled() {
                        return;
                    }
                    make_thumbnails(&deps, batch).await;
                }
                Err(err) => {
                    tracing::warn!(%err, "cannot claim thumbnail work");
                    break;
                }
            }
        }
        if last_export_sweep.is_none_or(|t| t.elapsed() >= EXPORT_SWEEP_EVERY) {
            last_export_sweep = Some(Instant::now());
            sweep_expired_exports(&deps).await;
        }
        let deadline = tokio::time::sleep(poll);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = &mut deadline => break,
                () = wake.notified() => break,
                ev = events.recv() => match ev {
                    Ok(ev) if ev.kind == MEDIA_PENDING => break,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        events = deps.bus.subscribe();
                        break;
                    }
                },
            }
        }
    }
}

/// Makes the thumbnails of a claimed batch (a few at a time), records the made ones in one
/// transaction, then the other outcomes one by one (the rare paths).
async fn make_thumbnails(deps: &WorkerDeps, batch: Vec<ThumbWork>) {
    let started = Instant::now();
    let made: Vec<(ThumbWork, Result<[String; 2], Outcome>)> = futures_util::stream::iter(batch)
        .map(|work| async move {
            let outcome = thumbnails_for(deps, &work).await;
            (work, outcome)
        })
        .buffer_unordered(THUMB_PARALLEL)
        .collect()
        .await;
    let ready: Vec<(uuid::Uuid, String, String)> = made
        .iter()
        .filter_map(|(work, outcome)| outcome.as_ref().ok().map(|[s, l]| (work.id, s.clone(), l.clone())))
        .collect();
    let mut recorded = match media_pipeline::thumbnails_ready_many(&deps.db, &ready).await {
        Ok(flags) => flags.into_iter(),
        Err(err) => {
            // The leases run out and the rows are claimed again.
            tracing::warn!(%err, items = ready.len(), "cannot record made thumbnails");
            Vec::new().into_iter()
        }
    };
    for (work, outcome) in made {
        let outcome = match outcome {
            Ok(keys) => match recorded.next() {
                Some(true) => Ok(()),
                Some(false) => {
                    // Deleted while we worked: keep nothing.
                    for key in &keys {
                        let _ = deps.storage.delete(key).await;
                    }
                    Err(Outcome::None)
                }
                None => continue,
            },
            Err(e) => Err(e),
        };
        record_outcome(deps, &work, outcome, started).await;
    }
}

/// Counts one item's outcome and records the ones that are not `ready`.
async fn record_outcome(deps: &WorkerDeps, work: &ThumbWork, outcome: Result<(), Outcome>, started: Instant) {
    let label = match outcome {
        Ok(()) => "ready",
        Err(Outcome::None) => "none",
        Err(Outcome::Failed(reason)) => {
            tracing::warn!(media_id = %work.id, %reason, "thumbnails cannot be made");
            "failed"
        }
        Err(Outcome::Retry(reason)) => {
            tracing::warn!(media_id = %work.id, attempt = work.thumb_attempts, %reason, "thumbnails postponed");
            "retry"
        }
    };
    let state = match label {
        "retry" if work.thumb_attempts >= media_pipeline::MAX_THUMB_ATTEMPTS => Some("failed"),
        "retry" => Some("pending"),
        "failed" => Some("failed"),
        "none" => Some("none"),
        _ => None,
    };
    if let Some(state) = state {
        let retry_at = (state == "pending").then(|| Utc::now() + chrono::Duration::seconds(5 << work.thumb_attempts));
        if let Err(err) = media_pipeline::thumbnails_not_made(&deps.db, work.id, state, retry_at).await {
            // The lease runs out and the row is claimed again.
            tracing::warn!(%err, media_id = %work.id, "cannot record the thumbnail outcome");
        }
    }
    metrics::counter!("seidra_thumbnails_total", "outcome" => label).increment(1);
    if label == "ready" {
        metrics::histogram!("seidra_thumbnail_seconds").record(started.elapsed().as_secs_f64());
    }
}

enum Outcome {
    None,
    Failed(String),
    Retry(String),
}

/// Makes and stores one item's thumbnails; returns their keys (not yet recorded).
async fn thumbnails_for(deps: &WorkerDeps, work: &ThumbWork) -> Result<[String; 2], Outcome> {
    if !work.mime.starts_with("image/") {
        return Err(Outcome::None);
    }
    let bytes = deps.storage.get(&work.storage_key).await.map_err(|e| match e {
        StorageError::NotFound(_) => Outcome::Failed("the original is missing".to_owned()),
        other => Outcome::Retry(other.to_string()),
    })?;
    let thumbs = tokio::task::spawn_blocking(move || thumbnail::make(&bytes))
        .await
        .map_err(|e| Outcome::Failed(format!("the thumbnailer crashed: {e}")))?
        .map_err(|e| Outcome::Failed(e.to_string()))?;
    let keys = thumbnail_keys(work.owner_id, work.id);
    for (thumb, key) in thumbs.into_iter().zip(&keys) {
        deps.storage.put(key, thumb.jpeg, thumbnail::MIME).await.map_err(|e| Outcome::Retry(e.to_string()))?;
    }
    Ok(keys)
}

async fn sweep_expired_exports(deps: &WorkerDeps) {
    match media_pipeline::take_expired_exports(&deps.db, Utc::now()).await {
        Ok(keys) => {
            for key in keys {
                if let Err(err) = deps.storage.delete(&key).await {
                    tracing::warn!(%err, key, "could not delete an expired export");
                }
            }
        }
        Err(err) => tracing::warn!(%err, "cannot look for expired exports"),
    }
}

/// A finished archive, stored but not yet recorded.
pub(crate) struct ExportDone {
    pub key: String,
    pub bytes: i64,
    pub summary: Summary,
}

fn failed(code: &str, message: impl Into<String>, retryable: bool) -> EngineError {
    EngineError::Failed { code: code.to_owned(), message: message.into(), retryable }
}

/// The metadata file of one item (its provenance).
pub fn item_metadata(m: &Media) -> Value {
    json!({
        "id": m.id,
        "kind": m.kind,
        "source": m.source,
        "mime": m.mime,
        "bytes": m.bytes,
        "sha256": m.sha256,
        "width": m.width,
        "height": m.height,
        "duration_ms": m.duration_ms,
        "original_name": m.original_name,
        "created_at": m.created_at,
        "tags": m.tags.0,
        "favorite": m.favorite,
        "job_id": m.job_id,
        "prompt": m.prompt,
        "negative_prompt": m.negative_prompt,
        "seed": m.seed,
        "engine": m.engine,
        "model": m.model,
        "parameters": m.parameters.as_ref().map(|p| &p.0),
        "persona_id": m.persona_id,
        "persona_version": m.persona_version,
    })
}

/// Runs an export job: resolves its selection, streams the archive to a temporary file and
/// stores it under `exports/<owner>/<job>.zip`.
pub(crate) async fn run_export<S: ProgressSink + Sync>(
    deps: &WorkerDeps,
    job: &Job,
    sink: &S,
    cancel: &CancellationToken,
) -> Result<ExportDone, EngineError> {
    let selection: ExportSelection = job.request.parse().map_err(|e| {
        failed("invalid_stored_request", format!("the stored export request cannot be read: {e}"), false)
    })?;
    let max = usize::try_from(deps.media.export_max_items).unwrap_or(usize::MAX);
    let items = match media_pipeline::resolve_selection(&deps.db, job.owner_id, &selection, max).await {
        Ok(Ok(items)) => items,
        Ok(Err(n)) => {
            return Err(failed("too_many_items", format!("{n} items match; an export holds at most {max}"), false));
        }
        Err(StoreError::NotFound) => return Err(failed("not_found", "a named media item no longer exists", false)),
        Err(e) => return Err(failed("database_error", e.to_string(), true)),
    };
    let entries: Vec<Entry> = items
        .iter()
        .map(|m| {
            let ext = m.storage_key.rsplit_once('.').map_or("bin", |(_, ext)| ext);
            Entry {
                storage_key: m.storage_key.clone(),
                file_name: format!("{}.{ext}", m.id),
                metadata: item_metadata(m),
            }
        })
        .collect();
    let manifest = json!({
        "format": "seidra-export/1",
        "job_id": job.id,
        "owner_id": job.owner_id,
        "created_at": Utc::now(),
        "count": entries.len(),
    });
    let spool = tempfile::NamedTempFile::new().map_err(|e| failed("spool_error", e.to_string(), true))?;
    let file = spool.as_file().try_clone().map_err(|e| failed("spool_error", e.to_string(), true))?;
    let report = |done: usize, total: usize| {
        let fraction = if total == 0 { 1.0 } else { done as f32 / total as f32 * 0.95 };
        sink.report(Progress { fraction, stage: format!("archived {done}/{total}"), preview: None });
    };
    let (summary, _) =
        archive::write_zip(&deps.storage, entries, manifest, file, report, cancel).await.map_err(|e| match e {
            archive::ArchiveError::Cancelled => EngineError::Cancelled,
            archive::ArchiveError::Storage(e) => failed("storage_error", e.to_string(), e.is_retryable()),
            archive::ArchiveError::Write(e) => failed("archive_error", e, true),
        })?;
    if cancel.is_cancelled() {
        return Err(EngineError::Cancelled);
    }
    sink.report(Progress { fraction: 0.97, stage: "storing the archive".to_owned(), preview: None });
    let key = format!("exports/{}/{}.zip", job.owner_id, job.id);
    let stored = deps.storage.put_file(&key, spool.path(), "application/zip").await.map_err(|e| {
        let (error, _) = crate::runner::storage_failure(&e);
        // Retried whatever the cause: the archive is rebuilt from the library each time.
        failed(&error.code, error.message, true)
    })?;
    Ok(ExportDone { key, bytes: i64::try_from(stored.bytes_len).unwrap_or(i64::MAX), summary })
}
