//! Fuzz targets: one function per parser that takes bytes from outside (API bodies, uploads,
//! model folders, template files). Each must return a typed error on bad input and never
//! panic, hang or allocate without bound; the few invariants that hold for every input are
//! asserted too. `fuzz/` runs them under libFuzzer (`bench/fuzz.sh`); `tests/corpus.rs`
//! replays the committed corpus and every crash reproducer through the same functions in CI.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use atelier_workflows::tickets::csv;
use serde_json::Value;

/// Every target by name, for the replay test and the runner script.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("job_input", job_input),
    ("csv_batch", csv_batch),
    ("image_upload", image_upload),
    ("safetensors_header", safetensors_header),
    ("gguf", gguf),
    ("model_config", model_config),
    ("preset", preset),
    ("prompt_screen", prompt_screen),
];

/// Inputs longer than this are cut: parsers are bounded by the API's body limits anyway, and
/// long inputs only slow the search.
const MAX_INPUT: usize = 1 << 20;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Job inputs as JSON: the text-to-image app's validation (against the installed tiny model),
/// a photo-ticket campaign spec, and a storyboard brief.
pub fn job_input(data: &[u8]) {
    static APP: OnceLock<Option<atelier_workflows::TextToImage>> = OnceLock::new();
    let Ok(v) = serde_json::from_slice::<Value>(&data[..data.len().min(MAX_INPUT)]) else {
        return;
    };
    let app = APP.get_or_init(|| {
        let models = atelier_workflows::ModelRegistry::new(
            vec![fixtures()],
            atelier_engine::LoadOptions::default(),
            1,
        );
        let guard = atelier_workflows::Guard::new(Default::default(), None, 1).ok()?;
        Some(atelier_workflows::TextToImage::new(
            std::sync::Arc::new(models),
            std::sync::Arc::new(guard),
        ))
    });
    if let Some(app) = app {
        use atelier_platform::App;
        if let Ok(valid) = app.validate(&v) {
            // What validation fills in (seed, size) must itself validate: retries replay it.
            let again = app.validate(&valid);
            assert!(
                again.is_ok(),
                "validated input {valid} fails validation: {again:?}"
            );
        }
    }
    if let Ok(spec) = atelier_workflows::tickets::CampaignSpec::from_json(v.clone()) {
        let _ = spec.check();
    }
    let _ = serde_json::from_value::<atelier_workflows::storyboards::spec::Brief>(v);
}

/// CSV batch uploads in any encoding: the first byte picks a forced encoding (or detection).
pub fn csv_batch(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let forced = match pick % 5 {
        0 => None,
        1 => Some("utf-8"),
        2 => Some("cp949"),
        3 => Some("utf-16le"),
        _ => Some("euc-kr"),
    };
    let rest = &rest[..rest.len().min(MAX_INPUT)];
    if let Ok(parsed) = csv::parse(rest, forced, &csv::ColumnMap::default()) {
        for row in &parsed.rows {
            assert!(row.line >= 1, "rows are numbered from 1");
        }
    }
    let _ = csv::decode(rest, None);
}

/// Image uploads (avatars, product photos): PNG/JPEG/WebP headers and bodies, decompression
/// bombs; decoding must stay within the upload limits.
pub fn image_upload(data: &[u8]) {
    if let Ok(img) = atelier_workflows::upload::decode_image(data, "image", 4 << 20, 1024) {
        assert!(
            img.width() <= 1024 && img.height() <= 1024,
            "side limit bypassed"
        );
    }
}

/// Safetensors headers as the weight loader reads them.
pub fn safetensors_header(data: &[u8]) {
    let _ = atelier_engine::weights::check_safetensors(
        &mut Cursor::new(data),
        data.len() as u64,
        Path::new("fuzz.safetensors"),
    );
}

/// GGUF files (language models): metadata, tensor table, and the tokenizer built from it.
pub fn gguf(data: &[u8]) {
    let path = Path::new("fuzz.gguf");
    if let Ok(content) = atelier_llm::local::read_gguf(&mut Cursor::new(data), path) {
        let _ = atelier_llm::tokenizer::TextTokenizer::from_gguf(&content.metadata);
    }
}

