//! Qwen2 / Qwen2.5 / Qwen3 decoder, from safetensors (dense) or GGUF (quantized) weights.
//!
//! Written here rather than taken from candle-transformers for the KV cache: keys and values
//! are appended in place (no concatenation per token, no copies to repeat KV heads for
//! grouped-query attention), and on the CPU one-token decode attention runs over the cache
//! directly. candle-transformers' implementation is the parity reference in the tests.

use std::path::Path;

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::LlmError;

/// Architecture hyper-parameters (Hugging Face `config.json` names).
#[derive(Debug, Clone, Deserialize)]
pub struct QwenConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// Qwen3 states it; Qwen2 derives it from hidden_size / heads.
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_ctx")]
    pub max_position_embeddings: usize,
    /// Qwen2 has q/k/v biases; Qwen3 does not (`attention_bias: false`).
    #[serde(default)]
    pub attention_bias: Option<bool>,
    /// `qwen2` or `qwen3` (Qwen3 normalises q and k per head).
    #[serde(default)]
    pub model_type: String,
}

fn default_theta() -> f64 {
    10_000.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ctx() -> usize {
    32_768
}

impl QwenConfig {
    fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }
    fn qk_norm(&self) -> bool {
        self.model_type == "qwen3"
    }
    fn qkv_bias(&self) -> bool {
        self.attention_bias.unwrap_or(self.model_type != "qwen3")
    }
    fn check(&self) -> Result<(), String> {
        let ok = self.num_attention_heads > 0
            && self.num_key_value_heads > 0
            && self
                .num_attention_heads
                .is_multiple_of(self.num_key_value_heads)
            && self.head_dim().is_multiple_of(2)
            && self.hidden_size > 0
            && self.vocab_size > 0;
        if ok {
            Ok(())
        } else {
            Err("inconsistent sizes (heads must be a multiple of KV heads, head_dim even)".into())
        }
    }
}

/// A dense or quantized projection with optional bias.
enum Lin {
    Dense(Tensor, Option<Tensor>),
    Quant(QMatMul, Option<Tensor>),
}

impl Lin {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (y, b) = match self {
            Lin::Dense(w, b) => (x.matmul(&w.t()?)?, b),
            Lin::Quant(w, b) => (w.forward(x)?, b),
        };
        match b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

struct Layer {
    q: Lin,
    k: Lin,
    v: Lin,
    o: Lin,
    gate: Lin,
    up: Lin,
    down: Lin,
    attn_norm: Tensor,
    mlp_norm: Tensor,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
}

/// Keys and values of one layer, appended in place.
enum Cache {
    /// CPU: `[position][kv_head][head_dim]`, grown by pushing.
    Host { k: Vec<f32>, v: Vec<f32> },
    /// Any device: `(kv_heads, capacity, head_dim)` tensors written with `slice_set`,
    /// capacity doubled when full.
    Device { k: Tensor, v: Tensor },
}

/// Weights, rotary tables and KV cache of one model instance.
pub struct Qwen {
    cfg: QwenConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    head: Lin,
    cos: Tensor,
    sin: Tensor,
    cache: Vec<Cache>,
    /// Tokens in the cache.
    len: usize,
    dtype: DType,
    device: Device,
    host: bool,
}

fn eps(cfg: &QwenConfig) -> f32 {
    cfg.rms_norm_eps as f32
}

impl Qwen {
    /// From a safetensors folder's `config.json` and weights.
    pub fn from_safetensors(
        cfg: QwenConfig,
        files: &[std::path::PathBuf],
        device: &Device,
        dtype: DType,
    ) -> Result<Self, LlmError> {
        // SAFETY: the files are memory-mapped read-only; atelier does not modify model files
        // while they are loaded (the usual contract of mmap'd weights).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(files, dtype, device)? };
        Self::from_varbuilder(cfg, vb, device, dtype)
    }

