//! Fitting text into a box: Korean-aware line breaking, auto-fit and ellipsis.
//!
//! Korean typesetting keeps words (어절) whole and breaks at spaces, unlike the UAX #14 default that
//! allows a break between any two Hangul syllables. We break at spaces for every script, and split
//! a word between grapheme clusters only when that word alone is wider than the box. Auto-fit tries
//! sizes from the style's maximum down to its minimum; at the minimum, lines that do not fit are
//! dropped and the last kept line ends in an ellipsis. The layout never extends past its box.

use cosmic_text::LayoutGlyph;
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use crate::fonts::{Face, Fonts};
use crate::geom::{Rect, Rgba};

/// Horizontal alignment of each line within its box.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Align {
    /// Flush left.
    #[default]
    Left,
    /// Centred.
    Center,
    /// Flush right.
    Right,
}

/// Vertical placement of the block of lines within its box.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VAlign {
    /// At the top.
    #[default]
    Top,
    /// Centred.
    Middle,
    /// At the bottom.
    Bottom,
}

/// How a text slot looks and how far it may shrink.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextStyle {
    /// Typeface role.
    pub face: Face,
    /// Bold weight.
    pub bold: bool,
    /// Largest size tried first (layout units: pixels for raster presets, points for PDF sheets).
    pub max_size: f32,
    /// Smallest size before lines are dropped with an ellipsis.
    pub min_size: f32,
    /// Line pitch as a multiple of the size; at least 1.25 so emoji and accents stay inside.
    pub line_height: f32,
    /// Text colour.
    pub color: Rgba,
    /// Horizontal alignment.
    pub align: Align,
    /// Vertical alignment.
    pub valign: VAlign,
    /// At most this many lines (0 = as many as fit).
    pub max_lines: u32,
}

impl Default for TextStyle {
    fn default() -> Self {
        Self {
            face: Face::Sans,
            bold: false,
            max_size: 32.0,
            min_size: 12.0,
            line_height: 1.3,
            color: Rgba::BLACK,
            align: Align::Left,
            valign: VAlign::Top,
            max_lines: 0,
        }
    }
}

/// `s` trimmed, or `None` when it is absent or blank: optional copy (captions, labels, balloons)
/// draws nothing rather than an empty box.
pub fn nonblank(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// The smallest line pitch we accept: Noto Color Emoji's ascent + descent is 1.2 em.
pub const MIN_LINE_HEIGHT: f32 = 1.25;
const ELLIPSIS: &str = "…";

/// One laid-out line.
#[derive(Clone, Debug)]
pub struct Line {
    /// The characters on this line (the ellipsis included when truncated).
    pub text: String,
    /// Offset of the line start from the box's left edge.
    pub x: f32,
    /// Offset of the baseline from the box's top edge.
    pub baseline: f32,
    /// Advance width.
    pub width: f32,
    /// Shaped glyphs, x relative to the line start.
    pub glyphs: Vec<LayoutGlyph>,
}

/// Text fitted into a box: what the renderers draw.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The box the text was fitted into.
    pub rect: Rect,
    /// The chosen size.
    pub size: f32,
    /// Line pitch at that size.
    pub line_pitch: f32,
    /// Width available to lines (the box less a small inset for glyph overhangs).
    pub inner_width: f32,
    /// Lines, top to bottom.
    pub lines: Vec<Line>,
    /// Whether text was dropped and an ellipsis added.
    pub truncated: bool,
    /// Colour to draw with.
    pub color: Rgba,
}

/// Horizontal inset on each side, so side bearings of italic or wide glyphs stay in the box.
fn inset(size: f32) -> f32 {
    (size * 0.06).max(1.0)
}

/// Sizes to try, largest first: ~5% steps, ending exactly at `min`.
fn candidate_sizes(max: f32, min: f32) -> Vec<f32> {
    let mut sizes = Vec::new();
    let mut s = max;
    while s > min + 0.01 {
        sizes.push(s);
        s = (s * 0.95).min(s - 0.5);
    }
    sizes.push(min);
    sizes
}

