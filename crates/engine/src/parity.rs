//! Replays a diffusers reference trace (the format of `fixtures/README.md`) stage by stage and
//! measures how far we are from it.
//!
//! Metric everywhere: `rel = max|ours - ref| / max|ref|`. Tolerances are the fixtures README's,
//! about 30x above what float32 op-order differences produce, and well below what any real bug
//! (tanh GELU, wrong group count, missing input scaling, wrong CFG order) produces (1e-2 .. 1).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{EngineError, Result};
use crate::image::{read_png, RgbImage};
use crate::model::DiffusionModel;
use crate::models::unet::AddedCond;
use crate::pipeline::{CancelToken, GenerateRequest, NoiseSource};
use crate::schedulers::{SchedulerKind, StepInput};

/// Text encoder outputs.
pub const TOL_TEXT: f64 = 1e-4;
/// One UNet call on stored inputs.
pub const TOL_UNET: f64 = 1e-4;
/// One scheduler step on stored inputs (pure elementwise math).
pub const TOL_SCHEDULER: f64 = 1e-5;
/// VAE decode of stored latents.
pub const TOL_VAE: f64 = 1e-4;
/// End-to-end latents and image after all steps.
pub const TOL_E2E: f64 = 1e-3;
/// PNG: share of 8-bit values that may differ by more than one level.
pub const PNG_MAX_OFF_BY_ONE: f64 = 0.001;
/// PNG: no value may differ by more than this.
pub const PNG_MAX_DIFF: u8 = 2;

/// One compared quantity.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageResult {
    /// Run id, or `text` / `schedule` for shared stages.
    pub case: String,
    pub stage: String,
    /// The error metric (rel error; for tokens the share of differing ids; for PNGs the share of
    /// values more than one level off).
    pub value: f64,
    pub tolerance: f64,
    pub pass: bool,
    /// Extra detail (e.g. the largest PNG level difference).
    pub note: String,
}

/// All stages of one reference file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ParityReport {
    pub reference: PathBuf,
    pub rows: Vec<StageResult>,
}

impl ParityReport {
    /// Whether every stage is within tolerance (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.rows.is_empty() && self.rows.iter().all(|r| r.pass)
    }

    fn push(&mut self, case: &str, stage: impl Into<String>, value: f64, tolerance: f64) {
        self.rows.push(StageResult {
            case: case.into(),
            stage: stage.into(),
            value,
            tolerance,
            pass: value.is_finite() && value <= tolerance,
            note: String::new(),
        });
    }
}

/// `max|a - b| / max|b|`, in f64.
pub fn rel_err(ours: &Tensor, reference: &Tensor) -> Result<f64> {
    let a = ours
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?;
    let b = reference
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F64)?
        .flatten_all()?;
    if a.dims() != b.dims() {
        return Ok(f64::INFINITY);
    }
    let diff = (&a - &b)?.abs()?.max(0)?.to_scalar::<f64>()?;
    let scale = b.abs()?.max(0)?.to_scalar::<f64>()?;
    Ok(if scale == 0.0 { diff } else { diff / scale })
}

