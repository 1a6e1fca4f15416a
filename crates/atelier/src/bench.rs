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
use atelier_kernels::blocked::{self, PackedA, PackedB, Precision};
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
    ("pipeline 1 step 512x512", 3364e9),
    ("pipeline 1 step 256x256", 848e9),
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
    /// After timing each component, run it once more with per-operation recording and print
    /// where the time went: each op by kind and shape, its FLOPs, GFLOP/s and share of the
    /// ceiling (CPU only: GPU ops are asynchronous).
    #[arg(long)]
    profile: bool,
    /// Instead of timing, run each component (and the 1-step 512² pipeline) once in the
    /// selected mode and once in f32 with direct convolutions, on the same weights and inputs,
    /// and print the relative error (max |diff| / max |reference|, as `atelier parity`).
    #[arg(long)]
    drift: bool,
    /// CPU matrix-product precision: `f32`, or `bf16` (bfloat16 operands, f32 accumulation;
    /// needs AVX512-BF16). Default: `ATELIER_CPU_MATH`, else f32.
    #[arg(long)]
    cpu_math: Option<String>,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long)]
    dtype: Option<String>,
}

/// Fills every variable with random values at a scale that keeps activations finite through
/// the whole network: matrices and kernels N(0, 1/fan_in), norm gains 1, biases N(0, 0.02).
/// (Speed does not depend on the values; the `--drift` comparison and the written folder need
/// non-trivial ones.)
fn randomize(vm: &VarMap) -> anyhow::Result<()> {
    let data = vm
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("weight map lock poisoned"))?;
    for (name, var) in data.iter() {
        let dims = var.dims().to_vec();
        let (dt, dev) = (var.dtype(), var.device().clone());
        let t = match dims.len() {
            0 => continue,
            1 if name.ends_with("weight") => Tensor::ones(dims[0], DType::F32, &dev)?,
            1 => Tensor::randn(0f32, 0.02, dims[0], &dev)?,
            _ => {
                let fan_in: usize = dims[1..].iter().product();
                Tensor::randn(
                    0f32,
                    1.0 / (fan_in.max(1) as f32).sqrt(),
                    dims.as_slice(),
                    &dev,
                )?
            }
        };
        var.set(&t.to_dtype(dt)?)?;
    }
    Ok(())
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
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<Profile>,
}

/// Per-operation breakdown of one run of a component.
#[derive(Debug, serde::Serialize)]
struct Profile {
    /// Wall time of the profiled run.
    seconds: f64,
    /// Time no instrumented op accounts for (candle glue, allocation).
    unattributed_seconds: f64,
    ops: Vec<atelier_engine::profile::OpStat>,
}

/// Runs `f` once with recording on and prints the breakdown against `ceiling` GFLOP/s.
fn profile_run<F: FnMut() -> anyhow::Result<()>>(
    name: &str,
    ceiling: f64,
    mut f: F,
) -> anyhow::Result<Profile> {
    use atelier_engine::profile;
    profile::enable(true);
    let t = Instant::now();
    let res = f();
    let secs = t.elapsed().as_secs_f64();
    profile::enable(false);
    res?;
    let mut ops = profile::take();
    ops.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    let attributed: f64 = ops.iter().map(|o| o.seconds).sum();
    println!("\n  profile of {name}: {secs:.3} s");
    println!(
        "  {:<16} {:<28} {:>5} {:>9} {:>6} {:>8} {:>7} {:>6} {:>7}",
        "op", "shape", "calls", "ms", "share", "GFLOP", "GFLOP/s", "ceil%", "GB/s"
    );
    let mut by_kind: std::collections::BTreeMap<&str, (f64, f64)> = Default::default();
    for o in &ops {
        let e = by_kind.entry(o.kind).or_default();
        e.0 += o.seconds;
        e.1 += o.flops;
        if o.seconds / secs < 0.002 {
            continue;
        }
        let gf = o.flops / o.seconds.max(1e-12) / 1e9;
        println!(
            "  {:<16} {:<28} {:>5} {:>9.1} {:>5.1}% {:>8.1} {:>7.1} {:>5.0}% {:>7.1}",
            o.kind,
            o.shape,
            o.calls,
            o.seconds * 1e3,
            100.0 * o.seconds / secs,
            o.flops / 1e9,
            gf,
            100.0 * gf / ceiling,
            o.bytes / o.seconds.max(1e-12) / 1e9,
        );
    }
    println!("  by kind:");
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for (k, (t, fl)) in kinds {
        println!(
            "  {:<16} {:>9.1} ms {:>5.1}%  {:>7.1} GFLOP/s",
            k,
            t * 1e3,
            100.0 * t / secs,
            fl / t.max(1e-12) / 1e9
        );
    }
    println!(
        "  {:<16} {:>9.1} ms {:>5.1}%",
        "unattributed",
        (secs - attributed) * 1e3,
        100.0 * (secs - attributed) / secs
    );
    Ok(Profile {
        seconds: secs,
        unattributed_seconds: secs - attributed,
        ops,
    })
}

