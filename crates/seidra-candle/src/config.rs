//! Diffusers JSON configs (`model_index.json`, `unet/config.json`, `vae/config.json`,
//! `text_encoder{,_2}/config.json`, `scheduler/scheduler_config.json`) mapped to candle's config
//! structs, so one loader serves a real SD 1.5 / 2.1 / SDXL / SDXL-Turbo directory and the tiny
//! test models.

use std::path::Path;

use candle_transformers::models::stable_diffusion::{unet_2d, vae};
use serde::{Deserialize, Serialize};

use crate::CandleError;

/// An integer or a per-block list of integers (`attention_head_dim`, `transformer_layers_per_block`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    /// Same value for every block.
    One(usize),
    /// One value per down block.
    Each(Vec<usize>),
}

impl PerBlock {
    fn get(&self, i: usize) -> usize {
        match self {
            Self::One(v) => *v,
            Self::Each(v) => v.get(i).or(v.last()).copied().unwrap_or(1),
        }
    }
}

fn one() -> PerBlock {
    PerBlock::One(1)
}
fn eight() -> PerBlock {
    PerBlock::One(8)
}
fn four() -> usize {
    4
}
fn groups() -> usize {
    32
}
fn eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}
fn one_f() -> f64 {
    1.0
}
fn one_u() -> usize {
    1
}

/// `unet/config.json` (the fields the candle UNet uses).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnetJson {
    /// Channels per down block.
    pub block_out_channels: Vec<usize>,
    /// ResNet layers per block.
    pub layers_per_block: usize,
    /// Width of the text embeddings.
    pub cross_attention_dim: usize,
    /// Attention heads per block (diffusers' historical name).
    #[serde(default = "eight")]
    pub attention_head_dim: PerBlock,
    /// Transformer layers per attention block.
    #[serde(default = "one")]
    pub transformer_layers_per_block: PerBlock,
    /// Block kinds; `CrossAttnDownBlock2D` blocks get attention.
    pub down_block_types: Vec<String>,
    /// Latent channels in.
    #[serde(default = "four")]
    pub in_channels: usize,
    /// Latent channels out.
    #[serde(default = "four")]
    pub out_channels: usize,
    /// Group-norm groups.
    #[serde(default = "groups")]
    pub norm_num_groups: usize,
    /// Group-norm epsilon.
    #[serde(default = "eps")]
    pub norm_eps: f64,
    /// Timestep embedding layout.
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    /// Timestep embedding shift.
    #[serde(default)]
    pub freq_shift: f64,
    /// Padding of the downsampling convolutions.
    #[serde(default = "one_u")]
    pub downsample_padding: usize,
    /// Mid block output scale.
    #[serde(default = "one_f")]
    pub mid_block_scale_factor: f64,
    /// Whether inputs are centred.
    #[serde(default)]
    pub center_input_sample: bool,
    /// Linear (SD 2.x) or 1×1-conv (SD 1.x) projections in the transformers.
    #[serde(default)]
    pub use_linear_projection: bool,
    /// Native latent size.
    #[serde(default)]
    pub sample_size: Option<usize>,
    /// `text_time` for SDXL (pooled text embedding + size/crop ids added to the time embedding).
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    /// SDXL: width of the sinusoidal embedding of each of the six time ids (256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addition_time_embed_dim: Option<usize>,
    /// SDXL: input width of `add_embedding` (pooled width + 6 × `addition_time_embed_dim`, 2816).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_class_embeddings_input_dim: Option<usize>,
}

/// SDXL's `text_time` additional conditioning, as sized by `unet/config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextTime {
    /// Sinusoid width per time id.
    pub time_embed_dim: usize,
    /// `add_embedding` input width.
    pub input_dim: usize,
}

const UNET_CONFIG: &str = "unet/config.json";

