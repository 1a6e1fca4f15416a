//! transformers' `CLIPTextModel` / `CLIPTextModelWithProjection`, built from the config.
//!
//! Written here rather than taken from candle-transformers because its config fields are private
//! (a tiny CLIP cannot be built), it maps "gelu" to the tanh approximation, and it exposes neither
//! every hidden state (SDXL needs the penultimate one) nor the pooled/projected output.

use candle_core::{IndexOp, Module, Result, Tensor, D};
use candle_nn::{Embedding, VarBuilder};

use super::blocks::attention;
use crate::config::{Activation, ClipTextConfig};
use crate::layers::{LayerNorm, Linear};

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

impl EncoderLayer {
    /// Layers `0..n` under `vb` (`encoder.layers.{i}`).
    fn stack(n: usize, h: usize, inter: usize, eps: f64, vb: &VarBuilder) -> Result<Vec<Self>> {
        (0..n)
            .map(|i| Self::new(h, inter, eps, vb.pp(i.to_string())))
            .collect()
    }

    fn new(h: usize, inter: usize, eps: f64, l: VarBuilder) -> Result<Self> {
        let a = l.pp("self_attn");
        Ok(Self {
            ln1: LayerNorm::new(h, eps, l.pp("layer_norm1"))?,
            q: Linear::new(h, h, true, a.pp("q_proj"))?,
            k: Linear::new(h, h, true, a.pp("k_proj"))?,
            v: Linear::new(h, h, true, a.pp("v_proj"))?,
            o: Linear::new(h, h, true, a.pp("out_proj"))?,
            ln2: LayerNorm::new(h, eps, l.pp("layer_norm2"))?,
            fc1: Linear::new(h, inter, true, l.pp("mlp.fc1"))?,
            fc2: Linear::new(inter, h, true, l.pp("mlp.fc2"))?,
        })
    }

    fn forward(&self, x: &Tensor, heads: usize, act: Activation, causal: bool) -> Result<Tensor> {
        let h = self.ln1.forward(x)?;
        let a = attention(
            &self.q.forward(&h)?,
            &self.k.forward(&h)?,
            &self.v.forward(&h)?,
            heads,
            causal,
        )?;
        let x = (x + self.o.forward(&a)?)?;
        let h = self.ln2.forward(&x)?;
        let m = self.fc1.forward(&h)?;
        let m = match act {
            Activation::QuickGelu => (&m * candle_nn::ops::sigmoid(&(&m * 1.702)?)?)?,
            Activation::GeluErf => m.gelu_erf()?,
            Activation::GeluTanh => m.gelu()?,
        };
        &x + self.fc2.forward(&m)?
    }
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
        let layers = EncoderLayer::stack(
            cfg.num_hidden_layers,
            h,
            cfg.intermediate_size,
            cfg.layer_norm_eps,
            &tm.pp("encoder.layers"),
        )?;
        Ok(Self {
            token_embedding: candle_nn::embedding(cfg.vocab_size, h, emb.pp("token_embedding"))?,
            position_embedding: emb
                .pp("position_embedding")
                .get((cfg.max_position_embeddings, h), "weight")?,
            layers,
            final_ln: LayerNorm::new(h, cfg.layer_norm_eps, tm.pp("final_layer_norm"))?,
            projection: cfg
                .has_projection()
                .then(|| Linear::new(h, cfg.projection_dim, false, vb.pp("text_projection")))
                .transpose()?,
            heads: cfg.num_attention_heads,
            act,
            eos_token_id: cfg.eos_token_id,
        })
    }

    /// Encodes `[B, L]` token ids (u32).
    pub fn forward(&self, ids: &Tensor) -> Result<ClipOutput> {
        let (b, len) = ids.dims2()?;
        let pos = self.position_embedding.narrow(0, 0, len)?;
        let mut x = self.token_embedding.forward(ids)?.broadcast_add(&pos)?;
        let mut penultimate = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            if i + 1 == self.layers.len() {
                penultimate = x.clone();
            }
            x = l.forward(&x, self.heads, self.act, true)?;
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

/// transformers' `CLIPVisionConfig` (the fields the vision tower needs; defaults as there).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct ClipVisionConfig {
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    #[serde(default = "d_inter")]
    pub intermediate_size: usize,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "d_image")]
    pub image_size: usize,
    #[serde(default = "d_patch")]
    pub patch_size: usize,
    #[serde(default = "d_channels")]
    pub num_channels: usize,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
}

fn d_hidden() -> usize {
    768
}
fn d_inter() -> usize {
    3072
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    12
}
fn d_image() -> usize {
    224
}
fn d_patch() -> usize {
    32
}
fn d_channels() -> usize {
    3
}
fn d_act() -> String {
    "quick_gelu".into()
}
fn d_eps() -> f64 {
    1e-5
}

/// transformers' `CLIPVisionModel`: patch embedding, class token, pre-norm, encoder, and the
/// post-normed class token as the pooled output (what the SD safety checker projects).
#[derive(Debug, Clone)]
pub struct ClipVisionModel {
    patch: Tensor,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_ln: LayerNorm,
    layers: Vec<EncoderLayer>,
    post_ln: LayerNorm,
    heads: usize,
    patch_size: usize,
    act: Activation,
}

impl ClipVisionModel {
    /// `vb` is rooted at the `vision_model` prefix (names `embeddings.*`, `encoder.*`…).
    pub fn new(cfg: &ClipVisionConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let act = Activation::parse(&cfg.hidden_act).ok_or_else(|| {
            candle_core::Error::Msg(format!("unsupported hidden_act {}", cfg.hidden_act))
        })?;
        if cfg.patch_size == 0 || !cfg.image_size.is_multiple_of(cfg.patch_size) {
            return Err(candle_core::Error::Msg(format!(
                "image_size {} is not a multiple of patch_size {}",
                cfg.image_size, cfg.patch_size
            )));
        }
        let grid = cfg.image_size / cfg.patch_size;
        let emb = vb.pp("embeddings");
        let layers = EncoderLayer::stack(
            cfg.num_hidden_layers,
            h,
            cfg.intermediate_size,
            cfg.layer_norm_eps,
            &vb.pp("encoder.layers"),
        )?;
        Ok(Self {
            patch: emb.get(
                (h, cfg.num_channels, cfg.patch_size, cfg.patch_size),
                "patch_embedding.weight",
            )?,
            class_embedding: emb.get(h, "class_embedding")?,
            position_embedding: emb.get((grid * grid + 1, h), "position_embedding.weight")?,
            pre_ln: LayerNorm::new(h, cfg.layer_norm_eps, vb.pp("pre_layrnorm"))?,
            layers,
            post_ln: LayerNorm::new(h, cfg.layer_norm_eps, vb.pp("post_layernorm"))?,
            heads: cfg.num_attention_heads,
            patch_size: cfg.patch_size,
            act,
        })
    }

    /// Pooled output `[B, hidden]` for normalised pixels `[B, C, S, S]`.
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let b = pixels.dim(0)?;
        let x = pixels.conv2d(&self.patch, 0, self.patch_size, 1, 1)?;
        let h = x.dim(1)?;
        let x = x.flatten_from(2)?.transpose(1, 2)?;
        let cls = self.class_embedding.reshape((1, 1, h))?.repeat((b, 1, 1))?;
        let x = Tensor::cat(&[cls, x], 1)?.broadcast_add(&self.position_embedding)?;
        let mut x = self.pre_ln.forward(&x)?;
        for l in &self.layers {
            x = l.forward(&x, self.heads, self.act, false)?;
        }
        self.post_ln.forward(&x.i((.., 0))?)
    }
}