/// The outputs `--drift` compares: text encoder, UNet, VAE decoder, and the chained 1-step
/// 512² pipeline (text -> UNet -> VAE).
fn drift_outputs(
    text: &ClipTextModel,
    unet: &UNet,
    vae: &VaeDecoder,
    inputs: &(Tensor, Tensor, Tensor, Tensor, Tensor),
) -> anyhow::Result<[Tensor; 4]> {
    let (ids, x, t, ctx, z) = inputs;
    let hidden = text.forward(ids)?.last_hidden_state;
    let eps = unet.forward(x, t, ctx, None)?;
    let image = vae.forward(z)?;
    let chained = {
        let ctx = hidden.to_dtype(x.dtype())?;
        let eps = unet.forward(x, t, &ctx, None)?;
        vae.forward(&(x - eps)?)?
    };
    Ok([hidden, eps, image, chained])
}

/// `atelier bench --drift`: the selected CPU math and convolution choice against f32 with
/// direct convolutions, built from the same weight maps.
fn drift(
    mode: &str,
    dtype: DType,
    dev: &Device,
    cfgs: (
        &UNetConfig,
        &atelier_engine::config::UNetPlan,
        &ClipTextConfig,
        &VaeConfig,
    ),
    vms: (&VarMap, &VarMap, &VarMap),
) -> anyhow::Result<i32> {
    use atelier_engine::conv_algo::{conv_algo, set_conv_algo, ConvAlgo};
    use atelier_engine::layers::{cpu_math, set_cpu_math, CpuMath};
    let (unet_cfg, plan, text_cfg, vae_cfg) = cfgs;
    let build = || -> anyhow::Result<(ClipTextModel, UNet, VaeDecoder)> {
        Ok((
            ClipTextModel::new(text_cfg, VarBuilder::from_varmap(vms.1, dtype, dev))?,
            UNet::new(unet_cfg, plan, VarBuilder::from_varmap(vms.0, dtype, dev))?,
            VaeDecoder::new(vae_cfg, VarBuilder::from_varmap(vms.2, dtype, dev))?,
        ))
    };
    let ids: Vec<u32> = (0..77u32).map(|i| 49406u32.min(320 + i * 97)).collect();
    let inputs = (
        Tensor::new(ids.as_slice(), dev)?.unsqueeze(0)?,
        Tensor::randn(0f32, 1.0, (1, 4, 64, 64), dev)?.to_dtype(dtype)?,
        Tensor::full(999f32, 1, dev)?,
        Tensor::randn(0f32, 1.0, (1, 77, plan.cross_attention_dim), dev)?.to_dtype(dtype)?,
        Tensor::randn(0f32, 1.0, (1, 4, 64, 64), dev)?.to_dtype(dtype)?,
    );
    let (math, algo) = (cpu_math(), conv_algo());
    let ours = {
        let (text, unet, vae) = build()?;
        // Twice: in `auto` the first call of each shape measures and may switch algorithms.
        drift_outputs(&text, &unet, &vae, &inputs)?;
        drift_outputs(&text, &unet, &vae, &inputs)?
    };
    set_cpu_math(CpuMath::F32);
    set_conv_algo(ConvAlgo::Direct);
    let reference = {
        let (text, unet, vae) = build()?;
        drift_outputs(&text, &unet, &vae, &inputs)?
    };
    set_cpu_math(math);
    set_conv_algo(algo);
    println!(
        "\ndrift of {mode} against f32 with direct convolutions (max |diff| / max |reference|):"
    );
    for (name, (o, r)) in [
        "text encoder last hidden state",
        "unet step 512x512 (noise prediction)",
        "vae decode 64x64 -> 512x512",
        "pipeline 1 step 512x512 (decoded image)",
    ]
    .iter()
    .zip(ours.iter().zip(reference.iter()))
    {
        let e = atelier_engine::parity::rel_err(o, r)?;
        println!("  {name:<42} {e:.2e}");
    }
    Ok(0)
}

