//! Text-to-image: a typed request in, images out, with per-step progress, previews and cancel.
//!
//! Determinism: every random number comes from a [`NoiseSource`]; the default one is a ChaCha8
//! stream per image seeded with `seed + index`, drawn on the CPU and copied to the device, so the
//! same request on the same device gives the same bytes, and image `i` of a batch equals a
//! single-image run with seed `seed + i`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_distr::Distribution;
use serde_json::{Map, Value};

use crate::error::{EngineError, Result};
use crate::image::RgbImage;
use crate::model::{DiffusionModel, Family};
use crate::models::unet::AddedCond;
use crate::preview::latent_preview;
use crate::schedulers::{Scheduler, SchedulerKind, StepInput};

/// Upper bound on width/height, to reject requests that would exhaust memory before they start.
pub const MAX_SIDE: usize = 4096;
/// Upper bound on images per request.
pub const MAX_BATCH: usize = 16;
/// Upper bound on steps.
pub const MAX_STEPS: usize = 500;

/// A text-to-image request. `None` fields take the model's defaults.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GenerateRequest {
    pub prompt: String,
    #[serde(default)]
    pub negative_prompt: Option<String>,
    #[serde(default)]
    pub width: Option<usize>,
    #[serde(default)]
    pub height: Option<usize>,
    #[serde(default)]
    pub steps: Option<usize>,
    #[serde(default)]
    pub guidance_scale: Option<f64>,
    #[serde(default)]
    pub scheduler: Option<SchedulerKind>,
    /// Extra scheduler config keys (diffusers names, e.g. `timestep_spacing`), applied over the
    /// folder's `scheduler_config.json`.
    #[serde(default)]
    pub scheduler_overrides: Map<String, Value>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Emit a preview every this many steps (0 = never).
    #[serde(default)]
    pub preview_every: usize,
}

/// The request with every default resolved and validated; what actually ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResolvedRequest {
    pub prompt: String,
    pub negative_prompt: String,
    pub width: usize,
    pub height: usize,
    pub steps: usize,
    pub guidance_scale: f64,
    pub scheduler: SchedulerKind,
    pub seed: u64,
    pub batch_size: usize,
    pub model: String,
}

impl ResolvedRequest {
    /// A1111-style parameter text, embedded in PNGs and shown in logs.
    pub fn parameters_text(&self, image_seed: u64) -> String {
        let mut s = self.prompt.clone();
        if !self.negative_prompt.is_empty() {
            s.push_str(&format!("\nNegative prompt: {}", self.negative_prompt));
        }
        s.push_str(&format!(
            "\nSteps: {}, Sampler: {}, CFG scale: {}, Seed: {}, Size: {}x{}, Model: {}",
            self.steps,
            self.scheduler,
            self.guidance_scale,
            image_seed,
            self.width,
            self.height,
            self.model
        ));
        s
    }
}

/// Supplies every random tensor a run needs.
pub trait NoiseSource {
    /// Unit-variance starting latents for image `index` of the batch, shape `[1, C, h, w]`.
    fn initial(&mut self, index: usize, shape: (usize, usize, usize, usize)) -> Result<Tensor>;
    /// Unit-variance noise consumed by a stochastic sampler at `step`, for image `index`.
    fn step(
        &mut self,
        index: usize,
        step: usize,
        shape: (usize, usize, usize, usize),
    ) -> Result<Tensor>;
}

/// The default source: one seeded ChaCha8 stream per image.
#[derive(Debug)]
pub struct SeededNoise {
    rngs: Vec<rand_chacha::ChaCha8Rng>,
}

impl SeededNoise {
    /// Streams for `batch` images seeded `seed, seed + 1, …`.
    pub fn new(seed: u64, batch: usize) -> Self {
        Self {
            rngs: (0..batch)
                .map(|i| rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_add(i as u64)))
                .collect(),
        }
    }

    fn draw(&mut self, index: usize, shape: (usize, usize, usize, usize)) -> Result<Tensor> {
        let rng = self.rngs.get_mut(index).ok_or_else(|| {
            EngineError::invalid(
                "batch_size",
                "noise requested for an image outside the batch",
            )
        })?;
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let v: Vec<f32> = (0..n)
            .map(|_| rand_distr::StandardNormal.sample(rng))
            .collect();
        Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
    }
}

