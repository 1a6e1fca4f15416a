//! The bundled fonts and the text system that shapes with them.
//!
//! Only bundled fonts are loaded, never the host's: a ticket must look the same on a laptop and on a
//! fleet worker, and golden tests must not depend on what a machine happens to have installed.

use std::collections::HashMap;
use std::sync::Arc;

use cosmic_text::fontdb;
use cosmic_text::{
    Attrs, Buffer, Family, FontSystem, LayoutGlyph, Metrics, Shaping, SwashCache, Weight, Wrap,
};
use serde::{Deserialize, Serialize};

/// One bundled font file: name, bytes. All are SIL OFL 1.1 (see `fonts/COPYRIGHT.*`).
const FONT_FILES: &[(&str, &[u8])] = &[
    (
        "NanumSquareR.ttf",
        include_bytes!("../fonts/NanumSquareR.ttf"),
    ),
    (
        "NanumSquareB.ttf",
        include_bytes!("../fonts/NanumSquareB.ttf"),
    ),
    (
        "NanumMyeongjo.ttf",
        include_bytes!("../fonts/NanumMyeongjo.ttf"),
    ),
    (
        "NanumMyeongjoBold.ttf",
        include_bytes!("../fonts/NanumMyeongjoBold.ttf"),
    ),
    (
        "NanumSquareRoundB.ttf",
        include_bytes!("../fonts/NanumSquareRoundB.ttf"),
    ),
    (
        "NotoColorEmoji.ttf",
        include_bytes!("../fonts/NotoColorEmoji.ttf"),
    ),
];

/// A typeface choice by role, so presets name a look rather than a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Face {
    /// NanumSquare: a clean geometric sans for body copy and labels.
    #[default]
    Sans,
    /// NanumMyeongjo: a serif for titles with a cinematic feel.
    Serif,
    /// NanumSquareRound (bold only): a rounded display face for comics and playful titles.
    Display,
}

impl Face {
    /// The bundled family that plays this role.
    pub fn family(self) -> &'static str {
        match self {
            Face::Sans => "NanumSquare",
            Face::Serif => "NanumMyeongjo",
            Face::Display => "NanumSquareRound",
        }
    }
}

/// Where a shaped line puts ink, relative to its origin (x along the line, y up from the baseline).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ink {
    /// Leftmost ink (negative when a glyph such as "j" hangs left of the origin).
    pub left: f32,
    /// Rightmost ink.
    pub right: f32,
    /// Highest ink above the baseline.
    pub above: f32,
    /// Lowest ink below the baseline (positive down).
    pub below: f32,
}

/// One line shaped at one size: its advance width, baseline offset and glyphs.
#[derive(Clone, Debug)]
pub struct Shaped {
    /// Advance width in layout units.
    pub width: f32,
    /// Ink extents from the glyph outlines (bitmap emoji: their font's ascent/descent box).
    pub ink: Ink,
    /// Distance from the top of the line box to the baseline.
    pub baseline: f32,
    /// Positioned glyphs (x relative to the line start).
    pub glyphs: Vec<LayoutGlyph>,
}

/// The text system: bundled fonts, a shaper and a glyph rasteriser cache.
///
/// Not `Sync`: each thread that renders owns one (creating it parses the bundled fonts once).
pub struct Fonts {
    pub(crate) system: FontSystem,
    pub(crate) cache: SwashCache,
    buffer: Buffer,
    bytes: HashMap<fontdb::ID, (&'static [u8], u32)>,
    parsed: HashMap<fontdb::ID, Option<ttf_parser::Face<'static>>>,
}

impl std::fmt::Debug for Fonts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fonts")
            .field("faces", &self.bytes.len())
            .finish()
    }
}

impl Default for Fonts {
    fn default() -> Self {
        Self::new()
    }
}

impl Fonts {
    /// Loads the bundled fonts (and nothing from the host).
    pub fn new() -> Self {
        let mut db = fontdb::Database::new();
        let mut bytes = HashMap::new();
        for (_, data) in FONT_FILES {
            let ids = db.load_font_source(fontdb::Source::Binary(Arc::new(*data)));
            for id in ids {
                let index = db.face(id).map(|f| f.index).unwrap_or(0);
                bytes.insert(id, (*data, index));
            }
        }
        db.set_sans_serif_family(Face::Sans.family());
        db.set_serif_family(Face::Serif.family());
        let mut system = FontSystem::new_with_locale_and_db("ko-KR".to_string(), db);
        let buffer = Buffer::new(&mut system, Metrics::new(16.0, 20.0));
        Self {
            system,
            cache: SwashCache::new(),
            buffer,
            bytes,
            parsed: HashMap::new(),
        }
    }

