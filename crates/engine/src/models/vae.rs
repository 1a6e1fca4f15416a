//! `AutoencoderKL`: the decoder turns latents into pixels; the encoder (for image-to-image)
//! turns pixels into the latent distribution's mean.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::blocks::{attention, conv, Downsample2D, ResnetBlock2D, ResnetConfig, Upsample2D};
use crate::config::VaeConfig;
use crate::layers::{elementwise, Conv2d, GroupNorm, Linear};

/// Single-head spatial self-attention of the VAE mid block (`group_norm`, q/k/v/out with bias).
#[derive(Debug, Clone)]
struct SpatialAttention {
    norm: GroupNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

impl SpatialAttention {
    fn new(c: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: GroupNorm::new(groups, c, 1e-6, vb.pp("group_norm"))?,
            q: Linear::new(c, c, true, vb.pp("to_q"))?,
            k: Linear::new(c, c, true, vb.pp("to_k"))?,
            v: Linear::new(c, c, true, vb.pp("to_v"))?,
            out: Linear::new(c, c, true, vb.pp("to_out.0"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let n = x.elem_count();
        let normed = self.norm.forward(x)?;
        let seq = elementwise("to tokens", n, || {
            normed.reshape((b, c, h * w))?.transpose(1, 2)?.contiguous()
        })?;
        let a = attention(
            &self.q.forward(&seq)?,
            &self.k.forward(&seq)?,
            &self.v.forward(&seq)?,
            1,
            false,
        )?;
        // The residual, in token layout, is added by the output projection itself.
        let skip = elementwise("to tokens", n, || {
            x.reshape((b, c, h * w))?.transpose(1, 2)?.contiguous()
        })?;
        let y = self.out.forward_add(&a, &skip)?;
        elementwise("to channels", n, || {
            y.transpose(1, 2)?.contiguous()?.reshape((b, c, h, w))
        })
    }
}

#[derive(Debug, Clone)]
struct MidBlock {
    first: ResnetBlock2D,
    attn: Option<SpatialAttention>,
    second: ResnetBlock2D,
}

impl MidBlock {
    fn new(c: usize, cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let rc = ResnetConfig {
            cin: c,
            cout: c,
            temb: None,
            groups: cfg.norm_num_groups,
            eps: 1e-6,
            output_scale: 1.0,
        };
        Ok(Self {
            first: ResnetBlock2D::new(rc, vb.pp("resnets.0"))?,
            attn: cfg
                .mid_block_add_attention
                .then(|| SpatialAttention::new(c, cfg.norm_num_groups, vb.pp("attentions.0")))
                .transpose()?,
            second: ResnetBlock2D::new(rc, vb.pp("resnets.1"))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.first.forward(x, None)?;
        if let Some(a) = &self.attn {
            x = a.forward(&x)?;
        }
        self.second.forward(&x, None)
    }
}

fn resnet(cin: usize, cout: usize, groups: usize, vb: VarBuilder) -> Result<ResnetBlock2D> {
    ResnetBlock2D::new(
        ResnetConfig {
            cin,
            cout,
            temb: None,
            groups,
            eps: 1e-6,
            output_scale: 1.0,
        },
        vb,
    )
}

/// The VAE decoder (plus `post_quant_conv`).
#[derive(Debug, Clone)]
pub struct VaeDecoder {
    post_quant_conv: Option<Conv2d>,
    conv_in: Conv2d,
    mid: MidBlock,
    up: Vec<(Vec<ResnetBlock2D>, Option<Upsample2D>)>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl VaeDecoder {
    /// `vb` is rooted at the VAE weight file (names `decoder.*`, `post_quant_conv.*`).
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let n = ch.len();
        let g = cfg.norm_num_groups;
        let lat = cfg.latent_channels;
        let post_quant_conv = cfg
            .use_post_quant_conv
            .then(|| conv(lat, lat, 1, 0, 1, vb.pp("post_quant_conv")))
            .transpose()?;
        let vb = vb.pp("decoder");
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let mut up = Vec::with_capacity(n);
        let mut out_c = rev[0];
        for (i, &c) in rev.iter().enumerate() {
            let prev = out_c;
            out_c = c;
            let bvb = vb.pp(format!("up_blocks.{i}"));
            let resnets = (0..=cfg.layers_per_block)
                .map(|j| {
                    resnet(
                        if j == 0 { prev } else { out_c },
                        out_c,
                        g,
                        bvb.pp(format!("resnets.{j}")),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let upsample = (i + 1 < n)
                .then(|| Upsample2D::new(out_c, bvb.pp("upsamplers.0")))
                .transpose()?;
            up.push((resnets, upsample));
        }
        Ok(Self {
            post_quant_conv,
            conv_in: conv(lat, ch[n - 1], 3, 1, 1, vb.pp("conv_in"))?,
            mid: MidBlock::new(ch[n - 1], cfg, vb.pp("mid_block"))?,
            up,
            norm_out: GroupNorm::new(g, ch[0], 1e-6, vb.pp("conv_norm_out"))?,
            conv_out: conv(ch[0], cfg.out_channels, 3, 1, 1, vb.pp("conv_out"))?,
        })
    }

    /// Decodes already-unscaled latents (`latents / scaling_factor`) to pixels in about [-1, 1].
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let z = match &self.post_quant_conv {
            Some(c) => c.forward(z)?,
            None => z.clone(),
        };
        let mut x = self.mid.forward(&self.conv_in.forward(&z)?)?;
        for (resnets, upsample) in &self.up {
            for r in resnets {
                x = r.forward(&x, None)?;
            }
            if let Some(u) = upsample {
                x = u.forward(&x, None)?;
            }
        }
        self.conv_out.forward(&self.norm_out.forward_silu(&x)?)
    }
}

/// The VAE encoder (plus `quant_conv`), returning the mean of the latent distribution.
#[derive(Debug, Clone)]
pub struct VaeEncoder {
    conv_in: Conv2d,
    down: Vec<(Vec<ResnetBlock2D>, Option<Downsample2D>)>,
    mid: MidBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    quant_conv: Option<Conv2d>,
    latent_channels: usize,
}

impl VaeEncoder {
    /// `vb` is rooted at the VAE weight file (names `encoder.*`, `quant_conv.*`).
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let n = ch.len();
        let g = cfg.norm_num_groups;
        let lat = cfg.latent_channels;
        let quant_conv = cfg
            .use_quant_conv
            .then(|| conv(2 * lat, 2 * lat, 1, 0, 1, vb.pp("quant_conv")))
            .transpose()?;
        let vb = vb.pp("encoder");
        let mut down = Vec::with_capacity(n);
        let mut out_c = ch[0];
        for (i, &c) in ch.iter().enumerate() {
            let input = out_c;
            out_c = c;
            let bvb = vb.pp(format!("down_blocks.{i}"));
            let resnets = (0..cfg.layers_per_block)
                .map(|j| {
                    resnet(
                        if j == 0 { input } else { out_c },
                        out_c,
                        g,
                        bvb.pp(format!("resnets.{j}")),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let ds = (i + 1 < n)
                .then(|| Downsample2D::new(out_c, 0, bvb.pp("downsamplers.0")))
                .transpose()?;
            down.push((resnets, ds));
        }
        Ok(Self {
            conv_in: conv(cfg.in_channels, ch[0], 3, 1, 1, vb.pp("conv_in"))?,
            down,
            mid: MidBlock::new(ch[n - 1], cfg, vb.pp("mid_block"))?,
            norm_out: GroupNorm::new(g, ch[n - 1], 1e-6, vb.pp("conv_norm_out"))?,
            conv_out: conv(ch[n - 1], 2 * lat, 3, 1, 1, vb.pp("conv_out"))?,
            quant_conv,
            latent_channels: lat,
        })
    }

    /// Encodes pixels in [-1, 1] to the latent mean (unscaled).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = self.conv_in.forward(x)?;
        for (resnets, ds) in &self.down {
            for r in resnets {
                x = r.forward(&x, None)?;
            }
            if let Some(d) = ds {
                x = d.forward(&x)?;
            }
        }
        let x = self.mid.forward(&x)?;
        let mut moments = self.conv_out.forward(&self.norm_out.forward_silu(&x)?)?;
        if let Some(q) = &self.quant_conv {
            moments = q.forward(&moments)?;
        }
        moments.narrow(1, 0, self.latent_channels)
    }
}