impl NoiseSource for SeededNoise {
    fn initial(&mut self, index: usize, shape: (usize, usize, usize, usize)) -> Result<Tensor> {
        self.draw(index, shape)
    }

    fn step(
        &mut self,
        index: usize,
        _step: usize,
        shape: (usize, usize, usize, usize),
    ) -> Result<Tensor> {
        self.draw(index, shape)
    }
}

/// A cooperative cancel flag, checked between steps; cheap to clone and share across threads.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, un-fired token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the run to stop at the next step boundary.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancel was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// The shared flag, so a job's one cancel reaches other runtimes (the language model's).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

/// Phases a run goes through, for progress reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    EncodingText,
    Denoising,
    Decoding,
}

/// One progress report. `step` counts completed denoising steps.
#[derive(Debug, Clone)]
pub struct Progress {
    pub phase: Phase,
    pub step: usize,
    pub total: usize,
    /// Latent-space previews, one per image, when due this step.
    pub previews: Option<Vec<RgbImage>>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct GenerateOutput {
    pub images: Vec<RgbImage>,
    /// The seed of each image (`seed + index`).
    pub seeds: Vec<u64>,
    /// Final latents `[B, C, h, w]`, before VAE scaling.
    pub latents: Tensor,
    /// Non-fatal issues, e.g. a prompt truncated to the text encoder's 77-token window.
    pub warnings: Vec<String>,
    pub request: ResolvedRequest,
}

impl GenerateOutput {
    /// PNG bytes of image `i` with the parameters embedded as `parameters` and `atelier` text chunks.
    pub fn png(&self, i: usize) -> Result<Vec<u8>> {
        let img = self
            .images
            .get(i)
            .ok_or_else(|| EngineError::invalid("index", format!("no image {i}")))?;
        let seed = self.seeds[i];
        let mut meta =
            serde_json::to_value(&self.request).map_err(|e| EngineError::Encode(e.to_string()))?;
        meta["seed"] = Value::from(seed);
        meta["generator"] = Value::from(concat!("atelier ", env!("CARGO_PKG_VERSION")));
        img.to_png(&[
            ("parameters", self.request.parameters_text(seed)),
            ("atelier", meta.to_string()),
        ])
    }
}

/// Text conditioning for one prompt pair.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// `[1, 77, ctx]` for the negative/unconditional prompt.
    pub uncond: Tensor,
    /// `[1, 77, ctx]` for the prompt.
    pub cond: Tensor,
    /// SDXL pooled embeddings `[1, proj]`, negative then positive.
    pub pooled: Option<(Tensor, Tensor)>,
    pub warnings: Vec<String>,
}

/// One request of a batched run ([`DiffusionModel::generate_batch`]): its own prompt, seed,
/// guidance, noise, progress and cancel. Only the shape of the work must match a neighbour's
/// for the two to share UNet calls.
pub struct BatchItem<'a> {
    pub request: &'a GenerateRequest,
    pub noise: &'a mut dyn NoiseSource,
    pub progress: &'a mut dyn FnMut(&Progress),
    pub cancel: &'a CancelToken,
}

impl std::fmt::Debug for BatchItem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchItem")
            .field("request", self.request)
            .finish_non_exhaustive()
    }
}

/// What requests must share to go through the UNet together: the latent size, the timesteps
/// (step count, sampler, its config overrides).
#[derive(Debug, Clone, PartialEq)]
struct GroupKey {
    width: usize,
    height: usize,
    steps: usize,
    scheduler: SchedulerKind,
    overrides: String,
}

/// A request's state inside a batched run.
struct Member<'a> {
    slot: usize,
    item: BatchItem<'a>,
    key: GroupKey,
    r: ResolvedRequest,
    scheduler: Box<dyn Scheduler>,
    cfg_on: bool,
    /// UNet rows this request takes: `2 × batch_size` with classifier-free guidance.
    rows: usize,
    /// `[uncond × b; cond × b]` with guidance, `[cond × b]` without.
    context: Tensor,
    /// SDXL's pooled text embeddings and size ids, row for row with `context`.
    added: Option<(Tensor, Tensor)>,
    warnings: Vec<String>,
    shape: (usize, usize, usize, usize),
    latents: Tensor,
}