impl UnetJson {
    /// candle's UNet config.
    pub fn to_candle(&self) -> Result<unet_2d::UNet2DConditionModelConfig, CandleError> {
        if self.block_out_channels.is_empty() || self.down_block_types.len() != self.block_out_channels.len() {
            return Err(CandleError::Model("unet/config.json: block_out_channels and down_block_types differ".into()));
        }
        self.text_time()?;
        let blocks = self
            .block_out_channels
            .iter()
            .zip(&self.down_block_types)
            .enumerate()
            .map(|(i, (&out_channels, kind))| unet_2d::BlockConfig {
                out_channels,
                use_cross_attn: kind.starts_with("CrossAttn").then(|| self.transformer_layers_per_block.get(i)),
                attention_head_dim: self.attention_head_dim.get(i),
            })
            .collect();
        Ok(unet_2d::UNet2DConditionModelConfig {
            center_input_sample: self.center_input_sample,
            flip_sin_to_cos: self.flip_sin_to_cos,
            freq_shift: self.freq_shift,
            blocks,
            layers_per_block: self.layers_per_block,
            downsample_padding: self.downsample_padding,
            mid_block_scale_factor: self.mid_block_scale_factor,
            norm_num_groups: self.norm_num_groups,
            norm_eps: self.norm_eps,
            cross_attention_dim: self.cross_attention_dim,
            sliced_attention_size: None,
            use_linear_projection: self.use_linear_projection,
        })
    }

    /// SDXL's `text_time` conditioning, `None` for SD 1.x/2.x UNets; other addition embeddings
    /// (Kandinsky's `image`, …) are refused.
    pub fn text_time(&self) -> Result<Option<TextTime>, CandleError> {
        match self.addition_embed_type.as_deref() {
            None => Ok(None),
            Some("text_time") => {
                let (Some(time_embed_dim), Some(input_dim)) =
                    (self.addition_time_embed_dim, self.projection_class_embeddings_input_dim)
                else {
                    return Err(CandleError::Model(format!(
                        "{UNET_CONFIG}: addition_embed_type \"text_time\" needs addition_time_embed_dim and \
                         projection_class_embeddings_input_dim"
                    )));
                };
                Ok(Some(TextTime { time_embed_dim, input_dim }))
            }
            Some(other) => Err(CandleError::Unsupported(format!(
                "{UNET_CONFIG}: addition_embed_type {other:?} is not supported (only SDXL's \"text_time\")"
            ))),
        }
    }

    /// Width of the time embedding (4 × the first block's channels, as in diffusers).
    pub fn time_embed_dim(&self) -> usize {
        self.block_out_channels.first().copied().unwrap_or(0) * 4
    }
}

fn scaling() -> f64 {
    0.18215
}

/// `vae/config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VaeJson {
    /// Channels per level (the image is `2^(levels-1)` times the latent).
    pub block_out_channels: Vec<usize>,
    /// ResNet layers per block.
    pub layers_per_block: usize,
    /// Latent channels.
    #[serde(default = "four")]
    pub latent_channels: usize,
    /// Group-norm groups.
    #[serde(default = "groups")]
    pub norm_num_groups: usize,
    /// Latents are divided by this before decoding (0.18215 for SD 1.x/2.x, 0.13025 for SDXL).
    #[serde(default = "scaling")]
    pub scaling_factor: f64,
    /// Whether the 1×1 quantisation convolution exists.
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    /// Whether the 1×1 post-quantisation convolution exists.
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    /// Decode in f32 even when the rest runs in f16 (SDXL's VAE overflows in f16).
    #[serde(default)]
    pub force_upcast: bool,
}

impl VaeJson {
    /// candle's VAE config.
    pub fn to_candle(&self) -> vae::AutoEncoderKLConfig {
        vae::AutoEncoderKLConfig {
            block_out_channels: self.block_out_channels.clone(),
            layers_per_block: self.layers_per_block,
            latent_channels: self.latent_channels,
            norm_num_groups: self.norm_num_groups,
            use_quant_conv: self.use_quant_conv,
            use_post_quant_conv: self.use_post_quant_conv,
        }
    }

