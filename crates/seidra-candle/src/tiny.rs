//! Writes tiny random-weight Stable Diffusion and SDXL directories in the diffusers layout, for
//! tests and benchmarks (no weights can be downloaded here). SD: about 1 M parameters, a
//! 32/64-channel two-block UNet, a four-level 8-channel VAE (8× upscale, like SD's) and a 2-layer
//! CLIP with a byte-level vocabulary, so any prompt tokenizes. SDXL: the same VAE (scaling
//! 0.13025), two such CLIPs (the second with a projection, padding with `!` like SDXL's), and a
//! UNet shaped like SDXL's (first block without attention, several transformer layers per block,
//! linear projections, the `text_time` add-embedding).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::stable_diffusion::embeddings::TimestepEmbedding;
use candle_transformers::models::stable_diffusion::{unet_2d::UNet2DConditionModel, vae::AutoEncoderKL};

use crate::CandleError;
use crate::clip::ClipTextEncoder;
use crate::config::{ClipJson, PerBlock, SchedulerJson, UnetJson, VaeJson, write_json};

/// The tiny UNet's config.
pub fn unet_config() -> UnetJson {
    UnetJson {
        block_out_channels: vec![32, 64],
        layers_per_block: 1,
        cross_attention_dim: 32,
        attention_head_dim: PerBlock::One(4),
        transformer_layers_per_block: PerBlock::One(1),
        down_block_types: vec!["CrossAttnDownBlock2D".into(), "DownBlock2D".into()],
        in_channels: 4,
        out_channels: 4,
        norm_num_groups: 8,
        norm_eps: 1e-5,
        flip_sin_to_cos: true,
        freq_shift: 0.0,
        downsample_padding: 1,
        mid_block_scale_factor: 1.0,
        center_input_sample: false,
        use_linear_projection: false,
        sample_size: Some(8),
        addition_embed_type: None,
        addition_time_embed_dim: None,
        projection_class_embeddings_input_dim: None,
    }
}

/// Width of each tiny SDXL text encoder (the UNet sees both side by side).
const SDXL_TEXT_WIDTH: usize = 32;
/// Sinusoid width per time id of the tiny SDXL UNet.
const SDXL_TIME_DIM: usize = 8;

/// The tiny SDXL UNet's config (`sample_size` 16: 128 px native; 8 for the Turbo variant).
pub fn sdxl_unet_config() -> UnetJson {
    UnetJson {
        block_out_channels: vec![32, 64],
        layers_per_block: 1,
        cross_attention_dim: 2 * SDXL_TEXT_WIDTH,
        attention_head_dim: PerBlock::Each(vec![2, 4]),
        transformer_layers_per_block: PerBlock::Each(vec![1, 2]),
        down_block_types: vec!["DownBlock2D".into(), "CrossAttnDownBlock2D".into()],
        use_linear_projection: true,
        sample_size: Some(16),
        addition_embed_type: Some("text_time".into()),
        addition_time_embed_dim: Some(SDXL_TIME_DIM),
        projection_class_embeddings_input_dim: Some(SDXL_TEXT_WIDTH + 6 * SDXL_TIME_DIM),
        ..unet_config()
    }
}

/// The tiny VAE's config.
pub fn vae_config() -> VaeJson {
    VaeJson {
        block_out_channels: vec![8, 8, 8, 8],
        layers_per_block: 1,
        latent_channels: 4,
        norm_num_groups: 4,
        scaling_factor: 0.18215,
        use_quant_conv: true,
        use_post_quant_conv: true,
        force_upcast: false,
    }
}

/// The tiny text encoder's config.
pub fn clip_config(vocab_size: usize) -> ClipJson {
    ClipJson {
        vocab_size,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        max_position_embeddings: 16,
        hidden_act: "quick_gelu".into(),
        layer_norm_eps: 1e-5,
        projection_dim: None,
    }
}

fn save(varmap: &VarMap, path: &Path) -> Result<(), CandleError> {
    varmap.save(path).map_err(CandleError::from)
}

fn mkdir(path: &Path) -> Result<(), CandleError> {
    std::fs::create_dir_all(path).map_err(|e| CandleError::io(path, &e))
}

/// Byte-level vocabulary (every byte character, alone and word-final) and the special tokens.
fn write_tokenizer(dir: &Path, pad: &str) -> Result<usize, CandleError> {
    mkdir(dir)?;
    let chars = crate::tokenizer::bytes_to_unicode();
    let mut vocab: HashMap<String, u32> = HashMap::new();
    for token in chars.iter().map(|c| c.to_string()).chain(chars.iter().map(|c| format!("{c}</w>"))) {
        let id = vocab.len() as u32;
        vocab.entry(token).or_insert(id);
    }
    for special in ["<|startoftext|>", "<|endoftext|>"] {
        let id = vocab.len() as u32;
        vocab.insert(special.to_owned(), id);
    }
    write_json(&dir.join("vocab.json"), &vocab)?;
    let merges = dir.join("merges.txt");
    std::fs::write(&merges, "#version: 0.2\n").map_err(|e| CandleError::io(&merges, &e))?;
    write_json(
        &dir.join("special_tokens_map.json"),
        &serde_json::json!({ "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": pad }),
    )?;
    Ok(vocab.len())
}

