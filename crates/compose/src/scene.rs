//! A page as a list of drawing operations, rendered to pixels (tiny-skia) or to PDF (krilla).
//!
//! Layouts (tickets, sheets, comics) build a [`Scene`]; they never touch a renderer. That keeps the
//! PNG and the PDF of a storyboard sheet the same drawing, glyph for glyph: text is shaped once by
//! our layout and both back ends place the same glyphs.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use image::RgbaImage;
use tiny_skia::{
    FillRule, Paint, PathBuilder, Pattern, Pixmap, PremultipliedColorU8, Stroke, StrokeDash,
    Transform,
};

use crate::error::ComposeError;
use crate::fonts::Fonts;
use crate::geom::{Rect, Rgba};
use crate::text::Layout;

/// One path segment in layout units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Seg {
    /// Start a sub-path.
    Move(f32, f32),
    /// Straight line.
    Line(f32, f32),
    /// Quadratic curve (control, end).
    Quad(f32, f32, f32, f32),
    /// Cubic curve (control 1, control 2, end).
    Cubic(f32, f32, f32, f32, f32, f32),
    /// Close the sub-path.
    Close,
}

/// A stroke style.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// Colour.
    pub color: Rgba,
    /// Width in layout units.
    pub width: f32,
    /// Dash and gap lengths, for perforations and cut lines.
    pub dash: Option<[f32; 2]>,
}

/// A filled and/or stroked path.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// The outline.
    pub path: Vec<Seg>,
    /// Fill colour.
    pub fill: Option<Rgba>,
    /// Stroke.
    pub stroke: Option<Line>,
}

/// Circle-to-cubic constant.
const KAPPA: f32 = 0.552_284_8;

impl Shape {
    /// A rectangle with corner radius `r` (0 for square corners).
    pub fn round_rect(rect: Rect, r: f32) -> Vec<Seg> {
        let r = r.min(rect.w.min(rect.h) / 2.0).max(0.0);
        let (x0, y0, x1, y1) = (rect.x, rect.y, rect.right(), rect.bottom());
        if r <= 0.0 {
            return vec![
                Seg::Move(x0, y0),
                Seg::Line(x1, y0),
                Seg::Line(x1, y1),
                Seg::Line(x0, y1),
                Seg::Close,
            ];
        }
        let k = r * (1.0 - KAPPA);
        vec![
            Seg::Move(x0 + r, y0),
            Seg::Line(x1 - r, y0),
            Seg::Cubic(x1 - k, y0, x1, y0 + k, x1, y0 + r),
            Seg::Line(x1, y1 - r),
            Seg::Cubic(x1, y1 - k, x1 - k, y1, x1 - r, y1),
            Seg::Line(x0 + r, y1),
            Seg::Cubic(x0 + k, y1, x0, y1 - k, x0, y1 - r),
            Seg::Line(x0, y0 + r),
            Seg::Cubic(x0, y0 + k, x0 + k, y0, x0 + r, y0),
            Seg::Close,
        ]
    }

    /// An ellipse inscribed in `rect`.
    pub fn ellipse(rect: Rect) -> Vec<Seg> {
        let (cx, cy, rx, ry) = (
            rect.x + rect.w / 2.0,
            rect.y + rect.h / 2.0,
            rect.w / 2.0,
            rect.h / 2.0,
        );
        let (kx, ky) = (rx * KAPPA, ry * KAPPA);
        vec![
            Seg::Move(cx + rx, cy),
            Seg::Cubic(cx + rx, cy + ky, cx + kx, cy + ry, cx, cy + ry),
            Seg::Cubic(cx - kx, cy + ry, cx - rx, cy + ky, cx - rx, cy),
            Seg::Cubic(cx - rx, cy - ky, cx - kx, cy - ry, cx, cy - ry),
            Seg::Cubic(cx + kx, cy - ry, cx + rx, cy - ky, cx + rx, cy),
            Seg::Close,
        ]
    }

    /// A filled shape.
    pub fn filled(path: Vec<Seg>, color: Rgba) -> Self {
        Shape {
            path,
            fill: Some(color),
            stroke: None,
        }
    }
}