    /// Image pixels per latent pixel.
    pub fn scale(&self) -> u32 {
        1 << self.block_out_channels.len().saturating_sub(1)
    }
}

fn act() -> String {
    "quick_gelu".to_owned()
}
fn positions() -> usize {
    77
}

/// `text_encoder/config.json` (a CLIP text model).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClipJson {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Embedding width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Tokens per prompt.
    #[serde(default = "positions")]
    pub max_position_embeddings: usize,
    /// `quick_gelu` (SD 1.x) or `gelu` (SD 2.x).
    #[serde(default = "act")]
    pub hidden_act: String,
    /// Layer-norm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// Width of `text_projection` (SDXL's second encoder, `CLIPTextModelWithProjection`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_dim: Option<usize>,
}

fn beta_start() -> f64 {
    0.00085
}
fn beta_end() -> f64 {
    0.012
}
fn schedule() -> String {
    "scaled_linear".to_owned()
}
fn train_steps() -> usize {
    1000
}
fn epsilon() -> String {
    "epsilon".to_owned()
}
fn leading() -> String {
    "leading".to_owned()
}

/// `scheduler/scheduler_config.json` (defaults are SD 1.5's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchedulerJson {
    /// First beta.
    #[serde(default = "beta_start")]
    pub beta_start: f64,
    /// Last beta.
    #[serde(default = "beta_end")]
    pub beta_end: f64,
    /// `scaled_linear` or `linear`.
    #[serde(default = "schedule")]
    pub beta_schedule: String,
    /// Training timesteps.
    #[serde(default = "train_steps")]
    pub num_train_timesteps: usize,
    /// `epsilon` or `v_prediction` (SD 2.1 768).
    #[serde(default = "epsilon")]
    pub prediction_type: String,
    /// Offset added to the inference timesteps.
    #[serde(default = "one_u")]
    pub steps_offset: usize,
    /// DDIM's final alpha: 1 or the first training alpha.
    #[serde(default)]
    pub set_alpha_to_one: bool,
    /// `leading` (SD, SDXL), `trailing` (SDXL-Turbo: one step starts at t = 999) or `linspace`.
    #[serde(default = "leading")]
    pub timestep_spacing: String,
}

/// Timestep spacings [`SchedulerJson::timestep_spacing`] accepts.
pub const SPACINGS: [&str; 3] = ["leading", "trailing", "linspace"];

impl Default for SchedulerJson {
    fn default() -> Self {
        Self {
            beta_start: beta_start(),
            beta_end: beta_end(),
            beta_schedule: schedule(),
            num_train_timesteps: train_steps(),
            prediction_type: epsilon(),
            steps_offset: 1,
            set_alpha_to_one: false,
            timestep_spacing: leading(),
        }
    }
}

/// Which pipeline a diffusers directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// SD 1.x / 2.x: one CLIP text encoder.
    Sd,
    /// SDXL (and SDXL-Turbo): two text encoders and the `text_time` embedding.
    Sdxl,
}

/// `model_index.json` (the fields that tell the pipelines apart).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ModelIndex {
    /// `StableDiffusionPipeline`, `StableDiffusionXLPipeline`, …
    #[serde(rename = "_class_name", default)]
    pub class_name: String,
    /// SDXL: an empty negative prompt gives zero embeddings instead of encoding "" (diffusers' default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_zeros_for_empty_prompt: Option<bool>,
}

