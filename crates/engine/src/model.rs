//! A diffusers-format model folder: inspecting it (cheap, configs only) and loading it.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use serde_json::{Map, Value};

use crate::config::{read_json, ClipTextConfig, ModelIndex, UNetConfig, UNetPlan, VaeConfig};
use crate::error::{EngineError, Result};
use crate::models::clip::ClipTextModel;
use crate::models::unet::UNet;
use crate::models::vae::VaeDecoder;
use crate::schedulers::SchedulerKind;
use crate::tokenizer::ClipTokenizer;
use crate::weights;

/// The model families we run, detected from configs (never from the folder name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Family {
    /// SD 1.x: OpenAI CLIP-L text encoder (quick GELU), last hidden state.
    #[serde(rename = "sd1")]
    Sd1,
    /// SD 2.x and SD-Turbo: OpenCLIP-H text encoder (exact GELU) whose 23 layers already end at
    /// OpenCLIP's penultimate layer; epsilon or v-prediction.
    #[serde(rename = "sd2")]
    Sd2,
    /// SDXL and SDXL-Turbo: two text encoders, pooled embedding and size conditioning.
    #[serde(rename = "sdxl")]
    Sdxl,
}

impl Family {
    /// Human name for listings.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sd1 => "Stable Diffusion 1.x",
            Self::Sd2 => "Stable Diffusion 2.x",
            Self::Sdxl => "Stable Diffusion XL",
        }
    }
}

/// What a folder holds, read from its configs without touching weights.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub path: PathBuf,
    pub family: Family,
    /// `epsilon`, `v_prediction` or `sample`, from the scheduler config.
    pub prediction_type: String,
    /// The sampler used when a request names none.
    pub default_scheduler: SchedulerKind,
    /// The diffusers scheduler class the folder ships.
    pub scheduler_class: String,
    /// Width = height the UNet was trained at (`sample_size` x VAE factor).
    pub native_size: usize,
    /// Pixels per latent cell.
    pub vae_scale_factor: usize,
}

/// The parsed configs of a folder.
#[derive(Debug, Clone)]
pub struct ModelConfigs {
    pub root: PathBuf,
    pub index: ModelIndex,
    pub unet: UNetConfig,
    pub unet_plan: UNetPlan,
    pub vae: VaeConfig,
    pub text_encoder: ClipTextConfig,
    pub text_encoder_2: Option<ClipTextConfig>,
    pub scheduler_class: String,
    pub scheduler: Map<String, Value>,
    pub info: ModelInfo,
}