/// How an image fills its box.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Fill the box, cropping the overflow around the centre (photos).
    #[default]
    Cover,
    /// Fit inside the box, keeping all of the image (logos).
    Contain,
}

/// One drawing operation.
#[derive(Clone, Debug)]
pub enum Op {
    /// A vector shape.
    Shape(Shape),
    /// A raster image in a box, clipped to rounded corners.
    Image {
        /// Destination box.
        rect: Rect,
        /// Pixels (straight alpha).
        image: Arc<RgbaImage>,
        /// Cover or contain.
        fit: Fit,
        /// Corner radius of the clip.
        radius: f32,
    },
    /// Fitted text.
    Text(Layout),
    /// SVG artwork scaled into a box (raster only).
    Svg {
        /// Destination box.
        rect: Rect,
        /// Parsed SVG.
        tree: Arc<resvg::usvg::Tree>,
    },
}

/// A page: size in layout units, a background and operations in painting order.
#[derive(Clone, Debug)]
pub struct Scene {
    /// Width in layout units.
    pub width: f32,
    /// Height in layout units.
    pub height: f32,
    /// Background colour.
    pub background: Rgba,
    /// Operations, painted first to last.
    pub ops: Vec<Op>,
}

/// A right-aligned label pill (the visible AI label): bold white text on a translucent dark
/// rounded box that hugs the text, filling `area`'s height and at most its width.
pub fn label_pill(fonts: &mut Fonts, text: &str, area: Rect) -> Vec<Op> {
    let style = crate::text::TextStyle {
        face: crate::fonts::Face::Sans,
        bold: true,
        max_size: area.h * 0.55,
        min_size: area.h * 0.35,
        line_height: 1.3,
        color: Rgba::WHITE,
        align: crate::text::Align::Right,
        valign: crate::text::VAlign::Middle,
        max_lines: 1,
    };
    let pad = area.h * 0.4;
    let layout = fonts.layout(
        text,
        Rect::new(area.x, area.y, (area.w - pad).max(0.0), area.h),
        &style,
    );
    let text_w = layout.lines.iter().map(|l| l.width).fold(0.0, f32::max)
        + (layout.rect.w - layout.inner_width);
    let w = (text_w + 2.0 * pad).min(area.w);
    let pill = Rect::new(area.right() - w, area.y, w, area.h);
    vec![
        Op::Shape(Shape::filled(
            Shape::round_rect(pill, area.h / 2.0),
            Rgba([0, 0, 0, 190]),
        )),
        Op::Text(layout),
    ]
}

/// Where an image lands for `fit` in `rect` and the box it is clipped to.
fn image_boxes(rect: Rect, iw: u32, ih: u32, fit: Fit) -> (Rect, Rect) {
    let dest = fitted(rect, iw as f32, ih as f32, fit);
    let clip = match fit {
        Fit::Cover => rect,
        Fit::Contain => dest,
    };
    (dest, clip)
}

/// Raster-rendering options.
#[derive(Clone, Copy, Debug)]
pub struct RasterOptions {
    /// Pixels per layout unit.
    pub scale: f32,
    /// Clip text to its box. Always on in production; tests turn it off to check that layout alone
    /// keeps ink inside the box.
    pub clip_text: bool,
}

impl Default for RasterOptions {
    fn default() -> Self {
        Self {
            scale: 1.0,
            clip_text: true,
        }
    }
}

fn skia_path(segs: &[Seg], scale: f32) -> Option<tiny_skia::Path> {
    let mut pb = PathBuilder::new();
    for s in segs {
        match *s {
            Seg::Move(x, y) => pb.move_to(x * scale, y * scale),
            Seg::Line(x, y) => pb.line_to(x * scale, y * scale),
            Seg::Quad(a, b, x, y) => pb.quad_to(a * scale, b * scale, x * scale, y * scale),
            Seg::Cubic(a, b, c, d, x, y) => pb.cubic_to(
                a * scale,
                b * scale,
                c * scale,
                d * scale,
                x * scale,
                y * scale,
            ),
            Seg::Close => pb.close(),
        }
    }
    pb.finish()
}

fn solid(color: Rgba) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color(color.skia());
    p.anti_alias = true;
    p
}

