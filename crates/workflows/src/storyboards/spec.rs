//! What a storyboard is made of: the brief (fixed at creation), the cuts of one version, the
//! edit operations that make the next version, and the diff between two versions.
//!
//! Everything here is plain data and pure functions: no database, no models.

use std::collections::{HashMap, HashSet};

use atelier_platform::PlatformError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Fewest and most cuts on a board (the printable sheet holds 4 to 8).
pub const CUTS: (usize, usize) = (4, 8);
/// Shortest and longest cut, seconds.
pub const CUT_SECONDS: (f32, f32) = (0.5, 15.0);
/// Longest scene text (characters).
pub const SCENE_MAX: usize = 150;
/// Longest camera note (characters).
pub const CAMERA_MAX: usize = 60;
/// Longest on-screen copy (characters).
pub const COPY_MAX: usize = 80;
/// Longest image prompt (characters).
pub const PROMPT_MAX: usize = 300;
/// Longest board title (characters).
pub const TITLE_MAX: usize = 40;
/// The visible label on every sheet and animatic (Korea's AI Basic Act).
pub const LABEL: &str = "AI 생성";

/// The product categories a brief may name: `(id, Korean, English)`. The id goes in the API;
/// the names are shown on sheets and in the UI. Documented in the README.
pub const CATEGORIES: &[(&str, &str, &str)] = &[
    ("beauty", "뷰티·화장품", "Beauty & cosmetics"),
    ("fashion", "패션·잡화", "Fashion & accessories"),
    ("food", "식품·음료", "Food & beverage"),
    ("electronics", "전자·IT", "Electronics & IT"),
    ("home", "가구·생활용품", "Home & living"),
    ("health", "건강·제약", "Health & pharmacy"),
    ("finance", "금융·보험", "Finance & insurance"),
    ("automotive", "자동차·모빌리티", "Automotive & mobility"),
    ("travel", "여행·레저", "Travel & leisure"),
    ("education", "교육·출판", "Education & publishing"),
    (
        "entertainment",
        "게임·엔터테인먼트",
        "Games & entertainment",
    ),
    ("retail", "유통·커머스", "Retail & e-commerce"),
    ("public", "공익·공공", "Public service"),
    ("other", "기타", "Other"),
];

/// The Korean name of a category id (the id itself when unknown).
pub fn category_name(id: &str) -> &str {
    CATEGORIES
        .iter()
        .find(|c| c.0 == id)
        .map(|c| c.1)
        .unwrap_or(id)
}

/// Frame shape of the cut pictures and the animatic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Aspect {
    #[default]
    #[serde(rename = "16:9")]
    Wide,
    #[serde(rename = "9:16")]
    Tall,
    #[serde(rename = "1:1")]
    Square,
}

impl Aspect {
    /// `(width, height)` with the long side `long`, both rounded to multiples of `multiple`.
    pub fn dims(self, long: u32, multiple: u32) -> (u32, u32) {
        let m = multiple.max(1);
        let round = |v: f64| (((v / m as f64).round() as u32).max(1)) * m;
        let long = round(long as f64);
        let short = round(long as f64 * 9.0 / 16.0);
        match self {
            Aspect::Wide => (long, short),
            Aspect::Tall => (short, long),
            Aspect::Square => (long, long),
        }
    }
}

/// How the cut pictures are generated (defaults: the server's storyboard settings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    /// Installed model id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Long side of each picture in pixels (the short side follows the aspect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
}

/// How the animatic is encoded (defaults: the server's storyboard settings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnimaticOptions {
    /// Any of `mp4`, `gif`, `webp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formats: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    /// Long side of the video in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

/// The brief: fixed when the board is made; the cuts change by versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Brief {
    pub product: String,
    /// One of [`CATEGORIES`].
    pub category: String,
    pub brief: String,
    pub tone: String,
    /// Total length the written cuts are scaled to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_seconds: Option<f32>,
    /// Cuts asked for (4 to 8); versions may insert or delete within the same bounds.
    pub cuts: usize,
    pub aspect: Aspect,
    /// Style prompt shared by every cut picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
    /// `atelier-file://` reference of the product photo (kept for image-to-image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_image: Option<String>,
    /// Base seed; cut `n` (in order of creation) is drawn with `seed + n - 1`.
    pub seed: u64,
    #[serde(default)]
    pub generation: Generation,
    #[serde(default)]
    pub animatic: AnimaticOptions,
}

