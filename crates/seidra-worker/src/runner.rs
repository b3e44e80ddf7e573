//! The worker loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use seidra_config::MediaSettings;
use seidra_core::job::{ImageRequest, JobError, JobEvent, JobStatus, JobType};
use seidra_engines::{EngineError, EngineOutput, InitImage, Progress, ProgressSink, SharedEngine};
use seidra_events::{Event, EventBus};
use seidra_storage::{DownloadSigner, SharedStore, StorageError};
use seidra_store::jobs::{self, Heartbeat, Job, NewMedia, ProgressUpdate};
use seidra_store::{Db, media_pipeline, workers};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::av_tasks::{self, FileOutput};
use crate::completion::{Completer, CompleterTask};
use crate::events::{JOB_CANCEL, JOBS_WAKE, job_event, progress_event};
use crate::maintenance;
use crate::media_tasks::{self, ExportDone, INTERNAL_ENGINE};
use crate::model_tasks;
use crate::registry::EngineRegistry;

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Display name (`host:pid`).
    pub name: String,
    /// Jobs at once.
    pub concurrency: usize,
    /// Lease length; heartbeats come every sixth of it.
    pub lease: Duration,
    /// Poll interval when no wake-up arrives.
    pub poll_interval: Duration,
    /// Running jobs allowed per owner.
    pub max_running_per_owner: i64,
    /// Time running jobs get after shutdown before they are released.
    pub grace: Duration,
    /// Days finished jobs are kept.
    pub retention_days: u32,
    /// Whether this worker takes part in the maintenance election.
    pub maintenance: bool,
    /// Age after which an unreferenced object is an orphan the maintenance loop deletes.
    pub orphan_grace: Duration,
    /// Webhook deliveries this worker makes from the outbox (None = it makes none).
    pub webhooks: Option<seidra_notify::webhooks::DeliveryConfig>,
}

/// What a worker works with.
#[derive(Clone)]
pub struct WorkerDeps {
    /// Database (queue).
    pub db: Db,
    /// Where outputs go.
    pub storage: SharedStore,
    /// Live events.
    pub bus: EventBus,
    /// Engines this worker runs.
    pub engines: EngineRegistry,
    /// Signs the download link an export's `job.succeeded` event carries.
    pub signer: DownloadSigner,
    /// Thumbnail and export settings.
    pub media: MediaSettings,
    /// Model downloads (directory, limits, guarded client).
    pub models: Arc<crate::model_tasks::ModelDownloads>,
}

/// A worker process (or an in-process worker of `seidra up`).
pub struct Worker {
    id: Uuid,
    deps: WorkerDeps,
    config: WorkerConfig,
    /// Wakes this worker's thumbnail sweep when a job stored new media.
    thumbs_wake: Arc<Notify>,
    /// Records finished attempts in batches.
    completer: Completer,
    /// The completer's task, started by `run`.
    completer_task: Option<CompleterTask>,
    /// Cancellation tokens of the running jobs, fired by `job.cancel` events (one
    /// subscription for the worker instead of one per running job).
    cancels: std::sync::Mutex<HashMap<Uuid, CancellationToken>>,
}

/// What a successful attempt produced.
enum Done {
    /// Engine outputs to store as media.
    Outputs(Vec<EngineOutput>),
    /// A stored export archive.
    Export(ExportDone),
    /// A downloaded, catalogued model.
    Model(Box<seidra_store::models::Model>),
    /// One spooled audio/video file (speech, renders).
    File(FileOutput),
}

/// Progress from the engine, relayed by a coalescing task.
#[derive(Debug, Clone, PartialEq)]
struct LatestProgress {
    fraction: f32,
    stage: String,
}

struct WatchSink(watch::Sender<Option<LatestProgress>>);

impl ProgressSink for WatchSink {
    fn report(&self, progress: Progress) {
        // Keeps only the latest value: the relay samples it at its own pace (coalescing).
        let _ =
            self.0.send(Some(LatestProgress { fraction: progress.fraction.clamp(0.0, 1.0), stage: progress.stage }));
    }
}

/// Most jobs taken by one claim statement.
const MAX_CLAIM_BATCH: usize = 64;

