//! The Stable Diffusion safety checker, in the format diffusers ships as `safety_checker/`
//! (a CLIP config + weights with a vision tower, a visual projection and concept embeddings
//! with thresholds) and `feature_extractor/preprocessor_config.json`.
//!
//! The decision rule is diffusers' `StableDiffusionSafetyChecker.forward`: cosine similarity
//! of the projected image embedding with each concept, minus the concept's threshold, rounded
//! to 3 decimals; any "special care" concept above its threshold lowers every threshold by
//! 0.01; the image is flagged when any concept scores above 0.

use std::path::{Path, PathBuf};

use atelier_engine::image::RgbImage;
use atelier_engine::models::clip::{ClipVisionConfig, ClipVisionModel};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::SafetyError;

/// Whether images were screened; every result carries this, so a missing checker is never
/// mistaken for a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageScreening {
    /// A checker looked at the image.
    Checked,
    /// No checker is installed: the image was not screened.
    Unavailable,
}

/// The checker's verdict on one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageVerdict {
    /// diffusers' `has_nsfw_concepts`.
    pub nsfw: bool,
    /// Indices of concepts over their threshold.
    pub concepts: Vec<usize>,
    /// Indices of special-care concepts over their threshold.
    pub special: Vec<usize>,
    /// Highest `cosine - threshold` over all concepts (for audit; > 0 means flagged).
    pub max_score: f32,
}

#[derive(Debug, Clone, Deserialize)]
struct CheckerConfig {
    vision_config: ClipVisionConfig,
    #[serde(default = "d_proj")]
    projection_dim: usize,
}

fn d_proj() -> usize {
    768
}

#[derive(Debug, Clone, Deserialize)]
struct Preprocess {
    #[serde(default)]
    image_mean: Option<Vec<f32>>,
    #[serde(default)]
    image_std: Option<Vec<f32>>,
}

const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// A loaded safety checker.
#[derive(Debug)]
pub struct SafetyChecker {
    vision: ClipVisionModel,
    projection: Linear,
    concepts: Tensor,
    concept_thresholds: Vec<f32>,
    special: Tensor,
    special_thresholds: Vec<f32>,
    size: usize,
    mean: [f32; 3],
    std: [f32; 3],
    device: Device,
    /// Where it was loaded from.
    pub path: PathBuf,
}

fn err(path: &Path, message: impl Into<String>) -> SafetyError {
    SafetyError::Checker {
        path: path.display().to_string(),
        message: message.into(),
    }
}

impl SafetyChecker {
    /// Finds a checker under `dir`: a pipeline folder with `safety_checker/`, or a checker
    /// folder itself (`config.json` + `*.safetensors`). `None` when there is none.
    pub fn find(dir: &Path) -> Option<PathBuf> {
        [dir.join("safety_checker"), dir.to_path_buf()]
            .into_iter()
            .find(|d| {
                d.join("config.json").is_file()
                    && std::fs::read_to_string(d.join("config.json"))
                        .map(|s| s.contains("vision_config"))
                        .unwrap_or(false)
            })
    }