/// The picture of a cut and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutImage {
    /// `atelier-file://` reference of the marked PNG.
    pub file: String,
    pub prompt: String,
    pub seed: u64,
    pub model: String,
    pub width: usize,
    pub height: usize,
    pub steps: usize,
    pub scheduler: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// The version whose job drew it.
    pub made_in: i64,
    #[serde(default)]
    pub flagged: bool,
    #[serde(default)]
    pub blurred: bool,
    #[serde(default)]
    pub screening: Value,
}

/// One cut of one version. `id` stays with the cut across versions (comments and diffs use it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cut {
    pub id: String,
    pub scene: String,
    pub camera: String,
    pub copy: String,
    pub duration_s: f32,
    /// English prompt of the key frame (the board's style is appended when drawn).
    pub image_prompt: String,
    pub seed: u64,
    /// `None` until drawn; a new prompt or seed clears it.
    #[serde(default)]
    pub image: Option<CutImage>,
}

/// The text of a cut as a person or the writer gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutText {
    pub scene: String,
    #[serde(default)]
    pub camera: String,
    #[serde(default)]
    pub copy: String,
    pub duration_s: f32,
    /// Defaults to the scene text.
    #[serde(default)]
    pub image_prompt: Option<String>,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> PlatformError {
    PlatformError::invalid(field, message)
}

/// Checks a text field's length (`required`: at least one non-blank character).
pub fn check_text(field: &str, v: &str, max: usize, required: bool) -> Result<(), PlatformError> {
    let n = v.trim().chars().count();
    if required && n == 0 {
        return Err(bad(field, "is required"));
    }
    if n > max {
        return Err(bad(
            field,
            format!("must be at most {max} characters (got {n})"),
        ));
    }
    if v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(bad(field, "must not contain control characters"));
    }
    Ok(())
}

/// Checks a duration and rounds it to a tenth of a second.
pub fn check_duration(field: &str, d: f32) -> Result<f32, PlatformError> {
    if !(d.is_finite() && (CUT_SECONDS.0..=CUT_SECONDS.1).contains(&d)) {
        return Err(bad(
            field,
            format!(
                "must be between {} and {} seconds",
                CUT_SECONDS.0, CUT_SECONDS.1
            ),
        ));
    }
    Ok((d * 10.0).round() / 10.0)
}

impl CutText {
    /// Validates every field, naming it under `at` (e.g. `script.cuts[2]`).
    pub fn check(&self, at: &str) -> Result<(), PlatformError> {
        check_text(&format!("{at}.scene"), &self.scene, SCENE_MAX, true)?;
        check_text(&format!("{at}.camera"), &self.camera, CAMERA_MAX, false)?;
        check_text(&format!("{at}.copy"), &self.copy, COPY_MAX, false)?;
        check_duration(&format!("{at}.duration_s"), self.duration_s)?;
        if let Some(p) = &self.image_prompt {
            check_text(&format!("{at}.image_prompt"), p, PROMPT_MAX, true)?;
        }
        Ok(())
    }

    /// A new cut (not drawn yet).
    pub fn into_cut(self, id: String, seed: u64) -> Cut {
        let prompt = self
            .image_prompt
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| self.scene.trim().to_owned());
        Cut {
            id,
            scene: self.scene.trim().to_owned(),
            camera: self.camera.trim().to_owned(),
            copy: self.copy.trim().to_owned(),
            duration_s: (self.duration_s * 10.0).round() / 10.0,
            image_prompt: prompt,
            seed,
            image: None,
        }
    }
}

/// A new cut id: short, random, stable for the cut's life.
pub fn new_cut_id() -> String {
    format!("cut_{:08x}", rand::random::<u32>())
}

