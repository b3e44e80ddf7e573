//! Generation jobs: types, statuses, the one state machine, request validation, back-off.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ValidationError;

/// What a job produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    /// 1–N images from a prompt.
    Image,
    /// A ZIP archive of library items (run by the worker itself, engine `internal`).
    Export,
    /// A model file fetched into the model directory (run by the worker itself, engine `internal`).
    ModelDownload,
    /// Speech from text (run by the worker itself: espeak-ng or piper).
    Tts,
    /// An MP4 rendered from a video-studio timeline (run by the worker itself with ffmpeg).
    Storyboard,
    /// A fast low-resolution preview of a timeline (run by the worker itself with ffmpeg).
    VideoProxy,
    /// A talking-head MP4 from a portrait and speech (a SadTalker-compatible remote engine).
    TalkingHead,
}

impl JobType {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Image => "image",
            JobType::Export => "export",
            JobType::ModelDownload => "model_download",
            JobType::Tts => "tts",
            JobType::Storyboard => "storyboard",
            JobType::VideoProxy => "video_proxy",
            JobType::TalkingHead => "talking_head",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<JobType> {
        match s {
            "image" => Some(JobType::Image),
            "export" => Some(JobType::Export),
            "model_download" => Some(JobType::ModelDownload),
            "tts" => Some(JobType::Tts),
            "storyboard" => Some(JobType::Storyboard),
            "video_proxy" => Some(JobType::VideoProxy),
            "talking_head" => Some(JobType::TalkingHead),
            _ => None,
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker that holds its lease.
    Running,
    /// Failed with a retryable error; waiting for its back-off (`run_after`) to pass.
    Retrying,
    /// Finished with outputs.
    Succeeded,
    /// Finished without outputs; `error` says why.
    Failed,
    /// Stopped on request; partial outputs discarded.
    Cancelled,
}

impl JobStatus {
    /// Every status.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Retrying => "retrying",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<JobStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether no further transition can happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// Something that happens to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    /// A worker takes it (from queued, or from retrying once its back-off passed).
    Claim,
    /// The engine produced outputs and they were stored.
    Succeed,
    /// The engine failed; `retryable` errors go back to the queue while attempts remain.
    Fail {
        /// Whether another attempt may succeed.
        retryable: bool,
    },
    /// Cancel requested (queued/retrying: at once; running: when the worker stops).
    Cancel,
    /// The worker's lease ran out (crash, network partition): counts as a retryable failure.
    LeaseExpired,
    /// The worker gives the job back unfinished (shutdown grace exceeded): not a failure.
    Release,
}

/// An event that does not apply to the current status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot apply {event:?} to a {from:?} job")]
pub struct InvalidTransition {
    /// Status at the time.
    pub from: JobStatus,
    /// The refused event.
    pub event: JobEvent,
}

/// The job state machine: every status change in the system goes through this function.
/// `attempt` is the number of claims so far (the running attempt included).
pub fn next_status(
    from: JobStatus,
    event: JobEvent,
    attempt: i32,
    max_attempts: i32,
) -> Result<JobStatus, InvalidTransition> {
    use JobEvent as E;
    use JobStatus as S;
    let to = match (from, event) {
        (S::Queued | S::Retrying, E::Claim) => S::Running,
        (S::Running, E::Succeed) => S::Succeeded,
        (S::Running, E::Fail { retryable: true } | E::LeaseExpired) if attempt < max_attempts => S::Retrying,
        (S::Running, E::Fail { .. } | E::LeaseExpired) => S::Failed,
        (S::Queued | S::Retrying | S::Running, E::Cancel) => S::Cancelled,
        (S::Running, E::Release) => S::Queued,
        _ => return Err(InvalidTransition { from, event }),
    };
    Ok(to)
}

/// Delay before retry number `attempt` (1-based): 2 s, 4 s, 8 s … capped at 5 minutes.
pub fn backoff_secs(attempt: i32) -> u64 {
    let exp = u32::try_from(attempt.clamp(1, 20) - 1).unwrap_or(0);
    2u64.saturating_pow(exp + 1).min(300)
}

/// Priority class: interactive work is claimed before batch work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum PriorityClass {
    /// Someone is waiting for it (the Generate screen).
    #[default]
    Interactive,
    /// Bulk work (batches, exports).
    Batch,
}

impl PriorityClass {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PriorityClass::Interactive => "interactive",
            PriorityClass::Batch => "batch",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<PriorityClass> {
        match s {
            "interactive" => Some(PriorityClass::Interactive),
            "batch" => Some(PriorityClass::Batch),
            _ => None,
        }
    }

