//! Typed views of the JSON configs in a diffusers folder.
//!
//! Every default below is the default of the matching diffusers/transformers class, so a config
//! that omits a field means what it means to diffusers. Fields we cannot honour are rejected with
//! [`EngineError::Unsupported`] at load time instead of silently computing something else.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{EngineError, Result};

/// A config value that diffusers accepts either as one number or as one number per block.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(usize),
    Many(Vec<usize>),
}

impl OneOrMany {
    /// Expands to one value per block, checking the list length when it is a list.
    pub fn per_block(&self, n: usize, path: &Path, field: &str) -> Result<Vec<usize>> {
        match self {
            Self::One(v) => Ok(vec![*v; n]),
            Self::Many(v) if v.len() == n => Ok(v.clone()),
            Self::Many(v) => Err(EngineError::config(
                path,
                format!(
                    "{field} has {} entries but the model has {n} blocks",
                    v.len()
                ),
            )),
        }
    }
}

/// Reads and parses one JSON file, naming the file in every error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => EngineError::MissingFile {
            path: path.to_path_buf(),
            why: "required config file".into(),
        },
        _ => EngineError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    serde_json::from_str(&text).map_err(|e| EngineError::config(path, e.to_string()))
}

fn d_true() -> bool {
    true
}
fn d_4() -> usize {
    4
}
fn d_3() -> usize {
    3
}
fn d_1() -> usize {
    1
}
fn d_2() -> usize {
    2
}
fn d_32() -> usize {
    32
}
fn d_eps5() -> f64 {
    1e-5
}
fn d_f1() -> f64 {
    1.0
}
fn d_silu() -> String {
    "silu".into()
}
fn d_default() -> String {
    "default".into()
}
fn d_positional() -> String {
    "positional".into()
}
fn d_mid() -> Option<String> {
    Some("UNetMidBlock2DCrossAttn".into())
}
fn d_heads() -> OneOrMany {
    OneOrMany::One(8)
}
fn d_cross() -> OneOrMany {
    OneOrMany::One(1280)
}
fn d_one() -> OneOrMany {
    OneOrMany::One(1)
}

/// `unet/config.json` of a `UNet2DConditionModel`.
#[derive(Debug, Clone, Deserialize)]
pub struct UNetConfig {
    #[serde(default = "d_4")]
    pub in_channels: usize,
    #[serde(default = "d_4")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    #[serde(default = "d_mid")]
    pub mid_block_type: Option<String>,
    #[serde(default = "d_2")]
    pub layers_per_block: usize,
    /// Despite its name, diffusers uses this as the number of heads when `num_attention_heads` is null.
    #[serde(default = "d_heads")]
    pub attention_head_dim: OneOrMany,
    #[serde(default)]
    pub num_attention_heads: Option<OneOrMany>,
    #[serde(default = "d_cross")]
    pub cross_attention_dim: OneOrMany,
    #[serde(default = "d_one")]
    pub transformer_layers_per_block: OneOrMany,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default = "d_32")]
    pub norm_num_groups: usize,
    #[serde(default = "d_eps5")]
    pub norm_eps: f64,
    #[serde(default = "d_true")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    #[serde(default = "d_silu")]
    pub act_fn: String,
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    #[serde(default)]
    pub addition_time_embed_dim: Option<usize>,
    #[serde(default)]
    pub projection_class_embeddings_input_dim: Option<usize>,
    #[serde(default)]
    pub time_cond_proj_dim: Option<usize>,
    #[serde(default)]
    pub class_embed_type: Option<String>,
    #[serde(default)]
    pub num_class_embeds: Option<usize>,
    #[serde(default)]
    pub upcast_attention: bool,
    #[serde(default)]
    pub only_cross_attention: serde_json::Value,
    #[serde(default)]
    pub dual_cross_attention: bool,
    #[serde(default = "d_default")]
    pub resnet_time_scale_shift: String,
    #[serde(default = "d_positional")]
    pub time_embedding_type: String,
    #[serde(default)]
    pub center_input_sample: bool,
    #[serde(default = "d_3")]
    pub conv_in_kernel: usize,
    #[serde(default = "d_3")]
    pub conv_out_kernel: usize,
    #[serde(default = "d_1")]
    pub downsample_padding: usize,
    #[serde(default = "d_f1")]
    pub mid_block_scale_factor: f64,
    #[serde(default = "d_f1")]
    pub resnet_out_scale_factor: f64,
    #[serde(default)]
    pub encoder_hid_dim: Option<usize>,
    #[serde(default)]
    pub time_embedding_dim: Option<usize>,
    #[serde(default)]
    pub reverse_transformer_layers_per_block: Option<serde_json::Value>,
    #[serde(default)]
    pub sample_size: Option<usize>,
}

/// The per-block numbers a UNet is built from, resolved once from [`UNetConfig`].
#[derive(Debug, Clone)]
pub struct UNetPlan {
    pub heads: Vec<usize>,
    pub transformer_layers: Vec<usize>,
    pub cross_attention_dim: usize,
}