/// Source-over blend of one straight-alpha pixel into a premultiplied pixmap.
fn blend(px: &mut PremultipliedColorU8, c: [u8; 4]) {
    let a = c[3] as u32;
    if a == 0 {
        return;
    }
    let inv = 255 - a;
    let mix = |s: u8, d: u8| ((s as u32 * a + d as u32 * inv + 127) / 255) as u8;
    let out_a = (a + (px.alpha() as u32 * inv + 127) / 255).min(255) as u8;
    let r = mix(c[0], px.red()).min(out_a);
    let g = mix(c[1], px.green()).min(out_a);
    let b = mix(c[2], px.blue()).min(out_a);
    if let Some(p) = PremultipliedColorU8::from_rgba(r, g, b, out_a) {
        *px = p;
    }
}

/// Scales a straight-alpha image to roughly `w`×`h` with a good filter before tiny-skia's bicubic
/// pattern takes it the rest of the way (bicubic alone aliases when shrinking a lot).
fn prescale(image: &RgbaImage, w: f32, h: f32) -> std::borrow::Cow<'_, RgbaImage> {
    let (iw, ih) = image.dimensions();
    if (w as u32) < iw * 3 / 4 || (h as u32) < ih * 3 / 4 {
        let tw = (w.ceil() as u32).clamp(1, iw);
        let th = (h.ceil() as u32).clamp(1, ih);
        std::borrow::Cow::Owned(image::imageops::resize(
            image,
            tw,
            th,
            image::imageops::FilterType::CatmullRom,
        ))
    } else {
        // Close enough to size: no copy, the pattern's bicubic filter does the rest.
        std::borrow::Cow::Borrowed(image)
    }
}

fn to_pixmap(image: &RgbaImage) -> Option<Pixmap> {
    let (w, h) = image.dimensions();
    let mut pm = Pixmap::new(w, h)?;
    for (dst, src) in pm.pixels_mut().iter_mut().zip(image.pixels()) {
        let [r, g, b, a] = src.0;
        let m = |v: u8| ((v as u32 * a as u32 + 127) / 255) as u8;
        if let Some(p) = PremultipliedColorU8::from_rgba(m(r), m(g), m(b), a) {
            *dst = p;
        }
    }
    Some(pm)
}

/// Where an image of `iw`×`ih` lands for `fit` in `rect`: (x, y, w, h).
pub fn fitted(rect: Rect, iw: f32, ih: f32, fit: Fit) -> Rect {
    let s = match fit {
        Fit::Cover => (rect.w / iw).max(rect.h / ih),
        Fit::Contain => (rect.w / iw).min(rect.h / ih),
    };
    let (w, h) = (iw * s, ih * s);
    Rect::new(
        rect.x + (rect.w - w) / 2.0,
        rect.y + (rect.h - h) / 2.0,
        w,
        h,
    )
}

impl Scene {
    /// An empty page.
    pub fn new(width: f32, height: f32, background: Rgba) -> Self {
        Self {
            width,
            height,
            background,
            ops: Vec::new(),
        }
    }

