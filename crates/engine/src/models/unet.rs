//! `UNet2DConditionModel` built from its `config.json`: SD 1.x, SD 2.x and SDXL (with the
//! `text_time` added embedding), any width, depth, head count and group count.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::blocks::{
    conv, timestep_embedding, Downsample2D, ResnetBlock2D, ResnetConfig, TimestepMlp,
    Transformer2D, Transformer2DConfig, Upsample2D,
};
use crate::config::{UNetConfig, UNetPlan};
use crate::layers::{elementwise, Conv2d, GroupNorm};

/// SDXL's extra conditioning: pooled text embeddings and the six size/crop numbers.
#[derive(Debug, Clone)]
pub struct AddedCond<'a> {
    /// `[B, projection_dim]` pooled embeddings of the second text encoder.
    pub text_embeds: &'a Tensor,
    /// `[B, 6]`: original H, W, crop top, crop left, target H, W.
    pub time_ids: &'a Tensor,
}

#[derive(Debug, Clone)]
struct DownBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Transformer2D>,
    downsample: Option<Downsample2D>,
}

#[derive(Debug, Clone)]
struct UpBlock {
    resnets: Vec<ResnetBlock2D>,
    attentions: Vec<Transformer2D>,
    upsample: Option<Upsample2D>,
}

#[derive(Debug, Clone)]
struct MidBlock {
    first: ResnetBlock2D,
    layers: Vec<(Transformer2D, ResnetBlock2D)>,
}

/// The denoising network.
#[derive(Debug, Clone)]
pub struct UNet {
    conv_in: Conv2d,
    time_embedding: TimestepMlp,
    add_embedding: Option<(TimestepMlp, usize)>,
    down: Vec<DownBlock>,
    mid: MidBlock,
    up: Vec<UpBlock>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    base_channels: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
    in_channels: usize,
}

impl UNet {
    /// Builds the graph from `cfg`; `vb` must be rooted at the UNet's weight file.
    pub fn new(cfg: &UNetConfig, plan: &UNetPlan, vb: VarBuilder) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let n = ch.len();
        let temb = ch[0] * 4;
        let groups = cfg.norm_num_groups;
        let eps = cfg.norm_eps;
        let resnet = |cin, cout, scale, vb: VarBuilder| {
            ResnetBlock2D::new(
                ResnetConfig {
                    cin,
                    cout,
                    temb: Some(temb),
                    groups,
                    eps,
                    output_scale: scale,
                },
                vb,
            )
        };
        let transformer = |c, heads, layers, vb: VarBuilder| {
            Transformer2D::new(
                Transformer2DConfig {
                    channels: c,
                    heads,
                    layers,
                    context_dim: plan.cross_attention_dim,
                    groups,
                    linear_projection: cfg.use_linear_projection,
                },
                vb,
            )
        };
        let pad_in = cfg.conv_in_kernel / 2;
        let conv_in = conv(
            cfg.in_channels,
            ch[0],
            cfg.conv_in_kernel,
            pad_in,
            1,
            vb.pp("conv_in"),
        )?;
        let time_embedding = TimestepMlp::new(ch[0], temb, vb.pp("time_embedding"))?;
        let add_embedding = match (
            cfg.addition_embed_type.as_deref(),
            cfg.addition_time_embed_dim,
            cfg.projection_class_embeddings_input_dim,
        ) {
            (Some("text_time"), Some(dim), Some(input)) => {
                Some((TimestepMlp::new(input, temb, vb.pp("add_embedding"))?, dim))
            }
            _ => None,
        };

        let mut down = Vec::with_capacity(n);
        let mut out_c = ch[0];
        for (i, kind) in cfg.down_block_types.iter().enumerate() {
            let in_c = out_c;
            out_c = ch[i];
            let vb = vb.pp(format!("down_blocks.{i}"));
            let cross = kind == "CrossAttnDownBlock2D";
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..cfg.layers_per_block {
                let cin = if j == 0 { in_c } else { out_c };
                resnets.push(resnet(
                    cin,
                    out_c,
                    cfg.resnet_out_scale_factor,
                    vb.pp(format!("resnets.{j}")),
                )?);
                if cross {
                    attentions.push(transformer(
                        out_c,
                        plan.heads[i],
                        plan.transformer_layers[i],
                        vb.pp(format!("attentions.{j}")),
                    )?);
                }
            }
            let downsample = (i + 1 < n)
                .then(|| Downsample2D::new(out_c, cfg.downsample_padding, vb.pp("downsamplers.0")))
                .transpose()?;
            down.push(DownBlock {
                resnets,
                attentions,
                downsample,
            });
        }

        let mid_c = ch[n - 1];
        let mvb = vb.pp("mid_block");
        let mid = MidBlock {
            first: resnet(
                mid_c,
                mid_c,
                cfg.mid_block_scale_factor,
                mvb.pp("resnets.0"),
            )?,
            layers: vec![(
                transformer(
                    mid_c,
                    plan.heads[n - 1],
                    plan.transformer_layers[n - 1],
                    mvb.pp("attentions.0"),
                )?,
                resnet(
                    mid_c,
                    mid_c,
                    cfg.mid_block_scale_factor,
                    mvb.pp("resnets.1"),
                )?,
            )],
        };

