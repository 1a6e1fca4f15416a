//! Tiny random-weight Qwen2 models, written by `atelier_llm::tiny` as safetensors and GGUF,
//! loaded back and run: tokenizer round trip, streaming, seeds, schema-constrained JSON,
//! cancel.

use std::sync::{Arc, Mutex, OnceLock};

use atelier_llm::tiny::{build, TinyModel, TinySpec};
use atelier_llm::{
    CancelToken, ChatRequest, FinishReason, LocalModel, Message, ResponseFormat, SamplingParams,
};
use candle_core::Device;
use serde_json::json;

fn tiny() -> &'static TinyModel {
    static DIR: OnceLock<(tempfile::TempDir, TinyModel)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let m = build(dir.path(), &TinySpec::default()).unwrap();
        (dir, m)
    })
    .1
}

fn models() -> &'static [(String, Arc<LocalModel>)] {
    static M: OnceLock<Vec<(String, Arc<LocalModel>)>> = OnceLock::new();
    M.get_or_init(|| {
        let t = tiny();
        vec![
            (
                "safetensors".into(),
                Arc::new(LocalModel::load(&t.folder, &Device::Cpu).unwrap()),
            ),
            (
                "gguf".into(),
                Arc::new(LocalModel::load(&t.gguf, &Device::Cpu).unwrap()),
            ),
        ]
    })
}

fn params(seed: u64, max_tokens: usize) -> SamplingParams {
    SamplingParams {
        seed: Some(seed),
        max_tokens,
        temperature: 1.0,
        ..Default::default()
    }
}

#[test]
fn both_formats_load_with_the_same_tokenizer_and_template() {
    let [(_, st), (_, gg)] = models() else {
        panic!()
    };
    assert_eq!(st.info().format, "safetensors");
    assert_eq!(gg.info().format, "gguf");
    assert_eq!(st.info().vocab_size, gg.info().vocab_size);
    assert!(
        st.info().vocab_size > st.tokenizer().len(),
        "vocabulary should be padded"
    );
    let text = "오늘은 비가 와서 우산을 썼다. A cat, watercolor style! 🐱 {\"a\": 1}";
    let a = st.tokenizer().encode(text).unwrap();
    let b = gg.tokenizer().encode(text).unwrap();
    assert_eq!(a, b, "GGUF-metadata tokenizer differs from tokenizer.json");
    let bytes: Vec<u8> = a
        .iter()
        .flat_map(|&t| st.tokenizer().text_bytes(t).to_vec())
        .collect();
    assert_eq!(String::from_utf8(bytes).unwrap(), text);
    let msgs = [Message::user("안녕")];
    assert_eq!(
        st.render_prompt(&msgs).unwrap(),
        gg.render_prompt(&msgs).unwrap()
    );
    assert!(st
        .render_prompt(&msgs)
        .unwrap()
        .ends_with("<|im_start|>assistant\n"));
}

#[test]
fn streaming_matches_the_result_and_seeds_reproduce() {
    for (fmt, m) in models() {
        let req = ChatRequest {
            messages: vec![Message::user("고양이에 대한 짧은 시를 써 줘")],
            params: params(7, 40),
            format: ResponseFormat::Text,
        };
        let mut streamed = String::new();
        let out = m
            .generate(&req, &CancelToken::new(), &mut |t| streamed.push_str(t))
            .unwrap();
        assert_eq!(streamed, out.text, "{fmt}");
        assert!(out.usage.completion_tokens > 0 && out.usage.completion_tokens <= 40);
        assert!(out.usage.prompt_tokens > 5);
        let again = m.generate(&req, &CancelToken::new(), &mut |_| {}).unwrap();
        assert_eq!(again.text, out.text, "{fmt}: same seed, different text");
        let mut other = req.clone();
        other.params.seed = Some(8);
        let third = m
            .generate(&other, &CancelToken::new(), &mut |_| {})
            .unwrap();
        assert_ne!(third.text, out.text, "{fmt}: seed ignored");
    }
}

#[test]
fn constrained_json_always_parses_and_validates() {
    let schema = json!({
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 20},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 2, "maxItems": 3},
            "count": {"type": "integer", "minimum": 1, "maximum": 8},
            "seconds": {"type": "number", "minimum": 0.5, "maximum": 10, "multipleOf": 0.5},
            "mood": {"enum": ["밝음", "어두움"]}
        },
        "required": ["title", "tags", "count", "seconds", "mood"],
        "additionalProperties": false
    });
    let validator = atelier_llm::schema::Validator::new(&schema).unwrap();
    for (fmt, m) in models() {
        for seed in 0..5 {
            let req = ChatRequest {
                messages: vec![Message::user("영화 제목을 JSON으로")],
                params: params(seed, 2000),
                format: ResponseFormat::JsonSchema {
                    name: "t".into(),
                    schema: schema.clone(),
                },
            };
            let out = m.generate(&req, &CancelToken::new(), &mut |_| {}).unwrap();
            assert_eq!(
                out.finish_reason,
                FinishReason::Stop,
                "{fmt} seed {seed}: {}",
                out.text
            );
            let v: serde_json::Value = serde_json::from_str(&out.text)
                .unwrap_or_else(|e| panic!("{fmt} seed {seed}: {e}: {}", out.text));
            validator
                .check(&v)
                .unwrap_or_else(|e| panic!("{fmt} seed {seed}: {e}: {}", out.text));
        }
    }
}

