//! `atelier/text-to-image`: prompt in, images out.

use std::io::Cursor;
use std::sync::Arc;

use async_trait::async_trait;
use atelier_engine::pipeline::{GenerateRequest, MAX_BATCH};
use atelier_engine::SchedulerKind;
use atelier_platform::{App, JobContext, PlatformError};
use serde_json::{json, Map, Value};

use atelier_provenance::{LabelSpec, Provenance};
use atelier_safety::ImageScreening;

use crate::guard::{provenance, Guard};
use crate::registry::ModelRegistry;

/// Longest prompt accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 2000;
/// Most images per job.
pub const MAX_OUTPUTS: u64 = 4;
/// Largest side in pixels.
pub const MAX_SIDE: u64 = 2048;
/// Smallest side in pixels.
pub const MIN_SIDE: u64 = 64;
/// Most denoising steps.
pub const MAX_STEPS: u64 = 150;

const FIELDS: [&str; 13] = [
    "prompt",
    "negative_prompt",
    "model",
    "width",
    "height",
    "steps",
    "guidance_scale",
    "scheduler",
    "seed",
    "num_outputs",
    "output_format",
    "campaign",
    "label",
];

/// The text-to-image app.
pub struct TextToImage {
    models: Arc<ModelRegistry>,
    guard: Arc<Guard>,
}

impl TextToImage {
    /// Runs on the models of `models`, screening and marking through `guard`.
    pub fn new(models: Arc<ModelRegistry>, guard: Arc<Guard>) -> Self {
        Self { models, guard }
    }
}

/// The label a request asks for: `true` (default label), `false`, or a label object.
fn label_of(v: Option<&Value>) -> Result<Option<LabelSpec>, PlatformError> {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(LabelSpec::default())),
        Some(o @ Value::Object(_)) => {
            let spec: LabelSpec =
                atelier_platform::input::decode(o).map_err(|e| match e.path.as_str() {
                    "." => bad("label", e.message),
                    path => bad(&format!("label.{path}"), e.message),
                })?;
            spec.validate().map_err(|e| match e {
                atelier_provenance::ProvenanceError::Label { field, message } => {
                    PlatformError::invalid(format!("input.label.{field}"), message)
                }
                other => bad("label", other.to_string()),
            })?;
            Ok(Some(spec))
        }
        Some(_) => Err(bad("label", "must be true, false or a label object")),
    }
}

fn bad(field: &str, message: impl Into<String>) -> PlatformError {
    PlatformError::invalid(format!("input.{field}"), message)
}

fn get_u64(
    o: &Map<String, Value>,
    field: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, PlatformError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = v
                .as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .ok_or_else(|| bad(field, "must be a non-negative integer"))?;
            if n < min || n > max {
                return Err(bad(field, format!("must be between {min} and {max}")));
            }
            Ok(Some(n))
        }
    }
}

fn get_str<'a>(o: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, PlatformError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

/// Output encodings: (content type, extension).
fn format_of(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "png" => Some(("image/png", "png")),
        "jpg" | "jpeg" => Some(("image/jpeg", "jpg")),
        "webp" => Some(("image/webp", "webp")),
        _ => None,
    }
}

#[async_trait]
impl App for TextToImage {
    fn name(&self) -> &str {
        "atelier/text-to-image"
    }

