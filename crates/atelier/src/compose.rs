//! `atelier compose …`: tickets, storyboard sheets, comics and animatics from files on disk.
//!
//! Boards, comics and animatics are described by a JSON spec whose image paths are relative to the
//! spec file, so a folder of pictures plus one JSON is a reproducible job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use atelier_compose::animatic::{self, Animatic, Format, Motion, Shot, Transition};
use atelier_compose::comic::{self, Comic, Panel};
use atelier_compose::storyboard::{self, Cut, Storyboard};
use atelier_compose::ticket::{self, Presets, TicketRequest};
use atelier_compose::{Fonts, RasterOptions, Rgba, Scene};
use clap::{Args, Subcommand, ValueEnum};
use image::RgbaImage;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

/// Layout and encoding commands.
#[derive(Subcommand, Debug)]
pub enum ComposeCommand {
    /// Draw a photo ticket: picture + Korean copy on a preset (chosen automatically unless named).
    Ticket(Box<TicketArgs>),
    /// List the ticket presets and the traits the automatic choice matches.
    Presets {
        /// Extra preset directories (each holds */preset.toml).
        #[arg(long)]
        presets: Vec<PathBuf>,
    },
    /// Render a storyboard sheet (A4 landscape) from a JSON spec to PNG and/or PDF.
    Storyboard(SheetArgs),
    /// Render a comic from a JSON spec as a 2×2 page or a vertical webtoon strip.
    Comic(ComicArgs),
    /// Encode an animatic (MP4, GIF or WebP by extension) from a JSON spec or a storyboard spec.
    Animatic(AnimaticArgs),
}

