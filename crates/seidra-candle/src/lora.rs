//! Merging LoRA weights into UNet and text-encoder weights: `W += weight · alpha/rank · up·down`.
//!
//! Names understood: kohya (`lora_unet_down_blocks_0_…_to_q.lora_down.weight`, `lora_te_…`,
//! `.alpha`) and diffusers/PEFT (`unet.down_blocks.0.….to_q.lora_A.weight`, `text_encoder.…`).
//! Linear, 1×1 and k×k convolution targets all merge as `up.reshape(out, r) · down.reshape(r, …)`.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::CandleError;
use crate::pipeline::Weights;

/// One low-rank pair with its alpha.
#[derive(Default)]
struct Pair {
    down: Option<Tensor>,
    up: Option<Tensor>,
    alpha: Option<f64>,
}

/// Which model a LoRA module targets, and its module path in kohya's underscore form.
fn split(name: &str) -> Option<(bool, String, &'static str)> {
    let (module, part) = if let Some(m) = name.strip_suffix(".lora_down.weight") {
        (m, "down")
    } else if let Some(m) = name.strip_suffix(".lora_up.weight") {
        (m, "up")
    } else if let Some(m) = name.strip_suffix(".lora_A.weight") {
        (m, "down")
    } else if let Some(m) = name.strip_suffix(".lora_B.weight") {
        (m, "up")
    } else if let Some(m) = name.strip_suffix(".alpha") {
        (m, "alpha")
    } else {
        return None;
    };
    let flat = module.replace('.', "_");
    for (prefix, unet) in [("lora_unet_", true), ("unet_", true), ("lora_te_", false), ("text_encoder_", false)] {
        if let Some(rest) = flat.strip_prefix(prefix) {
            return Some((unet, rest.to_owned(), part));
        }
    }
    None
}

/// Merges `lora` scaled by `weight` into the base weights; returns how many tensors changed.
pub fn merge(lora: &Weights, weight: f32, unet: &mut Weights, clip: &mut Weights) -> Result<usize, CandleError> {
    let mut pairs: HashMap<(bool, String), Pair> = HashMap::new();
    for (name, tensor) in lora {
        let Some((is_unet, module, part)) = split(name) else { continue };
        let pair = pairs.entry((is_unet, module)).or_default();
        match part {
            "down" => pair.down = Some(tensor.clone()),
            "up" => pair.up = Some(tensor.clone()),
            _ => pair.alpha = Some(tensor.to_dtype(candle_core::DType::F64)?.flatten_all()?.to_vec1::<f64>()?[0]),
        }
    }
    let index = |weights: &Weights| -> HashMap<String, String> {
        weights
            .keys()
            .filter_map(|k| k.strip_suffix(".weight").map(|stem| (stem.replace('.', "_"), k.clone())))
            .collect()
    };
    let (unet_index, clip_index) = (index(unet), index(clip));
    let mut applied = 0;
    for ((is_unet, module), pair) in pairs {
        let (Some(down), Some(up)) = (pair.down, pair.up) else { continue };
        let (target_index, target) = if is_unet { (&unet_index, &mut *unet) } else { (&clip_index, &mut *clip) };
        let Some(key) = target_index.get(&module) else { continue };
        let Some(base) = target.get(key) else { continue };
        let rank = down.dim(0)?;
        let scale = f64::from(weight) * pair.alpha.unwrap_or(rank as f64) / rank as f64;
        let out = up.dim(0)?;
        let delta = up.reshape((out, rank))?.matmul(&down.reshape((rank, ()))?)?;
        let delta = (delta.reshape(base.shape())?.to_dtype(base.dtype())? * scale)?;
        let merged = (base + delta).map_err(|e| CandleError::Lora(format!("{module}: {e}")))?;
        target.insert(key.clone(), merged);
        applied += 1;
    }
    Ok(applied)
}
