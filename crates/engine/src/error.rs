//! One error type for the engine, with structured fields so callers (CLI, server) can say
//! exactly which file or request field is at fault without parsing strings.

use std::path::PathBuf;

/// Everything that can go wrong while loading a model or running a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A file the model folder must contain is absent.
    #[error("missing file {path}: {why}")]
    MissingFile { path: PathBuf, why: String },

    /// A file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON config is malformed or has a field of the wrong type.
    #[error("invalid config {path}: {message}")]
    InvalidConfig { path: PathBuf, message: String },

    /// The configs do not describe a model family we can run.
    #[error("unknown model family in {path}: {message}")]
    UnknownFamily { path: PathBuf, message: String },

    /// A config asks for a feature this engine does not implement (yet).
    #[error("unsupported {field} = {value} in {path}")]
    Unsupported {
        path: PathBuf,
        field: String,
        value: String,
    },

    /// A weight file is missing a tensor, has a tensor of the wrong shape, or is not a safetensors file.
    #[error("bad weights in {path}: {message}")]
    Weights { path: PathBuf, message: String },

    /// A tokenizer file is unusable.
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    /// A request field is out of range; `field` names it as the API spells it.
    #[error("invalid {field}: {message}")]
    InvalidRequest {
        field: &'static str,
        message: String,
    },

    /// The scheduler name is not one we know.
    #[error("unknown scheduler {name:?}; known: {known}")]
    UnknownScheduler { name: String, known: String },

    /// The cancel token fired; `step` is the number of steps completed.
    #[error("cancelled after {step} of {total} steps")]
    Cancelled { step: usize, total: usize },

    /// The requested device is not compiled in or not present.
    #[error("device {0} is not available")]
    Device(String),

    /// A parity reference file does not follow the documented format.
    #[error("reference {path}: {message}")]
    Reference { path: PathBuf, message: String },

    /// Encoding the output image failed.
    #[error("encoding image: {0}")]
    Encode(String),

    /// A tensor operation failed; this indicates a bug or an exhausted device, not bad input.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Engine result alias.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::InvalidConfig {
            path: path.into(),
            message: message.into(),
        }
    }
}