    fn validate(&self, input: &Value) -> Result<Value, PlatformError> {
        let o = input
            .as_object()
            .ok_or_else(|| PlatformError::invalid("input", "must be a JSON object"))?;
        if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("unknown field; accepted: {}", FIELDS.join(", ")),
            ));
        }
        let prompt = get_str(o, "prompt")?.ok_or_else(|| bad("prompt", "is required"))?;
        if prompt.trim().is_empty() {
            return Err(bad("prompt", "must not be empty"));
        }
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(bad(
                "prompt",
                format!("is longer than {MAX_PROMPT_CHARS} characters"),
            ));
        }
        if let Some(n) = get_str(o, "negative_prompt")? {
            if n.chars().count() > MAX_PROMPT_CHARS {
                return Err(bad(
                    "negative_prompt",
                    format!("is longer than {MAX_PROMPT_CHARS} characters"),
                ));
            }
        }
        let models = self.models.list();
        let model = match get_str(o, "model")? {
            Some(m) => models
                .iter()
                .find(|i| i.name == m)
                .ok_or_else(|| {
                    bad(
                        "model",
                        format!(
                            "model {m:?} is not installed; installed: {}",
                            models
                                .iter()
                                .map(|i| i.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?
                .clone(),
            None => models.first().cloned().ok_or_else(|| {
                bad(
                    "model",
                    "no model is installed; run `atelier models pull stabilityai/sd-turbo`",
                )
            })?,
        };
        let f = model.vae_scale_factor as u64;
        let mut out = o.clone();
        for side in ["width", "height"] {
            if let Some(v) = get_u64(o, side, MIN_SIDE, MAX_SIDE)? {
                if v % f != 0 {
                    return Err(bad(side, format!("must be a multiple of {f}")));
                }
            } else {
                out.insert(side.into(), json!(model.native_size));
            }
        }
        get_u64(o, "steps", 1, MAX_STEPS)?;
        get_u64(o, "num_outputs", 1, MAX_OUTPUTS.min(MAX_BATCH as u64))?;
        match o.get("guidance_scale") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let g = v
                    .as_f64()
                    .ok_or_else(|| bad("guidance_scale", "must be a number"))?;
                if !(0.0..=30.0).contains(&g) {
                    return Err(bad("guidance_scale", "must be between 0 and 30"));
                }
            }
        }
        if let Some(s) = get_str(o, "scheduler")? {
            let k: SchedulerKind = s
                .parse()
                .map_err(|e: atelier_engine::EngineError| bad("scheduler", e.to_string()))?;
            out.insert("scheduler".into(), json!(k.name()));
        }
        if let Some(c) = get_str(o, "campaign")? {
            if !self.guard.has_campaign(c) {
                return Err(bad(
                    "campaign",
                    format!("no policy is configured for campaign {c:?}"),
                ));
            }
        }
        label_of(o.get("label"))?;
        if let Some(fmt) = get_str(o, "output_format")? {
            if format_of(fmt).is_none() {
                return Err(bad("output_format", "must be png, jpg or webp"));
            }
        }
        match o.get("seed") {
            None | Some(Value::Null) => {
                // Chosen now and stored, so a retried job reproduces the same images.
                out.insert("seed".into(), json!(rand::random::<u32>()));
            }
            Some(v) => {
                v.as_u64()
                    .ok_or_else(|| bad("seed", "must be a non-negative integer"))?;
            }
        }
        out.insert("model".into(), json!(model.name));
        Ok(Value::Object(out))
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["prompt"],
            "additionalProperties": false,
            "properties": {
                "prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS},
                "negative_prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS},
                "model": {"type": "string", "description": "installed model id (default: the first installed)"},
                "width": {"type": "integer", "minimum": MIN_SIDE, "maximum": MAX_SIDE, "description": "multiple of 8; default the model's native size"},
                "height": {"type": "integer", "minimum": MIN_SIDE, "maximum": MAX_SIDE},
                "steps": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS},
                "guidance_scale": {"type": "number", "minimum": 0, "maximum": 30},
                "scheduler": {"type": "string", "enum": SchedulerKind::ALL.map(|k| k.name())},
                "seed": {"type": "integer", "minimum": 0},
                "num_outputs": {"type": "integer", "minimum": 1, "maximum": MAX_OUTPUTS},
                "output_format": {"type": "string", "enum": ["png", "jpg", "webp"]},
                "campaign": {"type": "string", "description": "campaign whose safety policy applies"},
                "label": {
                    "description": "draw a visible AI label: true for the default (\"AI 생성\", bottom right), or settings",
                    "oneOf": [
                        {"type": "boolean"},
                        {"type": "object", "additionalProperties": false, "properties": {
                            "text": {"type": "string", "minLength": 1, "maxLength": 40},
                            "position": {"type": "string", "enum": ["top-left", "top-right", "bottom-left", "bottom-right"]},
                            "size": {"type": "number", "minimum": 0.01, "maximum": 0.2},
                            "color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
                            "background": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
                            "opacity": {"type": "number", "minimum": 0, "maximum": 1}
                        }}
                    ]
                }
            }
        })
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, PlatformError> {
        // One job is a batch of one: the same screening, engine run and marking.
        self.run_batch(vec![ctx])
            .await
            .pop()
            .unwrap_or_else(|| Err(PlatformError::Corrupt("job was not run".into())))
    }

    fn model(&self, input: &Value) -> Option<String> {
        // Validated inputs always name the model (the default is filled in).
        input.get("model")?.as_str().map(str::to_owned)
    }

    fn batch_key(&self, input: &Value) -> Option<String> {
        // Validated inputs always name the model and the size; steps and sampler may be left
        // to the model's defaults, which are the same for every job of that model.
        let o = input.as_object()?;
        let text = |k: &str| {
            o.get(k)
                .map_or_else(|| "default".to_owned(), Value::to_string)
        };
        Some(format!(
            "{}|{}x{}|steps={}|scheduler={}",
            o.get("model")?.as_str()?,
            o.get("width")?.as_u64()?,
            o.get("height")?.as_u64()?,
            text("steps"),
            text("scheduler"),
        ))
    }

    async fn run_batch(&self, ctxs: Vec<JobContext>) -> Vec<Result<Value, PlatformError>> {
        let mut results: Vec<Option<Result<Value, PlatformError>>> =
            ctxs.iter().map(|_| None).collect();
        // Screening and model loading per job; a blocked prompt leaves the batch here.
        let mut ready: Vec<(usize, Prepared)> = Vec::with_capacity(ctxs.len());
        for (i, ctx) in ctxs.iter().enumerate() {
            match self.prepare(ctx).await {
                Ok(p) => ready.push((i, p)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        // One engine run per model (the batch key names one; this only guards the invariant).
        while !ready.is_empty() {
            let model = ready[0].1.model.clone();
            let (group, rest): (Vec<_>, Vec<_>) = ready
                .into_iter()
                .partition(|(_, p)| Arc::ptr_eq(&p.model, &model));
            ready = rest;
            let runs = group
                .iter()
                .map(|(i, p)| EngineRun {
                    req: p.req.clone(),
                    progress: Box::new(progress_of(&ctxs[*i])),
                    cancel: ctxs[*i].cancel.clone(),
                })
                .collect();
            match run_engine_batch(&self.models, model, runs).await {
                Ok(outs) => {
                    for ((i, p), out) in group.into_iter().zip(outs) {
                        results[i] = Some(match out {
                            Ok(out) => self.finish(&ctxs[i], p, out).await,
                            Err(e) => Err(e),
                        });
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for (i, _) in group {
                        results[i] = Some(Err(PlatformError::Corrupt(msg.clone())));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(PlatformError::Corrupt("job was not run".into()))))
            .collect()
    }
}

/// A job's input turned into an engine request, after its prompt passed screening.
struct Prepared {
    verdict: crate::guard::PromptVerdict,
    label: Option<LabelSpec>,
    model: Arc<atelier_engine::DiffusionModel>,
    req: GenerateRequest,
    ctype: &'static str,
    ext: &'static str,
}

/// Progress and previews of a job's engine run, reported through its recorder.
fn progress_of(ctx: &JobContext) -> impl Fn(usize, usize, Option<Vec<u8>>) + Send + 'static {
    let r = ctx.reporter.clone();
    move |step, total, preview| r.progress_blocking(step, total, preview)
}

impl TextToImage {
    /// Screens the prompt, loads the model and builds the engine request.
    async fn prepare(&self, ctx: &JobContext) -> Result<Prepared, PlatformError> {
        let o = ctx.job.input.as_object().cloned().unwrap_or_default();
        // Screening comes first: a blocked prompt never reaches a model.
        let prompt_text = o.get("prompt").and_then(Value::as_str).unwrap_or_default();
        let campaign = o.get("campaign").and_then(Value::as_str);
        let verdict = self.guard.screen_prompt(ctx, campaign, prompt_text).await?;
        let label =
            label_of(o.get("label"))?.or_else(|| verdict.policy.label.then(LabelSpec::default));
        let name = o
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        ctx.reporter.log(format!("loading model {name}")).await;
        let model = self.models.get(&name).await?;
        let num = o.get("num_outputs").and_then(Value::as_u64).unwrap_or(1) as usize;
        let (ctype, ext) = format_of(
            o.get("output_format")
                .and_then(Value::as_str)
                .unwrap_or("png"),
        )
        .unwrap_or(("image/png", "png"));
        let req = GenerateRequest {
            prompt: o
                .get("prompt")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            negative_prompt: o
                .get("negative_prompt")
                .and_then(Value::as_str)
                .map(str::to_owned),
            width: o.get("width").and_then(Value::as_u64).map(|v| v as usize),
            height: o.get("height").and_then(Value::as_u64).map(|v| v as usize),
            steps: o.get("steps").and_then(Value::as_u64).map(|v| v as usize),
            guidance_scale: o.get("guidance_scale").and_then(Value::as_f64),
            scheduler: o
                .get("scheduler")
                .and_then(Value::as_str)
                .map(str::parse::<SchedulerKind>)
                .transpose()?,
            scheduler_overrides: Map::new(),
            seed: o.get("seed").and_then(Value::as_u64).unwrap_or(0),
            batch_size: Some(num),
            preview_every: 0,
        };
        let resolved = model.resolve(&req)?;
        let preview_every = (resolved.steps / 8).max(1);
        let req = GenerateRequest {
            preview_every,
            ..req
        };
        ctx.reporter
            .log(format!(
                "{} {}x{}, {} steps of {}, guidance {}, seed {}",
                resolved.model,
                resolved.width,
                resolved.height,
                resolved.steps,
                resolved.scheduler,
                resolved.guidance_scale,
                resolved.seed
            ))
            .await;
        Ok(Prepared {
            verdict,
            label,
            model,
            req,
            ctype,
            ext,
        })
    }

    /// Screens the images, marks them and stores them as the job's outputs.
    async fn finish(
        &self,
        ctx: &JobContext,
        p: Prepared,
        mut out: atelier_engine::pipeline::GenerateOutput,
    ) -> Result<Value, PlatformError> {
        let Prepared {
            verdict,
            label,
            model,
            ctype,
            ext,
            ..
        } = p;
        for w in &out.warnings {
            ctx.reporter.log(format!("warning: {w}")).await;
        }
        let screened = self
            .guard
            .screen_images(ctx, &verdict, std::mem::take(&mut out.images))
            .await?;
        if screened.screening == ImageScreening::Unavailable {
            ctx.reporter
                .log("image screening unavailable: no safety checker is installed")
                .await;
        }
        let weights = self.models.weights_digest(&model.info().path).await;
        let params = serde_json::to_value(&out.request)
            .map_err(|e| PlatformError::Corrupt(format!("request: {e}")))?;
        let mut images = Vec::with_capacity(screened.images.len());
        let mut marks = Vec::with_capacity(screened.images.len());
        for (i, mut img) in screened.images.into_iter().enumerate() {
            let seed = out.seeds[i];
            let mark = self.guard.mark(&mut img, label.as_ref(), &ctx.job.id)?;
            let mut p = params.clone();
            p["seed"] = json!(seed);
            let prov = provenance(
                &ctx.job.id,
                &out.request.model,
                weights.clone(),
                seed,
                p,
                mark,
                label.as_ref(),
                json!({
                    "prompt": if verdict.flagged.is_some() { "flagged" } else { "passed" },
                    "prompt_category": verdict.flagged,
                    "image_screening": screened.screening,
                    "has_nsfw_concept": screened.nsfw[i],
                    "blurred": screened.blurred[i],
                }),
            );
            let bytes = encode(&img, ext, &out.request.parameters_text(seed), &prov)
                .map_err(|e| PlatformError::invalid("input.output_format", e))?;
            let bytes = self.guard.sign(bytes, ctype, &prov)?;
            images.push(json!(ctx.put_file(ctype, ext, bytes).await?));
            marks.push(json!(mark.map(|m| m.hex())));
        }
        Ok(json!({
            "images": images,
            "seeds": out.seeds,
            "has_nsfw_concepts": screened.nsfw,
            "flagged": screened.flagged,
            "image_screening": screened.screening,
            "watermarks": marks,
            "c2pa": self.guard.c2pa.as_ref().map(|s| s.description.clone()),
        }))
    }
}

/// Runs the engine on a blocking thread, with progress and previews (of the first image)
/// reported for the job; counts the generation in the registry.
pub(crate) async fn run_engine(
    models: &ModelRegistry,
    model: Arc<atelier_engine::DiffusionModel>,
    req: GenerateRequest,
    progress: impl Fn(usize, usize, Option<Vec<u8>>) + Send + 'static,
    cancel: atelier_engine::CancelToken,
) -> Result<atelier_engine::pipeline::GenerateOutput, PlatformError> {
    let run = EngineRun {
        req,
        progress: Box::new(progress),
        cancel,
    };
    run_engine_batch(models, model, vec![run])
        .await?
        .pop()
        .unwrap_or_else(|| {
            Err(PlatformError::Corrupt(
                "the engine returned no result".into(),
            ))
        })
}

/// One job's part of an engine run: its request, where its progress goes, its cancel.
pub(crate) struct EngineRun {
    pub req: GenerateRequest,
    /// `(step, total, preview PNG of the first image)`.
    pub progress: Box<dyn Fn(usize, usize, Option<Vec<u8>>) + Send>,
    pub cancel: atelier_engine::CancelToken,
}

/// Runs several jobs' requests as one batched engine run on a blocking thread (requests that
/// share size and steps share UNet calls); one result per run, in order. The outer error is a
/// panicked thread; the inner ones belong to each job.
pub(crate) async fn run_engine_batch(
    models: &ModelRegistry,
    model: Arc<atelier_engine::DiffusionModel>,
    runs: Vec<EngineRun>,
) -> Result<Vec<Result<atelier_engine::pipeline::GenerateOutput, PlatformError>>, PlatformError> {
    for _ in &runs {
        models.count_generation();
    }
    tokio::task::spawn_blocking(move || {
        let mut noises: Vec<atelier_engine::pipeline::SeededNoise> = runs
            .iter()
            // `resolve` defaults the image count to 1 as well; an invalid request fails there.
            .map(|r| {
                atelier_engine::pipeline::SeededNoise::new(
                    r.req.seed,
                    r.req.batch_size.unwrap_or(1),
                )
            })
            .collect();
        let mut callbacks: Vec<Box<dyn FnMut(&atelier_engine::Progress) + '_>> = runs
            .iter()
            .map(|r| {
                Box::new(move |p: &atelier_engine::Progress| {
                    if p.phase != atelier_engine::pipeline::Phase::Denoising {
                        return;
                    }
                    let preview = p
                        .previews
                        .as_ref()
                        .and_then(|v| v.first())
                        .and_then(|img| img.to_png(&[]).ok());
                    (r.progress)(p.step, p.total, preview);
                }) as Box<dyn FnMut(&atelier_engine::Progress) + '_>
            })
            .collect();
        let items = runs
            .iter()
            .zip(noises.iter_mut())
            .zip(callbacks.iter_mut())
            .map(|((r, noise), cb)| atelier_engine::BatchItem {
                request: &r.req,
                noise,
                progress: cb.as_mut(),
                cancel: &r.cancel,
            })
            .collect();
        model
            .generate_batch(items)
            .into_iter()
            .map(|r| r.map_err(PlatformError::from))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| PlatformError::Corrupt(format!("generation thread panicked: {e}")))
}

/// Encodes with provenance: PNG text chunks + XMP, JPEG with XMP, WebP pixels only (the
/// encoder has no metadata support; the watermark still identifies the job).
pub(crate) fn encode(
    img: &atelier_engine::image::RgbImage,
    ext: &str,
    parameters: &str,
    prov: &Provenance,
) -> Result<Vec<u8>, String> {
    if ext == "png" {
        return atelier_provenance::metadata::encode_png(
            img.width, img.height, &img.data, parameters, prov,
        )
        .map_err(|e| e.to_string());
    }
    let bytes = encode_plain(img, ext)?;
    if ext == "jpg" {
        return atelier_provenance::metadata::jpeg_with_xmp(&bytes, &prov.xmp())
            .map_err(|e| e.to_string());
    }
    Ok(bytes)
}

fn encode_plain(img: &atelier_engine::image::RgbImage, ext: &str) -> Result<Vec<u8>, String> {
    let buf = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data.clone())
        .ok_or_else(|| "image buffer has the wrong size".to_string())?;
    let mut out = Cursor::new(Vec::new());
    let fmt = match ext {
        "jpg" => image::ImageFormat::Jpeg,
        "webp" => image::ImageFormat::WebP,
        _ => image::ImageFormat::Png,
    };
    image::DynamicImage::ImageRgb8(buf)
        .write_to(&mut out, fmt)
        .map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

/// The diffusion model a workflow draws with: the configured one, else the first installed.
pub(crate) fn model_or_first(
    models: &ModelRegistry,
    configured: Option<&str>,
) -> Result<String, PlatformError> {
    match configured {
        Some(m) => Ok(m.to_owned()),
        None => models
            .list()
            .first()
            .map(|m| m.name.clone())
            .ok_or_else(|| PlatformError::Failed {
                code: "no_model".into(),
                message:
                    "no diffusion model is installed; run `atelier models pull stabilityai/sd-turbo`"
                        .into(),
            }),
    }
}

/// One picture a workflow step drew, after the image screening.
pub(crate) struct Drawn {
    pub image: atelier_engine::image::RgbImage,
    pub resolved: atelier_engine::pipeline::ResolvedRequest,
    pub weights_sha256: Option<String>,
    pub screening: Value,
    pub flagged: bool,
    pub blurred: bool,
}

/// Draws one picture for a multi-picture step (a comic panel, a storyboard cut) and screens
/// it under `policy`. Progress is reported as picture `slot.0` of `slot.1`, so one bar covers
/// the whole step.
pub(crate) async fn draw_one(
    ctx: &JobContext,
    models: &ModelRegistry,
    guard: &Guard,
    policy: atelier_safety::policy::Effective,
    model: Arc<atelier_engine::DiffusionModel>,
    req: GenerateRequest,
    slot: (usize, usize),
) -> Result<Drawn, PlatformError> {
    let resolved = model.resolve(&req)?;
    let r = ctx.reporter.clone();
    let (base, total) = (slot.0 * resolved.steps, slot.1 * resolved.steps);
    let mut out = run_engine(
        models,
        model.clone(),
        req,
        move |step, _n, p| r.progress_blocking(base + step, total, p),
        ctx.cancel.clone(),
    )
    .await?;
    let img = out.images.pop().ok_or_else(|| PlatformError::Failed {
        code: "generation_error".into(),
        message: "the engine returned no image".into(),
    })?;
    let verdict = crate::guard::PromptVerdict {
        policy,
        flagged: None,
    };
    let mut sc = guard.screen_images(ctx, &verdict, vec![img]).await?;
    let image = sc
        .images
        .pop()
        .ok_or_else(|| PlatformError::Corrupt("screening returned no image".into()))?;
    Ok(Drawn {
        image,
        weights_sha256: models.weights_digest(&model.info().path).await,
        screening: serde_json::to_value(sc.screening).unwrap_or(Value::Null),
        flagged: sc.flagged.first().copied().unwrap_or(false),
        blurred: sc.blurred.first().copied().unwrap_or(false),
        resolved,
    })
}