    /// From Hugging Face-named tensors in any `VarBuilder` (files, or synthesized weights for
    /// benchmarks).
    pub fn from_varbuilder(
        cfg: QwenConfig,
        vb: VarBuilder,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, LlmError> {
        cfg.check()
            .map_err(|m| LlmError::format("config.json", m))?;
        let (h, hd) = (cfg.hidden_size, cfg.head_dim());
        let (nh, nkv, inter) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.intermediate_size,
        );
        let lin = |vb: &VarBuilder,
                   name: &str,
                   out: usize,
                   inp: usize,
                   bias: bool|
         -> Result<Lin, LlmError> {
            let vb = vb.pp(name);
            let w = vb.get((out, inp), "weight")?;
            let b = if bias {
                Some(vb.get(out, "bias")?)
            } else {
                None
            };
            Ok(Lin::Dense(w, b))
        };
        let m = vb.pp("model");
        let embed = m.get((cfg.vocab_size, h), "embed_tokens.weight")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = m.pp(format!("layers.{i}"));
            let a = l.pp("self_attn");
            let mlp = l.pp("mlp");
            let bias = cfg.qkv_bias();
            layers.push(Layer {
                q: lin(&a, "q_proj", nh * hd, h, bias)?,
                k: lin(&a, "k_proj", nkv * hd, h, bias)?,
                v: lin(&a, "v_proj", nkv * hd, h, bias)?,
                o: lin(&a, "o_proj", h, nh * hd, false)?,
                gate: lin(&mlp, "gate_proj", inter, h, false)?,
                up: lin(&mlp, "up_proj", inter, h, false)?,
                down: lin(&mlp, "down_proj", h, inter, false)?,
                attn_norm: l.get(h, "input_layernorm.weight")?,
                mlp_norm: l.get(h, "post_attention_layernorm.weight")?,
                q_norm: if cfg.qk_norm() {
                    Some(a.get(hd, "q_norm.weight")?)
                } else {
                    None
                },
                k_norm: if cfg.qk_norm() {
                    Some(a.get(hd, "k_norm.weight")?)
                } else {
                    None
                },
            });
        }
        let norm = m.get(h, "norm.weight")?;
        let head = if !cfg.tie_word_embeddings && vb.contains_tensor("lm_head.weight") {
            Lin::Dense(vb.get((cfg.vocab_size, h), "lm_head.weight")?, None)
        } else {
            Lin::Dense(embed.clone(), None)
        };
        Self::assemble(cfg, embed, layers, norm, head, device, dtype)
    }

