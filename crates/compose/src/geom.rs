//! Boxes and colours shared by layouts, presets and renderers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An axis-aligned box in layout units (pixels for raster presets, points for PDF sheets).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Rect {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl Rect {
    /// A box from its left, top, width and height.
    pub const fn new(x: f32, y: f32, w: f32, h: f32) -> Self {
        Self { x, y, w, h }
    }

    /// Right edge.
    pub fn right(&self) -> f32 {
        self.x + self.w
    }

    /// Bottom edge.
    pub fn bottom(&self) -> f32 {
        self.y + self.h
    }

    /// The box shrunk by `d` on every side (never below zero size).
    pub fn inset(&self, d: f32) -> Rect {
        Rect::new(
            self.x + d,
            self.y + d,
            (self.w - 2.0 * d).max(0.0),
            (self.h - 2.0 * d).max(0.0),
        )
    }

    /// Aspect ratio width / height.
    pub fn aspect(&self) -> f32 {
        if self.h > 0.0 {
            self.w / self.h
        } else {
            1.0
        }
    }
}

// Presets write boxes as `[x, y, w, h]`.
impl Serialize for Rect {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        [self.x, self.y, self.w, self.h].serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let [x, y, w, h] = <[f32; 4]>::deserialize(d)?;
        if !(w >= 0.0
            && h >= 0.0
            && x.is_finite()
            && y.is_finite()
            && w.is_finite()
            && h.is_finite())
        {
            return Err(serde::de::Error::custom(
                "a box is [x, y, width, height] with width, height >= 0",
            ));
        }
        Ok(Rect::new(x, y, w, h))
    }
}

/// A straight (not premultiplied) RGBA colour, written `#rrggbb` or `#rrggbbaa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgba(pub [u8; 4]);

impl Rgba {
    /// Opaque black.
    pub const BLACK: Rgba = Rgba([0, 0, 0, 255]);
    /// Opaque white.
    pub const WHITE: Rgba = Rgba([255, 255, 255, 255]);

    /// An opaque colour.
    pub const fn rgb(r: u8, g: u8, b: u8) -> Self {
        Rgba([r, g, b, 255])
    }

    /// The same colour with alpha `a`.
    pub const fn with_alpha(self, a: u8) -> Self {
        Rgba([self.0[0], self.0[1], self.0[2], a])
    }

    /// Relative luminance in 0..1 (sRGB weights; good enough to pick black or white ink).
    pub fn luma(&self) -> f32 {
        (0.2126 * self.0[0] as f32 + 0.7152 * self.0[1] as f32 + 0.0722 * self.0[2] as f32) / 255.0
    }

    pub(crate) fn skia(&self) -> tiny_skia::Color {
        tiny_skia::Color::from_rgba8(self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

/// A colour string that is not `#rgb`, `#rrggbb` or `#rrggbbaa`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0:?} is not a colour: use #rrggbb or #rrggbbaa")]
pub struct BadColor(pub String);

impl FromStr for Rgba {
    type Err = BadColor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadColor(s.to_string());
        let hex = s.trim().strip_prefix('#').ok_or_else(bad)?;
        if !hex.is_ascii() {
            return Err(bad());
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
        match hex.len() {
            3 => {
                let d = |i: usize| {
                    u8::from_str_radix(&hex[i..i + 1], 16)
                        .map(|v| v * 17)
                        .map_err(|_| bad())
                };
                Ok(Rgba([d(0)?, d(1)?, d(2)?, 255]))
            }
            6 => Ok(Rgba([byte(0)?, byte(2)?, byte(4)?, 255])),
            8 => Ok(Rgba([byte(0)?, byte(2)?, byte(4)?, byte(6)?])),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Rgba {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b, a] = self.0;
        if a == 255 {
            write!(f, "#{r:02x}{g:02x}{b:02x}")
        } else {
            write!(f, "#{r:02x}{g:02x}{b:02x}{a:02x}")
        }
    }
}

impl Serialize for Rgba {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rgba {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_and_print() {
        assert_eq!(
            "#ff8000".parse::<Rgba>().ok(),
            Some(Rgba([255, 128, 0, 255]))
        );
        assert_eq!("#fff".parse::<Rgba>().ok(), Some(Rgba::WHITE));
        assert_eq!(
            "#00000080"
                .parse::<Rgba>()
                .map(|c| c.to_string())
                .ok()
                .as_deref(),
            Some("#00000080")
        );
        assert!("red".parse::<Rgba>().is_err());
        assert!("#gg0000".parse::<Rgba>().is_err());
        assert!("#한국".parse::<Rgba>().is_err());
    }
}
