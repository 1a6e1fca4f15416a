//! Comics from panels: a 2×2 page and a vertical webtoon strip, with caption boxes and speech
//! balloons kept off the picture's focal area.
//!
//! # Placement rule
//!
//! Each panel picture is reduced to a 48-pixel-wide thumbnail and a **saliency** value is computed
//! per pixel as gradient magnitude × (0.5 + luma): bright detail, where faces and subjects usually
//! are, scores high; flat sky and shadow score low. Scores are summed over a 3×3 grid.
//! The **caption** takes the top or the bottom band of the panel, whichever row of the grid is less
//! salient (bottom on ties). The **balloon** takes the corner of the remaining area whose grid cell
//! is least salient (top-left, top-right, bottom-left, bottom-right on ties) and points its tail
//! towards the most salient cell, the likely speaker.

use std::sync::Arc;

use image::RgbaImage;

use crate::error::ComposeError;
use crate::fonts::{Face, Fonts};
use crate::geom::{Rect, Rgba};
use crate::scene::{label_pill, Fit, Line, Op, Scene, Seg, Shape};
use crate::text::{nonblank, Align, TextStyle, VAlign};

/// One panel.
#[derive(Clone, Debug)]
pub struct Panel {
    /// The picture.
    pub image: Arc<RgbaImage>,
    /// Narration box text.
    pub caption: Option<String>,
    /// A line someone says.
    pub speech: Option<String>,
}

/// A comic to lay out.
#[derive(Clone, Debug, Default)]
pub struct Comic {
    /// Title drawn above the panels.
    pub title: Option<String>,
    /// Panels in reading order (1 to 8; diary toons use 4).
    pub panels: Vec<Panel>,
    /// Visible AI label (`None` omits it).
    pub label: Option<String>,
}

/// 3×3 saliency sums, row-major (see the module docs).
pub fn saliency(image: &RgbaImage) -> [f32; 9] {
    let (w, h) = image.dimensions();
    let mut out = [0.0; 9];
    if w < 3 || h < 3 {
        return out;
    }
    let tw = 48.min(w);
    let th = ((h as f32 * tw as f32 / w as f32).round() as u32).clamp(3, 96);
    let t = image::imageops::thumbnail(image, tw, th);
    let luma = |x: u32, y: u32| {
        let p = t.get_pixel(x, y).0;
        (0.2126 * p[0] as f32 + 0.7152 * p[1] as f32 + 0.0722 * p[2] as f32) / 255.0
    };
    for y in 1..th - 1 {
        for x in 1..tw - 1 {
            let gx = luma(x + 1, y) - luma(x - 1, y);
            let gy = luma(x, y + 1) - luma(x, y - 1);
            let s = (gx * gx + gy * gy).sqrt() * (0.5 + luma(x, y));
            let (cx, cy) = ((x * 3 / tw).min(2), (y * 3 / th).min(2));
            out[(cy * 3 + cx) as usize] += s;
        }
    }
    out
}

/// Where the caption and balloon go in a panel, as fractions of the panel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// Caption at the top (else bottom).
    pub caption_top: bool,
    /// Balloon corner: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right.
    pub balloon_corner: usize,
    /// Most salient grid cell (tail target), row-major.
    pub focus: usize,
}

/// Applies the placement rule to a saliency grid.
pub fn place(s: &[f32; 9], has_caption: bool) -> Placement {
    let row = |r: usize| s[r * 3] + s[r * 3 + 1] + s[r * 3 + 2];
    let caption_top = has_caption && row(0) < row(2);
    let focus = (0..9).fold(0, |best, i| if s[i] > s[best] { i } else { best });
    // Corners of the area the caption leaves free: with the caption at the top, the balloon's "top"
    // corners are in the middle row.
    let (top_row, bottom_row) = match (has_caption, caption_top) {
        (false, _) => (0, 2),
        (true, true) => (1, 2),
        (true, false) => (0, 1),
    };
    let corners = [
        top_row * 3,
        top_row * 3 + 2,
        bottom_row * 3,
        bottom_row * 3 + 2,
    ];
    let balloon_corner = (0..4).fold(0, |best, i| {
        if s[corners[i]] < s[corners[best]] {
            i
        } else {
            best
        }
    });
    Placement {
        caption_top,
        balloon_corner,
        focus,
    }
}

fn caption_style(size: f32) -> TextStyle {
    TextStyle {
        face: Face::Sans,
        bold: true,
        max_size: size,
        min_size: (size * 0.5).max(9.0),
        line_height: 1.3,
        color: Rgba::rgb(20, 20, 24),
        align: Align::Left,
        valign: VAlign::Middle,
        max_lines: 3,
    }
}

