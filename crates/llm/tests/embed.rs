//! The sentence encoder on a tiny random-weight BERT folder written by the test (config,
//! WordPiece tokenizer over Hangul syllables, safetensors): loading, pooling, normalisation
//! and the errors a wrong folder gets. Values are random; what is asserted holds for any.

use atelier_llm::embed::Embedder;
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert;

const TEXTS: [&str; 3] = [
    "강아지와 산책을 했다",
    "시험 공부를 밤새 했다",
    "오늘 요리 성공",
];

fn tiny_bert(dir: &std::path::Path) {
    let config = serde_json::json!({
        "model_type": "bert", "vocab_size": 0, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "max_position_embeddings": 64, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "classifier_dropout": null,
    });
    let mut vocab = serde_json::Map::new();
    for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] {
        vocab.insert(t.into(), serde_json::json!(vocab.len()));
    }
    for c in TEXTS.concat().chars().filter(|c| !c.is_whitespace()) {
        for t in [c.to_string(), format!("##{c}")] {
            if !vocab.contains_key(&t) {
                vocab.insert(t, serde_json::json!(vocab.len()));
            }
        }
    }
    let mut config = config;
    config["vocab_size"] = serde_json::json!(vocab.len());
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let cfg: bert::Config = serde_json::from_value(config).unwrap();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    bert::BertModel::load(vb, &cfg).unwrap();
    vm.save(dir.join("model.safetensors")).unwrap();
}

#[test]
fn embeds_unit_vectors_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-bert");
    std::fs::create_dir(&path).unwrap();
    tiny_bert(&path);
    let e = Embedder::open(&path, &Device::Cpu).unwrap();
    assert_eq!(e.id(), "tiny-bert");
    assert_eq!(e.dim(), 32);
    let texts: Vec<String> = TEXTS.iter().map(|s| s.to_string()).collect();
    let v = e.embed(&texts).unwrap();
    assert_eq!(v.len(), 3);
    for x in &v {
        assert_eq!(x.len(), 32);
        let n: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-4, "norm {n}");
    }
    assert_ne!(v[0], v[1], "different texts, different vectors");
    let again = e.embed(&texts[..1]).unwrap();
    let d: f32 = again[0].iter().zip(&v[0]).map(|(a, b)| (a - b).abs()).sum();
    assert!(d < 1e-5, "same text, same vector (diff {d})");
    // Longer than the model's positions: truncated, not an error.
    let long = "강아지 ".repeat(200);
    assert_eq!(e.embed(&[long]).unwrap()[0].len(), 32);
}

#[test]
fn wrong_folders_say_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let err = Embedder::open(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    let err = Embedder::open(dir.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}