/// Fastest rate of `job.progress` events per job (≤ 10/s).
const PROGRESS_EVENT_INTERVAL: Duration = Duration::from_millis(100);
/// Fastest rate of progress writes to the database per job.
const PROGRESS_DB_INTERVAL: Duration = Duration::from_millis(1000);

impl Worker {
    /// A worker with a fresh id.
    pub fn new(deps: WorkerDeps, config: WorkerConfig) -> Self {
        let id = Uuid::now_v7();
        let (completer, completer_task) = Completer::new(deps.db.clone(), deps.bus.clone(), id);
        Self {
            id,
            deps,
            config,
            thumbs_wake: Arc::new(Notify::new()),
            completer,
            completer_task: Some(completer_task),
            cancels: std::sync::Mutex::default(),
        }
    }

    /// This worker's id (the lease owner of its jobs).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Runs until `shutdown` fires, then drains: running jobs get the grace period, then are
    /// released back to the queue.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let completer_task = self.completer_task.take();
        let me = Arc::new(self);
        let engines = me.deps.engines.names();
        // Internal job types (exports) are claimable by every worker, whatever its engines.
        let claimable: Vec<String> = engines.iter().cloned().chain([INTERNAL_ENGINE.to_owned()]).collect();
        let models: serde_json::Map<String, serde_json::Value> = me
            .deps
            .engines
            .engines()
            .iter()
            .map(|e| {
                (e.name().to_owned(), serde_json::json!(e.models().iter().map(|m| m.name.clone()).collect::<Vec<_>>()))
            })
            .collect();
        workers::register(
            &me.deps.db,
            &workers::NewWorker {
                id: me.id,
                name: me.config.name.clone(),
                host: hostname(),
                version: seidra_core::VERSION.to_owned(),
                engines: engines.clone(),
                models: serde_json::Value::Object(models),
                concurrency: i32::try_from(me.config.concurrency).unwrap_or(i32::MAX),
            },
        )
        .await?;
        metrics::gauge!("seidra_workers_running").increment(1.0);
        tracing::info!(worker.id = %me.id, engines = ?engines, concurrency = me.config.concurrency, "worker started");

        let running: Arc<tokio::sync::Mutex<Vec<Uuid>>> = Arc::default();
        let draining = Arc::new(AtomicBool::new(false));
        let release_all = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();