        let rev_ch: Vec<usize> = ch.iter().rev().copied().collect();
        let rev_heads: Vec<usize> = plan.heads.iter().rev().copied().collect();
        let rev_layers: Vec<usize> = plan.transformer_layers.iter().rev().copied().collect();
        let mut up = Vec::with_capacity(n);
        let mut out_c = rev_ch[0];
        for (i, kind) in cfg.up_block_types.iter().enumerate() {
            let prev_c = out_c;
            out_c = rev_ch[i];
            let in_c = rev_ch[(i + 1).min(n - 1)];
            let vb = vb.pp(format!("up_blocks.{i}"));
            let cross = kind == "CrossAttnUpBlock2D";
            let layers = cfg.layers_per_block + 1;
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..layers {
                let skip_c = if j == layers - 1 { in_c } else { out_c };
                let cin = if j == 0 { prev_c } else { out_c };
                resnets.push(resnet(
                    cin + skip_c,
                    out_c,
                    cfg.resnet_out_scale_factor,
                    vb.pp(format!("resnets.{j}")),
                )?);
                if cross {
                    attentions.push(transformer(
                        out_c,
                        rev_heads[i],
                        rev_layers[i],
                        vb.pp(format!("attentions.{j}")),
                    )?);
                }
            }
            let upsample = (i + 1 < n)
                .then(|| Upsample2D::new(out_c, vb.pp("upsamplers.0")))
                .transpose()?;
            up.push(UpBlock {
                resnets,
                attentions,
                upsample,
            });
        }
        let pad_out = cfg.conv_out_kernel / 2;
        Ok(Self {
            conv_in,
            time_embedding,
            add_embedding,
            down,
            mid,
            up,
            norm_out: GroupNorm::new(groups, ch[0], eps, vb.pp("conv_norm_out"))?,
            conv_out: conv(
                ch[0],
                cfg.out_channels,
                cfg.conv_out_kernel,
                pad_out,
                1,
                vb.pp("conv_out"),
            )?,
            base_channels: ch[0],
            flip_sin_to_cos: cfg.flip_sin_to_cos,
            freq_shift: cfg.freq_shift,
            in_channels: cfg.in_channels,
        })
    }

    /// Latent channels the UNet expects.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Whether this UNet needs [`AddedCond`] (SDXL).
    pub fn needs_added_cond(&self) -> bool {
        self.add_embedding.is_some()
    }

    /// One denoising call. `t` is `[B]` timesteps (fractional values allowed), `context` is
    /// `[B, 77, cross_attention_dim]`.
    pub fn forward(
        &self,
        sample: &Tensor,
        t: &Tensor,
        context: &Tensor,
        added: Option<AddedCond<'_>>,
    ) -> Result<Tensor> {
        let dtype = sample.dtype();
        let b = sample.dim(0)?;
        let t_feat =
            timestep_embedding(t, self.base_channels, self.flip_sin_to_cos, self.freq_shift)?
                .to_dtype(dtype)?;
        let mut emb = self.time_embedding.forward(&t_feat)?;
        if let Some((mlp, dim)) = &self.add_embedding {
            let added = added.ok_or_else(|| {
                candle_core::Error::Msg("this UNet needs text_embeds and time_ids (SDXL)".into())
            })?;
            let ids = added.time_ids.flatten_all()?;
            let time_feat = timestep_embedding(&ids, *dim, self.flip_sin_to_cos, self.freq_shift)?
                .reshape((b, ()))?;
            let feats = Tensor::cat(
                &[
                    added.text_embeds.to_dtype(dtype)?,
                    time_feat.to_dtype(dtype)?,
                ],
                1,
            )?;
            emb = (emb + mlp.forward(&feats)?)?;
        }
        let emb = Some(&emb);

        let mut x = self.conv_in.forward(sample)?;
        let mut skips = vec![x.clone()];
        for block in &self.down {
            for (j, r) in block.resnets.iter().enumerate() {
                x = r.forward(&x, emb)?;
                if let Some(a) = block.attentions.get(j) {
                    x = a.forward(&x, context)?;
                }
                skips.push(x.clone());
            }
            if let Some(d) = &block.downsample {
                x = d.forward(&x)?;
                skips.push(x.clone());
            }
        }

        x = self.mid.first.forward(&x, emb)?;
        for (a, r) in &self.mid.layers {
            x = r.forward(&a.forward(&x, context)?, emb)?;
        }

        for block in &self.up {
            for (j, r) in block.resnets.iter().enumerate() {
                let skip = skips.pop().ok_or_else(|| {
                    candle_core::Error::Msg("UNet skip connections exhausted".into())
                })?;
                let n = x.elem_count() + skip.elem_count();
                let joined = elementwise("concat skip", n, || Tensor::cat(&[&x, &skip], 1))?;
                x = r.forward(&joined, emb)?;
                if let Some(a) = block.attentions.get(j) {
                    x = a.forward(&x, context)?;
                }
            }
            if let Some(u) = &block.upsample {
                let size = match skips.last() {
                    Some(s) => {
                        let (_, _, h, w) = s.dims4()?;
                        Some((h, w))
                    }
                    None => None,
                };
                x = u.forward(&x, size)?;
            }
        }
        self.conv_out.forward(&self.norm_out.forward_silu(&x)?)
    }
}
