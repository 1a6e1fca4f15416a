//! Qwen-family models on candle: loading (safetensors folder or GGUF file) and the token loop
//! (KV cache, sampling, grammar, stop strings, streaming, cancel).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device};
use serde_json::Value;

use crate::constrain::{Constraint, Grammars};
use crate::qwen::{Qwen, QwenConfig};
use crate::sampler::Sampler;
use crate::template::{ChatTemplate, CHATML};
use crate::tokenizer::{TextTokenizer, Utf8Stream};
use crate::{CancelToken, ChatRequest, Completion, FinishReason, LlmError, ResponseFormat, Usage};

/// Facts about a loaded model, for listings and logs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub id: String,
    pub path: PathBuf,
    /// `qwen2` or `qwen3`.
    pub architecture: String,
    /// `safetensors` or `gguf`.
    pub format: String,
    pub context_length: usize,
    pub vocab_size: usize,
    /// Whether the model ships its own chat template (else ChatML is used).
    pub own_chat_template: bool,
}

/// A language model on this machine.
pub struct LocalModel {
    info: ModelInfo,
    weights: Mutex<Qwen>,
    tokenizer: Arc<TextTokenizer>,
    template: ChatTemplate,
    eos: Vec<u32>,
    grammars: Grammars,
    tokens_generated: AtomicU64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LlmError + '_ {
    move |source| LlmError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_json(path: &Path) -> Result<Value, LlmError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| LlmError::format(path, format!("not JSON: {e}")))
}

/// A token string from `tokenizer_config.json` (`"<|im_end|>"` or `{"content": "<|im_end|>"}`).
fn token_str(v: &Value) -> Option<String> {
    v.as_str()
        .or_else(|| v.get("content").and_then(Value::as_str))
        .map(str::to_owned)
}

impl LocalModel {
    /// Loads a Qwen2/Qwen2.5/Qwen3 model from a folder (`config.json`, `*.safetensors`,
    /// `tokenizer.json`, optional `tokenizer_config.json`/`generation_config.json`) or from a
    /// `.gguf` file.
    pub fn load(path: &Path, device: &Device) -> Result<Self, LlmError> {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        if meta.is_dir() {
            Self::load_folder(path, device)
        } else {
            Self::load_gguf(path, device)
        }
    }