    /// Loads the checker in `dir` (see [`SafetyChecker::find`]).
    pub fn load(dir: &Path, device: &Device) -> Result<Self, SafetyError> {
        let root = Self::find(dir).ok_or_else(|| {
            err(
                dir,
                "no safety checker here (expected safety_checker/config.json with a vision_config)",
            )
        })?;
        let cfg_path = root.join("config.json");
        let cfg: CheckerConfig = serde_json::from_str(
            &std::fs::read_to_string(&cfg_path).map_err(|e| err(&cfg_path, e.to_string()))?,
        )
        .map_err(|e| err(&cfg_path, e.to_string()))?;
        let weights = atelier_engine::weights::find_weights(&root, "model")?;
        // SAFETY: the files are mapped read-only and not modified while loaded.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&weights, DType::F32, device) }
            .map_err(|e| err(&root, e.to_string()))?;
        let v = &cfg.vision_config;
        let vision = ClipVisionModel::new(v, vb.pp("vision_model.vision_model"))
            .map_err(|e| err(&root, format!("vision tower: {e}")))?;
        let projection = candle_nn::linear_no_bias(
            v.hidden_size,
            cfg.projection_dim,
            vb.pp("visual_projection"),
        )
        .map_err(|e| err(&root, format!("visual_projection: {e}")))?;
        let get2 = |name: &str| -> Result<Tensor, SafetyError> {
            let t = vb
                .get_unchecked(name)
                .map_err(|e| err(&root, format!("{name}: {e}")))?;
            let (_, d) = t.dims2().map_err(|e| err(&root, format!("{name}: {e}")))?;
            if d != cfg.projection_dim {
                return Err(err(
                    &root,
                    format!(
                        "{name} has width {d}, expected projection_dim {}",
                        cfg.projection_dim
                    ),
                ));
            }
            Ok(t)
        };
        let concepts = get2("concept_embeds")?;
        let special = get2("special_care_embeds")?;
        let get1 = |name: &str, n: usize| -> Result<Vec<f32>, SafetyError> {
            let t = vb
                .get(n, name)
                .map_err(|e| err(&root, format!("{name}: {e}")))?;
            t.to_vec1::<f32>().map_err(SafetyError::from)
        };
        let concept_thresholds = get1("concept_embeds_weights", concepts.dim(0)?)?;
        let special_thresholds = get1("special_care_embeds_weights", special.dim(0)?)?;
        let (mut mean, mut std) = (CLIP_MEAN, CLIP_STD);
        for p in [
            root.join("preprocessor_config.json"),
            root.join("../feature_extractor/preprocessor_config.json"),
        ] {
            if let Ok(text) = std::fs::read_to_string(&p) {
                let pp: Preprocess =
                    serde_json::from_str(&text).map_err(|e| err(&p, e.to_string()))?;
                if let Some(m) = pp.image_mean.filter(|m| m.len() == 3) {
                    mean = [m[0], m[1], m[2]];
                }
                if let Some(s) = pp.image_std.filter(|s| s.len() == 3) {
                    std = [s[0], s[1], s[2]];
                }
                break;
            }
        }
        Ok(Self {
            vision,
            projection,
            concepts: l2(&concepts)?,
            concept_thresholds,
            special: l2(&special)?,
            special_thresholds,
            size: v.image_size,
            mean,
            std,
            device: device.clone(),
            path: root,
        })
    }

