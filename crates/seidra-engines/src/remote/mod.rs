//! Remote engines: ComfyUI, AUTOMATIC1111/Forge and OpenAI-compatible image APIs behind
//! [`GenerationEngine`], and SadTalker-compatible talking-head servers (their own entry point,
//! [`RemotePool::talking_head`], since they take a portrait and speech rather than a prompt). Each has a concurrency limit, a circuit breaker, health checks and
//! per-engine metrics; [`RemotePool`] routes with fail-over between engines serving a model.
//!
//! Errors follow one rule: connection refused, timeouts, 429 and 5xx are `engine_unavailable`
//! (retryable, trip the breaker, fail over); 4xx and execution errors are `engine_error`
//! (not retryable, carry the remote's message).

pub mod a1111;
pub mod breaker;
pub mod comfyui;
mod http;
pub mod openai;
pub mod pool;
pub mod sadtalker;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use seidra_core::ValidationError;
use seidra_core::job::ImageRequest;
use tokio_util::sync::CancellationToken;

pub use breaker::{Breaker, BreakerState};
pub use pool::{RemotePool, RoutedEngine};
pub use sadtalker::TalkingHeadInput;

use crate::{
    EngineCapabilities, EngineError, EngineOutput, GenerationEngine, InitImage, ModelInfo, ProgressSink,
    init_image_not_loaded,
};
use http::Http;

/// Schedulers every remote engine accepts (mapped to each server's own sampler names).
pub const SCHEDULERS: [&str; 4] = ["ddim", "euler", "euler_a", "dpmpp_2m"];

/// The protocol a remote engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteKind {
    /// ComfyUI.
    Comfyui,
    /// AUTOMATIC1111 / Forge.
    A1111,
    /// OpenAI-compatible images API.
    Openai,
    /// SadTalker-compatible talking-head server (see [`sadtalker`]).
    Sadtalker,
}

/// The job type talking-head engines run.
pub const TALKING_HEAD: &str = "talking_head";

/// How to reach one remote engine.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Engine name.
    pub name: String,
    /// Protocol.
    pub kind: RemoteKind,
    /// Base URL, no trailing slash needed.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    /// Models served; the first is the default.
    pub models: Vec<String>,
    /// Most requests in flight at once.
    pub max_concurrency: usize,
    /// End-to-end limit of one generation.
    pub timeout: Duration,
    /// ComfyUI: API-format workflow with `{{slot}}` parameters (the built-in txt2img when `None`).
    pub workflow: Option<serde_json::Value>,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// Cool-down of an open breaker.
    pub breaker_cooldown: Duration,
}

/// Why a remote engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be built.
    #[error("engine `{0}`: cannot build the HTTP client: {1}")]
    Client(String, String),
    /// The workflow template is unusable.
    #[error("engine `{0}`: {1}")]
    Workflow(String, String),
}

enum Protocol {
    Comfy(comfyui::ComfyUi),
    A1111(a1111::A1111),
    OpenAi(openai::OpenAi),
    SadTalker(sadtalker::SadTalker),
}

/// Last health check of an engine.
#[derive(Debug, Clone, Default)]
struct HealthState {
    up: Option<bool>,
    latency: Option<Duration>,
    last_error: Option<String>,
    checked_at: Option<Instant>,
}

/// What `/api/generation/health` shows per remote engine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoteHealth {
    /// Engine name.
    pub name: String,
    /// Protocol.
    pub kind: RemoteKind,
    /// Base URL (no credentials are ever part of it).
    pub url: String,
    /// `up`, `down`, or `unknown` before the first check.
    pub status: &'static str,
    /// Circuit breaker state.
    pub breaker: BreakerState,
    /// Last health check round trip, milliseconds.
    pub latency_ms: Option<f64>,
    /// Last error (health check or request).
    pub last_error: Option<String>,
    /// Seconds since the last health check.
    pub checked_secs_ago: Option<f64>,
    /// Requests in flight / allowed.
    pub in_flight: usize,
    /// Concurrency limit.
    pub max_concurrency: usize,
}

/// One remote server; see the module docs. Use it through [`RoutedEngine`] for fail-over.
pub struct RemoteEngine {
    config: RemoteConfig,
    capabilities: EngineCapabilities,
    http: Http,
    protocol: Protocol,
    permits: tokio::sync::Semaphore,
    breaker: Breaker,
    health: Mutex<HealthState>,
}

impl std::fmt::Debug for RemoteEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEngine").field("name", &self.config.name).field("kind", &self.config.kind).finish()
    }
}

