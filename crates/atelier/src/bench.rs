//! `atelier bench`: component timings on random weights in SD-Turbo's exact shapes.
//!
//! Speed does not depend on weight values, so the benchmark synthesizes weights from the
//! configs in `bench/configs/sd-turbo` (embedded in the binary), checks the parameter counts
//! against `param_counts.json`, optionally writes the weights as a diffusers folder (so the
//! PyTorch reference in `bench/reference/` times the very same tensors), and prints the median
//! time, achieved GFLOP/s and the share of this machine's measured f32 matmul ceiling.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use atelier_engine::config::{ClipTextConfig, UNetConfig, VaeConfig};
use atelier_engine::model::{default_dtype, parse_device, parse_dtype};
use atelier_engine::models::clip::ClipTextModel;
use atelier_engine::models::unet::UNet;
use atelier_engine::models::vae::{VaeDecoder, VaeEncoder};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use clap::Args;

const MODEL_INDEX: &str = include_str!("../../../bench/configs/sd-turbo/model_index.json");
const UNET: &str = include_str!("../../../bench/configs/sd-turbo/unet/config.json");
const VAE: &str = include_str!("../../../bench/configs/sd-turbo/vae/config.json");
const TEXT: &str = include_str!("../../../bench/configs/sd-turbo/text_encoder/config.json");
const SCHEDULER: &str =
    include_str!("../../../bench/configs/sd-turbo/scheduler/scheduler_config.json");
const TOKENIZER_CONFIG: &str =
    include_str!("../../../bench/configs/sd-turbo/tokenizer/tokenizer_config.json");
const PARAM_COUNTS: &str = include_str!("../../../bench/configs/sd-turbo/param_counts.json");

/// FLOPs of each timed component for SD-Turbo's shapes (multiply-adds counted as 2), as
/// counted by the reference measurement that accompanies the configs.
const FLOPS: &[(&str, f64)] = &[
    ("text encoder, 1 prompt", 45e9),
    ("unet step 512x512 batch 1", 804e9),
    ("unet step 512x512 batch 2", 1609e9),
    ("unet step 256x256 batch 1", 181e9),
    ("unet step 256x256 batch 2", 362e9),
    ("vae decode 64x64 -> 512x512", 2515e9),
    ("vae decode 32x32 -> 256x256", 622e9),
];

/// Options of `atelier bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Timed runs per component (median reported), after one warm-up run.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Only components whose name contains this text (e.g. "unet", "256").
    #[arg(long)]
    only: Option<String>,
    /// Write the synthesized weights as a diffusers folder here (for bench/reference).
    #[arg(long)]
    write_weights: Option<PathBuf>,
    /// Also write results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Build and count parameters only; time nothing.
    #[arg(long)]
    count_only: bool,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long)]
    dtype: Option<String>,
}

