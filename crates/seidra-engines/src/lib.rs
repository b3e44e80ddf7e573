//! Generation engines behind one trait. An engine turns a validated [`ImageRequest`] into
//! output files, reporting progress and stopping between steps when cancelled.
//!
//! CONTRACT (used by the worker; keep these signatures):
//! - `GenerationEngine::name`, `capabilities`, `models`, `check` (engine-specific 422s), `run`,
//!   `run_img2img`.
//! - `run` (text-to-image) and `run_img2img` (image-to-image: `request.init_image` is set and the
//!   worker hands over the decoded [`InitImage`], already resized to the request's width×height)
//!   must call `progress.report` at least once per step with a fraction in 0..=1, and return
//!   `EngineError::Cancelled` promptly (between steps) once `cancel.is_cancelled()`.
//! - An engine whose capabilities say `supports_img2img: false` keeps the default `run_img2img`,
//!   which refuses with a 422 on `init_image`; the API refuses such requests before queueing.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use seidra_core::ValidationError;
use seidra_core::job::ImageRequest;
pub use tokio_util::sync::CancellationToken;

pub mod init_image;
pub mod noop;
pub mod procedural;
pub mod remote;

pub use init_image::InitImage;
pub use procedural::ProceduralEngine;

/// What an engine can do; the API refuses requests outside it with a 422 naming the field.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EngineCapabilities {
    /// Job types it runs (`image`, …).
    pub job_types: Vec<String>,
    /// Schedulers it honours (`ddim`, `euler_a`, …).
    pub schedulers: Vec<String>,
    /// Smallest width/height, pixels.
    pub min_size: u32,
    /// Largest width/height, pixels.
    pub max_size: u32,
    /// Width and height must be multiples of this.
    pub size_multiple: u32,
    /// Most images per job.
    pub max_images: u32,
    /// Most inference steps.
    pub max_steps: u32,
    /// Whether LoRAs can be applied.
    pub supports_loras: bool,
    /// Whether a negative prompt is used.
    pub supports_negative_prompt: bool,
    /// Whether it can start from an image (`init_image`, `strength`: image-to-image).
    pub supports_img2img: bool,
}

impl EngineCapabilities {
    /// Checks a request's size, image count and steps against these limits; the error names
    /// the field (`width`, `height`, `num_images`, `num_inference_steps`).
    pub fn check_bounds(&self, request: &ImageRequest) -> Result<(), ValidationError> {
        for (field, value) in [("width", request.width), ("height", request.height)] {
            if !(self.min_size..=self.max_size).contains(&value) || value % self.size_multiple != 0 {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "must be a multiple of {} between {} and {}",
                        self.size_multiple, self.min_size, self.max_size
                    ),
                ));
            }
        }
        if !(1..=self.max_images).contains(&request.num_images) {
            return Err(ValidationError::new("num_images", format!("must be between 1 and {}", self.max_images)));
        }
        if !(1..=self.max_steps).contains(&request.num_inference_steps) {
            return Err(ValidationError::new(
                "num_inference_steps",
                format!("must be between 1 and {}", self.max_steps),
            ));
        }
        Ok(())
    }

    /// Refuses an image-to-image request (`init_image` set) when `engine` cannot run one, with a
    /// 422 on `init_image`: the init image must never be silently ignored.
    pub fn check_img2img(&self, engine: &str, request: &ImageRequest) -> Result<(), ValidationError> {
        if request.init_image.is_some() && !self.supports_img2img {
            return Err(ValidationError::new(
                "init_image",
                format!("the engine `{engine}` cannot start from an image (no image-to-image support)"),
            ));
        }
        Ok(())
    }
}

/// A model an engine serves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelInfo {
    /// Name used in requests (`model_name`).
    pub name: String,
    /// Human description.
    pub description: String,
}

/// One progress update.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// 0.0 ..= 1.0.
    pub fraction: f32,
    /// Short stage message ("step 3/30").
    pub stage: String,
    /// Optional low-resolution preview (PNG bytes).
    pub preview: Option<Vec<u8>>,
}

/// Receives progress; implemented by the worker (which coalesces and publishes).
pub trait ProgressSink: Send + Sync {
    /// Reports progress; must not block.
    fn report(&self, progress: Progress);
}

/// One produced file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOutput {
    /// File content.
    pub bytes: Vec<u8>,
    /// MIME type (`image/png`).
    pub mime: String,
    /// Width, pixels (images).
    pub width: Option<u32>,
    /// Height, pixels (images).
    pub height: Option<u32>,
    /// Seed that produced this output (seed + index for batches).
    pub seed: Option<u64>,
    /// The engine that produced it when it is not the one the job was routed to (a remote
    /// pool failed over); `None` otherwise. Recorded as the media item's provenance.
    pub engine: Option<String>,
}

/// Why a run did not produce outputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The cancellation token fired; partial work was discarded.
    #[error("cancelled")]
    Cancelled,
    /// The request is outside this engine's capabilities.
    #[error("{0}")]
    Invalid(ValidationError),
    /// The engine failed; `retryable` says whether another attempt may succeed.
    #[error("{message}")]
    Failed {
        /// Stable code (`engine_unavailable`, `engine_error`…).
        code: String,
        /// Explanation.
        message: String,
        /// Whether to retry with back-off.
        retryable: bool,
    },
}

/// A generation engine.
pub trait GenerationEngine: Send + Sync {
    /// Unique engine name (`procedural`).
    fn name(&self) -> &str;
    /// What it can do.
    fn capabilities(&self) -> &EngineCapabilities;
    /// Models it serves.
    fn models(&self) -> Vec<ModelInfo>;
    /// Engine-specific checks of a request already validated by `ImageRequest::validate`.
    fn check(&self, request: &ImageRequest) -> Result<(), ValidationError>;
    /// Runs the request. `request.seed` is always set by the time the engine sees it.
    fn run<'a>(
        &'a self,
        request: &'a ImageRequest,
        progress: &'a dyn ProgressSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<EngineOutput>, EngineError>>;
    /// Runs an image-to-image request starting from `init` (the image `request.init_image` names,
    /// resized to the request's size; strength from [`ImageRequest::img2img_strength`]). The
    /// default refuses, for engines without `supports_img2img`.
    fn run_img2img<'a>(
        &'a self,
        request: &'a ImageRequest,
        init: &'a InitImage,
        progress: &'a dyn ProgressSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<EngineOutput>, EngineError>> {
        let _ = (init, progress, cancel);
        let refused = self.capabilities().check_img2img(self.name(), request).err().unwrap_or_else(|| {
            ValidationError::new("init_image", format!("the engine `{}` cannot start from an image", self.name()))
        });
        Box::pin(async move { Err(EngineError::Invalid(refused)) })
    }
}

/// The error of a text-to-image `run` given an image-to-image request: the worker must call
/// [`GenerationEngine::run_img2img`] with the loaded image instead.
pub fn init_image_not_loaded() -> EngineError {
    EngineError::Invalid(ValidationError::new(
        "init_image",
        "the init image was not loaded; image-to-image requests run through `run_img2img`",
    ))
}

/// A shared engine handle.
pub type SharedEngine = Arc<dyn GenerationEngine>;
