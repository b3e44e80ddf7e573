//! The in-process Stable Diffusion engine (`candle`): SD 1.x / 2.x, SDXL and SDXL-Turbo
//! diffusers-layout directories from the model directory, run with candle on the CPU (or CUDA
//! with the `cuda` feature). Schedulers `ddim`, `euler`, `euler_a`; seed, steps, guidance with the negative
//! prompt, size, batch, LoRAs (kohya or diffusers names); progress per step and cancellation
//! between steps; an LRU of loaded models bounded by a byte budget.

pub mod cache;
pub mod clip;
pub mod config;
pub mod lora;
pub mod pipeline;
pub mod scheduler;
pub mod tiny;
pub mod tokenizer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use futures_util::future::BoxFuture;
use seidra_core::ValidationError;
use seidra_core::job::ImageRequest;
use seidra_engines::{
    CancellationToken, EngineCapabilities, EngineError, EngineOutput, GenerationEngine, ModelInfo, Progress,
    ProgressSink,
};
use tokio::sync::mpsc::UnboundedSender;

use crate::cache::ModelCache;
use crate::pipeline::GenerateParams;
use crate::scheduler::Kind;

/// Engine name used in requests and in the engine registry.
pub const ENGINE_NAME: &str = "candle";
/// How long a model-directory listing is reused before it is read again.
const RESCAN_AFTER: Duration = Duration::from_secs(5);
/// Deepest directory level searched for models and LoRAs.
const MAX_DEPTH: usize = 3;

/// Why loading or running a model failed.
#[derive(Debug, thiserror::Error)]
pub enum CandleError {
    /// A file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The model directory is malformed.
    #[error("{0}")]
    Model(String),
    /// The model is of a kind this engine does not run.
    #[error("{0}")]
    Unsupported(String),
    /// A LoRA could not be applied.
    #[error("LoRA: {0}")]
    Lora(String),
    /// candle failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

impl CandleError {
    fn io(path: &Path, err: &std::io::Error) -> Self {
        Self::Io { path: path.display().to_string(), message: err.to_string() }
    }

    fn into_engine_error(self) -> EngineError {
        let code = match self {
            Self::Candle(_) => "engine_error",
            _ => "model_error",
        };
        EngineError::Failed { code: code.to_owned(), message: self.to_string(), retryable: false }
    }
}

/// Engine configuration (from `[engines.candle]`).
#[derive(Debug, Clone)]
pub struct CandleConfig {
    /// Directory searched for diffusers pipelines and LoRA files.
    pub models_dir: PathBuf,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Most bytes of weights kept loaded (the newest model always stays).
    pub cache_bytes: u64,
}

/// Opens the device named in the configuration.
pub fn open_device(name: &str) -> Result<Device, CandleError> {
    let name = name.trim();
    if name.is_empty() || name == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match name.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| CandleError::Model(format!("device {name:?}: expected cpu, cuda or cuda:N")))?,
        None => return Err(CandleError::Model(format!("device {name:?}: expected cpu, cuda or cuda:N"))),
    };
    Ok(Device::new_cuda(ordinal)?)
}

#[derive(Debug, Clone)]
struct Listing {
    at: Instant,
    models: Vec<(String, PathBuf)>,
}

/// The candle Stable Diffusion engine.
pub struct CandleEngine {
    config: CandleConfig,
    device: Device,
    dtype: DType,
    capabilities: EngineCapabilities,
    cache: Arc<ModelCache>,
    listing: Mutex<Option<Listing>>,
}

impl std::fmt::Debug for CandleEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleEngine").field("config", &self.config).finish_non_exhaustive()
    }
}

impl CandleEngine {
    /// Opens the device; models are found in the directory and loaded on first use.
    pub fn new(config: CandleConfig) -> Result<Self, CandleError> {
        let device = open_device(&config.device)?;
        // f16 halves GPU memory; CPU kernels are fastest (and only complete) in f32.
        let dtype = if device.is_cpu() { DType::F32 } else { DType::F16 };
        let cache = Arc::new(ModelCache::new(config.cache_bytes));
        Ok(Self {
            config,
            device,
            dtype,
            capabilities: EngineCapabilities {
                job_types: vec!["image".to_owned()],
                schedulers: scheduler::NAMES.iter().map(|s| (*s).to_owned()).collect(),
                min_size: 64,
                max_size: 2048,
                size_multiple: 8,
                max_images: 8,
                max_steps: 150,
                supports_loras: true,
                supports_negative_prompt: true,
                supports_img2img: false,
            },
            cache,
            listing: Mutex::new(None),
        })
    }

    /// The model cache (to inspect what is loaded).
    pub fn cache(&self) -> &ModelCache {
        &self.cache
    }

