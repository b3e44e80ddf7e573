//! A loaded diffusers-layout Stable Diffusion directory and the text-to-image loop: CLIP text
//! embeddings with classifier-free guidance, the sampler loop over the UNet, VAE decoding.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::stable_diffusion::embeddings::{TimestepEmbedding, Timesteps};
use candle_transformers::models::stable_diffusion::{unet_2d::UNet2DConditionModel, vae::AutoEncoderKL};

use crate::clip::ClipTextEncoder;
use crate::config::{ClipJson, Family, ModelIndex, SPACINGS, SchedulerJson, TextTime, UnetJson, VaeJson, read_json};
use crate::scheduler::{Kind, Noise, Sampler};
use crate::tokenizer::ClipTokenizer;
use crate::{CandleError, lora};

/// Weights of one component, by tensor name, already on the device in the compute dtype.
pub type Weights = HashMap<String, Tensor>;

/// One text encoder with its tokenizer (`text_encoder` + `tokenizer`, or the `_2` pair of SDXL).
struct TextSide {
    config: ClipJson,
    tokenizer: ClipTokenizer,
    pad_id: u32,
    weights: Weights,
    with_projection: bool,
}

/// The weights LoRAs change and the modules built from them.
struct Parts {
    unet_weights: Weights,
    /// SD 1.x/2.x: built once. SDXL: `None`, built per prompt with its `text_time` embedding folded in.
    unet: Option<UNet2DConditionModel>,
    encoders: Vec<ClipTextEncoder>,
}

/// A model directory's configs and weights (what the cache keeps).
pub struct LoadedModel {
    /// SD 1.x/2.x or SDXL.
    pub family: Family,
    /// `model_index.json`.
    pub index: ModelIndex,
    /// UNet config.
    pub unet_config: UnetJson,
    /// VAE config.
    pub vae_config: VaeJson,
    /// Noise schedule.
    pub scheduler: SchedulerJson,
    text_time: Option<(TextTime, TimestepEmbedding)>,
    texts: Vec<TextSide>,
    base: Parts,
    vae: AutoEncoderKL,
    vae_dtype: DType,
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
    let path = dir.join("special_tokens_map.json");
    let pad = read_json::<serde_json::Value>(&path).ok().and_then(|v| match &v["pad_token"] {
        serde_json::Value::String(s) => Some(s.clone()),
        other => other["content"].as_str().map(str::to_owned),
    });
    pad.and_then(|p| tokenizer.token_id(&p)).unwrap_or(tokenizer.end_id())
}

/// Conditioning of one side of guidance.
struct Condition {
    /// `(1, tokens, cross_attention_dim)`.
    context: Tensor,
    /// SDXL: the UNet with this prompt's pooled embedding and size ids folded into its time embedding.
    unet: Option<UNet2DConditionModel>,
}

