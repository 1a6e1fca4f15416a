//! Language models for atelier's writer tasks.
//!
//! Two kinds of model sit behind one [`Llm`] handle:
//! - [`local::LocalModel`]: Qwen2/Qwen2.5/Qwen3-family models run on candle, loaded from a
//!   diffusers-style folder of safetensors (`config.json`, `tokenizer.json`,
//!   `tokenizer_config.json`) or from one GGUF file (quantized; tokenizer and chat template
//!   read from its metadata). Decoding can be constrained to a JSON schema so structured
//!   output always parses.
//! - [`remote::RemoteModel`]: any OpenAI-compatible `/v1/chat/completions` endpoint, with
//!   timeouts, retries and validate-then-repair for structured output.
//!
//! This crate knows nothing of atelier's server, jobs or databases.

pub mod chat;
pub mod constrain;
pub mod embed;
pub mod error;
pub mod local;
pub mod qwen;
pub mod remote;
pub mod sampler;
pub mod schema;
pub mod template;
pub mod tiny;
pub mod tokenizer;

use std::sync::Arc;

pub use candle_core::Device;
pub use chat::{
    CancelToken, ChatRequest, Completion, FinishReason, Message, ResponseFormat, Role,
    SamplingParams, Usage,
};
pub use error::LlmError;
pub use local::LocalModel;
pub use remote::{RemoteConfig, RemoteModel};

/// A configured language model: local weights or a remote endpoint.
#[derive(Clone)]
pub enum Llm {
    /// Weights on this machine.
    Local(Arc<LocalModel>),
    /// An OpenAI-compatible server.
    Remote(Arc<RemoteModel>),
}

impl Llm {
    /// The id clients use for this model (folder/file stem or the remote model name).
    pub fn id(&self) -> &str {
        match self {
            Llm::Local(m) => m.id(),
            Llm::Remote(m) => m.model(),
        }
    }

    /// One chat completion. `on_text` receives text as it is produced (local models stream
    /// token by token; remote ones deliver the whole answer at once). Local generation runs
    /// on a blocking thread so async callers are not stalled.
    pub async fn chat(
        &self,
        req: ChatRequest,
        cancel: CancelToken,
        on_text: Box<dyn FnMut(&str) + Send>,
    ) -> Result<Completion, LlmError> {
        match self {
            Llm::Local(m) => {
                let m = m.clone();
                let mut on_text = on_text;
                tokio::task::spawn_blocking(move || m.generate(&req, &cancel, &mut *on_text))
                    .await
                    .map_err(|e| LlmError::Internal(format!("generation thread failed: {e}")))?
            }
            Llm::Remote(m) => {
                let mut on_text = on_text;
                let out = m.chat(&req, &cancel).await?;
                on_text(&out.text);
                Ok(out)
            }
        }
    }

    /// A JSON value valid against `schema`, or an error saying why none could be had.
    ///
    /// Local models decode under the schema's grammar, so the answer parses by construction
    /// (it is still validated: a grammar engine bug must not pass silently). Remote models
    /// are asked for the schema (JSON mode where the server supports it); an answer that does
    /// not validate is sent back with the validation error, at most `repairs` times.
    pub async fn structured(
        &self,
        messages: Vec<Message>,
        schema: &serde_json::Value,
        params: SamplingParams,
        repairs: usize,
        cancel: CancelToken,
    ) -> Result<Structured, LlmError> {
        let validator = schema::Validator::new(schema)?;
        let mut messages = with_schema_note(messages, schema);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let req = ChatRequest {
                messages: messages.clone(),
                params: params.clone(),
                format: ResponseFormat::JsonSchema {
                    name: "answer".into(),
                    schema: schema.clone(),
                },
            };
            let out = self.chat(req, cancel.clone(), Box::new(|_| {})).await?;
            if out.finish_reason == FinishReason::Cancelled {
                return Err(LlmError::Cancelled);
            }
            let problem = match schema::extract_json(&out.text) {
                Ok(value) => match validator.check(&value) {
                    Ok(()) => {
                        return Ok(Structured {
                            value,
                            raw: out.text,
                            attempts,
                            usage: out.usage,
                        })
                    }
                    Err(e) => e,
                },
                Err(e) if out.finish_reason == FinishReason::Length => format!(
                    "the answer was cut off at max_tokens={} before the JSON was complete ({e})",
                    params.max_tokens
                ),
                Err(e) => e,
            };
            tracing::warn!(model = self.id(), attempt = attempts, %problem, "structured answer did not validate");
            if attempts > repairs {
                return Err(LlmError::InvalidOutput {
                    attempts,
                    message: problem,
                    raw: out.text,
                });
            }
            messages.push(Message::assistant(out.text));
            messages.push(Message::user(format!(
                "That answer is not valid: {problem}\nReply again with only the corrected JSON, \
                 no explanation and no code fences."
            )));
        }
    }
}

/// A schema-valid answer and how it was obtained.
#[derive(Debug, Clone)]
pub struct Structured {
    /// The parsed, validated value.
    pub value: serde_json::Value,
    /// The model's text it came from.
    pub raw: String,
    /// 1 when the first answer was valid; more when repairs were needed.
    pub attempts: usize,
    /// Tokens used by the last attempt.
    pub usage: Usage,
}

/// States the schema in the system message: remote servers may ignore `response_format`, and
/// local models write better content when they know what the fields mean (the grammar only
/// guarantees the shape).
fn with_schema_note(mut messages: Vec<Message>, schema: &serde_json::Value) -> Vec<Message> {
    let note = format!(
        "Reply with one JSON object, and nothing else, that matches this JSON Schema:\n{schema}"
    );
    match messages.iter_mut().find(|m| m.role == Role::System) {
        Some(m) => {
            m.content.push_str("\n\n");
            m.content.push_str(&note);
        }
        None => messages.insert(0, Message::system(note)),
    }
    messages
}

/// How `atelier` is told which language model to use.
#[derive(Debug, Clone)]
pub enum LlmConfig {
    /// A model folder (safetensors) or a `.gguf` file on this machine.
    Local(std::path::PathBuf),
    /// An OpenAI-compatible endpoint.
    Remote(RemoteConfig),
}

impl Llm {
    /// Loads or connects to the configured model (loading local weights takes a while; call
    /// from a blocking context).
    pub fn open(cfg: &LlmConfig, device: &candle_core::Device) -> Result<Self, LlmError> {
        match cfg {
            LlmConfig::Local(path) => Ok(Llm::Local(Arc::new(LocalModel::load(path, device)?))),
            LlmConfig::Remote(r) => Ok(Llm::Remote(Arc::new(RemoteModel::new(r.clone())?))),
        }
    }

    /// `local` or `remote`, for listings.
    pub fn kind(&self) -> &'static str {
        match self {
            Llm::Local(_) => "local",
            Llm::Remote(_) => "remote",
        }
    }
}
