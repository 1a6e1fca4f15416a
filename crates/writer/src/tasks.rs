//! The four writer tasks: inputs, output schemas (with their length limits) and the fixes
//! applied after generation.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Task, WriterError};

fn string(min: usize, max: usize) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max})
}

fn object(props: Value) -> Value {
    let required: Vec<String> = props
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), WriterError> {
    if value.trim().is_empty() {
        return Err(WriterError::invalid(field, "must not be empty"));
    }
    let n = value.chars().count();
    if n > max {
        return Err(WriterError::invalid(
            field,
            format!("is {n} characters; at most {max}"),
        ));
    }
    Ok(())
}

fn check_opt(field: &str, value: &Option<String>, max: usize) -> Result<(), WriterError> {
    match value {
        Some(v) if !v.trim().is_empty() => check_text(field, v, max),
        _ => Ok(()),
    }
}

/// Trims whitespace and wrapping quotes a model may add, unless nothing would be left.
fn tidy(s: &mut String) {
    let t = s
        .trim()
        .trim_matches(|c| matches!(c, '"' | '\'' | '“' | '”' | '「' | '」' | '『' | '』'))
        .trim();
    if !t.is_empty() && t.len() != s.len() {
        *s = t.to_owned();
    }
}

// ---------------------------------------------------------------------------------------

/// Any-language text to an English diffusion prompt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImagePromptInput {
    /// What the picture should show, in any language.
    pub text: String,
    /// A style to apply (e.g. "watercolor, pastel colours"); its comma-separated parts are
    /// kept verbatim in the prompt.
    #[serde(default)]
    pub style: Option<String>,
    /// Words that must appear verbatim in the prompt (named styles, artists' techniques,
    /// LoRA trigger words).
    #[serde(default)]
    pub keep: Vec<String>,
}

impl ImagePromptInput {
    /// Every word the prompt must contain: `keep` plus the parts of `style`.
    pub fn keep_words(&self) -> Vec<String> {
        let mut words: Vec<String> = self
            .keep
            .iter()
            .chain(self.style.iter())
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        words.dedup();
        words
    }
}

/// A diffusion prompt pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePrompt {
    pub prompt: String,
    pub negative_prompt: String,
}

/// Longest prompt the task produces (CLIP reads ~77 tokens; longer prompts are cut).
pub const PROMPT_MAX: usize = 400;

fn keep_reserve(words: &[String]) -> usize {
    words.iter().map(|w| w.chars().count() + 2).sum()
}

/// Appends each required word the prompt lacks (case-insensitive check).
fn ensure_words(prompt: &mut String, words: &[String]) {
    for w in words {
        if !prompt.to_lowercase().contains(&w.to_lowercase()) {
            if !prompt.trim_end().is_empty() {
                prompt.push_str(", ");
            }
            prompt.push_str(w);
        }
    }
}

impl Task for ImagePrompt {
    type Input = ImagePromptInput;
    const NAME: &'static str = "image_prompt";
    const MANUAL_FIELDS: &'static str = "the prompt";

    fn check(input: &Self::Input) -> Result<(), WriterError> {
        check_text("text", &input.text, 4000)?;
        check_opt("style", &input.style, 200)?;
        if keep_reserve(&input.keep_words()) > 200 {
            return Err(WriterError::invalid(
                "keep",
                "words to keep (with style) exceed 200 characters",
            ));
        }
        Ok(())
    }

    fn schema(_: &Self::Input) -> Value {
        object(json!({
            "prompt": string(1, PROMPT_MAX),
            "negative_prompt": string(0, 200),
        }))
    }

    /// Leaves room for the required words [`normalize`](Task::normalize) may append.
    fn generation_schema(input: &Self::Input) -> Value {
        object(json!({
            "prompt": string(1, PROMPT_MAX - keep_reserve(&input.keep_words())),
            "negative_prompt": string(0, 200),
        }))
    }

    fn normalize(&mut self, input: &Self::Input) {
        tidy(&mut self.prompt);
        ensure_words(&mut self.prompt, &input.keep_words());
    }
}

// ---------------------------------------------------------------------------------------

/// A customer's lifestyle text to movie-style ticket copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketCopyInput {
    /// What the customer wrote about their life (Korean or English).
    pub lifestyle: String,
    /// The customer's display name, if they chose to show it.
    #[serde(default)]
    pub name: Option<String>,
    /// The campaign's brand.
    #[serde(default)]
    pub brand: Option<String>,
    /// The campaign's visual style.
    #[serde(default)]
    pub style: Option<String>,
}

