//! Talking-head video requests (`POST /api/generate/video`, job type `talking_head`): a still
//! portrait animated by speech through a SadTalker-compatible engine. The parameters are
//! SadTalker's own (`inference.py` / its gradio app), with its defaults and bounds.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ValidationError;
use crate::speech::SpeechRequest;

/// Largest `pose_style` (SadTalker ships 46 pose styles, 0–45).
pub const MAX_POSE_STYLE: u32 = 45;
/// Largest `expression_scale` (SadTalker's gradio slider stops at 3).
pub const MAX_EXPRESSION_SCALE: f32 = 3.0;
/// Largest `batch_size` (SadTalker's gradio slider stops at 10).
pub const MAX_BATCH_SIZE: u32 = 10;

/// How SadTalker prepares the source image (`--preprocess`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Preprocess {
    /// Crop to the face (SadTalker's default).
    #[default]
    Crop,
    /// Resize the whole image (for ID-photo-like inputs).
    Resize,
    /// Animate the face and paste it back into the full image.
    Full,
    /// Crop with an extended face area.
    Extcrop,
    /// Full image with an extended face area.
    Extfull,
}

impl Preprocess {
    /// The value SadTalker expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Preprocess::Crop => "crop",
            Preprocess::Resize => "resize",
            Preprocess::Full => "full",
            Preprocess::Extcrop => "extcrop",
            Preprocess::Extfull => "extfull",
        }
    }
}

/// Face restoration applied to the rendered frames (`--enhancer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
pub enum Enhancer {
    /// No restoration (SadTalker's default).
    #[default]
    #[serde(rename = "none")]
    None,
    /// GFPGAN.
    #[serde(rename = "gfpgan")]
    Gfpgan,
    /// RestoreFormer.
    #[serde(rename = "RestoreFormer")]
    RestoreFormer,
}

impl Enhancer {
    /// The value SadTalker expects (`none` = no `--enhancer` argument).
    pub fn as_str(self) -> &'static str {
        match self {
            Enhancer::None => "none",
            Enhancer::Gfpgan => "gfpgan",
            Enhancer::RestoreFormer => "RestoreFormer",
        }
    }
}

/// SadTalker's rendering parameters, resolved (every field set).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TalkingHeadParams {
    /// Image preparation.
    pub preprocess: Preprocess,
    /// Fewer head movements (`--still`).
    pub still: bool,
    /// Face restoration.
    pub enhancer: Enhancer,
    /// Head pose style, 0–45.
    pub pose_style: u32,
    /// Strength of the expression motion, 0–3 (1 = as the audio drives it).
    #[serde(serialize_with = "crate::decimal::f32")]
    pub expression_scale: f32,
    /// Face render resolution: 256 or 512 pixels.
    pub size: u32,
    /// Frames rendered per batch on the engine's GPU, 1–10.
    pub batch_size: u32,
}

impl Default for TalkingHeadParams {
    fn default() -> Self {
        Self {
            preprocess: Preprocess::Crop,
            still: false,
            enhancer: Enhancer::None,
            pose_style: 0,
            expression_scale: 1.0,
            size: 256,
            batch_size: 2,
        }
    }
}

/// A talking-head request. The portrait is `image`, or the persona's avatar; the voice is an
/// uploaded `audio` item or `text` spoken with the persona's voice defaults. Every field is
/// honoured by the engine or refused with a 422 naming it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TalkingHeadRequest {
    /// Media id of one of your images (the face to animate); the persona's avatar when absent.
    #[serde(default)]
    pub image: Option<Uuid>,
    /// Media id of one of your audio items (the speech). Exactly one of `audio` and `text`.
    #[serde(default)]
    pub audio: Option<Uuid>,
    /// Text to speak first (1–5000 characters, espeak-ng or piper with the persona's voice
    /// defaults). Exactly one of `audio` and `text`.
    #[serde(default)]
    pub text: Option<String>,
    /// Voice for `text` (default: the persona's, else `en`).
    #[serde(default)]
    pub voice: Option<String>,
    /// Persona: its avatar is the default image and its voice defaults speak `text`.
    #[serde(default)]
    pub persona_id: Option<Uuid>,
    /// `crop` (default), `resize`, `full`, `extcrop` or `extfull`.
    #[serde(default)]
    pub preprocess: Option<Preprocess>,
    /// Fewer head movements (default false).
    #[serde(default)]
    pub still: Option<bool>,
    /// `none` (default), `gfpgan` or `RestoreFormer`.
    #[serde(default)]
    pub enhancer: Option<Enhancer>,
    /// Head pose style, 0–45 (default 0).
    #[serde(default)]
    pub pose_style: Option<u32>,
    /// Expression strength, 0–3 (default 1).
    #[serde(default, serialize_with = "crate::decimal::opt_f32")]
    pub expression_scale: Option<f32>,
    /// Face render size: 256 (default) or 512.
    #[serde(default)]
    pub size: Option<u32>,
    /// Frames per GPU batch, 1–10 (default 2).
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// Talking-head engine name; the first available one when absent.
    #[serde(default)]
    pub engine: Option<String>,
}