impl ModelConfigs {
    /// Reads and validates every config in `root`.
    pub fn read(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(EngineError::MissingFile {
                path: root.to_path_buf(),
                why: "model folder does not exist".into(),
            });
        }
        let index_path = root.join("model_index.json");
        let index: ModelIndex = read_json(&index_path)?;
        let unet_path = root.join("unet/config.json");
        let (unet_lib, unet_class) = index
            .component("unet")
            .unwrap_or(("diffusers".into(), "UNet2DConditionModel".into()));
        if unet_class != "UNet2DConditionModel" || unet_lib != "diffusers" {
            return Err(EngineError::UnknownFamily {
                path: index_path,
                message: format!(
                    "pipeline {} uses a {unet_class} denoiser; atelier runs UNet2DConditionModel pipelines (SD 1.x, 2.x, XL)",
                    index.class_name
                ),
            });
        }
        let unet: UNetConfig = read_json(&unet_path)?;
        let unet_plan = unet.plan(&unet_path)?;
        let vae_path = root.join("vae/config.json");
        let vae: VaeConfig = read_json(&vae_path)?;
        vae.validate(&vae_path)?;
        let te_path = root.join("text_encoder/config.json");
        let text_encoder: ClipTextConfig = read_json(&te_path)?;
        text_encoder.validate(&te_path)?;
        let te2_dir = root.join("text_encoder_2");
        let text_encoder_2 = if te2_dir.is_dir() {
            let p = te2_dir.join("config.json");
            let c: ClipTextConfig = read_json(&p)?;
            c.validate(&p)?;
            Some(c)
        } else {
            None
        };
        let family = match (unet.addition_embed_type.as_deref(), &text_encoder_2) {
            (Some("text_time"), Some(_)) => Family::Sdxl,
            (Some("text_time"), None) => {
                return Err(EngineError::UnknownFamily {
                    path: unet_path,
                    message: "the UNet expects SDXL conditioning but the folder has no text_encoder_2 (SDXL refiner-style models are not supported yet)".into(),
                })
            }
            (None, Some(_)) => {
                return Err(EngineError::UnknownFamily {
                    path: index_path,
                    message: "folder has text_encoder_2 but the UNet has no text_time embedding".into(),
                })
            }
            _ => match text_encoder.hidden_act.as_str() {
                "quick_gelu" => Family::Sd1,
                _ => Family::Sd2,
            },
        };
        let expected_ctx =
            text_encoder.hidden_size + text_encoder_2.as_ref().map_or(0, |c| c.hidden_size);
        if expected_ctx != unet_plan.cross_attention_dim {
            return Err(EngineError::config(
                &unet_path,
                format!(
                    "cross_attention_dim {} does not match the text encoders' hidden size {expected_ctx}",
                    unet_plan.cross_attention_dim
                ),
            ));
        }
        if unet.in_channels != vae.latent_channels {
            return Err(EngineError::config(
                &unet_path,
                format!(
                    "in_channels {} differs from the VAE's latent_channels {}",
                    unet.in_channels, vae.latent_channels
                ),
            ));
        }
        let sched_path = root.join("scheduler/scheduler_config.json");
        let scheduler: Map<String, Value> = read_json(&sched_path)?;
        let scheduler_class = scheduler
            .get("_class_name")
            .and_then(Value::as_str)
            .unwrap_or("EulerDiscreteScheduler")
            .to_owned();
        let default_scheduler = SchedulerKind::from_diffusers_class(&scheduler_class, &scheduler)
            .unwrap_or(SchedulerKind::Euler);
        let prediction_type = scheduler
            .get("prediction_type")
            .and_then(Value::as_str)
            .unwrap_or("epsilon")
            .to_owned();
        if !matches!(
            prediction_type.as_str(),
            "epsilon" | "v_prediction" | "sample"
        ) {
            return Err(EngineError::Unsupported {
                path: sched_path,
                field: "prediction_type".into(),
                value: prediction_type,
            });
        }
        let vae_scale_factor = vae.scale_factor();
        let info = ModelInfo {
            name: root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into()),
            path: root.to_path_buf(),
            family,
            prediction_type,
            default_scheduler,
            scheduler_class: scheduler_class.clone(),
            native_size: unet.sample_size.unwrap_or(64) * vae_scale_factor,
            vae_scale_factor,
        };
        Ok(Self {
            root: root.to_path_buf(),
            index,
            unet,
            unet_plan,
            vae,
            text_encoder,
            text_encoder_2,
            scheduler_class,
            scheduler,
            info,
        })
    }
}

/// Reads the configs of a folder and describes the model, without loading weights.
pub fn inspect(root: &Path) -> Result<ModelInfo> {
    Ok(ModelConfigs::read(root)?.info)
}

/// Where and in what precision to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: Device,
    pub dtype: DType,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }
}

/// Parses a device name: `cpu`, `cuda`, `cuda:N`, `metal`; fails clearly when not compiled in.
pub fn parse_device(name: &str) -> Result<Device> {
    let lower = name.to_ascii_lowercase();
    if lower == "cpu" {
        return Ok(Device::Cpu);
    }
    if let Some(rest) = lower.strip_prefix("cuda") {
        let ordinal = rest.trim_start_matches(':').parse::<usize>().unwrap_or(0);
        return Device::new_cuda(ordinal)
            .map_err(|e| EngineError::Device(format!("{name} ({e}); build with --features cuda")));
    }
    if lower.starts_with("metal") {
        return Device::new_metal(0).map_err(|e| {
            EngineError::Device(format!("{name} ({e}); build with --features metal"))
        });
    }
    Err(EngineError::Device(format!(
        "{name:?}: expected cpu, cuda[:N] or metal"
    )))
}

/// Parses a dtype name; half precision is refused on CPU where candle computes it slowly in f32.
pub fn parse_dtype(name: &str, device: &Device) -> Result<DType> {
    let dt = match name.to_ascii_lowercase().as_str() {
        "f32" | "float32" | "fp32" => DType::F32,
        "f16" | "float16" | "fp16" => DType::F16,
        "bf16" | "bfloat16" => DType::BF16,
        other => {
            return Err(EngineError::invalid(
                "dtype",
                format!("{other:?}: expected f32, f16 or bf16"),
            ))
        }
    };
    if device.is_cpu() && dt != DType::F32 {
        return Err(EngineError::invalid(
            "dtype",
            "half precision is only supported on cuda and metal devices",
        ));
    }
    Ok(dt)
}

/// The dtype to use when none is asked for: f32 on CPU, f16 on GPUs.
pub fn default_dtype(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::F16
    }
}

