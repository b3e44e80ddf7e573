//! The built-in procedural engine: draws deterministic abstract images on the CPU so SEIDRA
//! can be tried end to end without a GPU or model weights. It is not a diffusion model, but
//! it honours every request field the way one would:
//!
//! - the prompt's words pick the palette (colour words keep their colour, other words hash
//!   to hues) and one shape each (mountain ranges, ribbons, spheres, rings);
//! - the seed fixes the noise, the shape placement and the sampler's starting noise;
//! - `num_inference_steps` steps of a small k-diffusion-style sampler refine a latent at 1/8
//!   resolution (few steps leave a rougher image); a single full-resolution pass decodes it;
//! - `guidance_scale` is a classifier-free-guidance push plus contrast and saturation;
//! - the negative prompt is the "unconditional" field guidance pushes away from, pushes the
//!   palette away from the colours it names and removes the shapes or texture it names;
//! - the scheduler picks the sampler's update rule and the final-pass style (`ddim` smooth,
//!   `euler` posterised contours, `euler_a` grainy, `dpmpp_2m` folded veins).
//!
//! - image-to-image (`init_image`, `strength` s): the sampler runs ⌈s × steps⌉ steps (as a
//!   diffusion model skips the noisiest part of its schedule) and the render is mixed with the
//!   init image by s, so s → 1 is the text-to-image render and a small s stays close to the image.
//!
//! Same request, seed and init image, same bytes: no clock, no threads, no hash-map iteration.

mod noise;
mod plan;
pub(crate) mod render;

use futures_util::future::BoxFuture;
use seidra_core::ValidationError;
use seidra_core::job::ImageRequest;
use tokio::sync::mpsc::UnboundedSender;

use crate::{
    CancellationToken, EngineCapabilities, EngineError, EngineOutput, GenerationEngine, InitImage, ModelInfo, Progress,
    ProgressSink, init_image_not_loaded,
};
use plan::{Plan, Scheduler};
use render::{Latent, Sampler, encode_png, render_rgb};

/// Engine name used in requests and in the engine registry.
pub const ENGINE_NAME: &str = "procedural";
/// The one model the procedural engine serves.
pub const MODEL_NAME: &str = "procedural-v1";
/// Longest side of the low-resolution previews sent with progress, pixels.
const PREVIEW_SIZE: u32 = 64;

/// The built-in CPU engine (see the module documentation).
#[derive(Debug, Clone)]
pub struct ProceduralEngine {
    capabilities: EngineCapabilities,
}

impl Default for ProceduralEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl ProceduralEngine {
    /// Creates the engine; it holds no resources.
    pub fn new() -> Self {
        Self {
            capabilities: EngineCapabilities {
                job_types: vec!["image".to_owned()],
                schedulers: Scheduler::NAMES.iter().map(|s| (*s).to_owned()).collect(),
                min_size: 64,
                max_size: 2048,
                size_multiple: 8,
                max_images: 8,
                max_steps: 150,
                supports_loras: false,
                supports_negative_prompt: true,
                supports_img2img: true,
            },
        }
    }

    /// Runs `request` on the calling thread (what [`GenerationEngine::run`] does inside
    /// `spawn_blocking`); for benchmarks and callers that manage their own threads.
    pub fn generate_blocking(
        &self,
        request: &ImageRequest,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        self.check(request).map_err(EngineError::Invalid)?;
        if request.init_image.is_some() {
            return Err(init_image_not_loaded());
        }
        generate(request, None, progress, cancel)
    }

    /// Runs `request` (the init image set) from `init`, on the calling thread; see
    /// [`Self::generate_blocking`].
    pub fn generate_img2img_blocking(
        &self,
        request: &ImageRequest,
        init: &InitImage,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        self.check(request).map_err(EngineError::Invalid)?;
        generate(request, Some(init), progress, cancel)
    }