    /// Sort rank in the claim query (lower first).
    pub fn rank(self) -> i32 {
        match self {
            PriorityClass::Interactive => 0,
            PriorityClass::Batch => 1,
        }
    }
}

/// A LoRA to apply with its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoraRef {
    /// LoRA name from the model catalogue.
    pub name: String,
    /// Strength, -2.0 ..= 2.0.
    #[serde(default = "default_lora_weight", serialize_with = "crate::decimal::f32")]
    pub weight: f32,
}

fn default_lora_weight() -> f32 {
    1.0
}

/// An image generation request (`POST /api/generate/single`). Every field is honoured by the
/// engine that runs it, or refused with a 422 naming the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageRequest {
    /// What to draw (1–2000 characters).
    pub prompt: String,
    /// What to avoid (≤ 2000 characters).
    #[serde(default)]
    pub negative_prompt: String,
    /// Width in pixels (64–2048, multiple of 8).
    #[serde(default = "default_size")]
    pub width: u32,
    /// Height in pixels (64–2048, multiple of 8).
    #[serde(default = "default_size")]
    pub height: u32,
    /// Denoising steps (1–150).
    #[serde(default = "default_steps")]
    pub num_inference_steps: u32,
    /// Classifier-free guidance (0–30).
    #[serde(default = "default_guidance", serialize_with = "crate::decimal::f32")]
    pub guidance_scale: f32,
    /// Images to produce (1–8).
    #[serde(default = "default_images")]
    pub num_images: u32,
    /// Seed; random when absent (the chosen one is recorded so results can be reproduced).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Model name; the default model of the chosen engine when absent.
    #[serde(default)]
    pub model_name: Option<String>,
    /// Engine name; chosen from the model when absent.
    #[serde(default)]
    pub engine: Option<String>,
    /// Sampler/scheduler (`ddim`, `euler`, `euler_a`, `dpmpp_2m`).
    #[serde(default = "default_scheduler")]
    pub scheduler: String,
    /// LoRAs with weights.
    #[serde(default)]
    pub loras: Vec<LoraRef>,
    /// Persona whose defaults and prompt template apply.
    #[serde(default)]
    pub persona_id: Option<uuid::Uuid>,
    /// Priority class (single: interactive by default).
    #[serde(default)]
    pub priority: Option<PriorityClass>,
    /// Free client metadata kept with the job (≤ 16 KiB as JSON).
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Image-to-image: id of an image in the caller's library to start from (resized to
    /// `width`×`height`); only engines whose capabilities have `supports_img2img` accept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_image: Option<uuid::Uuid>,
    /// Image-to-image denoising strength, 0 < s ≤ 1 (1 ignores the init image, small values stay
    /// close to it); 0.75 when `init_image` is set without it. Requires `init_image`.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "crate::decimal::opt_f32")]
    pub strength: Option<f32>,
}

fn default_size() -> u32 {
    1024
}
fn default_steps() -> u32 {
    30
}
fn default_guidance() -> f32 {
    7.5
}
fn default_images() -> u32 {
    1
}
fn default_scheduler() -> String {
    "ddim".to_owned()
}

/// Denoising strength of an image-to-image request that does not give one.
pub const DEFAULT_STRENGTH: f32 = 0.75;

/// Longest prompt, characters.
pub const MAX_PROMPT_CHARS: usize = 2000;
/// Largest metadata object, bytes of JSON.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

impl ImageRequest {
    /// The denoising strength of an image-to-image request (`None` for text-to-image).
    pub fn img2img_strength(&self) -> Option<f32> {
        self.init_image.map(|_| self.strength.unwrap_or(DEFAULT_STRENGTH))
    }