    /// CLIP preprocessing: shortest side to the model's size (bicubic), centre crop,
    /// scale to [0, 1], normalise per channel. Returns `[3, S, S]`.
    fn pixels(&self, img: &RgbImage) -> Result<Tensor, SafetyError> {
        let s = self.size as u32;
        let (w, h) = (img.width as u32, img.height as u32);
        let buf = image::RgbImage::from_raw(w, h, img.data.clone())
            .ok_or_else(|| err(&self.path, "image buffer has the wrong size"))?;
        let scale = s as f32 / w.min(h).max(1) as f32;
        let (nw, nh) = (
            ((w as f32 * scale).round() as u32).max(s),
            ((h as f32 * scale).round() as u32).max(s),
        );
        let resized =
            image::imageops::resize(&buf, nw, nh, image::imageops::FilterType::CatmullRom);
        let (x0, y0) = ((nw - s) / 2, (nh - s) / 2);
        let crop = image::imageops::crop_imm(&resized, x0, y0, s, s).to_image();
        let n = (s * s) as usize;
        let mut planar = vec![0f32; 3 * n];
        for (i, p) in crop.pixels().enumerate() {
            for c in 0..3 {
                planar[c * n + i] = (p[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        Ok(Tensor::from_vec(
            planar,
            (3, s as usize, s as usize),
            &self.device,
        )?)
    }

    /// Projected image embeddings `[B, projection_dim]` (not normalised).
    pub fn embed(&self, images: &[RgbImage]) -> Result<Tensor, SafetyError> {
        let px = images
            .iter()
            .map(|i| self.pixels(i))
            .collect::<Result<Vec<_>, _>>()?;
        let px = Tensor::stack(&px, 0)?;
        let pooled = self.vision.forward(&px)?;
        Ok(self.projection.forward(&pooled)?)
    }

    /// Screens images; one verdict each.
    pub fn check(&self, images: &[RgbImage]) -> Result<Vec<ImageVerdict>, SafetyError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let e = l2(&self.embed(images)?)?;
        let special: Vec<Vec<f32>> = e.matmul(&self.special.t()?)?.to_vec2()?;
        let concept: Vec<Vec<f32>> = e.matmul(&self.concepts.t()?)?.to_vec2()?;
        let round3 = |x: f32| (x * 1000.0).round() / 1000.0;
        Ok(special
            .iter()
            .zip(&concept)
            .map(|(sp, co)| {
                let mut adjustment = 0.0f32;
                let mut max_score = f32::NEG_INFINITY;
                let mut spec = Vec::new();
                for (i, (c, t)) in sp.iter().zip(&self.special_thresholds).enumerate() {
                    let score = round3(c - t + adjustment);
                    max_score = max_score.max(score);
                    if score > 0.0 {
                        spec.push(i);
                        adjustment = 0.01;
                    }
                }
                let mut bad = Vec::new();
                for (i, (c, t)) in co.iter().zip(&self.concept_thresholds).enumerate() {
                    let score = round3(c - t + adjustment);
                    max_score = max_score.max(score);
                    if score > 0.0 {
                        bad.push(i);
                    }
                }
                ImageVerdict {
                    nsfw: !bad.is_empty(),
                    concepts: bad,
                    special: spec,
                    max_score,
                }
            })
            .collect())
    }
}

fn l2(t: &Tensor) -> Result<Tensor, SafetyError> {
    let n = t.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    Ok(t.broadcast_div(&n)?)
}

/// A strong blur for the `blur` policy: three box passes of radius `short side / 16`
/// (close to a Gaussian), so nothing recognisable survives.
pub fn blur(img: &RgbImage) -> RgbImage {
    let (w, h) = (img.width, img.height);
    let r = (w.min(h) / 16).max(2);
    let mut cur: Vec<f32> = img.data.iter().map(|&v| v as f32).collect();
    let mut tmp = vec![0f32; cur.len()];
    for _ in 0..3 {
        box_pass(&cur, &mut tmp, w, h, r, true);
        box_pass(&tmp, &mut cur, w, h, r, false);
    }
    RgbImage {
        width: w,
        height: h,
        data: cur
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect(),
    }
}

fn box_pass(src: &[f32], dst: &mut [f32], w: usize, h: usize, r: usize, horizontal: bool) {
    let (outer, inner) = if horizontal { (h, w) } else { (w, h) };
    let at = |o: usize, i: usize| {
        if horizontal {
            (o * w + i) * 3
        } else {
            (i * w + o) * 3
        }
    };
    for o in 0..outer {
        for c in 0..3 {
            let mut acc = 0f32;
            let clampi = |i: isize| i.clamp(0, inner as isize - 1) as usize;
            for k in -(r as isize)..=(r as isize) {
                acc += src[at(o, clampi(k)) + c];
            }
            let n = (2 * r + 1) as f32;
            for i in 0..inner {
                dst[at(o, i) + c] = acc / n;
                let add = clampi(i as isize + r as isize + 1);
                let sub = clampi(i as isize - r as isize);
                acc += src[at(o, add) + c] - src[at(o, sub) + c];
            }
        }
    }
}

/// Shape of a random-weight checker for tests and demos (real checkers come from diffusers).
#[derive(Debug, Clone)]
pub struct RandomChecker {
    pub vision: ClipVisionConfig,
    pub projection_dim: usize,
    /// Number of concepts (diffusers ships 17) and special-care concepts (3).
    pub concepts: usize,
    pub special: usize,
    /// Threshold written for every concept (`concept_embeds_weights`).
    pub threshold: f32,
    /// Special-care threshold (`special_care_embeds_weights`).
    pub special_threshold: f32,
    pub seed: u64,
}

impl Default for RandomChecker {
    fn default() -> Self {
        Self {
            vision: ClipVisionConfig {
                hidden_size: 32,
                intermediate_size: 37,
                num_hidden_layers: 2,
                num_attention_heads: 4,
                image_size: 32,
                patch_size: 8,
                num_channels: 3,
                hidden_act: "quick_gelu".into(),
                layer_norm_eps: 1e-5,
            },
            projection_dim: 16,
            concepts: 17,
            special: 3,
            threshold: 0.99,
            special_threshold: 1.5,
            seed: 0,
        }
    }
}

impl RandomChecker {
    /// Writes `config.json` and `model.safetensors` in diffusers' `safety_checker/` layout to
    /// `dir`, with `planted` rows replacing the first concept embeddings (and their
    /// thresholds) when given.
    pub fn write(&self, dir: &Path, planted: &[(Vec<f32>, f32)]) -> Result<(), SafetyError> {
        use rand::{Rng, SeedableRng};
        std::fs::create_dir_all(dir).map_err(|e| err(dir, e.to_string()))?;
        let v = &self.vision;
        let (h, p, i) = (v.hidden_size, self.projection_dim, v.intermediate_size);
        let grid = v.image_size / v.patch_size.max(1);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed);
        let dev = Device::Cpu;
        let mut t = std::collections::HashMap::new();
        let mut rand_t = |name: String, shape: &[usize], scale: f32| -> Result<(), SafetyError> {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|_| (rng.random::<f32>() * 2.0 - 1.0) * scale)
                .collect();
            t.insert(name, Tensor::from_vec(data, shape, &dev)?);
            Ok(())
        };
        let vm = "vision_model.vision_model";
        rand_t(format!("{vm}.embeddings.class_embedding"), &[h], 0.5)?;
        rand_t(
            format!("{vm}.embeddings.patch_embedding.weight"),
            &[h, v.num_channels, v.patch_size, v.patch_size],
            0.2,
        )?;
        rand_t(
            format!("{vm}.embeddings.position_embedding.weight"),
            &[grid * grid + 1, h],
            0.2,
        )?;
        for ln in ["pre_layrnorm", "post_layernorm"] {
            rand_t(format!("{vm}.{ln}.weight"), &[h], 1.0)?;
            rand_t(format!("{vm}.{ln}.bias"), &[h], 0.1)?;
        }
        for l in 0..v.num_hidden_layers {
            let pre = format!("{vm}.encoder.layers.{l}");
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                rand_t(format!("{pre}.self_attn.{proj}.weight"), &[h, h], 0.3)?;
                rand_t(format!("{pre}.self_attn.{proj}.bias"), &[h], 0.05)?;
            }
            for ln in ["layer_norm1", "layer_norm2"] {
                rand_t(format!("{pre}.{ln}.weight"), &[h], 1.0)?;
                rand_t(format!("{pre}.{ln}.bias"), &[h], 0.1)?;
            }
            rand_t(format!("{pre}.mlp.fc1.weight"), &[i, h], 0.3)?;
            rand_t(format!("{pre}.mlp.fc1.bias"), &[i], 0.05)?;
            rand_t(format!("{pre}.mlp.fc2.weight"), &[h, i], 0.3)?;
            rand_t(format!("{pre}.mlp.fc2.bias"), &[h], 0.05)?;
        }
        rand_t("visual_projection.weight".into(), &[p, h], 0.3)?;
        rand_t("concept_embeds".into(), &[self.concepts, p], 1.0)?;
        rand_t("special_care_embeds".into(), &[self.special, p], 1.0)?;
        let mut thresholds = vec![self.threshold; self.concepts];
        if !planted.is_empty() {
            let mut rows: Vec<f32> = t["concept_embeds"].flatten_all()?.to_vec1()?;
            for (k, (e, th)) in planted.iter().enumerate().take(self.concepts) {
                if e.len() != p {
                    return Err(err(
                        dir,
                        format!("planted concept {k} has width {}, expected {p}", e.len()),
                    ));
                }
                rows[k * p..(k + 1) * p].copy_from_slice(e);
                thresholds[k] = *th;
            }
            t.insert(
                "concept_embeds".into(),
                Tensor::from_vec(rows, (self.concepts, p), &dev)?,
            );
        }
        t.insert(
            "concept_embeds_weights".into(),
            Tensor::from_vec(thresholds, self.concepts, &dev)?,
        );
        t.insert(
            "special_care_embeds_weights".into(),
            Tensor::from_vec(
                vec![self.special_threshold; self.special],
                self.special,
                &dev,
            )?,
        );
        candle_core::safetensors::save(&t, dir.join("model.safetensors"))?;
        let cfg = serde_json::json!({
            "architectures": ["StableDiffusionSafetyChecker"],
            "projection_dim": p,
            "vision_config": v,
        });
        std::fs::write(dir.join("config.json"), cfg.to_string())
            .map_err(|e| err(dir, e.to_string()))?;
        Ok(())
    }
}
