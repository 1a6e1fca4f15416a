//! Presets as data: a `preset.toml` slot list plus optional SVG artwork drawn under and over it.
//!
//! A preset directory holds `preset.toml` and the SVG files it names. SVG text may use
//! `{{name}}` placeholders for palette colours (`{{primary}}`, `{{accent}}`, …), so a brand's
//! colours from the request recolour the artwork. Slots are drawn in file order between the
//! artwork and the overlay. Adding a preset is adding a directory; no Rust changes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use image::RgbaImage;
use serde::{Deserialize, Serialize};

use crate::error::ComposeError;
use crate::fonts::{Face, Fonts};
use crate::geom::{Rect, Rgba};
use crate::scene::{Fit, Op, Scene, Seg, Shape};
use crate::text::{nonblank, Align, TextStyle, VAlign};

/// What a slot draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotKind {
    /// A picture from the request (the generated image, a logo).
    Image,
    /// Text from the request or a literal in the preset.
    Text,
    /// A QR code of a request field (the share URL).
    Qr,
}

/// Traits the automatic preset choice matches against (see [`crate::ticket::choose`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Traits {
    /// Image shapes this preset suits: `portrait`, `square`, `landscape`.
    pub aspect: Vec<String>,
    /// Image palettes it suits: `dark`, `light`, `vivid`, `muted`.
    pub palette: Vec<String>,
    /// Copy lengths it suits: `short`, `long`.
    pub copy: Vec<String>,
}

/// One named slot and its rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    /// Slot name (`image`, `title`, `tagline`, `date`, `time`, `venue`, `seat`, `qr`, `logo`, `label`, …).
    pub name: String,
    /// What it draws.
    pub kind: SlotKind,
    /// Box `[x, y, w, h]` in preset pixels.
    #[serde(rename = "box")]
    pub rect: Rect,
    /// Request field that fills it (defaults to the slot name).
    #[serde(default)]
    pub field: Option<String>,
    /// Literal text used when the request has no such field (e.g. "ADMIT ONE").
    #[serde(default)]
    pub text: Option<String>,
    /// Fail when the request leaves this slot empty.
    #[serde(default)]
    pub required: bool,
    /// Typeface role.
    #[serde(default)]
    pub face: Face,
    /// Bold weight.
    #[serde(default)]
    pub bold: bool,
    /// `[max, min]` size in preset pixels.
    #[serde(default)]
    pub size: Option<[f32; 2]>,
    /// Line pitch as a multiple of the size.
    #[serde(default)]
    pub line_height: Option<f32>,
    /// Text or QR module colour: `#rrggbb` or a palette name.
    #[serde(default)]
    pub color: Option<String>,
    /// Fill behind the slot: `#rrggbb` or a palette name.
    #[serde(default)]
    pub background: Option<String>,
    /// Shrink the background to the text (a pill label) instead of the whole box.
    #[serde(default)]
    pub hug: bool,
    /// Inner padding between background and content.
    #[serde(default)]
    pub padding: f32,
    /// Corner radius of the background or the image clip.
    #[serde(default)]
    pub radius: f32,
    /// Horizontal alignment.
    #[serde(default)]
    pub align: Align,
    /// Vertical alignment.
    #[serde(default)]
    pub valign: VAlign,
    /// At most this many lines (0 = as many as fit).
    #[serde(default)]
    pub max_lines: u32,
    /// Cover or contain, for images.
    #[serde(default)]
    pub fit: Fit,
}

impl Slot {
    /// The box content is fitted into: the slot's box less its padding.
    pub fn content(&self) -> Rect {
        self.rect.inset(self.padding)
    }
}