        // Worker-row heartbeat.
        {
            let (me, running, draining, stop) = (me.clone(), running.clone(), draining.clone(), release_all.clone());
            let stop_hb = shutdown.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(me.heartbeat_interval());
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = stop.cancelled() => break,
                    }
                    let status =
                        if draining.load(Ordering::Relaxed) || stop_hb.is_cancelled() { "draining" } else { "active" };
                    let current = running.lock().await.clone();
                    if let Err(err) = workers::heartbeat(&me.deps.db, me.id, status, &current).await {
                        tracing::warn!(%err, "worker heartbeat failed");
                    }
                }
            });
        }
        if me.config.maintenance {
            let (me, stop) = (me.clone(), release_all.clone());
            tasks.spawn(async move {
                maintenance::run(
                    me.deps.db.clone(),
                    me.deps.bus.clone(),
                    me.id,
                    me.config.lease,
                    me.config.retention_days,
                    crate::sweeper::OrphanSweep { store: me.deps.storage.clone(), grace: me.config.orphan_grace },
                    stop,
                )
                .await
            });
        }

        if let Some(delivery) = me.config.webhooks.clone() {
            tasks.spawn(delivery.run(me.deps.db.clone(), release_all.clone()));
        }
        {
            let (deps, wake, stop) = (me.deps.clone(), me.thumbs_wake.clone(), release_all.clone());
            let (poll, lease) = (me.config.poll_interval, me.config.lease);
            tasks.spawn(async move { media_tasks::thumbnail_loop(deps, wake, poll, lease, stop).await });
        }

        // Completions are served until every job task is done (stopped after the drain below).
        let completer_stop = CancellationToken::new();
        if let Some(task) = completer_task {
            tasks.spawn(task.serve(completer_stop.clone()));
        }
        {
            let (me, stop) = (me.clone(), release_all.clone());
            tasks.spawn(async move { me.forward_cancels(stop).await });
        }

        let permits = Arc::new(Semaphore::new(me.config.concurrency.max(1)));
        let mut wake = me.deps.bus.subscribe();
        // A job of ours finishing can make queued work claimable (its owner drops below the
        // running limit): an idle claim loop must not sleep through that until the next poll.
        let slot_freed = Arc::new(tokio::sync::Notify::new());
        let mut jobs_in_flight = tokio::task::JoinSet::new();
        let mut backoff = Duration::from_millis(100);
        loop {
            let first = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                () = shutdown.cancelled() => break,
            };
            if shutdown.is_cancelled() {
                break;
            }
            // Claim as many jobs as there are free slots, in one statement.
            let mut free = vec![first];
            while free.len() < MAX_CLAIM_BATCH {
                match permits.clone().try_acquire_owned() {
                    Ok(p) => free.push(p),
                    Err(_) => break,
                }
            }
            match jobs::claim_batch(
                &me.deps.db,
                me.id,
                &claimable,
                chrono_duration(me.config.lease),
                me.config.max_running_per_owner,
                free.len(),
            )
            .await
            {
                Ok(claimed) if !claimed.is_empty() => {
                    backoff = Duration::from_millis(100);
                    running.lock().await.extend(claimed.iter().map(|j| j.id));
                    for (job, permit) in claimed.into_iter().zip(free.drain(..)) {
                        metrics::histogram!("seidra_job_queue_wait_seconds", "job_type" => job.job_type.as_str(), "engine" => job.engine.clone())
                            .record((Utc::now() - job.queued_at).num_milliseconds().max(0) as f64 / 1000.0);
                        let (me, running, release) = (me.clone(), running.clone(), release_all.clone());
                        let slot_freed = slot_freed.clone();
                        jobs_in_flight.spawn(async move {
                            let id = job.id;
                            me.run_job(job, release).await;
                            running.lock().await.retain(|j| *j != id);
                            drop(permit);
                            slot_freed.notify_one();
                        });
                    }
                    // Unused slots go back before the next round.
                    drop(free);
                }
                Ok(_) => {
                    drop(free);
                    // Idle: wait for a wake-up event, the poll interval, or shutdown.
                    let deadline = tokio::time::sleep(me.config.poll_interval);
                    tokio::pin!(deadline);
                    loop {
                        tokio::select! {
                            () = &mut deadline => break,
                            () = shutdown.cancelled() => break,
                            () = slot_freed.notified() => break,
                            ev = wake.recv() => match ev {
                                Ok(ev) if ev.kind == JOBS_WAKE => break,
                                Ok(_) => {}
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                                    wake = me.deps.bus.subscribe();
                                    break;
                                }
                            },
                        }
                    }
                }
                Err(err) => {
                    drop(free);
                    tracing::warn!(%err, retry_in_ms = backoff.as_millis(), "cannot claim jobs; backing off");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
            // Reap finished job tasks so the set does not grow.
            while let Some(res) = jobs_in_flight.try_join_next() {
                if let Err(err) = res {
                    tracing::error!(%err, "job task panicked");
                }
            }
        }

        // Drain: let running jobs finish within the grace period, then release them.
        draining.store(true, Ordering::Relaxed);
        let in_flight = jobs_in_flight.len();
        if in_flight > 0 {
            tracing::info!(in_flight, grace_secs = me.config.grace.as_secs(), "draining running jobs");
        }
        let drained =
            tokio::time::timeout(me.config.grace, async { while jobs_in_flight.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!("grace period over; releasing unfinished jobs to the queue");
            release_all.cancel();
            while jobs_in_flight.join_next().await.is_some() {}
        }
        release_all.cancel();
        completer_stop.cancel();
        while tasks.join_next().await.is_some() {}
        if let Err(err) = workers::deregister(&me.deps.db, me.id).await {
            tracing::warn!(%err, "could not deregister the worker");
        }
        metrics::gauge!("seidra_workers_running").decrement(1.0);
        tracing::info!(worker.id = %me.id, "worker stopped");
        Ok(())
    }

    fn heartbeat_interval(&self) -> Duration {
        (self.config.lease / 6).max(Duration::from_millis(250))
    }

    /// Fires the token of a running job when a `job.cancel` event names it, until `stop`.
    async fn forward_cancels(&self, stop: CancellationToken) {
        let mut control = self.deps.bus.subscribe();
        loop {
            let ev = tokio::select! {
                () = stop.cancelled() => return,
                ev = control.recv() => ev,
            };
            match ev {
                Ok(ev) if ev.kind == JOB_CANCEL => {
                    let token = ev.job_id.and_then(|id| self.cancel_tokens().get(&id).cloned());
                    if let Some(token) = token {
                        tracing::info!(job_id = ?ev.job_id, "cancel requested (event)");
                        token.cancel();
                    }
                }
                Ok(_) => {}
                // A missed cancel is still seen by the job's next heartbeat.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => control = self.deps.bus.subscribe(),
            }
        }
    }

    fn cancel_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, CancellationToken>> {
        self.cancels.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn publish(&self, event: &Event) {
        match self.deps.bus.publish(event).await {
            Ok(()) => metrics::counter!("seidra_events_published_total", "type" => event.kind.clone()).increment(1),
            Err(err) => tracing::warn!(%err, kind = %event.kind, "could not publish event"),
        }
    }

    /// Runs one claimed job to a terminal (or retrying/released) state.
    #[tracing::instrument(skip_all, fields(job_id = %job.id, worker_id = %self.id, engine = %job.engine, attempt = job.attempt))]
    async fn run_job(self: &Arc<Self>, job: Job, release: CancellationToken) {
        let started = Instant::now();
        metrics::counter!("seidra_jobs_started_total", "job_type" => job.job_type.as_str(), "engine" => job.engine.clone()).increment(1);
        // Each job announces itself, so the claim loop never waits on the event server; the
        // bus sends the `job.started` of a whole claim in one round trip (it coalesces
        // publishes), and this job's later events cannot overtake it.
        self.publish(&job_event("job.started", &job, None)).await;

        let cancel = CancellationToken::new();
        self.cancel_tokens().insert(job.id, cancel.clone());
        let lease_lost = Arc::new(AtomicBool::new(false));
        let (progress_tx, progress_rx) = watch::channel::<Option<LatestProgress>>(None);
        let relay_stop = CancellationToken::new();
        let relay = tokio::spawn(self.clone().relay(
            job.clone(),
            progress_rx,
            cancel.clone(),
            lease_lost.clone(),
            release.clone(),
            relay_stop.clone(),
        ));

        let outcome = self.execute(&job, WatchSink(progress_tx), &cancel).await;
        relay_stop.cancel();
        let _ = relay.await;
        self.cancel_tokens().remove(&job.id);

        let lost = lease_lost.load(Ordering::Relaxed);
        let released = release.is_cancelled();
        let engine = job.engine.clone();
        let outcome_label = match outcome {
            Ok(Done::Model(model)) if lost => {
                tracing::warn!("lease lost while downloading; the model is removed again");
                model_tasks::discard(&self.deps, &model).await;
                "lease_lost"
            }
            _ if lost => {
                tracing::warn!("lease lost while running; result discarded");
                "lease_lost"
            }
            Ok(Done::Outputs(outputs)) if !cancel.is_cancelled() => self.store_and_complete(&job, outputs).await,
            Ok(Done::Export(export)) if !cancel.is_cancelled() => self.complete_export(&job, export).await,
            Ok(Done::Model(model)) if !cancel.is_cancelled() => self.complete_model_download(&job, model).await,
            Ok(Done::Model(model)) => {
                model_tasks::discard(&self.deps, &model).await;
                self.settle(&job, if released { JobEvent::Release } else { JobEvent::Cancel }, None).await
            }
            Ok(Done::File(file)) if !cancel.is_cancelled() => self.store_file_and_complete(&job, file).await,
            Ok(_) | Err(EngineError::Cancelled) if released => self.settle(&job, JobEvent::Release, None).await,
            Ok(_) | Err(EngineError::Cancelled) => self.settle(&job, JobEvent::Cancel, None).await,
            Err(EngineError::Invalid(v)) => {
                let error = JobError { code: "invalid_request".into(), message: v.to_string(), retryable: false };
                self.settle(&job, JobEvent::Fail { retryable: false }, Some(error)).await
            }
            Err(EngineError::Failed { code, message, retryable }) => {
                let error = JobError { code, message, retryable };
                self.settle(&job, JobEvent::Fail { retryable }, Some(error)).await
            }
        };
        tracing::info!(outcome = outcome_label, elapsed_ms = started.elapsed().as_millis(), "job attempt finished");
        metrics::counter!("seidra_jobs_finished_total", "job_type" => job.job_type.as_str(), "engine" => engine.clone(), "outcome" => outcome_label)
            .increment(1);
        metrics::histogram!("seidra_job_run_seconds", "job_type" => job.job_type.as_str(), "engine" => engine)
            .record(started.elapsed().as_secs_f64());
    }

    /// Runs the engine in its own task so a panic becomes a retryable failure, not a dead worker.
    async fn execute(&self, job: &Job, sink: WatchSink, cancel: &CancellationToken) -> Result<Done, EngineError> {
        match job.job_type {
            JobType::Export => return media_tasks::run_export(&self.deps, job, &sink, cancel).await.map(Done::Export),
            JobType::ModelDownload => {
                return model_tasks::run_download(&self.deps, job, &sink, cancel)
                    .await
                    .map(|m| Done::Model(Box::new(m)));
            }
            JobType::Tts => return av_tasks::run_tts(&self.deps, job, &sink, cancel).await.map(Done::File),
            JobType::Storyboard | JobType::VideoProxy => {
                return av_tasks::run_render(&self.deps, job, &sink, cancel).await.map(Done::File);
            }
            JobType::TalkingHead => {
                return av_tasks::run_talking_head(&self.deps, job, &sink, cancel).await.map(Done::File);
            }
            JobType::Image => {}
        }
        let request: ImageRequest = job.request.parse().map_err(|e| EngineError::Failed {
            code: "invalid_stored_request".into(),
            message: format!("the stored request cannot be read: {e}"),
            retryable: false,
        })?;
        let Some(engine) = self.deps.engines.get(&job.engine).cloned() else {
            return Err(EngineError::Failed {
                code: "engine_missing".into(),
                message: format!("this worker has no engine `{}`", job.engine),
                retryable: true,
            });
        };
        let init = match request.init_image {
            Some(media_id) => Some(self.load_init_image(job, media_id, &request).await?),
            None => None,
        };
        let cancel = cancel.clone();
        let handle = tokio::spawn(async move { run_engine(engine, request, init, sink, cancel).await });
        match handle.await {
            Ok(result) => result.map(Done::Outputs),
            Err(err) => {
                tracing::error!(%err, "engine task panicked");
                Err(EngineError::Failed {
                    code: "engine_panic".into(),
                    message: "the engine crashed".into(),
                    retryable: true,
                })
            }
        }
    }

    /// Loads an image-to-image job's init image: still the owner's image (it may have been
    /// deleted since the job was queued), read from storage, decoded and resized to the
    /// requested size off the async threads.
    async fn load_init_image(
        &self,
        job: &Job,
        media_id: Uuid,
        request: &ImageRequest,
    ) -> Result<InitImage, EngineError> {
        let failed = |code: &str, message: String, retryable: bool| EngineError::Failed {
            code: code.to_owned(),
            message,
            retryable,
        };
        let media = match seidra_store::media::get_owned(&self.deps.db, job.owner_id, media_id).await {
            Ok(m) => m,
            Err(seidra_store::StoreError::NotFound) => {
                return Err(failed("init_image_missing", format!("the init image {media_id} no longer exists"), false));
            }
            Err(err) => return Err(failed("database_error", format!("cannot look up the init image: {err}"), true)),
        };
        if media.kind != "image" {
            return Err(failed("invalid_init_image", format!("the init image {media_id} is not an image"), false));
        }
        let bytes = self.deps.storage.get(&media.storage_key).await.map_err(|err| match err {
            StorageError::NotFound(_) => {
                failed("init_image_missing", format!("the file of the init image {media_id} is missing"), false)
            }
            other => failed("storage_error", format!("cannot read the init image: {other}"), other.is_retryable()),
        })?;
        let (width, height) = (request.width, request.height);
        tokio::task::spawn_blocking(move || InitImage::decode(&bytes, width, height))
            .await
            .map_err(|e| failed("engine_error", format!("decoding the init image crashed: {e}"), true))?
    }

    /// Heartbeats, relays coalesced progress, and turns cancel requests into the token.
    async fn relay(
        self: Arc<Self>,
        job: Job,
        mut progress: watch::Receiver<Option<LatestProgress>>,
        cancel: CancellationToken,
        lease_lost: Arc<AtomicBool>,
        release: CancellationToken,
        stop: CancellationToken,
    ) {
        let lease = chrono_duration(self.config.lease);
        let mut heartbeat = tokio::time::interval(self.heartbeat_interval());
        heartbeat.tick().await;
        let started = Instant::now();
        let mut last_event = Instant::now() - PROGRESS_EVENT_INTERVAL;
        let mut last_db = Instant::now();
        let mut pending_db: Option<ProgressUpdate> = None;
        let mut pending_event = false;
        loop {
            let flush_in = PROGRESS_EVENT_INTERVAL.saturating_sub(last_event.elapsed());
            tokio::select! {
                () = stop.cancelled() => break,
                () = release.cancelled(), if !cancel.is_cancelled() => cancel.cancel(),
                changed = progress.changed() => {
                    if changed.is_err() { break; }
                    pending_event = true;
                }
                () = tokio::time::sleep(flush_in), if pending_event => {}
                _ = heartbeat.tick() => {
                    let update = pending_db.take();
                    match jobs::heartbeat(&self.deps.db, job.id, self.id, lease, update.as_ref()).await {
                        Ok(Heartbeat::Continue) => {}
                        Ok(Heartbeat::CancelRequested) => {
                            tracing::info!("cancel requested (heartbeat)");
                            cancel.cancel();
                        }
                        Ok(Heartbeat::LeaseLost) => {
                            lease_lost.store(true, Ordering::Relaxed);
                            cancel.cancel();
                            break;
                        }
                        Err(err) => {
                            pending_db = pending_db.or(update);
                            tracing::warn!(%err, "job heartbeat failed");
                        }
                    }
                    last_db = Instant::now();
                }
            }
            if pending_event && last_event.elapsed() >= PROGRESS_EVENT_INTERVAL {
                pending_event = false;
                last_event = Instant::now();
                let latest = progress.borrow().clone();
                if let Some(p) = latest {
                    let fraction = f64::from(p.fraction);
                    let elapsed = started.elapsed().as_secs_f64();
                    let eta = (fraction > 0.02).then(|| ((elapsed / fraction) - elapsed).max(0.0).round() as i64);
                    self.publish(&progress_event(&job, fraction, &p.stage, eta)).await;
                    pending_db = Some(ProgressUpdate { progress: fraction, stage: p.stage, eta_secs: eta });
                    if last_db.elapsed() >= PROGRESS_DB_INTERVAL
                        && let Some(update) = pending_db.take()
                    {
                        last_db = Instant::now();
                        match jobs::heartbeat(&self.deps.db, job.id, self.id, lease, Some(&update)).await {
                            Ok(Heartbeat::LeaseLost) => {
                                lease_lost.store(true, Ordering::Relaxed);
                                cancel.cancel();
                                break;
                            }
                            Ok(Heartbeat::CancelRequested) => cancel.cancel(),
                            Ok(Heartbeat::Continue) => {}
                            Err(err) => tracing::warn!(%err, "progress write failed"),
                        }
                    }
                }
            }
        }
    }

    /// Stores outputs, then completes the job; removes the objects again if completion is refused.
    async fn store_and_complete(&self, job: &Job, outputs: Vec<EngineOutput>) -> &'static str {
        let mut stored: Vec<NewMedia> = Vec::with_capacity(outputs.len());
        for (i, out) in outputs.into_iter().enumerate() {
            let ext = match out.mime.as_str() {
                "image/png" => "png",
                "image/jpeg" => "jpg",
                "image/webp" => "webp",
                _ => "bin",
            };
            let key = format!("jobs/{}/{}/{}-{i}.{ext}", job.owner_id, job.id, job.attempt);
            match self.deps.storage.put(&key, out.bytes, &out.mime).await {
                Ok(obj) => stored.push(NewMedia {
                    id: Uuid::now_v7(),
                    position: i32::try_from(i).unwrap_or(i32::MAX),
                    storage_key: key,
                    mime: out.mime,
                    bytes: i64::try_from(obj.bytes_len).unwrap_or(i64::MAX),
                    width: out.width.and_then(|w| i32::try_from(w).ok()),
                    height: out.height.and_then(|h| i32::try_from(h).ok()),
                    sha256: obj.sha256_hex,
                    seed: out.seed.and_then(|s| i64::try_from(s).ok()),
                    duration_ms: None,
                    engine: out.engine,
                }),
                Err(err) => {
                    tracing::warn!(%err, "storing an output failed");
                    self.delete_objects(&stored).await;
                    let (error, retryable) = storage_failure(&err);
                    return self.settle(job, JobEvent::Fail { retryable }, Some(error)).await;
                }
            }
        }
        self.complete_stored(job, stored).await
    }

    /// Stores one spooled file as the job's output, then completes the job.
    async fn store_file_and_complete(&self, job: &Job, file: FileOutput) -> &'static str {
        let key = format!("jobs/{}/{}/{}-0.{}", job.owner_id, job.id, job.attempt, file.ext);
        match self.deps.storage.put_file(&key, &file.path, file.mime).await {
            Ok(obj) => {
                let stored = vec![NewMedia {
                    id: Uuid::now_v7(),
                    position: 0,
                    storage_key: key,
                    mime: file.mime.to_owned(),
                    bytes: i64::try_from(obj.bytes_len).unwrap_or(i64::MAX),
                    width: file.width,
                    height: file.height,
                    sha256: obj.sha256_hex,
                    seed: None,
                    duration_ms: file.duration_ms,
                    engine: file.engine,
                }];
                self.complete_stored(job, stored).await
            }
            Err(err) => {
                tracing::warn!(%err, "storing an output failed");
                let (error, retryable) = storage_failure(&err);
                self.settle(job, JobEvent::Fail { retryable }, Some(error)).await
            }
        }
    }

    /// Completes a job whose outputs are stored; removes them again if completion is refused.
    async fn complete_stored(&self, job: &Job, stored: Vec<NewMedia>) -> &'static str {
        match self.completer.complete(job.clone(), stored.clone(), None).await {
            Ok(Some(_)) => {
                // Only outputs have thumbnails to make; an empty job must not cost a sweep.
                if !stored.is_empty() {
                    self.thumbs_wake.notify_one();
                }
                "succeeded"
            }
            Ok(None) => {
                // Cancelled meanwhile, or the lease moved on: keep nothing.
                self.delete_objects(&stored).await;
                self.completion_refused(job).await
            }
            Err(err) => {
                tracing::warn!(%err, "could not record the job's completion");
                self.delete_objects(&stored).await;
                // The lease will expire and the job be retried by another worker.
                "error"
            }
        }
    }

    /// Records a stored export and completes its job; removes the archive if completion is refused.
    async fn complete_export(&self, job: &Job, done: ExportDone) -> &'static str {
        let now = Utc::now();
        let retention = chrono::Duration::hours(i64::try_from(self.deps.media.export_retention_hours).unwrap_or(168));
        let export = media_pipeline::MediaExport {
            job_id: job.id,
            owner_id: job.owner_id,
            storage_key: done.key.clone(),
            bytes: done.bytes,
            items: i32::try_from(done.summary.items).unwrap_or(i32::MAX),
            created_at: now,
            expires_at: now + retention,
        };
        let discard = || async {
            let _ = media_pipeline::delete_export(&self.deps.db, job.id).await;
            if let Err(err) = self.deps.storage.delete(&done.key).await {
                tracing::warn!(%err, key = %done.key, "could not delete an orphaned export");
            }
        };
        if let Err(err) = media_pipeline::record_export(&self.deps.db, &export).await {
            discard().await;
            let error = JobError { code: "database_error".into(), message: err.to_string(), retryable: true };
            return self.settle(job, JobEvent::Fail { retryable: true }, Some(error)).await;
        }
        let exp = u64::try_from(now.timestamp() + media_tasks::EXPORT_URL_TTL_SECS).unwrap_or(0);
        let link = serde_json::json!({
            "download_url": self.deps.signer.sign(&export.storage_key, exp),
            "bytes": export.bytes,
            "items": export.items,
            "missing": done.summary.missing,
            "expires_at": export.expires_at,
        });
        match self.completer.complete(job.clone(), Vec::new(), Some(("export".to_owned(), link))).await {
            Ok(Some(_)) => "succeeded",
            Ok(None) => {
                discard().await;
                self.completion_refused(job).await
            }
            Err(err) => {
                tracing::warn!(%err, "could not record the export's completion");
                discard().await;
                "error"
            }
        }
    }

    /// Completes a model download (its row and file already exist); removes both if
    /// completion is refused.
    async fn complete_model_download(&self, job: &Job, model: Box<seidra_store::models::Model>) -> &'static str {
        let view = serde_json::json!({
            "id": model.id,
            "name": model.name,
            "kind": model.kind,
            "architecture": model.architecture,
            "bytes": model.bytes,
            "sha256": model.sha256,
        });
        match self.completer.complete(job.clone(), Vec::new(), Some(("catalogued_model".to_owned(), view))).await {
            Ok(Some(_)) => "succeeded",
            Ok(None) => {
                model_tasks::discard(&self.deps, &model).await;
                self.completion_refused(job).await
            }
            Err(err) => {
                tracing::warn!(%err, "could not record the download's completion");
                model_tasks::discard(&self.deps, &model).await;
                "error"
            }
        }
    }

    /// After the store refused a completion: acknowledges a cancel that arrived meanwhile,
    /// else the lease moved on.
    async fn completion_refused(&self, job: &Job) -> &'static str {
        if let Ok(current) = jobs::get(&self.deps.db, job.id).await
            && current.status == JobStatus::Running
            && current.cancel_requested
            && current.lease_owner == Some(self.id)
        {
            return self.settle(&current, JobEvent::Cancel, None).await;
        }
        "lease_lost"
    }

    async fn delete_objects(&self, stored: &[NewMedia]) {
        for m in stored {
            if let Err(err) = self.deps.storage.delete(&m.storage_key).await {
                tracing::warn!(%err, key = %m.storage_key, "could not delete an orphaned output");
            }
        }
    }

    /// Applies a worker-side event and publishes the result; returns the outcome label (the
    /// status the job really ended in, so a last retryable failure counts as `failed`).
    async fn settle(&self, job: &Job, event: JobEvent, error: Option<JobError>) -> &'static str {
        match jobs::finish_attempt(&self.deps.db, job, self.id, event, error.as_ref()).await {
            Ok(Some(updated)) => {
                let kind = match updated.status {
                    JobStatus::Retrying => "job.retrying",
                    JobStatus::Failed => "job.failed",
                    JobStatus::Cancelled => "job.cancelled",
                    JobStatus::Queued => "job.queued",
                    JobStatus::Running | JobStatus::Succeeded => "job.updated",
                };
                self.publish(&job_event(kind, &updated, None)).await;
                if matches!(updated.status, JobStatus::Failed | JobStatus::Cancelled) {
                    seidra_notify::job_finished(&self.deps.db, &self.deps.bus, &updated).await;
                }
                if updated.status == JobStatus::Queued || updated.status == JobStatus::Retrying {
                    self.publish(&crate::events::control_event(JOBS_WAKE, None)).await;
                }
                match updated.status {
                    JobStatus::Queued => "released",
                    JobStatus::Retrying => "retrying",
                    JobStatus::Failed => "failed",
                    JobStatus::Cancelled => "cancelled",
                    JobStatus::Running | JobStatus::Succeeded => "error",
                }
            }
            Ok(None) => {
                tracing::warn!(?event, "the job was no longer ours to settle");
                "lease_lost"
            }
            Err(err) => {
                tracing::warn!(%err, ?event, "could not settle the job; its lease will expire");
                "error"
            }
        }
    }
}

async fn run_engine(
    engine: SharedEngine,
    request: ImageRequest,
    init: Option<InitImage>,
    sink: WatchSink,
    cancel: CancellationToken,
) -> Result<Vec<EngineOutput>, EngineError> {
    match &init {
        Some(init) => engine.run_img2img(&request, init, &sink, &cancel).await,
        None => engine.run(&request, &sink, &cancel).await,
    }
}

/// The job error for an output that could not be stored. A full disk gets its own code, so
/// the user and the operator see the cause; it is retried (with back-off) because space can be
/// freed. A refusal (bad S3 credentials, missing bucket) will not pass on a retry.
pub(crate) fn storage_failure(err: &StorageError) -> (JobError, bool) {
    let retryable = err.is_retryable() || err.is_storage_full();
    let (code, message) = if err.is_storage_full() {
        ("storage_full", format!("no space left to store the output (the server's disk is full): {err}"))
    } else {
        ("storage_error", format!("could not store the output: {err}"))
    };
    (JobError { code: code.into(), message, retryable }, retryable)
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(30))
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "unknown".to_owned())
}