fn speech_style(size: f32) -> TextStyle {
    TextStyle {
        face: Face::Display,
        bold: true,
        max_size: size,
        min_size: (size * 0.5).max(9.0),
        line_height: 1.3,
        color: Rgba::rgb(20, 20, 24),
        align: Align::Center,
        valign: VAlign::Middle,
        max_lines: 4,
    }
}

/// Draws one panel (picture, caption, balloon, border) into `cell`.
fn panel_ops(fonts: &mut Fonts, panel: &Panel, cell: Rect) -> Vec<Op> {
    let mut ops = vec![Op::Image {
        rect: cell,
        image: panel.image.clone(),
        fit: Fit::Cover,
        radius: 6.0,
    }];
    let caption = nonblank(panel.caption.as_deref());
    let speech = nonblank(panel.speech.as_deref());
    let p = place(&saliency(&panel.image), caption.is_some());
    let unit = cell.w.min(cell.h);
    let pad = unit * 0.035;
    let band_h = cell.h * 0.24;
    if let Some(text) = caption {
        let band = if p.caption_top {
            Rect::new(cell.x + pad, cell.y + pad, cell.w - 2.0 * pad, band_h - pad)
        } else {
            Rect::new(
                cell.x + pad,
                cell.bottom() - band_h,
                cell.w - 2.0 * pad,
                band_h - pad,
            )
        };
        let layout = fonts.layout(text, band.inset(unit * 0.025), &caption_style(unit * 0.055));
        // Shrink the box to the text so less of the picture is covered.
        let used = layout.lines.len() as f32 * layout.line_pitch + 2.0 * unit * 0.025;
        let bx = if p.caption_top {
            Rect::new(band.x, band.y, band.w, used.min(band.h))
        } else {
            Rect::new(
                band.x,
                band.bottom() - used.min(band.h),
                band.w,
                used.min(band.h),
            )
        };
        ops.push(Op::Shape(Shape {
            path: Shape::round_rect(bx, unit * 0.015),
            fill: Some(Rgba([255, 252, 240, 235])),
            stroke: Some(Line {
                color: Rgba::rgb(20, 20, 24),
                width: (unit * 0.006).max(1.0),
                dash: None,
            }),
        }));
        ops.push(Op::Text(fonts.layout(
            text,
            bx.inset(unit * 0.025),
            &caption_style(unit * 0.055),
        )));
    }
    if let Some(text) = speech {
        let free_top = if caption.is_some() && p.caption_top {
            cell.y + band_h
        } else {
            cell.y
        };
        let free_bottom = if caption.is_some() && !p.caption_top {
            cell.bottom() - band_h
        } else {
            cell.bottom()
        };
        let (bw, bh) = (
            cell.w * 0.46,
            ((free_bottom - free_top) * 0.42).min(cell.h * 0.36),
        );
        let left = p.balloon_corner.is_multiple_of(2);
        let top = p.balloon_corner < 2;
        let bx = if left {
            cell.x + pad
        } else {
            cell.right() - pad - bw
        };
        let by = if top {
            free_top + pad
        } else {
            free_bottom - pad - bh
        };
        let ball = Rect::new(bx, by, bw, bh);
        let (fx, fy) = (
            cell.x + cell.w * ((p.focus % 3) as f32 + 0.5) / 3.0,
            cell.y + cell.h * ((p.focus / 3) as f32 + 0.5) / 3.0,
        );
        let stroke = Line {
            color: Rgba::rgb(20, 20, 24),
            width: (unit * 0.007).max(1.0),
            dash: None,
        };
        let (tail, joint) = balloon_tail(ball, (fx, fy));
        // Tail, then the ellipse over it, then the joint painted white to open the outline.
        ops.push(Op::Shape(Shape {
            path: tail,
            fill: Some(Rgba::WHITE),
            stroke: Some(stroke.clone()),
        }));
        ops.push(Op::Shape(Shape {
            path: Shape::ellipse(ball),
            fill: Some(Rgba::WHITE),
            stroke: Some(stroke),
        }));
        ops.push(Op::Shape(Shape::filled(joint, Rgba::WHITE)));
        // Text goes in the rectangle inscribed in the ellipse (w/√2 × h/√2).
        let inner = Rect::new(
            ball.x + ball.w * (1.0 - std::f32::consts::FRAC_1_SQRT_2) / 2.0,
            ball.y + ball.h * (1.0 - std::f32::consts::FRAC_1_SQRT_2) / 2.0,
            ball.w * std::f32::consts::FRAC_1_SQRT_2,
            ball.h * std::f32::consts::FRAC_1_SQRT_2,
        );
        ops.push(Op::Text(fonts.layout(
            text,
            inner,
            &speech_style(unit * 0.06),
        )));
    }
    ops.push(Op::Shape(Shape {
        path: Shape::round_rect(cell, 6.0),
        fill: None,
        stroke: Some(Line {
            color: Rgba::rgb(20, 20, 24),
            width: (unit * 0.008).max(1.5),
            dash: None,
        }),
    }));
    ops
}