    fn load_folder(dir: &Path, device: &Device) -> Result<Self, LlmError> {
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(LlmError::format(
                dir,
                "not a model folder: expected config.json, *.safetensors and tokenizer.json (or pass a .gguf file)",
            ));
        }
        let config = read_json(&config_path)?;
        let arch = config
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(LlmError::format(
                dir,
                "no *.safetensors weights in the folder",
            ));
        }
        if arch != "qwen2" && arch != "qwen3" {
            return Err(LlmError::format(
                &config_path,
                format!("model_type {arch:?} is not supported (qwen2, qwen3)"),
            ));
        }
        let cfg: QwenConfig = serde_json::from_value(config.clone())
            .map_err(|e| LlmError::format(&config_path, e.to_string()))?;
        let dtype = if device.is_cpu() {
            DType::F32
        } else {
            DType::BF16
        };
        let (vocab, context) = (cfg.vocab_size, cfg.max_position_embeddings);
        let weights = Qwen::from_safetensors(cfg, &files, device, dtype)?;
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.is_file() {
            return Err(LlmError::format(dir, "no tokenizer.json in the folder"));
        }
        let tokenizer = Arc::new(TextTokenizer::from_json(&read_json(&tok_path)?)?);
        let tcfg_path = dir.join("tokenizer_config.json");
        let tcfg = if tcfg_path.is_file() {
            read_json(&tcfg_path)?
        } else {
            Value::Null
        };
        let jinja = dir.join("chat_template.jinja");
        let template = if jinja.is_file() {
            Some(std::fs::read_to_string(&jinja).map_err(io(&jinja))?)
        } else {
            match tcfg.get("chat_template") {
                Some(Value::String(s)) => Some(s.clone()),
                // A list of named templates: use "default".
                Some(Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                    .and_then(|t| t.get("template"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                _ => None,
            }
        };
        let mut eos_ids = Vec::new();
        let gen_path = dir.join("generation_config.json");
        if gen_path.is_file() {
            match read_json(&gen_path)?.get("eos_token_id") {
                Some(Value::Number(n)) => eos_ids.extend(n.as_u64().map(|v| v as u32)),
                Some(Value::Array(a)) => {
                    eos_ids.extend(a.iter().filter_map(Value::as_u64).map(|v| v as u32))
                }
                _ => {}
            }
        }
        let eos_tok = tcfg.get("eos_token").and_then(token_str);
        let bos_tok = tcfg
            .get("bos_token")
            .and_then(token_str)
            .unwrap_or_default();
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".into());
        Self::assemble(
            ModelInfo {
                id,
                path: dir.to_owned(),
                architecture: arch,
                format: "safetensors".into(),
                context_length: context,
                vocab_size: vocab,
                own_chat_template: template.is_some(),
            },
            weights,
            tokenizer,
            template,
            &bos_tok,
            eos_tok,
            eos_ids,
        )
    }

    fn load_gguf(path: &Path, device: &Device) -> Result<Self, LlmError> {
        let mut file = std::fs::File::open(path).map_err(io(path))?;
        let ct = read_gguf(&mut file, path)?;
        let md = &ct.metadata;
        let get_str = |k: &str| md.get(k).and_then(|v| v.to_string().ok()).cloned();
        let get_u32 = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
        let arch = get_str("general.architecture").unwrap_or_default();
        let sidecar = path.with_file_name("tokenizer.json");
        let tokenizer = Arc::new(if sidecar.is_file() {
            TextTokenizer::from_json(&read_json(&sidecar)?)?
        } else {
            TextTokenizer::from_gguf(md)?
        });
        let template = get_str("tokenizer.chat_template");
        let eos_ids: Vec<u32> = get_u32("tokenizer.ggml.eos_token_id").into_iter().collect();
        let bos = get_u32("tokenizer.ggml.bos_token_id")
            .and_then(|id| tokenizer.inner().id_to_token(id))
            .unwrap_or_default();
        if arch != "qwen2" && arch != "qwen3" {
            return Err(LlmError::format(
                path,
                format!("GGUF architecture {arch:?} is not supported (qwen2, qwen3)"),
            ));
        }
        let weights = Qwen::from_gguf(&ct, &mut file, path, device)?;
        let vocab = weights.config().vocab_size;
        let context = weights.config().max_position_embeddings;
        let id = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "local".into());
        Self::assemble(
            ModelInfo {
                id,
                path: path.to_owned(),
                architecture: arch,
                format: "gguf".into(),
                context_length: context,
                vocab_size: vocab,
                own_chat_template: template.is_some(),
            },
            weights,
            tokenizer,
            template,
            &bos,
            None,
            eos_ids,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        info: ModelInfo,
        weights: Qwen,
        tokenizer: Arc<TextTokenizer>,
        template: Option<String>,
        bos: &str,
        eos_token: Option<String>,
        mut eos: Vec<u32>,
    ) -> Result<Self, LlmError> {
        // Qwen chat models end a turn with <|im_end|>; base models with <|endoftext|>.
        for t in eos_token
            .iter()
            .map(String::as_str)
            .chain(["<|im_end|>", "<|endoftext|>"])
        {
            if let Some(id) = tokenizer.token_id(t) {
                eos.push(id);
            }
        }
        eos.sort_unstable();
        eos.dedup();
        let turn_end = tokenizer
            .token_id("<|im_end|>")
            .or_else(|| eos.first().copied())
            .ok_or_else(|| {
                LlmError::format(&info.path, "the tokenizer has no end-of-turn token")
            })?;
        if template.is_none() {
            tracing::warn!(model = %info.id, "no chat template in the model; using ChatML");
        }
        let eos_str = tokenizer.inner().id_to_token(turn_end).unwrap_or_default();
        let template = ChatTemplate::new(template.as_deref().unwrap_or(CHATML), bos, &eos_str)?;
        let grammars = Grammars::new(tokenizer.clone(), info.vocab_size, turn_end)?;
        tracing::info!(model = %info.id, arch = %info.architecture, format = %info.format, vocab = info.vocab_size, "language model loaded");
        Ok(Self {
            info,
            weights: Mutex::new(weights),
            tokenizer,
            template,
            eos,
            grammars,
            tokens_generated: AtomicU64::new(0),
        })
    }

    /// The id clients use for this model.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// What was loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Tokens computed since load (all requests); a metric, and how tests see that
    /// generation stopped.
    pub fn tokens_generated(&self) -> u64 {
        self.tokens_generated.load(Ordering::SeqCst)
    }

    /// The prompt text the chat template makes of `messages`.
    pub fn render_prompt(&self, messages: &[crate::Message]) -> Result<String, LlmError> {
        self.template.render(messages)
    }

    /// Generates one answer. `on_text` gets text as soon as it is final (stop strings are
    /// held back until they can no longer match). Cancelling `cancel` stops before the next
    /// token is computed. Requests to one model run one at a time.
    pub fn generate(
        &self,
        req: &ChatRequest,
        cancel: &CancelToken,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError> {
        let p = &req.params;
        p.validate()?;
        if req.messages.is_empty() {
            return Err(LlmError::invalid(
                "messages",
                "at least one message is needed",
            ));
        }
        let prompt = self.template.render(&req.messages)?;
        let ids = self.tokenizer.encode(&prompt)?;
        if ids.is_empty() {
            return Err(LlmError::invalid("messages", "the prompt is empty"));
        }
        let context = self.info.context_length;
        if ids.len() >= context {
            return Err(LlmError::ContextOverflow {
                prompt: ids.len(),
                context,
            });
        }
        let max_new = p.max_tokens.min(context - ids.len());
        let mut constraint: Option<Constraint> = match &req.format {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject => Some(self.grammars.json_object()?),
            ResponseFormat::JsonSchema { schema, .. } => Some(self.grammars.json_schema(schema)?),
        };
        let mut sampler = Sampler::new(p);
        let usage = |n| Usage {
            prompt_tokens: ids.len(),
            completion_tokens: n,
        };
        let mut weights = self.weights.lock().unwrap_or_else(|e| e.into_inner());
        if cancel.is_cancelled() {
            return Ok(Completion {
                text: String::new(),
                finish_reason: FinishReason::Cancelled,
                usage: usage(0),
            });
        }
        weights.clear()?;
        let mut logits = weights.forward(&ids)?;
        let mut history = ids.clone();
        let mut stops = StopScan::new(&p.stop);
        let mut utf8 = Utf8Stream::default();
        let mut generated = 0usize;
        let finish = loop {
            if cancel.is_cancelled() {
                break FinishReason::Cancelled;
            }
            if generated >= max_new {
                break FinishReason::Length;
            }
            let mask = match constraint.as_mut() {
                Some(c) => match c.allowed()? {
                    Some(m) => Some(m),
                    None => break FinishReason::Stop,
                },
                None => None,
            };
            let tok = sampler.sample(
                &logits,
                |id| match &mask {
                    Some(m) => m.is_allowed(id),
                    None => self.tokenizer.is_usable(id),
                },
                &history,
            )?;
            generated += 1;
            self.tokens_generated.fetch_add(1, Ordering::SeqCst);
            if self.eos.contains(&tok) {
                break FinishReason::Stop;
            }
            if let Some(c) = constraint.as_mut() {
                c.consume(tok)?;
            }
            history.push(tok);
            let piece = utf8.push(self.tokenizer.text_bytes(tok));
            if stops.push(&piece, on_text) {
                break FinishReason::Stop;
            }
            if constraint.as_ref().is_some_and(|c| c.is_stopped()) {
                break FinishReason::Stop;
            }
            if cancel.is_cancelled() {
                break FinishReason::Cancelled;
            }
            if generated >= max_new {
                break FinishReason::Length;
            }
            logits = weights.forward(&[tok])?;
        };
        if !stops.stopped {
            let rest = utf8.finish();
            stops.push(&rest, on_text);
        }
        let text = stops.finish(on_text);
        Ok(Completion {
            text,
            finish_reason: finish,
            usage: usage(generated),
        })
    }
}

/// Stop-string detection over streamed text: text that could still be the start of a stop
/// string is held back; a match truncates the output.
struct StopScan<'a> {
    stops: &'a [String],
    text: String,
    emitted: usize,
    stopped: bool,
}

impl<'a> StopScan<'a> {
    fn new(stops: &'a [String]) -> Self {
        Self {
            stops,
            text: String::new(),
            emitted: 0,
            stopped: false,
        }
    }

    /// Adds text; returns true when a stop string was found.
    fn push(&mut self, piece: &str, on_text: &mut dyn FnMut(&str)) -> bool {
        if self.stopped || piece.is_empty() {
            return self.stopped;
        }
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = self.text.len().saturating_sub(longest);
        self.text.push_str(piece);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.text[from..].find(s.as_str()).map(|i| from + i))
            .min();
        if let Some(at) = hit {
            self.text.truncate(at);
            self.stopped = true;
            self.flush(self.text.len(), on_text);
            return true;
        }
        let hold = self
            .stops
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .filter(|&k| s.is_char_boundary(k) && self.text.ends_with(&s[..k]))
                    .max()
            })
            .max()
            .unwrap_or(0);
        self.flush(self.text.len() - hold, on_text);
        false
    }

    fn flush(&mut self, upto: usize, on_text: &mut dyn FnMut(&str)) {
        if upto > self.emitted {
            on_text(&self.text[self.emitted..upto]);
            self.emitted = upto;
        }
    }

    fn finish(mut self, on_text: &mut dyn FnMut(&str)) -> String {
        let n = self.text.len();
        self.flush(n, on_text);
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, Vec<String>, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut scan = StopScan::new(&stops);
        let mut out = Vec::new();
        let mut hit = false;
        for p in pieces {
            if scan.push(p, &mut |t| out.push(t.to_owned())) {
                hit = true;
                break;
            }
        }
        let text = scan.finish(&mut |t| out.push(t.to_owned()));
        (text, out, hit)
    }

    #[test]
    fn stop_strings_split_across_tokens_are_caught() {
        let (text, out, hit) = run(&["END"], &["안녕 E", "N", "D and more"]);
        assert!(hit);
        assert_eq!(text, "안녕 ");
        assert_eq!(out.concat(), "안녕 ");
        // "E" was held back until it could no longer start "END".
        let (text, out, hit) = run(&["END"], &["a E", "x"]);
        assert!(!hit);
        assert_eq!(text, "a Ex");
        assert_eq!(out, vec!["a ", "Ex"]);
    }
}

/// Reads a GGUF file's metadata and tensor table, naming `path` in errors: the one way GGUF
/// headers are read, so the fuzzer exercises what loading runs.
pub fn read_gguf<R: std::io::Read + std::io::Seek>(
    r: &mut R,
    path: &Path,
) -> Result<gguf_file::Content, LlmError> {
    gguf_file::Content::read(r).map_err(|e| LlmError::format(path, format!("not a GGUF file: {e}")))
}
