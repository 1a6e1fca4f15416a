//! transformers' `CLIPTextModel` / `CLIPTextModelWithProjection`, built from the config.
//!
//! Written here rather than taken from candle-transformers because its config fields are private
//! (a tiny CLIP cannot be built), it maps "gelu" to the tanh approximation, and it exposes neither
//! every hidden state (SDXL needs the penultimate one) nor the pooled/projected output.

use candle_core::{DType, Device, IndexOp, Module, Result, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};

use super::blocks::attention;
use crate::config::{Activation, ClipTextConfig};

#[derive(Debug, Clone)]
struct EncoderLayer {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// Everything a diffusion pipeline may take from a text encoder.
#[derive(Debug, Clone)]
pub struct ClipOutput {
    /// Output of the last layer after `final_layer_norm` (SD 1.x / 2.x conditioning).
    pub last_hidden_state: Tensor,
    /// Output of the second-to-last layer, no final norm (SDXL conditioning, "clip skip 2").
    pub penultimate: Tensor,
    /// `last_hidden_state` at the end-of-text position.
    pub pooled: Tensor,
    /// `text_projection(pooled)` when the checkpoint has a projection.
    pub text_embeds: Option<Tensor>,
}

/// A CLIP text transformer with a causal mask.
#[derive(Debug, Clone)]
pub struct ClipTextModel {
    token_embedding: Embedding,
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    final_ln: LayerNorm,
    projection: Option<Linear>,
    heads: usize,
    act: Activation,
    eos_token_id: i64,
}

impl ClipTextModel {
    /// `vb` is rooted at the encoder's weight file (names `text_model.*`, `text_projection.*`).
    pub fn new(cfg: &ClipTextConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let act = Activation::parse(&cfg.hidden_act).ok_or_else(|| {
            candle_core::Error::Msg(format!("unsupported hidden_act {}", cfg.hidden_act))
        })?;
        let tm = vb.pp("text_model");
        let emb = tm.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = tm.pp(format!("encoder.layers.{i}"));
                let a = l.pp("self_attn");
                Ok(EncoderLayer {
                    ln1: candle_nn::layer_norm(h, cfg.layer_norm_eps, l.pp("layer_norm1"))?,
                    q: candle_nn::linear(h, h, a.pp("q_proj"))?,
                    k: candle_nn::linear(h, h, a.pp("k_proj"))?,
                    v: candle_nn::linear(h, h, a.pp("v_proj"))?,
                    o: candle_nn::linear(h, h, a.pp("out_proj"))?,
                    ln2: candle_nn::layer_norm(h, cfg.layer_norm_eps, l.pp("layer_norm2"))?,
                    fc1: candle_nn::linear(h, cfg.intermediate_size, l.pp("mlp.fc1"))?,
                    fc2: candle_nn::linear(cfg.intermediate_size, h, l.pp("mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            token_embedding: candle_nn::embedding(cfg.vocab_size, h, emb.pp("token_embedding"))?,
            position_embedding: emb
                .pp("position_embedding")
                .get((cfg.max_position_embeddings, h), "weight")?,
            layers,
            final_ln: candle_nn::layer_norm(h, cfg.layer_norm_eps, tm.pp("final_layer_norm"))?,
            projection: cfg
                .has_projection()
                .then(|| candle_nn::linear_no_bias(h, cfg.projection_dim, vb.pp("text_projection")))
                .transpose()?,
            heads: cfg.num_attention_heads,
            act,
            eos_token_id: cfg.eos_token_id,
        })
    }

    fn activation(&self, x: &Tensor) -> Result<Tensor> {
        match self.act {
            Activation::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
            Activation::GeluErf => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
        }
    }

    fn causal_mask(len: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        let mask: Vec<f32> = (0..len)
            .flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        Tensor::from_vec(mask, (1, 1, len, len), device)?.to_dtype(dtype)
    }

    /// Encodes `[B, L]` token ids (u32).
    pub fn forward(&self, ids: &Tensor) -> Result<ClipOutput> {
        let (b, len) = ids.dims2()?;
        let pos = self.position_embedding.narrow(0, 0, len)?;
        let mut x = self.token_embedding.forward(ids)?.broadcast_add(&pos)?;
        let mask = Self::causal_mask(len, DType::F32, ids.device())?;
        let mut penultimate = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            if i + 1 == self.layers.len() {
                penultimate = x.clone();
            }
            let h = l.ln1.forward(&x)?;
            let a = attention(
                &l.q.forward(&h)?,
                &l.k.forward(&h)?,
                &l.v.forward(&h)?,
                self.heads,
                Some(&mask),
            )?;
            x = (x + l.o.forward(&a)?)?;
            let h = l.ln2.forward(&x)?;
            x = (&x + l.fc2.forward(&self.activation(&l.fc1.forward(&h)?)?)?)?;
        }
        let last = self.final_ln.forward(&x)?;
        // transformers: legacy configs (eos_token_id == 2) pool at the highest id, which is
        // <|endoftext|>; newer configs pool at the first eos_token_id.
        let ids_vec: Vec<Vec<u32>> = ids.to_vec2()?;
        let mut rows = Vec::with_capacity(b);
        for (row, r) in ids_vec.iter().enumerate() {
            let at = if self.eos_token_id == 2 {
                r.iter()
                    .enumerate()
                    .fold(
                        (0usize, 0u32),
                        |best, (i, &v)| if v > best.1 { (i, v) } else { best },
                    )
                    .0
            } else {
                r.iter()
                    .position(|&v| v as i64 == self.eos_token_id)
                    .unwrap_or(len - 1)
            };
            rows.push(last.i((row, at))?.unsqueeze(0)?);
        }
        let pooled = Tensor::cat(&rows, 0)?;
        let text_embeds = self
            .projection
            .as_ref()
            .map(|p| p.forward(&pooled))
            .transpose()?;
        Ok(ClipOutput {
            last_hidden_state: last,
            penultimate,
            pooled,
            text_embeds,
        })
    }

    /// Hidden size of the last layer.
    pub fn hidden_size(&self) -> usize {
        self.final_ln_dim()
    }

    fn final_ln_dim(&self) -> usize {
        self.position_embedding.dim(D::Minus1).unwrap_or(0)
    }
}
