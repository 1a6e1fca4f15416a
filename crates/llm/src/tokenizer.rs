//! The model's tokenizer plus what decoding needs beyond it: the raw bytes of every token
//! (for streaming text and for the grammar engine) and which ids end a turn.

use std::collections::HashMap;
use std::str::FromStr;

use serde_json::{json, Value};

use crate::LlmError;

/// Pre-tokenizer regex of Qwen2-family byte-level BPE tokenizers (the `qwen2` pre-tokenizer
/// of GGUF files): contractions, letters with one leading non-letter, single digits,
/// punctuation runs, newlines and spaces.
pub const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A tokenizer ready for generation.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// Bytes of each token id; special tokens are prefixed with toktrie's marker byte 0xFF.
    bytes: Vec<Vec<u8>>,
    special: Vec<bool>,
}

impl TextTokenizer {
    /// From the JSON of a Hugging Face `tokenizer.json`.
    pub fn from_json(value: &Value) -> Result<Self, LlmError> {
        check_bpe_merges(value)?;
        let text = serde_json::to_string(value).map_err(|e| LlmError::Tokenizer(e.to_string()))?;
        let inner = tokenizers::Tokenizer::from_str(&text)
            .map_err(|e| LlmError::Tokenizer(e.to_string()))?;
        let mut bytes = llguidance::token_bytes_from_tokenizer_json(value)
            .map_err(|e| LlmError::Tokenizer(format!("token bytes: {e}")))?;
        let n = inner.get_vocab_size(true).max(bytes.len());
        bytes.resize(n, Vec::new());
        let special = bytes
            .iter()
            .map(|b| b.first() == Some(&llguidance::toktrie::TokTrie::SPECIAL_TOKEN_MARKER))
            .collect();
        Ok(Self {
            inner,
            bytes,
            special,
        })
    }

    /// Rebuilds a byte-level BPE tokenizer from GGUF metadata (`tokenizer.ggml.*`), as
    /// llama.cpp writes it for Qwen-family models.
    pub fn from_gguf(
        md: &HashMap<String, candle_core::quantized::gguf_file::Value>,
    ) -> Result<Self, LlmError> {
        Self::from_json(&gguf_tokenizer_json(md)?)
    }

    /// Token ids of `text`; special-token strings in it (from a chat template) become their
    /// ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| LlmError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Number of ids the tokenizer knows (the model's vocabulary may be padded beyond it).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the tokenizer has no tokens.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The id of a token string such as `<|im_end|>`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Text bytes a token contributes to the output (none for special tokens).
    pub fn text_bytes(&self, id: u32) -> &[u8] {
        match self.bytes.get(id as usize) {
            Some(b) if !self.is_special(id) => b,
            _ => &[],
        }
    }

    /// Whether an id is a control token (chat markers, end of text).
    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    /// Whether an id can appear in generated output at all (known and not empty).
    pub fn is_usable(&self, id: u32) -> bool {
        self.bytes.get(id as usize).is_some_and(|b| !b.is_empty())
    }

    /// Per-id bytes with the special marker, for the grammar engine's token trie.
    pub fn trie_words(&self) -> &[Vec<u8>] {
        &self.bytes
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

fn md_str<'a>(
    md: &'a HashMap<String, candle_core::quantized::gguf_file::Value>,
    key: &str,
) -> Option<&'a str> {
    md.get(key)
        .and_then(|v| v.to_string().ok())
        .map(|s| s.as_str())
}

fn md_strings(
    md: &HashMap<String, candle_core::quantized::gguf_file::Value>,
    key: &str,
) -> Result<Vec<String>, LlmError> {
    let arr = md
        .get(key)
        .ok_or_else(|| LlmError::Tokenizer(format!("GGUF metadata has no {key}")))?
        .to_vec()
        .map_err(|e| LlmError::Tokenizer(format!("{key}: {e}")))?;
    arr.iter()
        .map(|v| {
            v.to_string()
                .cloned()
                .map_err(|e| LlmError::Tokenizer(format!("{key}: {e}")))
        })
        .collect()
}

