//! Platform errors. The server maps each variant to one HTTP status in one place.

/// Everything the platform layer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The database failed or is unreachable.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed at startup.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Artifact storage failed.
    #[error("storage {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The object store (a bucket, or the local folder) failed.
    #[error("object store {key}: {message}")]
    Objects { key: String, message: String },
    /// Stored data does not parse (a bug or a hand-edited database).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A job input failed validation; `field` is the JSON path as the client wrote it.
    #[error("invalid {field}: {message}")]
    InvalidInput { field: String, message: String },
    /// A well-formed request the current state of what it names cannot take (a campaign that
    /// has ended, an edit naming a cut the version lacks, exporting a version still drawing):
    /// the same request may succeed later or against another state, so it is not an input
    /// error.
    #[error("conflict on {field}: {message}")]
    Conflict { field: String, message: String },
    /// No app with this name is installed.
    #[error("unknown model {0:?}")]
    UnknownApp(String),
    /// The queue is full.
    #[error("queue is full ({depth} jobs waiting)")]
    QueueFull { depth: i64, retry_after_s: u64 },
    /// A webhook URL was refused (private address, bad scheme).
    #[error("webhook {url}: {message}")]
    Webhook { url: String, message: String },
    /// The engine failed while running a job.
    #[error(transparent)]
    Engine(#[from] atelier_engine::EngineError),
    /// An app step failed for a reason of its own (`llm_error`, `render_error`); the job fails
    /// with this code.
    #[error("{code}: {message}")]
    Failed { code: String, message: String },
    /// Screening blocked the job's content.
    #[error("content blocked ({}): {}", .0.category, .0.message)]
    ContentBlocked(Box<Blocked>),
}

/// Why content was blocked; `details` carries the matched term and span (or the image
/// verdicts).
#[derive(Debug, Clone)]
pub struct Blocked {
    pub category: String,
    pub message: String,
    pub details: serde_json::Value,
}

impl PlatformError {
    /// Shorthand for an input error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for a conflict with the current state.
    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Conflict {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Platform result alias.
pub type Result<T, E = PlatformError> = std::result::Result<T, E>;
