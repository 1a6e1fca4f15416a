//! Model downloads started over the API (the web UI's Models page), run on a blocking thread
//! with their progress kept for polling.
//!
//! They go through the same `atelier-hub` code as `atelier models pull`, into the first models
//! folder; the registry lists a model as soon as its folder is complete.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One pull's progress, as `GET /v1/models/pulls/{id}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PullStatus {
    pub id: String,
    pub repo: String,
    pub revision: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Files this pull fetches, once the repository listing is read.
    pub files_total: Option<usize>,
    pub files_done: usize,
    /// The file now downloading, with its size and bytes so far.
    pub file: Option<String>,
    pub file_size: u64,
    pub file_bytes: u64,
    /// Bytes received over all files.
    pub bytes: u64,
    /// `diffusers`, `language_model` or `file` when done.
    pub kind: Option<String>,
    pub path: Option<String>,
    pub error: Option<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
}

/// Why a pull could not start.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{0} is already being pulled")]
    Busy(String),
    #[error("no models folder is configured (start the server with --models DIR)")]
    NoFolder,
    #[error("the list of pulls is unavailable after a crashed pull")]
    Poisoned,
}

/// Every pull since start (newest last).
#[derive(Debug, Default)]
pub struct Pulls {
    all: Mutex<Vec<Arc<Mutex<PullStatus>>>>,
}

struct Observer(Arc<Mutex<PullStatus>>);

impl Observer {
    fn with(&self, f: impl FnOnce(&mut PullStatus)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }
}

impl atelier_hub::PullObserver for Observer {
    fn planned(&self, files: usize) {
        self.with(|s| s.files_total = Some(files));
    }
    fn start(&self, file: &str, size: u64) {
        self.with(|s| {
            s.file = Some(file.to_owned());
            s.file_size = size;
            s.file_bytes = 0;
        });
    }
    fn advance(&self, n: u64) {
        self.with(|s| {
            s.file_bytes += n;
            s.bytes += n;
        });
    }
    fn finish(&self, _file: &str) {
        self.with(|s| s.files_done += 1);
    }
}

impl Pulls {
    /// Snapshots, newest first.
    pub fn list(&self) -> Vec<PullStatus> {
        let all = self.all.lock().map(|a| a.clone()).unwrap_or_default();
        all.iter()
            .rev()
            .filter_map(|p| p.lock().ok().map(|s| s.clone()))
            .collect()
    }

    /// One pull.
    pub fn get(&self, id: &str) -> Option<PullStatus> {
        self.list().into_iter().find(|p| p.id == id)
    }

    /// Starts pulling `repo` at `revision` (optionally one `file`) into `dirs[0]`.
    pub fn start(
        &self,
        dirs: &[PathBuf],
        repo: &str,
        revision: &str,
        file: Option<String>,
    ) -> Result<PullStatus, PullError> {
        let dir = dirs.first().cloned().ok_or(PullError::NoFolder)?;
        let snapshot = PullStatus {
            id: format!("pull_{}", atelier_platform::new_id()),
            repo: repo.into(),
            revision: revision.into(),
            status: "running".into(),
            files_total: None,
            files_done: 0,
            file: None,
            file_size: 0,
            file_bytes: 0,
            bytes: 0,
            kind: None,
            path: None,
            error: None,
            started_ms: atelier_platform::now_ms(),
            finished_ms: None,
        };
        let status = Arc::new(Mutex::new(snapshot.clone()));
        {
            // Check and register under one lock, so two requests cannot both start `repo`.
            let mut all = self.all.lock().map_err(|_| PullError::Poisoned)?;
            let running = all.iter().any(|p| {
                p.lock()
                    .is_ok_and(|p| p.repo == repo && p.status == "running")
            });
            if running {
                return Err(PullError::Busy(repo.into()));
            }
            all.push(status.clone());
        }
        let (repo, revision) = (repo.to_owned(), revision.to_owned());
        tokio::task::spawn_blocking(move || {
            let observer = Observer(status.clone());
            let result = atelier_hub::pull_observed(
                &repo,
                &revision,
                &dir,
                false,
                file.as_deref(),
                &observer,
            );
            observer.with(|s| {
                s.finished_ms = Some(atelier_platform::now_ms());
                s.file = None;
                match result {
                    Ok(p) => {
                        s.status = "succeeded".into();
                        s.kind = Some(
                            match p {
                                atelier_hub::Pulled::Diffusers(_) => "diffusers",
                                atelier_hub::Pulled::LanguageModel(_) => "language_model",
                                atelier_hub::Pulled::File(_) => "file",
                            }
                            .into(),
                        );
                        s.path = Some(p.path().display().to_string());
                        tracing::info!(repo = %s.repo, path = ?s.path, "model pulled");
                    }
                    Err(e) => {
                        tracing::warn!(repo = %s.repo, "model pull failed: {e}");
                        s.status = "failed".into();
                        s.error = Some(e.to_string());
                    }
                }
            });
        });
        Ok(snapshot)
    }
}
