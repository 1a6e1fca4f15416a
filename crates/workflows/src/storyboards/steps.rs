//! `atelier/storyboard`: the steps that draw one version of a board.
//!
//! 1. `screen`: the brief, the title and every cut's text under the deployment's policy.
//! 2. `script`: the cuts, when the version has none yet: the language model's `storyboard`
//!    task (whose text is screened too). User-written cuts skip it.
//! 3. `images`: one picture per cut that has none: one shared style appended to each cut's
//!    prompt, each cut's own seed (the board's base seed + its number at creation), one model
//!    and size. Each picture is screened, watermarked and carries provenance, is saved on the
//!    version as soon as it is made, and is an artifact of its own. Cuts that already have a
//!    picture (an edit of their text, a move, another cut's redraw) keep it: nothing is drawn
//!    twice.
//! 4. `sheet`: the printable A4 sheet as PNG (with provenance) and PDF (selectable text).
//! 5. `animatic`: every cut for its duration, its copy as a caption, crossfades, a slow
//!    pan/zoom, the visible AI label; MP4, GIF and/or WebP.
//! 6. `manifest`: a JSON of every artifact of the version with its SHA-256, models and seeds.
//!
//! Records go on the version after each step; a crash resumes at the first step without one.

use std::sync::{Arc, Mutex};

use atelier_compose::animatic::{self, Animatic, Format, Motion, Shot, Transition};
use atelier_compose::scene::{RasterOptions, Scene};
use atelier_compose::storyboard as sheet;
use atelier_compose::Fonts;
use atelier_engine::image::RgbImage;
use atelier_engine::GenerateRequest;
use atelier_platform::{JobContext, PlatformError};
use atelier_writer::tasks::{Storyboard as Script, StoryboardInput};
use atelier_writer::{WriteOptions, Writer, WriterError};
use serde_json::{json, Map, Value};
use sha2::Digest;

use super::spec::{self, category_name, Brief, CutImage, CutText, LABEL};
use super::store::{Board, Version};
use crate::diary::toon::read_file;
use crate::guard::provenance;
use crate::tickets::steps::{error_record, failed, COMPOSITE_SOURCE_TYPE};
use crate::{Guard, ModelRegistry};

type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// The steps in order.
pub const STEPS: [&str; 6] = [
    "screen", "script", "images", "sheet", "animatic", "manifest",
];

/// How storyboards are drawn on this deployment (a board's `generation` and `animatic`
/// settings override these).
#[derive(Debug, Clone)]
pub struct StoryboardSettings {
    /// Diffusion model (default: the first installed).
    pub model: Option<String>,
    /// Long side of each cut picture (default: the model's size).
    pub size: Option<u32>,
    /// Denoising steps (default: the model's).
    pub steps: Option<u32>,
    /// Style appended to every cut prompt when the brief sets none.
    pub style: String,
    /// Sheet PNG resolution.
    pub sheet_dpi: f32,
    /// Animatic formats made by default.
    pub formats: Vec<String>,
    pub fps: u32,
    /// Long side of the animatic in pixels.
    pub animatic_size: u32,
}

impl Default for StoryboardSettings {
    fn default() -> Self {
        Self {
            model: None,
            size: None,
            steps: None,
            style: "cinematic commercial photography, soft key light, consistent colour grade"
                .into(),
            sheet_dpi: 150.0,
            formats: vec!["mp4".into()],
            fps: 24,
            animatic_size: 1280,
        }
    }
}

/// Everything a storyboard job runs on.
pub struct StoryboardWorkflow {
    pub models: Arc<ModelRegistry>,
    pub guard: Arc<Guard>,
    pub writer: Writer,
    pub fonts: Arc<Mutex<Fonts>>,
    pub settings: StoryboardSettings,
}

impl std::fmt::Debug for StoryboardWorkflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoryboardWorkflow")
            .field("settings", &self.settings)
            .finish()
    }
}

fn done<'a>(v: &'a Version, step: &str) -> Option<&'a Value> {
    v.steps
        .iter()
        .find(|r| r["step"] == step && r["status"] == "done")
        .map(|r| &r["output"])
}