/// Title, tagline and key-visual prompt of a photo ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketCopy {
    /// Korean movie-style title, at most 20 characters.
    pub title: String,
    /// Korean tagline, at most 40 characters.
    pub tagline: String,
    /// English diffusion prompt.
    pub image_prompt: String,
}

/// Title length limit (characters).
pub const TITLE_MAX: usize = 20;
/// Tagline length limit (characters).
pub const TAGLINE_MAX: usize = 40;

impl Task for TicketCopy {
    type Input = TicketCopyInput;
    const NAME: &'static str = "ticket_copy";
    const MANUAL_FIELDS: &'static str = "title, tagline and prompt";

    fn check(input: &Self::Input) -> Result<(), WriterError> {
        check_text("lifestyle", &input.lifestyle, 2000)?;
        check_opt("name", &input.name, 40)?;
        check_opt("brand", &input.brand, 60)?;
        check_opt("style", &input.style, 200)
    }

    fn schema(_: &Self::Input) -> Value {
        object(json!({
            "title": string(1, TITLE_MAX),
            "tagline": string(1, TAGLINE_MAX),
            "image_prompt": string(1, PROMPT_MAX),
        }))
    }

    fn normalize(&mut self, _: &Self::Input) {
        tidy(&mut self.title);
        tidy(&mut self.tagline);
        tidy(&mut self.image_prompt);
    }
}

// ---------------------------------------------------------------------------------------

/// A diary entry to comic panels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComicPanelsInput {
    /// The diary post (Korean or English).
    pub diary: String,
    /// Drawing style shared by all panels.
    #[serde(default)]
    pub style: Option<String>,
    /// Number of panels (default 4).
    #[serde(default = "four")]
    pub panels: usize,
}

fn four() -> usize {
    4
}

/// One comic panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    /// English diffusion prompt of the panel.
    pub scene: String,
    /// Korean narration box.
    pub caption: String,
    /// Korean speech line, if someone speaks.
    pub speech: Option<String>,
}

/// A titled comic strip script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComicPanels {
    pub title: String,
    pub panels: Vec<Panel>,
}

impl Task for ComicPanels {
    type Input = ComicPanelsInput;
    const NAME: &'static str = "comic_panels";
    const MANUAL_FIELDS: &'static str = "the panel captions";

    fn check(input: &Self::Input) -> Result<(), WriterError> {
        check_text("diary", &input.diary, 5000)?;
        check_opt("style", &input.style, 200)?;
        if !(2..=8).contains(&input.panels) {
            return Err(WriterError::invalid("panels", "must be between 2 and 8"));
        }
        Ok(())
    }

    fn schema(input: &Self::Input) -> Value {
        let panel = object(json!({
            "scene": string(1, 300),
            "caption": string(1, 60),
            "speech": {"anyOf": [string(1, 40), {"type": "null"}]},
        }));
        object(json!({
            "title": string(1, 30),
            "panels": {"type": "array", "items": panel, "minItems": input.panels, "maxItems": input.panels},
        }))
    }

    fn normalize(&mut self, _: &Self::Input) {
        tidy(&mut self.title);
        for p in &mut self.panels {
            tidy(&mut p.caption);
            if let Some(s) = &mut p.speech {
                tidy(s);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------

/// A product brief to storyboard cuts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoryboardInput {
    pub product: String,
    pub category: String,
    pub brief: String,
    /// e.g. "warm", "energetic", "premium".
    #[serde(default = "warm")]
    pub tone: String,
    /// Number of cuts, 4 to 8.
    pub cuts: usize,
    /// Total length the durations are scaled to.
    #[serde(default)]
    pub target_seconds: Option<f32>,
    /// Visual style shared by all cuts.
    #[serde(default)]
    pub style: Option<String>,
}

fn warm() -> String {
    "warm".into()
}

/// One cut of a storyboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cut {
    pub number: u32,
    /// Korean description of what is seen.
    pub scene: String,
    /// Shot size and movement.
    pub camera: String,
    /// Seconds, in steps of 0.5.
    pub duration_s: f32,
    /// On-screen copy or narration (Korean).
    pub copy: String,
    /// English diffusion prompt of the key frame.
    pub image_prompt: String,
}

/// A storyboard script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Storyboard {
    pub title: String,
    pub cuts: Vec<Cut>,
}

/// Shortest and longest cut (seconds).
pub const CUT_SECONDS: (f32, f32) = (0.5, 15.0);

impl Task for Storyboard {
    type Input = StoryboardInput;
    const NAME: &'static str = "storyboard";
    const MANUAL_FIELDS: &'static str = "the cuts";