    /// Diffusers directories in the model directory: `(name, path)`, name = relative path.
    fn list(&self) -> Vec<(String, PathBuf)> {
        let mut listing = self.listing.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = listing.as_ref()
            && l.at.elapsed() < RESCAN_AFTER
        {
            return l.models.clone();
        }
        let mut models = Vec::new();
        walk(&self.config.models_dir, 0, &mut |path, is_dir| {
            if is_dir && path.join("model_index.json").is_file() && path.join("unet").join("config.json").is_file() {
                models.push((rel_name(&self.config.models_dir, path), path.to_path_buf()));
                return false;
            }
            true
        });
        models.sort();
        *listing = Some(Listing { at: Instant::now(), models: models.clone() });
        models
    }

    fn model_dir(&self, request: &ImageRequest) -> Result<(String, PathBuf), ValidationError> {
        let models = self.list();
        match &request.model_name {
            Some(name) => models
                .into_iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| ValidationError::new("model_name", format!("the candle engine has no model {name:?}"))),
            None => models.into_iter().next().ok_or_else(|| {
                ValidationError::new(
                    "model_name",
                    format!("no diffusers model found in {}", self.config.models_dir.display()),
                )
            }),
        }
    }

    /// A LoRA file by name: a `*.safetensors` whose stem or relative path (without extension) is `name`.
    fn lora_path(&self, name: &str) -> Option<PathBuf> {
        let mut found = None;
        walk(&self.config.models_dir, 0, &mut |path, is_dir| {
            if is_dir {
                return found.is_none() && !path.join("model_index.json").is_file();
            }
            if path.extension().is_some_and(|e| e == "safetensors") {
                let rel = rel_name(&self.config.models_dir, &path.with_extension(""));
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
                if rel == name || stem.as_deref() == Some(name) {
                    found.get_or_insert_with(|| path.to_path_buf());
                }
            }
            false
        });
        found
    }

    /// Runs `request` on the calling thread (what `run` does inside `spawn_blocking`).
    pub fn generate_blocking(
        &self,
        request: &ImageRequest,
        progress: &dyn ProgressSink,
        cancel: &CancellationToken,
    ) -> Result<Vec<EngineOutput>, EngineError> {
        self.check(request).map_err(EngineError::Invalid)?;
        let (name, dir) = self.model_dir(request).map_err(EngineError::Invalid)?;
        let kind = Kind::parse(&request.scheduler)
            .ok_or_else(|| EngineError::Invalid(ValidationError::new("scheduler", "unknown scheduler")))?;
        let seed = request.seed.ok_or_else(|| {
            EngineError::Invalid(ValidationError::new("seed", "must be chosen before the engine runs"))
        })?;
        progress.report(Progress { fraction: 0.0, stage: format!("loading {name}"), preview: None });
        let model =
            self.cache.get_or_load(&name, &dir, &self.device, self.dtype).map_err(CandleError::into_engine_error)?;
        let scale = model.vae_scale();
        for (field, value) in [("width", request.width), ("height", request.height)] {
            if value % scale != 0 {
                return Err(EngineError::Invalid(ValidationError::new(
                    field,
                    format!("must be a multiple of {scale}"),
                )));
            }
        }
        let loras = request
            .loras
            .iter()
            .map(|l| self.lora_path(&l.name).map(|p| (p, l.weight)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| EngineError::Invalid(ValidationError::new("loras", "unknown LoRA")))?;
        let merged = if loras.is_empty() {
            None
        } else {
            // A LoRA that does not fit this model is the request's fault: a 422, never a partial merge.
            Some(model.with_loras(&loras).map_err(|e| match e {
                CandleError::Lora(message) => EngineError::Invalid(ValidationError::new("loras", message)),
                other => other.into_engine_error(),
            })?)
        };
        let (steps, count) = (request.num_inference_steps, request.num_images);
        let mut outputs = Vec::with_capacity(count as usize);
        for index in 0..count {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let image_seed = seed.wrapping_add(u64::from(index));
            let params = GenerateParams {
                prompt: &request.prompt,
                negative_prompt: &request.negative_prompt,
                width: request.width,
                height: request.height,
                steps,
                guidance: request.guidance_scale,
                scheduler: kind,
                seed: image_seed,
            };
            let mut on_step = |step: u32| {
                let fraction = (index * steps + step) as f32 / (count * steps) as f32;
                let stage = if count == 1 {
                    format!("step {step}/{steps}")
                } else {
                    format!("image {}/{count}, step {step}/{steps}", index + 1)
                };
                progress.report(Progress { fraction, stage, preview: None });
                !cancel.is_cancelled()
            };
            let rgb = model
                .generate(merged.as_ref(), &params, &mut on_step)
                .map_err(CandleError::into_engine_error)?
                .ok_or(EngineError::Cancelled)?;
            let bytes = encode_png(&rgb, request.width, request.height)?;
            outputs.push(EngineOutput {
                bytes,
                mime: "image/png".to_owned(),
                width: Some(request.width),
                height: Some(request.height),
                seed: Some(image_seed),
                engine: None,
            });
        }
        Ok(outputs)
    }
}