/// The `tokenizer.json` equivalent of a GGUF file's `gpt2`-model tokenizer metadata.
pub fn gguf_tokenizer_json(
    md: &HashMap<String, candle_core::quantized::gguf_file::Value>,
) -> Result<Value, LlmError> {
    let model = md_str(md, "tokenizer.ggml.model").unwrap_or("");
    if model != "gpt2" {
        return Err(LlmError::Tokenizer(format!(
            "GGUF tokenizer model {model:?} is not supported (Qwen-family files use \"gpt2\", byte-level BPE); put a tokenizer.json next to the file"
        )));
    }
    let pre = md_str(md, "tokenizer.ggml.pre").unwrap_or("qwen2");
    if pre != "qwen2" {
        tracing::warn!(
            pre,
            "GGUF pre-tokenizer is not qwen2; splitting text as qwen2 does"
        );
    }
    let tokens = md_strings(md, "tokenizer.ggml.tokens")?;
    let merges = md_strings(md, "tokenizer.ggml.merges")?;
    let types: Vec<i64> = match md.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| LlmError::Tokenizer(format!("token_type: {e}")))?
            .iter()
            .map(|t| t.to_i32().map(i64::from).unwrap_or(1))
            .collect(),
        None => vec![1; tokens.len()],
    };
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (id, tok) in tokens.iter().enumerate() {
        // 3 = control, 4 = user-defined: both are added tokens in tokenizer.json terms.
        match types.get(id).copied().unwrap_or(1) {
            3 | 4 => added.push(json!({
                "id": id, "content": tok, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false,
                "special": types.get(id).copied() == Some(3),
            })),
            _ => {}
        }
        vocab.insert(tok.clone(), json!(id));
    }
    let merges: Vec<Value> = merges
        .iter()
        .map(|m| match m.split_once(' ') {
            Some((a, b)) => Ok(json!([a, b])),
            None => Err(LlmError::Tokenizer(format!("bad merge {m:?}"))),
        })
        .collect::<Result<_, _>>()?;
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": false},
            byte_level,
        ]},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": "", "end_of_word_suffix": "",
            "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        }
    }))
}

/// Refuses a BPE model whose merges name tokens outside its vocabulary. `tokenizers` 0.23
/// panics (a slice index out of range) instead of erroring when a merge's result is longer than
/// every vocabulary entry; found by fuzzing GGUF metadata (fuzz/regressions/gguf).
fn check_bpe_merges(value: &Value) -> Result<(), LlmError> {
    let model = &value["model"];
    if model["type"] != "BPE" {
        return Ok(());
    }
    let Some(vocab) = model["vocab"].as_object() else {
        return Ok(());
    };
    let prefix = model["continuing_subword_prefix"].as_str().unwrap_or("");
    let Some(merges) = model["merges"].as_array() else {
        return Ok(());
    };
    for (i, m) in merges.iter().enumerate() {
        let pair = match m {
            Value::String(s) => s.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())),
            Value::Array(p) if p.len() == 2 => match (p[0].as_str(), p[1].as_str()) {
                (Some(a), Some(b)) => Some((a.to_owned(), b.to_owned())),
                _ => None,
            },
            _ => None,
        };
        let Some((a, b)) = pair else {
            return Err(LlmError::Tokenizer(format!(
                "merge {i} is not a pair of tokens"
            )));
        };
        let joined = format!("{a}{}", b.strip_prefix(prefix).unwrap_or(&b));
        for t in [&a, &b, &joined] {
            if !vocab.contains_key(t.as_str()) {
                return Err(LlmError::Tokenizer(format!(
                    "merge {i} ({a:?} + {b:?}) uses {t:?}, which is not in the vocabulary"
                )));
            }
        }
    }
    Ok(())
}

/// Valid UTF-8 text out of a growing byte stream: returns what can be shown now and keeps an
/// incomplete trailing character for the next token.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Adds bytes; returns the text that became complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    match e.error_len() {
                        // An unfinished character: keep it for the next token.
                        None => {
                            out.push_str(&String::from_utf8_lossy(&self.pending[..good]));
                            self.pending.drain(..good);
                            return out;
                        }
                        // An invalid sequence is replaced, not held forever.
                        Some(bad) => {
                            out.push_str(&String::from_utf8_lossy(&self.pending[..good + bad]));
                            self.pending.drain(..good + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left at the end (an unfinished character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn merges_outside_the_vocabulary_are_an_error_not_a_panic() {
        let tok = |merges: Value| {
            serde_json::json!({"version": "1.0", "model": {"type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": false,
                "byte_fallback": false, "ignore_merges": false,
                "vocab": {"a": 0, "b": 1}, "merges": merges}})
        };
        // "ab" is longer than any vocabulary entry: tokenizers 0.23 panicked building this.
        let e = TextTokenizer::from_json(&tok(serde_json::json!([["a", "b"]])))
            .err()
            .expect("an error");
        assert!(e.to_string().contains("not in the vocabulary"), "{e}");
        assert!(TextTokenizer::from_json(&tok(serde_json::json!(["a"]))).is_err());
        // Merges inside the vocabulary pass the check (string and pair forms).
        let mut ok = tok(serde_json::json!([["a", "b"], "a b"]));
        ok["model"]["vocab"]["ab"] = serde_json::json!(2);
        assert!(check_bpe_merges(&ok).is_ok());
        assert!(check_bpe_merges(&tok(serde_json::json!([]))).is_ok());
    }

    use super::*;

    #[test]
    fn utf8_stream_holds_partial_characters() {
        let mut s = Utf8Stream::default();
        let bytes = "한글".as_bytes();
        assert_eq!(s.push(&bytes[..2]), "");
        assert_eq!(s.push(&bytes[2..4]), "한");
        assert_eq!(s.push(&bytes[4..]), "글");
        assert_eq!(s.push(&[0xff, b'a']), "\u{fffd}a");
        assert_eq!(s.push(&[0xe2, 0x82]), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }
}
