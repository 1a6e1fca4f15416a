//! Campaigns: what a brand fixes for every ticket (style, model, palette, presets, label,
//! safety lists, copy source, dates). Stored as versions: a ticket records the version it was
//! made with, so editing a campaign never changes tickets already made.

use std::collections::BTreeMap;

use atelier_platform::PlatformError;
use atelier_safety::Policy;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest style or negative prompt a campaign may append.
pub const STYLE_MAX: usize = 400;
/// Default visible label (Korea's AI Basic Act asks for a visible mark).
pub const DEFAULT_LABEL: &str = "AI 생성";

/// Where a ticket's title and tagline come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CopyMode {
    /// The language model writes what the customer did not supply (`ticket_copy`).
    #[default]
    Llm,
    /// Every ticket must carry its own title and tagline.
    Supplied,
}

/// Image generation defaults for a campaign's tickets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    /// Installed model id; default the first installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance_scale: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
}

/// Brand colours replacing the presets' `primary` and `accent`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Palette {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accent: Option<String>,
}

/// A campaign as its managers write it (`POST /v1/campaigns`, `atelier ticket --campaign`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// Internal name, shown in lists.
    pub name: String,
    /// The brand printed on tickets and given to the copywriter.
    pub brand: String,
    /// Appended to every image prompt.
    #[serde(default)]
    pub style_prompt: String,
    /// Appended to every negative prompt.
    #[serde(default)]
    pub negative_prompt: String,
    #[serde(default)]
    pub generation: Generation,
    #[serde(default)]
    pub palette: Palette,
    /// Brand logo: a PNG/JPEG `data:` URL when writing; stored as an `atelier-file://` reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
    /// Presets tickets may use; empty allows every installed preset.
    #[serde(default)]
    pub presets: Vec<String>,
    /// Draw the visible AI label on tickets (on by default).
    #[serde(default = "yes")]
    pub label: bool,
    /// The label's text.
    #[serde(default = "default_label")]
    pub label_text: String,
    /// Safety layer on top of the deployment's and tenant's: action, extra deny lists,
    /// allowed terms, disabled categories.
    #[serde(default)]
    pub safety: Policy,
    #[serde(default)]
    pub copy: CopyMode,
    /// RFC 3339; tickets are refused before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_from: Option<String>,
    /// RFC 3339; tickets are refused after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_until: Option<String>,
    /// Fixed ticket text: `date`, `time`, `venue`, `seat`, captions, or any slot a custom preset
    /// names.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Pixels per preset unit (1.0 = the preset's size, e.g. 1080x1920).
    #[serde(default = "one")]
    pub scale: f32,
}

fn yes() -> bool {
    true
}
fn one() -> f32 {
    1.0
}
fn default_label() -> String {
    DEFAULT_LABEL.into()
}

/// A stored campaign version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Campaign {
    pub id: String,
    pub tenant_id: String,
    pub version: i64,
    pub spec: CampaignSpec,
    pub created_at: i64,
    /// When this version was written.
    pub updated_at: i64,
}

fn bad(field: &str, message: impl Into<String>) -> PlatformError {
    PlatformError::invalid(field, message)
}

fn hex_colour(field: &str, v: &Option<String>) -> Result<(), PlatformError> {
    if let Some(c) = v {
        c.parse::<atelier_compose::Rgba>()
            .map_err(|e| bad(field, e.to_string()))?;
    }
    Ok(())
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn parse_time(field: &str, s: &str) -> Result<i64, PlatformError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            bad(
                field,
                format!("{s:?} is not an RFC 3339 time such as 2026-12-01T00:00:00+09:00 ({e})"),
            )
        })
}

/// The message of the one cross-field rule, so a merge patch that breaks it only together with
/// the stored spec can be told apart (a conflict, not an input error).
pub const WINDOW_ORDER: &str = "must be after active_from";

impl CampaignSpec {
    /// Parses a spec from JSON, naming the offending field on error.
    pub fn from_json(v: Value) -> Result<Self, PlatformError> {
        atelier_platform::input::decode(&v).map_err(|e| match e.path.as_str() {
            "." => bad("campaign", e.message),
            path => bad(path, e.message),
        })
    }