impl TalkingHeadRequest {
    /// Checks the input choice and the parameter bounds; resolves the parameters.
    pub fn validate(&self) -> Result<TalkingHeadParams, ValidationError> {
        match (&self.audio, &self.text) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new("text", "send either `audio` or `text`, not both"));
            }
            (None, None) => {
                return Err(ValidationError::new("audio", "send `audio` (a media id) or `text` to speak"));
            }
            (Some(_), None) if self.voice.is_some() => {
                return Err(ValidationError::new("voice", "only applies to `text`"));
            }
            _ => {}
        }
        let d = TalkingHeadParams::default();
        let params = TalkingHeadParams {
            preprocess: self.preprocess.unwrap_or(d.preprocess),
            still: self.still.unwrap_or(d.still),
            enhancer: self.enhancer.unwrap_or(d.enhancer),
            pose_style: self.pose_style.unwrap_or(d.pose_style),
            expression_scale: self.expression_scale.unwrap_or(d.expression_scale),
            size: self.size.unwrap_or(d.size),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
        };
        if params.pose_style > MAX_POSE_STYLE {
            return Err(ValidationError::new("pose_style", format!("must be between 0 and {MAX_POSE_STYLE}")));
        }
        if !params.expression_scale.is_finite() || !(0.0..=MAX_EXPRESSION_SCALE).contains(&params.expression_scale) {
            return Err(ValidationError::new(
                "expression_scale",
                format!("must be between 0 and {MAX_EXPRESSION_SCALE}"),
            ));
        }
        if ![256, 512].contains(&params.size) {
            return Err(ValidationError::new("size", "must be 256 or 512"));
        }
        if !(1..=MAX_BATCH_SIZE).contains(&params.batch_size) {
            return Err(ValidationError::new("batch_size", format!("must be between 1 and {MAX_BATCH_SIZE}")));
        }
        if let Some(engine) = &self.engine
            && engine.trim().is_empty()
        {
            return Err(ValidationError::new("engine", "must not be empty"));
        }
        Ok(params)
    }
}

/// What a `talking_head` job stores and its worker runs: inputs resolved to media ids (or
/// speech to synthesise first) and parameters resolved, so a queued job never changes meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TalkingHeadJob {
    /// The portrait (an image item of the owner).
    pub image: Uuid,
    /// The speech (an audio item of the owner), when not synthesised.
    #[serde(default)]
    pub audio: Option<Uuid>,
    /// Speech to synthesise (persona defaults merged, defaults resolved), when no `audio`.
    #[serde(default)]
    pub speech: Option<SpeechRequest>,
    /// SadTalker parameters.
    pub params: TalkingHeadParams,
    /// Whether the client named the engine (then it does not fail over to another one).
    #[serde(default)]
    pub engine_pinned: bool,
    /// Persona, when one was given.
    #[serde(default)]
    pub persona_id: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: serde_json::Value) -> TalkingHeadRequest {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults_are_sadtalkers() {
        let id = Uuid::nil();
        let p = req(serde_json::json!({ "image": id, "audio": id })).validate().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p, TalkingHeadParams::default());
        assert_eq!((p.preprocess.as_str(), p.enhancer.as_str(), p.size), ("crop", "none", 256));
        let p = req(serde_json::json!({ "text": "hi", "enhancer": "RestoreFormer", "preprocess": "extfull" }))
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.enhancer, p.preprocess), (Enhancer::RestoreFormer, Preprocess::Extfull));
    }

    #[test]
    fn errors_name_the_field() {
        let id = Uuid::nil();
        let field = |v: serde_json::Value| req(v).validate().err().map(|e| e.field);
        assert_eq!(field(serde_json::json!({ "image": id })), Some("audio".into()));
        assert_eq!(field(serde_json::json!({ "audio": id, "text": "x" })), Some("text".into()));
        assert_eq!(field(serde_json::json!({ "audio": id, "voice": "en" })), Some("voice".into()));
        assert_eq!(field(serde_json::json!({ "audio": id, "pose_style": 46 })), Some("pose_style".into()));
        assert_eq!(field(serde_json::json!({ "audio": id, "expression_scale": 3.5 })), Some("expression_scale".into()));
        assert_eq!(field(serde_json::json!({ "audio": id, "size": 384 })), Some("size".into()));
        assert_eq!(field(serde_json::json!({ "audio": id, "batch_size": 0 })), Some("batch_size".into()));
        assert_eq!(field(serde_json::json!({ "audio": id, "engine": " " })), Some("engine".into()));
        assert!(serde_json::from_value::<TalkingHeadRequest>(serde_json::json!({ "audio": id, "x": 1 })).is_err());
    }
}
