//! Personas: reusable creative identities whose defaults and prompt template are merged into
//! every job that names them. [`merge_image_request`] is the one merge function.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ValidationError;
use crate::job::{ImageRequest, LoraRef};

/// How a persona picks seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum SeedPolicy {
    /// A fresh random seed per job (unless the request gives one).
    #[default]
    Random,
    /// Always this seed (unless the request gives one): a stable "look".
    Fixed {
        /// The seed.
        seed: u64,
    },
}

/// Image defaults of a persona; every field optional (absent = the engine's default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ImageDefaults {
    /// Model.
    #[serde(default)]
    pub model_name: Option<String>,
    /// Engine.
    #[serde(default)]
    pub engine: Option<String>,
    /// Width.
    #[serde(default)]
    pub width: Option<u32>,
    /// Height.
    #[serde(default)]
    pub height: Option<u32>,
    /// Steps.
    #[serde(default)]
    pub num_inference_steps: Option<u32>,
    /// Guidance.
    #[serde(default, serialize_with = "crate::decimal::opt_f32")]
    pub guidance_scale: Option<f32>,
    /// Scheduler.
    #[serde(default)]
    pub scheduler: Option<String>,
    /// LoRAs with weights.
    #[serde(default)]
    pub loras: Vec<LoraRef>,
    /// Seed policy.
    #[serde(default)]
    pub seed_policy: SeedPolicy,
}

/// Voice defaults (used by text-to-speech jobs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct VoiceDefaults {
    /// TTS engine.
    #[serde(default)]
    pub engine: Option<String>,
    /// Voice name.
    #[serde(default)]
    pub voice: Option<String>,
    /// Speaking rate multiplier (0.5–2).
    #[serde(default, serialize_with = "crate::decimal::opt_f32")]
    pub rate: Option<f32>,
    /// Pitch shift in semitones (−12–12).
    #[serde(default, serialize_with = "crate::decimal::opt_f32")]
    pub pitch: Option<f32>,
}

/// Video defaults (used by video jobs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct VideoDefaults {
    /// Frames per second (1–60).
    #[serde(default)]
    pub fps: Option<u32>,
    /// Clip duration, seconds (1–600).
    #[serde(default)]
    pub duration_secs: Option<u32>,
    /// Style keyword.
    #[serde(default)]
    pub style: Option<String>,
    /// The persona's portrait: media id of one of the owner's images, the default face of its
    /// talking-head videos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<uuid::Uuid>,
}

/// The editable content of a persona (what each version snapshots).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonaSpec {
    /// Display name (1–100 characters).
    pub name: String,
    /// Description (≤ 2000 characters).
    #[serde(default)]
    pub description: String,
    /// Prompt template; `{prompt}` is replaced by the job's prompt (appended after `, ` when absent).
    #[serde(default)]
    pub prompt_template: String,
    /// Negative prompt prepended to the job's.
    #[serde(default)]
    pub negative_prompt: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether the persona produces NSFW content.
    #[serde(default)]
    pub nsfw: bool,
    /// Image defaults.
    #[serde(default)]
    pub image: ImageDefaults,
    /// Voice defaults.
    #[serde(default)]
    pub voice: VoiceDefaults,
    /// Video defaults.
    #[serde(default)]
    pub video: VideoDefaults,
}

