//! Photo tickets: a generated picture and Korean copy laid out on a cinema-ticket preset.
//!
//! # Automatic preset choice
//!
//! Deterministic and documented, so a campaign manager can predict it:
//!
//! 1. The image's **aspect** is `portrait` (w/h < 0.9), `landscape` (w/h > 1.1) or `square`.
//! 2. Its **palette** (over a 64-pixel-wide thumbnail): `vivid` when mean HSV saturation ≥ 0.45,
//!    else `dark` when mean luma < 0.35, `light` when mean luma > 0.65, otherwise `muted`.
//! 3. The **copy** is `long` when title + tagline exceed 24 characters, else `short`.
//!
//! Each preset lists the traits it suits in its `[choose]` table. A preset scores 4 for a matching
//! aspect, 2 for a matching palette and 1 for a matching copy length; the highest score wins and ties
//! go to the preset whose name sorts first. A request that names a preset skips all of this.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use image::RgbaImage;
use include_dir::{include_dir, Dir};
use serde::Serialize;

use crate::error::ComposeError;
use crate::fonts::Fonts;
use crate::geom::Rgba;
use crate::scene::Scene;
use crate::template::{Fill, Preset};

static BUILTIN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/presets/tickets");

/// The ticket presets on offer: the bundled ones plus any loaded from directories.
#[derive(Clone, Debug)]
pub struct Presets {
    presets: BTreeMap<String, Preset>,
}

impl Presets {
    /// The bundled presets (`classic`, `landscape`, `minimal`, `retro`).
    pub fn builtin() -> Result<Self, ComposeError> {
        let mut presets = BTreeMap::new();
        for dir in BUILTIN.dirs() {
            let Some(toml_text) = dir
                .get_file(dir.path().join("preset.toml"))
                .and_then(|f| f.contents_utf8())
            else {
                continue;
            };
            let p = Preset::parse(toml_text, |name| {
                dir.get_file(dir.path().join(name))
                    .and_then(|f| f.contents_utf8())
                    .map(str::to_string)
            })?;
            presets.insert(p.name.clone(), p);
        }
        Ok(Self { presets })
    }

    /// Adds every `*/preset.toml` under `root` (a later preset replaces a bundled one of the same name).
    pub fn load_dir(&mut self, root: &Path) -> Result<(), ComposeError> {
        let mut dirs: Vec<_> = std::fs::read_dir(root)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        dirs.sort();
        for dir in dirs {
            if dir.join("preset.toml").is_file() {
                let p = Preset::load(&dir).map_err(|e| match e {
                    ComposeError::Preset { message, .. } => ComposeError::Preset {
                        name: dir.display().to_string(),
                        message,
                    },
                    other => other,
                })?;
                self.presets.insert(p.name.clone(), p);
            }
        }
        Ok(())
    }

    /// A preset by name.
    pub fn get(&self, name: &str) -> Result<&Preset, ComposeError> {
        self.presets
            .get(name)
            .ok_or_else(|| ComposeError::UnknownPreset(name.to_string()))
    }

    /// All presets, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Preset> {
        self.presets.values()
    }
}

/// The traits of a request that drive the automatic choice.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observed {
    /// `portrait`, `square` or `landscape`.
    pub aspect: &'static str,
    /// `dark`, `light`, `vivid` or `muted`.
    pub palette: &'static str,
    /// `short` or `long`.
    pub copy: &'static str,
    /// Mean luma (0..1, three decimals).
    pub luma: f64,
    /// Mean HSV saturation (0..1, three decimals).
    pub saturation: f64,
}

/// Classifies an image and its copy (rule in the module docs).
pub fn observe(image: &RgbaImage, title: &str, tagline: &str) -> Observed {
    let (w, h) = image.dimensions();
    let a = w as f32 / h.max(1) as f32;
    let aspect = if a < 0.9 {
        "portrait"
    } else if a > 1.1 {
        "landscape"
    } else {
        "square"
    };
    let tw = 64.min(w.max(1));
    let th = ((h as f32 * tw as f32 / w.max(1) as f32).round() as u32).max(1);
    let thumb = image::imageops::thumbnail(image, tw, th);
    let (mut luma, mut sat, mut n) = (0.0f32, 0.0f32, 0.0f32);
    for p in thumb.pixels() {
        let [r, g, b, _] = p.0.map(|v| v as f32 / 255.0);
        luma += 0.2126 * r + 0.7152 * g + 0.0722 * b;
        let (mx, mn) = (r.max(g).max(b), r.min(g).min(b));
        sat += if mx > 0.0 { (mx - mn) / mx } else { 0.0 };
        n += 1.0;
    }
    let (luma, saturation) = if n > 0.0 {
        (luma / n, sat / n)
    } else {
        (0.5, 0.0)
    };
    // Reported with three decimals; the classification uses the same rounded values.
    let (luma, saturation) = (
        (luma as f64 * 1000.0).round() / 1000.0,
        (saturation as f64 * 1000.0).round() / 1000.0,
    );
    let palette = if saturation >= 0.45 {
        "vivid"
    } else if luma < 0.35 {
        "dark"
    } else if luma > 0.65 {
        "light"
    } else {
        "muted"
    };
    let copy = if title.chars().count() + tagline.chars().count() > 24 {
        "long"
    } else {
        "short"
    };
    Observed {
        aspect,
        palette,
        copy,
        luma,
        saturation,
    }
}