fn count(vm: &VarMap) -> usize {
    vm.all_vars().iter().map(|v| v.elem_count()).sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time<F: FnMut() -> anyhow::Result<()>>(
    runs: usize,
    dev: &Device,
    mut f: F,
) -> anyhow::Result<f64> {
    f()?;
    dev.synchronize()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        dev.synchronize()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// One timed result.
#[derive(Debug, serde::Serialize)]
struct Row {
    component: String,
    seconds: f64,
    gflops: f64,
    flop: f64,
}

pub fn run(a: BenchArgs) -> anyhow::Result<i32> {
    let dev = parse_device(&a.device)?;
    let dtype = match &a.dtype {
        Some(d) => parse_dtype(d, &dev)?,
        None => default_dtype(&dev),
    };
    let unet_cfg: UNetConfig = serde_json::from_str(UNET)?;
    let vae_cfg: VaeConfig = serde_json::from_str(VAE)?;
    let text_cfg: ClipTextConfig = serde_json::from_str(TEXT)?;
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(PARAM_COUNTS)?;
    let plan = unet_cfg.plan(std::path::Path::new(
        "bench/configs/sd-turbo/unet/config.json",
    ))?;

    eprintln!(
        "synthesizing SD-Turbo-shaped random weights ({dtype:?} on {:?})...",
        dev
    );
    let (unet_vm, text_vm, vae_vm, dec_vm) =
        (VarMap::new(), VarMap::new(), VarMap::new(), VarMap::new());
    let unet = UNet::new(
        &unet_cfg,
        &plan,
        VarBuilder::from_varmap(&unet_vm, dtype, &dev),
    )?;
    let text = ClipTextModel::new(&text_cfg, VarBuilder::from_varmap(&text_vm, dtype, &dev))?;
    let vae = VaeDecoder::new(&vae_cfg, VarBuilder::from_varmap(&vae_vm, dtype, &dev))?;
    let _encoder = VaeEncoder::new(&vae_cfg, VarBuilder::from_varmap(&vae_vm, dtype, &dev))?;
    let _ = VaeDecoder::new(&vae_cfg, VarBuilder::from_varmap(&dec_vm, dtype, &dev))?;
    let mut all_match = true;
    println!(
        "{:<14} {:>14} {:>14}  match",
        "parameters", "atelier", "expected"
    );
    for (name, got) in [
        ("unet", count(&unet_vm)),
        ("text_encoder", count(&text_vm)),
        ("vae", count(&vae_vm)),
        ("vae_decoder", count(&dec_vm)),
    ] {
        let want = expected.get(name).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
        all_match &= got == want;
        println!(
            "{name:<14} {got:>14} {want:>14}  {}",
            if got == want { "yes" } else { "NO" }
        );
    }
    if !all_match {
        bail!("parameter counts differ from param_counts.json: the graph does not match the architecture");
    }

    if let Some(dir) = &a.write_weights {
        let write = |rel: &str, text: &str| -> anyhow::Result<()> {
            let p = dir.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
        };
        write("model_index.json", MODEL_INDEX)?;
        write("unet/config.json", UNET)?;
        write("vae/config.json", VAE)?;
        write("text_encoder/config.json", TEXT)?;
        write("scheduler/scheduler_config.json", SCHEDULER)?;
        write("tokenizer/tokenizer_config.json", TOKENIZER_CONFIG)?;
        // Weights are written as f32 so both sides load identical tensors.
        let save = |vm: &VarMap, rel: &str| -> anyhow::Result<()> {
            let tensors: std::collections::HashMap<String, Tensor> = vm
                .data()
                .lock()
                .map_err(|_| anyhow::anyhow!("weight map lock poisoned"))?
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.as_tensor().to_dtype(DType::F32)?)))
                .collect::<anyhow::Result<_>>()?;
            candle_core::safetensors::save(&tensors, dir.join(rel))?;
            Ok(())
        };
        save(&unet_vm, "unet/diffusion_pytorch_model.safetensors")?;
        save(&vae_vm, "vae/diffusion_pytorch_model.safetensors")?;
        save(&text_vm, "text_encoder/model.safetensors")?;
        eprintln!("wrote diffusers folder {}", dir.display());
    }
    if a.count_only {
        return Ok(0);
    }

    let wanted = |name: &str| a.only.as_deref().is_none_or(|o| name.contains(o));
    let mut rows = Vec::new();
    let n = 4096;
    let x = Tensor::randn(0f32, 1.0, (n, n), &dev)?.to_dtype(dtype)?;
    let y = Tensor::randn(0f32, 1.0, (n, n), &dev)?.to_dtype(dtype)?;
    let mm = time(a.runs, &dev, || {
        x.matmul(&y)?;
        Ok(())
    })?;
    let ceiling = 2.0 * (n as f64).powi(3) / mm / 1e9;
    println!("\nmatmul {n}^3 {dtype:?}: {mm:.3} s = {ceiling:.1} GFLOP/s (the ceiling below)");

    for (name, flop) in FLOPS {
        if !wanted(name) {
            continue;
        }
        let secs = if name.starts_with("text") {
            let ids: Vec<u32> = (0..77u32).map(|i| 49406u32.min(320 + i * 97)).collect();
            let ids = Tensor::new(ids.as_slice(), &dev)?.unsqueeze(0)?;
            time(a.runs, &dev, || {
                text.forward(&ids)?;
                Ok(())
            })?
        } else if name.starts_with("unet") {
            let (side, batch) = match *name {
                "unet step 512x512 batch 1" => (64, 1),
                "unet step 512x512 batch 2" => (64, 2),
                "unet step 256x256 batch 1" => (32, 1),
                _ => (32, 2),
            };
            let x = Tensor::randn(0f32, 1.0, (batch, 4, side, side), &dev)?.to_dtype(dtype)?;
            let ctx = Tensor::randn(0f32, 1.0, (batch, 77, plan.cross_attention_dim), &dev)?
                .to_dtype(dtype)?;
            let t = Tensor::full(999f32, batch, &dev)?;
            time(a.runs, &dev, || {
                unet.forward(&x, &t, &ctx, None)?;
                Ok(())
            })?
        } else {
            let side = if name.contains("64x64") { 64 } else { 32 };
            let z = Tensor::randn(0f32, 1.0, (1, 4, side, side), &dev)?.to_dtype(dtype)?;
            time(a.runs, &dev, || {
                vae.forward(&z)?;
                Ok(())
            })?
        };
        let gflops = flop / secs / 1e9;
        println!(
            "{name:<30} {secs:>8.3} s  {gflops:>7.1} GFLOP/s  {:>5.1}% of ceiling",
            100.0 * gflops / ceiling
        );
        rows.push(Row {
            component: name.to_string(),
            seconds: secs,
            gflops,
            flop: *flop,
        });
    }
    if let Some(p) = &a.json {
        let doc = serde_json::json!({
            "engine": "atelier",
            "dtype": format!("{dtype:?}"),
            "matmul_gflops": ceiling,
            "components": rows,
        });
        std::fs::write(p, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(0)
}