impl ModelIndex {
    /// The pipeline family of `dir`, from `model_index.json`, the presence of
    /// `text_encoder_2`/`tokenizer_2` and the UNet's `addition_embed_type`; pieces that
    /// contradict each other or are missing name the file.
    pub fn family(&self, dir: &Path, unet: &UnetJson) -> Result<Family, CandleError> {
        let xl_class = self.class_name.contains("XL");
        let has_second = dir.join("text_encoder_2").exists() || dir.join("tokenizer_2").exists();
        let text_time = unet.text_time()?.is_some();
        if !(xl_class || has_second || text_time) {
            return Ok(Family::Sd);
        }
        if self.class_name.contains("Img2Img")
            || self.class_name.contains("Inpaint")
            || !dir.join("text_encoder").exists()
        {
            return Err(CandleError::Unsupported(format!(
                "{}: {} (an SDXL refiner, img2img or inpainting pipeline) is not supported; only text-to-image \
                 SDXL / SDXL-Turbo",
                dir.join("model_index.json").display(),
                self.class_name
            )));
        }
        for needed in ["text_encoder_2/config.json", "tokenizer_2/vocab.json", "tokenizer_2/merges.txt"] {
            if !dir.join(needed).is_file() {
                return Err(CandleError::Model(format!("{}: missing (an SDXL pipeline)", dir.join(needed).display())));
            }
        }
        if !text_time {
            return Err(CandleError::Model(format!(
                "{}: an SDXL UNet needs addition_embed_type \"text_time\"",
                dir.join(UNET_CONFIG).display()
            )));
        }
        Ok(Family::Sdxl)
    }

    /// Whether an empty negative prompt means zero embeddings (SDXL only).
    pub fn zeros_for_empty_prompt(&self) -> bool {
        self.force_zeros_for_empty_prompt.unwrap_or(true)
    }
}

/// Reads and parses a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CandleError> {
    let bytes = std::fs::read(path).map_err(|e| CandleError::io(path, &e))?;
    serde_json::from_slice(&bytes).map_err(|e| CandleError::Model(format!("{}: {e}", path.display())))
}

