//! The CLIP BPE tokenizer, read from a model folder.
//!
//! `tokenizer.json` is used when present. Folders that ship only `vocab.json` + `merges.txt`
//! (SDXL's `tokenizer_2`, many older repos) get the same pipeline transformers builds for
//! `CLIPTokenizerFast`: NFC, whitespace collapse, lowercase, CLIP's split regex, byte-level BPE
//! with a `</w>` end-of-word suffix. Sequences are framed as `<bos> tokens <eos>` and padded to
//! the context length with the folder's pad token, exactly as diffusers calls the tokenizer.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{EngineError, Result};

const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";
const CLIP_SPLIT: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// Token ids for one prompt plus what was lost to truncation.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    /// Exactly `max_len` ids: bos, content, eos, padding.
    pub ids: Vec<u32>,
    /// Content tokens dropped because the prompt was longer than the context window.
    pub truncated: usize,
}

/// A CLIP tokenizer with its framing ids.
pub struct ClipTokenizer {
    inner: tokenizers::Tokenizer,
    bos: u32,
    eos: u32,
    pad: u32,
    max_len: usize,
    dir: PathBuf,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("dir", &self.dir)
            .field("pad", &self.pad)
            .field("max_len", &self.max_len)
            .finish()
    }
}

fn tok_err(path: &Path, message: impl Into<String>) -> EngineError {
    EngineError::Tokenizer {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a special-token entry that transformers writes either as a string or as `{content: …}`.
fn token_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

impl ClipTokenizer {
    /// Loads the tokenizer in `dir` (e.g. `model/tokenizer`).
    pub fn load(dir: &Path) -> Result<Self> {
        let json_path = dir.join("tokenizer.json");
        let mut inner = if json_path.is_file() {
            tokenizers::Tokenizer::from_file(&json_path)
                .map_err(|e| tok_err(&json_path, e.to_string()))?
        } else {
            Self::from_vocab_merges(dir)?
        };
        // Pad token and context length come from the transformers configs when present.
        let mut pad_name: Option<String> = None;
        let mut specials: Vec<String> = Vec::new();
        let mut max_len = 77usize;
        for file in ["special_tokens_map.json", "tokenizer_config.json"] {
            let p = dir.join(file);
            if !p.is_file() {
                continue;
            }
            let v: Value = crate::config::read_json(&p)?;
            if let Some(name) = v.get("pad_token").and_then(token_name) {
                pad_name = Some(name);
            }
            for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
                if let Some(name) = v.get(key).and_then(token_name) {
                    specials.push(name);
                }
            }
            if let Some(m) = v.get("model_max_length").and_then(Value::as_u64) {
                // transformers writes a huge sentinel when unset; CLIP's context is 77.
                if m <= 4096 {
                    max_len = m as usize;
                }
            }
        }
        // transformers matches every special token literally before BPE. This matters for
        // SDXL's tokenizer_2, whose pad token is "!": "photo!" becomes "photo</w>", "!" (id 0).
        specials.sort();
        specials.dedup();
        let added: Vec<tokenizers::AddedToken> = specials
            .iter()
            .filter(|s| inner.token_to_id(s).is_some())
            .map(|s| tokenizers::AddedToken::from(s.clone(), true))
            .collect();
        inner
            .add_special_tokens(added)
            .map_err(|e| tok_err(dir, format!("registering special tokens: {e}")))?;
        let id = |name: &str| {
            inner
                .token_to_id(name)
                .ok_or_else(|| tok_err(dir, format!("vocabulary has no token {name:?}")))
        };
        let bos = id(BOS)?;
        let eos = id(EOS)?;
        let pad = match pad_name {
            Some(p) => id(&p)?,
            None => eos,
        };
        if max_len < 2 {
            return Err(tok_err(
                dir,
                format!("model_max_length {max_len} leaves no room for text"),
            ));
        }
        Ok(Self {
            inner,
            bos,
            eos,
            pad,
            max_len,
            dir: dir.to_path_buf(),
        })
    }

    fn from_vocab_merges(dir: &Path) -> Result<tokenizers::Tokenizer> {
        let vocab_path = dir.join("vocab.json");
        let merges_path = dir.join("merges.txt");
        for p in [&vocab_path, &merges_path] {
            if !p.is_file() {
                return Err(EngineError::MissingFile {
                    path: p.clone(),
                    why: "tokenizer needs tokenizer.json, or vocab.json and merges.txt".into(),
                });
            }
        }
        let vocab: serde_json::Map<String, Value> = crate::config::read_json(&vocab_path)?;
        let merges_text = std::fs::read_to_string(&merges_path).map_err(|e| EngineError::Io {
            path: merges_path.clone(),
            source: e,
        })?;
        let merges: Vec<Value> = merges_text
            .lines()
            .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
            .map(|l| Value::String(l.to_owned()))
            .collect();
        let mut added = Vec::new();
        for name in [BOS, EOS] {
            let id = vocab
                .get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| tok_err(&vocab_path, format!("vocabulary has no token {name:?}")))?;
            added.push(
                json!({"id": id, "content": name, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true}),
            );
        }
        let spec = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "NFC"},
                {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
                {"type": "Lowercase"}
            ]},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": CLIP_SPLIT}, "behavior": "Removed", "invert": true},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
            ]},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": EOS, "continuing_subword_prefix": "",
                "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false,
                "ignore_merges": false, "vocab": vocab, "merges": merges}
        });
        spec.to_string()
            .parse::<tokenizers::Tokenizer>()
            .map_err(|e| tok_err(&merges_path, e.to_string()))
    }

    /// Context length (77 for every CLIP text encoder).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The padding id, which SDXL's second tokenizer sets to `!` (0) rather than `<|endoftext|>`.
    pub fn pad_id(&self) -> u32 {
        self.pad
    }

    /// Tokenizes one prompt into a fixed-length, framed sequence; long prompts are truncated
    /// (the count of dropped tokens is returned so callers can warn).
    pub fn encode(&self, text: &str) -> Result<Tokens> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| tok_err(&self.dir, e.to_string()))?;
        let content = enc.get_ids();
        let room = self.max_len - 2;
        let kept = content.len().min(room);
        let mut ids = Vec::with_capacity(self.max_len);
        ids.push(self.bos);
        ids.extend_from_slice(&content[..kept]);
        ids.push(self.eos);
        ids.resize(self.max_len, self.pad);
        Ok(Tokens {
            ids,
            truncated: content.len() - kept,
        })
    }
}
