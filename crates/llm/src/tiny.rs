//! Tiny Qwen2-shaped models with random weights and a byte-level BPE tokenizer trained on the
//! spot, written both as a safetensors folder and as a GGUF file. Real weights cannot be
//! downloaded where atelier's tests run; these exercise every loading and decoding path.
//! Their text is nonsense (random weights); structure under a grammar is not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::{json, Value};
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    SplitDelimiterBehavior, TokenizerBuilder,
};

use crate::tokenizer::QWEN2_SPLIT;
use crate::LlmError;

/// Korean and English text the tiny tokenizer learns its merges from.
pub const CORPUS: &str = "\
오늘은 비가 와서 우산을 쓰고 출근했다. 점심에는 친구와 김치찌개를 먹었다.
퇴근길에 고양이를 만났는데 너무 귀여워서 사진을 찍었다. 저녁에는 영화를 봤다.
주말마다 가족과 캠핑을 가고, 아이들과 바다에서 모래성을 쌓는 것을 좋아한다.
새로 나온 무선 이어폰을 소개합니다. 가볍고 편안하며 하루 종일 음악을 즐길 수 있어요.
A cinematic photo of a family camping by the sea at sunset, warm light, film grain.
A cute cat sitting on a rainy street, watercolor style, soft colors, detailed.
Close-up shot of wireless earbuds on a wooden desk, studio lighting, product photo.
Wide shot, slow zoom in, the city at night with neon signs and reflections.
The quick brown fox jumps over the lazy dog. 12345 67890 {\"title\": \"value\"}
";

/// Our own ChatML template with a default system turn (Qwen2.5 behaves this way).
pub const CHAT_TEMPLATE: &str = "{% for m in messages %}{% if loop.first and m.role != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Shape of a tiny model.
#[derive(Debug, Clone)]
pub struct TinySpec {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// Merges the tokenizer learns (vocabulary = 256 bytes + specials + merges).
    pub vocab_target: usize,
    pub context: usize,
    /// Seed of the random weights.
    pub seed: u64,
    /// Qwen3 layout (per-head q/k norms, no q/k/v biases) instead of Qwen2.
    pub qwen3: bool,
}

impl Default for TinySpec {
    fn default() -> Self {
        Self {
            hidden: 64,
            intermediate: 128,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            vocab_target: 700,
            context: 8192,
            seed: 0,
            qwen3: false,
        }
    }
}

/// Where [`build`] wrote the model.
#[derive(Debug, Clone)]
pub struct TinyModel {
    /// Folder with config.json, model.safetensors, tokenizer.json, tokenizer_config.json.
    pub folder: PathBuf,
    /// The same weights (Q8_0) and tokenizer as one GGUF file.
    pub gguf: PathBuf,
}

fn err(e: impl std::fmt::Display) -> LlmError {
    LlmError::Internal(format!("tiny model: {e}"))
}

/// Trains a Qwen2-style byte-level BPE tokenizer (NFC, Qwen2 split regex, ChatML specials)
/// on `corpus`; returns its `tokenizer.json`.
pub fn train_tokenizer(corpus: &str, vocab_size: usize) -> Result<Value, LlmError> {
    let byte_level = ByteLevel::new(false, false, false);
    let split = Split::new(
        SplitPattern::Regex(QWEN2_SPLIT.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(err)?;
    let pre = Sequence::new(vec![split.into(), byte_level.into()]);
    let mut tok = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default())
    .with_normalizer(Some(NFC.into()))
    .with_pre_tokenizer(Some(pre.into()))
    .with_post_processor(Some(byte_level.into()))
    .with_decoder(Some(byte_level.into()))
    .build()
    .map_err(err)?;
    let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .map(|s| AddedToken::from(s, true))
        .to_vec();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(1)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(
            tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
                .into_iter()
                .collect(),
        )
        .build();
    let lines: Vec<&str> = corpus.lines().collect();
    tok.train(&mut trainer, lines.iter()).map_err(err)?;
    let text = tok.to_string(false).map_err(err)?;
    serde_json::from_str(&text).map_err(err)
}

/// Writes a tiny random Qwen2 model as a safetensors folder and as a GGUF file under `dir`.
pub fn build(dir: &Path, spec: &TinySpec) -> Result<TinyModel, LlmError> {
    let arch = if spec.qwen3 { "qwen3" } else { "qwen2" };
    let folder = dir.join(format!("tiny-{arch}"));
    std::fs::create_dir_all(&folder).map_err(err)?;
    let tok_json = train_tokenizer(CORPUS, spec.vocab_target)?;
    let tokenizer = tokenizers::Tokenizer::from_str_json(&tok_json)?;
    let n_tokens = tokenizer.get_vocab_size(true);
    // Real checkpoints pad the embedding past the tokenizer (Qwen2.5: 151936 vs 151665).
    let vocab = n_tokens.div_ceil(64) * 64;
    let id = |t: &str| {
        tokenizer
            .token_to_id(t)
            .ok_or_else(|| err(format!("no {t}")))
    };
    let (eot, im_end) = (id("<|endoftext|>")?, id("<|im_end|>")?);

    let h = spec.hidden;
    let hd = h / spec.heads;
    let mut rng = ChaCha20Rng::seed_from_u64(spec.seed);
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    let mut rand = |name: String, shape: &[usize], scale: f32| -> Result<(), LlmError> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
        tensors.push((name, Tensor::from_vec(v, shape, &Device::Cpu)?));
        Ok(())
    };
    let ones = |name: String, n: usize| -> Result<(String, Tensor), LlmError> {
        Ok((
            name,
            Tensor::ones(n, candle_core::DType::F32, &Device::Cpu)?,
        ))
    };
    // Small like a fresh checkpoint's init: tied logits stay flat, so samples vary.
    rand("model.embed_tokens.weight".into(), &[vocab, h], 0.03)?;
    let mut norms = vec![ones("model.norm.weight".into(), h)?];
    for l in 0..spec.layers {
        let p = format!("model.layers.{l}");
        norms.push(ones(format!("{p}.input_layernorm.weight"), h)?);
        norms.push(ones(format!("{p}.post_attention_layernorm.weight"), h)?);
        let a = 1.0 / (h as f32).sqrt();
        rand(
            format!("{p}.self_attn.q_proj.weight"),
            &[spec.heads * hd, h],
            a,
        )?;
        rand(
            format!("{p}.self_attn.k_proj.weight"),
            &[spec.kv_heads * hd, h],
            a,
        )?;
        rand(
            format!("{p}.self_attn.v_proj.weight"),
            &[spec.kv_heads * hd, h],
            a,
        )?;
        if spec.qwen3 {
            // Per-head norms, not all ones so a missing norm would show.
            rand(format!("{p}.self_attn.q_norm.weight"), &[hd], 2.0)?;
            rand(format!("{p}.self_attn.k_norm.weight"), &[hd], 2.0)?;
        } else {
            rand(format!("{p}.self_attn.q_proj.bias"), &[spec.heads * hd], a)?;
            rand(
                format!("{p}.self_attn.k_proj.bias"),
                &[spec.kv_heads * hd],
                a,
            )?;
            rand(
                format!("{p}.self_attn.v_proj.bias"),
                &[spec.kv_heads * hd],
                a,
            )?;
        }
        rand(
            format!("{p}.self_attn.o_proj.weight"),
            &[h, spec.heads * hd],
            a,
        )?;
        rand(
            format!("{p}.mlp.gate_proj.weight"),
            &[spec.intermediate, h],
            a,
        )?;
        rand(
            format!("{p}.mlp.up_proj.weight"),
            &[spec.intermediate, h],
            a,
        )?;
        let d = 1.0 / (spec.intermediate as f32).sqrt();
        rand(
            format!("{p}.mlp.down_proj.weight"),
            &[h, spec.intermediate],
            d,
        )?;
    }
    tensors.extend(norms);

    let config = json!({
        "architectures": [if spec.qwen3 { "Qwen3ForCausalLM" } else { "Qwen2ForCausalLM" }],
        "model_type": arch,
        "head_dim": hd,
        "vocab_size": vocab,
        "hidden_size": h,
        "intermediate_size": spec.intermediate,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "max_position_embeddings": spec.context,
        "sliding_window": spec.context,
        "max_window_layers": spec.layers,
        "use_sliding_window": false,
        "tie_word_embeddings": true,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    });
    let mut config = config;
    if spec.qwen3 {
        config["attention_bias"] = json!(false);
    }
    let write_json = |name: &str, v: &Value| -> Result<(), LlmError> {
        let text = serde_json::to_string_pretty(v).map_err(err)?;
        std::fs::write(folder.join(name), text).map_err(err)
    };
    write_json("config.json", &config)?;
    write_json("tokenizer.json", &tok_json)?;
    write_json(
        "tokenizer_config.json",
        &json!({
            "chat_template": CHAT_TEMPLATE,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "bos_token": null,
            "model_max_length": spec.context,
        }),
    )?;
    write_json(
        "generation_config.json",
        &json!({"eos_token_id": [im_end, eot], "pad_token_id": eot}),
    )?;
    let map: HashMap<String, Tensor> = tensors.iter().cloned().collect();
    candle_core::safetensors::save(&map, folder.join("model.safetensors"))?;

    // GGUF: llama.cpp's names and metadata for the same model, weights in Q8_0.
    let gguf = dir.join(format!("tiny-{arch}-q8_0.gguf"));
    let rename = |n: &str| -> String {
        n.replace("model.embed_tokens.weight", "token_embd.weight")
            .replace("model.norm.weight", "output_norm.weight")
            .replace("model.layers.", "blk.")
            .replace(".input_layernorm.", ".attn_norm.")
            .replace(".post_attention_layernorm.", ".ffn_norm.")
            .replace(".self_attn.q_proj.", ".attn_q.")
            .replace(".self_attn.k_proj.", ".attn_k.")
            .replace(".self_attn.v_proj.", ".attn_v.")
            .replace(".self_attn.o_proj.", ".attn_output.")
            .replace(".self_attn.q_norm.", ".attn_q_norm.")
            .replace(".self_attn.k_norm.", ".attn_k_norm.")
            .replace(".mlp.gate_proj.", ".ffn_gate.")
            .replace(".mlp.up_proj.", ".ffn_up.")
            .replace(".mlp.down_proj.", ".ffn_down.")
    };
    let mut qtensors = Vec::new();
    for (name, t) in &tensors {
        let dtype = if t.rank() == 2 {
            GgmlDType::Q8_0
        } else {
            GgmlDType::F32
        };
        qtensors.push((rename(name), QTensor::quantize(t, dtype)?));
    }
    let mut tokens = Vec::with_capacity(vocab);
    let mut types = Vec::with_capacity(vocab);
    let special: Vec<u32> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .iter()
        .filter_map(|t| tokenizer.token_to_id(t))
        .collect();
    for i in 0..vocab as u32 {
        match tokenizer.id_to_token(i) {
            Some(t) => {
                tokens.push(gguf_file::Value::String(t));
                types.push(gguf_file::Value::I32(if special.contains(&i) {
                    3
                } else {
                    1
                }));
            }
            None => {
                tokens.push(gguf_file::Value::String(format!("[PAD{i}]")));
                types.push(gguf_file::Value::I32(5));
            }
        }
    }
    let merges: Vec<gguf_file::Value> = tok_json["model"]["merges"]
        .as_array()
        .ok_or_else(|| err("no merges"))?
        .iter()
        .map(|m| match m {
            Value::String(s) => Ok(gguf_file::Value::String(s.clone())),
            Value::Array(p) if p.len() == 2 => Ok(gguf_file::Value::String(format!(
                "{} {}",
                p[0].as_str().unwrap_or_default(),
                p[1].as_str().unwrap_or_default()
            ))),
            other => Err(err(format!("bad merge {other}"))),
        })
        .collect::<Result<_, _>>()?;
    use gguf_file::Value as V;
    let keys: Vec<String> = [
        "block_count",
        "context_length",
        "embedding_length",
        "feed_forward_length",
        "attention.head_count",
        "attention.head_count_kv",
        "attention.key_length",
        "attention.value_length",
        "attention.layer_norm_rms_epsilon",
        "rope.freq_base",
    ]
    .iter()
    .map(|k| format!("{arch}.{k}"))
    .collect();
    let k = |name: &str| -> &str {
        keys.iter()
            .find(|k| k.ends_with(&format!(".{name}")))
            .map(String::as_str)
            .unwrap_or_default()
    };
    let md: Vec<(&str, V)> = vec![
        ("general.architecture", V::String(arch.into())),
        ("general.name", V::String(format!("tiny-{arch}"))),
        // Read by candle-transformers' quantized Qwen3 (the parity reference): f32 rotary
        // tables instead of its f16 default.
        ("general.dtype", V::U32(0)),
        (k("block_count"), V::U32(spec.layers as u32)),
        (k("context_length"), V::U32(spec.context as u32)),
        (k("embedding_length"), V::U32(h as u32)),
        (k("feed_forward_length"), V::U32(spec.intermediate as u32)),
        (k("attention.head_count"), V::U32(spec.heads as u32)),
        (k("attention.head_count_kv"), V::U32(spec.kv_heads as u32)),
        (k("attention.key_length"), V::U32(hd as u32)),
        (k("attention.value_length"), V::U32(hd as u32)),
        (k("attention.layer_norm_rms_epsilon"), V::F32(1e-6)),
        (k("rope.freq_base"), V::F32(1_000_000.0)),
        ("tokenizer.ggml.model", V::String("gpt2".into())),
        ("tokenizer.ggml.pre", V::String("qwen2".into())),
        ("tokenizer.ggml.tokens", V::Array(tokens)),
        ("tokenizer.ggml.token_type", V::Array(types)),
        ("tokenizer.ggml.merges", V::Array(merges)),
        ("tokenizer.ggml.eos_token_id", V::U32(im_end)),
        ("tokenizer.ggml.padding_token_id", V::U32(eot)),
        ("tokenizer.chat_template", V::String(CHAT_TEMPLATE.into())),
    ];
    let md_refs: Vec<(&str, &V)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = qtensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(&gguf).map_err(err)?;
    gguf_file::write(&mut f, &md_refs, &t_refs)?;
    Ok(TinyModel { folder, gguf })
}

trait FromJson: Sized {
    fn from_str_json(v: &Value) -> Result<Self, LlmError>;
}

impl FromJson for tokenizers::Tokenizer {
    fn from_str_json(v: &Value) -> Result<Self, LlmError> {
        use std::str::FromStr;
        tokenizers::Tokenizer::from_str(&v.to_string()).map_err(err)
    }
}