fn cancelled() -> PlatformError {
    atelier_engine::EngineError::Cancelled { step: 0, total: 0 }.into()
}

/// The animatic formats of a board (its own list or the deployment's).
pub fn formats(brief: &Brief, s: &StoryboardSettings) -> Vec<String> {
    brief
        .animatic
        .formats
        .clone()
        .unwrap_or_else(|| s.formats.clone())
}

/// Every text of a version in one block, for screening.
fn version_text(brief: Option<&Brief>, v: &Version) -> String {
    let mut t: Vec<&str> = Vec::new();
    if let Some(b) = brief {
        t.extend([b.product.as_str(), b.brief.as_str(), b.tone.as_str()]);
        if let Some(s) = &b.style {
            t.push(s);
        }
    }
    t.push(&v.title);
    for c in &v.cuts {
        t.extend([
            c.scene.as_str(),
            c.camera.as_str(),
            c.copy.as_str(),
            c.image_prompt.as_str(),
        ]);
    }
    t.join("\n")
}

impl StoryboardWorkflow {
    /// Runs the version's steps from the first one without a record, saving through `save`
    /// after each (and after each picture). On failure the step is recorded, the version
    /// marked failed and the error returned.
    pub async fn run<F, Fut>(
        &self,
        ctx: &JobContext,
        board: &Board,
        v: &mut Version,
        save: F,
    ) -> Result<()>
    where
        F: Fn(Version) -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        v.steps.retain(|r| r["status"] == "done");
        let prefix = STEPS.iter().take_while(|n| done(v, n).is_some()).count();
        v.steps
            .retain(|r| STEPS[..prefix].iter().any(|n| r["step"] == *n));
        v.status = "processing".into();
        v.job_id = Some(ctx.job.id.clone());
        v.updated_at = atelier_platform::now_ms();
        save(v.clone()).await?;
        for name in STEPS[prefix..].iter() {
            if ctx.cancel.is_cancelled() {
                return Err(cancelled());
            }
            let started = std::time::Instant::now();
            let res = self.step(ctx, board, v, name, &save).await;
            let ms = started.elapsed().as_millis() as u64;
            let now = atelier_platform::now_ms();
            match res {
                Ok(output) => {
                    v.steps.push(json!({
                        "step": name, "status": "done", "ms": ms, "at": now, "output": output,
                    }));
                    if *name == "manifest" {
                        v.status = "ready".into();
                    }
                    v.updated_at = now;
                    save(v.clone()).await?;
                }
                Err(e) => {
                    let is_cancel = matches!(
                        e,
                        PlatformError::Engine(atelier_engine::EngineError::Cancelled { .. })
                    );
                    if !is_cancel {
                        v.steps.push(json!({
                            "step": name, "status": "failed", "ms": ms, "at": now,
                            "error": error_record(&e),
                        }));
                    }
                    v.status = if is_cancel { "canceled" } else { "failed" }.into();
                    v.updated_at = now;
                    save(v.clone()).await?;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn policy(&self, ctx: &JobContext) -> atelier_safety::policy::Effective {
        self.guard.policy(&ctx.job.tenant_id, None, None)
    }

    async fn step<F, Fut>(
        &self,
        ctx: &JobContext,
        board: &Board,
        v: &mut Version,
        name: &str,
        save: &F,
    ) -> Result<Value>
    where
        F: Fn(Version) -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        match name {
            "screen" => {
                // The brief is screened with the first version; later versions screen their cuts.
                let brief = (v.version == 1).then_some(&board.brief);
                let verdict = self
                    .guard
                    .screen_text(
                        ctx,
                        self.policy(ctx),
                        None,
                        "storyboard",
                        &version_text(brief, v),
                    )
                    .await?;
                Ok(
                    json!({"decision": if verdict.flagged.is_some() {"flagged"} else {"passed"}, "category": verdict.flagged}),
                )
            }
            "script" => self.script(ctx, board, v).await,
            "images" => self.images(ctx, board, v, save).await,
            "sheet" => self.sheet(ctx, board, v).await,
            "animatic" => self.animatic(ctx, board, v).await,
            "manifest" => self.manifest(ctx, board, v).await,
            n => Err(PlatformError::Corrupt(format!(
                "unknown storyboard step {n}"
            ))),
        }
    }

    async fn script(&self, ctx: &JobContext, board: &Board, v: &mut Version) -> Result<Value> {
        if !v.cuts.is_empty() {
            return Ok(json!({"source": "user", "cuts": v.cuts.len()}));
        }
        let b = &board.brief;
        if self.writer.llm().is_none() {
            return Err(PlatformError::invalid(
                "script",
                "no language model is configured on this server: write the cuts yourself (`script.cuts`) or start the server with --llm",
            ));
        }
        ctx.reporter.log("writing the cuts (storyboard)").await;
        let input = StoryboardInput {
            product: b.product.clone(),
            category: category_name(&b.category).to_owned(),
            brief: b.brief.clone(),
            tone: b.tone.clone(),
            cuts: b.cuts,
            target_seconds: b.target_seconds,
            style: b.style.clone(),
        };
        let opts = WriteOptions {
            seed: Some(b.seed),
            cancel: atelier_llm::CancelToken::sharing(ctx.cancel.flag()),
        };
        let w = self
            .writer
            .write::<Script>(&input, &opts)
            .await
            .map_err(|e| match e {
                WriterError::Llm(atelier_llm::LlmError::Cancelled) => cancelled(),
                other => failed("llm_error", other.to_string()),
            })?;
        v.title = w.value.title.trim().chars().take(spec::TITLE_MAX).collect();
        v.cuts = w
            .value
            .cuts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                CutText {
                    scene: c.scene.chars().take(spec::SCENE_MAX).collect(),
                    camera: c.camera.chars().take(spec::CAMERA_MAX).collect(),
                    copy: c.copy.chars().take(spec::COPY_MAX).collect(),
                    duration_s: c.duration_s.clamp(spec::CUT_SECONDS.0, spec::CUT_SECONDS.1),
                    image_prompt: Some(c.image_prompt.chars().take(spec::PROMPT_MAX).collect())
                        .filter(|p: &String| !p.trim().is_empty()),
                }
                .into_cut(spec::new_cut_id(), b.seed + i as u64)
            })
            .collect();
        // What the model wrote is screened like what people write.
        let verdict = self
            .guard
            .screen_text(
                ctx,
                self.policy(ctx),
                None,
                "storyboard_script",
                &version_text(None, v),
            )
            .await?;
        Ok(json!({
            "source": format!("llm:{}", w.model), "cuts": v.cuts.len(), "title": v.title,
            "decision": if verdict.flagged.is_some() {"flagged"} else {"passed"},
        }))
    }