/// The tail of a balloon in `r` pointing towards `target` (stopping short of it), and the small
/// wedge that covers the ellipse outline where the tail joins.
fn balloon_tail(r: Rect, target: (f32, f32)) -> (Vec<Seg>, Vec<Seg>) {
    let (cx, cy) = (r.x + r.w / 2.0, r.y + r.h / 2.0);
    let (dx, dy) = (target.0 - cx, target.1 - cy);
    let len = (dx * dx + dy * dy).sqrt().max(1e-3);
    let (ux, uy) = (dx / len, dy / len);
    // Distance from the centre to the ellipse in the target's direction.
    let t = 1.0 / ((ux / (r.w / 2.0)).powi(2) + (uy / (r.h / 2.0)).powi(2)).sqrt();
    let tip_len = (r.h * 0.45).min((len - t).max(0.0) * 0.6).max(r.h * 0.18);
    let tip = (cx + ux * (t + tip_len), cy + uy * (t + tip_len));
    let half = r.w.min(r.h) * 0.11;
    let (px, py) = (-uy, ux);
    let base = t * 0.75;
    let a = (cx + ux * base + px * half, cy + uy * base + py * half);
    let b = (cx + ux * base - px * half, cy + uy * base - py * half);
    let tail = vec![
        Seg::Move(a.0, a.1),
        Seg::Line(tip.0, tip.1),
        Seg::Line(b.0, b.1),
        Seg::Close,
    ];
    // The same wedge cut a little short of the tip and inside the stroke.
    let k = 0.82;
    let shrink = |p: (f32, f32)| (p.0 + (tip.0 - p.0) * 0.06, p.1 + (tip.1 - p.1) * 0.06);
    let (a2, b2) = (shrink(a), shrink(b));
    let mid = (a2.0 + (tip.0 - a2.0) * k, a2.1 + (tip.1 - a2.1) * k);
    let mid2 = (b2.0 + (tip.0 - b2.0) * k, b2.1 + (tip.1 - b2.1) * k);
    let joint = vec![
        Seg::Move(a2.0 + (b2.0 - a2.0) * 0.1, a2.1 + (b2.1 - a2.1) * 0.1),
        Seg::Line(
            mid.0 + (mid2.0 - mid.0) * 0.25,
            mid.1 + (mid2.1 - mid.1) * 0.25,
        ),
        Seg::Line(
            mid2.0 + (mid.0 - mid2.0) * 0.25,
            mid2.1 + (mid.1 - mid2.1) * 0.25,
        ),
        Seg::Line(b2.0 + (a2.0 - b2.0) * 0.1, b2.1 + (a2.1 - b2.1) * 0.1),
        Seg::Close,
    ];
    (tail, joint)
}

fn validate(comic: &Comic) -> Result<(), ComposeError> {
    if comic.panels.is_empty() || comic.panels.len() > 8 {
        return Err(ComposeError::invalid(
            "panels",
            format!("1 to 8 panels, got {}", comic.panels.len()),
        ));
    }
    for (i, p) in comic.panels.iter().enumerate() {
        if p.image.width() < 8 || p.image.height() < 8 {
            return Err(ComposeError::invalid(
                format!("panels[{i}].image"),
                "at least 8×8 pixels",
            ));
        }
    }
    Ok(())
}

fn title_and_label(
    fonts: &mut Fonts,
    scene: &mut Scene,
    comic: &Comic,
    title_box: Rect,
    label_box: Rect,
) {
    if let Some(title) = nonblank(comic.title.as_deref()) {
        let style = TextStyle {
            face: Face::Display,
            bold: true,
            max_size: title_box.h * 0.7,
            min_size: title_box.h * 0.3,
            line_height: 1.25,
            color: Rgba::rgb(20, 20, 24),
            align: Align::Center,
            valign: VAlign::Middle,
            max_lines: 1,
        };
        scene
            .ops
            .push(Op::Text(fonts.layout(title, title_box, &style)));
    }
    if let Some(label) = nonblank(comic.label.as_deref()) {
        scene.ops.extend(label_pill(fonts, label, label_box));
    }
}

