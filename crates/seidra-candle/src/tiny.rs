//! Writes a tiny random-weight Stable Diffusion directory in the diffusers layout, for tests
//! and benchmarks (no weights can be downloaded here). About 1 M parameters: a 32/64-channel
//! two-block UNet, a four-level 8-channel VAE (8× upscale, like SD's) and a 2-layer CLIP with a
//! byte-level vocabulary, so any prompt tokenizes.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
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
    }
}

fn save(varmap: &VarMap, path: &Path) -> Result<(), CandleError> {
    varmap.save(path).map_err(CandleError::from)
}

fn mkdir(path: &Path) -> Result<(), CandleError> {
    std::fs::create_dir_all(path).map_err(|e| CandleError::io(path, &e))
}

/// Writes the tiny model into `dir` (created). Weights are random: each call gives a different model.
pub fn write_model(dir: &Path) -> Result<(), CandleError> {
    let device = Device::Cpu;
    for sub in ["unet", "vae", "text_encoder", "tokenizer", "scheduler"] {
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

    // Vocabulary: the special tokens and every byte character, alone and word-final.
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
    write_json(&dir.join("tokenizer").join("vocab.json"), &vocab)?;
    let merges = dir.join("tokenizer").join("merges.txt");
    std::fs::write(&merges, "#version: 0.2\n").map_err(|e| CandleError::io(&merges, &e))?;
    write_json(
        &dir.join("tokenizer").join("special_tokens_map.json"),
        &serde_json::json!({ "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>" }),
    )?;
    write_json(&dir.join("scheduler").join("scheduler_config.json"), &SchedulerJson::default())?;

    let unet = unet_config();
    write_json(&dir.join("unet").join("config.json"), &unet)?;
    let varmap = VarMap::new();
    UNet2DConditionModel::new(VarBuilder::from_varmap(&varmap, DType::F32, &device), 4, 4, false, unet.to_candle()?)?;
    save(&varmap, &dir.join("unet").join("diffusion_pytorch_model.safetensors"))?;

    let vae = vae_config();
    write_json(&dir.join("vae").join("config.json"), &vae)?;
    let varmap = VarMap::new();
    AutoEncoderKL::new(VarBuilder::from_varmap(&varmap, DType::F32, &device), 3, 3, vae.to_candle())?;
    save(&varmap, &dir.join("vae").join("diffusion_pytorch_model.safetensors"))?;

    let clip = clip_config(vocab.len());
    write_json(&dir.join("text_encoder").join("config.json"), &clip)?;
    let varmap = VarMap::new();
    ClipTextEncoder::new(VarBuilder::from_varmap(&varmap, DType::F32, &device), &clip)?;
    save(&varmap, &dir.join("text_encoder").join("model.safetensors"))?;
    Ok(())
}
