//! The visible "AI 생성" / "AI-generated" label: a rounded badge in a corner, sized relative
//! to the image, drawn with a bundled OFL font (NanumSquare Bold) so Hangul renders anywhere.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use serde::{Deserialize, Serialize};

use crate::ProvenanceError;

/// The bundled label font (SIL OFL 1.1; licence in `assets/fonts/`).
pub const FONT: &[u8] = include_bytes!("../../../assets/fonts/NanumSquareB.ttf");

/// Where the label goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    #[default]
    BottomRight,
}

/// Label settings; the compose presets reuse these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LabelSpec {
    /// The text; Korean by default as the AI Basic Act's audience reads it.
    pub text: String,
    pub position: Corner,
    /// Text height as a fraction of the image's short side (0.01–0.2).
    pub size: f32,
    /// Text colour, `#rrggbb`.
    pub color: String,
    /// Badge colour, `#rrggbb`, drawn at `opacity`.
    pub background: String,
    pub opacity: f32,
}

impl Default for LabelSpec {
    fn default() -> Self {
        Self {
            text: "AI 생성".into(),
            position: Corner::BottomRight,
            size: 0.035,
            color: "#ffffff".into(),
            background: "#000000".into(),
            opacity: 0.6,
        }
    }
}

fn parse_hex(field: &str, s: &str) -> Result<[f32; 3], ProvenanceError> {
    let h = s.strip_prefix('#').unwrap_or(s);
    let bad = || ProvenanceError::Label {
        field: field.into(),
        message: format!("{s:?} is not a #rrggbb colour"),
    };
    if h.len() != 6 || !h.is_ascii() {
        return Err(bad());
    }
    let c = |i: usize| {
        u8::from_str_radix(&h[i..i + 2], 16)
            .map(f32::from)
            .map_err(|_| bad())
    };
    Ok([c(0)?, c(2)?, c(4)?])
}

impl LabelSpec {
    /// Checks every field, naming the bad one.
    pub fn validate(&self) -> Result<(), ProvenanceError> {
        let bad = |field: &str, message: &str| ProvenanceError::Label {
            field: field.into(),
            message: message.into(),
        };
        if self.text.trim().is_empty() || self.text.chars().count() > 40 {
            return Err(bad("text", "must be 1 to 40 characters"));
        }
        if !(0.01..=0.2).contains(&self.size) {
            return Err(bad("size", "must be between 0.01 and 0.2"));
        }
        if !(0.0..=1.0).contains(&self.opacity) {
            return Err(bad("opacity", "must be between 0 and 1"));
        }
        parse_hex("color", &self.color)?;
        parse_hex("background", &self.background)?;
        let font = FontRef::try_from_slice(FONT).map_err(|e| bad("text", &e.to_string()))?;
        if let Some(c) = self
            .text
            .chars()
            .find(|c| !c.is_whitespace() && font.glyph_id(*c).0 == 0)
        {
            return Err(bad(
                "text",
                &format!("the label font has no glyph for {c:?}"),
            ));
        }
        Ok(())
    }

    /// Draws the label onto an RGB image in place.
    pub fn draw(&self, rgb: &mut [u8], width: usize, height: usize) -> Result<(), ProvenanceError> {
        self.validate()?;
        let font = FontRef::try_from_slice(FONT).map_err(|e| ProvenanceError::Label {
            field: "font".into(),
            message: e.to_string(),
        })?;
        let fg = parse_hex("color", &self.color)?;
        let bg = parse_hex("background", &self.background)?;
        let px = (width.min(height) as f32 * self.size).max(9.0);
        let scaled = font.as_scaled(PxScale::from(px));
        let mut pen = 0f32;
        let mut glyphs = Vec::new();
        let mut prev = None;
        for c in self.text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                pen += scaled.kern(p, id);
            }
            glyphs.push(id.with_scale_and_position(px, ab_glyph::point(pen, scaled.ascent())));
            pen += scaled.h_advance(id);
            prev = Some(id);
        }
        let pad = (px * 0.4).round();
        let text_h = scaled.ascent() - scaled.descent();
        let bw = (pen + 2.0 * pad).ceil() as usize;
        let bh = (text_h + 2.0 * pad * 0.75).ceil() as usize;
        let margin = (width.min(height) as f32 * 0.02).round() as usize;
        if bw + 2 * margin > width || bh + 2 * margin > height {
            return Err(ProvenanceError::Label {
                field: "size".into(),
                message: format!("a {bw}x{bh} label does not fit a {width}x{height} image"),
            });
        }
        let x0 = match self.position {
            Corner::TopLeft | Corner::BottomLeft => margin,
            _ => width - margin - bw,
        };
        let y0 = match self.position {
            Corner::TopLeft | Corner::TopRight => margin,
            _ => height - margin - bh,
        };
        let radius = (bh as f32 * 0.3).max(1.0);
        let mut blend = |x: usize, y: usize, c: &[f32; 3], a: f32| {
            let i = (y * width + x) * 3;
            for k in 0..3 {
                let v = rgb[i + k] as f32 * (1.0 - a) + c[k] * a;
                rgb[i + k] = v.round().clamp(0.0, 255.0) as u8;
            }
        };
        for y in 0..bh {
            for x in 0..bw {
                // Rounded corners: distance to the corner circle's centre.
                let cx = (x as f32 + 0.5).clamp(radius, bw as f32 - radius);
                let cy = (y as f32 + 0.5).clamp(radius, bh as f32 - radius);
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                let cover = (radius - d + 0.5).clamp(0.0, 1.0);
                if cover > 0.0 {
                    blend(x0 + x, y0 + y, &bg, self.opacity * cover);
                }
            }
        }
        let ox = x0 as f32 + pad;
        let oy = y0 as f32 + pad * 0.75;
        for g in glyphs {
            if let Some(outline) = font.outline_glyph(g) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, cov| {
                    let x = (ox + b.min.x + gx as f32) as isize;
                    let y = (oy + b.min.y + gy as f32) as isize;
                    if x >= 0
                        && y >= 0
                        && (x as usize) < width
                        && (y as usize) < height
                        && cov > 0.0
                    {
                        blend(x as usize, y as usize, &fg, cov.min(1.0));
                    }
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_korean_label_in_the_chosen_corner() {
        let (w, h) = (256, 192);
        let mut img = vec![200u8; w * h * 3];
        LabelSpec::default().draw(&mut img, w, h).expect("draws");
        let changed = |x0: usize, x1: usize, y0: usize, y1: usize| {
            (y0..y1).any(|y| (x0..x1).any(|x| img[(y * w + x) * 3] != 200))
        };
        assert!(changed(w / 2, w, h / 2, h), "bottom-right untouched");
        assert!(!changed(0, w / 2, 0, h / 2), "top-left touched");
        // Dark badge with light text: both extremes present.
        let px: Vec<u8> = img.chunks(3).map(|p| p[0]).collect();
        assert!(px.iter().any(|&v| v < 110) && px.iter().any(|&v| v > 230));
    }

    #[test]
    fn bad_specs_name_the_field() {
        let s = LabelSpec {
            size: 0.5,
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("size"));
        let s = LabelSpec {
            color: "red".into(),
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("color"));
        let mut img = vec![0u8; 20 * 20 * 3];
        assert!(LabelSpec::default().draw(&mut img, 20, 20).is_err());
    }
}
