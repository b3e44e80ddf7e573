//! The CLIP text encoders of SD 1.x/2.x and SDXL, sized from `text_encoder{,_2}/config.json`.
//!
//! candle's `stable_diffusion::clip::Config` keeps its sizes private (presets only), so a
//! tiny test encoder cannot be described with it; this is the same transformer (weight names
//! of `transformers`' `CLIPTextModel`) with every size taken from the config.

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear};

use crate::config::ClipJson;

#[derive(Debug, Clone, Copy)]
enum Activation {
    QuickGelu,
    Gelu,
}

impl Activation {
    fn forward(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702f64)?)?,
            Self::Gelu => xs.gelu_erf(),
        }
    }
}

#[derive(Debug)]
struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    norm1: LayerNorm,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// What one forward pass gives.
#[derive(Debug)]
pub struct Encoded {
    /// Last hidden state after the final layer norm `(batch, tokens, hidden)` (SD 1.x/2.x).
    pub last: Tensor,
    /// Output of the second-to-last layer, not normalised (SDXL's `hidden_states[-2]`).
    pub penultimate: Tensor,
}

/// A CLIP text transformer (`CLIPTextModel`, or `CLIPTextModelWithProjection` with `projection`).
#[derive(Debug)]
pub struct ClipTextEncoder {
    token_embedding: Embedding,
    position_embedding: Embedding,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    projection: Option<Linear>,
    heads: usize,
    activation: Activation,
    /// Tokens per prompt.
    pub max_positions: usize,
}

impl ClipTextEncoder {
    /// Builds the encoder from weights under `text_model.` (and `text_projection` when
    /// `with_projection`, sized by the config's `projection_dim`).
    pub fn new(vb: VarBuilder, c: &ClipJson, with_projection: bool) -> Result<Self> {
        let projection = if with_projection {
            let width = c.projection_dim.unwrap_or(c.hidden_size);
            Some(candle_nn::linear_no_bias(c.hidden_size, width, vb.pp("text_projection"))?)
        } else {
            None
        };
        let vb = vb.pp("text_model");
        let emb = vb.pp("embeddings");
        let token_embedding = embedding(c.vocab_size, c.hidden_size, emb.pp("token_embedding"))?;
        let position_embedding = embedding(c.max_position_embeddings, c.hidden_size, emb.pp("position_embedding"))?;
        let h = c.hidden_size;
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = vb.pp("encoder.layers").pp(i.to_string());
                let attn = l.pp("self_attn");
                Ok(Layer {
                    q: linear(h, h, attn.pp("q_proj"))?,
                    k: linear(h, h, attn.pp("k_proj"))?,
                    v: linear(h, h, attn.pp("v_proj"))?,
                    out: linear(h, h, attn.pp("out_proj"))?,
                    norm1: layer_norm(h, c.layer_norm_eps, l.pp("layer_norm1"))?,
                    norm2: layer_norm(h, c.layer_norm_eps, l.pp("layer_norm2"))?,
                    fc1: linear(h, c.intermediate_size, l.pp("mlp.fc1"))?,
                    fc2: linear(c.intermediate_size, h, l.pp("mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let final_norm = layer_norm(h, c.layer_norm_eps, vb.pp("final_layer_norm"))?;
        let activation = if c.hidden_act == "quick_gelu" { Activation::QuickGelu } else { Activation::Gelu };
        Ok(Self {
            token_embedding,
            position_embedding,
            layers,
            final_norm,
            projection,
            heads: c.num_attention_heads,
            activation,
            max_positions: c.max_position_embeddings,
        })
    }

    /// Encodes token ids `(batch, tokens)` into the last hidden state (SD 1.x/2.x conditioning).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(self.encode(ids)?.last)
    }

    /// The pooled, projected embedding `(batch, projection)` of SDXL's second encoder: the
    /// normalised last hidden state at each row's end-of-text position, through `text_projection`.
    pub fn pooled(&self, last: &Tensor, end_positions: &[u32]) -> Result<Tensor> {
        let rows = end_positions
            .iter()
            .enumerate()
            .map(|(row, &pos)| last.get(row)?.get(pos as usize))
            .collect::<Result<Vec<_>>>()?;
        let pooled = Tensor::stack(&rows, 0)?;
        match &self.projection {
            Some(projection) => projection.forward(&pooled),
            None => Ok(pooled),
        }
    }

    /// Encodes token ids `(batch, tokens)`, keeping the penultimate layer's output too.
    pub fn encode(&self, ids: &Tensor) -> Result<Encoded> {
        let (batch, seq) = ids.dims2()?;
        let device = ids.device();
        let positions = Tensor::arange(0u32, seq as u32, device)?.unsqueeze(0)?;
        let mut xs = self.token_embedding.forward(ids)?.broadcast_add(&self.position_embedding.forward(&positions)?)?;
        let mask = causal_mask(seq, xs.dtype(), device)?;
        let hidden = xs.dim(D::Minus1)?;
        let head_dim = hidden / self.heads;
        let scale = (head_dim as f64).powf(-0.5);
        let mut penultimate = xs.clone();
        for (index, layer) in self.layers.iter().enumerate() {
            if index + 1 == self.layers.len() {
                penultimate = xs.clone();
            }
            let residual = xs.clone();
            let x = layer.norm1.forward(&xs)?;
            let shape = |t: Tensor| t.reshape((batch, seq, self.heads, head_dim))?.transpose(1, 2)?.contiguous();
            let q = shape((layer.q.forward(&x)? * scale)?)?;
            let k = shape(layer.k.forward(&x)?)?;
            let v = shape(layer.v.forward(&x)?)?;
            let weights = q.matmul(&k.t()?.contiguous()?)?.broadcast_add(&mask)?;
            let weights = candle_nn::ops::softmax_last_dim(&weights)?;
            let attn = weights.matmul(&v)?.transpose(1, 2)?.reshape((batch, seq, hidden))?;
            xs = (layer.out.forward(&attn)? + residual)?;
            let residual = xs.clone();
            let x = layer.norm2.forward(&xs)?;
            let x = layer.fc2.forward(&self.activation.forward(&layer.fc1.forward(&x)?)?)?;
            xs = (x + residual)?;
        }
        Ok(Encoded { last: self.final_norm.forward(&xs)?, penultimate })
    }
}

fn causal_mask(seq: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> =
        (0..seq).flat_map(|i| (0..seq).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_slice(&mask, (seq, seq), device)?.to_dtype(dtype)
}