impl Fonts {
    /// Fits `text` into `rect` with `style`. Never fails: an empty string gives no lines, and a box
    /// too small even for one line at the minimum size gets a smaller size that fits its height.
    pub fn layout(&mut self, text: &str, rect: Rect, style: &TextStyle) -> Layout {
        let lh_mult = style.line_height.max(MIN_LINE_HEIGHT);
        let max = style.max_size.max(1.0);
        let min = style.min_size.clamp(1.0, max);
        let text = text.trim();
        for size in candidate_sizes(max, min) {
            let pitch = size * lh_mult;
            let width = rect.w - 2.0 * inset(size);
            if width <= 0.0 {
                continue;
            }
            let (lines, all_fit) = self.break_lines(text, style, size, width);
            let allowed = self.allowed_lines(rect.h, pitch, style.max_lines);
            if all_fit && lines.len() <= allowed {
                if let Some(l) = self.place(&lines, rect, style, size, lh_mult, false) {
                    return l;
                }
            }
        }
        // At the minimum size (or smaller when even one line would not fit the box): drop lines,
        // end the last in an ellipsis, and shrink further only if the ink still does not fit.
        let mut size = min.min(rect.h / lh_mult).min(rect.w / 2.0);
        while size >= 1.0 {
            let width = rect.w - 2.0 * inset(size);
            let (mut lines, all_fit) = self.break_lines(text, style, size, width);
            let allowed = self.allowed_lines(rect.h, size * lh_mult, style.max_lines);
            let mut truncated = false;
            if all_fit && lines.len() > allowed && allowed > 0 {
                lines.truncate(allowed);
                let last = lines.pop().unwrap_or_default();
                match self.ellipsize(&last, style, size, width) {
                    Some(l) => lines.push(l),
                    None => lines.clear(),
                }
                truncated = true;
            }
            if all_fit && !lines.is_empty() && lines.len() <= allowed {
                if let Some(l) = self.place(&lines, rect, style, size, lh_mult, truncated) {
                    return l;
                }
            }
            // A single grapheme wider than the box, or ink taller than it: try smaller.
            size = if size > 1.0 {
                (size * 0.9).max(1.0)
            } else {
                0.0
            };
        }
        Layout::empty(rect, style.color)
    }

    fn allowed_lines(&self, height: f32, pitch: f32, max_lines: u32) -> usize {
        let by_height = ((height + 1e-3) / pitch).floor().max(0.0) as usize;
        if max_lines == 0 {
            by_height
        } else {
            by_height.min(max_lines as usize)
        }
    }

    fn fits(&mut self, text: &str, style: &TextStyle, size: f32, width: f32) -> bool {
        self.measure(text, style.face, style.bold, size) <= width
    }

    /// Greedy keep-all line breaking at `size` within `width`; the flag is false when some single
    /// grapheme cluster is wider than `width` on its own.
    pub fn break_lines(
        &mut self,
        text: &str,
        style: &TextStyle,
        size: f32,
        width: f32,
    ) -> (Vec<String>, bool) {
        let mut out = Vec::new();
        let mut all_fit = true;
        for paragraph in text.split('\n') {
            let mut current = String::new();
            for word in paragraph.split_whitespace() {
                if !current.is_empty() {
                    let candidate = format!("{current} {word}");
                    if self.fits(&candidate, style, size, width) {
                        current = candidate;
                        continue;
                    }
                    out.push(std::mem::take(&mut current));
                }
                if self.fits(word, style, size, width) {
                    current = word.to_string();
                    continue;
                }
                // The word alone is wider than the box: split between grapheme clusters.
                let graphemes: Vec<&str> = word.graphemes(true).collect();
                let mut start = 0;
                while start < graphemes.len() {
                    // Longest prefix that fits (at least one grapheme), by binary search.
                    let (mut lo, mut hi) = (start + 1, graphemes.len());
                    while lo < hi {
                        let mid = (lo + hi).div_ceil(2);
                        if self.fits(&graphemes[start..mid].concat(), style, size, width) {
                            lo = mid;
                        } else {
                            hi = mid - 1;
                        }
                    }
                    let piece = graphemes[start..lo].concat();
                    if lo == start + 1 && !self.fits(&piece, style, size, width) {
                        all_fit = false;
                    }
                    start = lo;
                    if start < graphemes.len() {
                        out.push(piece);
                    } else {
                        current = piece;
                    }
                }
            }
            out.push(current);
        }
        // Blank paragraphs in the middle are kept (they are intentional spacing); trailing ones are not.
        while out.last().is_some_and(|l| l.is_empty()) {
            out.pop();
        }
        (out, all_fit)
    }

    /// `line` shortened to end in an ellipsis within `width`, or `None` if not even "…" fits.
    fn ellipsize(
        &mut self,
        line: &str,
        style: &TextStyle,
        size: f32,
        width: f32,
    ) -> Option<String> {
        let mut graphemes: Vec<&str> = line.graphemes(true).collect();
        loop {
            let head = graphemes.concat();
            let candidate = format!("{}{ELLIPSIS}", head.trim_end());
            if self.fits(&candidate, style, size, width) {
                return Some(candidate);
            }
            graphemes.pop()?;
        }
    }