/// One edit. A version is made by applying a list of them, in order, to the current cuts.
/// `cut` names a cut by id (`"cut_1a2b3c4d"`) or by its 1-based position at that point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Changes text fields; a changed `image_prompt` redraws the picture with the same seed.
    Edit {
        cut: CutRef,
        #[serde(default)]
        scene: Option<String>,
        #[serde(default)]
        camera: Option<String>,
        #[serde(default)]
        copy: Option<String>,
        #[serde(default)]
        duration_s: Option<f32>,
        #[serde(default)]
        image_prompt: Option<String>,
    },
    /// Redraws only this cut's picture: with `seed` if given, else a new random one.
    Regenerate {
        cut: CutRef,
        #[serde(default)]
        seed: Option<u64>,
        #[serde(default)]
        image_prompt: Option<String>,
    },
    /// Moves a cut to 1-based position `to`.
    Move { cut: CutRef, to: usize },
    /// Inserts a new cut at 1-based position `at` (default: the end).
    Insert {
        #[serde(default)]
        at: Option<usize>,
        scene: String,
        #[serde(default)]
        camera: String,
        #[serde(default)]
        copy: String,
        duration_s: f32,
        #[serde(default)]
        image_prompt: Option<String>,
    },
    /// Removes a cut.
    Delete { cut: CutRef },
    /// Renames the board.
    Title { title: String },
}

/// A cut named by id or by 1-based position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CutRef {
    Position(usize),
    Id(String),
}

fn find(cuts: &[Cut], r: &CutRef, field: &str) -> Result<usize, PlatformError> {
    match r {
        CutRef::Position(p) if (1..=cuts.len()).contains(p) => Ok(p - 1),
        CutRef::Position(p) => Err(PlatformError::conflict(
            field,
            format!("position {p} is outside 1..{}", cuts.len()),
        )),
        CutRef::Id(id) => cuts.iter().position(|c| &c.id == id).ok_or_else(|| {
            PlatformError::conflict(field, format!("no cut {id:?} in this version"))
        }),
    }
}