impl RemoteEngine {
    /// Builds the engine (no network traffic yet).
    pub fn new(config: RemoteConfig) -> Result<Self, BuildError> {
        let http = Http::new(&config.base_url, config.api_key.clone())
            .map_err(|e| BuildError::Client(config.name.clone(), e))?;
        let protocol = match config.kind {
            RemoteKind::Comfyui => Protocol::Comfy(
                comfyui::ComfyUi::new(config.workflow.clone())
                    .map_err(|e| BuildError::Workflow(config.name.clone(), e))?,
            ),
            RemoteKind::A1111 => Protocol::A1111(a1111::A1111),
            RemoteKind::Openai => Protocol::OpenAi(openai::OpenAi),
            RemoteKind::Sadtalker => Protocol::SadTalker(sadtalker::SadTalker),
        };
        let remote_extras = !matches!(config.kind, RemoteKind::Openai | RemoteKind::Sadtalker);
        let job_type = if config.kind == RemoteKind::Sadtalker { TALKING_HEAD } else { "image" };
        let capabilities = EngineCapabilities {
            job_types: vec![job_type.into()],
            schedulers: SCHEDULERS.iter().map(|s| (*s).to_owned()).collect(),
            min_size: 64,
            max_size: 2048,
            size_multiple: 8,
            max_images: 8,
            max_steps: 150,
            supports_loras: remote_extras,
            supports_negative_prompt: remote_extras,
            supports_img2img: match &protocol {
                Protocol::Comfy(c) => c.supports_img2img(),
                Protocol::A1111(_) => true,
                // `/v1/images/edits` has no denoising strength to honour.
                Protocol::OpenAi(_) => false,
                Protocol::SadTalker(_) => false,
            },
        };
        let permits = tokio::sync::Semaphore::new(config.max_concurrency.max(1));
        let breaker = Breaker::new(config.breaker_failures, config.breaker_cooldown);
        metrics::gauge!("seidra_engine_breaker_state", "engine" => config.name.clone()).set(0.0);
        // Error counters exist from the start at 0, so the first failure counts in rate() and
        // the error-ratio alert sees an engine that has never failed as 0%, not "no data".
        for kind in ["unavailable", "error"] {
            metrics::counter!("seidra_engine_errors_total", "engine" => config.name.clone(), "kind" => kind)
                .increment(0);
        }
        metrics::counter!("seidra_engine_failovers_total", "engine" => config.name.clone()).increment(0);
        Ok(Self { config, capabilities, http, protocol, permits, breaker, health: Mutex::new(HealthState::default()) })
    }

    /// Its configuration.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    /// Its circuit breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Whether it renders talking heads (rather than images).
    pub fn is_talking_head(&self) -> bool {
        self.config.kind == RemoteKind::Sadtalker
    }