    /// Renders to pixels.
    pub fn render(
        &self,
        fonts: &mut Fonts,
        opts: RasterOptions,
    ) -> Result<RgbaImage, ComposeError> {
        let s = opts.scale;
        let (w, h) = (
            (self.width * s).round() as u32,
            (self.height * s).round() as u32,
        );
        let mut pm = Pixmap::new(w, h).ok_or(ComposeError::Size {
            width: w,
            height: h,
        })?;
        pm.fill(self.background.skia());
        for op in &self.ops {
            match op {
                Op::Shape(shape) => {
                    let Some(path) = skia_path(&shape.path, s) else {
                        continue;
                    };
                    if let Some(fill) = shape.fill {
                        pm.fill_path(
                            &path,
                            &solid(fill),
                            FillRule::Winding,
                            Transform::identity(),
                            None,
                        );
                    }
                    if let Some(line) = &shape.stroke {
                        let stroke = Stroke {
                            width: line.width * s,
                            dash: line
                                .dash
                                .and_then(|[a, b]| StrokeDash::new(vec![a * s, b * s], 0.0)),
                            ..Stroke::default()
                        };
                        pm.stroke_path(
                            &path,
                            &solid(line.color),
                            &stroke,
                            Transform::identity(),
                            None,
                        );
                    }
                }
                Op::Image {
                    rect,
                    image,
                    fit,
                    radius,
                } => {
                    let (iw, ih) = image.dimensions();
                    if iw == 0 || ih == 0 {
                        continue;
                    }
                    let (dest, clip) = image_boxes(*rect, iw, ih, *fit);
                    let scaled = prescale(image, dest.w * s, dest.h * s);
                    let Some(src) = to_pixmap(&scaled) else {
                        continue;
                    };
                    let Some(path) = skia_path(&Shape::round_rect(clip, *radius), s) else {
                        continue;
                    };
                    let (sx, sy) = (
                        dest.w * s / src.width() as f32,
                        dest.h * s / src.height() as f32,
                    );
                    let pattern = Pattern::new(
                        src.as_ref(),
                        tiny_skia::SpreadMode::Pad,
                        tiny_skia::FilterQuality::Bicubic,
                        1.0,
                        Transform::from_row(sx, 0.0, 0.0, sy, dest.x * s, dest.y * s),
                    );
                    let paint = Paint {
                        shader: pattern,
                        anti_alias: true,
                        ..Paint::default()
                    };
                    pm.fill_path(
                        &path,
                        &paint,
                        FillRule::Winding,
                        Transform::identity(),
                        None,
                    );
                }
                Op::Text(layout) => draw_text(&mut pm, fonts, layout, s, opts.clip_text),
                Op::Svg { rect, tree } => {
                    let size = tree.size();
                    let t = Transform::from_row(
                        rect.w * s / size.width(),
                        0.0,
                        0.0,
                        rect.h * s / size.height(),
                        rect.x * s,
                        rect.y * s,
                    );
                    resvg::render(tree, t, &mut pm.as_mut());
                }
            }
        }
        let mut out = RgbaImage::new(w, h);
        for (dst, src) in out.pixels_mut().zip(pm.pixels()) {
            let c = src.demultiply();
            dst.0 = [c.red(), c.green(), c.blue(), c.alpha()];
        }
        Ok(out)
    }