/// Applies `ops` to `(title, cuts)`; errors name the op (`ops[1].to`). New cuts get seeds from
/// `next_seed`, redraws without a seed from `random_seed`.
pub fn apply(
    title: &mut String,
    cuts: &mut Vec<Cut>,
    ops: &[Op],
    mut next_seed: impl FnMut() -> u64,
    mut random_seed: impl FnMut() -> u64,
) -> Result<(), PlatformError> {
    if ops.is_empty() {
        return Err(bad("ops", "give at least one operation"));
    }
    for (i, op) in ops.iter().enumerate() {
        let at = format!("ops[{i}]");
        match op {
            Op::Edit {
                cut,
                scene,
                camera,
                copy,
                duration_s,
                image_prompt,
            } => {
                let k = find(cuts, cut, &format!("{at}.cut"))?;
                if scene.is_none()
                    && camera.is_none()
                    && copy.is_none()
                    && duration_s.is_none()
                    && image_prompt.is_none()
                {
                    return Err(bad(
                        &at,
                        "name at least one of scene, camera, copy, duration_s, image_prompt",
                    ));
                }
                let c = &mut cuts[k];
                if let Some(v) = scene {
                    check_text(&format!("{at}.scene"), v, SCENE_MAX, true)?;
                    c.scene = v.trim().to_owned();
                }
                if let Some(v) = camera {
                    check_text(&format!("{at}.camera"), v, CAMERA_MAX, false)?;
                    c.camera = v.trim().to_owned();
                }
                if let Some(v) = copy {
                    check_text(&format!("{at}.copy"), v, COPY_MAX, false)?;
                    c.copy = v.trim().to_owned();
                }
                if let Some(d) = duration_s {
                    c.duration_s = check_duration(&format!("{at}.duration_s"), *d)?;
                }
                if let Some(p) = image_prompt {
                    check_text(&format!("{at}.image_prompt"), p, PROMPT_MAX, true)?;
                    if p.trim() != c.image_prompt {
                        c.image_prompt = p.trim().to_owned();
                        c.image = None;
                    }
                }
            }
            Op::Regenerate {
                cut,
                seed,
                image_prompt,
            } => {
                let k = find(cuts, cut, &format!("{at}.cut"))?;
                if let Some(p) = image_prompt {
                    check_text(&format!("{at}.image_prompt"), p, PROMPT_MAX, true)?;
                    cuts[k].image_prompt = p.trim().to_owned();
                }
                cuts[k].seed = seed.unwrap_or_else(&mut random_seed);
                cuts[k].image = None;
            }
            Op::Move { cut, to } => {
                let k = find(cuts, cut, &format!("{at}.cut"))?;
                if !(1..=cuts.len()).contains(to) {
                    return Err(PlatformError::conflict(
                        format!("{at}.to"),
                        format!("must be within 1..{}", cuts.len()),
                    ));
                }
                let c = cuts.remove(k);
                cuts.insert(to - 1, c);
            }
            Op::Insert {
                at: pos,
                scene,
                camera,
                copy,
                duration_s,
                image_prompt,
            } => {
                let text = CutText {
                    scene: scene.clone(),
                    camera: camera.clone(),
                    copy: copy.clone(),
                    duration_s: *duration_s,
                    image_prompt: image_prompt.clone(),
                };
                if cuts.len() >= CUTS.1 {
                    return Err(PlatformError::conflict(
                        &at,
                        format!("a storyboard has at most {} cuts", CUTS.1),
                    ));
                }
                text.check(&at)?;
                let p = pos.unwrap_or(cuts.len() + 1);
                if !(1..=cuts.len() + 1).contains(&p) {
                    return Err(PlatformError::conflict(
                        format!("{at}.at"),
                        format!("must be within 1..{}", cuts.len() + 1),
                    ));
                }
                cuts.insert(p - 1, text.into_cut(new_cut_id(), next_seed()));
            }
            Op::Delete { cut } => {
                let k = find(cuts, cut, &format!("{at}.cut"))?;
                if cuts.len() <= CUTS.0 {
                    return Err(PlatformError::conflict(
                        &at,
                        format!("a storyboard has at least {} cuts", CUTS.0),
                    ));
                }
                cuts.remove(k);
            }
            Op::Title { title: t } => {
                // An empty title clears it, as a script without a title has none.
                check_text(&format!("{at}.title"), t, TITLE_MAX, false)?;
                *title = t.trim().to_owned();
            }
        }
    }
    Ok(())
}

/// The changes from one version's cuts to another's: added, removed, moved (the fewest cuts
/// whose move explains the new order) and edited (field by field), plus a title change.
pub fn diff(from_title: &str, from: &[Cut], to_title: &str, to: &[Cut]) -> Vec<Value> {
    let mut out = Vec::new();
    if from_title != to_title {
        out.push(json!({"change": "title", "from": from_title, "to": to_title}));
    }
    let old_pos: HashMap<&str, usize> = from
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let new_ids: HashSet<&str> = to.iter().map(|c| c.id.as_str()).collect();
    for (i, c) in from.iter().enumerate() {
        if !new_ids.contains(c.id.as_str()) {
            out.push(
                json!({"change": "removed", "cut": c.id, "position": i + 1, "scene": c.scene}),
            );
        }
    }
    // Kept cuts in their new order, by old index; those outside a longest increasing run moved.
    let kept: Vec<(usize, usize)> = to
        .iter()
        .enumerate()
        .filter_map(|(j, c)| old_pos.get(c.id.as_str()).map(|&i| (j, i)))
        .collect();
    let stay = longest_increasing(&kept.iter().map(|k| k.1).collect::<Vec<_>>());
    let mut moved = HashSet::new();
    for (n, (j, i)) in kept.iter().enumerate() {
        if !stay.contains(&n) {
            moved.insert(*j);
            out.push(json!({"change": "moved", "cut": to[*j].id, "from": i + 1, "to": j + 1}));
        }
    }
    for (j, c) in to.iter().enumerate() {
        let Some(&i) = old_pos.get(c.id.as_str()) else {
            out.push(json!({"change": "added", "cut": c.id, "position": j + 1, "scene": c.scene}));
            continue;
        };
        let o = &from[i];
        let mut fields = serde_json::Map::new();
        let mut field = |name: &str, a: Value, b: Value| {
            if a != b {
                fields.insert(name.into(), json!({"from": a, "to": b}));
            }
        };
        field("scene", json!(o.scene), json!(c.scene));
        field("camera", json!(o.camera), json!(c.camera));
        field("copy", json!(o.copy), json!(c.copy));
        field("duration_s", json!(o.duration_s), json!(c.duration_s));
        field("image_prompt", json!(o.image_prompt), json!(c.image_prompt));
        field("seed", json!(o.seed), json!(c.seed));
        let (a, b) = (
            o.image.as_ref().map(|m| m.file.as_str()),
            c.image.as_ref().map(|m| m.file.as_str()),
        );
        // A cut still being drawn in the newer version is a change of picture too.
        if a != b {
            fields.insert("image".into(), json!({"from": a, "to": b}));
        }
        if !fields.is_empty() {
            out.push(json!({"change": "edited", "cut": c.id, "position": j + 1, "fields": fields}));
        }
    }
    out
}

