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

/// One line shaped at one size: its advance width, baseline offset and glyphs.
#[derive(Clone, Debug)]
pub struct Shaped {
    /// Advance width in layout units.
    pub width: f32,
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
        }
    }

    /// The names of the bundled font files (for `--help` texts and docs).
    pub fn bundled() -> impl Iterator<Item = &'static str> {
        FONT_FILES.iter().map(|(name, _)| *name)
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
            baseline: size,
            glyphs: Vec::new(),
        };
        if let Some(run) = self.buffer.layout_runs().next() {
            out.width = run.line_w;
            out.baseline = run.line_y - run.line_top;
            out.glyphs = run.glyphs.to_vec();
        }
        out
    }

    /// Advance width of `text` on one line.
    pub fn measure(&mut self, text: &str, face: Face, bold: bool, size: f32) -> f32 {
        self.shape(text, face, bold, size, size * 1.3).width
    }
}
