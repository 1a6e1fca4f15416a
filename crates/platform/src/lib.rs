//! atelier's platform: every generation is a durable job with an event log, claimed by
//! workers under a lease, streamed to clients, announced by signed webhooks.
//!
//! The platform knows jobs, not models: apps (text-to-image, later the workflows) implement
//! [`App`] and are registered by the binary. The server renders jobs for HTTP.

pub mod artifacts;
pub mod auth;
pub mod error;
pub mod input;
pub mod links;
pub mod metrics;
pub mod platform;
pub mod store;
pub mod webhooks;
pub mod worker;

pub use error::{Blocked, PlatformError, Result};
pub use platform::{App, JobContext, Limits, Platform, PlatformConfig, Reporter};
pub use store::{Job, JobStatus, JobStore};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new opaque id: time-ordered UUIDv7 without dashes.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Prefix of file references inside job outputs; the server turns them into signed URLs.
pub const FILE_REF: &str = "atelier-file://";