/// A page of panels in a grid (2×2 for four), `width` pixels wide.
pub fn grid_page(fonts: &mut Fonts, comic: &Comic, width: f32) -> Result<Scene, ComposeError> {
    validate(comic)?;
    if !(200.0..=8192.0).contains(&width) {
        return Err(ComposeError::invalid("width", "200 to 8192 pixels"));
    }
    let n = comic.panels.len();
    let cols = if n <= 1 { 1 } else { 2 };
    let rows = n.div_ceil(cols);
    let margin = width * 0.03;
    let gutter = width * 0.02;
    let title_h = if comic.title.is_some() {
        width * 0.08
    } else {
        0.0
    };
    let footer_h = width * 0.045;
    let cell = (width - 2.0 * margin - gutter * (cols as f32 - 1.0)) / cols as f32;
    let height = margin
        + title_h
        + rows as f32 * cell
        + (rows as f32 - 1.0) * gutter
        + footer_h
        + margin * 0.5;
    let mut scene = Scene::new(width, height, Rgba::rgb(250, 248, 243));
    for (i, panel) in comic.panels.iter().enumerate() {
        let (c, r) = (i % cols, i / cols);
        let rect = Rect::new(
            margin + c as f32 * (cell + gutter),
            margin + title_h + r as f32 * (cell + gutter),
            cell,
            cell,
        );
        scene.ops.extend(panel_ops(fonts, panel, rect));
    }
    let title_box = Rect::new(margin, margin * 0.5, width - 2.0 * margin, title_h);
    let label_box = Rect::new(
        width * 0.5,
        height - footer_h - margin * 0.25,
        width * 0.5 - margin,
        footer_h * 0.8,
    );
    title_and_label(fonts, &mut scene, comic, title_box, label_box);
    Ok(scene)
}

/// A vertical webtoon strip `width` pixels wide: panels full width at their own aspect (capped at
/// 3:2 tall), with white space between them for pacing.
pub fn webtoon(fonts: &mut Fonts, comic: &Comic, width: f32) -> Result<Scene, ComposeError> {
    validate(comic)?;
    if !(200.0..=4096.0).contains(&width) {
        return Err(ComposeError::invalid("width", "200 to 4096 pixels"));
    }
    let margin = width * 0.05;
    let gap = width * 0.12;
    let title_h = if comic.title.is_some() {
        width * 0.14
    } else {
        margin
    };
    let pw = width - 2.0 * margin;
    let heights: Vec<f32> = comic
        .panels
        .iter()
        .map(|p| (pw * p.image.height() as f32 / p.image.width() as f32).clamp(pw * 0.5, pw * 1.5))
        .collect();
    let footer_h = width * 0.09;
    let height = title_h
        + heights.iter().sum::<f32>()
        + gap * (heights.len() as f32 - 1.0)
        + footer_h
        + margin;
    let mut scene = Scene::new(width, height, Rgba::WHITE);
    let mut y = title_h;
    for (panel, h) in comic.panels.iter().zip(&heights) {
        scene
            .ops
            .extend(panel_ops(fonts, panel, Rect::new(margin, y, pw, *h)));
        y += h + gap;
    }
    let title_box = Rect::new(margin, title_h * 0.15, pw, title_h * 0.7);
    let label_box = Rect::new(
        width * 0.4,
        height - margin - footer_h * 0.5,
        width * 0.6 - margin,
        footer_h * 0.45,
    );
    title_and_label(fonts, &mut scene, comic, title_box, label_box);
    Ok(scene)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caption_avoids_the_busy_half_and_balloon_the_busy_corner() {
        // Detail in the bottom-right cell only.
        let mut s = [0.0; 9];
        s[8] = 10.0;
        s[7] = 3.0;
        let p = place(&s, true);
        assert!(p.caption_top, "bottom row is busier");
        assert_eq!(p.focus, 8);
        // Caption on top: free corners are cells 3, 5, 6, 8; 3 (top-left of free area) is 0.
        assert_eq!(p.balloon_corner, 0);
        // Detail at the top: caption goes to the bottom.
        let mut s = [0.0; 9];
        s[1] = 5.0;
        assert!(!place(&s, true).caption_top);
    }

    #[test]
    fn saliency_finds_a_bright_detailed_patch() {
        let mut img = RgbaImage::from_pixel(96, 96, image::Rgba([40, 40, 40, 255]));
        for y in 70..90 {
            for x in 70..90 {
                if (x + y) % 2 == 0 {
                    img.put_pixel(x, y, image::Rgba([255, 255, 255, 255]));
                }
            }
        }
        let s = saliency(&img);
        let best = (0..9).fold(0, |b, i| if s[i] > s[b] { i } else { b });
        assert_eq!(best, 8, "{s:?}");
    }

    #[test]
    fn panel_counts_are_validated() {
        let mut fonts = Fonts::new();
        let e = grid_page(&mut fonts, &Comic::default(), 800.0).expect_err("empty");
        assert!(e.to_string().starts_with("panels:"));
    }
}