/// Writes a value as pretty JSON (used to write test models).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CandleError> {
    let text = serde_json::to_vec_pretty(value).map_err(|e| CandleError::Model(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| CandleError::io(path, &e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// The published `unet/config.json` of SD 1.5 and SD 2.1 (SD 2.1 trimmed, defaults filled in)
    /// map to the same blocks as candle's own presets.
    #[test]
    fn real_sd_configs_map_like_candles_presets() {
        let sd15: UnetJson = serde_json::from_value(serde_json::json!({
            "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
            "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false,
            "cross_attention_dim": 768,
            "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4,
            "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
            "out_channels": 4, "sample_size": 64,
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
        }))
        .unwrap();
        let sd21: UnetJson = serde_json::from_value(serde_json::json!({
            "attention_head_dim": [5, 10, 20, 20], "block_out_channels": [320, 640, 1280, 1280],
            "cross_attention_dim": 1024, "dual_cross_attention": false,
            "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            "layers_per_block": 2, "sample_size": 96, "use_linear_projection": true, "upcast_attention": true
        }))
        .unwrap();
        let blocks = |c: &UnetJson| {
            c.to_candle()
                .unwrap()
                .blocks
                .iter()
                .map(|b| (b.out_channels, b.use_cross_attn, b.attention_head_dim))
                .collect::<Vec<_>>()
        };
        // candle's `StableDiffusionConfig::v1_5` / `v2_1` presets (their fields are private).
        let sd15_preset = vec![(320, Some(1), 8), (640, Some(1), 8), (1280, Some(1), 8), (1280, None, 8)];
        let sd21_preset = vec![(320, Some(1), 5), (640, Some(1), 10), (1280, Some(1), 20), (1280, None, 20)];
        assert_eq!(blocks(&sd15), sd15_preset);
        assert_eq!(blocks(&sd21), sd21_preset);
        assert!(sd21.to_candle().unwrap().use_linear_projection);
        let half = UnetJson { addition_embed_type: Some("text_time".into()), ..sd15.clone() };
        assert!(matches!(half.to_candle(), Err(CandleError::Model(m)) if m.contains("unet/config.json")));
        let kandinsky = UnetJson { addition_embed_type: Some("image".into()), ..sd15 };
        assert!(matches!(kandinsky.to_candle(), Err(CandleError::Unsupported(m)) if m.contains("unet/config.json")));
        let vae: VaeJson = serde_json::from_value(serde_json::json!({
            "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4
        }))
        .unwrap();
        assert_eq!((vae.scale(), vae.scaling_factor, vae.norm_num_groups), (8, 0.18215, 32));
    }

    /// The published SDXL base `unet/config.json` (trimmed) maps like candle's `sdxl` preset,
    /// with the `text_time` sizes; its VAE and scheduler configs keep their SDXL values.
    #[test]
    fn real_sdxl_configs_map_like_candles_preset() {
        let sdxl: UnetJson = serde_json::from_value(serde_json::json!({
            "_class_name": "UNet2DConditionModel", "addition_embed_type": "text_time",
            "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256,
            "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280],
            "cross_attention_dim": 2048,
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "layers_per_block": 2, "projection_class_embeddings_input_dim": 2816, "sample_size": 128,
            "transformer_layers_per_block": [1, 2, 10], "use_linear_projection": true,
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
        }))
        .unwrap();
        let candle = sdxl.to_candle().unwrap();
        let blocks: Vec<_> =
            candle.blocks.iter().map(|b| (b.out_channels, b.use_cross_attn, b.attention_head_dim)).collect();
        assert_eq!(blocks, [(320, None, 5), (640, Some(2), 10), (1280, Some(10), 20)]);
        assert!(candle.use_linear_projection && candle.cross_attention_dim == 2048);
        assert_eq!(sdxl.text_time().unwrap(), Some(TextTime { time_embed_dim: 256, input_dim: 2816 }));
        assert_eq!(sdxl.time_embed_dim(), 1280);
        let vae: VaeJson = serde_json::from_value(serde_json::json!({
            "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "scaling_factor": 0.13025
        }))
        .unwrap();
        assert_eq!(vae.scaling_factor, 0.13025);
        let turbo: SchedulerJson = serde_json::from_value(serde_json::json!({
            "_class_name": "EulerAncestralDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "beta_start": 0.00085, "num_train_timesteps": 1000, "prediction_type": "epsilon", "steps_offset": 1,
            "timestep_spacing": "trailing"
        }))
        .unwrap();
        assert_eq!(turbo.timestep_spacing, "trailing");
        assert_eq!(SchedulerJson::default().timestep_spacing, "leading");
    }

    #[test]
    fn the_family_comes_from_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sd = crate::tiny::unet_config();
        let index = |class: &str| ModelIndex { class_name: class.into(), force_zeros_for_empty_prompt: None };
        std::fs::create_dir_all(dir.path().join("text_encoder")).unwrap();
        assert_eq!(index("StableDiffusionPipeline").family(dir.path(), &sd).unwrap(), Family::Sd);
        // An XL class name without the second encoder names the missing file.
        let err = index("StableDiffusionXLPipeline").family(dir.path(), &sd).unwrap_err();
        assert!(err.to_string().contains("text_encoder_2/config.json"), "{err}");
        let xl = crate::tiny::sdxl_unet_config();
        crate::tiny::write_sdxl_model(&dir.path().join("xl"), false).unwrap();
        assert_eq!(index("StableDiffusionXLPipeline").family(&dir.path().join("xl"), &xl).unwrap(), Family::Sdxl);
        // Both encoders present but an SD UNet: the UNet config is named.
        let err = index("StableDiffusionXLPipeline").family(&dir.path().join("xl"), &sd).unwrap_err();
        assert!(err.to_string().contains("unet/config.json"), "{err}");
        let err = index("StableDiffusionXLImg2ImgPipeline").family(&dir.path().join("xl"), &xl).unwrap_err();
        assert!(matches!(err, CandleError::Unsupported(_)), "{err}");
    }
}
