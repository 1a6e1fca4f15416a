//! `atelier/diary-toon`: a diary post becomes a four-panel comic.
//!
//! Steps, each recorded on the post with its output and milliseconds (a crash resumes at the
//! first step without a record; an edit clears them all):
//!
//! 1. `screen_text`: the diary under the deployment's policy (blocked: the post fails and is
//!    never shown; flagged: kept for review, never listed).
//! 2. `panels`: the language model's `comic_panels` (title, and per panel an English scene,
//!    a Korean caption and an optional speech line), or the author's own captions when no
//!    model is configured; model-written text is screened too.
//! 3. `image_1`..`image_4`: one picture per panel. Consistency comes from one shared style
//!    prompt appended to every scene and related seeds (`seed`, `seed+1`, …) on one model and
//!    size; each picture is screened (blurred if the checker says so) as it is made.
//! 4. `comic`: the 2×2 page and the webtoon strip (compose), titled, with the AI label.
//! 5. `mark`: invisible watermark, provenance metadata (IPTC composite type), C2PA when
//!    configured, for both layouts.
//! 6. `publish`: the post is ready; listed when public and not flagged.

use std::sync::{Arc, Mutex};

use atelier_compose::comic::{Comic, Panel as ComicPanel};
use atelier_compose::scene::RasterOptions;
use atelier_compose::Fonts;
use atelier_engine::image::RgbImage;
use atelier_engine::GenerateRequest;
use atelier_platform::{JobContext, PlatformError};
use atelier_writer::tasks::{ComicPanels, ComicPanelsInput};
use atelier_writer::{WriteOptions, Writer, WriterError};
use serde_json::{json, Map, Value};

use super::store::Post;
use crate::guard::{provenance, PromptVerdict};
use crate::tickets::steps::{error_record, failed, png, rgba_of, COMPOSITE_SOURCE_TYPE};
use crate::{Guard, ModelRegistry};

type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// Panels per toon.
pub const PANELS: usize = 4;
/// Longest diary post, in characters.
pub const TEXT_MAX: usize = 2000;
/// Longest panel caption the author may write, in characters.
pub const CAPTION_MAX: usize = 60;
/// The visible label on every comic (Korea's AI Basic Act).
pub const LABEL: &str = "AI 생성";

/// How toons are drawn on this deployment.
#[derive(Debug, Clone)]
pub struct ToonSettings {
    /// Diffusion model (default: the first installed).
    pub model: Option<String>,
    /// Square panel side in pixels (default: the model's).
    pub size: Option<usize>,
    /// Denoising steps (default: the model's).
    pub steps: Option<usize>,
    /// Style prompt shared by all panels unless a post sets its own.
    pub style: String,
    /// Width of the 2×2 page, pixels.
    pub grid_width: f32,
    /// Width of the webtoon strip, pixels.
    pub strip_width: f32,
}

impl Default for ToonSettings {
    fn default() -> Self {
        Self {
            model: None,
            size: None,
            steps: None,
            style:
                "webtoon style, clean line art, soft pastel colours, consistent character design"
                    .into(),
            grid_width: 1024.0,
            strip_width: 720.0,
        }
    }
}

/// Everything a toon runs on.
pub struct ToonWorkflow {
    pub models: Arc<ModelRegistry>,
    pub guard: Arc<Guard>,
    pub writer: Writer,
    pub fonts: Arc<Mutex<Fonts>>,
    pub settings: ToonSettings,
}

impl std::fmt::Debug for ToonWorkflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToonWorkflow")
            .field("settings", &self.settings)
            .finish()
    }
}

/// The steps in order.
pub fn step_names() -> Vec<String> {
    let mut v = vec!["screen_text".to_string(), "panels".into()];
    v.extend((1..=PANELS).map(|i| format!("image_{i}")));
    v.extend(["comic".into(), "mark".into(), "publish".into()]);
    v
}

fn done<'a>(p: &'a Post, step: &str) -> Option<&'a Value> {
    p.steps
        .iter()
        .find(|r| r["step"] == step && r["status"] == "done")
        .map(|r| &r["output"])
}

fn out<'a>(p: &'a Post, step: &str) -> Result<&'a Value> {
    done(p, step).ok_or_else(|| PlatformError::Corrupt(format!("step {step} has no record")))
}