impl PersonaSpec {
    /// Checks lengths and ranges; field names are the JSON paths.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let name = self.name.trim().chars().count();
        if !(1..=100).contains(&name) {
            return Err(ValidationError::new("name", "must be 1 to 100 characters"));
        }
        if self.description.chars().count() > 2000 {
            return Err(ValidationError::new("description", "must be at most 2000 characters"));
        }
        if self.prompt_template.chars().count() > 2000 {
            return Err(ValidationError::new("prompt_template", "must be at most 2000 characters"));
        }
        if self.prompt_template.matches("{prompt}").count() > 1 {
            return Err(ValidationError::new("prompt_template", "may contain `{prompt}` at most once"));
        }
        if self.negative_prompt.chars().count() > 2000 {
            return Err(ValidationError::new("negative_prompt", "must be at most 2000 characters"));
        }
        if self.tags.len() > 50 || self.tags.iter().any(|t| t.trim().is_empty() || t.chars().count() > 50) {
            return Err(ValidationError::new("tags", "at most 50 tags of 1–50 characters"));
        }
        for (field, v) in [("image.width", self.image.width), ("image.height", self.image.height)] {
            if let Some(v) = v
                && (!(64..=2048).contains(&v) || v % 8 != 0)
            {
                return Err(ValidationError::new(field, "must be a multiple of 8 between 64 and 2048"));
            }
        }
        if self.image.num_inference_steps.is_some_and(|s| !(1..=150).contains(&s)) {
            return Err(ValidationError::new("image.num_inference_steps", "must be between 1 and 150"));
        }
        if self.image.guidance_scale.is_some_and(|g| !g.is_finite() || !(0.0..=30.0).contains(&g)) {
            return Err(ValidationError::new("image.guidance_scale", "must be between 0 and 30"));
        }
        for (i, l) in self.image.loras.iter().enumerate() {
            if l.name.trim().is_empty() || !l.weight.is_finite() || !(-2.0..=2.0).contains(&l.weight) {
                return Err(ValidationError::new(
                    format!("image.loras[{i}]"),
                    "needs a name and a weight between -2 and 2",
                ));
            }
        }
        if self.voice.rate.is_some_and(|r| !r.is_finite() || !(0.5..=2.0).contains(&r)) {
            return Err(ValidationError::new("voice.rate", "must be between 0.5 and 2"));
        }
        if self.voice.pitch.is_some_and(|p| !p.is_finite() || !(-12.0..=12.0).contains(&p)) {
            return Err(ValidationError::new("voice.pitch", "must be between -12 and 12"));
        }
        if self.video.fps.is_some_and(|f| !(1..=60).contains(&f)) {
            return Err(ValidationError::new("video.fps", "must be between 1 and 60"));
        }
        if self.video.duration_secs.is_some_and(|d| !(1..=600).contains(&d)) {
            return Err(ValidationError::new("video.duration_secs", "must be between 1 and 600"));
        }
        Ok(())
    }
}