/// A model's catalogue line: its family (from `model_index.json`, the second text encoder and
/// the scheduler's spacing) and its directory.
fn describe(path: &Path) -> String {
    let index: config::ModelIndex = config::read_json(&path.join("model_index.json")).unwrap_or_default();
    let sdxl = index.class_name.contains("XL") || path.join("text_encoder_2").exists();
    let spacing = config::read_json::<config::SchedulerJson>(&path.join("scheduler").join("scheduler_config.json"))
        .map(|s| s.timestep_spacing)
        .unwrap_or_default();
    let family = match (sdxl, spacing.as_str()) {
        // sdxl-turbo ships a trailing-spacing Euler-ancestral scheduler.
        (true, "trailing") => "SDXL-Turbo (512×512, guidance_scale 0, 1–4 steps, euler_a)",
        (true, _) => "Stable Diffusion XL (1024×1024)",
        (false, _) => "Stable Diffusion 1.x/2.x",
    };
    format!("{family}, diffusers directory {} on candle", path.display())
}

/// Depth-limited directory walk skipping hidden entries; `visit(path, is_dir)` returns
/// whether to descend into a directory.
fn walk(dir: &Path, depth: usize, visit: &mut dyn FnMut(&Path, bool) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    paths.sort();
    for path in paths {
        let is_dir = path.is_dir();
        if visit(&path, is_dir) && is_dir && depth < MAX_DEPTH {
            walk(&path, depth + 1, visit);
        }
    }
}

fn rel_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, EngineError> {
    let failed = |e: png::EncodingError| EngineError::Failed {
        code: "engine_error".to_owned(),
        message: format!("PNG encoding failed: {e}"),
        retryable: false,
    };
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(rgb).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(out)
}

impl GenerationEngine for CandleEngine {
    fn name(&self) -> &str {
        ENGINE_NAME
    }

    fn capabilities(&self) -> &EngineCapabilities {
        &self.capabilities
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.list().into_iter().map(|(name, path)| ModelInfo { description: describe(&path), name }).collect()
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
        if Kind::parse(&request.scheduler).is_none() {
            return Err(ValidationError::new("scheduler", format!("must be one of: {}", scheduler::NAMES.join(", "))));
        }
        caps.check_bounds(request)?;
        let (_, dir) = self.model_dir(request)?;
        // SDXL pipelines have a second text encoder; a LoRA naming one does not fit SD 1.x/2.x.
        let text_encoders = if dir.join("text_encoder_2").exists() { 2 } else { 1 };
        for (i, lora) in request.loras.iter().enumerate() {
            let field = format!("loras[{i}].name");
            let Some(path) = self.lora_path(&lora.name) else {
                return Err(ValidationError::new(
                    field,
                    format!("no LoRA {:?} in {}", lora.name, self.config.models_dir.display()),
                ));
            };
            let names = lora::tensor_names(&path).map_err(|e| ValidationError::new(field.clone(), e.to_string()))?;
            if let Some(why) = lora::incompatible(names.iter().map(String::as_str), text_encoders) {
                return Err(ValidationError::new(
                    field,
                    format!("LoRA {:?} cannot apply to this model: {why}", lora.name),
                ));
            }
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
            self.check(request).map_err(EngineError::Invalid)?;
            let request = request.clone();
            let engine = self.clone_handle();
            // A child token so that dropping this future also stops the blocking work.
            let work_cancel = cancel.child_token();
            let _stop_on_drop = work_cancel.clone().drop_guard();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let task =
                tokio::task::spawn_blocking(move || engine.generate_blocking(&request, &ChannelSink(tx), &work_cancel));
            while let Some(update) = rx.recv().await {
                progress.report(update);
            }
            task.await.unwrap_or_else(|e| {
                Err(EngineError::Failed {
                    code: "engine_error".to_owned(),
                    message: format!("the candle engine stopped unexpectedly: {e}"),
                    retryable: false,
                })
            })
        })
    }
}

impl CandleEngine {
    /// A second handle sharing the cache (the blocking task needs an owned engine).
    fn clone_handle(&self) -> Self {
        let listing = self.listing.lock().unwrap_or_else(PoisonError::into_inner).clone();
        Self {
            config: self.config.clone(),
            device: self.device.clone(),
            dtype: self.dtype,
            capabilities: self.capabilities.clone(),
            cache: self.cache.clone(),
            listing: Mutex::new(listing),
        }
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