/// A parsed preset.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Identifier used in requests.
    pub name: String,
    /// Human title.
    #[serde(default)]
    pub title: String,
    /// One-line description for pickers.
    #[serde(default)]
    pub description: String,
    /// Canvas `[width, height]` in preset pixels.
    pub size: [f32; 2],
    /// Canvas colour: `#rrggbb` or a palette name.
    #[serde(default)]
    pub background: Option<String>,
    /// Default colours; a request's brand colours replace `primary` and `accent`.
    #[serde(default)]
    pub palette: BTreeMap<String, Rgba>,
    /// Traits for the automatic choice.
    #[serde(default)]
    pub choose: Traits,
    /// Slots, drawn in order.
    #[serde(default, rename = "slot")]
    pub slots: Vec<Slot>,
    /// SVG file drawn under the slots.
    #[serde(default)]
    pub artwork: Option<String>,
    /// SVG file drawn over the slots (perforations, frames).
    #[serde(default)]
    pub overlay: Option<String>,
    #[serde(skip)]
    artwork_svg: Option<String>,
    #[serde(skip)]
    overlay_svg: Option<String>,
}

/// What a request puts into a preset's slots.
#[derive(Clone, Debug, Default)]
pub struct Fill {
    /// Text fields by name (title, tagline, date, …, and the QR's URL under `qr`).
    pub text: BTreeMap<String, String>,
    /// Images by field name (`image`, `logo`).
    pub images: BTreeMap<String, Arc<RgbaImage>>,
    /// Palette overrides (brand colours).
    pub palette: BTreeMap<String, Rgba>,
}

impl Preset {
    /// Parses a preset from its TOML and a loader for the SVG files it names.
    pub fn parse(
        toml_text: &str,
        mut read: impl FnMut(&str) -> Option<String>,
    ) -> Result<Self, ComposeError> {
        let mut p: Preset = toml::from_str(toml_text).map_err(|e| ComposeError::Preset {
            name: "preset.toml".into(),
            message: e.to_string(),
        })?;
        for (file, slot) in [(p.artwork.clone(), 0), (p.overlay.clone(), 1)] {
            if let Some(file) = file {
                let svg = read(&file).ok_or_else(|| ComposeError::Preset {
                    name: p.name.clone(),
                    message: format!("{file} not found beside preset.toml"),
                })?;
                if slot == 0 {
                    p.artwork_svg = Some(svg);
                } else {
                    p.overlay_svg = Some(svg);
                }
            }
        }
        p.validate()?;
        Ok(p)
    }

    /// Loads `dir/preset.toml` and its SVG files.
    pub fn load(dir: &Path) -> Result<Self, ComposeError> {
        let toml_text = std::fs::read_to_string(dir.join("preset.toml"))?;
        Self::parse(&toml_text, |f| std::fs::read_to_string(dir.join(f)).ok())
    }

    fn err(&self, message: impl Into<String>) -> ComposeError {
        ComposeError::Preset {
            name: self.name.clone(),
            message: message.into(),
        }
    }

