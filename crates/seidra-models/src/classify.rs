//! What a safetensors file is, from its tensor names and shapes: a base checkpoint, a LoRA or
//! a VAE, and for which Stable Diffusion family. Names follow the original (CompVis/SGM)
//! single-file layout, kohya LoRAs and diffusers/PEFT LoRAs.

use serde::Serialize;

use crate::safetensors::Header;

/// The role of a model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A full checkpoint (UNet + text encoder + VAE), or a diffusers directory.
    Base,
    /// Low-rank adaptation weights.
    Lora,
    /// A VAE alone.
    Vae,
    /// Safetensors we cannot place.
    Unknown,
}

impl ModelKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Lora => "lora",
            Self::Vae => "vae",
            Self::Unknown => "unknown",
        }
    }
}

/// The model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// Stable Diffusion 1.x (CLIP ViT-L, 768-wide cross-attention).
    Sd15,
    /// Stable Diffusion 2.x (OpenCLIP ViT-H, 1024-wide).
    Sd21,
    /// Stable Diffusion XL (two text encoders, 2048-wide).
    Sdxl,
    /// Not recognised (or not applicable, as for most VAEs).
    Unknown,
}

impl Architecture {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sd15 => "sd15",
            Self::Sd21 => "sd21",
            Self::Sdxl => "sdxl",
            Self::Unknown => "unknown",
        }
    }

    fn from_context_dim(dim: u64) -> Self {
        match dim {
            768 => Self::Sd15,
            1024 => Self::Sd21,
            2048 => Self::Sdxl,
            _ => Self::Unknown,
        }
    }
}

/// Kind and family of a safetensors file.
pub fn classify(header: &Header) -> (ModelKind, Architecture) {
    let names = || header.tensors.keys().map(String::as_str);
    let is_lora = names()
        .any(|n| n.contains("lora_up") || n.contains("lora_down") || n.contains(".lora_A.") || n.contains(".lora_B."));
    if is_lora {
        return (ModelKind::Lora, lora_architecture(header));
    }
    // SDXL's extra conditioning (pooled text + size ids): `label_emb` in the original layout,
    // `add_embedding` in diffusers'. It tells a bare SDXL UNet apart whatever its width.
    let sdxl_unet =
        || names().any(|n| n.starts_with("model.diffusion_model.label_emb.") || n.starts_with("add_embedding."));
    if names().any(|n| n.starts_with("model.diffusion_model.")) {
        let arch = if names().any(|n| n.starts_with("conditioner.embedders.1.")) || sdxl_unet() {
            Architecture::Sdxl
        } else if names().any(|n| n.starts_with("cond_stage_model.model.")) {
            Architecture::Sd21
        } else if names().any(|n| n.starts_with("cond_stage_model.transformer.")) {
            Architecture::Sd15
        } else {
            cross_attention_dim(header).map_or(Architecture::Unknown, Architecture::from_context_dim)
        };
        return (ModelKind::Base, arch);
    }
    let vae_part = |n: &str| {
        let n = n.strip_prefix("first_stage_model.").unwrap_or(n);
        n.starts_with("encoder.") || n.starts_with("decoder.") || n.contains("quant_conv.")
    };
    if names().all(vae_part) {
        return (ModelKind::Vae, Architecture::Unknown);
    }
    let arch = if sdxl_unet() {
        Architecture::Sdxl
    } else {
        cross_attention_dim(header).map_or(Architecture::Unknown, Architecture::from_context_dim)
    };
    (ModelKind::Unknown, arch)
}

/// The text-conditioning width, from the first cross-attention key projection (`attn2.to_k`:
/// shape `[inner, context]`).
fn cross_attention_dim(header: &Header) -> Option<u64> {
    header.tensors.iter().find(|(n, _)| n.contains("attn2.to_k.weight")).and_then(|(_, t)| t.shape.get(1).copied())
}

fn lora_architecture(header: &Header) -> Architecture {
    // kohya's trainer records the base model.
    if let Some(base) = header.metadata.get("ss_base_model_version") {
        if base.starts_with("sdxl") {
            return Architecture::Sdxl;
        }
        if base.starts_with("sd_v2") {
            return Architecture::Sd21;
        }
        if base.starts_with("sd_v1") {
            return Architecture::Sd15;
        }
    }
    if header.tensors.keys().any(|n| n.starts_with("lora_te2_") || n.contains("text_encoder_2")) {
        return Architecture::Sdxl;
    }
    // The down projection of a cross-attention `to_k` LoRA has shape `[rank, context]`.
    header
        .tensors
        .iter()
        .find(|(n, _)| {
            (n.contains("attn2_to_k") || n.contains("attn2.to_k")) && (n.contains("lora_down") || n.contains("lora_A"))
        })
        .and_then(|(_, t)| t.shape.get(1).copied())
        .map_or(Architecture::Unknown, Architecture::from_context_dim)
}

/// Family of a diffusers pipeline directory from its `model_index.json` (an XL class name or a
/// second text encoder), `unet/config.json` (SDXL's `text_time` embedding or 2048-wide
/// cross-attention) and, for SD 1/2, the text encoder's width (`text_encoder/config.json`).
pub fn classify_diffusers(
    model_index: &serde_json::Value,
    text_encoder: Option<&serde_json::Value>,
    unet: Option<&serde_json::Value>,
) -> Architecture {
    let class = model_index["_class_name"].as_str().unwrap_or_default();
    let second_encoder = model_index["text_encoder_2"].get(1).is_some_and(serde_json::Value::is_string);
    let text_time = unet.is_some_and(|u| {
        u["addition_embed_type"].as_str() == Some("text_time") || u["cross_attention_dim"].as_u64() == Some(2048)
    });
    if class.contains("XL") || second_encoder || text_time {
        return Architecture::Sdxl;
    }
    match text_encoder.and_then(|c| c["hidden_size"].as_u64()) {
        Some(1024) => Architecture::Sd21,
        Some(768) => Architecture::Sd15,
        _ if class.starts_with("StableDiffusion") => Architecture::Sd15,
        _ => Architecture::Unknown,
    }
}
