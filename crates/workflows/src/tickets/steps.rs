//! The photo-ticket pipeline: nine steps, each recorded with its outputs and artifacts so a
//! ticket resumes where it stopped after a crash and any step can be run again with the
//! earlier steps' results kept ("new picture, same copy").
//!
//! screen_text → copy → screen_copy → image → screen_image → preset → render → mark → publish

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use atelier_compose::ticket::{choose_from, observe, Presets, TicketRequest};
use atelier_compose::{Fonts, RasterOptions, Rgba};
use atelier_engine::image::RgbImage;
use atelier_engine::pipeline::GenerateRequest;
use atelier_engine::{CancelToken, SchedulerKind};
use atelier_platform::{PlatformError, FILE_REF};
use atelier_safety::ImageScreening;
use atelier_writer::tasks::{ImagePrompt, ImagePromptInput, TicketCopy, TicketCopyInput};
use atelier_writer::{WriteOptions, Writer, WriterError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::campaign::{Campaign, CopyMode};
use super::store::{TicketRecord, TicketStatus};
use crate::guard::{provenance, Audit, Guard, PromptVerdict};
use crate::registry::ModelRegistry;

type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// The steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The customer's name and lifestyle text against the campaign's policy.
    ScreenText,
    /// Title, tagline and image prompt: the LLM's `ticket_copy`, or what was supplied.
    Copy,
    /// The copy against the same policy (a model or a customer can write anything).
    ScreenCopy,
    /// The picture, with the campaign's style and model defaults.
    Image,
    /// The safety checker and the image policy.
    ScreenImage,
    /// The layout: the override, or the automatic choice among the campaign's presets.
    Preset,
    /// The ticket drawn by compose (copy, brand, palette, logo, QR, visible label).
    Render,
    /// Watermark, provenance metadata and C2PA manifest.
    Mark,
    /// The share page goes live.
    Publish,
}

impl Step {
    /// Every step in order.
    pub const ALL: [Step; 9] = [
        Step::ScreenText,
        Step::Copy,
        Step::ScreenCopy,
        Step::Image,
        Step::ScreenImage,
        Step::Preset,
        Step::Render,
        Step::Mark,
        Step::Publish,
    ];

    /// The name in APIs and records.
    pub fn name(self) -> &'static str {
        match self {
            Step::ScreenText => "screen_text",
            Step::Copy => "copy",
            Step::ScreenCopy => "screen_copy",
            Step::Image => "image",
            Step::ScreenImage => "screen_image",
            Step::Preset => "preset",
            Step::Render => "render",
            Step::Mark => "mark",
            Step::Publish => "publish",
        }
    }

    /// Parses a step name.
    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// One step's record: what it produced (files as `atelier-file://` references) or why it
/// failed, and how long it took.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    pub step: Step,
    /// `done` or `failed`.
    pub status: String,
    pub ms: u64,
    /// When it ended (ms since the epoch).
    pub at: i64,
    #[serde(default)]
    pub output: Value,
    /// `{code, message, category?}` when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// Reports denoising progress (step, total, preview PNG) from a blocking thread.
pub type ProgressFn = Arc<dyn Fn(usize, usize, Option<Vec<u8>>) + Send + Sync>;

/// What a ticket run needs from where it runs: a job on the server, or `atelier ticket`.
#[async_trait]
pub trait TicketHost: Audit {
    /// The job (or local run) id recorded in provenance.
    fn job_id(&self) -> &str;
    /// Stops the run between steps and inside generation.
    fn cancel(&self) -> CancelToken;
    /// Progress of image generation, callable from a blocking thread.
    fn progress(&self) -> ProgressFn;
    /// A log line for the job.
    async fn log(&self, line: String);
    /// Stores an artifact; returns its `atelier-file://` reference.
    async fn put_file(&self, content_type: &str, ext: &str, bytes: Vec<u8>) -> Result<String>;
    /// Reads back an artifact by reference (re-runs of later steps).
    async fn get_file(&self, reference: &str) -> Result<Vec<u8>>;
    /// Persists the ticket after each step.
    async fn save(&self, ticket: &TicketRecord) -> Result<()>;
}