    fn validate(&self) -> Result<(), ComposeError> {
        let [w, h] = self.size;
        if !(w >= 16.0 && h >= 16.0 && w <= 8192.0 && h <= 8192.0) {
            return Err(self.err("size must be within 16..8192"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.slots.iter().enumerate() {
            let at = |m: &str| self.err(format!("slot[{i}] {:?}: {m}", s.name));
            if !seen.insert(s.name.as_str()) {
                return Err(at("duplicate slot name"));
            }
            let r = s.rect;
            if r.x < 0.0
                || r.y < 0.0
                || r.right() > w + 0.5
                || r.bottom() > h + 0.5
                || r.w <= 0.0
                || r.h <= 0.0
            {
                return Err(at("box must lie inside the canvas"));
            }
            if let Some([max, min]) = s.size {
                if !(min > 0.0 && max >= min) {
                    return Err(at("size is [max, min] with max >= min > 0"));
                }
            }
            for c in [&s.color, &s.background].into_iter().flatten() {
                self.color(c, &BTreeMap::new())
                    .map_err(|_| at(&format!("colour {c:?} is neither #hex nor in the palette")))?;
            }
        }
        if let Some(bg) = &self.background {
            self.color(bg, &BTreeMap::new())?;
        }
        for svg in [&self.artwork_svg, &self.overlay_svg].into_iter().flatten() {
            self.svg(svg, &BTreeMap::new())?;
        }
        Ok(())
    }

    /// The palette with request overrides applied.
    fn palette(&self, overrides: &BTreeMap<String, Rgba>) -> BTreeMap<String, Rgba> {
        let mut p = self.palette.clone();
        p.extend(overrides.iter().map(|(k, v)| (k.clone(), *v)));
        p
    }

    fn color(&self, spec: &str, overrides: &BTreeMap<String, Rgba>) -> Result<Rgba, ComposeError> {
        if spec.starts_with('#') {
            return spec
                .parse()
                .map_err(|e: crate::geom::BadColor| self.err(e.to_string()));
        }
        overrides
            .get(spec)
            .or_else(|| self.palette.get(spec))
            .copied()
            .ok_or_else(|| self.err(format!("no palette colour {spec:?}")))
    }

    fn svg(
        &self,
        text: &str,
        overrides: &BTreeMap<String, Rgba>,
    ) -> Result<Arc<resvg::usvg::Tree>, ComposeError> {
        let mut text = text.to_string();
        for (k, v) in self.palette(overrides) {
            text = text.replace(&format!("{{{{{k}}}}}"), &v.to_string());
        }
        let tree = resvg::usvg::Tree::from_str(&text, &resvg::usvg::Options::default())
            .map_err(|e| self.err(format!("svg: {e}")))?;
        Ok(Arc::new(tree))
    }

    /// The text style a text slot lays out with (palette overrides applied).
    pub fn text_style(
        &self,
        slot: &Slot,
        overrides: &BTreeMap<String, Rgba>,
    ) -> Result<TextStyle, ComposeError> {
        let bg = match &self.background {
            Some(c) => self.color(c, overrides)?,
            None => Rgba::WHITE,
        };
        let [max, min] = slot
            .size
            .unwrap_or([slot.rect.h * 0.6, 10.0_f32.min(slot.rect.h * 0.6)]);
        Ok(TextStyle {
            face: slot.face,
            bold: slot.bold,
            max_size: max,
            min_size: min,
            line_height: slot.line_height.unwrap_or(1.3),
            color: match &slot.color {
                Some(c) => self.color(c, overrides)?,
                None => ink_for(bg),
            },
            align: slot.align,
            valign: slot.valign,
            max_lines: slot.max_lines,
        })
    }

    /// Lays the request out on this preset.
    pub fn scene(&self, fonts: &mut Fonts, fill: &Fill) -> Result<Scene, ComposeError> {
        let [w, h] = self.size;
        let bg = match &self.background {
            Some(c) => self.color(c, &fill.palette)?,
            None => Rgba::WHITE,
        };
        let mut scene = Scene::new(w, h, bg);
        let full = Rect::new(0.0, 0.0, w, h);
        if let Some(svg) = &self.artwork_svg {
            scene.ops.push(Op::Svg {
                rect: full,
                tree: self.svg(svg, &fill.palette)?,
            });
        }
        for slot in &self.slots {
            let field = slot.field.as_deref().unwrap_or(&slot.name);
            match slot.kind {
                SlotKind::Image => {
                    let Some(img) = fill.images.get(field) else {
                        if slot.required {
                            return Err(ComposeError::invalid(
                                field,
                                "this preset needs an image here",
                            ));
                        }
                        continue;
                    };
                    if let Some(bgc) = &slot.background {
                        let c = self.color(bgc, &fill.palette)?;
                        scene.ops.push(Op::Shape(Shape::filled(
                            Shape::round_rect(slot.rect, slot.radius),
                            c,
                        )));
                    }
                    scene.ops.push(Op::Image {
                        rect: slot.rect.inset(slot.padding),
                        image: img.clone(),
                        fit: slot.fit,
                        radius: (slot.radius - slot.padding).max(0.0),
                    });
                }
                SlotKind::Text => {
                    let text =
                        nonblank(fill.text.get(field).map(String::as_str)).or(slot.text.as_deref());
                    let Some(text) = text else {
                        if slot.required {
                            return Err(ComposeError::invalid(field, "must not be empty"));
                        }
                        continue;
                    };
                    let style = self.text_style(slot, &fill.palette)?;
                    let inner = slot.content();
                    let layout = fonts.layout(text, inner, &style);
                    if let Some(bgc) = &slot.background {
                        let c = self.color(bgc, &fill.palette)?;
                        let rect = if slot.hug {
                            hug(&layout, slot)
                        } else {
                            slot.rect
                        };
                        scene.ops.push(Op::Shape(Shape::filled(
                            Shape::round_rect(rect, slot.radius),
                            c,
                        )));
                    }
                    scene.ops.push(Op::Text(layout));
                }
                SlotKind::Qr => {
                    let Some(data) = fill.text.get(field).filter(|s| !s.is_empty()) else {
                        if slot.required {
                            return Err(ComposeError::invalid(field, "a QR slot needs a URL"));
                        }
                        continue;
                    };
                    let fg = match &slot.color {
                        Some(c) => self.color(c, &fill.palette)?,
                        None => Rgba::BLACK,
                    };
                    let bgc = match &slot.background {
                        Some(c) => self.color(c, &fill.palette)?,
                        None => Rgba::WHITE,
                    };
                    scene.ops.extend(
                        qr_ops(data, slot.rect, fg, bgc, slot.radius)
                            .map_err(|m| ComposeError::invalid(field, m))?,
                    );
                }
            }
        }
        if let Some(svg) = &self.overlay_svg {
            scene.ops.push(Op::Svg {
                rect: full,
                tree: self.svg(svg, &fill.palette)?,
            });
        }
        Ok(scene)
    }
}

/// Black or white, whichever reads better on `bg`.
pub fn ink_for(bg: Rgba) -> Rgba {
    if bg.luma() > 0.55 {
        Rgba::rgb(20, 20, 24)
    } else {
        Rgba::WHITE
    }
}

/// The background box of a hugging slot: the text's extent plus padding, aligned like the text.
fn hug(layout: &crate::text::Layout, slot: &Slot) -> Rect {
    let text_w = layout.lines.iter().map(|l| l.width).fold(0.0, f32::max)
        + 2.0 * (layout.rect.w - layout.inner_width) / 2.0;
    let w = (text_w + 2.0 * slot.padding).min(slot.rect.w);
    let x = match slot.align {
        Align::Left => slot.rect.x,
        Align::Center => slot.rect.x + (slot.rect.w - w) / 2.0,
        Align::Right => slot.rect.right() - w,
    };
    Rect::new(x, slot.rect.y, w, slot.rect.h)
}

/// A QR code as filled squares on a quiet-zone background, centred in `rect`.
pub fn qr_ops(data: &str, rect: Rect, fg: Rgba, bg: Rgba, radius: f32) -> Result<Vec<Op>, String> {
    let code = qrcode::QrCode::with_error_correction_level(data.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| format!("cannot encode as a QR code: {e}"))?;
    let n = code.width();
    let colors = code.to_colors();
    let quiet = 2usize;
    let side = rect.w.min(rect.h);
    let module = side / (n + 2 * quiet) as f32;
    let x0 = rect.x + (rect.w - side) / 2.0 + quiet as f32 * module;
    let y0 = rect.y + (rect.h - side) / 2.0 + quiet as f32 * module;
    let mut ops = vec![Op::Shape(Shape::filled(
        Shape::round_rect(
            Rect::new(
                rect.x + (rect.w - side) / 2.0,
                rect.y + (rect.h - side) / 2.0,
                side,
                side,
            ),
            radius,
        ),
        bg,
    ))];
    // One path of all dark modules, row runs merged: fewer seams between neighbouring squares.
    let mut path = Vec::new();
    for row in 0..n {
        let mut col = 0;
        while col < n {
            if colors[row * n + col] == qrcode::Color::Dark {
                let start = col;
                while col < n && colors[row * n + col] == qrcode::Color::Dark {
                    col += 1;
                }
                let r = Rect::new(
                    x0 + start as f32 * module,
                    y0 + row as f32 * module,
                    (col - start) as f32 * module,
                    module,
                );
                path.extend([
                    Seg::Move(r.x, r.y),
                    Seg::Line(r.right(), r.y),
                    Seg::Line(r.right(), r.bottom()),
                    Seg::Line(r.x, r.bottom()),
                    Seg::Close,
                ]);
            } else {
                col += 1;
            }
        }
    }
    ops.push(Op::Shape(Shape::filled(path, fg)));
    Ok(ops)
}
