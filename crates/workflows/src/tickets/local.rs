//! Running the ticket steps without a server (`atelier ticket`): artifacts in memory, audit
//! entries and logs to the tracing log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use atelier_engine::CancelToken;
use atelier_platform::{PlatformError, FILE_REF};
use serde_json::Value;

use super::steps::{reference_id, TicketHost};
use super::store::TicketRecord;
use crate::guard::Audit;

/// An in-memory host: files live in a map keyed by id.
#[derive(Default)]
pub struct LocalHost {
    id: String,
    cancel: CancelToken,
    files: Mutex<HashMap<String, Vec<u8>>>,
}

impl std::fmt::Debug for LocalHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalHost").field("id", &self.id).finish()
    }
}

impl LocalHost {
    /// A host whose provenance names the run `id`.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Self::default()
        }
    }

    /// The run id, owned.
    pub fn job_id_owned(&self) -> String {
        self.id.clone()
    }

    /// Adds a file (e.g. a campaign logo read from disk); returns its reference.
    pub fn add_file(&self, bytes: Vec<u8>) -> String {
        let id = atelier_platform::new_id();
        if let Ok(mut m) = self.files.lock() {
            m.insert(id.clone(), bytes);
        }
        format!("{FILE_REF}{id}")
    }

    /// A file by reference.
    pub fn file(&self, reference: &str) -> Option<Vec<u8>> {
        let id = reference_id(reference).ok()?;
        self.files.lock().ok()?.get(id).cloned()
    }
}

#[async_trait]
impl Audit for LocalHost {
    async fn audit(
        &self,
        action: &str,
        category: Option<&str>,
        detail: Value,
    ) -> Result<(), PlatformError> {
        tracing::warn!(action, category, %detail, "safety");
        Ok(())
    }
}

#[async_trait]
impl TicketHost for LocalHost {
    fn job_id(&self) -> &str {
        &self.id
    }
    fn cancel(&self) -> CancelToken {
        self.cancel.clone()
    }
    fn progress(&self) -> super::steps::ProgressFn {
        Arc::new(|s, n, _| tracing::debug!(step = s, total = n, "denoising"))
    }
    async fn log(&self, line: String) {
        tracing::info!("{line}");
    }
    async fn put_file(
        &self,
        _content_type: &str,
        _ext: &str,
        bytes: Vec<u8>,
    ) -> Result<String, PlatformError> {
        Ok(self.add_file(bytes))
    }
    async fn get_file(&self, reference: &str) -> Result<Vec<u8>, PlatformError> {
        self.file(reference)
            .ok_or_else(|| PlatformError::Corrupt(format!("no file {reference}")))
    }
    async fn save(&self, _ticket: &TicketRecord) -> Result<(), PlatformError> {
        Ok(())
    }
}
