//! Building blocks shared by the UNet and the VAE, named exactly as diffusers names their weights.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::{Conv2d, Conv2dConfig, GroupNorm, LayerNorm, Linear, VarBuilder};

/// A 2D convolution with bias, `k`x`k`, stride 1 and "same" padding unless told otherwise.
pub fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    padding: usize,
    stride: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let cfg = Conv2dConfig {
        padding,
        stride,
        ..Default::default()
    };
    candle_nn::conv2d(cin, cout, k, cfg, vb)
}

/// Multi-head scaled dot-product attention on `[B, L, H*D]` tensors.
///
/// Scores are computed in f32 for half-precision inputs (as diffusers' `upcast_softmax`) so long
/// sequences do not overflow.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (b, lq, c) = q.dims3()?;
    let lk = k.dim(1)?;
    let d = c / heads;
    let split = |t: &Tensor, l: usize| t.reshape((b, l, heads, d))?.transpose(1, 2)?.contiguous();
    let q = split(q, lq)?;
    let k = split(k, lk)?;
    let v = split(v, lk)?;
    let in_dtype = q.dtype();
    let scale = 1.0 / (d as f64).sqrt();
    let (q, k) = if in_dtype == DType::F32 {
        (q, k)
    } else {
        (q.to_dtype(DType::F32)?, k.to_dtype(DType::F32)?)
    };
    let mut scores = ((q * scale)?.matmul(&k.t()?))?;
    if let Some(m) = mask {
        scores = scores.broadcast_add(m)?;
    }
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(in_dtype)?;
    probs.matmul(&v)?.transpose(1, 2)?.reshape((b, lq, c))
}

