//! The printable storyboard sheet: 4–8 cuts on one A4 landscape page.
//!
//! Laid out in PDF points (1/72 in) so the PDF is exact; the PNG renders the same scene at a chosen
//! DPI. Grid: 4 cuts in one row, 5–6 in 3×2, 7–8 in 4×2. Every cut shows its number, duration,
//! picture (whole frame, letterboxed to 16:9), scene, camera and copy.

use std::sync::Arc;

use image::RgbaImage;

use crate::error::ComposeError;
use crate::fonts::{Face, Fonts};
use crate::geom::{Rect, Rgba};
use crate::scene::{label_pill, Fit, Op, Scene, Shape};
use crate::text::{nonblank, Align, TextStyle, VAlign};

/// A4 landscape in points.
pub const A4_LANDSCAPE: (f32, f32) = (841.89, 595.28);

/// One cut of the board.
#[derive(Clone, Debug, Default)]
pub struct Cut {
    /// Picture for the cut (`None` draws an empty frame marked "no image").
    pub image: Option<Arc<RgbaImage>>,
    /// What happens.
    pub scene: String,
    /// Shot and camera move.
    pub camera: String,
    /// Copy or narration.
    pub copy: String,
    /// Seconds on screen.
    pub duration_s: f32,
}

/// A whole board.
#[derive(Clone, Debug, Default)]
pub struct Storyboard {
    /// Product or campaign name.
    pub title: String,
    /// Brief, tone or client line under the title.
    pub subtitle: String,
    /// The cuts, in order.
    pub cuts: Vec<Cut>,
    /// Visible AI label (`None` omits it).
    pub label: Option<String>,
    /// Accent colour (headers, cut bars).
    pub accent: Option<Rgba>,
}

// Field captions, bilingual so Korean and international crews read the same sheet.
const SCENE: &str = "장면 SCENE";
const CAMERA: &str = "카메라 CAMERA";
const COPY: &str = "카피 COPY";

fn grid(n: usize) -> (usize, usize) {
    match n {
        0..=4 => (n.max(1), 1),
        5 | 6 => (3, 2),
        _ => (4, 2),
    }
}