/// Stacks row blocks; a single block is passed through without a copy.
fn cat_rows(parts: &[&Tensor]) -> Result<Tensor> {
    match parts {
        [one] => Ok((*one).clone()),
        _ => Ok(Tensor::cat(parts, 0)?),
    }
}

impl DiffusionModel {
    /// Fills defaults and validates every field, naming the field on error.
    pub fn resolve(&self, req: &GenerateRequest) -> Result<ResolvedRequest> {
        let info = self.info();
        let native = info.native_size;
        let width = req.width.unwrap_or(native);
        let height = req.height.unwrap_or(native);
        let f = info.vae_scale_factor;
        for (field, v) in [("width", width), ("height", height)] {
            if v == 0 || v % f != 0 {
                return Err(EngineError::invalid(
                    field,
                    format!("{v} is not a positive multiple of {f}"),
                ));
            }
            if v > MAX_SIDE {
                return Err(EngineError::invalid(
                    field,
                    format!("{v} is larger than {MAX_SIDE}"),
                ));
            }
        }
        let steps = req.steps.unwrap_or(match info.family {
            Family::Sdxl => 30,
            _ => 25,
        });
        if steps == 0 || steps > MAX_STEPS {
            return Err(EngineError::invalid(
                "steps",
                format!("{steps} is outside 1..={MAX_STEPS}"),
            ));
        }
        let guidance_scale = req.guidance_scale.unwrap_or(7.5);
        if !guidance_scale.is_finite() || !(0.0..=100.0).contains(&guidance_scale) {
            return Err(EngineError::invalid(
                "guidance_scale",
                "must be between 0 and 100",
            ));
        }
        let batch_size = req.batch_size.unwrap_or(1);
        if batch_size == 0 || batch_size > MAX_BATCH {
            return Err(EngineError::invalid(
                "batch_size",
                format!("{batch_size} is outside 1..={MAX_BATCH}"),
            ));
        }
        Ok(ResolvedRequest {
            prompt: req.prompt.clone(),
            negative_prompt: req.negative_prompt.clone().unwrap_or_default(),
            width,
            height,
            steps,
            guidance_scale,
            scheduler: req.scheduler.unwrap_or(info.default_scheduler),
            seed: req.seed,
            batch_size,
            model: info.name.clone(),
        })
    }

    fn token_tensor(&self, ids: &[u32]) -> Result<Tensor> {
        Ok(Tensor::new(ids, &self.device)?.unsqueeze(0)?)
    }

    /// Encodes a prompt to `(embeddings [1, 77, ctx], pooled [1, proj] for SDXL)`.
    pub fn encode_prompt(
        &self,
        text: &str,
        warnings: &mut Vec<String>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let t1 = self.tokenizer.encode(text)?;
        if t1.truncated > 0 {
            warnings.push(format!(
                "prompt is longer than the text encoder's {} tokens; the last {} tokens were ignored",
                self.tokenizer.max_len(),
                t1.truncated
            ));
        }
        self.calls
            .text_encoder
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let o1 = self.text_encoder.forward(&self.token_tensor(&t1.ids)?)?;
        match (&self.tokenizer_2, &self.text_encoder_2) {
            (Some(tok2), Some(te2)) => {
                let t2 = tok2.encode(text)?;
                let o2 = te2.forward(&self.token_tensor(&t2.ids)?)?;
                let emb = Tensor::cat(&[&o1.penultimate, &o2.penultimate], 2)?;
                let pooled = o2.text_embeds.ok_or_else(|| {
                    EngineError::invalid("model", "text_encoder_2 has no projection")
                })?;
                Ok((emb, Some(pooled)))
            }
            _ => Ok((o1.last_hidden_state, None)),
        }
    }