fn write_vae(dir: &Path, vae: &VaeJson) -> Result<(), CandleError> {
    mkdir(dir)?;
    write_json(&dir.join("config.json"), vae)?;
    let varmap = VarMap::new();
    AutoEncoderKL::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), 3, 3, vae.to_candle())?;
    save(&varmap, &dir.join("diffusion_pytorch_model.safetensors"))
}

fn write_text_encoder(dir: &Path, clip: &ClipJson, with_projection: bool) -> Result<(), CandleError> {
    mkdir(dir)?;
    write_json(&dir.join("config.json"), clip)?;
    let varmap = VarMap::new();
    ClipTextEncoder::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), clip, with_projection)?;
    save(&varmap, &dir.join("model.safetensors"))
}

/// Writes the tiny SD model into `dir` (created). Weights are random: each call gives a different model.
pub fn write_model(dir: &Path) -> Result<(), CandleError> {
    let device = Device::Cpu;
    for sub in ["unet", "scheduler"] {
        mkdir(&dir.join(sub))?;
    }
    write_json(
        &dir.join("model_index.json"),
        &serde_json::json!({
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": "0.30.0",
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "scheduler": ["diffusers", "DDIMScheduler"],
        }),
    )?;
    let vocab = write_tokenizer(&dir.join("tokenizer"), "<|endoftext|>")?;
    write_json(&dir.join("scheduler").join("scheduler_config.json"), &SchedulerJson::default())?;

    let unet = unet_config();
    write_json(&dir.join("unet").join("config.json"), &unet)?;
    let varmap = VarMap::new();
    UNet2DConditionModel::new(VarBuilder::from_varmap(&varmap, DType::F32, &device), 4, 4, false, unet.to_candle()?)?;
    save(&varmap, &dir.join("unet").join("diffusion_pytorch_model.safetensors"))?;

    write_vae(&dir.join("vae"), &vae_config())?;
    write_text_encoder(&dir.join("text_encoder"), &clip_config(vocab), false)
}

/// Writes a tiny SDXL model into `dir` (created); `turbo` gives SDXL-Turbo's scheduler
/// (Euler-ancestral, trailing spacing) and a 64 px native size. Weights are random.
pub fn write_sdxl_model(dir: &Path, turbo: bool) -> Result<(), CandleError> {
    let device = Device::Cpu;
    for sub in ["unet", "scheduler"] {
        mkdir(&dir.join(sub))?;
    }
    let scheduler_class = if turbo { "EulerAncestralDiscreteScheduler" } else { "EulerDiscreteScheduler" };
    write_json(
        &dir.join("model_index.json"),
        &serde_json::json!({
            "_class_name": "StableDiffusionXLPipeline",
            "_diffusers_version": "0.30.0",
            "force_zeros_for_empty_prompt": true,
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "scheduler": ["diffusers", scheduler_class],
        }),
    )?;
    let vocab = write_tokenizer(&dir.join("tokenizer"), "<|endoftext|>")?;
    // SDXL's second tokenizer pads with "!" rather than the end marker.
    let vocab_2 = write_tokenizer(&dir.join("tokenizer_2"), "!")?;
    let scheduler = SchedulerJson {
        timestep_spacing: if turbo { "trailing" } else { "leading" }.into(),
        ..SchedulerJson::default()
    };
    let mut scheduler = serde_json::to_value(scheduler).map_err(|e| CandleError::Model(e.to_string()))?;
    scheduler["_class_name"] = scheduler_class.into();
    write_json(&dir.join("scheduler").join("scheduler_config.json"), &scheduler)?;

    let unet = UnetJson { sample_size: Some(if turbo { 8 } else { 16 }), ..sdxl_unet_config() };
    write_json(&dir.join("unet").join("config.json"), &unet)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    UNet2DConditionModel::new(vb.clone(), 4, 4, false, unet.to_candle()?)?;
    let input = unet.projection_class_embeddings_input_dim.unwrap_or_default();
    TimestepEmbedding::new(vb.pp("add_embedding"), input, unet.time_embed_dim())?;
    save(&varmap, &dir.join("unet").join("diffusion_pytorch_model.safetensors"))?;

    write_vae(&dir.join("vae"), &VaeJson { scaling_factor: 0.13025, force_upcast: true, ..vae_config() })?;
    let width = SDXL_TEXT_WIDTH;
    write_text_encoder(&dir.join("text_encoder"), &ClipJson { hidden_size: width, ..clip_config(vocab) }, false)?;
    let clip_2 =
        ClipJson { hidden_size: width, hidden_act: "gelu".into(), projection_dim: Some(width), ..clip_config(vocab_2) };
    write_text_encoder(&dir.join("text_encoder_2"), &clip_2, true)
}