/// Picks a preset for the observed traits; returns its name and score.
pub fn choose<'a>(presets: &'a Presets, observed: &Observed) -> Option<(&'a str, u32)> {
    choose_from(presets, observed, &[])
}

/// As [`choose`], among the presets named in `allowed` only (a campaign's list; empty allows
/// all).
pub fn choose_from<'a>(
    presets: &'a Presets,
    observed: &Observed,
    allowed: &[String],
) -> Option<(&'a str, u32)> {
    let mut best: Option<(&str, u32)> = None;
    for p in presets
        .iter()
        .filter(|p| allowed.is_empty() || allowed.contains(&p.name))
    {
        let has = |list: &[String], v: &str| list.iter().any(|x| x == v);
        let score = 4 * has(&p.choose.aspect, observed.aspect) as u32
            + 2 * has(&p.choose.palette, observed.palette) as u32
            + has(&p.choose.copy, observed.copy) as u32;
        // Presets iterate by name, so a strict comparison keeps the first name on ties.
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((p.name.as_str(), score));
        }
    }
    best
}

/// One ticket to draw.
#[derive(Clone, Debug, Default)]
pub struct TicketRequest {
    /// The generated picture.
    pub image: Option<Arc<RgbaImage>>,
    /// Text fields: `title`, `tagline`, `date`, `time`, `venue`, `seat`, and any a custom preset names.
    pub fields: BTreeMap<String, String>,
    /// Share-page URL for the QR slot.
    pub qr_url: Option<String>,
    /// Brand logo for the `logo` slot.
    pub logo: Option<Arc<RgbaImage>>,
    /// Visible AI label text; `None` leaves the label slot empty.
    pub label: Option<String>,
    /// Brand colours replacing the preset's `primary` and `accent`.
    pub primary: Option<Rgba>,
    /// See `primary`.
    pub accent: Option<Rgba>,
    /// A preset name; `None` chooses automatically.
    pub preset: Option<String>,
}

/// A drawn ticket's scene and why its preset was picked.
#[derive(Debug)]
pub struct Ticket {
    /// The page to render.
    pub scene: Scene,
    /// Preset used.
    pub preset: String,
    /// Traits the automatic choice saw (also reported when a preset was named).
    pub observed: Option<Observed>,
}