/// diffusers `Attention` as used in transformer blocks: q/k/v without bias, `to_out.0` with bias.
#[derive(Debug, Clone)]
pub struct CrossAttention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl CrossAttention {
    /// Builds the layer, reading its weights under `vb` (diffusers names).
    pub fn new(
        query_dim: usize,
        context_dim: Option<usize>,
        heads: usize,
        head_dim: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let inner = heads * head_dim;
        let ctx = context_dim.unwrap_or(query_dim);
        Ok(Self {
            to_q: candle_nn::linear_no_bias(query_dim, inner, vb.pp("to_q"))?,
            to_k: candle_nn::linear_no_bias(ctx, inner, vb.pp("to_k"))?,
            to_v: candle_nn::linear_no_bias(ctx, inner, vb.pp("to_v"))?,
            to_out: candle_nn::linear(inner, query_dim, vb.pp("to_out.0"))?,
            heads,
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor, context: Option<&Tensor>) -> Result<Tensor> {
        let ctx = context.unwrap_or(x);
        let q = self.to_q.forward(x)?;
        let k = self.to_k.forward(ctx)?;
        let v = self.to_v.forward(ctx)?;
        self.to_out
            .forward(&attention(&q, &k, &v, self.heads, None)?)
    }
}

/// The GEGLU feed-forward of diffusers' `BasicTransformerBlock` (exact erf GELU on the gate).
#[derive(Debug, Clone)]
pub struct GegluFeedForward {
    proj: Linear,
    out: Linear,
}

impl GegluFeedForward {
    /// Builds the layer, reading its weights under `vb` (diffusers names).
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let inner = dim * 4;
        Ok(Self {
            proj: candle_nn::linear(dim, inner * 2, vb.pp("net.0.proj"))?,
            out: candle_nn::linear(inner, dim, vb.pp("net.2"))?,
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.proj.forward(x)?;
        let half = h.dim(D::Minus1)? / 2;
        let value = h.narrow(D::Minus1, 0, half)?;
        let gate = h.narrow(D::Minus1, half, half)?.gelu_erf()?;
        self.out.forward(&(value * gate)?)
    }
}

/// diffusers `BasicTransformerBlock`: self-attention, cross-attention, GEGLU, each pre-normed.
#[derive(Debug, Clone)]
pub struct BasicTransformerBlock {
    norm1: LayerNorm,
    attn1: CrossAttention,
    norm2: LayerNorm,
    attn2: CrossAttention,
    norm3: LayerNorm,
    ff: GegluFeedForward,
}

impl BasicTransformerBlock {
    /// Builds the layer, reading its weights under `vb` (diffusers names).
    pub fn new(
        dim: usize,
        heads: usize,
        head_dim: usize,
        context_dim: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            norm1: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm1"))?,
            attn1: CrossAttention::new(dim, None, heads, head_dim, vb.pp("attn1"))?,
            norm2: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm2"))?,
            attn2: CrossAttention::new(dim, Some(context_dim), heads, head_dim, vb.pp("attn2"))?,
            norm3: candle_nn::layer_norm(dim, 1e-5, vb.pp("norm3"))?,
            ff: GegluFeedForward::new(dim, vb.pp("ff"))?,
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let x = (self.attn1.forward(&self.norm1.forward(x)?, None)? + x)?;
        let x = (self
            .attn2
            .forward(&self.norm2.forward(&x)?, Some(context))?
            + &x)?;
        self.ff.forward(&self.norm3.forward(&x)?)? + x
    }
}

/// A 1x1 conv or a linear layer: SD1 projects in/out of transformers with convs, SD2/SDXL with linears.
#[derive(Debug, Clone)]
enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

/// diffusers `Transformer2DModel` (continuous input): group norm, project in, N blocks, project out, residual.
#[derive(Debug, Clone)]
pub struct Transformer2D {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<BasicTransformerBlock>,
    proj_out: Projection,
}

/// Shape parameters of a [`Transformer2D`].
#[derive(Debug, Clone, Copy)]
pub struct Transformer2DConfig {
    pub channels: usize,
    pub heads: usize,
    pub layers: usize,
    pub context_dim: usize,
    pub groups: usize,
    pub linear_projection: bool,
}

impl Transformer2D {
    /// Builds the layer, reading its weights under `vb` (diffusers names).
    pub fn new(cfg: Transformer2DConfig, vb: VarBuilder) -> Result<Self> {
        let c = cfg.channels;
        let proj = |name: &str| -> Result<Projection> {
            if cfg.linear_projection {
                Ok(Projection::Linear(candle_nn::linear(c, c, vb.pp(name))?))
            } else {
                Ok(Projection::Conv(conv(c, c, 1, 0, 1, vb.pp(name))?))
            }
        };
        let blocks = (0..cfg.layers)
            .map(|i| {
                BasicTransformerBlock::new(
                    c,
                    cfg.heads,
                    c / cfg.heads,
                    cfg.context_dim,
                    vb.pp(format!("transformer_blocks.{i}")),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            norm: candle_nn::group_norm(cfg.groups, c, 1e-6, vb.pp("norm"))?,
            proj_in: proj("proj_in")?,
            blocks,
            proj_out: proj("proj_out")?,
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let to_seq = |t: Tensor| t.permute((0, 2, 3, 1))?.reshape((b, h * w, c));
        let to_map = |t: Tensor| t.reshape((b, h, w, c))?.permute((0, 3, 1, 2))?.contiguous();
        let normed = self.norm.forward(x)?;
        let mut seq = match &self.proj_in {
            Projection::Conv(p) => to_seq(p.forward(&normed)?)?,
            Projection::Linear(p) => p.forward(&to_seq(normed)?)?,
        };
        for block in &self.blocks {
            seq = block.forward(&seq, context)?;
        }
        let out = match &self.proj_out {
            Projection::Conv(p) => p.forward(&to_map(seq)?)?,
            Projection::Linear(p) => to_map(p.forward(&seq)?)?,
        };
        out + x
    }
}

/// diffusers `ResnetBlock2D` with the "default" time-embedding injection.
#[derive(Debug, Clone)]
pub struct ResnetBlock2D {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
    output_scale: f64,
}

/// Shape parameters of a [`ResnetBlock2D`].
#[derive(Debug, Clone, Copy)]
pub struct ResnetConfig {
    pub cin: usize,
    pub cout: usize,
    pub temb: Option<usize>,
    pub groups: usize,
    pub eps: f64,
    pub output_scale: f64,
}

impl ResnetBlock2D {
    /// Builds the layer, reading its weights under `vb` (diffusers names).
    pub fn new(cfg: ResnetConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: candle_nn::group_norm(cfg.groups, cfg.cin, cfg.eps, vb.pp("norm1"))?,
            conv1: conv(cfg.cin, cfg.cout, 3, 1, 1, vb.pp("conv1"))?,
            time_emb_proj: cfg
                .temb
                .map(|t| candle_nn::linear(t, cfg.cout, vb.pp("time_emb_proj")))
                .transpose()?,
            norm2: candle_nn::group_norm(cfg.groups, cfg.cout, cfg.eps, vb.pp("norm2"))?,
            conv2: conv(cfg.cout, cfg.cout, 3, 1, 1, vb.pp("conv2"))?,
            shortcut: (cfg.cin != cfg.cout)
                .then(|| conv(cfg.cin, cfg.cout, 1, 0, 1, vb.pp("conv_shortcut")))
                .transpose()?,
            output_scale: cfg.output_scale,
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        let mut h = self.conv1.forward(&self.norm1.forward(x)?.silu()?)?;
        if let (Some(proj), Some(t)) = (&self.time_emb_proj, temb) {
            let t = proj.forward(&t.silu()?)?.unsqueeze(2)?.unsqueeze(3)?;
            h = h.broadcast_add(&t)?;
        }
        let h = self.conv2.forward(&self.norm2.forward(&h)?.silu()?)?;
        let skip = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        let out = (skip + h)?;
        if self.output_scale == 1.0 {
            Ok(out)
        } else {
            out / self.output_scale
        }
    }
}

/// Strided 3x3 conv halving the resolution (`downsamplers.0.conv`). `pad_right_bottom` is the
/// VAE encoder's asymmetric (0,1,0,1) padding.
#[derive(Debug, Clone)]
pub struct Downsample2D {
    conv: Conv2d,
    pad_right_bottom: bool,
}

impl Downsample2D {
    /// Builds the layer, reading its weights under `vb` (diffusers names).
    pub fn new(c: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv(c, c, 3, padding, 2, vb.pp("conv"))?,
            pad_right_bottom: padding == 0,
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.pad_right_bottom {
            let x = x.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
            self.conv.forward(&x)
        } else {
            self.conv.forward(x)
        }
    }
}

/// Nearest-neighbour upsampling followed by a 3x3 conv (`upsamplers.0.conv`).
#[derive(Debug, Clone)]
pub struct Upsample2D {
    conv: Conv2d,
}

impl Upsample2D {
    /// Builds the layer, reading its weights under `vb` (diffusers names).
    pub fn new(c: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv(c, c, 3, 1, 1, vb.pp("conv"))?,
        })
    }

    /// Upsamples to `size` (the matching skip connection's size) or to twice the input.
    pub fn forward(&self, x: &Tensor, size: Option<(usize, usize)>) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let (th, tw) = size.unwrap_or((2 * h, 2 * w));
        self.conv.forward(&x.upsample_nearest2d(th, tw)?)
    }
}

/// Sinusoidal timestep features as diffusers' `get_timestep_embedding` (f32 throughout).
pub fn timestep_embedding(
    t: &Tensor,
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
) -> Result<Tensor> {
    let half = dim / 2;
    let device = t.device();
    let denom = half as f32 - freq_shift as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10000f32.ln()) * i as f32 / denom).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), device)?;
    let args = t
        .to_dtype(DType::F32)?
        .unsqueeze(1)?
        .broadcast_mul(&freqs)?;
    let (a, b) = (args.sin()?, args.cos()?);
    let emb = if flip_sin_to_cos {
        Tensor::cat(&[b, a], 1)?
    } else {
        Tensor::cat(&[a, b], 1)?
    };
    if dim % 2 == 1 {
        emb.pad_with_zeros(1, 0, 1)
    } else {
        Ok(emb)
    }
}

/// diffusers `TimestepEmbedding`: linear, SiLU, linear.
#[derive(Debug, Clone)]
pub struct TimestepMlp {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepMlp {
    /// Builds the layer, reading its weights under `vb` (diffusers names).
    pub fn new(cin: usize, dim: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            linear_1: candle_nn::linear(cin, dim, vb.pp("linear_1"))?,
            linear_2: candle_nn::linear(dim, dim, vb.pp("linear_2"))?,
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2.forward(&self.linear_1.forward(x)?.silu()?)
    }
}