    /// Engine-independent checks; `prefix` is prepended to field names (`requests[2].`).
    pub fn validate(&self, prefix: &str) -> Result<(), ValidationError> {
        let f = |name: &str| format!("{prefix}{name}");
        let prompt_chars = self.prompt.trim().chars().count();
        if prompt_chars == 0 {
            return Err(ValidationError::new(f("prompt"), "must not be empty"));
        }
        if self.prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(ValidationError::new(f("prompt"), format!("must be at most {MAX_PROMPT_CHARS} characters")));
        }
        if self.negative_prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(ValidationError::new(
                f("negative_prompt"),
                format!("must be at most {MAX_PROMPT_CHARS} characters"),
            ));
        }
        for (name, value) in [("width", self.width), ("height", self.height)] {
            if !(64..=2048).contains(&value) || value % 8 != 0 {
                return Err(ValidationError::new(f(name), "must be a multiple of 8 between 64 and 2048"));
            }
        }
        if !(1..=150).contains(&self.num_inference_steps) {
            return Err(ValidationError::new(f("num_inference_steps"), "must be between 1 and 150"));
        }
        if !self.guidance_scale.is_finite() || !(0.0..=30.0).contains(&self.guidance_scale) {
            return Err(ValidationError::new(f("guidance_scale"), "must be between 0 and 30"));
        }
        if !(1..=8).contains(&self.num_images) {
            return Err(ValidationError::new(f("num_images"), "must be between 1 and 8"));
        }
        if self.scheduler.trim().is_empty() {
            return Err(ValidationError::new(f("scheduler"), "must not be empty"));
        }
        for (i, lora) in self.loras.iter().enumerate() {
            if lora.name.trim().is_empty() {
                return Err(ValidationError::new(f(&format!("loras[{i}].name")), "must not be empty"));
            }
            if !lora.weight.is_finite() || !(-2.0..=2.0).contains(&lora.weight) {
                return Err(ValidationError::new(f(&format!("loras[{i}].weight")), "must be between -2 and 2"));
            }
        }
        if let Some(strength) = self.strength {
            if self.init_image.is_none() {
                return Err(ValidationError::new(f("strength"), "applies only with `init_image` (image-to-image)"));
            }
            if !strength.is_finite() || strength <= 0.0 || strength > 1.0 {
                return Err(ValidationError::new(f("strength"), "must be greater than 0 and at most 1"));
            }
        }
        if let Some(meta) = &self.metadata {
            let size = serde_json::to_vec(meta).map(|v| v.len()).unwrap_or(usize::MAX);
            if size > MAX_METADATA_BYTES {
                return Err(ValidationError::new(
                    f("metadata"),
                    format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
                ));
            }
        }
        Ok(())
    }
}