fn rel_slices(ours: &[f64], reference: &[f64]) -> f64 {
    if ours.len() != reference.len() {
        return f64::INFINITY;
    }
    let diff = ours
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let scale = reference.iter().map(|b| b.abs()).fold(0.0, f64::max);
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

#[derive(Debug, Deserialize)]
struct RefText {
    prompt: String,
    #[serde(default)]
    input_ids: Vec<u32>,
    #[serde(default)]
    input_ids_2: Option<Vec<u32>>,
}

#[derive(Debug, Deserialize)]
struct RefStep {
    keys: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct RefRun {
    id: String,
    prompt_key: String,
    negative_prompt_key: Option<String>,
    height: usize,
    width: usize,
    scheduler_class: String,
    scheduler_config: Map<String, Value>,
    num_inference_steps: usize,
    guidance_scale: f64,
    do_classifier_free_guidance: bool,
    init_noise_sigma: f64,
    timesteps: Vec<f64>,
    #[serde(default)]
    sigmas: Option<Vec<f64>>,
    steps: Vec<RefStep>,
    encoder_hidden_states: Vec<String>,
    #[serde(default)]
    add_text_embeds: Option<Vec<String>>,
    #[serde(default)]
    add_time_ids: Option<Vec<f32>>,
    final_latents: String,
    image: String,
    png: String,
}

#[derive(Debug, Deserialize)]
struct RefMeta {
    text: HashMap<String, RefText>,
    runs: Vec<RefRun>,
}

struct Reference {
    path: PathBuf,
    dir: PathBuf,
    meta: RefMeta,
    tensors: HashMap<String, Tensor>,
}

impl Reference {
    fn load(path: &Path) -> Result<Self> {
        let json = path.with_extension("json");
        let bad = |m: String| EngineError::Reference {
            path: path.to_path_buf(),
            message: m,
        };
        let text = std::fs::read_to_string(&json).map_err(|e| EngineError::Reference {
            path: json.clone(),
            message: format!("metadata file next to the tensors: {e}"),
        })?;
        let meta: RefMeta = serde_json::from_str(&text).map_err(|e| EngineError::Reference {
            path: json.clone(),
            message: e.to_string(),
        })?;
        let tensors =
            candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            path: path.to_path_buf(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            meta,
            tensors,
        })
    }

    fn get(&self, key: &str) -> Result<&Tensor> {
        self.tensors.get(key).ok_or_else(|| EngineError::Reference {
            path: self.path.clone(),
            message: format!("tensor {key:?} is missing"),
        })
    }
}

/// Noise replayed from a trace: the stored initial noise and per-step scheduler noise, one
/// batch row per image.
struct ReplayNoise<'a> {
    init: &'a Tensor,
    steps: Vec<Option<&'a Tensor>>,
    path: &'a Path,
}

impl NoiseSource for ReplayNoise<'_> {
    fn initial(&mut self, index: usize, _shape: (usize, usize, usize, usize)) -> Result<Tensor> {
        Ok(self.init.narrow(0, index, 1)?)
    }

    fn step(
        &mut self,
        index: usize,
        step: usize,
        _shape: (usize, usize, usize, usize),
    ) -> Result<Tensor> {
        let t = self
            .steps
            .get(step)
            .copied()
            .flatten()
            .ok_or_else(|| EngineError::Reference {
                path: self.path.to_path_buf(),
                message: format!("the sampler needs noise at step {step} but the trace has none"),
            })?;
        Ok(t.narrow(0, index, 1)?)
    }
}

/// Compares an image with a reference PNG: (share of values more than one level off, largest difference).
pub fn png_diff(ours: &RgbImage, reference: &RgbImage) -> (f64, u8) {
    if ours.width != reference.width || ours.height != reference.height {
        return (1.0, 255);
    }
    let mut off = 0usize;
    let mut max = 0u8;
    for (a, b) in ours.data.iter().zip(&reference.data) {
        let d = a.abs_diff(*b);
        if d > 1 {
            off += 1;
        }
        max = max.max(d);
    }
    (off as f64 / ours.data.len().max(1) as f64, max)
}