    /// Runs the blocking generation on Tokio's blocking pool, relaying progress.
    async fn spawn(
        &self,
        request: &ImageRequest,
        init: Option<&InitImage>,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        self.check(request).map_err(EngineError::Invalid)?;
        let request = request.clone();
        let init = init.cloned();
        // A child token so that dropping this future (worker shutdown, aborted task) also
        // stops the blocking work instead of leaving it to run to the end.
        let work_cancel = cancel.child_token();
        let _stop_on_drop = work_cancel.clone().drop_guard();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task =
            tokio::task::spawn_blocking(move || generate(&request, init.as_ref(), &ChannelSink(tx), &work_cancel));
        // The sink is borrowed, so progress crosses back to this task to be reported.
        while let Some(update) = rx.recv().await {
            progress.report(update);
        }
        task.await.unwrap_or_else(|e| {
            Err(EngineError::Failed {
                code: "engine_error".to_owned(),
                message: format!("the procedural engine stopped unexpectedly: {e}"),
                retryable: false,
            })
        })
    }
}

fn invalid_scheduler() -> ValidationError {
    ValidationError::new("scheduler", format!("must be one of: {}", Scheduler::NAMES.join(", ")))
}

impl GenerationEngine for ProceduralEngine {
    fn name(&self) -> &str {
        ENGINE_NAME
    }

    fn capabilities(&self) -> &EngineCapabilities {
        &self.capabilities
    }

    fn models(&self) -> Vec<ModelInfo> {
        vec![ModelInfo {
            name: MODEL_NAME.to_owned(),
            description: "Built-in CPU engine that draws deterministic abstract images from the prompt \
                          (palette, shapes and flowing noise); not a diffusion model"
                .to_owned(),
        }]
    }

    fn check(&self, request: &ImageRequest) -> Result<(), ValidationError> {
        let caps = &self.capabilities;
        if let Some(engine) = &request.engine
            && engine != ENGINE_NAME
        {
            return Err(ValidationError::new(
                "engine",
                format!("this request is for engine {engine:?}, not {ENGINE_NAME:?}"),
            ));
        }
        if let Some(model) = &request.model_name
            && model != MODEL_NAME
        {
            return Err(ValidationError::new(
                "model_name",
                format!("unknown model {model:?} for the procedural engine; it serves only {MODEL_NAME:?}"),
            ));
        }
        if Scheduler::parse(&request.scheduler).is_none() {
            return Err(invalid_scheduler());
        }
        if !request.loras.is_empty() {
            return Err(ValidationError::new("loras", "the procedural engine cannot apply LoRAs"));
        }
        caps.check_bounds(request)?;
        caps.check_img2img(ENGINE_NAME, request)?;
        Ok(())
    }

    fn run<'a>(
        &'a self,
        request: &'a ImageRequest,
        progress: &'a dyn ProgressSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<EngineOutput>, EngineError>> {
        Box::pin(async move {
            if request.init_image.is_some() {
                return Err(init_image_not_loaded());
            }
            self.spawn(request, None, progress, cancel).await
        })
    }

    fn run_img2img<'a>(
        &'a self,
        request: &'a ImageRequest,
        init: &'a InitImage,
        progress: &'a dyn ProgressSink,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<EngineOutput>, EngineError>> {
        Box::pin(self.spawn(request, Some(init), progress, cancel))
    }
}

/// Forwards progress from the blocking thread to the async task that owns the real sink.
struct ChannelSink(UnboundedSender<Progress>);

impl ProgressSink for ChannelSink {
    fn report(&self, progress: Progress) {
        // A closed channel means the run future is gone; the drop guard cancels the work.
        let _ = self.0.send(progress);
    }
}

/// Generates every image of a checked request on the calling thread.
fn generate(
    request: &ImageRequest,
    init: Option<&InitImage>,
    progress: &dyn ProgressSink,
    cancel: &CancellationToken,
) -> Result<Vec<EngineOutput>, EngineError> {
    let scheduler = Scheduler::parse(&request.scheduler).ok_or_else(|| EngineError::Invalid(invalid_scheduler()))?;
    let seed = request
        .seed
        .ok_or_else(|| EngineError::Invalid(ValidationError::new("seed", "must be chosen before the engine runs")))?;
    let start = match init {
        Some(image) => {
            if (image.width(), image.height()) != (request.width, request.height) {
                return Err(EngineError::Invalid(ValidationError::new(
                    "init_image",
                    format!("the init image must be resized to {}×{} first", request.width, request.height),
                )));
            }
            Some((image, request.img2img_strength().unwrap_or(seidra_core::job::DEFAULT_STRENGTH)))
        }
        None => None,
    };
    let mut outputs = Vec::with_capacity(request.num_images as usize);
    for index in 0..request.num_images {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let image_seed = seed.wrapping_add(u64::from(index));
        outputs.push(generate_one(request, start, scheduler, image_seed, index, progress, cancel)?);
    }
    Ok(outputs)
}