impl UNetConfig {
    /// Rejects configs that ask for something our UNet cannot compute and resolves per-block values.
    pub fn plan(&self, path: &Path) -> Result<UNetPlan> {
        let unsupported = |field: &str, value: String| EngineError::Unsupported {
            path: path.to_path_buf(),
            field: field.into(),
            value,
        };
        let n = self.block_out_channels.len();
        if n == 0 {
            return Err(EngineError::config(path, "block_out_channels is empty"));
        }
        if self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(EngineError::config(
                path,
                format!(
                    "{n} block_out_channels but {} down_block_types and {} up_block_types",
                    self.down_block_types.len(),
                    self.up_block_types.len()
                ),
            ));
        }
        for t in self.down_block_types.iter() {
            if t != "CrossAttnDownBlock2D" && t != "DownBlock2D" {
                return Err(unsupported("down_block_types", t.clone()));
            }
        }
        for t in self.up_block_types.iter() {
            if t != "CrossAttnUpBlock2D" && t != "UpBlock2D" {
                return Err(unsupported("up_block_types", t.clone()));
            }
        }
        match self.mid_block_type.as_deref() {
            Some("UNetMidBlock2DCrossAttn") => {}
            other => return Err(unsupported("mid_block_type", format!("{other:?}"))),
        }
        if self.act_fn != "silu" {
            return Err(unsupported("act_fn", self.act_fn.clone()));
        }
        match self.addition_embed_type.as_deref() {
            None => {}
            Some("text_time")
                if self.addition_time_embed_dim.is_none()
                    || self.projection_class_embeddings_input_dim.is_none() =>
            {
                return Err(EngineError::config(
                    path,
                    "addition_embed_type text_time needs addition_time_embed_dim and projection_class_embeddings_input_dim",
                ));
            }
            Some("text_time") => {}
            Some(other) => return Err(unsupported("addition_embed_type", other.into())),
        }
        let checks: [(&str, bool, String); 10] = [
            (
                "time_cond_proj_dim",
                self.time_cond_proj_dim.is_some(),
                format!("{:?}", self.time_cond_proj_dim),
            ),
            (
                "class_embed_type",
                self.class_embed_type.is_some(),
                format!("{:?}", self.class_embed_type),
            ),
            (
                "num_class_embeds",
                self.num_class_embeds.is_some(),
                format!("{:?}", self.num_class_embeds),
            ),
            (
                "only_cross_attention",
                !matches!(
                    &self.only_cross_attention,
                    serde_json::Value::Null | serde_json::Value::Bool(false)
                ),
                self.only_cross_attention.to_string(),
            ),
            (
                "dual_cross_attention",
                self.dual_cross_attention,
                "true".into(),
            ),
            (
                "resnet_time_scale_shift",
                self.resnet_time_scale_shift != "default",
                self.resnet_time_scale_shift.clone(),
            ),
            (
                "time_embedding_type",
                self.time_embedding_type != "positional",
                self.time_embedding_type.clone(),
            ),
            (
                "encoder_hid_dim",
                self.encoder_hid_dim.is_some(),
                format!("{:?}", self.encoder_hid_dim),
            ),
            (
                "time_embedding_dim",
                self.time_embedding_dim.is_some(),
                format!("{:?}", self.time_embedding_dim),
            ),
            (
                "reverse_transformer_layers_per_block",
                self.reverse_transformer_layers_per_block
                    .as_ref()
                    .is_some_and(|v| !v.is_null()),
                format!("{:?}", self.reverse_transformer_layers_per_block),
            ),
        ];
        for (field, bad, value) in checks {
            if bad {
                return Err(unsupported(field, value));
            }
        }
        let heads = self
            .num_attention_heads
            .as_ref()
            .unwrap_or(&self.attention_head_dim)
            .per_block(n, path, "attention_head_dim")?;
        let transformer_layers =
            self.transformer_layers_per_block
                .per_block(n, path, "transformer_layers_per_block")?;
        let cross = self
            .cross_attention_dim
            .per_block(n, path, "cross_attention_dim")?;
        if cross.iter().any(|c| *c != cross[0]) {
            return Err(unsupported("cross_attention_dim", format!("{cross:?}")));
        }
        for (i, (&c, &h)) in self.block_out_channels.iter().zip(heads.iter()).enumerate() {
            if h == 0 || c % h != 0 {
                return Err(EngineError::config(
                    path,
                    format!("block {i}: {c} channels cannot be split into {h} attention heads"),
                ));
            }
            if c % self.norm_num_groups != 0 {
                return Err(EngineError::config(
                    path,
                    format!(
                        "block {i}: {c} channels are not divisible by norm_num_groups {}",
                        self.norm_num_groups
                    ),
                ));
            }
        }
        Ok(UNetPlan {
            heads,
            transformer_layers,
            cross_attention_dim: cross[0],
        })
    }
}

fn d_vae_scale() -> f64 {
    0.18215
}
fn d_vae_down() -> Vec<String> {
    vec!["DownEncoderBlock2D".into()]
}
fn d_vae_up() -> Vec<String> {
    vec!["UpDecoderBlock2D".into()]
}
fn d_vae_channels() -> Vec<usize> {
    vec![64]
}

