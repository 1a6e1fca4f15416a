//! Decode speed, ours vs candle-transformers' Qwen2, on random weights in Qwen2.5-0.5B's exact
//! shapes (weight values do not change speed). Prefills a prompt, then decodes greedily and
//! reports ms/token around given context lengths, with the ratio measured in the same run.
//!
//! `cargo bench -p atelier-llm --bench decode [-- CTX...]` (default contexts 256 1024).

use std::collections::HashMap;
use std::time::Instant;

use atelier_llm::qwen::{Qwen, QwenConfig};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::qwen2;

const CONFIG: &str = r#"{
  "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
  "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
  "max_position_embeddings": 32768, "sliding_window": 32768, "max_window_layers": 24,
  "use_sliding_window": false, "tie_word_embeddings": true, "rope_theta": 1000000.0,
  "rms_norm_eps": 1e-6, "hidden_act": "silu"
}"#;

fn weights(cfg: &QwenConfig) -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let (h, i, hd) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.hidden_size / cfg.num_attention_heads,
    );
    let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
    let r = |shape: &[usize]| Tensor::randn(0f32, 0.02, shape, &dev).unwrap();
    let mut m = HashMap::new();
    m.insert("model.embed_tokens.weight".into(), r(&[cfg.vocab_size, h]));
    m.insert(
        "model.norm.weight".into(),
        Tensor::ones(h, DType::F32, &dev).unwrap(),
    );
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        for (n, shape) in [
            ("self_attn.q_proj.weight", vec![nh * hd, h]),
            ("self_attn.q_proj.bias", vec![nh * hd]),
            ("self_attn.k_proj.weight", vec![nkv * hd, h]),
            ("self_attn.k_proj.bias", vec![nkv * hd]),
            ("self_attn.v_proj.weight", vec![nkv * hd, h]),
            ("self_attn.v_proj.bias", vec![nkv * hd]),
            ("self_attn.o_proj.weight", vec![h, nh * hd]),
            ("mlp.gate_proj.weight", vec![i, h]),
            ("mlp.up_proj.weight", vec![i, h]),
            ("mlp.down_proj.weight", vec![h, i]),
        ] {
            m.insert(format!("{p}.{n}"), r(&shape));
        }
        for n in ["input_layernorm.weight", "post_attention_layernorm.weight"] {
            m.insert(
                format!("{p}.{n}"),
                Tensor::ones(h, DType::F32, &dev).unwrap(),
            );
        }
    }
    m
}

/// ms/token over 16 tokens decoded at each context in `at`, after a 32-token prompt.
fn run(mut step: impl FnMut(&[u32], usize) -> Vec<f32>, at: &[usize]) -> Vec<f64> {
    let prompt: Vec<u32> = (0..32).map(|i| 1000 + i).collect();
    let mut logits = step(&prompt, 0);
    let mut pos = prompt.len();
    let mut out = Vec::new();
    for &ctx in at {
        while pos < ctx {
            let tok = argmax(&logits);
            logits = step(&[tok], pos);
            pos += 1;
        }
        let t = Instant::now();
        for _ in 0..16 {
            let tok = argmax(&logits);
            logits = step(&[tok], pos);
            pos += 1;
        }
        out.push(t.elapsed().as_secs_f64() * 1000.0 / 16.0);
    }
    out
}

fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b })
        .0 as u32
}

fn main() {
    let at: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let at = if at.is_empty() { vec![256, 1024] } else { at };
    let cfg: QwenConfig = serde_json::from_str(CONFIG).unwrap();
    let map = weights(&cfg);
    println!(
        "Qwen2.5-0.5B shapes, random f32 weights, CPU, {} threads",
        candle_core::utils::get_num_threads()
    );

    let vb = VarBuilder::from_tensors(map.clone(), DType::F32, &Device::Cpu);
    let mut ours = Qwen::from_varbuilder(cfg, vb, &Device::Cpu, DType::F32).unwrap();
    let a = run(|ids, _| ours.forward(ids).unwrap(), &at);
    drop(ours);

    let rcfg: qwen2::Config = serde_json::from_str(CONFIG).unwrap();
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    let mut reference = qwen2::ModelForCausalLM::new(&rcfg, vb).unwrap();
    let b = run(
        |ids, pos| {
            let x = Tensor::new(ids, &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            reference
                .forward(&x, pos)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        },
        &at,
    );
    println!(
        "{:>8} {:>12} {:>22} {:>8}",
        "context", "ours ms/tok", "candle-transformers", "speedup"
    );
    for ((ctx, x), y) in at.iter().zip(&a).zip(&b) {
        println!("{ctx:>8} {x:>12.1} {y:>22.1} {:>7.2}x", y / x);
    }
}