/// Image-to-image input: the init image and the strength.
type Start<'a> = Option<(&'a InitImage, f32)>;

fn generate_one(
    request: &ImageRequest,
    start: Start<'_>,
    scheduler: Scheduler,
    seed: u64,
    index: u32,
    progress: &dyn ProgressSink,
    cancel: &CancellationToken,
) -> Result<EngineOutput, EngineError> {
    let (width, height) = (request.width, request.height);
    // Image-to-image skips the noisiest part of the schedule, like a diffusion model would.
    let steps = match start {
        Some((_, strength)) => img2img_steps(request.num_inference_steps, strength),
        None => request.num_inference_steps,
    };
    let count = request.num_images;
    let plan = Plan::new(request, scheduler, seed);
    let latent = Latent::new(&plan, width, height);
    let mut sampler = Sampler::new(&plan, &latent, steps);
    let preview_every = (steps / 4).max(5);
    for step in 1..=steps {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        sampler.step();
        let preview = (step % preview_every == 0 && step < steps)
            .then(|| preview_png(&plan, &latent, sampler.preview_latent(), start, width, height, cancel))
            .flatten();
        // Over the whole batch the fraction only grows; for one image it is step / steps.
        let fraction = (index * steps + step) as f32 / (count * steps) as f32;
        let stage = if count == 1 {
            format!("step {step}/{steps}")
        } else {
            format!("image {}/{count}, step {step}/{steps}", index + 1)
        };
        progress.report(Progress { fraction, stage, preview });
    }
    let mut rgb = render_rgb(&plan, &latent, sampler.result(), width, height, cancel).ok_or(EngineError::Cancelled)?;
    if let Some((init, strength)) = start {
        mix(&mut rgb, init.rgb(), strength);
    }
    let bytes = encode_png(&rgb, width, height).map_err(|e| EngineError::Failed {
        code: "engine_error".to_owned(),
        message: format!("PNG encoding failed: {e}"),
        retryable: false,
    })?;
    Ok(EngineOutput {
        bytes,
        mime: "image/png".to_owned(),
        width: Some(width),
        height: Some(height),
        seed: Some(seed),
        engine: None,
    })
}

/// A small PNG of the sampler's current prediction; `None` if it could not be made.
fn preview_png(
    plan: &Plan,
    latent: &Latent,
    state: &[f32],
    start: Start<'_>,
    width: u32,
    height: u32,
    cancel: &CancellationToken,
) -> Option<Vec<u8>> {
    let longest = width.max(height);
    let pw = (width * PREVIEW_SIZE / longest).max(8);
    let ph = (height * PREVIEW_SIZE / longest).max(8);
    let mut rgb = render_rgb(plan, latent, state, pw, ph, cancel)?;
    if let Some((init, strength)) = start {
        mix(&mut rgb, &init.resized_rgb(pw, ph), strength);
    }
    encode_png(&rgb, pw, ph).ok()
}

/// Steps an image-to-image run takes: ⌈strength × steps⌉, at least one.
pub fn img2img_steps(steps: u32, strength: f32) -> u32 {
    let scaled = (f64::from(steps) * f64::from(strength.clamp(0.0, 1.0))).ceil();
    // In 0..=steps by the clamp above, so the conversion cannot truncate.
    (scaled as u32).clamp(1, steps.max(1))
}

/// `render` becomes `init + strength × (render − init)`, per channel.
fn mix(render: &mut [u8], init: &[u8], strength: f32) {
    let s = strength.clamp(0.0, 1.0);
    for (out, &base) in render.iter_mut().zip(init) {
        let v = f32::from(base) + s * (f32::from(*out) - f32::from(base));
        *out = v.round().clamp(0.0, 255.0) as u8;
    }
}