/// Lays out a ticket.
pub fn ticket(
    fonts: &mut Fonts,
    presets: &Presets,
    req: &TicketRequest,
) -> Result<Ticket, ComposeError> {
    let field = |k: &str| req.fields.get(k).map(String::as_str).unwrap_or("");
    let observed = req
        .image
        .as_ref()
        .map(|img| observe(img, field("title"), field("tagline")));
    let name = match (&req.preset, &observed) {
        (Some(name), _) if name != "auto" => name.clone(),
        (_, Some(obs)) => choose(presets, obs)
            .map(|(n, _)| n.to_string())
            .ok_or_else(|| ComposeError::invalid("preset", "no presets are loaded"))?,
        (_, None) => {
            return Err(ComposeError::invalid(
                "image",
                "an image is required to choose a preset",
            ))
        }
    };
    let preset = presets.get(&name)?;
    let mut fill = Fill {
        text: req.fields.clone(),
        ..Fill::default()
    };
    if let Some(img) = &req.image {
        fill.images.insert("image".into(), img.clone());
    }
    if let Some(logo) = &req.logo {
        fill.images.insert("logo".into(), logo.clone());
    }
    if let Some(url) = &req.qr_url {
        fill.text.insert("qr".into(), url.clone());
    }
    match &req.label {
        Some(l) => {
            fill.text.insert("label".into(), l.clone());
        }
        None => {
            fill.text.remove("label");
        }
    }
    if let Some(c) = req.primary {
        fill.palette.insert("primary".into(), c);
    }
    if let Some(c) = req.accent {
        fill.palette.insert("accent".into(), c);
    }
    let scene = preset.scene(fonts, &fill)?;
    Ok(Ticket {
        scene,
        preset: name,
        observed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(w: u32, h: u32, c: [u8; 3]) -> RgbaImage {
        RgbaImage::from_pixel(w, h, image::Rgba([c[0], c[1], c[2], 255]))
    }

    #[test]
    fn builtin_presets_load_and_there_are_at_least_four() {
        let p = Presets::builtin().expect("bundled presets parse");
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert!(names.len() >= 4, "{names:?}");
        for p in p.iter() {
            assert!(
                p.slots.iter().any(|s| s.name == "qr"),
                "{} lacks a QR slot",
                p.name
            );
            assert!(
                p.slots.iter().any(|s| s.name == "label"),
                "{} lacks a label slot",
                p.name
            );
        }
    }

    #[test]
    fn observation_follows_the_documented_rule() {
        let o = observe(&flat(300, 600, [10, 10, 12]), "짧은 제목", "");
        assert_eq!((o.aspect, o.palette, o.copy), ("portrait", "dark", "short"));
        let o = observe(
            &flat(600, 300, [240, 240, 235]),
            "아주 긴 제목이 여기에 있습니다",
            "그리고 더 긴 태그라인",
        );
        assert_eq!(
            (o.aspect, o.palette, o.copy),
            ("landscape", "light", "long")
        );
        let o = observe(&flat(500, 500, [220, 30, 40]), "", "");
        assert_eq!((o.aspect, o.palette), ("square", "vivid"));
        let o = observe(&flat(500, 500, [128, 120, 110]), "", "");
        assert_eq!(o.palette, "muted");
    }

    #[test]
    fn a_preset_directory_adds_a_preset_without_code() {
        let dir = std::env::temp_dir().join(format!("atelier-preset-{}", std::process::id()));
        let p = dir.join("square-stub");
        std::fs::create_dir_all(&p).expect("dir");
        std::fs::write(
            p.join("art.svg"),
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"><rect width="400" height="400" fill="{{primary}}"/></svg>"#,
        )
        .expect("svg");
        let toml_text = r##"
name = "square-stub"
size = [400, 400]
artwork = "art.svg"
[palette]
primary = "#336699"
[choose]
aspect = ["square"]
[[slot]]
name = "title"
kind = "text"
box = [20, 300, 360, 80]
color = "#ffffff"
"##;
        std::fs::write(p.join("preset.toml"), toml_text).expect("toml");
        let mut presets = Presets::builtin().expect("presets");
        presets.load_dir(&dir).expect("load");
        let mut fonts = Fonts::new();
        let mut req = TicketRequest {
            image: Some(Arc::new(flat(100, 100, [0, 0, 0]))),
            preset: Some("square-stub".into()),
            ..TicketRequest::default()
        };
        req.fields.insert("title".into(), "새 프리셋".into());
        let t = ticket(&mut fonts, &presets, &req).expect("ticket");
        let img = t
            .scene
            .render(&mut fonts, crate::RasterOptions::default())
            .expect("render");
        assert_eq!(img.get_pixel(5, 5).0, [0x33, 0x66, 0x99, 255]);
        // A slot colour that is neither #hex nor in the palette is refused, naming the slot.
        std::fs::write(
            p.join("preset.toml"),
            toml_text.replace("\"#ffffff\"", "\"gold\""),
        )
        .expect("toml");
        let e = presets.load_dir(&dir).expect_err("bad colour").to_string();
        assert!(e.contains("slot[0] \"title\"") && e.contains("gold"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn brand_colours_recolour_the_artwork() {
        let presets = Presets::builtin().expect("presets");
        let mut fonts = Fonts::new();
        let mut req = TicketRequest {
            image: Some(Arc::new(flat(600, 800, [200, 200, 190]))),
            preset: Some("classic".into()),
            ..TicketRequest::default()
        };
        req.fields.insert("title".into(), "제목".into());
        // A pixel in classic's brand band (y < 150), away from the brand text.
        let band = |req: &TicketRequest, fonts: &mut Fonts| {
            let t = ticket(fonts, &presets, req).expect("ticket");
            let img = t
                .scene
                .render(fonts, crate::RasterOptions::default())
                .expect("render");
            img.get_pixel(1000, 140).0
        };
        assert_eq!(band(&req, &mut fonts), [0xa3, 0x16, 0x2b, 255]);
        req.primary = Some(Rgba::rgb(0x12, 0x80, 0x40));
        assert_eq!(band(&req, &mut fonts), [0x12, 0x80, 0x40, 255]);
    }

    #[test]
    fn automatic_choice_is_deterministic_and_overridable() {
        let presets = Presets::builtin().expect("presets");
        let mut fonts = Fonts::new();
        let mut req = TicketRequest {
            image: Some(Arc::new(flat(900, 500, [200, 200, 190]))),
            ..TicketRequest::default()
        };
        req.fields.insert("title".into(), "여름".into());
        let a = ticket(&mut fonts, &presets, &req).expect("ticket");
        let b = ticket(&mut fonts, &presets, &req).expect("ticket");
        assert_eq!(a.preset, b.preset);
        assert_eq!(a.preset, "landscape");
        req.preset = Some("retro".into());
        assert_eq!(
            ticket(&mut fonts, &presets, &req).expect("ticket").preset,
            "retro"
        );
        req.preset = Some("nope".into());
        assert!(matches!(
            ticket(&mut fonts, &presets, &req),
            Err(ComposeError::UnknownPreset(_))
        ));
    }
}