    /// Renders pages into one PDF with real, selectable text and the used glyphs of each font
    /// embedded; `title` goes into the document information (shown by viewers and indexers).
    pub fn render_pdf(
        pages: &[Scene],
        fonts: &Fonts,
        title: Option<&str>,
    ) -> Result<Vec<u8>, ComposeError> {
        use krilla::geom::{Point, Size};
        use krilla::page::PageSettings;
        let mut doc = krilla::Document::new();
        let mut meta = krilla::metadata::Metadata::new()
            .creator("atelier".to_string())
            .language("ko".to_string());
        if let Some(t) = title {
            meta = meta.title(t.to_string());
        }
        doc.set_metadata(meta);
        let mut pdf_fonts: HashMap<cosmic_text::fontdb::ID, krilla::text::Font> = HashMap::new();
        for scene in pages {
            let settings = PageSettings::from_wh(scene.width, scene.height)
                .ok_or(ComposeError::Pdf("page size must be positive".into()))?;
            let mut page = doc.start_page_with(settings);
            let mut surface = page.surface();
            if let Some(bg) = krilla_path(&Shape::round_rect(
                Rect::new(0.0, 0.0, scene.width, scene.height),
                0.0,
            )) {
                surface.set_fill(Some(krilla_fill(scene.background)));
                surface.set_stroke(None);
                surface.draw_path(&bg);
            }
            for op in &scene.ops {
                match op {
                    Op::Shape(shape) => {
                        let Some(path) = krilla_path(&shape.path) else {
                            continue;
                        };
                        surface.set_fill(shape.fill.map(krilla_fill));
                        surface.set_stroke(shape.stroke.as_ref().map(|l| {
                            krilla::paint::Stroke {
                                paint: krilla::color::rgb::Color::new(
                                    l.color.0[0],
                                    l.color.0[1],
                                    l.color.0[2],
                                )
                                .into(),
                                width: l.width,
                                opacity: opacity(l.color),
                                dash: l.dash.map(|[a, b]| krilla::paint::StrokeDash {
                                    array: vec![a, b],
                                    offset: 0.0,
                                }),
                                ..Default::default()
                            }
                        }));
                        surface.draw_path(&path);
                    }
                    Op::Image {
                        rect,
                        image,
                        fit,
                        radius,
                    } => {
                        let (iw, ih) = image.dimensions();
                        if iw == 0 || ih == 0 {
                            continue;
                        }
                        let (dest, clip) = image_boxes(*rect, iw, ih, *fit);
                        let pdf_image = pdf_image(image)?;
                        let Some(clip_path) = krilla_path(&Shape::round_rect(clip, *radius)) else {
                            continue;
                        };
                        let Some(size) = Size::from_wh(dest.w, dest.h) else {
                            continue;
                        };
                        surface.push_clip_path(&clip_path, &krilla::paint::FillRule::NonZero);
                        surface.push_transform(&krilla::geom::Transform::from_translate(
                            dest.x, dest.y,
                        ));
                        surface.draw_image(pdf_image, size);
                        surface.pop();
                        surface.pop();
                    }
                    Op::Text(layout) => {
                        surface.set_stroke(None);
                        surface.set_fill(Some(krilla_fill(layout.color)));
                        for line in &layout.lines {
                            for run in runs(&line.glyphs) {
                                let first = &line.glyphs[run.start];
                                let id = first.font_id;
                                let font =
                                    match pdf_fonts.get(&id) {
                                        Some(f) => f.clone(),
                                        None => {
                                            let (data, index) = fonts
                                                .face_data(id)
                                                .ok_or(ComposeError::Pdf("unknown font".into()))?;
                                            let f = krilla::text::Font::new(
                                                krilla::Data::from(data),
                                                index,
                                            )
                                            .ok_or(ComposeError::Pdf(
                                                "a bundled font could not be read".into(),
                                            ))?;
                                            pdf_fonts.insert(id, f.clone());
                                            f
                                        }
                                    };
                                let glyphs = &line.glyphs[run.clone()];
                                let t0 = glyphs.iter().map(|g| g.start).min().unwrap_or(0);
                                let t1 = glyphs.iter().map(|g| g.end).max().unwrap_or(t0);
                                let Some(text) = line.text.get(t0..t1) else {
                                    continue;
                                };
                                let size = first.font_size;
                                let kg: Vec<krilla::text::KrillaGlyph> = glyphs
                                    .iter()
                                    .map(|g| {
                                        krilla::text::KrillaGlyph::new(
                                            krilla::text::GlyphId::new(g.glyph_id as u32),
                                            g.w / size,
                                            g.x_offset,
                                            g.y_offset,
                                            0.0,
                                            (g.start - t0)..(g.end - t0),
                                            None,
                                        )
                                    })
                                    .collect();
                                let origin = Point::from_xy(
                                    layout.rect.x + line.x + first.x,
                                    layout.rect.y + line.baseline,
                                );
                                surface.draw_glyphs(origin, &kg, font, text, size, false);
                            }
                        }
                    }
                    Op::Svg { .. } => {
                        return Err(ComposeError::Pdf(
                            "SVG artwork is drawn into PNG only".into(),
                        ));
                    }
                }
            }
            surface.finish();
            page.finish();
        }
        doc.finish()
            .map_err(|e| ComposeError::Pdf(format!("{e:?}")))
    }
}

/// Consecutive glyphs drawn from the same font (font fallback switches fonts mid-line).
fn runs(glyphs: &[cosmic_text::LayoutGlyph]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=glyphs.len() {
        if i == glyphs.len()
            || glyphs[i].font_id != glyphs[start].font_id
            || glyphs[i].font_size != glyphs[start].font_size
        {
            if start < i {
                out.push(start..i);
            }
            start = i;
        }
    }
    out
}

fn opacity(c: Rgba) -> krilla::num::NormalizedF32 {
    krilla::num::NormalizedF32::new(c.0[3] as f32 / 255.0)
        .unwrap_or(krilla::num::NormalizedF32::ONE)
}

fn krilla_fill(c: Rgba) -> krilla::paint::Fill {
    krilla::paint::Fill {
        paint: krilla::color::rgb::Color::new(c.0[0], c.0[1], c.0[2]).into(),
        opacity: opacity(c),
        rule: krilla::paint::FillRule::NonZero,
    }
}

