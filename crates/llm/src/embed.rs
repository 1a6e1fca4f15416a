//! Sentence embeddings from a BERT-family encoder folder (BERT, XLM-RoBERTa), for "similar
//! posts" when such a model is installed (e.g. a multilingual sentence-transformers or E5
//! model exported with safetensors).
//!
//! A folder holds `config.json` (`model_type` `bert` or `xlm-roberta`), `tokenizer.json` and
//! `model.safetensors`; a sentence-transformers `1_Pooling/config.json` choosing the CLS token
//! is honoured, otherwise token states are mean-pooled. Vectors are L2-normalised so a dot
//! product is the cosine.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{bert, xlm_roberta};

use crate::error::LlmError;

/// Longest input in tokens (the encoders' usual position limit).
pub const MAX_TOKENS: usize = 512;

enum Encoder {
    Bert(bert::BertModel),
    XlmRoberta(xlm_roberta::XLMRobertaModel),
}

/// A loaded sentence encoder.
pub struct Embedder {
    id: String,
    encoder: Encoder,
    tokenizer: tokenizers::Tokenizer,
    device: Device,
    cls: bool,
    max_tokens: usize,
    dim: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("id", &self.id)
            .field("dim", &self.dim)
            .finish()
    }
}

fn format_err(path: &Path, message: impl Into<String>) -> LlmError {
    LlmError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read(path: PathBuf) -> Result<String, LlmError> {
    std::fs::read_to_string(&path).map_err(|source| LlmError::Io { path, source })
}

impl Embedder {
    /// Loads an encoder folder; errors say which file is missing or what is unsupported.
    pub fn open(dir: &Path, device: &Device) -> Result<Self, LlmError> {
        let config = read(dir.join("config.json"))?;
        let v: serde_json::Value = serde_json::from_str(&config)
            .map_err(|e| format_err(&dir.join("config.json"), e.to_string()))?;
        let model_type = v["model_type"].as_str().unwrap_or("bert").to_owned();
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(format_err(
                dir,
                "no model.safetensors (export the encoder with safetensors)",
            ));
        }
        // SAFETY: the file is memory-mapped read-only; it must not change while loaded,
        // as with every model folder atelier reads.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, device)? };
        let (encoder, dim, max_pos) = match model_type.as_str() {
            "bert" => {
                let c: bert::Config = serde_json::from_str(&config)
                    .map_err(|e| format_err(&dir.join("config.json"), e.to_string()))?;
                (
                    Encoder::Bert(bert::BertModel::load(vb, &c)?),
                    c.hidden_size,
                    c.max_position_embeddings,
                )
            }
            "xlm-roberta" | "roberta" => {
                let c: xlm_roberta::Config = serde_json::from_str(&config)
                    .map_err(|e| format_err(&dir.join("config.json"), e.to_string()))?;
                let vb = if vb.contains_tensor("roberta.embeddings.word_embeddings.weight") {
                    vb.pp("roberta")
                } else {
                    vb
                };
                (
                    Encoder::XlmRoberta(xlm_roberta::XLMRobertaModel::new(&c, vb)?),
                    c.hidden_size,
                    // RoBERTa positions start after the padding index.
                    c.max_position_embeddings.saturating_sub(2),
                )
            }
            other => {
                return Err(format_err(
                    dir,
                    format!("model_type {other:?} is not a supported encoder (bert, xlm-roberta)"),
                ))
            }
        };
        let tokenizer =
            tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| {
                LlmError::Tokenizer(format!("{}: {e}", dir.join("tokenizer.json").display()))
            })?;
        let cls = std::fs::read_to_string(dir.join("1_Pooling/config.json"))
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .is_some_and(|p| p["pooling_mode_cls_token"].as_bool() == Some(true));
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self {
            id,
            encoder,
            tokenizer,
            device: device.clone(),
            cls,
            max_tokens: max_pos.clamp(8, MAX_TOKENS),
            dim,
        })
    }

    /// The folder name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Vector length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// One unit vector per text (texts are truncated to the model's limit).
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, LlmError> {
        texts.iter().map(|t| self.embed_one(t)).collect()
    }

    fn embed_one(&self, text: &str) -> Result<Vec<f32>, LlmError> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| LlmError::Tokenizer(e.to_string()))?;
        let mut ids: Vec<u32> = enc.get_ids().to_vec();
        ids.truncate(self.max_tokens);
        if ids.is_empty() {
            return Ok(vec![0.0; self.dim]);
        }
        let n = ids.len();
        let input = Tensor::new(ids.as_slice(), &self.device)?.unsqueeze(0)?;
        let types = input.zeros_like()?;
        let mask = input.ones_like()?;
        let states = match &self.encoder {
            Encoder::Bert(m) => m.forward(&input, &types, Some(&mask))?,
            Encoder::XlmRoberta(m) => m.forward(&input, &mask, &types, None, None, None)?,
        };
        let pooled = if self.cls {
            states.get(0)?.get(0)?
        } else {
            (states.get(0)?.sum(0)? / n as f64)?
        };
        let v: Vec<f32> = pooled.to_dtype(DType::F32)?.to_vec1()?;
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Ok(if norm > 0.0 {
            v.into_iter().map(|x| x / norm).collect()
        } else {
            v
        })
    }
}