    /// The names of the bundled font files (for `--help` texts and docs).
    pub fn bundled() -> impl Iterator<Item = &'static str> {
        FONT_FILES.iter().map(|(name, _)| *name)
    }

    /// The bytes of a bundled font file by name (the web UI serves the Korean faces so Hangul
    /// looks the same on every browser, with or without Korean system fonts).
    pub fn bundled_file(name: &str) -> Option<&'static [u8]> {
        FONT_FILES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
    }

    /// Raw bytes and collection index of a loaded face (the PDF writer embeds them).
    pub fn face_data(&self, id: fontdb::ID) -> Option<(&'static [u8], u32)> {
        self.bytes.get(&id).copied()
    }

    /// Shapes `text` as a single line (no wrapping) with font fallback.
    pub fn shape(
        &mut self,
        text: &str,
        face: Face,
        bold: bool,
        size: f32,
        line_height: f32,
    ) -> Shaped {
        let attrs = Attrs::new()
            .family(Family::Name(face.family()))
            .weight(if bold { Weight::BOLD } else { Weight::NORMAL });
        self.buffer.set_metrics(Metrics::new(size, line_height));
        self.buffer.set_wrap(Wrap::None);
        self.buffer.set_size(None, None);
        self.buffer.set_text(text, &attrs, Shaping::Advanced, None);
        self.buffer.shape_until_scroll(&mut self.system, false);
        let mut out = Shaped {
            width: 0.0,
            ink: Ink::default(),
            baseline: size,
            glyphs: Vec::new(),
        };
        if let Some(run) = self.buffer.layout_runs().next() {
            out.width = run.line_w;
            out.baseline = run.line_y - run.line_top;
            out.glyphs = run.glyphs.to_vec();
        }
        out.ink = self.ink(&out.glyphs);
        out
    }

    /// Ink extents of shaped glyphs from their outlines' bounding boxes.
    fn ink(&mut self, glyphs: &[LayoutGlyph]) -> Ink {
        let mut ink = Ink {
            left: f32::MAX,
            right: f32::MIN,
            above: 0.0,
            below: 0.0,
        };
        for g in glyphs {
            let bytes = &self.bytes;
            let face = self.parsed.entry(g.font_id).or_insert_with(|| {
                bytes
                    .get(&g.font_id)
                    .and_then(|(d, i)| ttf_parser::Face::parse(d, *i).ok())
            });
            let x = g.x + g.x_offset * g.font_size;
            let y = g.y_offset * g.font_size;
            let Some(face) = face.as_ref() else {
                ink.left = ink.left.min(x);
                ink.right = ink.right.max(x + g.w);
                ink.above = ink.above.max(g.font_size + y);
                ink.below = ink.below.max(g.font_size * 0.3 - y);
                continue;
            };
            let s = g.font_size / face.units_per_em().max(1) as f32;
            match face.glyph_bounding_box(ttf_parser::GlyphId(g.glyph_id)) {
                Some(b) => {
                    ink.left = ink.left.min(x + b.x_min as f32 * s);
                    ink.right = ink.right.max(x + b.x_max as f32 * s);
                    ink.above = ink.above.max(b.y_max as f32 * s + y);
                    ink.below = ink.below.max(-(b.y_min as f32) * s - y);
                }
                // Bitmap glyphs (colour emoji) fill their advance and the font's ascent/descent.
                None if face
                    .glyph_raster_image(ttf_parser::GlyphId(g.glyph_id), u16::MAX)
                    .is_some() =>
                {
                    ink.left = ink.left.min(x);
                    ink.right = ink.right.max(x + g.w);
                    ink.above = ink.above.max(face.ascender() as f32 * s + y);
                    ink.below = ink.below.max(-(face.descender() as f32) * s - y);
                }
                // Spaces and other empty glyphs.
                None => {}
            }
        }
        if ink.left > ink.right {
            ink.left = 0.0;
            ink.right = 0.0;
        }
        ink
    }

    /// Width `text` needs on one line: its advance, widened by ink that overhangs either end.
    pub fn measure(&mut self, text: &str, face: Face, bold: bool, size: f32) -> f32 {
        let s = self.shape(text, face, bold, size, size * 1.3);
        s.width.max(s.ink.right) - s.ink.left.min(0.0)
    }
}
