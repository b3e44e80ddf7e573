//! A loaded diffusers-layout Stable Diffusion directory and the text-to-image loop: CLIP text
//! embeddings with classifier-free guidance, the sampler loop over the UNet, VAE decoding.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::stable_diffusion::{unet_2d::UNet2DConditionModel, vae::AutoEncoderKL};

use crate::clip::ClipTextEncoder;
use crate::config::{ClipJson, SchedulerJson, UnetJson, VaeJson, read_json};
use crate::scheduler::{Kind, Noise, Sampler};
use crate::tokenizer::ClipTokenizer;
use crate::{CandleError, lora};

/// Weights of one component, by tensor name, already on the device in the compute dtype.
pub type Weights = HashMap<String, Tensor>;

/// A model directory's configs and weights (what the cache keeps).
pub struct LoadedModel {
    /// UNet config.
    pub unet_config: UnetJson,
    /// VAE config.
    pub vae_config: VaeJson,
    /// Text encoder config.
    pub clip_config: ClipJson,
    /// Noise schedule.
    pub scheduler: SchedulerJson,
    tokenizer: ClipTokenizer,
    pad_id: u32,
    unet_weights: Weights,
    clip_weights: Weights,
    unet: UNet2DConditionModel,
    vae: AutoEncoderKL,
    clip: ClipTextEncoder,
    /// Bytes of weights held.
    pub bytes: u64,
    device: Device,
    dtype: DType,
}

/// What one image needs beyond the model.
pub struct GenerateParams<'a> {
    /// Prompt.
    pub prompt: &'a str,
    /// Negative prompt (the unconditional side of guidance).
    pub negative_prompt: &'a str,
    /// Width, pixels (multiple of the VAE scale).
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Sampler steps.
    pub steps: u32,
    /// Guidance scale; ≤ 1 skips the unconditional pass.
    pub guidance: f32,
    /// Sampler.
    pub scheduler: Kind,
    /// Seed of this image.
    pub seed: u64,
}

fn weight_file(dir: &Path, component: &str) -> Result<std::path::PathBuf, CandleError> {
    let candidates = ["diffusion_pytorch_model.safetensors", "model.safetensors"];
    candidates.iter().map(|f| dir.join(component).join(f)).find(|p| p.is_file()).ok_or_else(|| {
        CandleError::Model(format!("{}: no {} found", dir.join(component).display(), candidates.join(" or ")))
    })
}

/// Reads a safetensors file onto `device`, converting floating tensors to `dtype`.
pub fn load_weights(path: &Path, device: &Device, dtype: DType) -> Result<Weights, CandleError> {
    let tensors = candle_core::safetensors::load(path, device)
        .map_err(|e| CandleError::Model(format!("{}: {e}", path.display())))?;
    tensors
        .into_iter()
        .map(|(name, t)| {
            let t = if t.dtype().is_float() && t.dtype() != dtype { t.to_dtype(dtype)? } else { t };
            Ok((name, t))
        })
        .collect::<Result<Weights, candle_core::Error>>()
        .map_err(CandleError::from)
}

fn weights_bytes(weights: &Weights) -> u64 {
    weights.values().map(|t| (t.elem_count() * t.dtype().size_in_bytes()) as u64).sum()
}

fn pad_token(dir: &Path, tokenizer: &ClipTokenizer) -> u32 {
    let path = dir.join("tokenizer").join("special_tokens_map.json");
    let pad = read_json::<serde_json::Value>(&path).ok().and_then(|v| match &v["pad_token"] {
        serde_json::Value::String(s) => Some(s.clone()),
        other => other["content"].as_str().map(str::to_owned),
    });
    pad.and_then(|p| tokenizer.token_id(&p)).unwrap_or(tokenizer.end_id())
}

impl LoadedModel {
    /// Loads a diffusers directory (SD 1.x / 2.x layout).
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self, CandleError> {
        if dir.join("text_encoder_2").exists() {
            return Err(CandleError::Unsupported("SDXL pipelines (two text encoders) are not supported yet".into()));
        }
        let unet_config: UnetJson = read_json(&dir.join("unet").join("config.json"))?;
        let vae_config: VaeJson = read_json(&dir.join("vae").join("config.json"))?;
        let clip_config: ClipJson = read_json(&dir.join("text_encoder").join("config.json"))?;
        let scheduler_path = dir.join("scheduler").join("scheduler_config.json");
        let scheduler = if scheduler_path.is_file() { read_json(&scheduler_path)? } else { SchedulerJson::default() };
        if clip_config.hidden_size != unet_config.cross_attention_dim {
            return Err(CandleError::Model(format!(
                "text encoder width {} does not match the UNet cross-attention width {}",
                clip_config.hidden_size, unet_config.cross_attention_dim
            )));
        }
        let tokenizer = ClipTokenizer::load(&dir.join("tokenizer"))?;
        let pad_id = pad_token(dir, &tokenizer);
        let unet_weights = load_weights(&weight_file(dir, "unet")?, device, dtype)?;
        let clip_weights = load_weights(&weight_file(dir, "text_encoder")?, device, dtype)?;
        let vae_weights = load_weights(&weight_file(dir, "vae")?, device, dtype)?;
        let bytes = weights_bytes(&unet_weights) + weights_bytes(&clip_weights) + weights_bytes(&vae_weights);
        let unet = build_unet(&unet_config, unet_weights.clone(), device, dtype)?;
        let clip = ClipTextEncoder::new(VarBuilder::from_tensors(clip_weights.clone(), dtype, device), &clip_config)?;
        let vae =
            AutoEncoderKL::new(VarBuilder::from_tensors(vae_weights, dtype, device), 3, 3, vae_config.to_candle())?;
        Ok(Self {
            unet_config,
            vae_config,
            clip_config,
            scheduler,
            tokenizer,
            pad_id,
            unet_weights,
            clip_weights,
            unet,
            vae,
            clip,
            bytes,
            device: device.clone(),
            dtype,
        })
    }