/// `vae/config.json` of an `AutoencoderKL`.
#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "d_3")]
    pub in_channels: usize,
    #[serde(default = "d_3")]
    pub out_channels: usize,
    #[serde(default = "d_vae_channels")]
    pub block_out_channels: Vec<usize>,
    #[serde(default = "d_vae_down")]
    pub down_block_types: Vec<String>,
    #[serde(default = "d_vae_up")]
    pub up_block_types: Vec<String>,
    #[serde(default = "d_1")]
    pub layers_per_block: usize,
    #[serde(default = "d_4")]
    pub latent_channels: usize,
    #[serde(default = "d_32")]
    pub norm_num_groups: usize,
    #[serde(default = "d_vae_scale")]
    pub scaling_factor: f64,
    #[serde(default)]
    pub shift_factor: Option<f64>,
    #[serde(default = "d_silu")]
    pub act_fn: String,
    #[serde(default = "d_true")]
    pub use_quant_conv: bool,
    #[serde(default = "d_true")]
    pub use_post_quant_conv: bool,
    #[serde(default = "d_true")]
    pub mid_block_add_attention: bool,
    #[serde(default = "d_true")]
    pub force_upcast: bool,
}

impl VaeConfig {
    /// Checks the config describes the AutoencoderKL layout we implement.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let unsupported = |field: &str, value: String| EngineError::Unsupported {
            path: path.to_path_buf(),
            field: field.into(),
            value,
        };
        if self.block_out_channels.is_empty() {
            return Err(EngineError::config(path, "block_out_channels is empty"));
        }
        if self.act_fn != "silu" {
            return Err(unsupported("act_fn", self.act_fn.clone()));
        }
        if let Some(t) = self
            .up_block_types
            .iter()
            .find(|t| *t != "UpDecoderBlock2D")
        {
            return Err(unsupported("up_block_types", t.clone()));
        }
        if let Some(t) = self
            .down_block_types
            .iter()
            .find(|t| *t != "DownEncoderBlock2D")
        {
            return Err(unsupported("down_block_types", t.clone()));
        }
        if let Some(c) = self
            .block_out_channels
            .iter()
            .find(|c| **c % self.norm_num_groups != 0)
        {
            return Err(EngineError::config(
                path,
                format!(
                    "{c} channels are not divisible by norm_num_groups {}",
                    self.norm_num_groups
                ),
            ));
        }
        Ok(())
    }

    /// Pixels per latent cell: 2^(number of up blocks - 1), 8 for every SD VAE.
    pub fn scale_factor(&self) -> usize {
        1 << self.block_out_channels.len().saturating_sub(1)
    }
}

fn d_quick_gelu() -> String {
    "quick_gelu".into()
}
fn d_eos() -> i64 {
    2
}
fn d_77() -> usize {
    77
}
fn d_512() -> usize {
    512
}

/// `text_encoder*/config.json` of a transformers `CLIPTextModel(WithProjection)`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipTextConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default = "d_77")]
    pub max_position_embeddings: usize,
    #[serde(default = "d_quick_gelu")]
    pub hidden_act: String,
    #[serde(default = "d_eps5")]
    pub layer_norm_eps: f64,
    #[serde(default = "d_eos")]
    pub eos_token_id: i64,
    #[serde(default = "d_512")]
    pub projection_dim: usize,
}

impl ClipTextConfig {
    /// Checks the activation and head split.
    pub fn validate(&self, path: &Path) -> Result<()> {
        Activation::parse(&self.hidden_act).ok_or_else(|| EngineError::Unsupported {
            path: path.to_path_buf(),
            field: "hidden_act".into(),
            value: self.hidden_act.clone(),
        })?;
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(EngineError::config(
                path,
                format!(
                    "hidden_size {} is not divisible by num_attention_heads {}",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        Ok(())
    }

    /// Whether the checkpoint carries a `text_projection` (SDXL's second encoder).
    pub fn has_projection(&self) -> bool {
        self.architectures
            .iter()
            .any(|a| a == "CLIPTextModelWithProjection")
    }
}

/// Activation functions named by transformers configs; "gelu" is the exact erf form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    QuickGelu,
    GeluErf,
    GeluTanh,
}

impl Activation {
    /// Maps a transformers `hidden_act` string; `None` when unknown.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "quick_gelu" => Some(Self::QuickGelu),
            "gelu" => Some(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            _ => None,
        }
    }
}

/// `model_index.json`: the pipeline class and its components.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelIndex {
    #[serde(rename = "_class_name")]
    pub class_name: String,
    #[serde(default)]
    pub force_zeros_for_empty_prompt: Option<bool>,
    #[serde(flatten)]
    pub components: serde_json::Map<String, serde_json::Value>,
}

impl ModelIndex {
    /// The (library, class) pair of a component, when the folder declares one.
    pub fn component(&self, name: &str) -> Option<(String, String)> {
        let arr = self.components.get(name)?.as_array()?;
        Some((arr.first()?.as_str()?.into(), arr.get(1)?.as_str()?.into()))
    }
}

/// Joins a component folder and file name inside a model folder.
pub fn component_path(root: &Path, component: &str, file: &str) -> PathBuf {
    root.join(component).join(file)
}