    /// From a llama.cpp-style GGUF file (`general.architecture` qwen2 or qwen3).
    pub fn from_gguf<R: std::io::Read + std::io::Seek>(
        ct: &gguf_file::Content,
        reader: &mut R,
        path: &Path,
        device: &Device,
    ) -> Result<Self, LlmError> {
        let md = &ct.metadata;
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        let u = |k: &str| -> Result<usize, LlmError> {
            md.get(&format!("{arch}.{k}"))
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .ok_or_else(|| LlmError::format(path, format!("GGUF metadata has no {arch}.{k}")))
        };
        let f = |k: &str, d: f64| -> f64 {
            md.get(&format!("{arch}.{k}"))
                .and_then(|v| v.to_f32().ok())
                .map(f64::from)
                .unwrap_or(d)
        };
        let embd_info = ct
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| LlmError::format(path, "GGUF file has no token_embd.weight"))?;
        let hidden = u("embedding_length")?;
        let heads = u("attention.head_count")?;
        let cfg = QwenConfig {
            vocab_size: embd_info.shape.dims()[0],
            hidden_size: hidden,
            intermediate_size: u("feed_forward_length").unwrap_or(0),
            num_hidden_layers: u("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: u("attention.head_count_kv").unwrap_or(heads),
            head_dim: u("attention.key_length").ok(),
            rope_theta: f("rope.freq_base", 10_000.0),
            rms_norm_eps: f("attention.layer_norm_rms_epsilon", 1e-6),
            tie_word_embeddings: !ct.tensor_infos.contains_key("output.weight"),
            max_position_embeddings: u("context_length").unwrap_or(4096),
            attention_bias: Some(ct.tensor_infos.contains_key("blk.0.attn_q.bias")),
            model_type: arch.clone(),
        };
        cfg.check().map_err(|m| LlmError::format(path, m))?;
        let mut get =
            |name: &str| -> Result<QTensor, LlmError> { Ok(ct.tensor(reader, name, device)?) };
        let dense = |t: QTensor| -> Result<Tensor, LlmError> { Ok(t.dequantize(device)?) };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("blk.{i}");
            let mut lin = |name: &str, bias: bool| -> Result<Lin, LlmError> {
                let w = QMatMul::from_qtensor(get(&format!("{p}.{name}.weight"))?)?;
                let b = if bias {
                    Some(dense(get(&format!("{p}.{name}.bias"))?)?)
                } else {
                    None
                };
                Ok(Lin::Quant(w, b))
            };
            let bias = cfg.qkv_bias();
            let (q, k, v) = (
                lin("attn_q", bias)?,
                lin("attn_k", bias)?,
                lin("attn_v", bias)?,
            );
            let (o, gate, up, down) = (
                lin("attn_output", false)?,
                lin("ffn_gate", false)?,
                lin("ffn_up", false)?,
                lin("ffn_down", false)?,
            );
            let qk = cfg.qk_norm();
            layers.push(Layer {
                q,
                k,
                v,
                o,
                gate,
                up,
                down,
                attn_norm: dense(get(&format!("{p}.attn_norm.weight"))?)?,
                mlp_norm: dense(get(&format!("{p}.ffn_norm.weight"))?)?,
                q_norm: if qk {
                    Some(dense(get(&format!("{p}.attn_q_norm.weight"))?)?)
                } else {
                    None
                },
                k_norm: if qk {
                    Some(dense(get(&format!("{p}.attn_k_norm.weight"))?)?)
                } else {
                    None
                },
            });
        }
        let embd_q = get("token_embd.weight")?;
        let embed = dense(embd_q)?;
        let norm = dense(get("output_norm.weight")?)?;
        let head_q = if cfg.tie_word_embeddings {
            get("token_embd.weight")?
        } else {
            get("output.weight")?
        };
        let head = Lin::Quant(QMatMul::from_qtensor(head_q)?, None);
        Self::assemble(cfg, embed, layers, norm, head, device, DType::F32)
    }

    fn assemble(
        cfg: QwenConfig,
        embed: Tensor,
        layers: Vec<Layer>,
        norm: Tensor,
        head: Lin,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, LlmError> {
        let hd = cfg.head_dim();
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| 1.0 / (cfg.rope_theta.powf(2.0 * i as f64 / hd as f64)) as f32)
            .collect();
        let n = cfg.max_position_embeddings;
        let pos = Tensor::arange(0u32, n as u32, device)?.to_dtype(DType::F32)?;
        let freqs = pos
            .unsqueeze(1)?
            .matmul(&Tensor::new(inv.as_slice(), device)?.unsqueeze(0)?)?;
        let host = device.is_cpu() && dtype == DType::F32;
        let mut m = Self {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
            cache: Vec::new(),
            len: 0,
            embed,
            layers,
            norm,
            head,
            dtype,
            device: device.clone(),
            host,
            cfg,
        };
        m.clear()?;
        Ok(m)
    }

    /// Architecture facts.
    pub fn config(&self) -> &QwenConfig {
        &self.cfg
    }

    /// Uses the device-tensor cache and candle-op attention even on the CPU (the path GPUs
    /// take); tests compare both paths.
    pub fn set_host_attention(&mut self, on: bool) -> Result<(), LlmError> {
        self.host = on && self.device.is_cpu() && self.dtype == DType::F32;
        self.clear()
    }

    /// Empties the KV cache (a new conversation).
    pub fn clear(&mut self) -> Result<(), LlmError> {
        let nkv = self.cfg.num_key_value_heads;
        let hd = self.cfg.head_dim();
        self.len = 0;
        self.cache = (0..self.layers.len())
            .map(|_| -> Result<Cache, LlmError> {
                Ok(if self.host {
                    Cache::Host {
                        k: Vec::new(),
                        v: Vec::new(),
                    }
                } else {
                    let z = Tensor::zeros((nkv, 256, hd), self.dtype, &self.device)?;
                    Cache::Device {
                        k: z.clone(),
                        v: z.copy()?,
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Runs `ids` (continuing the cached sequence) and returns the logits of the last one.
    pub fn forward(&mut self, ids: &[u32]) -> Result<Vec<f32>, LlmError> {
        let s = ids.len();
        let pos = self.len;
        if s == 0 {
            return Err(LlmError::invalid("messages", "nothing to run"));
        }
        if pos + s > self.cfg.max_position_embeddings {
            return Err(LlmError::ContextOverflow {
                prompt: pos + s,
                context: self.cfg.max_position_embeddings,
            });
        }
        let (nh, nkv, hd) = (
            self.cfg.num_attention_heads,
            self.cfg.num_key_value_heads,
            self.cfg.head_dim(),
        );
        let e = eps(&self.cfg);
        let idx = Tensor::new(ids, &self.device)?;
        let mut x = self.embed.index_select(&idx, 0)?.to_dtype(self.dtype)?; // (s, h)
        let cos = self.cos.narrow(0, pos, s)?;
        let sin = self.sin.narrow(0, pos, s)?;
        for li in 0..self.layers.len() {
            let layer = &self.layers[li];
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, e)?;
            let q = layer.q.forward(&h)?.reshape((s, nh, hd))?;
            let k = layer.k.forward(&h)?.reshape((s, nkv, hd))?;
            let v = layer.v.forward(&h)?.reshape((s, nkv, hd))?;
            let (q, k) = match (&layer.q_norm, &layer.k_norm) {
                (Some(qn), Some(kn)) => (
                    candle_nn::ops::rms_norm(&q.contiguous()?, qn, e)?,
                    candle_nn::ops::rms_norm(&k.contiguous()?, kn, e)?,
                ),
                _ => (q, k),
            };
            // (1, heads, s, hd) for rope.
            let q = candle_nn::rotary_emb::rope(
                &q.transpose(0, 1)?.contiguous()?.unsqueeze(0)?,
                &cos,
                &sin,
            )?
            .squeeze(0)?;
            let k = candle_nn::rotary_emb::rope(
                &k.transpose(0, 1)?.contiguous()?.unsqueeze(0)?,
                &cos,
                &sin,
            )?
            .squeeze(0)?;
            let v = v.transpose(0, 1)?.contiguous()?; // (nkv, s, hd)
            let attn = self.attend(li, &q, &k, &v, pos)?; // (s, nh*hd)
            let layer = &self.layers[li];
            x = (x + layer.o.forward(&attn)?)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.mlp_norm, e)?;
            let g = candle_nn::ops::silu(&layer.gate.forward(&h)?)?;
            let m = layer.down.forward(&(g * layer.up.forward(&h)?)?)?;
            x = (x + m)?;
        }
        self.len += s;
        let last = x.narrow(0, s - 1, 1)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, e)?;
        let logits = self.head.forward(&last)?;
        Ok(logits
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?)
    }

    /// Appends k/v (`(nkv, s, hd)`) to layer `li`'s cache and attends `q` (`(nh, s, hd)`,
    /// positions `pos..pos+s`) over everything cached. Returns `(s, nh*hd)`.
    fn attend(
        &mut self,
        li: usize,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        pos: usize,
    ) -> Result<Tensor, LlmError> {
        let (nh, s, hd) = q.dims3()?;
        let nkv = k.dim(0)?;
        let g = nh / nkv;
        let scale = 1.0 / (hd as f64).sqrt();
        let total = pos + s;
        match &mut self.cache[li] {
            Cache::Host { k: kc, v: vc } => {
                // Append as [position][kv_head][hd].
                let kt = k
                    .transpose(0, 1)?
                    .contiguous()?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let vt = v
                    .transpose(0, 1)?
                    .contiguous()?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                kc.extend_from_slice(&kt);
                vc.extend_from_slice(&vt);
                if s == 1 {
                    let qv = q.flatten_all()?.to_vec1::<f32>()?;
                    let out = decode_attention(&qv, kc, vc, nh, nkv, hd, total, scale as f32);
                    return Ok(Tensor::from_vec(out, (1, nh * hd), &self.device)?);
                }
                // Prefill: matrix products over the cache (viewed as tensors once).
                let kall = Tensor::from_slice(kc, (total, nkv, hd), &self.device)?
                    .transpose(0, 1)?
                    .contiguous()?;
                let vall = Tensor::from_slice(vc, (total, nkv, hd), &self.device)?
                    .transpose(0, 1)?
                    .contiguous()?;
                grouped_attention(q, &kall, &vall, g, pos, scale)
            }
            Cache::Device { k: kc, v: vc } => {
                let cap = kc.dim(1)?;
                if total > cap {
                    let new_cap = (total.next_power_of_two()).max(cap * 2);
                    let grow = |t: &Tensor| -> candle_core::Result<Tensor> {
                        let z = Tensor::zeros((nkv, new_cap, hd), t.dtype(), t.device())?;
                        z.slice_set(&t.narrow(1, 0, pos)?.contiguous()?, 1, 0)?;
                        Ok(z)
                    };
                    *kc = grow(kc)?;
                    *vc = grow(vc)?;
                }
                kc.slice_set(k, 1, pos)?;
                vc.slice_set(v, 1, pos)?;
                let kall = kc.narrow(1, 0, total)?;
                let vall = vc.narrow(1, 0, total)?;
                grouped_attention(q, &kall, &vall, g, pos, scale)
            }
        }
    }
}

/// Attention with `g` query heads per KV head, without copying KV heads: queries of a group
/// are stacked as rows of one matrix product. Causal for queries at `pos..`.
fn grouped_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    g: usize,
    pos: usize,
    scale: f64,
) -> Result<Tensor, LlmError> {
    let (nh, s, hd) = q.dims3()?;
    let (nkv, total, _) = k.dims3()?;
    let qg = q.reshape((nkv, g * s, hd))?;
    let mut w = (qg.matmul(&k.t()?)? * scale)?; // (nkv, g*s, total)
    if s > 1 {
        // Query i sits at position pos + i and sees keys 0..=pos + i; one (s, total) mask is
        // broadcast over the g heads of each group.
        let mask: Vec<f32> = (0..s)
            .flat_map(|i| {
                (0..total).map(move |t| if t <= pos + i { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (s, total), q.device())?.to_dtype(w.dtype())?;
        w = w
            .reshape((nkv, g, s, total))?
            .broadcast_add(&mask)?
            .reshape((nkv, g * s, total))?;
    }
    let w = candle_nn::ops::softmax_last_dim(&w)?;
    let o = w.matmul(&v.contiguous()?)?; // (nkv, g*s, hd)
    Ok(o.reshape((nh, s, hd))?
        .transpose(0, 1)?
        .reshape((s, nh * hd))?)
}

/// One query token over a host cache laid out `[position][kv_head][hd]`.
#[allow(clippy::too_many_arguments)]
fn decode_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    nh: usize,
    nkv: usize,
    hd: usize,
    total: usize,
    scale: f32,
) -> Vec<f32> {
    let g = nh / nkv;
    let row = nkv * hd;
    let mut out = vec![0f32; nh * hd];
    let mut w = vec![0f32; total];
    for h in 0..nh {
        let kvh = h / g;
        let qh = &q[h * hd..(h + 1) * hd];
        let mut max = f32::NEG_INFINITY;
        for (t, wt) in w.iter_mut().enumerate() {
            let kt = &k[t * row + kvh * hd..t * row + (kvh + 1) * hd];
            let d = dot(qh, kt) * scale;
            *wt = d;
            max = max.max(d);
        }
        let mut sum = 0.0;
        for wt in w.iter_mut() {
            *wt = (*wt - max).exp();
            sum += *wt;
        }
        let oh = &mut out[h * hd..(h + 1) * hd];
        for (t, wt) in w.iter().enumerate() {
            let p = wt / sum;
            let vt = &v[t * row + kvh * hd..t * row + (kvh + 1) * hd];
            for (o, x) in oh.iter_mut().zip(vt) {
                *o += p * x;
            }
        }
    }
    out
}

/// Dot product with eight independent accumulators, so the compiler can vectorise it (a
/// plain iterator sum must keep its sequential rounding order and stays scalar).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}