/// Lays out the sheet; errors name the field at fault.
pub fn sheet(fonts: &mut Fonts, board: &Storyboard) -> Result<Scene, ComposeError> {
    let n = board.cuts.len();
    if !(4..=8).contains(&n) {
        return Err(ComposeError::invalid(
            "cuts",
            format!("a storyboard has 4 to 8 cuts, got {n}"),
        ));
    }
    for (i, c) in board.cuts.iter().enumerate() {
        if !(c.duration_s.is_finite() && c.duration_s > 0.0 && c.duration_s <= 600.0) {
            return Err(ComposeError::invalid(
                format!("cuts[{i}].duration_s"),
                "must be within (0, 600] seconds",
            ));
        }
    }
    let accent = board.accent.unwrap_or(Rgba::rgb(0x1f, 0x3a, 0x5f));
    let ink = Rgba::rgb(0x1b, 0x1d, 0x21);
    let grey = Rgba::rgb(0x6b, 0x6f, 0x76);
    let (pw, ph) = A4_LANDSCAPE;
    let margin = 28.0;
    let mut scene = Scene::new(pw, ph, Rgba::WHITE);

    // Header: title and brief on the left, totals and the AI label on the right.
    let header = Rect::new(margin, margin, pw - 2.0 * margin, 48.0);
    let total: f32 = board.cuts.iter().map(|c| c.duration_s).sum();
    let title_style = TextStyle {
        face: Face::Sans,
        bold: true,
        max_size: 20.0,
        min_size: 11.0,
        line_height: 1.25,
        color: ink,
        max_lines: 1,
        ..TextStyle::default()
    };
    let title_box = Rect::new(header.x, header.y, header.w * 0.62, 26.0);
    scene.ops.push(Op::Text(fonts.layout(
        &board.title,
        title_box,
        &title_style,
    )));
    let sub_style = TextStyle {
        bold: false,
        max_size: 10.0,
        min_size: 7.0,
        color: grey,
        max_lines: 1,
        ..title_style.clone()
    };
    let sub_box = Rect::new(header.x, header.y + 27.0, header.w * 0.62, 18.0);
    scene
        .ops
        .push(Op::Text(fonts.layout(&board.subtitle, sub_box, &sub_style)));
    let totals = format!("{n}컷 · 총 {} · A4", seconds(total));
    let totals_box = Rect::new(
        header.x + header.w * 0.62,
        header.y + 2.0,
        header.w * 0.38,
        20.0,
    );
    scene.ops.push(Op::Text(fonts.layout(
        &totals,
        totals_box,
        &TextStyle {
            align: Align::Right,
            max_size: 11.0,
            min_size: 7.0,
            bold: true,
            color: accent,
            ..sub_style.clone()
        },
    )));
    if let Some(label) = nonblank(board.label.as_deref()) {
        let lb = Rect::new(
            header.x + header.w * 0.62,
            header.y + 25.0,
            header.w * 0.38,
            18.0,
        );
        scene.ops.extend(label_pill(fonts, label, lb));
    }
    scene.ops.push(Op::Shape(Shape::filled(
        Shape::round_rect(
            Rect::new(margin, header.bottom() + 4.0, pw - 2.0 * margin, 1.5),
            0.0,
        ),
        accent,
    )));

    // The grid of cuts.
    let (cols, rows) = grid(n);
    let gap = 12.0;
    let top = header.bottom() + 16.0;
    let area = Rect::new(margin, top, pw - 2.0 * margin, ph - margin - top - 14.0);
    let cw = (area.w - gap * (cols as f32 - 1.0)) / cols as f32;
    let ch = (area.h - gap * (rows as f32 - 1.0)) / rows as f32;
    let caption_style = TextStyle {
        face: Face::Sans,
        bold: true,
        max_size: 6.5,
        min_size: 5.5,
        line_height: 1.25,
        color: accent,
        max_lines: 1,
        ..TextStyle::default()
    };
    let body_style = TextStyle {
        face: Face::Sans,
        bold: false,
        max_size: 9.0,
        min_size: 6.0,
        line_height: 1.3,
        color: ink,
        ..TextStyle::default()
    };
    for (i, cut) in board.cuts.iter().enumerate() {
        let (c, r) = (i % cols, i / cols);
        let cell = Rect::new(
            area.x + c as f32 * (cw + gap),
            area.y + r as f32 * (ch + gap),
            cw,
            ch,
        );
        scene.ops.push(Op::Shape(Shape {
            path: Shape::round_rect(cell, 4.0),
            fill: Some(Rgba::rgb(0xf6, 0xf7, 0xf9)),
            stroke: Some(crate::scene::Line {
                color: Rgba::rgb(0xd9, 0xdc, 0xe1),
                width: 0.75,
                dash: None,
            }),
        }));
        // Cut bar: number left, duration right.
        let bar = Rect::new(cell.x, cell.y, cell.w, 16.0);
        scene
            .ops
            .push(Op::Shape(Shape::filled(top_rounded(bar, 4.0), accent)));
        let bar_style = TextStyle {
            bold: true,
            max_size: 8.5,
            min_size: 6.0,
            color: Rgba::WHITE,
            valign: VAlign::Middle,
            max_lines: 1,
            ..body_style.clone()
        };
        scene.ops.push(Op::Text(fonts.layout(
            &format!("CUT {}", i + 1),
            bar.inset(2.0),
            &bar_style,
        )));
        scene.ops.push(Op::Text(fonts.layout(
            &seconds(cut.duration_s),
            bar.inset(2.0),
            &TextStyle {
                align: Align::Right,
                ..bar_style.clone()
            },
        )));
        // Picture, letterboxed to 16:9.
        // At most half the cell, so two-row sheets keep room for three readable fields.
        // The frame stays 16:9; when capped it narrows and centres.
        let frame_h = ((cell.w - 8.0) * 9.0 / 16.0).min(cell.h * 0.48);
        let frame_w = frame_h * 16.0 / 9.0;
        let frame = Rect::new(
            cell.x + (cell.w - frame_w) / 2.0,
            bar.bottom() + 4.0,
            frame_w,
            frame_h,
        );
        scene.ops.push(Op::Shape(Shape::filled(
            Shape::round_rect(frame, 2.0),
            Rgba::rgb(0x22, 0x24, 0x28),
        )));
        match &cut.image {
            Some(img) => scene.ops.push(Op::Image {
                rect: frame,
                image: img.clone(),
                fit: Fit::Contain,
                radius: 0.0,
            }),
            None => scene.ops.push(Op::Text(fonts.layout(
                "no image",
                frame,
                &TextStyle {
                    align: Align::Center,
                    valign: VAlign::Middle,
                    color: Rgba::rgb(0x9a, 0x9e, 0xa6),
                    max_lines: 1,
                    ..body_style.clone()
                },
            ))),
        }
        // Three captioned fields share the rest; copy gets the most room.
        let text_top = frame.bottom() + 5.0;
        let cap_h = 9.0;
        let bodies = (cell.bottom() - 4.0 - text_top - 3.0 * cap_h).max(0.0);
        let shares = [0.36, 0.24, 0.40];
        let mut y = text_top;
        for ((caption, body), share) in [
            (SCENE, &cut.scene),
            (CAMERA, &cut.camera),
            (COPY, &cut.copy),
        ]
        .into_iter()
        .zip(shares)
        {
            let h = cap_h + bodies * share;
            let cap = Rect::new(cell.x + 4.0, y, cell.w - 8.0, cap_h);
            scene
                .ops
                .push(Op::Text(fonts.layout(caption, cap, &caption_style)));
            let body_box = Rect::new(
                cell.x + 4.0,
                y + cap.h,
                cell.w - 8.0,
                (h - cap.h - 2.0).max(0.0),
            );
            let style = if caption == COPY {
                TextStyle {
                    bold: true,
                    ..body_style.clone()
                }
            } else {
                body_style.clone()
            };
            scene
                .ops
                .push(Op::Text(fonts.layout(body, body_box, &style)));
            y += h;
        }
    }
    // Footer.
    let footer = Rect::new(margin, ph - margin - 10.0, pw - 2.0 * margin, 12.0);
    scene.ops.push(Op::Text(fonts.layout(
        "atelier storyboard · 이미지는 AI로 생성되었습니다 · images are AI-generated",
        footer,
        &TextStyle {
            max_size: 6.5,
            min_size: 5.0,
            color: grey,
            max_lines: 1,
            ..body_style.clone()
        },
    )));
    Ok(scene)
}