/// Merges a persona into an image request.
///
/// * Prompt: the template with `{prompt}` replaced by the request's prompt; a template without
///   the slot gets `, <prompt>` appended; an empty template leaves the prompt alone.
/// * Negative prompt: the persona's, then the request's, joined by `, ` (empty parts skipped).
/// * Parameters (size, steps, guidance, scheduler, model, engine): the persona's default applies
///   only where the request did not set the field (`explicit` lists the keys the client sent).
/// * LoRAs: the union by name; for a name in both, the request's weight wins.
/// * Seed: the request's; else the persona's fixed seed; else left for the server to draw.
/// * Image-to-image (`init_image`, `strength`): always the request's; a persona has none.
pub fn merge_image_request(spec: &PersonaSpec, mut request: ImageRequest, explicit: &[&str]) -> ImageRequest {
    let given = |k: &str| explicit.contains(&k);
    let template = spec.prompt_template.trim();
    request.prompt = if template.is_empty() {
        request.prompt
    } else if template.contains("{prompt}") {
        template.replace("{prompt}", request.prompt.trim())
    } else {
        format!("{template}, {}", request.prompt.trim())
    };
    request.negative_prompt = [spec.negative_prompt.trim(), request.negative_prompt.trim()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    let d = &spec.image;
    if !given("width")
        && let Some(v) = d.width
    {
        request.width = v;
    }
    if !given("height")
        && let Some(v) = d.height
    {
        request.height = v;
    }
    if !given("num_inference_steps")
        && let Some(v) = d.num_inference_steps
    {
        request.num_inference_steps = v;
    }
    if !given("guidance_scale")
        && let Some(v) = d.guidance_scale
    {
        request.guidance_scale = v;
    }
    if !given("scheduler")
        && let Some(v) = &d.scheduler
    {
        request.scheduler = v.clone();
    }
    if request.model_name.is_none() {
        request.model_name = d.model_name.clone();
    }
    if request.engine.is_none() {
        request.engine = d.engine.clone();
    }
    let mut loras = d.loras.clone();
    for l in request.loras {
        match loras.iter_mut().find(|p| p.name == l.name) {
            Some(existing) => existing.weight = l.weight,
            None => loras.push(l),
        }
    }
    request.loras = loras;
    if request.seed.is_none()
        && let SeedPolicy::Fixed { seed } = d.seed_policy
    {
        request.seed = Some(seed);
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PersonaSpec {
        PersonaSpec {
            name: "Noir".into(),
            description: String::new(),
            prompt_template: "film noir still of {prompt}, high contrast".into(),
            negative_prompt: "colour".into(),
            tags: vec![],
            nsfw: false,
            image: ImageDefaults {
                width: Some(768),
                num_inference_steps: Some(40),
                scheduler: Some("euler_a".into()),
                loras: vec![
                    LoraRef { name: "grain".into(), weight: 0.5 },
                    LoraRef { name: "noir".into(), weight: 0.8 },
                ],
                seed_policy: SeedPolicy::Fixed { seed: 1234 },
                ..ImageDefaults::default()
            },
            voice: VoiceDefaults::default(),
            video: VideoDefaults::default(),
        }
    }

    fn request(json: serde_json::Value) -> (ImageRequest, Vec<String>) {
        let keys = json.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        (serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}")), keys)
    }

    fn merge(json: serde_json::Value) -> ImageRequest {
        let (req, keys) = request(json);
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        merge_image_request(&spec(), req, &keys)
    }

    #[test]
    fn template_slot_negative_and_defaults() {
        let r = merge(serde_json::json!({ "prompt": "a detective", "negative_prompt": "blurry" }));
        assert_eq!(r.prompt, "film noir still of a detective, high contrast");
        assert_eq!(r.negative_prompt, "colour, blurry");
        assert_eq!((r.width, r.height, r.num_inference_steps), (768, 1024, 40));
        assert_eq!(r.scheduler, "euler_a");
        assert_eq!(r.seed, Some(1234));
    }

    #[test]
    fn request_fields_win() {
        let r = merge(serde_json::json!({
            "prompt": "x", "width": 512, "scheduler": "ddim", "seed": 9,
            "loras": [{ "name": "noir", "weight": 0.2 }, { "name": "extra", "weight": 1.0 }]
        }));
        assert_eq!((r.width, r.scheduler.as_str(), r.seed), (512, "ddim", Some(9)));
        let loras: Vec<(String, f32)> = r.loras.iter().map(|l| (l.name.clone(), l.weight)).collect();
        assert_eq!(loras, vec![("grain".into(), 0.5), ("noir".into(), 0.2), ("extra".into(), 1.0)]);
        // An explicit value equal to the serde default still wins over the persona.
        let r = merge(serde_json::json!({ "prompt": "x", "num_inference_steps": 30 }));
        assert_eq!(r.num_inference_steps, 30);
    }

    #[test]
    fn img2img_fields_are_kept() {
        let init = uuid::Uuid::now_v7();
        let r = merge(serde_json::json!({ "prompt": "x", "init_image": init, "strength": 0.4 }));
        assert_eq!((r.init_image, r.strength), (Some(init), Some(0.4)));
        let r = merge(serde_json::json!({ "prompt": "x" }));
        assert_eq!((r.init_image, r.strength), (None, None));
    }

    #[test]
    fn template_without_slot_and_empty() {
        let mut s = spec();
        s.prompt_template = "watercolour".into();
        let (req, _) = request(serde_json::json!({ "prompt": "a cat" }));
        assert_eq!(merge_image_request(&s, req, &[]).prompt, "watercolour, a cat");
        s.prompt_template = String::new();
        s.negative_prompt = String::new();
        let (req, _) = request(serde_json::json!({ "prompt": "a cat" }));
        let r = merge_image_request(&s, req, &[]);
        assert_eq!((r.prompt.as_str(), r.negative_prompt.as_str()), ("a cat", ""));
    }

    #[test]
    fn spec_validation_names_fields() {
        let mut s = spec();
        s.image.width = Some(100);
        assert_eq!(s.validate().err().map(|e| e.field), Some("image.width".into()));
        let mut s = spec();
        s.prompt_template = "{prompt} and {prompt}".into();
        assert_eq!(s.validate().err().map(|e| e.field), Some("prompt_template".into()));
        assert!(spec().validate().is_ok());
    }
}
