//! Typed errors of the language-model layer.

use std::path::PathBuf;

/// Everything that can go wrong loading or running a language model.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Nothing at the path, or an unreadable file.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The model folder or file is not something we can load; says what was expected.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// candle failed (shape mismatch in weights, out of memory, device errors).
    #[error("model error: {0}")]
    Candle(#[from] candle_core::Error),
    /// The tokenizer could not be built or failed on the input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template did not render (bad template or unsupported construct).
    #[error("chat template: {0}")]
    Template(String),
    /// A request parameter is out of range; names the field.
    #[error("{field}: {message}")]
    InvalidRequest { field: String, message: String },
    /// The JSON schema could not be compiled into a grammar or a validator.
    #[error("json schema: {0}")]
    Schema(String),
    /// The prompt leaves no room to generate within the model's context.
    #[error("the prompt is {prompt} tokens; the model's context is {context} tokens")]
    ContextOverflow { prompt: usize, context: usize },
    /// The remote endpoint failed after retries or answered something unusable.
    #[error("remote model {url}: {message}")]
    Remote { url: String, message: String },
    /// A structured answer never validated within the repair budget.
    #[error("the model's answer did not match the schema after {attempts} attempt(s): {message}")]
    InvalidOutput {
        attempts: usize,
        message: String,
        raw: String,
    },
    /// The caller cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A bug or a failed background thread.
    #[error("internal: {0}")]
    Internal(String),
}

impl LlmError {
    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        LlmError::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        LlmError::InvalidRequest {
            field: field.into(),
            message: message.into(),
        }
    }
}
