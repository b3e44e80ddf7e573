//! Merging LoRA weights into UNet and text-encoder weights: `W += weight · alpha/rank · up·down`.
//!
//! Names understood: kohya (`lora_unet_down_blocks_0_…_to_q.lora_down.weight`, `lora_te_…`,
//! SDXL's `lora_te1_…`/`lora_te2_…`, `.alpha`) and diffusers/PEFT
//! (`unet.down_blocks.0.….to_q.lora_A.weight`, `text_encoder.…`, `text_encoder_2.…`). UNet module
//! paths must be diffusers' (`down_blocks`, `mid_block`, `up_blocks`); kohya SDXL files that use the
//! original `input_blocks`/`middle_block`/`output_blocks` paths are refused, as is any module
//! that matches no weight of the model: a LoRA is applied whole or not at all.
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

/// Which part a LoRA module targets: the UNet or text encoder *n* (0 = `text_encoder`, 1 = `text_encoder_2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The UNet.
    Unet,
    /// A text encoder by index.
    Text(usize),
}

/// Name prefixes (after `.` → `_`), most specific first.
const PREFIXES: [(&str, Target); 7] = [
    ("lora_unet_", Target::Unet),
    ("unet_", Target::Unet),
    ("lora_te1_", Target::Text(0)),
    ("lora_te2_", Target::Text(1)),
    ("lora_te_", Target::Text(0)),
    ("text_encoder_2_", Target::Text(1)),
    ("text_encoder_", Target::Text(0)),
];

/// A LoRA tensor name split into its target, module path in kohya's underscore form and part
/// (`down`, `up` or `alpha`); `None` for tensors that are not LoRA weights.
pub fn split(name: &str) -> Option<(Target, String, &'static str)> {
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
    PREFIXES.iter().find_map(|(prefix, target)| flat.strip_prefix(prefix).map(|rest| (*target, rest.to_owned(), part)))
}

/// Why a LoRA cannot apply to a model of `text_encoders` encoders, from its tensor names alone
/// (what a request check can afford); `None` when the names fit.
pub fn incompatible<'a>(names: impl IntoIterator<Item = &'a str>, text_encoders: usize) -> Option<String> {
    let mut any = false;
    for name in names {
        if name == "__metadata__" {
            continue;
        }
        let Some((target, module, _)) = split(name) else {
            if name.contains("lora") {
                return Some(format!("unrecognised LoRA tensor name {name:?}"));
            }
            continue;
        };
        any = true;
        if let Target::Text(n) = target
            && n >= text_encoders
        {
            return Some(format!("{name:?} targets a second text encoder, which this model lacks (an SDXL LoRA?)"));
        }
        if target == Target::Unet
            && ["input_blocks_", "middle_block_", "output_blocks_"].iter().any(|p| module.starts_with(p))
        {
            return Some(format!(
                "{name:?} uses the original (SGM) UNet layout; only diffusers module names (down_blocks, \
                 mid_block, up_blocks) are supported"
            ));
        }
    }
    (!any).then(|| "no LoRA weights (lora_down/lora_up or lora_A/lora_B) in the file".to_owned())
}

/// Merges `lora` scaled by `weight` into the base weights (`text[n]` is text encoder *n*);
/// returns how many tensors changed. A module that matches no weight is an error.
pub fn merge(lora: &Weights, weight: f32, unet: &mut Weights, text: &mut [Weights]) -> Result<usize, CandleError> {
    let mut pairs: HashMap<(Target, String), Pair> = HashMap::new();
    for (name, tensor) in lora {
        let Some((target, module, part)) = split(name) else { continue };
        let pair = pairs.entry((target, module)).or_default();
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
    let unet_index = index(unet);
    let text_index: Vec<_> = text.iter().map(index).collect();
    let mut applied = 0;
    // Sorted so that the error names the same module every time.
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort_by(|a, b| a.0.1.cmp(&b.0.1));
    for ((target, module), pair) in pairs {
        let (Some(down), Some(up)) = (pair.down, pair.up) else {
            return Err(CandleError::Lora(format!("{module}: needs both the down (A) and up (B) matrices")));
        };
        let (target_index, weights) = match target {
            Target::Unet => (&unet_index, &mut *unet),
            Target::Text(n) => match (text_index.get(n), text.get_mut(n)) {
                (Some(i), Some(w)) => (i, w),
                _ => return Err(CandleError::Lora(format!("{module}: this model has no text encoder {}", n + 1))),
            },
        };
        let Some((key, base)) = target_index.get(&module).and_then(|k| weights.get(k).map(|b| (k.clone(), b))) else {
            return Err(CandleError::Lora(format!("{module} ({target:?}) matches no weight of this model")));
        };
        let rank = down.dim(0)?;
        let scale = f64::from(weight) * pair.alpha.unwrap_or(rank as f64) / rank as f64;
        let out = up.dim(0)?;
        let delta = up.reshape((out, rank))?.matmul(&down.reshape((rank, ()))?)?;
        let delta = (delta.reshape(base.shape())?.to_dtype(base.dtype())? * scale)
            .map_err(|e| CandleError::Lora(format!("{module}: {e}")))?;
        let merged = (base + delta).map_err(|e| CandleError::Lora(format!("{module}: {e}")))?;
        weights.insert(key, merged);
        applied += 1;
    }
    if applied == 0 {
        return Err(CandleError::Lora("no tensor matches this model".into()));
    }
    Ok(applied)
}

/// Tensor names of a safetensors file, read from its header only (no weights).
pub fn tensor_names(path: &std::path::Path) -> Result<Vec<String>, CandleError> {
    use std::io::Read;
    /// Headers larger than this are not LoRAs worth reading.
    const MAX_HEADER: u64 = 64 << 20;
    let io = |e: std::io::Error| CandleError::io(path, &e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        return Err(CandleError::Lora(format!("{}: safetensors header of {len} bytes", path.display())));
    }
    let mut header = Vec::new();
    file.take(len).read_to_end(&mut header).map_err(io)?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| CandleError::Lora(format!("{}: not a safetensors header: {e}", path.display())))?;
    Ok(header.into_iter().map(|(k, _)| k).filter(|k| k != "__metadata__").collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn names_map_to_their_targets() {
        let te2 = split("lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight").unwrap();
        assert_eq!((te2.0, te2.2), (Target::Text(1), "down"));
        let peft = split("text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight").unwrap();
        assert_eq!((peft.0, peft.1.as_str()), (Target::Text(1), "text_model_encoder_layers_0_self_attn_q_proj"));
        assert_eq!(split("text_encoder.text_model.x.lora_A.weight").unwrap().0, Target::Text(0));
        assert_eq!(split("lora_te_text_model_x.alpha").unwrap().0, Target::Text(0));
        assert!(split("unet.conv_in.weight").is_none());
        let sgm = ["lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q.lora_down.weight"];
        assert!(incompatible(sgm, 2).unwrap().contains("SGM"));
        let te2 = ["lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"];
        assert!(incompatible(te2, 1).unwrap().contains("second text encoder"));
        assert_eq!(incompatible(te2, 2), None);
        assert!(incompatible(["__metadata__", "conv.weight"], 2).unwrap().contains("no LoRA weights"));
    }
}