/// "3초" / "2.5초" for durations.
fn seconds(s: f32) -> String {
    if (s - s.round()).abs() < 0.05 {
        format!("{}초", s.round() as i64)
    } else {
        format!("{s:.1}초")
    }
}

/// A bar with its top corners rounded (it sits on top of a rounded cell).
fn top_rounded(r: Rect, radius: f32) -> Vec<crate::scene::Seg> {
    use crate::scene::Seg;
    let k = radius * (1.0 - 0.552_284_8);
    vec![
        Seg::Move(r.x, r.bottom()),
        Seg::Line(r.x, r.y + radius),
        Seg::Cubic(r.x, r.y + k, r.x + k, r.y, r.x + radius, r.y),
        Seg::Line(r.right() - radius, r.y),
        Seg::Cubic(
            r.right() - k,
            r.y,
            r.right(),
            r.y + k,
            r.right(),
            r.y + radius,
        ),
        Seg::Line(r.right(), r.bottom()),
        Seg::Close,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(n: usize) -> Storyboard {
        Storyboard {
            title: "t".into(),
            cuts: (0..n)
                .map(|_| Cut {
                    duration_s: 2.0,
                    ..Cut::default()
                })
                .collect(),
            ..Storyboard::default()
        }
    }

    #[test]
    fn cut_count_and_durations_are_validated() {
        let mut fonts = Fonts::new();
        for n in [0, 3, 9] {
            let e = sheet(&mut fonts, &board(n)).expect_err("out of range");
            assert!(e.to_string().starts_with("cuts:"), "{e}");
        }
        for n in 4..=8 {
            assert!(sheet(&mut fonts, &board(n)).is_ok());
        }
        let mut b = board(4);
        b.cuts[2].duration_s = f32::NAN;
        assert!(sheet(&mut fonts, &b)
            .expect_err("nan")
            .to_string()
            .starts_with("cuts[2].duration_s"));
    }

    #[test]
    fn grid_shapes() {
        assert_eq!(grid(4), (4, 1));
        assert_eq!(grid(5), (3, 2));
        assert_eq!(grid(6), (3, 2));
        assert_eq!(grid(7), (4, 2));
        assert_eq!(grid(8), (4, 2));
        assert_eq!(seconds(3.0), "3초");
        assert_eq!(seconds(2.5), "2.5초");
    }
}