/// Why a job failed, as stored and shown to its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobError {
    /// Stable code (`engine_error`, `lease_expired`, `max_attempts_exceeded`…).
    pub code: String,
    /// Explanation.
    pub message: String,
    /// Whether another attempt could succeed.
    pub retryable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobEvent as E;
    use JobStatus as S;

    #[test]
    fn state_machine() {
        assert_eq!(next_status(S::Queued, E::Claim, 0, 3), Ok(S::Running));
        assert_eq!(next_status(S::Retrying, E::Claim, 1, 3), Ok(S::Running));
        assert_eq!(next_status(S::Running, E::Succeed, 1, 3), Ok(S::Succeeded));
        assert_eq!(next_status(S::Running, E::Fail { retryable: true }, 1, 3), Ok(S::Retrying));
        assert_eq!(next_status(S::Running, E::Fail { retryable: true }, 3, 3), Ok(S::Failed));
        assert_eq!(next_status(S::Running, E::Fail { retryable: false }, 1, 3), Ok(S::Failed));
        assert_eq!(next_status(S::Running, E::LeaseExpired, 2, 3), Ok(S::Retrying));
        assert_eq!(next_status(S::Running, E::LeaseExpired, 3, 3), Ok(S::Failed));
        assert_eq!(next_status(S::Running, E::Release, 1, 3), Ok(S::Queued));
        for from in [S::Queued, S::Retrying, S::Running] {
            assert_eq!(next_status(from, E::Cancel, 1, 3), Ok(S::Cancelled));
        }
        for terminal in [S::Succeeded, S::Failed, S::Cancelled] {
            for event in [E::Claim, E::Succeed, E::Cancel, E::LeaseExpired, E::Release, E::Fail { retryable: true }] {
                assert!(next_status(terminal, event, 1, 3).is_err(), "{terminal:?} {event:?}");
            }
        }
        assert!(next_status(S::Queued, E::Succeed, 0, 3).is_err());
        assert!(next_status(S::Running, E::Claim, 1, 3).is_err());
    }

    #[test]
    fn decimal_fields_serialize_as_sent() -> Result<(), serde_json::Error> {
        let sent = serde_json::json!({
            "prompt": "p", "guidance_scale": 7.3, "strength": 0.4, "loras": [{"name": "l", "weight": 0.65}]
        });
        let request: ImageRequest = serde_json::from_value(sent)?;
        let back = serde_json::to_value(&request)?;
        assert_eq!(back["guidance_scale"], 7.3);
        assert_eq!(back["strength"], 0.4);
        assert_eq!(back["loras"][0]["weight"], 0.65);
        // And what is stored reads back to the same request.
        assert_eq!(serde_json::from_value::<ImageRequest>(back)?, request);
        Ok(())
    }

    #[test]
    fn backoff_schedule() {
        let schedule: Vec<u64> = (1..=10).map(backoff_secs).collect();
        assert_eq!(schedule, vec![2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    fn request() -> ImageRequest {
        serde_json::from_value(serde_json::json!({ "prompt": "a red fox" })).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn request_defaults_and_validation() {
        let r = request();
        assert_eq!((r.width, r.height, r.num_images, r.num_inference_steps), (1024, 1024, 1, 30));
        assert!(r.validate("").is_ok());
        let field = |r: ImageRequest| r.validate("requests[1].").err().map(|e| e.field);
        assert_eq!(field(ImageRequest { width: 100, ..request() }), Some("requests[1].width".into()));
        assert_eq!(field(ImageRequest { num_images: 9, ..request() }), Some("requests[1].num_images".into()));
        assert_eq!(field(ImageRequest { prompt: " ".into(), ..request() }), Some("requests[1].prompt".into()));
        let lora = LoraRef { name: "x".into(), weight: 5.0 };
        assert_eq!(field(ImageRequest { loras: vec![lora], ..request() }), Some("requests[1].loras[0].weight".into()));
    }

    #[test]
    fn img2img_fields() {
        let init = Some(uuid::Uuid::nil());
        let field = |r: ImageRequest| r.validate("requests[0].").err().map(|e| e.field);
        assert_eq!(field(ImageRequest { strength: Some(0.5), ..request() }), Some("requests[0].strength".into()));
        for bad in [0.0, -0.1, 1.01, f32::NAN] {
            let r = ImageRequest { init_image: init, strength: Some(bad), ..request() };
            assert_eq!(field(r), Some("requests[0].strength".into()), "{bad}");
        }
        for good in [0.01, 0.5, 1.0] {
            assert!(ImageRequest { init_image: init, strength: Some(good), ..request() }.validate("").is_ok());
        }
        let r = ImageRequest { init_image: init, ..request() };
        assert!(r.validate("").is_ok());
        assert_eq!(r.img2img_strength(), Some(DEFAULT_STRENGTH));
        assert_eq!(request().img2img_strength(), None);
        // Absent fields stay out of the stored request (text-to-image requests are unchanged).
        let json = serde_json::to_value(request()).unwrap_or_default();
        assert!(json.get("init_image").is_none() && json.get("strength").is_none());
        let parsed: ImageRequest = serde_json::from_value(
            serde_json::json!({ "prompt": "p", "init_image": uuid::Uuid::nil(), "strength": 0.3 }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((parsed.init_image, parsed.strength), (init, Some(0.3)));
    }
}