#[test]
fn cancel_stops_before_the_next_token() {
    // Own instances: the token counter must not see other tests' generations.
    let t = tiny();
    for (fmt, path) in [("safetensors", &t.folder), ("gguf", &t.gguf)] {
        let m = &Arc::new(LocalModel::load(path, &Device::Cpu).unwrap());
        let req = ChatRequest {
            messages: vec![Message::user("긴 이야기를 해 줘")],
            params: params(3, 500),
            format: ResponseFormat::Text,
        };
        let cancel = CancelToken::new();
        let seen = Arc::new(Mutex::new(None));
        let (c, s, model) = (cancel.clone(), seen.clone(), m.clone());
        let mut pieces = 0;
        let out = m
            .generate(&req, &cancel, &mut |_| {
                pieces += 1;
                if pieces == 3 {
                    // Cancel mid-generation and note how many tokens exist right now.
                    *s.lock().unwrap() = Some(model.tokens_generated());
                    c.cancel();
                }
            })
            .unwrap();
        assert_eq!(out.finish_reason, FinishReason::Cancelled, "{fmt}");
        let at_cancel = seen.lock().unwrap().expect("cancel never fired");
        assert_eq!(
            m.tokens_generated(),
            at_cancel,
            "{fmt}: tokens were computed after cancel"
        );
        assert!(out.usage.completion_tokens >= 3 && out.usage.completion_tokens < 500);
        // A token cancelled before start computes nothing at all.
        let before = m.tokens_generated();
        let pre = CancelToken::new();
        pre.cancel();
        let out = m.generate(&req, &pre, &mut |_| {}).unwrap();
        assert_eq!(
            (out.finish_reason, out.usage.completion_tokens),
            (FinishReason::Cancelled, 0)
        );
        assert_eq!(m.tokens_generated(), before);
    }
}

#[test]
fn stop_strings_and_max_tokens_end_generation() {
    let (_, m) = &models()[0];
    // The first seed whose answer runs to max_tokens (random weights may end a turn early).
    let (base, full) = (0..50)
        .find_map(|seed| {
            let req = ChatRequest {
                messages: vec![Message::user("hello")],
                params: params(seed, 60),
                format: ResponseFormat::Text,
            };
            let out = m.generate(&req, &CancelToken::new(), &mut |_| {}).unwrap();
            (out.finish_reason == FinishReason::Length && out.text.chars().count() >= 10)
                .then_some((req, out))
        })
        .expect("no seed ran to max_tokens");
    assert_eq!(full.usage.completion_tokens, 60);
    // Stop at a string taken from the middle of the unconstrained answer.
    let chars: Vec<char> = full.text.chars().collect();
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    let mut req = base.clone();
    req.params.stop = vec![stop.clone()];
    let mut streamed = String::new();
    let out = m
        .generate(&req, &CancelToken::new(), &mut |t| streamed.push_str(t))
        .unwrap();
    assert_eq!(out.finish_reason, FinishReason::Stop);
    assert!(!out.text.contains(&stop));
    assert!(full.text.starts_with(&out.text));
    assert_eq!(streamed, out.text);
}

#[test]
fn bad_requests_are_typed_errors() {
    let (_, m) = &models()[0];
    let mut req = ChatRequest {
        messages: vec![],
        ..Default::default()
    };
    let e = m
        .generate(&req, &CancelToken::new(), &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().starts_with("messages:"), "{e}");
    req.messages.push(Message::user("x"));
    req.params.temperature = 9.0;
    let e = m
        .generate(&req, &CancelToken::new(), &mut |_| {})
        .unwrap_err();
    assert!(e.to_string().starts_with("temperature:"), "{e}");
    req.params.temperature = 0.5;
    req.format = ResponseFormat::JsonSchema {
        name: "x".into(),
        schema: json!("nope"),
    };
    assert!(m.generate(&req, &CancelToken::new(), &mut |_| {}).is_err());
    let missing = LocalModel::load(std::path::Path::new("/nonexistent/model"), &Device::Cpu);
    assert!(missing
        .err()
        .unwrap()
        .to_string()
        .contains("/nonexistent/model"));
}