pub fn run(a: BenchArgs) -> anyhow::Result<i32> {
    let dev = parse_device(&a.device)?;
    let dtype = match &a.dtype {
        Some(d) => parse_dtype(d, &dev)?,
        None => default_dtype(&dev),
    };
    if let Some(m) = &a.cpu_math {
        let math = atelier_engine::layers::CpuMath::parse(m)
            .with_context(|| format!("--cpu-math: expected f32 or bf16, got {m:?}"))?;
        if !math.supported() {
            bail!("--cpu-math {m}: this CPU has no AVX512-BF16");
        }
        atelier_engine::layers::set_cpu_math(math);
    }
    let math = atelier_engine::layers::cpu_math();
    let mode = match (dev.is_cpu(), math) {
        (true, atelier_engine::layers::CpuMath::Bf16) => "cpu bf16".to_string(),
        _ => format!("{dtype:?}"),
    };
    // How stride-1 3x3 convolutions run (ATELIER_WINOGRAD), part of the mode's name.
    let mode = if dev.is_cpu() {
        use atelier_engine::conv_algo::{conv_algo, ConvAlgo};
        match conv_algo() {
            ConvAlgo::Auto => format!("{mode} +winograd(auto)"),
            ConvAlgo::Direct => format!("{mode} direct"),
            ConvAlgo::Winograd => format!("{mode} +winograd"),
        }
    } else {
        mode
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
    // Building a model declares its variables (zeros); fill them with random values, then
    // build the models that run from the filled maps (layers pack their weights when built).
    drop(UNet::new(
        &unet_cfg,
        &plan,
        VarBuilder::from_varmap(&unet_vm, dtype, &dev),
    )?);
    drop(ClipTextModel::new(
        &text_cfg,
        VarBuilder::from_varmap(&text_vm, dtype, &dev),
    )?);
    drop(VaeDecoder::new(
        &vae_cfg,
        VarBuilder::from_varmap(&vae_vm, dtype, &dev),
    )?);
    drop(VaeEncoder::new(
        &vae_cfg,
        VarBuilder::from_varmap(&vae_vm, dtype, &dev),
    )?);
    for vm in [&unet_vm, &text_vm, &vae_vm] {
        randomize(vm)?;
    }
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
    if a.drift {
        drop((text, unet, vae));
        return drift(
            &mode,
            dtype,
            &dev,
            (&unet_cfg, &plan, &text_cfg, &vae_cfg),
            (&unet_vm, &text_vm, &vae_vm),
        );
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
    let candle_gflops = 2.0 * (n as f64).powi(3) / mm / 1e9;
    println!(
        "\nmatmul {n}^3 {dtype:?}, candle (gemm crate): {mm:.3} s = {candle_gflops:.1} GFLOP/s"
    );
    // The machine's f32 ceiling: the best product we can run here, which on AVX-512 CPUs is
    // our blocked kernel (the gemm crate runs 256-bit FMAs on stable Rust).
    let mut ceiling = candle_gflops;
    if dev.is_cpu() && blocked::available(Precision::F32) {
        let (xv, yv) = (
            x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
            y.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
        );
        let pa = PackedA::pack(Precision::F32, &xv, n, n, n, 1);
        let pb = PackedB::pack(Precision::F32, &yv, n, n, n, 1);
        let mut out = vec![0f32; n * n];
        let secs = time(a.runs, &dev, || {
            blocked::gemm(&pa, &pb, &mut out, n, false);
            Ok(())
        })?;
        let g = 2.0 * (n as f64).powi(3) / secs / 1e9;
        println!("matmul {n}^3 F32, atelier blocked AVX-512: {secs:.3} s = {g:.1} GFLOP/s");
        ceiling = ceiling.max(g);
    }
    println!("f32 ceiling used below: {ceiling:.1} GFLOP/s");

    for (name, flop) in FLOPS {
        if !wanted(name) {
            continue;
        }
        let mut prof = None;
        let secs = if name.starts_with("pipeline") {
            // SD-Turbo's one-step image: encode the prompt, one UNet call, decode.
            let side = if name.contains("512") { 64 } else { 32 };
            let ids: Vec<u32> = (0..77u32).map(|i| 49406u32.min(320 + i * 97)).collect();
            let ids = Tensor::new(ids.as_slice(), &dev)?.unsqueeze(0)?;
            let x = Tensor::randn(0f32, 1.0, (1, 4, side, side), &dev)?.to_dtype(dtype)?;
            let t = Tensor::full(999f32, 1, &dev)?;
            let mut f = || {
                let ctx = text.forward(&ids)?.last_hidden_state.to_dtype(dtype)?;
                let eps = unet.forward(&x, &t, &ctx, None)?;
                vae.forward(&(&x - eps)?)?;
                Ok(())
            };
            let secs = time(a.runs, &dev, &mut f)?;
            if a.profile {
                prof = Some(profile_run(name, ceiling, &mut f)?);
            }
            secs
        } else if name.starts_with("text") {
            let ids: Vec<u32> = (0..77u32).map(|i| 49406u32.min(320 + i * 97)).collect();
            let ids = Tensor::new(ids.as_slice(), &dev)?.unsqueeze(0)?;
            let mut f = || {
                text.forward(&ids)?;
                Ok(())
            };
            let secs = time(a.runs, &dev, &mut f)?;
            if a.profile {
                prof = Some(profile_run(name, ceiling, &mut f)?);
            }
            secs
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
            let mut f = || {
                unet.forward(&x, &t, &ctx, None)?;
                Ok(())
            };
            let secs = time(a.runs, &dev, &mut f)?;
            if a.profile {
                prof = Some(profile_run(name, ceiling, &mut f)?);
            }
            secs
        } else {
            let side = if name.contains("64x64") { 64 } else { 32 };
            let z = Tensor::randn(0f32, 1.0, (1, 4, side, side), &dev)?.to_dtype(dtype)?;
            let mut f = || {
                vae.forward(&z)?;
                Ok(())
            };
            let secs = time(a.runs, &dev, &mut f)?;
            if a.profile {
                prof = Some(profile_run(name, ceiling, &mut f)?);
            }
            secs
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
            profile: prof,
        });
    }
    if let Some(p) = &a.json {
        let doc = serde_json::json!({
            "engine": "atelier",
            "dtype": format!("{dtype:?}"),
            "mode": mode,
            "matmul_gflops": ceiling,
            "components": rows,
        });
        std::fs::write(p, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(0)
}