/// Replays every case of the reference at `reference` (its `.json` sits beside it) against `model`.
/// `only` restricts to run ids containing that text.
pub fn run(model: &DiffusionModel, reference: &Path, only: Option<&str>) -> Result<ParityReport> {
    let r = Reference::load(reference)?;
    let mut report = ParityReport {
        reference: reference.to_path_buf(),
        rows: Vec::new(),
    };
    let dev = &model.device;
    let to_dev = |t: &Tensor| -> Result<Tensor> { Ok(t.to_device(dev)?.to_dtype(model.dtype)?) };

    // 1-2. Tokens and text encoders, per prompt.
    let mut names: Vec<&String> = r.meta.text.keys().collect();
    names.sort();
    for name in names {
        let text = &r.meta.text[name];
        let case = format!("text.{name}");
        let ids = model.tokenizer.encode(&text.prompt)?.ids;
        let mism = |a: &[u32], b: &[u32]| {
            if a.len() != b.len() {
                1.0
            } else {
                a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len().max(1) as f64
            }
        };
        report.push(&case, "token ids", mism(&ids, &text.input_ids), 0.0);
        let o1 = model
            .text_encoder
            .forward(&Tensor::new(ids.as_slice(), dev)?.unsqueeze(0)?)?;
        let mut ours: Vec<(&str, Tensor)> = vec![
            ("te1_last_hidden_state", o1.last_hidden_state.clone()),
            ("te1_pooler_output", o1.pooled.clone()),
            ("te1_penultimate", o1.penultimate.clone()),
        ];
        if let (Some(tok2), Some(te2), Some(ref_ids2)) =
            (&model.tokenizer_2, &model.text_encoder_2, &text.input_ids_2)
        {
            let ids2 = tok2.encode(&text.prompt)?.ids;
            report.push(&case, "token ids (tokenizer_2)", mism(&ids2, ref_ids2), 0.0);
            let o2 = te2.forward(&Tensor::new(ids2.as_slice(), dev)?.unsqueeze(0)?)?;
            ours.push(("te2_penultimate", o2.penultimate.clone()));
            ours.push(("te2_last_hidden_state", o2.last_hidden_state.clone()));
            if let Some(e) = &o2.text_embeds {
                ours.push(("te2_text_embeds", e.clone()));
            }
        }
        let mut w = Vec::new();
        let (emb, pooled) = model.encode_prompt(&text.prompt, &mut w)?;
        ours.push(("prompt_embeds", emb));
        if let Some(p) = pooled {
            ours.push(("pooled_prompt_embeds", p));
        }
        for (stage, t) in ours {
            let key = format!("text.{name}.{stage}");
            if let Some(reft) = r.tensors.get(&key) {
                report.push(&case, stage, rel_err(&t, reft)?, TOL_TEXT);
            }
        }
    }

    // Training schedule.
    if let (Some(ac_ref), Some(first)) = (
        r.tensors.get("schedule.alphas_cumprod"),
        r.meta.runs.first(),
    ) {
        let betas: crate::schedulers::common::BetaSchedule =
            crate::schedulers::common::parse(&first.scheduler_config, "schedule")?;
        let ac: Vec<f64> = betas.alphas_cumprod()?;
        let ac_ref: Vec<f64> = ac_ref.to_dtype(DType::F64)?.to_vec1()?;
        report.push(
            "schedule",
            "alphas_cumprod",
            rel_slices(&ac, &ac_ref),
            TOL_SCHEDULER,
        );
    }

    for run in &r.meta.runs {
        if only.is_some_and(|o| !run.id.contains(o)) {
            continue;
        }
        let case = run.id.as_str();
        let kind = SchedulerKind::from_diffusers_class(&run.scheduler_class, &run.scheduler_config)
            .ok_or_else(|| EngineError::Reference {
                path: r.path.clone(),
                message: format!(
                    "run {case}: scheduler class {} is not one atelier implements",
                    run.scheduler_class
                ),
            })?;
        let steps = run.num_inference_steps;
        if run.steps.len() != steps || run.timesteps.len() != steps {
            return Err(EngineError::Reference {
                path: r.path.clone(),
                message: format!(
                    "run {case}: num_inference_steps is {steps} but it records {} steps and {} timesteps",
                    run.steps.len(),
                    run.timesteps.len()
                ),
            });
        }

        // 3. Schedule: timesteps, sigmas, initial noise scale.
        let sched = kind.build(&run.scheduler_config, steps)?;
        let mut e = rel_slices(sched.timesteps(), &run.timesteps);
        e = e.max(
            (sched.init_noise_sigma() - run.init_noise_sigma).abs()
                / run.init_noise_sigma.abs().max(1e-12),
        );
        if let (Some(ours), Some(theirs)) = (sched.sigmas(), &run.sigmas) {
            e = e.max(rel_slices(ours, theirs));
        }
        report.push(
            case,
            "schedule (timesteps, sigmas, init sigma)",
            e,
            TOL_SCHEDULER,
        );

        // 4. UNet on stored inputs, one call per step.
        let ehs = run
            .encoder_hidden_states
            .iter()
            .map(|k| r.get(k).cloned())
            .collect::<Result<Vec<_>>>()?;
        let context = to_dev(&Tensor::cat(&ehs, 0)?)?;
        let rows = context.dim(0)?;
        let added = match (&run.add_text_embeds, &run.add_time_ids) {
            (Some(keys), Some(ids)) => {
                let pooled = keys
                    .iter()
                    .map(|k| r.get(k).cloned())
                    .collect::<Result<Vec<_>>>()?;
                let text = to_dev(&Tensor::cat(&pooled, 0)?)?;
                let ids = to_dev(
                    &Tensor::new(ids.as_slice(), &Device::Cpu)?
                        .unsqueeze(0)?
                        .repeat((rows, 1))?,
                )?;
                Some((text, ids))
            }
            _ => None,
        };
        for (i, st) in run.steps.iter().enumerate() {
            let key = |k: &str| -> Result<&Tensor> {
                let name = st.keys.get(k).ok_or_else(|| EngineError::Reference {
                    path: r.path.clone(),
                    message: format!("run {case} step {i} has no {k:?} key"),
                })?;
                r.get(name)
            };
            let t = key("t")?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?[0];
            let t = Tensor::full(t, rows, dev)?;
            let out = model.unet.forward(
                &to_dev(key("unet_in")?)?,
                &t,
                &context,
                added.as_ref().map(|(a, b)| AddedCond {
                    text_embeds: a,
                    time_ids: b,
                }),
            )?;
            report.push(
                case,
                format!("unet step {i}"),
                rel_err(&out, key("unet_out")?)?,
                TOL_UNET,
            );
        }

        // 5. Scheduler on stored model outputs and noise, step by step.
        let init = r.get(&format!("{case}.init_noise"))?;
        let mut sched = kind.build(&run.scheduler_config, steps)?;
        let mut sample = (init.to_dtype(DType::F32)? * run.init_noise_sigma)?;
        let mut step_noise = Vec::new();
        for (i, st) in run.steps.iter().enumerate() {
            let get = |k: &str| st.keys.get(k).map(|n| r.get(n)).transpose();
            let guided = match get("noise_pred")? {
                Some(t) => t.clone(),
                None => get("unet_out")?
                    .cloned()
                    .ok_or_else(|| EngineError::Reference {
                        path: r.path.clone(),
                        message: format!("run {case} step {i} has neither noise_pred nor unet_out"),
                    })?,
            };
            let noise = get("noise")?;
            step_noise.push(noise);
            let after = get("latents_after")?.ok_or_else(|| EngineError::Reference {
                path: r.path.clone(),
                message: format!("run {case} step {i} has no latents_after"),
            })?;
            let ours = sched.step(StepInput {
                step: i,
                model_output: &guided,
                sample: &sample,
                noise,
            })?;
            report.push(
                case,
                format!("scheduler step {i}"),
                rel_err(&ours, after)?,
                TOL_SCHEDULER,
            );
            sample = after.clone();
        }

        // 6. VAE decode of the stored final latents.
        let final_ref = r.get(&run.final_latents)?;
        let image_ref = r.get(&run.image)?;
        let decoded = model.decode(&final_ref.to_device(dev)?)?;
        report.push(case, "vae decode", rel_err(&decoded, image_ref)?, TOL_VAE);

        // 7. End to end through the real pipeline, only the noise injected.
        let text = |k: &str| {
            r.meta
                .text
                .get(k)
                .map(|t| t.prompt.clone())
                .ok_or_else(|| EngineError::Reference {
                    path: r.path.clone(),
                    message: format!("run {case} names prompt {k:?} which is not in text"),
                })
        };
        let req = GenerateRequest {
            prompt: text(&run.prompt_key)?,
            negative_prompt: run.negative_prompt_key.as_deref().map(text).transpose()?,
            width: Some(run.width),
            height: Some(run.height),
            steps: Some(steps),
            guidance_scale: Some(if run.do_classifier_free_guidance {
                run.guidance_scale
            } else {
                0.0
            }),
            scheduler: Some(kind),
            scheduler_overrides: run.scheduler_config.clone(),
            seed: 0,
            batch_size: Some(init.dim(0)?),
            preview_every: 0,
        };
        let mut noise = ReplayNoise {
            init,
            steps: step_noise,
            path: &r.path,
        };
        let out = model.generate_with(&req, &mut noise, &mut |_| {}, &CancelToken::new())?;
        report.push(
            case,
            "end-to-end final latents",
            rel_err(&out.latents, final_ref)?,
            TOL_E2E,
        );
        let pixels = model.decode(&out.latents)?;
        report.push(
            case,
            "end-to-end image",
            rel_err(&pixels, image_ref)?,
            TOL_E2E,
        );
        let png_path = r.dir.join(&run.png);
        let png_bytes = std::fs::read(&png_path).map_err(|e| EngineError::Reference {
            path: png_path.clone(),
            message: e.to_string(),
        })?;
        let reference_png = read_png(&png_bytes)?;
        let (share, max) = png_diff(&out.images[0], &reference_png);
        report.rows.push(StageResult {
            case: case.into(),
            stage: "end-to-end PNG".into(),
            value: share,
            tolerance: PNG_MAX_OFF_BY_ONE,
            pass: share <= PNG_MAX_OFF_BY_ONE && max <= PNG_MAX_DIFF,
            note: format!("max level diff {max}"),
        });
    }
    Ok(report)
}