    fn check(input: &Self::Input) -> Result<(), WriterError> {
        check_text("product", &input.product, 100)?;
        check_text("category", &input.category, 60)?;
        check_text("brief", &input.brief, 3000)?;
        check_text("tone", &input.tone, 60)?;
        check_opt("style", &input.style, 200)?;
        if !(4..=8).contains(&input.cuts) {
            return Err(WriterError::invalid("cuts", "must be between 4 and 8"));
        }
        if let Some(t) = input.target_seconds {
            let n = input.cuts as f32;
            if !(t.is_finite() && t >= n * CUT_SECONDS.0 && t <= n * CUT_SECONDS.1) {
                return Err(WriterError::invalid(
                    "target_seconds",
                    format!(
                        "must be between {} and {} for {} cuts",
                        n * CUT_SECONDS.0,
                        n * CUT_SECONDS.1,
                        input.cuts
                    ),
                ));
            }
        }
        Ok(())
    }

    fn schema(input: &Self::Input) -> Value {
        let cut = object(json!({
            "number": {"type": "integer", "minimum": 1, "maximum": input.cuts},
            "scene": string(1, 150),
            "camera": string(1, 60),
            "duration_s": {"type": "number", "minimum": CUT_SECONDS.0, "maximum": CUT_SECONDS.1, "multipleOf": 0.5},
            "copy": string(0, 80),
            "image_prompt": string(1, 300),
        }));
        object(json!({
            "title": string(1, 40),
            "cuts": {"type": "array", "items": cut, "minItems": input.cuts, "maxItems": input.cuts},
        }))
    }

    /// Numbers cuts in order and, with a target length, scales durations to it (half-second
    /// steps, each within the allowed range).
    fn normalize(&mut self, input: &Self::Input) {
        tidy(&mut self.title);
        for (i, c) in self.cuts.iter_mut().enumerate() {
            c.number = i as u32 + 1;
            tidy(&mut c.scene);
            tidy(&mut c.copy);
        }
        if let Some(target) = input.target_seconds {
            let sum: f32 = self.cuts.iter().map(|c| c.duration_s).sum();
            if sum > 0.0 {
                for c in &mut self.cuts {
                    let d = (c.duration_s * target / sum * 2.0).round() / 2.0;
                    c.duration_s = d.clamp(CUT_SECONDS.0, CUT_SECONDS.1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_words_are_added_once() {
        let input = ImagePromptInput {
            text: "x".into(),
            style: Some("Watercolor, pastel".into()),
            keep: vec!["ghibli style".into()],
        };
        let mut p = ImagePrompt {
            prompt: "a cat, watercolor".into(),
            negative_prompt: String::new(),
        };
        p.normalize(&input);
        assert_eq!(p.prompt, "a cat, watercolor, ghibli style, pastel");
        let max = ImagePrompt::generation_schema(&input)["properties"]["prompt"]["maxLength"]
            .as_u64()
            .unwrap();
        assert_eq!(max as usize, PROMPT_MAX - (12 + 2) - (10 + 2) - (6 + 2));
    }

    #[test]
    fn storyboard_is_renumbered_and_scaled() {
        let input = StoryboardInput {
            product: "p".into(),
            category: "c".into(),
            brief: "b".into(),
            tone: "t".into(),
            cuts: 4,
            target_seconds: Some(20.0),
            style: None,
        };
        let cut = |n, d| Cut {
            number: n,
            scene: "s".into(),
            camera: "c".into(),
            duration_s: d,
            copy: String::new(),
            image_prompt: "i".into(),
        };
        let mut s = Storyboard {
            title: "\"제목\"".into(),
            cuts: vec![cut(3, 1.0), cut(3, 1.0), cut(1, 2.0), cut(8, 6.0)],
        };
        s.normalize(&input);
        assert_eq!(s.title, "제목");
        assert_eq!(
            s.cuts.iter().map(|c| c.number).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(
            s.cuts.iter().map(|c| c.duration_s).collect::<Vec<_>>(),
            [2.0, 2.0, 4.0, 12.0]
        );
    }

    #[test]
    fn inputs_are_checked_with_field_names() {
        let mut input = StoryboardInput {
            product: "p".into(),
            category: "c".into(),
            brief: "b".into(),
            tone: "t".into(),
            cuts: 9,
            target_seconds: None,
            style: None,
        };
        assert!(Storyboard::check(&input)
            .unwrap_err()
            .to_string()
            .starts_with("cuts:"));
        input.cuts = 4;
        input.target_seconds = Some(100.0);
        assert!(Storyboard::check(&input)
            .unwrap_err()
            .to_string()
            .starts_with("target_seconds:"));
        let t = TicketCopyInput {
            lifestyle: " ".into(),
            name: None,
            brand: None,
            style: None,
        };
        assert!(TicketCopy::check(&t)
            .unwrap_err()
            .to_string()
            .starts_with("lifestyle:"));
    }
}