impl LoadedModel {
    /// Loads a diffusers directory (SD 1.x / 2.x, SDXL or SDXL-Turbo layout).
    pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<Self, CandleError> {
        let index_path = dir.join("model_index.json");
        let index: ModelIndex = if index_path.is_file() { read_json(&index_path)? } else { ModelIndex::default() };
        let unet_path = dir.join("unet").join("config.json");
        let unet_config: UnetJson = read_json(&unet_path)?;
        let family = index.family(dir, &unet_config)?;
        let vae_config: VaeJson = read_json(&dir.join("vae").join("config.json"))?;
        let scheduler_path = dir.join("scheduler").join("scheduler_config.json");
        let scheduler: SchedulerJson =
            if scheduler_path.is_file() { read_json(&scheduler_path)? } else { SchedulerJson::default() };
        if !SPACINGS.contains(&scheduler.timestep_spacing.as_str()) {
            return Err(CandleError::Unsupported(format!(
                "{}: timestep_spacing {:?} is not one of {}",
                scheduler_path.display(),
                scheduler.timestep_spacing,
                SPACINGS.join(", ")
            )));
        }
        let components: &[(&str, &str)] = match family {
            Family::Sd => &[("text_encoder", "tokenizer")],
            Family::Sdxl => &[("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2")],
        };
        let mut texts = Vec::new();
        let mut encoders = Vec::new();
        for (i, (component, tokenizer_dir)) in components.iter().enumerate() {
            let config_path = dir.join(component).join("config.json");
            let config: ClipJson = read_json(&config_path)?;
            let tokenizer = ClipTokenizer::load(&dir.join(tokenizer_dir))?;
            let pad_id = pad_token(&dir.join(tokenizer_dir), &tokenizer);
            let path = weight_file(dir, component)?;
            let weights = load_weights(&path, device, dtype)?;
            // SDXL's second encoder is a `CLIPTextModelWithProjection`: its pooled output conditions the UNet.
            let with_projection = family == Family::Sdxl && i == 1;
            let encoder = ClipTextEncoder::new(
                VarBuilder::from_tensors(weights.clone(), dtype, device),
                &config,
                with_projection,
            )
            .map_err(|e| CandleError::Model(format!("{}: {e}", path.display())))?;
            if let Some(first) = texts.first().map(|t: &TextSide| t.config.max_position_embeddings)
                && first != config.max_position_embeddings
            {
                return Err(CandleError::Model(format!(
                    "{}: max_position_embeddings {} differs from text_encoder's {first}",
                    config_path.display(),
                    config.max_position_embeddings
                )));
            }
            texts.push(TextSide { config, tokenizer, pad_id, weights, with_projection });
            encoders.push(encoder);
        }
        let text_width: usize = texts.iter().map(|t| t.config.hidden_size).sum();
        if text_width != unet_config.cross_attention_dim {
            return Err(CandleError::Model(format!(
                "{}: cross_attention_dim {} does not match the text encoders' width {text_width}",
                unet_path.display(),
                unet_config.cross_attention_dim
            )));
        }
        let unet_file = weight_file(dir, "unet")?;
        let unet_weights = load_weights(&unet_file, device, dtype)?;
        let text_time = match unet_config.text_time()? {
            None => None,
            Some(tt) => {
                let pooled = texts.last().map_or(0, |t| t.config.projection_dim.unwrap_or(t.config.hidden_size));
                if pooled + 6 * tt.time_embed_dim != tt.input_dim {
                    return Err(CandleError::Model(format!(
                        "{}: projection_class_embeddings_input_dim {} is not the pooled text width {pooled} + 6 × \
                         addition_time_embed_dim {}",
                        unet_path.display(),
                        tt.input_dim,
                        tt.time_embed_dim
                    )));
                }
                let vb = VarBuilder::from_tensors(unet_weights.clone(), dtype, device);
                let add = TimestepEmbedding::new(vb.pp("add_embedding"), tt.input_dim, unet_config.time_embed_dim())
                    .map_err(|e| CandleError::Model(format!("{}: add_embedding: {e}", unet_file.display())))?;
                Some((tt, add))
            }
        };
        let vae_dtype = if vae_config.force_upcast { DType::F32 } else { dtype };
        let vae_weights = load_weights(&weight_file(dir, "vae")?, device, vae_dtype)?;
        let bytes = weights_bytes(&unet_weights)
            + texts.iter().map(|t| weights_bytes(&t.weights)).sum::<u64>()
            + weights_bytes(&vae_weights);
        let unet = match text_time {
            None => Some(build_unet(&unet_config, unet_weights.clone(), device, dtype)?),
            // Checked now so that a broken UNet fails at load, not at the first prompt.
            Some(_) => build_unet(&unet_config, unet_weights.clone(), device, dtype).map(|_| None)?,
        };
        let vae =
            AutoEncoderKL::new(VarBuilder::from_tensors(vae_weights, vae_dtype, device), 3, 3, vae_config.to_candle())?;
        Ok(Self {
            family,
            index,
            unet_config,
            vae_config,
            scheduler,
            text_time,
            texts,
            base: Parts { unet_weights, unet, encoders },
            vae,
            vae_dtype,
            bytes,
            device: device.clone(),
            dtype,
        })
    }

    /// Image pixels per latent pixel (8 for SD).
    pub fn vae_scale(&self) -> u32 {
        self.vae_config.scale()
    }