/// Reads a stored file by its `atelier-file://` reference.
pub async fn read_file(ctx: &JobContext, reference: &str) -> Result<Vec<u8>> {
    let id = crate::tickets::steps::reference_id(reference)?;
    let p = &ctx.platform;
    let rec = p
        .store
        .get_file(&ctx.job.tenant_id, id)
        .await?
        .ok_or_else(|| PlatformError::Corrupt(format!("file {id} is missing")))?;
    p.artifacts.get(&rec.storage_key).await
}

impl ToonWorkflow {
    /// Runs the post's steps from the first one without a record, saving after each through
    /// `save`. On failure the step is recorded, the post marked failed and the error returned.
    pub async fn run<F, Fut>(&self, ctx: &JobContext, post: &mut Post, save: F) -> Result<()>
    where
        F: Fn(Post) -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        let names = step_names();
        post.steps.retain(|r| r["status"] == "done");
        let prefix = names.iter().take_while(|n| done(post, n).is_some()).count();
        post.steps
            .retain(|r| names[..prefix].iter().any(|n| r["step"] == n.as_str()));
        post.status = "processing".into();
        post.job_id = Some(ctx.job.id.clone());
        post.updated_at = atelier_platform::now_ms();
        save(post.clone()).await?;
        for name in names[prefix..].iter() {
            if ctx.cancel.is_cancelled() {
                return Err(atelier_engine::EngineError::Cancelled { step: 0, total: 0 }.into());
            }
            let started = std::time::Instant::now();
            let res = self.step(ctx, post, name).await;
            let ms = started.elapsed().as_millis() as u64;
            let now = atelier_platform::now_ms();
            match res {
                Ok(output) => {
                    post.steps.push(json!({
                        "step": name, "status": "done", "ms": ms, "at": now, "output": output,
                    }));
                    if name == "publish" {
                        post.status = "ready".into();
                    }
                    post.updated_at = now;
                    save(post.clone()).await?;
                }
                Err(e) => {
                    let cancelled = matches!(
                        e,
                        PlatformError::Engine(atelier_engine::EngineError::Cancelled { .. })
                    );
                    if !cancelled {
                        post.steps.push(json!({
                            "step": name, "status": "failed", "ms": ms, "at": now,
                            "error": error_record(&e),
                        }));
                    }
                    post.status = "failed".into();
                    post.updated_at = now;
                    save(post.clone()).await?;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn policy(&self, ctx: &JobContext) -> atelier_safety::policy::Effective {
        self.guard.policy(&ctx.job.tenant_id, None, None)
    }

    async fn step(&self, ctx: &JobContext, post: &mut Post, name: &str) -> Result<Value> {
        match name {
            "screen_text" => {
                let v = self
                    .guard
                    .screen_text(ctx, self.policy(ctx), None, "diary", &post.text)
                    .await?;
                post.flagged |= v.flagged.is_some();
                Ok(
                    json!({"decision": if v.flagged.is_some() {"flagged"} else {"passed"}, "category": v.flagged}),
                )
            }
            "panels" => self.panels(ctx, post).await,
            "comic" => self.comic(ctx, post).await,
            "mark" => self.mark(ctx, post).await,
            "publish" => {
                let title = out(post, "comic")?["title"].as_str().map(str::to_owned);
                let m = out(post, "mark")?.clone();
                post.grid_file = m["grid"].as_str().map(str::to_owned);
                post.strip_file = m["strip"].as_str().map(str::to_owned);
                post.title = title;
                Ok(json!({"flagged": post.flagged}))
            }
            n => match n
                .strip_prefix("image_")
                .and_then(|i| i.parse::<usize>().ok())
            {
                Some(i) if (1..=PANELS).contains(&i) => self.image(ctx, post, i).await,
                _ => Err(PlatformError::Corrupt(format!("unknown toon step {n}"))),
            },
        }
    }

    async fn panels(&self, ctx: &JobContext, post: &mut Post) -> Result<Value> {
        let seed = rand::random::<u32>() as u64;
        let style = post
            .style
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| self.settings.style.clone());
        let (title, panels, source) = match (self.writer.llm(), &post.captions) {
            (Some(_), _) => {
                ctx.reporter.log("writing the panels (comic_panels)").await;
                let input = ComicPanelsInput {
                    diary: post.text.clone(),
                    style: Some(style.clone()),
                    panels: PANELS,
                };
                let opts = WriteOptions {
                    seed: Some(seed),
                    cancel: atelier_llm::CancelToken::sharing(ctx.cancel.flag()),
                };
                let w = self
                    .writer
                    .write::<ComicPanels>(&input, &opts)
                    .await
                    .map_err(|e| match e {
                        WriterError::Llm(atelier_llm::LlmError::Cancelled) => {
                            atelier_engine::EngineError::Cancelled { step: 0, total: 0 }.into()
                        }
                        other => failed("llm_error", other.to_string()),
                    })?;
                let panels: Vec<Value> = w
                    .value
                    .panels
                    .iter()
                    .map(|p| json!({"scene": p.scene, "caption": p.caption, "speech": p.speech}))
                    .collect();
                (w.value.title, panels, format!("llm:{}", w.model))
            }
            (None, Some(caps)) if caps.len() == PANELS => {
                // No model to write scenes: each caption is its panel's prompt.
                let panels = caps
                    .iter()
                    .map(|c| json!({"scene": c, "caption": c, "speech": null}))
                    .collect();
                (String::new(), panels, "author".to_string())
            }
            (None, _) => {
                return Err(PlatformError::invalid(
                    "captions",
                    format!(
                        "no language model is configured on this server: write the {PANELS} panel captions yourself (or start the server with --llm)"
                    ),
                ))
            }
        };
        // What a model wrote is screened like the diary itself.
        let text = std::iter::once(title.clone())
            .chain(panels.iter().flat_map(|p| {
                [
                    p["scene"].as_str().unwrap_or_default().to_owned(),
                    p["caption"].as_str().unwrap_or_default().to_owned(),
                    p["speech"].as_str().unwrap_or_default().to_owned(),
                ]
            }))
            .collect::<Vec<_>>()
            .join("\n");
        let v: PromptVerdict = self
            .guard
            .screen_text(ctx, self.policy(ctx), None, "panels", &text)
            .await?;
        post.flagged |= v.flagged.is_some();
        Ok(json!({
            "title": title, "panels": panels, "source": source, "seed": seed, "style": style,
            "decision": if v.flagged.is_some() {"flagged"} else {"passed"},
        }))
    }

    async fn image(&self, ctx: &JobContext, post: &mut Post, i: usize) -> Result<Value> {
        let plan = out(post, "panels")?.clone();
        let scene = plan["panels"][i - 1]["scene"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let style = plan["style"].as_str().unwrap_or_default().trim();
        let prompt = if style.is_empty() {
            scene
        } else {
            format!("{scene}, {style}")
        };
        // Related seeds: the same base for the whole strip, one step apart per panel.
        let seed = plan["seed"].as_u64().unwrap_or_default() + (i as u64 - 1);
        let s = &self.settings;
        let model_name = crate::text_to_image::model_or_first(&self.models, s.model.as_deref())?;
        ctx.reporter
            .log(format!("panel {i}/{PANELS}: drawing with {model_name}"))
            .await;
        let model = self.models.get(&model_name).await?;
        let req = GenerateRequest {
            prompt: prompt.clone(),
            negative_prompt: Some("text, watermark, deformed, blurry".into()),
            width: s.size,
            height: s.size,
            steps: s.steps,
            guidance_scale: None,
            scheduler: None,
            scheduler_overrides: Map::new(),
            seed,
            batch_size: Some(1),
            preview_every: 0,
        };
        let d = crate::text_to_image::draw_one(
            ctx,
            &self.models,
            &self.guard,
            self.policy(ctx),
            model,
            req,
            (i - 1, PANELS),
        )
        .await?;
        post.flagged |= d.flagged;
        let file = ctx
            .put_file("image/png", "png", png(&rgba_of(&d.image)?)?)
            .await?;
        let r = &d.resolved;
        Ok(json!({
            "file": file, "prompt": prompt, "seed": seed, "model": r.model,
            "width": r.width, "height": r.height, "steps": r.steps,
            "scheduler": r.scheduler, "weights_sha256": d.weights_sha256,
            "screening": d.screening, "flagged": d.flagged, "blurred": d.blurred,
        }))
    }

    async fn comic(&self, ctx: &JobContext, post: &Post) -> Result<Value> {
        let plan = out(post, "panels")?.clone();
        let mut panels = Vec::with_capacity(PANELS);
        for i in 1..=PANELS {
            let f = out(post, &format!("image_{i}"))?["file"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let img = image::load_from_memory(&read_file(ctx, &f).await?)
                .map_err(|e| PlatformError::Corrupt(format!("panel {i}: {e}")))?
                .to_rgba8();
            let p = &plan["panels"][i - 1];
            panels.push(ComicPanel {
                image: Arc::new(img),
                caption: p["caption"].as_str().map(str::to_owned),
                speech: p["speech"].as_str().map(str::to_owned),
            });
        }
        let title = plan["title"]
            .as_str()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let comic = Comic {
            title: title.clone(),
            panels,
            label: Some(LABEL.into()),
        };
        let fonts = self.fonts.clone();
        let (gw, sw) = (self.settings.grid_width, self.settings.strip_width);
        let (grid, strip) = tokio::task::spawn_blocking(move || {
            let mut f = fonts
                .lock()
                .map_err(|_| failed("render_error", "font cache poisoned"))?;
            let render = |scene: atelier_compose::scene::Scene, f: &mut Fonts| {
                scene
                    .render(f, RasterOptions::default())
                    .map_err(|e| failed("render_error", e.to_string()))
            };
            let g = atelier_compose::comic::grid_page(&mut f, &comic, gw)
                .map_err(|e| failed("render_error", e.to_string()))?;
            let g = render(g, &mut f)?;
            let s = atelier_compose::comic::webtoon(&mut f, &comic, sw)
                .map_err(|e| failed("render_error", e.to_string()))?;
            let s = render(s, &mut f)?;
            Ok::<_, PlatformError>((g, s))
        })
        .await
        .map_err(|e| PlatformError::Corrupt(format!("render thread panicked: {e}")))??;
        let g = ctx.put_file("image/png", "png", png(&grid)?).await?;
        let s = ctx.put_file("image/png", "png", png(&strip)?).await?;
        Ok(json!({
            "title": title, "grid": g, "strip": s,
            "grid_size": [grid.width(), grid.height()], "strip_size": [strip.width(), strip.height()],
        }))
    }

    async fn mark(&self, ctx: &JobContext, post: &Post) -> Result<Value> {
        let c = out(post, "comic")?.clone();
        let first = out(post, "image_1")?.clone();
        let seeds: Vec<Value> = (1..=PANELS)
            .map(|i| {
                done(post, &format!("image_{i}"))
                    .map(|o| o["seed"].clone())
                    .unwrap_or(Value::Null)
            })
            .collect();
        let prompts: Vec<Value> = (1..=PANELS)
            .map(|i| {
                done(post, &format!("image_{i}"))
                    .map(|o| o["prompt"].clone())
                    .unwrap_or(Value::Null)
            })
            .collect();
        let mut files = Map::new();
        for layout in ["grid", "strip"] {
            let r = c[layout].as_str().unwrap_or_default().to_owned();
            let img = image::load_from_memory(&read_file(ctx, &r).await?)
                .map_err(|e| PlatformError::Corrupt(format!("stored comic: {e}")))?
                .to_rgb8();
            let mut img = RgbImage {
                width: img.width() as usize,
                height: img.height() as usize,
                data: img.into_raw(),
            };
            // The label is part of the comic's layout; mark adds the invisible parts.
            let wm = self.guard.mark(&mut img, None, &post.id)?;
            let params = json!({
                "workflow": "atelier/diary-toon", "post": post.id, "layout": layout,
                "prompts": prompts, "seeds": seeds, "panels_source": out(post, "panels")?["source"],
                "width": first["width"], "height": first["height"], "steps": first["steps"],
                "scheduler": first["scheduler"],
            });
            let mut prov = provenance(
                &ctx.job.id,
                first["model"].as_str().unwrap_or_default(),
                first["weights_sha256"].as_str().map(str::to_owned),
                first["seed"].as_u64().unwrap_or(0),
                params,
                wm,
                None,
                json!({"text": "passed", "image_screening": first["screening"]}),
            );
            prov.digital_source_type = COMPOSITE_SOURCE_TYPE.into();
            prov.label = Some(LABEL.into());
            let parameters = format!(
                "diary toon {} ({layout}); Model: {}, Seeds: {}",
                post.id,
                first["model"].as_str().unwrap_or_default(),
                serde_json::to_string(&seeds).unwrap_or_default()
            );
            let bytes = self.guard.signed_png(&img, &parameters, &prov)?;
            files.insert(
                layout.into(),
                json!(ctx.put_file("image/png", "png", bytes).await?),
            );
            if layout == "grid" {
                files.insert("watermark".into(), json!(wm.map(|m| m.hex())));
            }
        }
        files.insert("label".into(), json!(LABEL));
        files.insert("c2pa".into(), json!(self.guard.c2pa.is_some()));
        Ok(Value::Object(files))
    }
}
