//! Building blocks shared by the UNet and the VAE, named exactly as diffusers names their weights.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

pub use crate::layers::attention;
use crate::layers::{elementwise, geglu, upsample_nearest, Conv2d, GroupNorm, LayerNorm, Linear};

/// A 2D convolution with bias, `k`x`k`, stride 1 and "same" padding unless told otherwise.
pub fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    padding: usize,
    stride: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    Conv2d::new(cin, cout, k, padding, stride, vb)
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
            to_q: Linear::new(query_dim, inner, false, vb.pp("to_q"))?,
            to_k: Linear::new(ctx, inner, false, vb.pp("to_k"))?,
            to_v: Linear::new(ctx, inner, false, vb.pp("to_v"))?,
            to_out: Linear::new(inner, query_dim, true, vb.pp("to_out.0"))?,
            heads,
        })
    }

    /// Applies the layer and adds `residual` to its output in the same pass.
    pub fn forward_add(
        &self,
        x: &Tensor,
        context: Option<&Tensor>,
        residual: &Tensor,
    ) -> Result<Tensor> {
        let ctx = context.unwrap_or(x);
        let q = self.to_q.forward(x)?;
        let k = self.to_k.forward(ctx)?;
        let v = self.to_v.forward(ctx)?;
        self.to_out
            .forward_add(&attention(&q, &k, &v, self.heads, false)?, residual)
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
            proj: Linear::new(dim, inner * 2, true, vb.pp("net.0.proj"))?,
            out: Linear::new(inner, dim, true, vb.pp("net.2"))?,
        })
    }

    /// Applies the layer and adds `residual` to its output in the same pass.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let h = self.proj.forward(x)?;
        self.out.forward_add(&geglu(&h)?, residual)
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
            norm1: LayerNorm::new(dim, 1e-5, vb.pp("norm1"))?,
            attn1: CrossAttention::new(dim, None, heads, head_dim, vb.pp("attn1"))?,
            norm2: LayerNorm::new(dim, 1e-5, vb.pp("norm2"))?,
            attn2: CrossAttention::new(dim, Some(context_dim), heads, head_dim, vb.pp("attn2"))?,
            norm3: LayerNorm::new(dim, 1e-5, vb.pp("norm3"))?,
            ff: GegluFeedForward::new(dim, vb.pp("ff"))?,
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let x = self.attn1.forward_add(&self.norm1.forward(x)?, None, x)?;
        let x = self
            .attn2
            .forward_add(&self.norm2.forward(&x)?, Some(context), &x)?;
        self.ff.forward_add(&self.norm3.forward(&x)?, &x)
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
                Ok(Projection::Linear(Linear::new(c, c, true, vb.pp(name))?))
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
            norm: GroupNorm::new(cfg.groups, c, 1e-6, vb.pp("norm"))?,
            proj_in: proj("proj_in")?,
            blocks,
            proj_out: proj("proj_out")?,
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor, context: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = b * h * w * c;
        let to_seq = |t: Tensor| {
            elementwise("to tokens", n, || {
                t.permute((0, 2, 3, 1))?
                    .contiguous()?
                    .reshape((b, h * w, c))
            })
        };
        let to_map = |t: Tensor| {
            elementwise("to channels", n, || {
                t.reshape((b, h, w, c))?.permute((0, 3, 1, 2))?.contiguous()
            })
        };
        let normed = self.norm.forward(x)?;
        let mut seq = match &self.proj_in {
            Projection::Conv(p) => to_seq(p.forward(&normed)?)?,
            Projection::Linear(p) => p.forward(&to_seq(normed)?)?,
        };
        for block in &self.blocks {
            seq = block.forward(&seq, context)?;
        }
        match &self.proj_out {
            Projection::Conv(p) => p.forward_add(&to_map(seq)?, x),
            Projection::Linear(p) => {
                let y = to_map(p.forward(&seq)?)?;
                elementwise("residual add", n, || y + x)
            }
        }
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
            norm1: GroupNorm::new(cfg.groups, cfg.cin, cfg.eps, vb.pp("norm1"))?,
            conv1: conv(cfg.cin, cfg.cout, 3, 1, 1, vb.pp("conv1"))?,
            time_emb_proj: cfg
                .temb
                .map(|t| Linear::new(t, cfg.cout, true, vb.pp("time_emb_proj")))
                .transpose()?,
            norm2: GroupNorm::new(cfg.groups, cfg.cout, cfg.eps, vb.pp("norm2"))?,
            conv2: conv(cfg.cout, cfg.cout, 3, 1, 1, vb.pp("conv2"))?,
            shortcut: (cfg.cin != cfg.cout)
                .then(|| conv(cfg.cin, cfg.cout, 1, 0, 1, vb.pp("conv_shortcut")))
                .transpose()?,
            output_scale: cfg.output_scale,
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        let a = self.norm1.forward_silu(x)?;
        let h = match (&self.time_emb_proj, temb) {
            (Some(proj), Some(t)) => {
                let t = proj.forward(&t.silu()?)?;
                self.conv1.forward_channel_bias(&a, &t)?
            }
            _ => self.conv1.forward(&a)?,
        };
        let skip = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        let out = self
            .conv2
            .forward_add(&self.norm2.forward_silu(&h)?, &skip)?;
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
            let n = x.elem_count();
            let x = elementwise("pad", n, || {
                x.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)
            })?;
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
        self.conv.forward(&upsample_nearest(x, th, tw)?)
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
            linear_1: Linear::new(cin, dim, true, vb.pp("linear_1"))?,
            linear_2: Linear::new(dim, dim, true, vb.pp("linear_2"))?,
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.linear_2.forward(&self.linear_1.forward(x)?.silu()?)
    }
}