    /// Conditioning for a prompt and its negative, as the diffusers pipelines build it: with no
    /// negative prompt at all (`None`), SDXL uses zeros when the folder says
    /// `force_zeros_for_empty_prompt`; SD 1.x/2.x, and SDXL given an explicit `""`, encode "".
    pub fn encode(&self, prompt: &str, negative: Option<&str>) -> Result<Conditioning> {
        let mut warnings = Vec::new();
        let (cond, pooled_c) = self.encode_prompt(prompt, &mut warnings)?;
        let zero_neg = self.info().family == Family::Sdxl
            && negative.is_none()
            && self
                .configs
                .index
                .force_zeros_for_empty_prompt
                .unwrap_or(true);
        let negative = negative.unwrap_or("");
        let (uncond, pooled_u) = if zero_neg {
            (
                cond.zeros_like()?,
                pooled_c.as_ref().map(|p| p.zeros_like()).transpose()?,
            )
        } else {
            let mut w = Vec::new();
            let r = self.encode_prompt(negative, &mut w)?;
            warnings.extend(w.into_iter().map(|m| format!("negative {m}")));
            r
        };
        Ok(Conditioning {
            uncond,
            cond,
            pooled: pooled_c.map(|c| (pooled_u.unwrap_or_else(|| c.clone()), c)),
            warnings,
        })
    }

