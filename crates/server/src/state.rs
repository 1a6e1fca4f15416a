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
}

impl AppState {
    /// Open mode: loopback bind and no API keys exist.
    pub async fn open_mode(&self) -> bool {
        self.loopback && matches!(self.platform.store.key_count().await, Ok(0))
    }
}