/// Indices (into `v`) of one longest strictly increasing subsequence.
fn longest_increasing(v: &[usize]) -> HashSet<usize> {
    let n = v.len();
    let mut len = vec![1usize; n];
    let mut prev = vec![usize::MAX; n];
    for i in 0..n {
        for j in 0..i {
            if v[j] < v[i] && len[j] + 1 > len[i] {
                len[i] = len[j] + 1;
                prev[i] = j;
            }
        }
    }
    let mut out = HashSet::new();
    let Some(mut k) = (0..n).max_by_key(|&i| (len[i], std::cmp::Reverse(i))) else {
        return out;
    };
    loop {
        out.insert(k);
        if prev[k] == usize::MAX {
            break;
        }
        k = prev[k];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(n: usize) -> Vec<Cut> {
        (1..=n)
            .map(|i| {
                CutText {
                    scene: format!("장면 {i}"),
                    duration_s: 2.0,
                    ..CutText::default()
                }
                .into_cut(format!("c{i}"), i as u64)
            })
            .collect()
    }

    fn changes(v: &[Value]) -> Vec<String> {
        v.iter()
            .map(|c| format!("{} {}", c["change"].as_str().unwrap(), c["cut"]))
            .collect()
    }

    #[test]
    fn aspect_sizes_keep_the_shape() {
        assert_eq!(Aspect::Wide.dims(512, 8), (512, 288));
        assert_eq!(Aspect::Tall.dims(512, 8), (288, 512));
        assert_eq!(Aspect::Square.dims(64, 8), (64, 64));
        assert_eq!(Aspect::Wide.dims(320, 2), (320, 180));
    }

    #[test]
    fn a_move_is_one_change_not_a_shift_of_every_cut() {
        let from = board(6);
        let mut to = from.clone();
        let mut title = "t".to_string();
        apply(
            &mut title,
            &mut to,
            &[Op::Move {
                cut: CutRef::Id("c5".into()),
                to: 2,
            }],
            || 0,
            || 0,
        )
        .unwrap();
        let d = diff("t", &from, &title, &to);
        assert_eq!(changes(&d), vec!["moved \"c5\""]);
        assert_eq!(d[0]["from"], 5);
        assert_eq!(d[0]["to"], 2);
    }

    #[test]
    fn delete_insert_edit_and_regenerate_are_listed_exactly() {
        let from = board(6);
        let mut to = from.clone();
        let mut title = "t".to_string();
        let ops: Vec<Op> = serde_json::from_value(json!([
            {"op": "delete", "cut": 2},
            {"op": "edit", "cut": "c4", "copy": "새 카피"},
            {"op": "regenerate", "cut": "c6", "seed": 99},
            {"op": "insert", "at": 1, "scene": "오프닝", "duration_s": 1.5},
            {"op": "title", "title": "새 제목"},
        ]))
        .unwrap();
        apply(&mut title, &mut to, &ops, || 7, || 8).unwrap();
        assert_eq!(to.len(), 6);
        assert_eq!(to[0].scene, "오프닝");
        assert_eq!(to[0].seed, 7);
        let d = diff("t", &from, &title, &to);
        let mut got = changes(&d);
        got.retain(|c| !c.starts_with("added"));
        assert_eq!(
            got,
            vec![
                "title null",
                "removed \"c2\"",
                "edited \"c4\"",
                "edited \"c6\""
            ]
        );
        assert!(d
            .iter()
            .any(|c| c["change"] == "added" && c["position"] == 1));
        let c4 = d.iter().find(|c| c["cut"] == "c4").unwrap();
        assert_eq!(
            c4["fields"].as_object().unwrap().keys().collect::<Vec<_>>(),
            vec!["copy"]
        );
        let c6 = d.iter().find(|c| c["cut"] == "c6").unwrap();
        assert_eq!(c6["fields"]["seed"]["to"], 99);
        assert!(diff(&title, &to, &title, &to).is_empty());
    }

    #[test]
    fn bounds_and_bad_references_name_the_op() {
        let mut cuts = board(4);
        let mut title = String::new();
        let err = |ops: Value, cuts: &mut Vec<Cut>, title: &mut String| {
            let ops: Vec<Op> = serde_json::from_value(ops).unwrap();
            // The board's state (its cuts) refuses with a conflict, a bad value with an input
            // error; both name the op.
            match apply(title, cuts, &ops, || 0, || 0) {
                Err(PlatformError::Conflict { field, .. }) => format!("conflict {field}"),
                Err(PlatformError::InvalidInput { field, .. }) => format!("invalid {field}"),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            err(json!([{"op": "delete", "cut": 1}]), &mut cuts, &mut title),
            "conflict ops[0]"
        );
        assert_eq!(
            err(
                json!([{"op": "move", "cut": "nope", "to": 1}]),
                &mut cuts,
                &mut title
            ),
            "conflict ops[0].cut"
        );
        assert_eq!(
            err(
                json!([{"op": "title", "title": "x"}, {"op": "move", "cut": 1, "to": 9}]),
                &mut cuts,
                &mut title
            ),
            "conflict ops[1].to"
        );
        assert_eq!(
            err(
                json!([{"op": "edit", "cut": 1, "duration_s": 99.0}]),
                &mut cuts,
                &mut title
            ),
            "invalid ops[0].duration_s"
        );
        assert!(serde_json::from_value::<Vec<Op>>(json!([{"op": "explode", "cut": 1}])).is_err());
    }

    #[test]
    fn an_unchanged_prompt_keeps_the_picture() {
        let mut cuts = board(4);
        cuts[0].image = Some(CutImage {
            file: "atelier-file://f".into(),
            prompt: "p".into(),
            seed: 1,
            model: "m".into(),
            width: 8,
            height: 8,
            steps: 1,
            scheduler: "s".into(),
            weights_sha256: None,
            made_in: 1,
            flagged: false,
            blurred: false,
            screening: Value::Null,
        });
        let mut title = String::new();
        let same = cuts[0].image_prompt.clone();
        let ops = [Op::Edit {
            cut: CutRef::Position(1),
            scene: None,
            camera: Some("클로즈업".into()),
            copy: None,
            duration_s: None,
            image_prompt: Some(same),
        }];
        apply(&mut title, &mut cuts, &ops, || 0, || 0).unwrap();
        assert!(cuts[0].image.is_some());
        let ops = [Op::Edit {
            cut: CutRef::Position(1),
            scene: None,
            camera: None,
            copy: None,
            duration_s: None,
            image_prompt: Some("a new angle".into()),
        }];
        apply(&mut title, &mut cuts, &ops, || 0, || 0).unwrap();
        assert!(cuts[0].image.is_none());
    }
}
