//! Shared state of the HTTP layer.

use std::sync::Arc;

use atelier_platform::Platform;
use atelier_workflows::ModelRegistry;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub platform: Arc<Platform>,
    pub models: Arc<ModelRegistry>,
    /// Tenant used when the server runs open (loopback, no keys).
    pub default_tenant: String,
    /// Whether the bind address is loopback (open mode is possible only then).
    pub loopback: bool,
    /// The `--listen` address, for URLs when no Host header is sent.
    pub listen: String,
    /// Fixed public base URL (`--public-url`), else taken from the Host header.
    pub public_url: Option<String>,
    /// Lifetime of signed file links, in seconds.
    pub link_ttl_s: i64,
    /// The language model behind `/v1/chat/completions` and the writer tasks, if configured.
    pub llm: Option<atelier_llm::Llm>,
    /// Photo-ticket campaigns, tickets and batches.
    pub tickets: Option<Arc<atelier_workflows::tickets::Tickets>>,
    /// The diary-toon site.
    pub diary: Option<Arc<atelier_workflows::diary::Diary>>,
    /// Ad storyboards.
    pub storyboards: Option<Arc<atelier_workflows::storyboards::Storyboards>>,
    /// Fixed facts about this server, for `/v1/system`.
    pub system: SystemInfo,
    /// Model downloads started over the API.
    pub pulls: Arc<crate::pulls::Pulls>,
    /// Per-key request rate and stream limits, and body deadlines.
    pub http: Arc<crate::limits::HttpLimits>,
}

/// What the server was started with that clients may want to show (the web UI's Models page).
#[derive(Debug, Clone, Default)]
pub struct SystemInfo {
    /// An image safety checker is loaded (else outputs are reported as not screened).
    pub image_checker: bool,
    pub watermark: bool,
    pub c2pa: bool,
    /// In-process workers.
    pub workers: usize,
    /// `POST /v1/models/pulls` is allowed with an API key (`--allow-model-pull`); open mode
    /// always allows it.
    pub allow_model_pull: bool,
}

impl AppState {
    /// Open mode: loopback bind and no API keys exist.
    pub async fn open_mode(&self) -> bool {
        self.loopback && matches!(self.platform.store.key_count().await, Ok(0))
    }
}