#[derive(Args, Debug)]
pub struct TicketArgs {
    /// The picture (PNG, JPEG or WebP).
    #[arg(long)]
    image: PathBuf,
    /// Movie-style title.
    #[arg(long)]
    title: String,
    /// Tagline under the title.
    #[arg(long, default_value = "")]
    tagline: String,
    /// Screening date, as it should read.
    #[arg(long)]
    date: Option<String>,
    /// Screening time.
    #[arg(long)]
    time: Option<String>,
    /// Venue.
    #[arg(long)]
    venue: Option<String>,
    /// Seat.
    #[arg(long)]
    seat: Option<String>,
    /// Extra slot text for custom presets, `name=value` (repeatable).
    #[arg(long = "field", value_parser = parse_kv)]
    fields: Vec<(String, String)>,
    /// Share-page URL encoded in the QR slot.
    #[arg(long)]
    qr: Option<String>,
    /// Brand logo (PNG with transparency works best).
    #[arg(long)]
    logo: Option<PathBuf>,
    /// Visible AI label text.
    #[arg(long, default_value = "AI 생성 이미지")]
    label: String,
    /// Leave the AI label slot empty.
    #[arg(long)]
    no_label: bool,
    /// Brand primary colour (#rrggbb).
    #[arg(long)]
    primary: Option<Rgba>,
    /// Brand accent colour (#rrggbb).
    #[arg(long)]
    accent: Option<Rgba>,
    /// Preset name, or `auto`.
    #[arg(long, default_value = "auto")]
    preset: String,
    /// Extra preset directories (each holds */preset.toml).
    #[arg(long)]
    presets: Vec<PathBuf>,
    /// Output scale (1 = the preset's pixel size, e.g. 1080×1920).
    #[arg(long, default_value_t = 1.0)]
    scale: f32,
    /// Output PNG.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Args, Debug)]
pub struct SheetArgs {
    /// Storyboard spec (JSON; see the README).
    spec: PathBuf,
    /// Outputs: .png and/or .pdf (repeatable).
    #[arg(short, long, required = true)]
    output: Vec<PathBuf>,
    /// PNG resolution.
    #[arg(long, default_value_t = 150.0)]
    dpi: f32,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ComicLayout {
    /// Panels in a grid (2×2 for four).
    Grid,
    /// One vertical strip for phones.
    Webtoon,
}

#[derive(Args, Debug)]
pub struct ComicArgs {
    /// Comic spec (JSON; see the README).
    spec: PathBuf,
    /// Page layout.
    #[arg(long, value_enum, default_value = "grid")]
    layout: ComicLayout,
    /// Width in pixels (default 1600 for a grid, 800 for a webtoon).
    #[arg(long)]
    width: Option<f32>,
    /// Output PNG.
    #[arg(short, long)]
    output: PathBuf,
}

#[derive(Args, Debug)]
pub struct AnimaticArgs {
    /// Animatic spec, or a storyboard spec (its cuts become shots: copy as caption, crossfades).
    spec: PathBuf,
    /// Output: .mp4, .gif or .webp.
    #[arg(short, long)]
    output: PathBuf,
    /// Frame width (overrides the spec; default 1280).
    #[arg(long)]
    width: Option<u32>,
    /// Frame height (overrides the spec; default 720).
    #[arg(long)]
    height: Option<u32>,
    /// Frames per second (overrides the spec; default 24).
    #[arg(long)]
    fps: Option<u32>,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not name=value"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

fn load_image(path: &Path) -> anyhow::Result<Arc<RgbaImage>> {
    let img = image::open(path).with_context(|| format!("reading image {}", path.display()))?;
    Ok(Arc::new(img.to_rgba8()))
}

fn presets(dirs: &[PathBuf]) -> anyhow::Result<Presets> {
    let mut p = Presets::builtin()?;
    for d in dirs {
        p.load_dir(d)
            .with_context(|| format!("loading presets from {}", d.display()))?;
    }
    Ok(p)
}

fn save_png(img: &RgbaImage, path: &Path) -> anyhow::Result<()> {
    img.save_with_format(path, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs a compose subcommand.
pub fn run(cmd: ComposeCommand) -> anyhow::Result<i32> {
    match cmd {
        ComposeCommand::Ticket(a) => ticket_cmd(*a),
        ComposeCommand::Presets { presets: dirs } => {
            for p in presets(&dirs)?.iter() {
                println!(
                    "{}",
                    serde_json::json!({
                        "name": p.name, "title": p.title, "description": p.description,
                        "size": p.size, "choose": p.choose,
                        "slots": p.slots.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
                    })
                );
            }
            Ok(0)
        }
        ComposeCommand::Storyboard(a) => sheet_cmd(a),
        ComposeCommand::Comic(a) => comic_cmd(a),
        ComposeCommand::Animatic(a) => animatic_cmd(a),
    }
}

fn ticket_cmd(a: TicketArgs) -> anyhow::Result<i32> {
    if !(a.scale > 0.05 && a.scale <= 4.0) {
        bail!("--scale must be within 0.05..4");
    }
    let presets = presets(&a.presets)?;
    let mut fields: BTreeMap<String, String> = a.fields.into_iter().collect();
    fields.insert("title".into(), a.title);
    fields.insert("tagline".into(), a.tagline);
    for (k, v) in [
        ("date", a.date),
        ("time", a.time),
        ("venue", a.venue),
        ("seat", a.seat),
    ] {
        if let Some(v) = v {
            fields.insert(k.into(), v);
        }
    }
    let req = TicketRequest {
        image: Some(load_image(&a.image)?),
        fields,
        qr_url: a.qr,
        logo: a.logo.as_deref().map(load_image).transpose()?,
        label: (!a.no_label).then_some(a.label),
        primary: a.primary,
        accent: a.accent,
        preset: Some(a.preset),
    };
    let mut fonts = Fonts::new();
    let t = ticket::ticket(&mut fonts, &presets, &req)?;
    let img = t.scene.render(
        &mut fonts,
        RasterOptions {
            scale: a.scale,
            ..RasterOptions::default()
        },
    )?;
    save_png(&img, &a.output)?;
    println!(
        "{}",
        serde_json::json!({
            "output": a.output, "preset": t.preset, "observed": t.observed,
            "width": img.width(), "height": img.height(),
        })
    );
    Ok(0)
}

/// Storyboard spec: `{"title", "subtitle", "label", "accent", "cuts": [{"image", "scene", "camera",
/// "copy", "duration_s"}]}`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct BoardSpec {
    title: String,
    #[serde(default)]
    subtitle: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    accent: Option<Rgba>,
    cuts: Vec<CutSpec>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct CutSpec {
    #[serde(default)]
    image: Option<PathBuf>,
    #[serde(default)]
    scene: String,
    #[serde(default)]
    camera: String,
    #[serde(default)]
    copy: String,
    duration_s: f32,
}

fn read_spec<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn relative(spec: &Path, p: &Path) -> PathBuf {
    spec.parent().unwrap_or(Path::new(".")).join(p)
}

fn board_from(spec_path: &Path, spec: BoardSpec) -> anyhow::Result<Storyboard> {
    let mut cuts = Vec::new();
    for c in spec.cuts {
        cuts.push(Cut {
            image: c
                .image
                .map(|p| load_image(&relative(spec_path, &p)))
                .transpose()?,
            scene: c.scene,
            camera: c.camera,
            copy: c.copy,
            duration_s: c.duration_s,
        });
    }
    Ok(Storyboard {
        title: spec.title,
        subtitle: spec.subtitle,
        cuts,
        label: spec.label,
        accent: spec.accent,
    })
}

fn sheet_cmd(a: SheetArgs) -> anyhow::Result<i32> {
    let board = board_from(&a.spec, read_spec(&a.spec)?)?;
    let mut fonts = Fonts::new();
    let scene = storyboard::sheet(&mut fonts, &board)?;
    for out in &a.output {
        match out
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => {
                if !(36.0..=600.0).contains(&a.dpi) {
                    bail!("--dpi must be within 36..600");
                }
                let img = scene.render(
                    &mut fonts,
                    RasterOptions {
                        scale: a.dpi / 72.0,
                        ..RasterOptions::default()
                    },
                )?;
                save_png(&img, out)?;
            }
            Some("pdf") => {
                let pdf =
                    Scene::render_pdf(std::slice::from_ref(&scene), &fonts, Some(&board.title))?;
                std::fs::write(out, pdf).with_context(|| format!("writing {}", out.display()))?;
            }
            _ => bail!("{}: outputs are .png or .pdf", out.display()),
        }
        println!(
            "{}",
            serde_json::json!({ "output": out, "cuts": board.cuts.len() })
        );
    }
    Ok(0)
}

/// Comic spec: `{"title", "label", "panels": [{"image", "caption", "speech"}]}`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ComicSpec {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    label: Option<String>,
    panels: Vec<PanelSpec>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PanelSpec {
    image: PathBuf,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    speech: Option<String>,
}

fn comic_cmd(a: ComicArgs) -> anyhow::Result<i32> {
    let spec: ComicSpec = read_spec(&a.spec)?;
    let mut panels = Vec::new();
    for p in spec.panels {
        panels.push(Panel {
            image: load_image(&relative(&a.spec, &p.image))?,
            caption: p.caption,
            speech: p.speech,
        });
    }
    let c = Comic {
        title: spec.title,
        panels,
        label: spec.label,
    };
    let mut fonts = Fonts::new();
    let scene = match a.layout {
        ComicLayout::Grid => comic::grid_page(&mut fonts, &c, a.width.unwrap_or(1600.0))?,
        ComicLayout::Webtoon => comic::webtoon(&mut fonts, &c, a.width.unwrap_or(800.0))?,
    };
    let img = scene.render(&mut fonts, RasterOptions::default())?;
    save_png(&img, &a.output)?;
    println!(
        "{}",
        serde_json::json!({ "output": a.output, "width": img.width(), "height": img.height(), "panels": c.panels.len() })
    );
    Ok(0)
}

/// Animatic spec: `{"width", "height", "fps", "label", "shots": [{"image", "duration_s", "caption",
/// "transition": {"type": "cut"} | {"type": "crossfade", "seconds": 0.5}, "motion": {"from": {"x",
/// "y", "zoom"}, "to": {…}}}]}`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct AnimaticSpec {
    #[serde(default)]
    width: Option<u32>,
    #[serde(default)]
    height: Option<u32>,
    #[serde(default)]
    fps: Option<u32>,
    #[serde(default)]
    label: Option<String>,
    shots: Vec<ShotSpec>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ShotSpec {
    image: PathBuf,
    duration_s: f32,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    transition: Transition,
    #[serde(default)]
    motion: Option<Motion>,
}

fn animatic_cmd(a: AnimaticArgs) -> anyhow::Result<i32> {
    let format =
        Format::from_path(&a.output).context("the output must end in .mp4, .gif or .webp")?;
    let value: serde_json::Value = read_spec(&a.spec)?;
    let mut anim = if value.get("cuts").is_some() {
        let board = board_from(
            &a.spec,
            serde_json::from_value(value).context("parsing the storyboard spec")?,
        )?;
        let mut shots = Vec::new();
        for (i, c) in board.cuts.into_iter().enumerate() {
            let image = c
                .image
                .with_context(|| format!("cuts[{i}] has no image to animate"))?;
            shots.push(Shot {
                image,
                duration_s: c.duration_s,
                caption: Some(c.copy).filter(|s| !s.trim().is_empty()),
                transition: if i == 0 {
                    Transition::Cut
                } else {
                    Transition::Crossfade { seconds: 0.4 }
                },
                motion: None,
            });
        }
        Animatic {
            shots,
            width: 1280,
            height: 720,
            fps: 24,
            label: board.label,
        }
    } else {
        let spec: AnimaticSpec =
            serde_json::from_value(value).context("parsing the animatic spec")?;
        let mut shots = Vec::new();
        for s in spec.shots {
            shots.push(Shot {
                image: load_image(&relative(&a.spec, &s.image))?,
                duration_s: s.duration_s,
                caption: s.caption,
                transition: s.transition,
                motion: s.motion,
            });
        }
        Animatic {
            shots,
            width: spec.width.unwrap_or(1280),
            height: spec.height.unwrap_or(720),
            fps: spec.fps.unwrap_or(24),
            label: spec.label,
        }
    };
    if let Some(w) = a.width {
        anim.width = w;
    }
    if let Some(h) = a.height {
        anim.height = h;
    }
    if let Some(f) = a.fps {
        anim.fps = f;
    }
    anim.validate()?;
    let bar = ProgressBar::new(anim.frame_count());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} frames {elapsed}/{eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut fonts = Fonts::new();
    let started = std::time::Instant::now();
    let frames = animatic::encode_file(&mut fonts, &anim, format, &a.output, |done, _| {
        bar.set_position(done)
    })?;
    bar.finish_and_clear();
    let bytes = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({
            "output": a.output, "format": format, "frames": frames, "fps": anim.fps,
            "width": anim.width, "height": anim.height,
            "duration_s": frames as f64 / anim.fps as f64, "bytes": bytes,
            "encode_s": (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
        })
    );
    Ok(0)
}
