//! The `noop` engine: answers at once with a tiny flat PNG per image (model `noop`), or with no
//! output at all (model `empty`). It measures the job system itself (queue, workers, events)
//! without rendering cost — `empty` also without storage and thumbnails — and gives operators a
//! way to exercise failures: a prompt starting with `!fail` fails (non-retryable), `!flaky`
//! fails with a retryable error. Off unless `SEIDRA_ENGINES__NOOP=true`; never a default engine.

use futures_util::future::BoxFuture;
use seidra_core::ValidationError;
use seidra_core::job::ImageRequest;

use crate::procedural::render::encode_png;
use crate::{EngineCapabilities, EngineError, EngineOutput, GenerationEngine, ModelInfo, Progress, ProgressSink};
use tokio_util::sync::CancellationToken;

/// Engine name.
pub const ENGINE_NAME: &str = "noop";
/// Its default model: a tiny PNG per image.
pub const MODEL_NAME: &str = "noop";
/// The model that succeeds with no output (the queue alone, without storage).
pub const EMPTY_MODEL_NAME: &str = "empty";

/// See the module docs.
#[derive(Debug, Clone)]
pub struct NoopEngine {
    capabilities: EngineCapabilities,
}

impl Default for NoopEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl NoopEngine {
    /// The engine.
    pub fn new() -> Self {
        Self {
            capabilities: EngineCapabilities {
                job_types: vec!["image".into()],
                schedulers: vec!["ddim".into(), "euler".into(), "euler_a".into(), "dpmpp_2m".into()],
                min_size: 64,
                max_size: 2048,
                size_multiple: 8,
                max_images: 8,
                max_steps: 150,
                supports_loras: false,
                supports_negative_prompt: true,
                supports_img2img: false,
            },
        }
    }
}

impl GenerationEngine for NoopEngine {
    fn name(&self) -> &str {
        ENGINE_NAME
    }

    fn capabilities(&self) -> &EngineCapabilities {
        &self.capabilities
    }

    fn models(&self) -> Vec<ModelInfo> {
        vec![
            ModelInfo {
                name: MODEL_NAME.into(),
                description: "Diagnostics: an 8×8 flat PNG per image, at once".into(),
            },
            ModelInfo {
                name: EMPTY_MODEL_NAME.into(),
                description: "Diagnostics: succeeds at once with no output (the queue alone)".into(),
            },
        ]
    }

    fn check(&self, request: &ImageRequest) -> Result<(), ValidationError> {
        if !self.capabilities.schedulers.iter().any(|s| s == &request.scheduler) {
            return Err(ValidationError::new("scheduler", "must be one of: ddim, euler, euler_a, dpmpp_2m"));
        }
        if !request.loras.is_empty() {
            return Err(ValidationError::new("loras", "the noop engine cannot apply LoRAs"));
        }
        Ok(())
    }

    fn run<'a>(
        &'a self,
        request: &'a ImageRequest,
        progress: &'a dyn ProgressSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<EngineOutput>, EngineError>> {
        Box::pin(async move {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            if request.prompt.starts_with("!fail") {
                return Err(EngineError::Failed {
                    code: "engine_error".into(),
                    message: "requested failure (!fail)".into(),
                    retryable: false,
                });
            }
            if request.prompt.starts_with("!flaky") {
                return Err(EngineError::Failed {
                    code: "engine_unavailable".into(),
                    message: "requested transient failure (!flaky)".into(),
                    retryable: true,
                });
            }
            if request.model_name.as_deref() == Some(EMPTY_MODEL_NAME) {
                progress.report(Progress { fraction: 1.0, stage: "done".into(), preview: None });
                return Ok(Vec::new());
            }
            let seed = request.seed.unwrap_or(0);
            let mut outputs = Vec::new();
            for i in 0..request.num_images {
                let shade = u8::try_from((seed.wrapping_add(u64::from(i))) % 256).unwrap_or(0);
                let png = encode_png(&[shade; 8 * 8 * 3], 8, 8).map_err(|e| EngineError::Failed {
                    code: "encode_error".into(),
                    message: e.to_string(),
                    retryable: false,
                })?;
                outputs.push(EngineOutput {
                    bytes: png,
                    mime: "image/png".into(),
                    width: Some(8),
                    height: Some(8),
                    seed: Some(seed + u64::from(i)),
                    engine: None,
                });
            }
            progress.report(Progress { fraction: 1.0, stage: "done".into(), preview: None });
            Ok(outputs)
        })
    }
}