/// Everything the ticket steps run on; shared by the ticket app, the batch app and the CLI.
pub struct TicketWorkflow {
    pub models: Arc<ModelRegistry>,
    pub guard: Arc<Guard>,
    pub writer: Writer,
    pub presets: Arc<Presets>,
    pub fonts: Arc<Mutex<Fonts>>,
    /// Base of share links (`https://tickets.example.com`), printed as the ticket's QR code;
    /// empty leaves the QR slot blank (tickets made without a server).
    pub share_base: String,
}

impl std::fmt::Debug for TicketWorkflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketWorkflow")
            .field("share_base", &self.share_base)
            .finish()
    }
}

/// Images decoded during one run, so later steps need not read their own artifacts back.
#[derive(Default)]
struct Cache {
    image: Option<RgbImage>,
    ticket: Option<image::RgbaImage>,
}

/// The error record of a failed step.
pub(crate) fn error_record(e: &PlatformError) -> Value {
    match e {
        PlatformError::ContentBlocked(b) => json!({
            "code": "blocked", "category": b.category, "message": b.message
        }),
        PlatformError::InvalidInput { field, message } => json!({
            "code": "invalid", "field": field, "message": message
        }),
        PlatformError::Conflict { field, message } => json!({
            "code": "conflict", "field": field, "message": message
        }),
        PlatformError::Failed { code, message } => json!({"code": code, "message": message}),
        PlatformError::Engine(atelier_engine::EngineError::Cancelled { .. }) => {
            json!({"code": "canceled", "message": e.to_string()})
        }
        PlatformError::Engine(_) => json!({"code": "generation_error", "message": e.to_string()}),
        other => json!({"code": "internal", "message": other.to_string()}),
    }
}

/// The error a cancelled run ends with (the platform records the job as canceled).
pub(crate) fn cancelled(step: usize, total: usize) -> PlatformError {
    atelier_engine::EngineError::Cancelled { step, total }.into()
}

pub(crate) fn failed(code: &str, message: impl Into<String>) -> PlatformError {
    PlatformError::Failed {
        code: code.into(),
        message: message.into(),
    }
}

fn file_id(reference: &str) -> Option<&str> {
    reference.strip_prefix(FILE_REF)
}

pub(crate) fn png(img: &image::RgbaImage) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| failed("render_error", format!("PNG encoding: {e}")))?;
    Ok(out.into_inner())
}

fn decode_rgb(bytes: &[u8]) -> Result<RgbImage> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| PlatformError::Corrupt(format!("stored image: {e}")))?
        .to_rgb8();
    Ok(RgbImage {
        width: img.width() as usize,
        height: img.height() as usize,
        data: img.into_raw(),
    })
}

pub(crate) fn rgba_of(img: &RgbImage) -> Result<image::RgbaImage> {
    let rgb = image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data.clone())
        .ok_or_else(|| PlatformError::Corrupt("image buffer has the wrong size".into()))?;
    Ok(image::DynamicImage::ImageRgb8(rgb).to_rgba8())
}

fn record_of(t: &TicketRecord, step: Step) -> Option<&StepRecord> {
    t.steps
        .iter()
        .find(|r| r.step == step && r.status == "done")
}