fn krilla_path(segs: &[Seg]) -> Option<krilla::geom::Path> {
    let mut pb = krilla::geom::PathBuilder::new();
    for s in segs {
        match *s {
            Seg::Move(x, y) => pb.move_to(x, y),
            Seg::Line(x, y) => pb.line_to(x, y),
            Seg::Quad(a, b, x, y) => pb.quad_to(a, b, x, y),
            Seg::Cubic(a, b, c, d, x, y) => pb.cubic_to(a, b, c, d, x, y),
            Seg::Close => pb.close(),
        }
    }
    pb.finish()
}

/// Photos go into the PDF as JPEG (quality 90), images with transparency as PNG.
fn pdf_image(image: &RgbaImage) -> Result<krilla::image::Image, ComposeError> {
    let opaque = image.pixels().all(|p| p.0[3] == 255);
    let mut bytes = Vec::new();
    if opaque {
        let rgb = image::DynamicImage::ImageRgba8(image.clone()).to_rgb8();
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut bytes), 90);
        rgb.write_with_encoder(enc)
            .map_err(|e| ComposeError::Pdf(e.to_string()))?;
        krilla::image::Image::from_jpeg(krilla::Data::from(bytes), true).map_err(ComposeError::Pdf)
    } else {
        image
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .map_err(|e| ComposeError::Pdf(e.to_string()))?;
        krilla::image::Image::from_png(krilla::Data::from(bytes), true).map_err(ComposeError::Pdf)
    }
}

/// Draws fitted text; with `clip`, nothing lands outside the layout's box.
fn draw_text(pm: &mut Pixmap, fonts: &mut Fonts, layout: &Layout, scale: f32, clip: bool) {
    let (w, h) = (pm.width() as i32, pm.height() as i32);
    let r = layout.rect;
    let (cx0, cy0, cx1, cy1) = if clip {
        (
            (r.x * scale).floor() as i32,
            (r.y * scale).floor() as i32,
            (r.right() * scale).ceil() as i32,
            (r.bottom() * scale).ceil() as i32,
        )
    } else {
        (0, 0, w, h)
    };
    let (cx0, cy0, cx1, cy1) = (cx0.max(0), cy0.max(0), cx1.min(w), cy1.min(h));
    let base = cosmic_text::Color::rgba(
        layout.color.0[0],
        layout.color.0[1],
        layout.color.0[2],
        layout.color.0[3],
    );
    let pixels = pm.pixels_mut();
    for line in &layout.lines {
        let origin = ((r.x + line.x) * scale, (r.y + line.baseline) * scale);
        for glyph in &line.glyphs {
            let pg = glyph.physical(origin, scale);
            fonts
                .cache
                .with_pixels(&mut fonts.system, pg.cache_key, base, |x, y, c| {
                    let (px, py) = (pg.x + x, pg.y + y);
                    if px < cx0 || py < cy0 || px >= cx1 || py >= cy1 {
                        return;
                    }
                    // Mask glyphs come back with the base colour and coverage as alpha; scale by the
                    // colour's own alpha for translucent text.
                    let a = (c.a() as u32 * layout.color.0[3] as u32 / 255) as u8;
                    let idx = (py * w + px) as usize;
                    if let Some(p) = pixels.get_mut(idx) {
                        blend(p, [c.r(), c.g(), c.b(), a]);
                    }
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_crops_and_contain_letterboxes() {
        let r = Rect::new(0.0, 0.0, 100.0, 100.0);
        let c = fitted(r, 200.0, 100.0, Fit::Cover);
        assert_eq!((c.w, c.h, c.x), (200.0, 100.0, -50.0));
        let c = fitted(r, 200.0, 100.0, Fit::Contain);
        assert_eq!((c.w, c.h, c.y), (100.0, 50.0, 25.0));
    }

    #[test]
    fn blending_is_source_over() {
        let mut p = PremultipliedColorU8::from_rgba(0, 0, 0, 255)
            .unwrap_or(PremultipliedColorU8::TRANSPARENT);
        blend(&mut p, [255, 255, 255, 128]);
        assert!((p.red() as i32 - 128).abs() <= 1 && p.alpha() == 255);
    }
}