/// Model folder configs: the first byte picks which file the rest is (UNet, VAE, text
/// encoder, model index, scheduler).
pub fn model_config(data: &[u8]) {
    use atelier_engine::config::{ClipTextConfig, ModelIndex, UNetConfig, VaeConfig};
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let at = Path::new("fuzz/config.json");
    match pick % 5 {
        0 => {
            if let Ok(c) = serde_json::from_slice::<UNetConfig>(rest) {
                let _ = c.plan(at);
            }
        }
        1 => {
            if let Ok(c) = serde_json::from_slice::<VaeConfig>(rest) {
                if c.validate(at).is_ok() {
                    let _ = c.scale_factor();
                }
            }
        }
        2 => {
            if let Ok(c) = serde_json::from_slice::<ClipTextConfig>(rest) {
                let _ = c.validate(at);
            }
        }
        3 => {
            if let Ok(m) = serde_json::from_slice::<ModelIndex>(rest) {
                for name in ["unet", "vae", "scheduler", "text_encoder", "text_encoder_2"] {
                    let _ = m.component(name);
                }
            }
        }
        _ => {
            if let Ok(Value::Object(raw)) = serde_json::from_slice::<Value>(rest) {
                let class = raw
                    .get("_class_name")
                    .and_then(Value::as_str)
                    .unwrap_or("PNDMScheduler")
                    .to_owned();
                if let Some(kind) =
                    atelier_engine::SchedulerKind::from_diffusers_class(&class, &raw)
                {
                    for steps in [1, 4, 50] {
                        let _ = kind.build(&raw, steps);
                    }
                }
            }
        }
    }
}

/// Ticket preset files: `preset.toml`, then a NUL byte, then the SVG it names; laid out with
/// a Korean title and rendered small.
pub fn preset(data: &[u8]) {
    use atelier_compose::template::{Fill, Preset};
    let data = &data[..data.len().min(MAX_INPUT)];
    let (toml, svg) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (Ok(toml), Ok(svg)) = (std::str::from_utf8(toml), std::str::from_utf8(svg)) else {
        return;
    };
    let Ok(p) = Preset::parse(toml, |_| Some(svg.to_owned())) else {
        return;
    };
    let mut fill = Fill::default();
    for (k, v) in [
        ("title", "시간을 달리는 소녀"),
        ("tagline", "A tagline that runs long enough to wrap twice"),
        ("name", "김민지"),
        ("date", "2026.12.07"),
        ("qr", "https://example.com/t/abc"),
    ] {
        fill.text.insert(k.into(), v.into());
    }
    let img = std::sync::Arc::new(image::RgbaImage::new(8, 8));
    fill.images.insert("image".into(), img.clone());
    fill.images.insert("logo".into(), img);
    let mut fonts = atelier_compose::Fonts::new();
    if let Ok(scene) = p.scene(&mut fonts, &fill) {
        // Small: layout and clipping are what can go wrong, not pixel count.
        let side = scene.width.max(scene.height).max(1.0);
        let opts = atelier_compose::RasterOptions {
            scale: (64.0 / side).min(1.0),
            ..Default::default()
        };
        let _ = scene.render(&mut fonts, opts);
    }
}

/// Prompt screening: normalisation (Hangul jamo, leetspeak, spacing tricks) and the built-in
/// Korean and English lists. Spans must lie on character boundaries of the original text.
pub fn prompt_screen(data: &[u8]) {
    static SCREENER: OnceLock<Option<atelier_safety::Screener>> = OnceLock::new();
    let Ok(text) = std::str::from_utf8(&data[..data.len().min(64 << 10)]) else {
        return;
    };
    let _ = atelier_safety::normalize::normalize(text);
    let _ = atelier_safety::normalize::normalize_term(text);
    if let Some(s) = SCREENER.get_or_init(|| atelier_safety::Screener::builtin().ok()) {
        let d = s.screen(text);
        let chars = text.chars().count();
        for m in d.matches.iter().chain(&d.overridden) {
            assert!(
                m.span[0] <= m.span[1] && m.span[1] <= chars,
                "span {:?} lies outside the prompt's {chars} characters",
                m.span
            );
        }
    }
}