    /// Runs text-to-image with the default seeded noise.
    pub fn generate(
        &self,
        req: &GenerateRequest,
        progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> Result<GenerateOutput> {
        let resolved = self.resolve(req)?;
        let mut noise = SeededNoise::new(resolved.seed, resolved.batch_size);
        self.generate_with(req, &mut noise, progress, cancel)
    }

    /// Runs text-to-image drawing every random tensor from `noise` (how parity replays a reference).
    pub fn generate_with(
        &self,
        req: &GenerateRequest,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(&Progress),
        cancel: &CancelToken,
    ) -> Result<GenerateOutput> {
        self.generate_batch(vec![BatchItem {
            request: req,
            noise,
            progress,
            cancel,
        }])
        .pop()
        .unwrap_or_else(|| {
            Err(EngineError::invalid(
                "batch_size",
                "the run returned no result",
            ))
        })
    }

    /// Runs several requests together: those that share size, step count and sampler (with its
    /// overrides) go through the UNet as one batch per step, each with its own prompt, negative
    /// prompt, guidance, seed, progress and cancel. Results come back in the items' order, one
    /// per item; a request that fails validation or is cancelled fails alone, and a cancelled
    /// one leaves the batch at the next step. Each image equals what a run of its request alone
    /// gives, up to the summation order of batched matrix products.
    pub fn generate_batch(&self, items: Vec<BatchItem<'_>>) -> Vec<Result<GenerateOutput>> {
        let mut results: Vec<Option<Result<GenerateOutput>>> = items.iter().map(|_| None).collect();
        let mut groups: Vec<(GroupKey, Vec<Member<'_>>)> = Vec::new();
        for (slot, item) in items.into_iter().enumerate() {
            match self.admit(slot, item) {
                Ok(m) => match groups.iter_mut().find(|(k, _)| *k == m.key) {
                    Some((_, g)) => g.push(m),
                    None => groups.push((m.key.clone(), vec![m])),
                },
                Err(e) => results[slot] = Some(Err(e)),
            }
        }
        for (_, members) in groups {
            self.run_group(members, &mut results);
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(EngineError::invalid(
                        "batch_size",
                        "the run returned no result",
                    ))
                })
            })
            .collect()
    }

    /// Resolves one request, encodes its prompts and draws its starting latents.
    fn admit<'a>(&self, slot: usize, item: BatchItem<'a>) -> Result<Member<'a>> {
        let req = item.request;
        let r = self.resolve(req)?;
        let mut sched_cfg = self.configs.scheduler.clone();
        for (k, v) in &req.scheduler_overrides {
            sched_cfg.insert(k.clone(), v.clone());
        }
        let scheduler = r.scheduler.build(&sched_cfg, r.steps)?;
        let total = r.steps;
        if item.cancel.is_cancelled() {
            return Err(EngineError::Cancelled { step: 0, total });
        }
        (item.progress)(&Progress {
            phase: Phase::EncodingText,
            step: 0,
            total,
            previews: None,
        });
        let b = r.batch_size;
        let cfg_on = r.guidance_scale > 1.0;
        let cond = self.encode(&r.prompt, req.negative_prompt.as_deref())?;
        let rep = |t: &Tensor| -> Result<Tensor> { Ok(t.repeat((b, 1, 1))?) };
        let rep2 = |t: &Tensor| -> Result<Tensor> { Ok(t.repeat((b, 1))?) };
        let context = if cfg_on {
            Tensor::cat(&[rep(&cond.uncond)?, rep(&cond.cond)?], 0)?
        } else {
            rep(&cond.cond)?
        };
        let rows = if cfg_on { 2 * b } else { b };
        let added = match &cond.pooled {
            Some((pu, pc)) => {
                let text = if cfg_on {
                    Tensor::cat(&[rep2(pu)?, rep2(pc)?], 0)?
                } else {
                    rep2(pc)?
                };
                let (h, w) = (r.height as f32, r.width as f32);
                let ids = Tensor::new(&[h, w, 0.0, 0.0, h, w], &self.device)?
                    .unsqueeze(0)?
                    .repeat((rows, 1))?
                    .to_dtype(self.dtype)?;
                Some((text, ids))
            }
            None => None,
        };
        let f = self.info().vae_scale_factor;
        let shape = (1, self.unet.in_channels(), r.height / f, r.width / f);
        let mut init = Vec::with_capacity(b);
        for i in 0..b {
            init.push(item.noise.initial(i, shape)?);
        }
        let latents = (Tensor::cat(&init, 0)?
            .to_device(&self.device)?
            .to_dtype(DType::F32)?
            * scheduler.init_noise_sigma())?;
        let key = GroupKey {
            width: r.width,
            height: r.height,
            steps: r.steps,
            scheduler: r.scheduler,
            overrides: Value::Object(req.scheduler_overrides.clone()).to_string(),
        };
        Ok(Member {
            slot,
            item,
            key,
            r,
            scheduler,
            cfg_on,
            rows,
            context,
            added,
            warnings: cond.warnings,
            shape,
            latents,
        })
    }

    /// The denoising loop of requests that share a [`GroupKey`], then each one's decode.
    fn run_group(
        &self,
        mut active: Vec<Member<'_>>,
        results: &mut [Option<Result<GenerateOutput>>],
    ) {
        let total = active.first().map_or(0, |m| m.r.steps);
        for i in 0..total {
            let (gone, kept): (Vec<_>, Vec<_>) = active
                .into_iter()
                .partition(|m| m.item.cancel.is_cancelled());
            for m in gone {
                results[m.slot] = Some(Err(EngineError::Cancelled { step: i, total }));
            }
            active = kept;
            if active.is_empty() {
                return;
            }
            if let Err(e) = self.group_step(&mut active, i, total) {
                // A failed batched call fails every request in it; each gets the message.
                let msg = e.to_string();
                let mut first = Some(e);
                for m in &active {
                    let err = first.take().unwrap_or_else(|| {
                        EngineError::Tensor(candle_core::Error::Msg(msg.clone()))
                    });
                    results[m.slot] = Some(Err(err));
                }
                return;
            }
        }
        for m in active {
            let slot = m.slot;
            results[slot] = Some(self.finish(m, total));
        }
    }

    /// One denoising step of every member: one UNet call over all their rows, then guidance,
    /// the sampler step, previews and progress per member.
    fn group_step(&self, active: &mut [Member<'_>], i: usize, total: usize) -> Result<()> {
        let mut inputs = Vec::with_capacity(active.len());
        let mut ts = Vec::with_capacity(active.len());
        for m in active.iter() {
            let scaled = m.scheduler.scale_model_input(&m.latents, i)?;
            let x = if m.cfg_on {
                Tensor::cat(&[&scaled, &scaled], 0)?
            } else {
                scaled
            };
            inputs.push(x.to_dtype(self.dtype)?);
            let t = m.scheduler.timesteps().get(i).copied().ok_or_else(|| {
                EngineError::invalid("steps", format!("the sampler has no step {i}"))
            })?;
            ts.push(Tensor::full(t as f32, m.rows, &self.device)?);
        }
        let x = cat_rows(&inputs.iter().collect::<Vec<_>>())?;
        let t = cat_rows(&ts.iter().collect::<Vec<_>>())?;
        let context = cat_rows(&active.iter().map(|m| &m.context).collect::<Vec<_>>())?;
        // One model, so either every member has SDXL's added conditioning or none has.
        let added = match active
            .iter()
            .map(|m| m.added.as_ref())
            .collect::<Option<Vec<_>>>()
        {
            Some(parts) => {
                let texts: Vec<&Tensor> = parts.iter().map(|a| &a.0).collect();
                let ids: Vec<&Tensor> = parts.iter().map(|a| &a.1).collect();
                Some((cat_rows(&texts)?, cat_rows(&ids)?))
            }
            None => None,
        };
        let added_cond = added.as_ref().map(|(text, ids)| AddedCond {
            text_embeds: text,
            time_ids: ids,
        });
        self.calls
            .unet
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self
            .unet
            .forward(&x, &t, &context, added_cond)?
            .to_dtype(DType::F32)?;
        let mut offset = 0;
        for m in active.iter_mut() {
            let o = out.narrow(0, offset, m.rows)?;
            offset += m.rows;
            let b = m.r.batch_size;
            let guided = if m.cfg_on {
                let u = o.narrow(0, 0, b)?;
                let c = o.narrow(0, b, b)?;
                (&u + ((c - &u)? * m.r.guidance_scale)?)?
            } else {
                o
            };
            let step_noise = if m.scheduler.needs_noise(i) {
                let mut n = Vec::with_capacity(b);
                for j in 0..b {
                    n.push(m.item.noise.step(j, i, m.shape)?);
                }
                Some(
                    Tensor::cat(&n, 0)?
                        .to_device(&self.device)?
                        .to_dtype(DType::F32)?,
                )
            } else {
                None
            };
            m.latents = m.scheduler.step(StepInput {
                step: i,
                model_output: &guided,
                sample: &m.latents,
                noise: step_noise.as_ref(),
            })?;
            let every = m.item.request.preview_every;
            let due = every > 0 && ((i + 1) % every == 0 || i + 1 == total);
            let previews = if due {
                Some(
                    (0..b)
                        .map(|j| latent_preview(&m.latents.get(j)?, self.info().family))
                        .collect::<Result<Vec<_>>>()?,
                )
            } else {
                None
            };
            (m.item.progress)(&Progress {
                phase: Phase::Denoising,
                step: i + 1,
                total,
                previews,
            });
        }
        Ok(())
    }

    /// Decodes one member's latents into its output.
    fn finish(&self, m: Member<'_>, total: usize) -> Result<GenerateOutput> {
        (m.item.progress)(&Progress {
            phase: Phase::Decoding,
            step: total,
            total,
            previews: None,
        });
        let b = m.r.batch_size;
        let pixels = self.decode(&m.latents)?;
        let images = (0..b)
            .map(|j| RgbImage::from_tensor(&pixels.get(j)?))
            .collect::<Result<Vec<_>>>()?;
        for w in &m.warnings {
            tracing::warn!("{w}");
        }
        Ok(GenerateOutput {
            images,
            seeds: (0..b).map(|j| m.r.seed.wrapping_add(j as u64)).collect(),
            latents: m.latents,
            warnings: m.warnings,
            request: m.r,
        })
    }

    /// Decodes latents (as the sampler leaves them) to pixels in about [-1, 1], `[B, 3, H, W]`.
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let vae = &self.configs.vae;
        let mut z = (latents / vae.scaling_factor)?;
        if let Some(shift) = vae.shift_factor {
            z = (z + shift)?;
        }
        self.calls
            .vae
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let px = self.vae.forward(&z.to_dtype(self.vae_dtype)?)?;
        Ok(px.to_dtype(DType::F32)?)
    }
}