/// A loaded pipeline: tokenizers, text encoders, UNet and VAE decoder on one device.
pub struct DiffusionModel {
    pub configs: ModelConfigs,
    pub tokenizer: ClipTokenizer,
    pub tokenizer_2: Option<ClipTokenizer>,
    pub text_encoder: ClipTextModel,
    pub text_encoder_2: Option<ClipTextModel>,
    pub unet: UNet,
    pub vae: VaeDecoder,
    pub vae_dtype: DType,
    pub device: Device,
    pub dtype: DType,
    /// Bytes the weights take once loaded (every tensor in the files at the load dtype; an
    /// upper bound when a file holds tensors the graph does not read).
    pub weight_bytes: u64,
    /// How often each network ran since loading (metrics, and tests that must prove a
    /// request stopped before the expensive parts).
    pub calls: CallCounts,
}

/// Forward-pass counters of a loaded model.
#[derive(Debug, Default)]
pub struct CallCounts {
    pub text_encoder: std::sync::atomic::AtomicU64,
    pub unet: std::sync::atomic::AtomicU64,
    pub vae: std::sync::atomic::AtomicU64,
}

impl CallCounts {
    /// `(text_encoder, unet, vae)` forward passes so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.text_encoder.load(Relaxed),
            self.unet.load(Relaxed),
            self.vae.load(Relaxed),
        )
    }
}

impl std::fmt::Debug for DiffusionModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiffusionModel")
            .field("info", &self.configs.info)
            .field("dtype", &self.dtype)
            .finish()
    }
}

fn load_component<T>(
    root: &Path,
    dir: &str,
    stem: &str,
    dtype: DType,
    device: &Device,
    build: impl FnOnce(candle_nn::VarBuilder<'static>) -> candle_core::Result<T>,
) -> Result<(T, u64)> {
    let files = weights::find_weights(&root.join(dir), stem)?;
    let (vb, elements) = weights::var_builder(&files, dtype, device)?;
    let bytes = elements * dtype.size_in_bytes() as u64;
    let built = build(vb).map_err(|e| EngineError::Weights {
        path: files[0].clone(),
        message: e.to_string(),
    })?;
    Ok((built, bytes))
}

impl DiffusionModel {
    /// Loads every component of the folder at `root`.
    pub fn load(root: &Path, opts: &LoadOptions) -> Result<Self> {
        let configs = ModelConfigs::read(root)?;
        let (dev, dt) = (&opts.device, opts.dtype);
        let tokenizer = ClipTokenizer::load(&root.join("tokenizer"))?;
        let tokenizer_2 = match configs.info.family {
            Family::Sdxl => Some(ClipTokenizer::load(&root.join("tokenizer_2"))?),
            _ => None,
        };
        let (text_encoder, mut weight_bytes) =
            load_component(root, "text_encoder", "model", dt, dev, |vb| {
                ClipTextModel::new(&configs.text_encoder, vb)
            })?;
        let text_encoder_2 = match &configs.text_encoder_2 {
            Some(c) => {
                if !c.has_projection() {
                    return Err(EngineError::config(
                        root.join("text_encoder_2/config.json"),
                        "SDXL's second text encoder must be a CLIPTextModelWithProjection",
                    ));
                }
                let (te, bytes) = load_component(root, "text_encoder_2", "model", dt, dev, |vb| {
                    ClipTextModel::new(c, vb)
                })?;
                weight_bytes += bytes;
                Some(te)
            }
            None => None,
        };
        let (unet, bytes) =
            load_component(root, "unet", "diffusion_pytorch_model", dt, dev, |vb| {
                UNet::new(&configs.unet, &configs.unet_plan, vb)
            })?;
        weight_bytes += bytes;
        // SDXL's VAE overflows in f16; diffusers upcasts when the config says so.
        let vae_dtype = if dt == DType::F16 && configs.vae.force_upcast {
            DType::F32
        } else {
            dt
        };
        let (vae, bytes) = load_component(
            root,
            "vae",
            "diffusion_pytorch_model",
            vae_dtype,
            dev,
            |vb| VaeDecoder::new(&configs.vae, vb),
        )?;
        weight_bytes += bytes;
        tracing::info!(model = %configs.info.name, family = ?configs.info.family, ?dt, "model loaded");
        Ok(Self {
            configs,
            tokenizer,
            tokenizer_2,
            text_encoder,
            text_encoder_2,
            unet,
            vae,
            vae_dtype,
            device: dev.clone(),
            dtype: dt,
            weight_bytes,
            calls: CallCounts::default(),
        })
    }

    /// The folder's description.
    pub fn info(&self) -> &ModelInfo {
        &self.configs.info
    }
}
