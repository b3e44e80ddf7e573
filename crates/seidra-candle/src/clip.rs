//! The CLIP text encoder of SD 1.x/2.x, sized from `text_encoder/config.json`.
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

/// A CLIP text transformer returning the last hidden state `(batch, tokens, hidden)`.
#[derive(Debug)]
pub struct ClipTextEncoder {
    token_embedding: Embedding,
    position_embedding: Embedding,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    heads: usize,
    activation: Activation,
    /// Tokens per prompt.
    pub max_positions: usize,
}

impl ClipTextEncoder {
    /// Builds the encoder from weights under `text_model.`.
    pub fn new(vb: VarBuilder, c: &ClipJson) -> Result<Self> {
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
            heads: c.num_attention_heads,
            activation,
            max_positions: c.max_position_embeddings,
        })
    }

    /// Encodes token ids `(batch, tokens)`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let device = ids.device();
        let positions = Tensor::arange(0u32, seq as u32, device)?.unsqueeze(0)?;
        let mut xs = self.token_embedding.forward(ids)?.broadcast_add(&self.position_embedding.forward(&positions)?)?;
        let mask = causal_mask(seq, xs.dtype(), device)?;
        let hidden = xs.dim(D::Minus1)?;
        let head_dim = hidden / self.heads;
        let scale = (head_dim as f64).powf(-0.5);
        for layer in &self.layers {
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
        self.final_norm.forward(&xs)
    }
}

fn causal_mask(seq: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> =
        (0..seq).flat_map(|i| (0..seq).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
    Tensor::from_slice(&mask, (seq, seq), device)?.to_dtype(dtype)
}