    /// UNet and text encoders with `loras` merged in (`(safetensors path, weight)`); the cached
    /// base weights are left untouched. Every LoRA module must match a weight of this model.
    pub fn with_loras(&self, loras: &[(std::path::PathBuf, f32)]) -> Result<Merged, CandleError> {
        let mut unet_weights = self.base.unet_weights.clone();
        let mut text_weights: Vec<Weights> = self.texts.iter().map(|t| t.weights.clone()).collect();
        for (path, weight) in loras {
            let lora = load_weights(path, &self.device, self.dtype)?;
            lora::merge(&lora, *weight, &mut unet_weights, &mut text_weights)
                .map_err(|e| CandleError::Lora(format!("{}: {e}", path.display())))?;
        }
        let unet = match self.text_time {
            None => Some(build_unet(&self.unet_config, unet_weights.clone(), &self.device, self.dtype)?),
            Some(_) => None,
        };
        let encoders = self
            .texts
            .iter()
            .zip(text_weights)
            .map(|(t, w)| {
                ClipTextEncoder::new(
                    VarBuilder::from_tensors(w, self.dtype, &self.device),
                    &t.config,
                    t.with_projection,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Merged(Parts { unet_weights, unet, encoders }))
    }

    /// Encodes one side of guidance; `zero` gives SDXL's all-zero embeddings for an empty negative prompt.
    fn condition(
        &self,
        parts: &Parts,
        text: &str,
        zero: bool,
        params: &GenerateParams<'_>,
    ) -> Result<Condition, CandleError> {
        let Some((text_time, add_embedding)) = &self.text_time else {
            let side = &self.texts[0];
            let ids = side.tokenizer.encode_padded(text, side.config.max_position_embeddings, side.pad_id);
            let ids = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
            return Ok(Condition { context: parts.encoders[0].forward(&ids)?, unet: None });
        };
        // SDXL: penultimate hidden states of both encoders side by side; the pooled, projected
        // output of the second one goes into the `text_time` embedding.
        let mut contexts = Vec::with_capacity(self.texts.len());
        let mut pooled = None;
        for (side, encoder) in self.texts.iter().zip(&parts.encoders) {
            let ids = side.tokenizer.encode_padded(text, side.config.max_position_embeddings, side.pad_id);
            let end =
                ids.iter().position(|&id| id == side.tokenizer.end_id()).unwrap_or(ids.len().saturating_sub(1)) as u32;
            let encoded = encoder.encode(&Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?)?;
            if side.with_projection {
                pooled = Some(encoder.pooled(&encoded.last, &[end])?);
            }
            contexts.push(encoded.penultimate);
        }
        let mut context = Tensor::cat(&contexts, D::Minus1)?;
        let mut pooled = pooled.ok_or_else(|| CandleError::Model("SDXL without a projected text encoder".into()))?;
        if zero {
            (context, pooled) = (context.zeros_like()?, pooled.zeros_like()?);
        }
        // diffusers' default time ids: original size = target size = the request's, no crop.
        let (h, w) = (params.height as f32, params.width as f32);
        let ids = Tensor::new([h, w, 0.0, 0.0, h, w].as_slice(), &self.device)?;
        let c = &self.unet_config;
        let time_ids = Timesteps::new(text_time.time_embed_dim, c.flip_sin_to_cos, c.freq_shift)
            .forward(&ids)?
            .reshape((1, 6 * text_time.time_embed_dim))?
            .to_dtype(self.dtype)?;
        let extra = add_embedding.forward(&Tensor::cat(&[&pooled.to_dtype(self.dtype)?, &time_ids], 1)?)?.squeeze(0)?;
        // candle's UNet has no `add_embedding`; diffusers adds its output to the time
        // embedding, `linear_2(h) + b + extra`, so folding `extra` into the bias is exact.
        let key = "time_embedding.linear_2.bias";
        let bias = parts.unet_weights.get(key).ok_or_else(|| CandleError::Model(format!("unet: no {key}")))?;
        let mut weights = parts.unet_weights.clone();
        weights.insert(key.to_owned(), (bias + extra)?);
        Ok(Condition { context, unet: Some(build_unet(c, weights, &self.device, self.dtype)?) })
    }

    /// Generates one image as RGB8 rows; `on_step(step)` runs after each step and returns
    /// `false` to stop (then `Ok(None)`).
    pub fn generate(
        &self,
        merged: Option<&Merged>,
        params: &GenerateParams<'_>,
        on_step: &mut dyn FnMut(u32) -> bool,
    ) -> Result<Option<Vec<u8>>, CandleError> {
        let parts = merged.map_or(&self.base, |m| &m.0);
        // Guidance ≤ 1 (SDXL-Turbo's 0) runs the UNet on the prompt alone: one pass per step.
        let guided = params.guidance > 1.0;
        let cond = self.condition(parts, params.prompt, false, params)?;
        let uncond = if guided {
            let zero =
                self.family == Family::Sdxl && params.negative_prompt.is_empty() && self.index.zeros_for_empty_prompt();
            Some(self.condition(parts, params.negative_prompt, zero, params)?)
        } else {
            None
        };
        let sampler = Sampler::new(params.scheduler, &self.scheduler, params.steps as usize);
        let scale = self.vae_scale();
        let dims = [1, self.unet_config.in_channels, (params.height / scale) as usize, (params.width / scale) as usize];
        let mut noise = Noise::new(params.seed);
        let mut latents = (noise.tensor(&dims, &self.device)?.to_dtype(self.dtype)? * sampler.init_noise_sigma())?;
        for (index, &timestep) in sampler.timesteps().iter().enumerate() {
            let t = timestep as f64;
            let output = match (&uncond, &parts.unet) {
                (None, _) => {
                    let input = sampler.scale_input(&latents, index)?;
                    unet_of(&cond, parts)?.forward(&input, t, &cond.context)?
                }
                // SD: both sides in one batch of two.
                (Some(uncond), Some(unet)) => {
                    let input = sampler.scale_input(&Tensor::cat(&[&latents, &latents], 0)?, index)?;
                    let context = Tensor::cat(&[&uncond.context, &cond.context], 0)?;
                    let parts = unet.forward(&input, t, &context)?.chunk(2, 0)?;
                    guide(&parts[0], &parts[1], params.guidance)?
                }
                // SDXL: each side has its own UNet (its own folded time embedding).
                (Some(uncond), None) => {
                    let input = sampler.scale_input(&latents, index)?;
                    let u = unet_of(uncond, parts)?.forward(&input, t, &uncond.context)?;
                    let c = unet_of(&cond, parts)?.forward(&input, t, &cond.context)?;
                    guide(&u, &c, params.guidance)?
                }
            };
            latents = sampler.step(&output, index, &latents, &mut noise)?;
            if !on_step(index as u32 + 1) {
                return Ok(None);
            }
        }
        let latents = (latents.to_dtype(self.vae_dtype)? / self.vae_config.scaling_factor)?;
        let image = self.vae.decode(&latents)?;
        // f32 for the last steps: the f16 of GPU runs would round 0..=255 coarsely.
        let image = ((image.to_dtype(DType::F32)? / 2.0)? + 0.5)?.clamp(0f32, 1f32)?;
        let image = (image * 255.0)?.round()?.to_dtype(DType::U8)?.squeeze(0)?.permute((1, 2, 0))?;
        Ok(Some(image.flatten_all()?.to_vec1::<u8>()?))
    }
}

/// The UNet for a side: its own (SDXL) or the shared one.
fn unet_of<'a>(side: &'a Condition, parts: &'a Parts) -> Result<&'a UNet2DConditionModel, CandleError> {
    side.unet.as_ref().or(parts.unet.as_ref()).ok_or_else(|| CandleError::Model("no UNet built".into()))
}

/// Classifier-free guidance: `uncond + scale · (cond − uncond)`.
fn guide(uncond: &Tensor, cond: &Tensor, scale: f32) -> Result<Tensor, CandleError> {
    Ok((uncond + ((cond - uncond)? * f64::from(scale))?)?)
}

/// UNet and text encoders with LoRAs merged.
pub struct Merged(Parts);

fn build_unet(
    config: &UnetJson,
    weights: Weights,
    device: &Device,
    dtype: DType,
) -> Result<UNet2DConditionModel, CandleError> {
    let vb = VarBuilder::from_tensors(weights, dtype, device);
    Ok(UNet2DConditionModel::new(vb, config.in_channels, config.out_channels, false, config.to_candle()?)?)
}
