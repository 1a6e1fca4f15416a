//! Installed models: discovered in the model folders, loaded on first use, kept resident up to
//! a limit (least recently used goes first).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use atelier_engine::{DiffusionModel, LoadOptions, ModelInfo};
use atelier_platform::PlatformError;

/// Finds and loads models.
pub struct ModelRegistry {
    dirs: Vec<PathBuf>,
    options: LoadOptions,
    max_loaded: usize,
    loaded: Mutex<Vec<(String, Arc<DiffusionModel>)>>,
    digests: Mutex<std::collections::HashMap<PathBuf, String>>,
    generations: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelRegistry")
            .field("dirs", &self.dirs)
            .finish()
    }
}

impl ModelRegistry {
    /// Looks for models in `dirs` (each either a model folder or a folder of model folders).
    pub fn new(dirs: Vec<PathBuf>, options: LoadOptions, max_loaded: usize) -> Self {
        Self {
            dirs,
            options,
            max_loaded: max_loaded.max(1),
            loaded: Mutex::new(Vec::new()),
            digests: Mutex::new(std::collections::HashMap::new()),
            generations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Image generations started through this registry's models (for `/metrics` and for tests
    /// that prove blocked input never reaches a model).
    pub fn generations(&self) -> u64 {
        self.generations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts one generation; called by the apps right before they run the engine.
    pub fn count_generation(&self) {
        self.generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// `sha256:…` of a model folder's weights for provenance, computed once per folder (on a
    /// blocking thread: it reads every byte). `None`, with a warning, if a file is unreadable.
    pub async fn weights_digest(&self, path: &std::path::Path) -> Option<String> {
        if let Some(d) = self.digests.lock().ok().and_then(|m| m.get(path).cloned()) {
            return Some(d);
        }
        let p = path.to_path_buf();
        let d = tokio::task::spawn_blocking(move || atelier_provenance::weights_digest(&p))
            .await
            .ok()?;
        match d {
            Ok(d) => {
                if let Ok(mut m) = self.digests.lock() {
                    m.insert(path.to_path_buf(), d.clone());
                }
                Some(d)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "weights digest failed: {e}");
                None
            }
        }
    }

    /// The folders searched.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Usable models, in folder order, deduplicated by name (first wins).
    pub fn list(&self) -> Vec<ModelInfo> {
        let mut out: Vec<ModelInfo> = Vec::new();
        for d in &self.dirs {
            if let Ok(found) = atelier_hub::list(d) {
                for m in found {
                    match m {
                        atelier_hub::Listed::Ok(info) => {
                            if !out.iter().any(|o| o.name == info.name) {
                                out.push(info);
                            }
                        }
                        atelier_hub::Listed::Broken { path, error } => {
                            tracing::warn!(path = %path.display(), "model folder unusable: {error}");
                        }
                    }
                }
            }
        }
        out
    }

    /// Names of models currently loaded.
    pub fn resident(&self) -> Vec<String> {
        self.loaded
            .lock()
            .map(|l| l.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default()
    }

    /// Models currently loaded with the bytes their weights take, least recently used first.
    pub fn resident_memory(&self) -> Vec<(String, u64)> {
        self.loaded
            .lock()
            .map(|l| l.iter().map(|(n, m)| (n.clone(), m.weight_bytes)).collect())
            .unwrap_or_default()
    }

    /// How many models may stay loaded at once.
    pub fn max_loaded(&self) -> usize {
        self.max_loaded
    }

    /// The model called `name`, loading it (on a blocking thread) if needed.
    pub async fn get(self: &Arc<Self>, name: &str) -> Result<Arc<DiffusionModel>, PlatformError> {
        if let Ok(mut l) = self.loaded.lock() {
            if let Some(pos) = l.iter().position(|(n, _)| n == name) {
                let hit = l.remove(pos);
                let m = hit.1.clone();
                l.push(hit);
                return Ok(m);
            }
        }
        let info = self
            .list()
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| {
                PlatformError::invalid("input.model", format!("model {name:?} is not installed"))
            })?;
        let opts = self.options.clone();
        let path = info.path.clone();
        let model = tokio::task::spawn_blocking(move || DiffusionModel::load(&path, &opts))
            .await
            .map_err(|e| PlatformError::Corrupt(format!("model loader panicked: {e}")))??;
        let model = Arc::new(model);
        if let Ok(mut l) = self.loaded.lock() {
            l.retain(|(n, _)| n != name);
            l.push((name.to_owned(), model.clone()));
            while l.len() > self.max_loaded {
                let (evicted, _) = l.remove(0);
                tracing::info!(model = %evicted, "model unloaded (least recently used)");
            }
        }
        tracing::info!(model = %name, "model loaded");
        Ok(model)
    }
}
