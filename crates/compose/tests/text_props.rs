//! Property tests of the typography layer: random Korean/English/emoji strings never put ink
//! outside their box and never split a word unless that word alone is wider than the box.
//!
//! Rendering runs with text clipping off, so the layout alone has to keep ink inside the box.

use std::collections::BTreeMap;

use atelier_compose::template::SlotKind;
use atelier_compose::text::MIN_LINE_HEIGHT;
use atelier_compose::ticket::Presets;
use atelier_compose::{
    Align, Face, Fonts, Layout, Op, RasterOptions, Rect, Rgba, Scene, TextStyle, VAlign,
};
use proptest::prelude::*;

const EMOJI: &[&str] = &["🎬", "😀", "❤️", "👍🏽", "🇰🇷", "👨‍👩‍👧", "✨", "🍿", "🌙", "☕"];

/// One token: a Korean word, an English word, digits, an emoji, punctuation or a long run.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(0xAC00u32..=0xD7A3, 1..7)
            .prop_map(|v| v.into_iter().filter_map(char::from_u32).collect::<String>()),
        2 => "[A-Za-z]{1,12}",
        1 => "[0-9]{1,6}([.:][0-9]{1,4})?",
        1 => prop::sample::select(EMOJI).prop_map(str::to_string),
        1 => prop::sample::select(&[",", ".", "!", "?", "(한강)", "—", "“인용”", "&"][..]).prop_map(str::to_string),
        1 => prop::collection::vec(0xAC00u32..=0xD7A3, 15..60)
            .prop_map(|v| v.into_iter().filter_map(char::from_u32).collect::<String>()),
    ]
}

/// Strings of 1–300 characters from tokens, joined by one or more spaces (sometimes none).
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            token(),
            prop_oneof![8 => Just(" "), 1 => Just("  "), 1 => Just("")],
        ),
        1..80,
    )
    .prop_map(|parts| {
        let mut s = String::new();
        for (t, sep) in parts {
            s.push_str(&t);
            s.push_str(sep);
        }
        let s: String = s.trim().chars().take(300).collect();
        if s.trim().is_empty() {
            "가".to_string()
        } else {
            s
        }
    })
}

/// Pixels with any alpha outside `rect` (rounded outward to whole pixels).
fn ink_outside(fonts: &mut Fonts, layout: &Layout, w: f32, h: f32) -> usize {
    let mut scene = Scene::new(w, h, Rgba([0, 0, 0, 0]));
    scene.ops.push(Op::Text(layout.clone()));
    let img = scene
        .render(
            fonts,
            RasterOptions {
                scale: 1.0,
                clip_text: false,
            },
        )
        .expect("render");
    let r = layout.rect;
    let (x0, y0, x1, y1) = (
        r.x.floor() as i64,
        r.y.floor() as i64,
        r.right().ceil() as i64,
        r.bottom().ceil() as i64,
    );
    img.enumerate_pixels()
        .filter(|(x, y, p)| {
            p.0[3] > 0
                && ((*x as i64) < x0 || (*y as i64) < y0 || (*x as i64) >= x1 || (*y as i64) >= y1)
        })
        .count()
}

/// Checks that every line is made of whole words, except pieces of a word wider than the box.
/// The last line of a truncated layout may end in a cut word plus "…".
fn words_kept_whole(
    fonts: &mut Fonts,
    text: &str,
    layout: &Layout,
    style: &TextStyle,
) -> Result<(), String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (mut wi, mut off) = (0usize, 0usize);
    let last = layout.lines.len().saturating_sub(1);
    for (li, line) in layout.lines.iter().enumerate() {
        for token in line.text.split_whitespace() {
            let token = if layout.truncated && li == last {
                token.trim_end_matches('…')
            } else {
                token
            };
            if token.is_empty() {
                continue;
            }
            let Some(word) = words.get(wi) else {
                return Err(format!("line {li} has extra text {token:?}"));
            };
            let rest = &word[off..];
            if !rest.starts_with(token) {
                return Err(format!(
                    "line {li}: {token:?} is not the next part of {word:?}"
                ));
            }
            let split = off > 0 || token.len() < rest.len();
            let truncated_tail = layout.truncated && li == last;
            if split && !truncated_tail {
                let width = fonts.measure(word, style.face, style.bold, layout.size);
                if width <= layout.inner_width {
                    return Err(format!(
                        "line {li}: split {word:?} (width {width:.1}) although it fits {:.1}",
                        layout.inner_width
                    ));
                }
            }
            if token.len() == rest.len() {
                wi += 1;
                off = 0;
            } else {
                off += token.len();
            }
        }
    }
    Ok(())
}

fn check(
    fonts: &mut Fonts,
    text: &str,
    rect: Rect,
    style: &TextStyle,
    canvas: (f32, f32),
) -> Result<(), TestCaseError> {
    let layout = fonts.layout(text, rect, style);
    let outside = ink_outside(fonts, &layout, canvas.0, canvas.1);
    prop_assert_eq!(
        outside,
        0,
        "{} pixels outside {:?} for {:?} at size {}",
        outside,
        rect,
        text,
        layout.size
    );
    for line in &layout.lines {
        prop_assert!(
            line.x + line.width <= rect.w + 1e-3,
            "line wider than box: {:?}",
            line.text
        );
    }
    prop_assert!(layout.lines.len() as f32 * layout.line_pitch <= rect.h + 1e-2);
    if style.max_lines > 0 {
        prop_assert!(layout.lines.len() <= style.max_lines as usize);
    }
    words_kept_whole(fonts, text, &layout, style).map_err(TestCaseError::fail)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// Every text slot of every bundled ticket preset.
    #[test]
    fn preset_text_slots_keep_ink_in_the_box(slot_pick in 0usize..10_000, text in text()) {
        thread_local!(static FONTS: std::cell::RefCell<Fonts> = std::cell::RefCell::new(Fonts::new()));
        let presets = Presets::builtin().expect("presets");
        let slots: Vec<_> = presets
            .iter()
            .flat_map(|p| p.slots.iter().filter(|s| s.kind == SlotKind::Text).map(move |s| (p, s)))
            .collect();
        let (preset, slot) = slots[slot_pick % slots.len()];
        let style = preset.text_style(slot, &BTreeMap::new()).expect("style");
        FONTS.with(|f| check(&mut f.borrow_mut(), &text, slot.content(), &style, (preset.size[0], preset.size[1])))?;
    }

    /// Arbitrary boxes, faces, sizes and alignments.
    #[test]
    fn any_box_keeps_ink_in_the_box(
        text in text(),
        w in 40.0f32..700.0,
        h in 20.0f32..500.0,
        max in 10.0f32..90.0,
        min_frac in 0.2f32..1.0,
        face in prop::sample::select(&[Face::Sans, Face::Serif, Face::Display][..]),
        bold: bool,
        align in prop::sample::select(&[Align::Left, Align::Center, Align::Right][..]),
        valign in prop::sample::select(&[VAlign::Top, VAlign::Middle, VAlign::Bottom][..]),
        max_lines in 0u32..5,
        lh in MIN_LINE_HEIGHT..1.8,
    ) {
        thread_local!(static FONTS: std::cell::RefCell<Fonts> = std::cell::RefCell::new(Fonts::new()));
        let style = TextStyle {
            face, bold, max_size: max, min_size: (max * min_frac).max(6.0).min(max),
            line_height: lh, color: Rgba::BLACK, align, valign, max_lines,
        };
        let rect = Rect::new(17.3, 11.6, w, h);
        FONTS.with(|f| check(&mut f.borrow_mut(), &text, rect, &style, (w + 40.0, h + 30.0)))?;
    }
}