    /// Positions lines in the box so their ink, not just their advance, stays inside it; `None`
    /// when the ink is taller than the box.
    fn place(
        &mut self,
        lines: &[String],
        rect: Rect,
        style: &TextStyle,
        size: f32,
        lh: f32,
        truncated: bool,
    ) -> Option<Layout> {
        let pitch = size * lh;
        let pad = inset(size);
        let inner_width = rect.w - 2.0 * pad;
        let block = pitch * lines.len() as f32;
        let top = match style.valign {
            VAlign::Top => 0.0,
            VAlign::Middle => ((rect.h - block) / 2.0).max(0.0),
            VAlign::Bottom => (rect.h - block).max(0.0),
        };
        let mut out = Vec::with_capacity(lines.len());
        let (mut ink_top, mut ink_bottom) = (f32::MAX, f32::MIN);
        for (i, text) in lines.iter().enumerate() {
            let shaped = self.shape(text, style.face, style.bold, size, pitch);
            let left = shaped.ink.left.min(0.0);
            let extent = shaped.width.max(shaped.ink.right) - left;
            let free = (inner_width - extent).max(0.0);
            let x = pad - left
                + match style.align {
                    Align::Left => 0.0,
                    Align::Center => free / 2.0,
                    Align::Right => free,
                };
            let baseline = top + pitch * i as f32 + shaped.baseline;
            ink_top = ink_top.min(baseline - shaped.ink.above);
            ink_bottom = ink_bottom.max(baseline + shaped.ink.below);
            out.push(Line {
                text: text.clone(),
                x,
                baseline,
                width: shaped.width,
                glyphs: shaped.glyphs,
            });
        }
        // Keep a pixel of margin for antialiasing and vertical hinting.
        let margin = 1.0;
        if !out.is_empty() && ink_bottom - ink_top > rect.h - 2.0 * margin {
            return None;
        }
        let shift = if out.is_empty() {
            0.0
        } else if ink_top < margin {
            margin - ink_top
        } else if ink_bottom > rect.h - margin {
            rect.h - margin - ink_bottom
        } else {
            0.0
        };
        for line in &mut out {
            line.baseline += shift;
        }
        Some(Layout {
            rect,
            size,
            line_pitch: pitch,
            inner_width,
            lines: out,
            truncated,
            color: style.color,
        })
    }
}

impl Layout {
    fn empty(rect: Rect, color: Rgba) -> Self {
        Layout {
            rect,
            size: 0.0,
            line_pitch: 0.0,
            inner_width: 0.0,
            lines: Vec::new(),
            truncated: true,
            color,
        }
    }

    /// All laid-out text joined with newlines (for tests and accessibility text).
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(max: f32, min: f32) -> TextStyle {
        TextStyle {
            max_size: max,
            min_size: min,
            ..TextStyle::default()
        }
    }

    #[test]
    fn korean_breaks_at_spaces_not_between_syllables() {
        let mut fonts = Fonts::new();
        let text = "오늘은 친구들과 한강에서 자전거를 탔다";
        let l = fonts.layout(text, Rect::new(0.0, 0.0, 200.0, 400.0), &style(24.0, 24.0));
        assert!(l.lines.len() > 1, "{:?}", l.text());
        let words: Vec<&str> = text.split(' ').collect();
        for line in &l.lines {
            for token in line.text.split(' ') {
                assert!(words.contains(&token), "line {:?} split a word", line.text);
            }
        }
    }

    #[test]
    fn shrinks_before_breaking_and_ellipsizes_at_min() {
        let mut fonts = Fonts::new();
        let r = Rect::new(0.0, 0.0, 300.0, 50.0);
        let l = fonts.layout("가나다라 마바사", r, &style(60.0, 10.0));
        assert!(l.size < 60.0 && l.lines.len() == 1 && !l.truncated, "{l:?}");
        let long = "아주 긴 문장이 여기 있습니다 ".repeat(20);
        let l = fonts.layout(&long, r, &style(30.0, 20.0));
        assert!(l.truncated);
        assert!(l.lines.last().is_some_and(|x| x.text.ends_with('…')));
        assert_eq!(l.size, 20.0);
    }

    #[test]
    fn an_overlong_word_is_split_between_syllables() {
        let mut fonts = Fonts::new();
        let word = "가".repeat(40);
        let l = fonts.layout(
            &word,
            Rect::new(0.0, 0.0, 100.0, 1000.0),
            &style(20.0, 20.0),
        );
        assert!(l.lines.len() > 1);
        assert_eq!(
            l.lines.iter().map(|x| x.text.clone()).collect::<String>(),
            word
        );
        for line in &l.lines {
            assert!(line.width <= l.inner_width + 1e-3);
        }
    }

    #[test]
    fn max_lines_is_respected() {
        let mut fonts = Fonts::new();
        let st = TextStyle {
            max_lines: 1,
            ..style(20.0, 20.0)
        };
        let l = fonts.layout(
            "one two three four five six seven",
            Rect::new(0.0, 0.0, 120.0, 500.0),
            &st,
        );
        assert_eq!(l.lines.len(), 1);
        assert!(l.truncated);
    }
}