    /// Image pixels per latent pixel (8 for SD).
    pub fn vae_scale(&self) -> u32 {
        self.vae_config.scale()
    }

    /// UNet and text encoder with `loras` merged in (`(safetensors path, weight)`); the cached
    /// base weights are left untouched.
    pub fn with_loras(&self, loras: &[(std::path::PathBuf, f32)]) -> Result<Merged, CandleError> {
        let mut unet_weights = self.unet_weights.clone();
        let mut clip_weights = self.clip_weights.clone();
        for (path, weight) in loras {
            let lora = load_weights(path, &self.device, self.dtype)?;
            let applied = lora::merge(&lora, *weight, &mut unet_weights, &mut clip_weights)?;
            if applied == 0 {
                return Err(CandleError::Lora(format!("{}: no tensor matches this model", path.display())));
            }
        }
        let unet = build_unet(&self.unet_config, unet_weights, &self.device, self.dtype)?;
        let clip =
            ClipTextEncoder::new(VarBuilder::from_tensors(clip_weights, self.dtype, &self.device), &self.clip_config)?;
        Ok(Merged { unet, clip })
    }

    fn embed(&self, clip: &ClipTextEncoder, text: &str) -> Result<Tensor, CandleError> {
        let ids = self.tokenizer.encode_padded(text, clip.max_positions, self.pad_id);
        let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
        Ok(clip.forward(&ids)?)
    }

    /// Generates one image as RGB8 rows; `on_step(step)` runs after each step and returns
    /// `false` to stop (then `Ok(None)`).
    pub fn generate(
        &self,
        merged: Option<&Merged>,
        params: &GenerateParams<'_>,
        on_step: &mut dyn FnMut(u32) -> bool,
    ) -> Result<Option<Vec<u8>>, CandleError> {
        let (unet, clip) = merged.map_or((&self.unet, &self.clip), |m| (&m.unet, &m.clip));
        let guided = params.guidance > 1.0;
        let cond = self.embed(clip, params.prompt)?;
        let context = if guided { Tensor::cat(&[self.embed(clip, params.negative_prompt)?, cond], 0)? } else { cond };
        let sampler = Sampler::new(params.scheduler, &self.scheduler, params.steps as usize);
        let scale = self.vae_scale();
        let dims = [1, self.unet_config.in_channels, (params.height / scale) as usize, (params.width / scale) as usize];
        let mut noise = Noise::new(params.seed);
        let mut latents = (noise.tensor(&dims, &self.device)?.to_dtype(self.dtype)? * sampler.init_noise_sigma())?;
        for (index, &timestep) in sampler.timesteps().iter().enumerate() {
            let input = if guided { Tensor::cat(&[&latents, &latents], 0)? } else { latents.clone() };
            let input = sampler.scale_input(&input, index)?;
            let output = unet.forward(&input, timestep as f64, &context)?;
            let output = if guided {
                let parts = output.chunk(2, 0)?;
                let (uncond, text) = (&parts[0], &parts[1]);
                (uncond + ((text - uncond)? * f64::from(params.guidance))?)?
            } else {
                output
            };
            latents = sampler.step(&output, index, &latents, &mut noise)?;
            if !on_step(index as u32 + 1) {
                return Ok(None);
            }
        }
        let image = self.vae.decode(&(latents / self.vae_config.scaling_factor)?)?;
        // f32 for the last steps: the f16 of GPU runs would round 0..=255 coarsely.
        let image = ((image.to_dtype(DType::F32)? / 2.0)? + 0.5)?.clamp(0f32, 1f32)?;
        let image = (image * 255.0)?.round()?.to_dtype(DType::U8)?.squeeze(0)?.permute((1, 2, 0))?;
        Ok(Some(image.flatten_all()?.to_vec1::<u8>()?))
    }
}

/// A UNet and text encoder with LoRAs merged.
pub struct Merged {
    unet: UNet2DConditionModel,
    clip: ClipTextEncoder,
}

fn build_unet(
    config: &UnetJson,
    weights: Weights,
    device: &Device,
    dtype: DType,
) -> Result<UNet2DConditionModel, CandleError> {
    let vb = VarBuilder::from_tensors(weights, dtype, device);
    Ok(UNet2DConditionModel::new(vb, config.in_channels, config.out_channels, false, config.to_candle()?)?)
}
