//! Our Qwen decoder against candle-transformers' Qwen2/Qwen3 (dense and quantized) on the
//! same tiny random weights: logits after a prompt and after each of 12 decoded tokens.
//! Tolerance: 1e-4 of the logits' scale. Both compute in f32 with the same operations up to
//! summation order (ours attends without repeating KV heads), so differences are rounding.

use std::path::Path;

use atelier_llm::qwen::{Qwen, QwenConfig};
use atelier_llm::tiny::{build, TinySpec};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{quantized_qwen2, quantized_qwen3, qwen2, qwen3};

const PROMPT: [u32; 17] = [
    5, 17, 300, 42, 9, 128, 77, 3, 600, 250, 11, 12, 13, 400, 2, 1, 99,
];
const STEPS: usize = 12;

fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
        .0 as u32
}

/// Runs the prompt then greedy decoding on both; returns the worst relative error.
fn compare(ours: &mut Qwen, mut reference: impl FnMut(&[u32], usize) -> Vec<f32>) -> f32 {
    let mut worst = rel_err(&ours.forward(&PROMPT).unwrap(), &reference(&PROMPT, 0));
    let mut tok = 7u32;
    for pos in PROMPT.len()..PROMPT.len() + STEPS {
        let a = ours.forward(&[tok]).unwrap();
        let b = reference(&[tok], pos);
        worst = worst.max(rel_err(&a, &b));
        tok = argmax(&b);
    }
    worst
}

fn input(ids: &[u32]) -> Tensor {
    Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

fn logits(t: Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn dense(folder: &Path, qwen3: bool, host: bool) -> f32 {
    let cfg_json = std::fs::read_to_string(folder.join("config.json")).unwrap();
    let files = [folder.join("model.safetensors")];
    let mut ours = Qwen::from_safetensors(
        serde_json::from_str::<QwenConfig>(&cfg_json).unwrap(),
        &files,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    ours.set_host_attention(host).unwrap();
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &Device::Cpu).unwrap() };
    if qwen3 {
        let cfg: qwen3::Config = serde_json::from_str(&cfg_json).unwrap();
        let mut r = qwen3::ModelForCausalLM::new(&cfg, vb).unwrap();
        compare(&mut ours, |ids, pos| {
            logits(r.forward(&input(ids), pos).unwrap())
        })
    } else {
        let cfg: qwen2::Config = serde_json::from_str(&cfg_json).unwrap();
        let mut r = qwen2::ModelForCausalLM::new(&cfg, vb).unwrap();
        compare(&mut ours, |ids, pos| {
            logits(r.forward(&input(ids), pos).unwrap())
        })
    }
}

fn quantized(gguf: &Path, qwen3: bool) -> f32 {
    let mut f = std::fs::File::open(gguf).unwrap();
    let ct = gguf_file::Content::read(&mut f).unwrap();
    let mut ours = Qwen::from_gguf(&ct, &mut f, gguf, &Device::Cpu).unwrap();
    let mut f2 = std::fs::File::open(gguf).unwrap();
    let ct2 = gguf_file::Content::read(&mut f2).unwrap();
    if qwen3 {
        let mut r = quantized_qwen3::ModelWeights::from_gguf(ct2, &mut f2, &Device::Cpu).unwrap();
        compare(&mut ours, |ids, pos| {
            logits(r.forward(&input(ids), pos).unwrap())
        })
    } else {
        let mut r = quantized_qwen2::ModelWeights::from_gguf(ct2, &mut f2, &Device::Cpu).unwrap();
        compare(&mut ours, |ids, pos| {
            logits(r.forward(&input(ids), pos).unwrap())
        })
    }
}

#[test]
fn matches_candle_transformers_on_qwen2_and_qwen3() {
    const TOL: f32 = 1e-4;
    for qwen3 in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let m = build(
            dir.path(),
            &TinySpec {
                qwen3,
                seed: 5,
                ..Default::default()
            },
        )
        .unwrap();
        let arch = if qwen3 { "qwen3" } else { "qwen2" };
        for host in [true, false] {
            let e = dense(&m.folder, qwen3, host);
            println!("{arch} safetensors (host attention {host}): worst rel err {e:.2e}");
            assert!(e < TOL, "{arch} host={host}: {e}");
        }
        let e = quantized(&m.gguf, qwen3);
        println!("{arch} gguf q8_0: worst rel err {e:.2e}");
        assert!(e < TOL, "{arch} gguf: {e}");
    }
}