    /// Whether it serves `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.config.models.iter().any(|m| m == model)
    }

    fn health_lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the last health check failed.
    pub fn is_down(&self) -> bool {
        self.health_lock().up == Some(false)
    }

    /// Whether the router may send it a request now (breaker not open, last check not down).
    pub fn is_available(&self) -> bool {
        self.breaker.state() != BreakerState::Open && !self.is_down()
    }

    /// Health snapshot.
    pub fn health(&self) -> RemoteHealth {
        let h = self.health_lock().clone();
        RemoteHealth {
            name: self.config.name.clone(),
            kind: self.config.kind,
            url: self.config.base_url.clone(),
            status: match h.up {
                Some(true) => "up",
                Some(false) => "down",
                None => "unknown",
            },
            breaker: self.breaker.state(),
            latency_ms: h.latency.map(|d| d.as_secs_f64() * 1000.0),
            last_error: h.last_error,
            checked_secs_ago: h.checked_at.map(|t| t.elapsed().as_secs_f64()),
            in_flight: self.config.max_concurrency.saturating_sub(self.permits.available_permits()),
            max_concurrency: self.config.max_concurrency,
        }
    }

    /// Probes the server once (`/system_stats`, `/sdapi/v1/sd-models`, `/v1/models`, `/health`)
    /// and records the result.
    pub async fn check_health(&self) -> bool {
        let started = Instant::now();
        let path = match self.protocol {
            Protocol::Comfy(_) => "/system_stats",
            Protocol::A1111(_) => "/sdapi/v1/sd-models",
            Protocol::OpenAi(_) => "/v1/models",
            Protocol::SadTalker(_) => sadtalker::HEALTH_PATH,
        };
        let result = self.http.get_json::<serde_json::Value>(path, Some(Duration::from_secs(5))).await;
        let latency = started.elapsed();
        let name = self.config.name.clone();
        let up = result.is_ok();
        metrics::gauge!("seidra_engine_up", "engine" => name.clone()).set(if up { 1.0 } else { 0.0 });
        metrics::histogram!("seidra_engine_health_check_seconds", "engine" => name).record(latency.as_secs_f64());
        metrics::gauge!("seidra_engine_breaker_state", "engine" => self.config.name.clone())
            .set(self.breaker.state().gauge());
        let mut h = self.health_lock();
        h.up = Some(up);
        h.latency = Some(latency);
        h.checked_at = Some(Instant::now());
        if let Err(err) = result {
            h.last_error = Some(err.to_string());
        }
        up
    }

    /// One attempt on this engine (image-to-image when `init` is given): waits for a concurrency
    /// slot, runs under the timeout, and records the outcome in the breaker and metrics. The
    /// breaker must have been acquired.
    pub async fn run_once(
        &self,
        request: &ImageRequest,
        init: Option<&InitImage>,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        self.attempt(cancel, |inner| async move { self.run_protocol(request, init, progress, &inner).await }).await
    }

    /// One talking-head render on this engine, with the same slot, timeout, breaker and
    /// metrics as [`Self::run_once`]. The breaker must have been acquired.
    pub async fn talking_head_once(
        &self,
        input: &TalkingHeadInput,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        self.attempt(cancel, |inner| async move {
            if inner.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            match &self.protocol {
                Protocol::SadTalker(p) => p.run(&self.http, input, progress, &inner).await,
                _ => Err(EngineError::Invalid(ValidationError::new(
                    "engine",
                    format!("the engine `{}` does not render talking heads", self.config.name),
                ))),
            }
        })
        .await
    }

    /// Runs `work` (given a token that fires on cancel or timeout) in a concurrency slot under
    /// the timeout, and records the outcome in the breaker and metrics.
    async fn attempt<F, Fut>(&self, cancel: &CancellationToken, work: F) -> Result<Vec<EngineOutput>, EngineError>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<EngineOutput>, EngineError>>,
    {
        let permit = tokio::select! {
            p = self.permits.acquire() => p.map_err(|_| unavailable("the engine is shutting down")),
            () = cancel.cancelled() => Err(EngineError::Cancelled),
        };
        let _permit = match permit {
            Ok(p) => p,
            Err(e) => {
                self.breaker.record_neutral();
                return Err(e);
            }
        };
        let started = Instant::now();
        // A child token lets the timeout stop the remote job the same way a user's cancel does.
        let inner_cancel = cancel.child_token();
        let fut = work(inner_cancel.clone());
        tokio::pin!(fut);
        let result = tokio::select! {
            r = &mut fut => r,
            () = tokio::time::sleep(self.config.timeout) => {
                inner_cancel.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(10), &mut fut).await;
                Err(unavailable(format!("no result within {} s", self.config.timeout.as_secs())))
            }
        };
        let name = self.config.name.clone();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(EngineError::Cancelled) => "cancelled",
            Err(EngineError::Failed { code, .. }) if code == UNAVAILABLE => "unavailable",
            Err(_) => "error",
        };
        metrics::counter!("seidra_engine_requests_total", "engine" => name.clone(), "outcome" => outcome).increment(1);
        if outcome == "unavailable" || outcome == "error" {
            metrics::counter!("seidra_engine_errors_total", "engine" => name.clone(), "kind" => outcome).increment(1);
        }
        metrics::histogram!("seidra_engine_request_seconds", "engine" => name.clone())
            .record(started.elapsed().as_secs_f64());
        match &result {
            Err(EngineError::Cancelled) => self.breaker.record_neutral(),
            Err(e @ EngineError::Failed { code, .. }) if code == UNAVAILABLE => {
                self.breaker.record_failure();
                self.health_lock().last_error = Some(e.to_string());
            }
            // The server answered (even with an error of the request's own making): it is alive.
            _ => self.breaker.record_success(),
        }
        metrics::gauge!("seidra_engine_breaker_state", "engine" => name).set(self.breaker.state().gauge());
        result
    }

    async fn run_protocol(
        &self,
        request: &ImageRequest,
        init: Option<&InitImage>,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        if request.init_image.is_some() != init.is_some() {
            return Err(init_image_not_loaded());
        }
        let model = request.model_name.clone().or_else(|| self.config.models.first().cloned()).unwrap_or_default();
        match &self.protocol {
            Protocol::Comfy(p) => p.run(&self.http, &model, request, init, progress, cancel).await,
            Protocol::A1111(p) => p.run(&self.http, &model, request, init, progress, cancel).await,
            Protocol::OpenAi(p) => {
                self.capabilities.check_img2img(&self.config.name, request).map_err(EngineError::Invalid)?;
                p.run(&self.http, &model, request, progress, cancel).await
            }
            Protocol::SadTalker(_) => Err(EngineError::Invalid(not_an_image_engine(&self.config.name))),
        }
    }

    /// Both entry points: the breaker, then one attempt.
    async fn run_guarded(
        &self,
        request: &ImageRequest,
        init: Option<&InitImage>,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        if !self.breaker.try_acquire() {
            return Err(unavailable(format!("engine `{}`: circuit breaker open", self.config.name)));
        }
        self.run_once(request, init, progress, cancel).await
    }
}