    /// Checks everything that does not need the installation (models, presets are checked by
    /// the caller that knows them).
    pub fn check(&self) -> Result<(), PlatformError> {
        let text = |field: &str, v: &str, max: usize, required: bool| {
            if required && v.trim().is_empty() {
                return Err(bad(field, "must not be empty"));
            }
            let n = v.chars().count();
            if n > max {
                return Err(bad(field, format!("is {n} characters; at most {max}")));
            }
            Ok(())
        };
        text("name", &self.name, 100, true)?;
        text("brand", &self.brand, 60, true)?;
        text("style_prompt", &self.style_prompt, STYLE_MAX, false)?;
        text("negative_prompt", &self.negative_prompt, STYLE_MAX, false)?;
        text("label_text", &self.label_text, 40, self.label)?;
        hex_colour("palette.primary", &self.palette.primary)?;
        hex_colour("palette.accent", &self.palette.accent)?;
        for (k, v) in &self.fields {
            if k.is_empty()
                || !k
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(bad(
                    "fields",
                    format!("field name {k:?} must be lower_snake"),
                ));
            }
            if ["title", "tagline", "name", "qr", "label", "brand"].contains(&k.as_str()) {
                return Err(bad(
                    &format!("fields.{k}"),
                    "is set per ticket (or by the campaign's brand/label settings)",
                ));
            }
            text(&format!("fields.{k}"), v, 80, false)?;
        }
        if !(0.25..=2.0).contains(&self.scale) || !self.scale.is_finite() {
            return Err(bad("scale", "must be between 0.25 and 2"));
        }
        let g = &self.generation;
        for (f, v, lo, hi) in [
            ("generation.width", g.width, 64, 2048),
            ("generation.height", g.height, 64, 2048),
            ("generation.steps", g.steps, 1, 150),
        ] {
            if let Some(v) = v {
                if !(lo..=hi).contains(&v) {
                    return Err(bad(f, format!("must be between {lo} and {hi}")));
                }
            }
        }
        if let Some(gs) = g.guidance_scale {
            if !(0.0..=30.0).contains(&gs) {
                return Err(bad("generation.guidance_scale", "must be between 0 and 30"));
            }
        }
        if let Some(s) = &g.scheduler {
            s.parse::<atelier_engine::SchedulerKind>()
                .map_err(|e| bad("generation.scheduler", e.to_string()))?;
        }
        self.safety
            .check("safety")
            .map_err(|e| bad("safety", e.to_string()))?;
        let from = self
            .active_from
            .as_deref()
            .map(|s| parse_time("active_from", s))
            .transpose()?;
        let until = self
            .active_until
            .as_deref()
            .map(|s| parse_time("active_until", s))
            .transpose()?;
        if let (Some(a), Some(b)) = (from, until) {
            if a >= b {
                return Err(bad("active_until", WINDOW_ORDER));
            }
        }
        Ok(())
    }

    /// Refuses tickets outside the campaign's dates.
    pub fn check_active(&self, now_ms: i64) -> Result<(), PlatformError> {
        if let Some(s) = &self.active_from {
            if now_ms < parse_time("active_from", s)? {
                return Err(PlatformError::conflict(
                    "campaign",
                    format!("the campaign starts at {s}"),
                ));
            }
        }
        if let Some(s) = &self.active_until {
            if now_ms > parse_time("active_until", s)? {
                return Err(PlatformError::conflict(
                    "campaign",
                    format!("the campaign ended at {s}"),
                ));
            }
        }
        Ok(())
    }
}

/// RFC 7396 merge patch: objects merge, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> Result<CampaignSpec, PlatformError> {
        let s = CampaignSpec::from_json(v)?;
        s.check()?;
        Ok(s)
    }

    #[test]
    fn defaults_label_on_and_llm_copy() {
        let s = spec(json!({"name": "봄 캠페인", "brand": "한빛생명"})).expect("valid");
        assert!(s.label);
        assert_eq!(s.label_text, DEFAULT_LABEL);
        assert_eq!(s.copy, CopyMode::Llm);
        assert_eq!(s.scale, 1.0);
    }

    #[test]
    fn errors_name_the_field() {
        let field = |v: Value| match spec(v) {
            Err(PlatformError::InvalidInput { field, .. }) => field,
            other => panic!("expected an input error, got {other:?}"),
        };
        assert_eq!(field(json!({"name": "x", "brand": ""})), "brand");
        assert_eq!(
            field(json!({"name": "x", "brand": "b", "palette": {"primary": "red"}})),
            "palette.primary"
        );
        assert_eq!(
            field(json!({"name": "x", "brand": "b", "active_from": "tomorrow"})),
            "active_from"
        );
        assert_eq!(
            field(
                json!({"name": "x", "brand": "b", "active_from": "2026-12-02T00:00:00Z", "active_until": "2026-12-01T00:00:00Z"})
            ),
            "active_until"
        );
        assert_eq!(
            field(json!({"name": "x", "brand": "b", "generation": {"steps": 0}})),
            "generation.steps"
        );
        assert_eq!(
            field(json!({"name": "x", "brand": "b", "fields": {"title": "no"}})),
            "fields.title"
        );
        let e = spec(json!({"name": "x", "brand": "b", "colour": 1})).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn dates_bound_the_campaign() {
        let s = spec(json!({"name": "x", "brand": "b",
            "active_from": "2026-12-01T00:00:00+09:00", "active_until": "2026-12-31T23:59:59+09:00"}))
        .expect("valid");
        let t = |s: &str| parse_time("t", s).expect("time");
        assert!(s.check_active(t("2026-11-30T14:59:59Z")).is_err());
        assert!(s.check_active(t("2026-11-30T15:00:00Z")).is_ok());
        assert!(s.check_active(t("2027-01-01T00:00:00+09:00")).is_err());
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut v, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(v, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }
}