fn out_of(t: &TicketRecord, step: Step) -> Result<&Value> {
    record_of(t, step)
        .map(|r| &r.output)
        .ok_or_else(|| PlatformError::Corrupt(format!("step {} has no record", step.name())))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

impl TicketWorkflow {
    /// The share link of a ticket.
    pub fn share_url(&self, share_id: &str) -> String {
        format!("{}/t/{share_id}", self.share_base.trim_end_matches('/'))
    }

    /// Runs a ticket's steps: from `from` when given (that step and every later one again;
    /// earlier records kept), else from the first step without a record. Saves after every
    /// step; on failure the failed step is recorded, the ticket marked failed and the error
    /// returned.
    pub async fn run(
        &self,
        host: &dyn TicketHost,
        campaign: &Campaign,
        t: &mut TicketRecord,
        from: Option<Step>,
    ) -> Result<()> {
        match from {
            Some(f) => t.steps.retain(|r| r.step < f && r.status == "done"),
            None => t.steps.retain(|r| r.status == "done"),
        }
        // A gap (a record after a missing step) means a partial re-run: keep only the prefix.
        let prefix = Step::ALL
            .iter()
            .take_while(|s| record_of(t, **s).is_some())
            .count();
        t.steps.retain(|r| Step::ALL[..prefix].contains(&r.step));
        if prefix == Step::ALL.len() {
            // Every step is recorded (a crash after publishing): nothing to redo.
            t.status = TicketStatus::Ready;
            t.file = Some(str_of(out_of(t, Step::Mark)?, "file").to_owned());
            return host.save(t).await;
        }
        t.status = TicketStatus::Processing;
        t.job_id = Some(host.job_id().to_owned());
        // Chosen once and stored: the copy (on a local model) and the picture reproduce when
        // the run resumes after a crash.
        if t.input.seed.is_none() {
            t.input.seed = Some(rand::random::<u32>() as u64);
        }
        // `file` keeps the last published ticket: a re-run does not take a shared link down.
        t.updated_at = atelier_platform::now_ms();
        host.save(t).await?;
        let mut cache = Cache::default();
        for step in Step::ALL[prefix..].iter().copied() {
            if host.cancel().is_cancelled() {
                return Err(cancelled(0, 0));
            }
            let started = std::time::Instant::now();
            let res = self.step(host, campaign, t, step, &mut cache).await;
            let now = atelier_platform::now_ms();
            let ms = started.elapsed().as_millis() as u64;
            match res {
                Ok(output) => {
                    t.steps.push(StepRecord {
                        step,
                        status: "done".into(),
                        ms,
                        at: now,
                        output,
                        error: None,
                    });
                    if step == Step::Publish {
                        t.status = TicketStatus::Ready;
                        t.file = Some(str_of(out_of(t, Step::Mark)?, "file").to_owned());
                    }
                    t.updated_at = now;
                    host.save(t).await?;
                }
                Err(e) => {
                    let cancelled = matches!(
                        e,
                        PlatformError::Engine(atelier_engine::EngineError::Cancelled { .. })
                    );
                    if !cancelled {
                        t.steps.push(StepRecord {
                            step,
                            status: "failed".into(),
                            ms,
                            at: now,
                            output: Value::Null,
                            error: Some(error_record(&e)),
                        });
                        t.status = TicketStatus::Failed;
                    }
                    t.updated_at = now;
                    host.save(t).await?;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn step(
        &self,
        host: &dyn TicketHost,
        c: &Campaign,
        t: &mut TicketRecord,
        step: Step,
        cache: &mut Cache,
    ) -> Result<Value> {
        match step {
            Step::ScreenText => {
                let mut text = t.input.text.clone();
                if t.input.show_name {
                    text = format!("{}\n{text}", t.input.name);
                }
                let v = self.screen(host, c, t, "lifestyle_text", &text).await?;
                Ok(
                    json!({"decision": if v.flagged.is_some() {"flagged"} else {"passed"}, "category": v.flagged}),
                )
            }
            Step::Copy => self.copy(host, c, t).await,
            Step::ScreenCopy => {
                let copy = out_of(t, Step::Copy)?;
                let text = format!(
                    "{}\n{}\n{}",
                    str_of(copy, "title"),
                    str_of(copy, "tagline"),
                    str_of(copy, "image_prompt")
                );
                let v = self.screen(host, c, t, "copy", &text).await?;
                Ok(
                    json!({"decision": if v.flagged.is_some() {"flagged"} else {"passed"}, "category": v.flagged}),
                )
            }
            Step::Image => self.image(host, c, t, cache).await,
            Step::ScreenImage => self.screen_image(host, c, t, cache).await,
            Step::Preset => self.preset(host, c, t, cache).await,
            Step::Render => self.render(host, c, t, cache).await,
            Step::Mark => self.mark(host, c, t, cache).await,
            Step::Publish => {
                let flagged = [Step::ScreenText, Step::ScreenCopy]
                    .iter()
                    .filter_map(|s| record_of(t, *s))
                    .any(|r| str_of(&r.output, "decision") == "flagged")
                    || record_of(t, Step::ScreenImage)
                        .is_some_and(|r| r.output["flagged"].as_bool() == Some(true));
                // Flagged content is kept for review but never shown on a public page.
                Ok(json!({
                    "share_id": t.share_id,
                    "url": self.share_url(&t.share_id),
                    "public": !flagged,
                }))
            }
        }
    }

    fn policy(&self, c: &Campaign, t: &TicketRecord) -> atelier_safety::policy::Effective {
        self.guard
            .policy(&t.tenant_id, Some(&c.id), Some(&c.spec.safety))
    }

    async fn screen(
        &self,
        host: &dyn TicketHost,
        c: &Campaign,
        t: &TicketRecord,
        stage: &str,
        text: &str,
    ) -> Result<PromptVerdict> {
        self.guard
            .screen_text(host, self.policy(c, t), Some(&c.id), stage, text)
            .await
    }

    async fn copy(&self, host: &dyn TicketHost, c: &Campaign, t: &TicketRecord) -> Result<Value> {
        let i = &t.input;
        let supplied = i.title.is_some() && i.tagline.is_some();
        if !supplied && c.spec.copy == CopyMode::Supplied {
            return Err(PlatformError::invalid(
                if i.title.is_none() {
                    "input.title"
                } else {
                    "input.tagline"
                },
                "this campaign takes supplied copy: give both title and tagline",
            ));
        }
        if supplied && self.writer.llm().is_none() {
            // No model to translate: the customer's own words are the picture's prompt.
            return Ok(json!({
                "title": i.title, "tagline": i.tagline, "image_prompt": i.text,
                "source": "supplied", "image_prompt_source": "text",
            }));
        }
        // What a model writes is screened before it is kept: text the policy would block is
        // written again with the next seed (the customer's text already passed), up to
        // COPY_ATTEMPTS times; screen_copy then judges the final text as usual.
        let policy = self.policy(c, t);
        let mut rejected = Vec::new();
        let mut last = Value::Null;
        for attempt in 0..COPY_ATTEMPTS {
            let seed = i.seed.map(|s| s.wrapping_add(attempt as u64));
            let mut out = self.write_copy(host, c, t, seed, supplied).await?;
            let text = format!(
                "{}\n{}\n{}",
                str_of(&out, "title"),
                str_of(&out, "tagline"),
                str_of(&out, "image_prompt")
            );
            let d = policy.screener.screen(&text);
            out["rewrites"] = json!(attempt);
            if !rejected.is_empty() {
                out["rejected"] = json!(rejected);
            }
            match d.category {
                Some(cat) if policy.action == atelier_safety::Action::Reject => {
                    host.log(format!(
                        "the model's copy matched {cat} ({:?}); writing it again",
                        d.term.unwrap_or_default()
                    ))
                    .await;
                    rejected.push(cat);
                    last = out;
                }
                _ => return Ok(out),
            }
        }
        Ok(last)
    }

    /// One model call for the copy: `ticket_copy`, or only the English prompt (`image_prompt`)
    /// when the title and tagline were supplied.
    async fn write_copy(
        &self,
        host: &dyn TicketHost,
        c: &Campaign,
        t: &TicketRecord,
        seed: Option<u64>,
        supplied: bool,
    ) -> Result<Value> {
        let i = &t.input;
        let opts = WriteOptions {
            seed,
            cancel: atelier_llm::CancelToken::sharing(host.cancel().flag()),
        };
        let writer_error = |e: WriterError| match e {
            WriterError::NoModel { .. } => PlatformError::invalid("input.title", e.to_string()),
            WriterError::InvalidInput { field, message } => {
                PlatformError::invalid(format!("input.{field}"), message)
            }
            WriterError::Llm(atelier_llm::LlmError::Cancelled) => cancelled(0, 0),
            other => failed("llm_error", other.to_string()),
        };
        if supplied {
            let input = ImagePromptInput {
                text: i.text.clone(),
                style: None,
                keep: Vec::new(),
            };
            host.log("writing the image prompt (image_prompt)".into())
                .await;
            let w = self
                .writer
                .write::<ImagePrompt>(&input, &opts)
                .await
                .map_err(writer_error)?;
            return Ok(json!({
                "title": i.title, "tagline": i.tagline, "image_prompt": w.value.prompt,
                "source": "supplied", "image_prompt_source": format!("llm:{}", w.model),
            }));
        }
        let input = TicketCopyInput {
            lifestyle: i.text.clone(),
            name: i.show_name.then(|| i.name.clone()),
            brand: Some(c.spec.brand.clone()),
            style: (!c.spec.style_prompt.trim().is_empty()).then(|| c.spec.style_prompt.clone()),
        };
        host.log("writing the copy (ticket_copy)".into()).await;
        let w = self
            .writer
            .write::<TicketCopy>(&input, &opts)
            .await
            .map_err(writer_error)?;
        Ok(json!({
            "title": i.title.clone().unwrap_or(w.value.title),
            "tagline": i.tagline.clone().unwrap_or(w.value.tagline),
            "image_prompt": w.value.image_prompt,
            "source": format!("llm:{}", w.model),
            "completion_tokens": w.completion_tokens,
        }))
    }

    async fn image(
        &self,
        host: &dyn TicketHost,
        c: &Campaign,
        t: &TicketRecord,
        cache: &mut Cache,
    ) -> Result<Value> {
        let g = &c.spec.generation;
        let model_name = match &g.model {
            Some(m) => m.clone(),
            None => self
                .models
                .list()
                .first()
                .map(|m| m.name.clone())
                .ok_or_else(|| {
                    PlatformError::invalid(
                        "campaign.generation.model",
                        "no model is installed; run `atelier models pull stabilityai/sd-turbo`",
                    )
                })?,
        };
        let copy = out_of(t, Step::Copy)?;
        let mut prompt = str_of(copy, "image_prompt").trim().to_owned();
        if !c.spec.style_prompt.trim().is_empty() {
            prompt = format!("{prompt}, {}", c.spec.style_prompt.trim());
        }
        let negative = c.spec.negative_prompt.trim().to_owned();
        let seed = t.input.seed.unwrap_or_default();
        host.log(format!("loading model {model_name}")).await;
        let model = self.models.get(&model_name).await?;
        let req = GenerateRequest {
            prompt: prompt.clone(),
            negative_prompt: (!negative.is_empty()).then(|| negative.clone()),
            width: g.width.map(|v| v as usize),
            height: g.height.map(|v| v as usize),
            steps: g.steps.map(|v| v as usize),
            guidance_scale: g.guidance_scale,
            scheduler: g
                .scheduler
                .as_deref()
                .map(str::parse::<SchedulerKind>)
                .transpose()?,
            scheduler_overrides: Map::new(),
            seed,
            batch_size: Some(1),
            preview_every: 0,
        };
        let resolved = model.resolve(&req)?;
        let req = GenerateRequest {
            preview_every: (resolved.steps / 4).max(1),
            ..req
        };
        let progress = host.progress();
        let mut out = crate::text_to_image::run_engine(
            &self.models,
            model.clone(),
            req,
            move |s, n, p| progress(s, n, p),
            host.cancel(),
        )
        .await?;
        for w in &out.warnings {
            host.log(format!("warning: {w}")).await;
        }
        let img = out
            .images
            .pop()
            .ok_or_else(|| failed("generation_error", "the engine returned no image"))?;
        let file = host
            .put_file("image/png", "png", png(&rgba_of(&img)?)?)
            .await?;
        cache.image = Some(img);
        let weights = self.models.weights_digest(&model.info().path).await;
        Ok(json!({
            "file": file,
            "model": resolved.model,
            "prompt": prompt,
            "negative_prompt": negative,
            "seed": seed,
            "width": resolved.width,
            "height": resolved.height,
            "steps": resolved.steps,
            "scheduler": resolved.scheduler,
            "guidance_scale": resolved.guidance_scale,
            "weights_sha256": weights,
        }))
    }

    /// The generated (or screened) picture, from this run's cache or its artifact.
    async fn picture(
        &self,
        host: &dyn TicketHost,
        t: &TicketRecord,
        step: Step,
        cache: &mut Cache,
    ) -> Result<RgbImage> {
        if let Some(img) = &cache.image {
            return Ok(img.clone());
        }
        let r = str_of(out_of(t, step)?, "file").to_owned();
        let img = decode_rgb(&host.get_file(&r).await?)?;
        cache.image = Some(img.clone());
        Ok(img)
    }

    async fn screen_image(
        &self,
        host: &dyn TicketHost,
        c: &Campaign,
        t: &TicketRecord,
        cache: &mut Cache,
    ) -> Result<Value> {
        let img = self.picture(host, t, Step::Image, cache).await?;
        let flagged = [Step::ScreenText, Step::ScreenCopy]
            .iter()
            .filter_map(|s| record_of(t, *s))
            .find_map(|r| r.output["category"].as_str().map(str::to_owned));
        let verdict = PromptVerdict {
            policy: self.policy(c, t),
            flagged,
        };
        let mut s = self.guard.screen_images(host, &verdict, vec![img]).await?;
        let blurred = s.blurred.first().copied().unwrap_or(false);
        let mut file = str_of(out_of(t, Step::Image)?, "file").to_owned();
        let img = s
            .images
            .pop()
            .ok_or_else(|| PlatformError::Corrupt("screening returned no image".into()))?;
        if blurred {
            file = host
                .put_file("image/png", "png", png(&rgba_of(&img)?)?)
                .await?;
        }
        if s.screening == ImageScreening::Unavailable {
            host.log("image screening unavailable: no safety checker is installed".into())
                .await;
        }
        cache.image = Some(img);
        Ok(json!({
            "file": file,
            "screening": s.screening,
            "nsfw": s.nsfw.first().copied().unwrap_or(false),
            "flagged": s.flagged.first().copied().unwrap_or(false),
            "blurred": blurred,
        }))
    }

    async fn preset(
        &self,
        host: &dyn TicketHost,
        c: &Campaign,
        t: &TicketRecord,
        cache: &mut Cache,
    ) -> Result<Value> {
        let copy = out_of(t, Step::Copy)?;
        let img = rgba_of(&self.picture(host, t, Step::ScreenImage, cache).await?)?;
        let observed = observe(&img, str_of(copy, "title"), str_of(copy, "tagline"));
        if let Some(p) = &t.input.preset {
            if !c.spec.presets.is_empty() && !c.spec.presets.contains(p) {
                return Err(PlatformError::invalid(
                    "input.preset",
                    format!(
                        "preset {p:?} is not allowed by the campaign ({})",
                        c.spec.presets.join(", ")
                    ),
                ));
            }
            self.presets
                .get(p)
                .map_err(|e| PlatformError::invalid("input.preset", e.to_string()))?;
            return Ok(json!({"preset": p, "chosen_by": "request", "observed": observed}));
        }
        let (name, score) =
            choose_from(&self.presets, &observed, &c.spec.presets).ok_or_else(|| {
                PlatformError::invalid(
                    "campaign.presets",
                    "none of the campaign's presets is installed",
                )
            })?;
        Ok(json!({"preset": name, "chosen_by": "auto", "score": score, "observed": observed}))
    }

    async fn render(
        &self,
        host: &dyn TicketHost,
        c: &Campaign,
        t: &TicketRecord,
        cache: &mut Cache,
    ) -> Result<Value> {
        let copy = out_of(t, Step::Copy)?.clone();
        let preset = str_of(out_of(t, Step::Preset)?, "preset").to_owned();
        let picture = rgba_of(&self.picture(host, t, Step::ScreenImage, cache).await?)?;
        let logo = match c.spec.logo.as_deref() {
            Some(r) => Some(Arc::new(
                image::load_from_memory(&host.get_file(r).await?)
                    .map_err(|e| PlatformError::Corrupt(format!("campaign logo: {e}")))?
                    .to_rgba8(),
            )),
            None => None,
        };
        let mut fields = c.spec.fields.clone();
        fields.insert("title".into(), str_of(&copy, "title").to_owned());
        fields.insert("tagline".into(), str_of(&copy, "tagline").to_owned());
        fields.insert("brand".into(), c.spec.brand.clone());
        if t.input.show_name {
            fields.insert("name".into(), t.input.name.clone());
            fields.insert("admit".into(), format!("{} 님 · ADMIT ONE", t.input.name));
        }
        let colour = |s: &Option<String>| s.as_deref().and_then(|v| v.parse::<Rgba>().ok());
        let req = TicketRequest {
            image: Some(Arc::new(picture)),
            fields,
            qr_url: (!self.share_base.is_empty()).then(|| self.share_url(&t.share_id)),
            logo,
            label: c.spec.label.then(|| c.spec.label_text.clone()),
            primary: colour(&c.spec.palette.primary),
            accent: colour(&c.spec.palette.accent),
            preset: Some(preset.clone()),
        };
        let presets = self.presets.clone();
        let fonts = self.fonts.clone();
        let scale = c.spec.scale;
        let img = tokio::task::spawn_blocking(move || {
            let mut fonts = fonts
                .lock()
                .map_err(|_| failed("render_error", "font cache poisoned"))?;
            let ticket = atelier_compose::ticket::ticket(&mut fonts, &presets, &req)
                .map_err(|e| failed("render_error", e.to_string()))?;
            ticket
                .scene
                .render(
                    &mut fonts,
                    RasterOptions {
                        scale,
                        ..RasterOptions::default()
                    },
                )
                .map_err(|e| failed("render_error", e.to_string()))
        })
        .await
        .map_err(|e| PlatformError::Corrupt(format!("render thread panicked: {e}")))??;
        let file = host.put_file("image/png", "png", png(&img)?).await?;
        let (w, h) = img.dimensions();
        cache.ticket = Some(img);
        Ok(json!({"file": file, "width": w, "height": h, "preset": preset}))
    }

    async fn mark(
        &self,
        host: &dyn TicketHost,
        c: &Campaign,
        t: &TicketRecord,
        cache: &mut Cache,
    ) -> Result<Value> {
        let ticket = match cache.ticket.take() {
            Some(img) => img,
            None => {
                let r = str_of(out_of(t, Step::Render)?, "file").to_owned();
                image::load_from_memory(&host.get_file(&r).await?)
                    .map_err(|e| PlatformError::Corrupt(format!("stored ticket: {e}")))?
                    .to_rgba8()
            }
        };
        let (w, h) = ticket.dimensions();
        let mut img = RgbImage {
            width: w as usize,
            height: h as usize,
            data: image::DynamicImage::ImageRgba8(ticket).to_rgb8().into_raw(),
        };
        let gen = out_of(t, Step::Image)?.clone();
        let copy = out_of(t, Step::Copy)?;
        let screened = out_of(t, Step::ScreenImage)?;
        let preset = str_of(out_of(t, Step::Preset)?, "preset");
        // The label is drawn by the preset's label slot (Render); mark adds the invisible parts.
        let mark = self.guard.mark(&mut img, None, &t.id)?;
        let seed = gen["seed"].as_u64().unwrap_or(0);
        let params = json!({
            "workflow": "atelier/photo-ticket",
            "ticket": t.id,
            "campaign": c.id,
            "campaign_version": c.version,
            "preset": preset,
            "prompt": gen["prompt"],
            "negative_prompt": gen["negative_prompt"],
            "width": gen["width"], "height": gen["height"], "steps": gen["steps"],
            "scheduler": gen["scheduler"], "guidance_scale": gen["guidance_scale"],
            "copy_source": copy["source"],
        });
        let mut prov = provenance(
            host.job_id(),
            str_of(&gen, "model"),
            gen["weights_sha256"].as_str().map(str::to_owned),
            seed,
            params,
            mark,
            None,
            json!({
                "text": "passed",
                "image_screening": screened["screening"],
                "has_nsfw_concept": screened["nsfw"],
                "blurred": screened["blurred"],
            }),
        );
        // A ticket is generated art composited with typeset text: IPTC's composite type.
        prov.digital_source_type = COMPOSITE_SOURCE_TYPE.into();
        prov.label = c.spec.label.then(|| c.spec.label_text.clone());
        let parameters = format!(
            "{}\nSeed: {seed}, Model: {}, Preset: {preset}, Campaign: {} v{}",
            str_of(&gen, "prompt"),
            str_of(&gen, "model"),
            c.id,
            c.version
        );
        let bytes = self.guard.signed_png(&img, &parameters, &prov)?;
        let file = host.put_file("image/png", "png", bytes).await?;
        Ok(json!({
            "file": file,
            "watermark": mark.map(|m| m.hex()),
            "label": prov.label,
            "c2pa": self.guard.c2pa.is_some(),
            "digital_source_type": prov.digital_source_type,
        }))
    }
}

/// Model calls for a ticket's copy before its (blocked) text is kept for screen_copy to refuse.
pub const COPY_ATTEMPTS: usize = 4;

/// IPTC digital source type of generated media composited with other elements.
pub const COMPOSITE_SOURCE_TYPE: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia";

/// The file id inside a reference, for hosts that resolve references.
pub fn reference_id(reference: &str) -> Result<&str> {
    file_id(reference)
        .ok_or_else(|| PlatformError::Corrupt(format!("file reference {reference:?}")))
}