impl GenerationEngine for RemoteEngine {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn capabilities(&self) -> &EngineCapabilities {
        &self.capabilities
    }

    fn models(&self) -> Vec<ModelInfo> {
        let kind = match self.config.kind {
            RemoteKind::Comfyui => "ComfyUI",
            RemoteKind::A1111 => "AUTOMATIC1111/Forge",
            RemoteKind::Openai => "OpenAI-compatible",
            RemoteKind::Sadtalker => "SadTalker-compatible",
        };
        self.config
            .models
            .iter()
            .map(|m| ModelInfo { name: m.clone(), description: format!("{m} on {kind} `{}`", self.config.name) })
            .collect()
    }

    fn check(&self, request: &ImageRequest) -> Result<(), ValidationError> {
        if self.is_talking_head() {
            return Err(not_an_image_engine(&self.config.name));
        }
        if !SCHEDULERS.contains(&request.scheduler.as_str()) {
            return Err(ValidationError::new("scheduler", format!("must be one of: {}", SCHEDULERS.join(", "))));
        }
        if !self.capabilities.supports_loras && !request.loras.is_empty() {
            return Err(ValidationError::new("loras", format!("the engine `{}` cannot apply LoRAs", self.config.name)));
        }
        if let Protocol::Comfy(c) = &self.protocol
            && request.init_image.is_none()
            && !c.supports_txt2img()
        {
            return Err(ValidationError::new(
                "init_image",
                format!("the engine `{}` runs an image-to-image workflow: an init image is required", self.config.name),
            ));
        }
        self.capabilities.check_img2img(&self.config.name, request)
    }

    fn run<'a>(
        &'a self,
        request: &'a ImageRequest,
        progress: &'a dyn ProgressSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<EngineOutput>, EngineError>> {
        Box::pin(self.run_guarded(request, None, progress, cancel))
    }

    fn run_img2img<'a>(
        &'a self,
        request: &'a ImageRequest,
        init: &'a InitImage,
        progress: &'a dyn ProgressSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<EngineOutput>, EngineError>> {
        Box::pin(self.run_guarded(request, Some(init), progress, cancel))
    }
}

/// The refusal of an image request by a talking-head engine.
fn not_an_image_engine(name: &str) -> ValidationError {
    ValidationError::new(
        "engine",
        format!("the engine `{name}` renders talking-head videos (POST /api/generate/video), not images"),
    )
}

/// Code of connection-level, retryable failures (they trip the breaker and fail over).
pub const UNAVAILABLE: &str = "engine_unavailable";
/// Code of failures reported by the remote for this request (not retried).
pub const REMOTE_ERROR: &str = "engine_error";

/// A retryable, connection-level failure.
pub fn unavailable(message: impl Into<String>) -> EngineError {
    EngineError::Failed { code: UNAVAILABLE.into(), message: message.into(), retryable: true }
}

/// A failure the remote reported for this request.
pub fn remote_error(message: impl Into<String>) -> EngineError {
    EngineError::Failed { code: REMOTE_ERROR.into(), message: message.into(), retryable: false }
}

/// Whether an error is connection-level (worth failing over).
pub fn is_unavailable(err: &EngineError) -> bool {
    matches!(err, EngineError::Failed { code, .. } if code == UNAVAILABLE)
}

/// An image output, with its size read from the PNG header when it is a PNG.
pub(crate) fn image_output(bytes: Vec<u8>, request: &ImageRequest, index: usize) -> EngineOutput {
    let (mime, size) = sniff(&bytes);
    let (width, height) = size.unwrap_or((request.width, request.height));
    let seed = request.seed.map(|s| s.wrapping_add(index as u64));
    EngineOutput { bytes, mime: mime.into(), width: Some(width), height: Some(height), seed, engine: None }
}

fn sniff(bytes: &[u8]) -> (&'static str, Option<(u32, u32)>) {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() >= 24 {
        let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
        ("image/png", Some((w, h)))
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        ("image/jpeg", None)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        ("image/webp", None)
    } else {
        ("application/octet-stream", None)
    }
}

/// Decodes a base64 image as sent by A1111 and OpenAI (optionally a `data:` URL).
pub(crate) fn decode_b64(data: &str) -> Result<Vec<u8>, EngineError> {
    use base64::Engine as _;
    let data = data.split_once(";base64,").map_or(data, |(_, d)| d);
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| remote_error(format!("the engine sent an image that is not valid base64: {e}")))
}