    async fn images<F, Fut>(
        &self,
        ctx: &JobContext,
        board: &Board,
        v: &mut Version,
        save: &F,
    ) -> Result<Value>
    where
        F: Fn(Version) -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        let todo: Vec<usize> = (0..v.cuts.len())
            .filter(|&i| v.cuts[i].image.is_none())
            .collect();
        let kept = v.cuts.len() - todo.len();
        if todo.is_empty() {
            return Ok(json!({"generated": [], "kept": kept}));
        }
        let b = &board.brief;
        let model_name = crate::text_to_image::model_or_first(
            &self.models,
            b.generation
                .model
                .as_deref()
                .or(self.settings.model.as_deref()),
        )?;
        let model = self.models.get(&model_name).await?;
        let info = model.info();
        let long = b
            .generation
            .size
            .or(self.settings.size)
            .unwrap_or(info.native_size as u32);
        let (w, h) = b.aspect.dims(long, info.vae_scale_factor.max(1) as u32);
        let style = b
            .style
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| self.settings.style.clone());
        let mut generated = Vec::new();
        for (n, &i) in todo.iter().enumerate() {
            if ctx.cancel.is_cancelled() {
                return Err(cancelled());
            }
            let cut = v.cuts[i].clone();
            ctx.reporter
                .log(format!(
                    "cut {}/{} ({}): drawing with {model_name}",
                    i + 1,
                    v.cuts.len(),
                    cut.id
                ))
                .await;
            let prompt = if style.trim().is_empty() {
                cut.image_prompt.clone()
            } else {
                format!("{}, {}", cut.image_prompt, style.trim())
            };
            let req = GenerateRequest {
                prompt: prompt.clone(),
                negative_prompt: Some(
                    b.generation
                        .negative_prompt
                        .clone()
                        .unwrap_or_else(|| "text, watermark, logo, deformed, blurry".into()),
                ),
                width: Some(w as usize),
                height: Some(h as usize),
                steps: b
                    .generation
                    .steps
                    .or(self.settings.steps)
                    .map(|s| s as usize),
                guidance_scale: None,
                scheduler: None,
                scheduler_overrides: Map::new(),
                seed: cut.seed,
                batch_size: Some(1),
                preview_every: 0,
            };
            let d = crate::text_to_image::draw_one(
                ctx,
                &self.models,
                &self.guard,
                self.policy(ctx),
                model.clone(),
                req,
                (n, todo.len()),
            )
            .await?;
            let (resolved, weights, screening) = (d.resolved, d.weights_sha256, d.screening);
            let mut img = d.image;
            let wm = self.guard.mark(&mut img, None, &ctx.job.id)?;
            let params = json!({
                "workflow": "atelier/storyboard", "storyboard": board.id, "version": v.version,
                "cut": cut.id, "prompt": prompt, "width": resolved.width,
                "height": resolved.height, "steps": resolved.steps, "scheduler": resolved.scheduler,
            });
            let prov = provenance(
                &ctx.job.id,
                &resolved.model,
                weights.clone(),
                cut.seed,
                params,
                wm,
                None,
                json!({"text": "passed", "image_screening": screening}),
            );
            let parameters = resolved.parameters_text(cut.seed);
            let bytes = self.guard.signed_png(&img, &parameters, &prov)?;
            let file = ctx.put_file("image/png", "png", bytes).await?;
            v.cuts[i].image = Some(CutImage {
                file,
                prompt,
                seed: cut.seed,
                model: resolved.model.clone(),
                width: resolved.width,
                height: resolved.height,
                steps: resolved.steps,
                scheduler: resolved.scheduler.to_string(),
                weights_sha256: weights,
                made_in: v.version,
                flagged: d.flagged,
                blurred: d.blurred,
                screening,
            });
            generated.push(cut.id.clone());
            // A crash after this point does not draw the cut again.
            v.updated_at = atelier_platform::now_ms();
            save(v.clone()).await?;
        }
        Ok(json!({"generated": generated, "kept": kept}))
    }

    /// The cut pictures of a version, decoded, in order.
    async fn pictures(&self, ctx: &JobContext, v: &Version) -> Result<Vec<Arc<image::RgbaImage>>> {
        let mut out = Vec::with_capacity(v.cuts.len());
        for c in &v.cuts {
            let f = c
                .image
                .as_ref()
                .ok_or_else(|| PlatformError::Corrupt(format!("cut {} has no picture", c.id)))?;
            let img = image::load_from_memory(&read_file(ctx, &f.file).await?)
                .map_err(|e| PlatformError::Corrupt(format!("cut {}: {e}", c.id)))?
                .to_rgba8();
            out.push(Arc::new(img));
        }
        Ok(out)
    }

    async fn sheet(&self, ctx: &JobContext, board: &Board, v: &Version) -> Result<Value> {
        let pics = self.pictures(ctx, v).await?;
        let b = &board.brief;
        let title = if v.title.trim().is_empty() {
            b.product.clone()
        } else {
            format!("{} · {}", b.product, v.title)
        };
        let doc = sheet::Storyboard {
            title: title.clone(),
            subtitle: format!(
                "{} · {} · v{}",
                category_name(&b.category),
                b.tone,
                v.version
            ),
            cuts: v
                .cuts
                .iter()
                .zip(pics)
                .map(|(c, img)| sheet::Cut {
                    image: Some(img),
                    scene: c.scene.clone(),
                    camera: c.camera.clone(),
                    copy: c.copy.clone(),
                    duration_s: c.duration_s,
                })
                .collect(),
            label: Some(LABEL.into()),
            accent: None,
        };
        let fonts = self.fonts.clone();
        let dpi = self.settings.sheet_dpi;
        let (raster, pdf) = tokio::task::spawn_blocking(move || {
            let mut f = fonts
                .lock()
                .map_err(|_| failed("render_error", "font cache poisoned"))?;
            let scene: Scene =
                sheet::sheet(&mut f, &doc).map_err(|e| failed("render_error", e.to_string()))?;
            let raster = scene
                .render(
                    &mut f,
                    RasterOptions {
                        scale: dpi / 72.0,
                        ..RasterOptions::default()
                    },
                )
                .map_err(|e| failed("render_error", e.to_string()))?;
            let pdf = Scene::render_pdf(std::slice::from_ref(&scene), &f, Some(&doc.title))
                .map_err(|e| failed("render_error", e.to_string()))?;
            Ok::<_, PlatformError>((raster, pdf))
        })
        .await
        .map_err(|e| PlatformError::Corrupt(format!("render thread panicked: {e}")))??;
        // The sheet PNG carries the same machine-readable provenance as every picture.
        let rgb = RgbImage {
            width: raster.width() as usize,
            height: raster.height() as usize,
            data: image::DynamicImage::ImageRgba8(raster).to_rgb8().into_raw(),
        };
        let first = v.cuts.first().and_then(|c| c.image.as_ref());
        let mut prov = provenance(
            &ctx.job.id,
            first.map(|i| i.model.as_str()).unwrap_or_default(),
            first.and_then(|i| i.weights_sha256.clone()),
            first.map(|i| i.seed).unwrap_or(0),
            json!({
                "workflow": "atelier/storyboard", "storyboard": board.id, "version": v.version,
                "cuts": v.cuts.iter().map(|c| json!({"id": c.id, "seed": c.seed})).collect::<Vec<_>>(),
            }),
            None,
            None,
            json!({"text": "passed"}),
        );
        prov.digital_source_type = COMPOSITE_SOURCE_TYPE.into();
        prov.label = Some(LABEL.into());
        let bytes = self.guard.signed_png(
            &rgb,
            &format!("storyboard {} v{} sheet", board.id, v.version),
            &prov,
        )?;
        let png_ref = ctx.put_file("image/png", "png", bytes).await?;
        let pdf_ref = ctx.put_file("application/pdf", "pdf", pdf).await?;
        Ok(json!({
            "png": png_ref, "pdf": pdf_ref, "title": title,
            "png_size": [rgb.width, rgb.height],
        }))
    }

    async fn animatic(&self, ctx: &JobContext, board: &Board, v: &Version) -> Result<Value> {
        let pics = self.pictures(ctx, v).await?;
        let b = &board.brief;
        let s = &self.settings;
        let fps = b.animatic.fps.unwrap_or(s.fps);
        let (w, h) = b.aspect.dims(b.animatic.size.unwrap_or(s.animatic_size), 2);
        let anim = Animatic {
            shots: v
                .cuts
                .iter()
                .zip(pics)
                .enumerate()
                .map(|(i, (c, image))| Shot {
                    image,
                    duration_s: c.duration_s,
                    caption: Some(c.copy.clone()).filter(|t| !t.trim().is_empty()),
                    transition: if i == 0 {
                        Transition::Cut
                    } else {
                        Transition::Crossfade { seconds: 0.4 }
                    },
                    motion: Some(Motion::default_for(i)),
                })
                .collect(),
            width: w,
            height: h,
            fps,
            label: Some(LABEL.into()),
        };
        anim.validate()
            .map_err(|e| failed("render_error", e.to_string()))?;
        let frames = anim.frame_count();
        let mut files = Map::new();
        let list = formats(b, s);
        for (k, name) in list.iter().enumerate() {
            if ctx.cancel.is_cancelled() {
                return Err(cancelled());
            }
            let (format, mime, ext) = match name.as_str() {
                "mp4" => (Format::Mp4, "video/mp4", "mp4"),
                "gif" => (Format::Gif, "image/gif", "gif"),
                "webp" => (Format::Webp, "image/webp", "webp"),
                other => {
                    return Err(PlatformError::Corrupt(format!(
                        "unknown animatic format {other}"
                    )))
                }
            };
            ctx.reporter
                .log(format!("animatic: encoding {name} ({frames} frames)"))
                .await;
            let (fonts, anim, reporter) = (self.fonts.clone(), anim.clone(), ctx.reporter.clone());
            let n = list.len() as u64;
            let bytes = tokio::task::spawn_blocking(move || {
                let io = |e: std::io::Error| failed("render_error", e.to_string());
                let tmp = tempfile::Builder::new()
                    .suffix(&format!(".{ext}"))
                    .tempfile()
                    .map_err(io)?;
                let mut f = fonts
                    .lock()
                    .map_err(|_| failed("render_error", "font cache poisoned"))?;
                animatic::encode_file(&mut f, &anim, format, tmp.path(), |done, total| {
                    if done % 24 == 0 || done == total {
                        reporter.progress_blocking(
                            (k as u64 * total + done) as usize,
                            (n * total) as usize,
                            None,
                        );
                    }
                })
                .map_err(|e| failed("render_error", e.to_string()))?;
                std::fs::read(tmp.path()).map_err(io)
            })
            .await
            .map_err(|e| PlatformError::Corrupt(format!("encoder thread panicked: {e}")))??;
            files.insert(name.clone(), json!(ctx.put_file(mime, ext, bytes).await?));
        }
        let duration: f64 = v.cuts.iter().map(|c| c.duration_s as f64).sum();
        Ok(json!({
            "files": files, "width": w, "height": h, "fps": fps, "frames": frames,
            "duration_s": (duration * 1000.0).round() / 1000.0,
        }))
    }

    async fn manifest(&self, ctx: &JobContext, board: &Board, v: &mut Version) -> Result<Value> {
        let sheet = done(v, "sheet").cloned().unwrap_or(Value::Null);
        let anim = done(v, "animatic").cloned().unwrap_or(Value::Null);
        let mut artifacts = Vec::new();
        let mut add = |kind: String, cut: Option<&str>, r: &str| {
            artifacts.push((kind, cut.map(str::to_owned), r.to_owned()));
        };
        for c in &v.cuts {
            if let Some(i) = &c.image {
                add("cut_image".into(), Some(&c.id), &i.file);
            }
        }
        for k in ["png", "pdf"] {
            if let Some(r) = sheet[k].as_str() {
                add(format!("sheet_{k}"), None, r);
            }
        }
        if let Some(m) = anim["files"].as_object() {
            for (k, r) in m {
                if let Some(r) = r.as_str() {
                    add(format!("animatic_{k}"), None, r);
                }
            }
        }
        let mut list = Vec::with_capacity(artifacts.len());
        for (kind, cut, r) in artifacts {
            let bytes = read_file(ctx, &r).await?;
            list.push(json!({
                "kind": kind, "cut": cut, "file": r, "bytes": bytes.len(),
                "sha256": hex::encode(sha2::Sha256::digest(&bytes)),
            }));
        }
        let manifest = json!({
            "workflow": "atelier/storyboard",
            "storyboard": board.id,
            "version": v.version,
            "job": ctx.job.id,
            "title": v.title,
            "label": LABEL,
            "digital_source_type": COMPOSITE_SOURCE_TYPE,
            "cuts": v.cuts.iter().map(|c| json!({
                "id": c.id, "scene": c.scene, "camera": c.camera, "copy": c.copy,
                "duration_s": c.duration_s, "image_prompt": c.image_prompt, "seed": c.seed,
                "model": c.image.as_ref().map(|i| i.model.clone()),
                "weights_sha256": c.image.as_ref().and_then(|i| i.weights_sha256.clone()),
                "made_in_version": c.image.as_ref().map(|i| i.made_in),
            })).collect::<Vec<_>>(),
            "artifacts": list,
            "created_at": atelier_platform::now_ms(),
        });
        let bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| PlatformError::Corrupt(e.to_string()))?;
        let r = ctx.put_file("application/json", "json", bytes).await?;
        v.outputs = json!({
            "sheet_png": sheet["png"], "sheet_pdf": sheet["pdf"], "animatic": anim["files"],
            "duration_s": anim["duration_s"], "frames": anim["frames"], "fps": anim["fps"],
            "manifest": r,
        });
        Ok(json!({"manifest": r, "artifacts": manifest["artifacts"].as_array().map(Vec::len)}))
    }
}
