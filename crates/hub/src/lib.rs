//! Finding installed models and pulling new ones from a Hugging Face-compatible hub.
//!
//! Pulling goes through the `hf-hub` crate, so `HF_ENDPOINT` (a mirror or a local server),
//! `HF_HOME` (the cache) and `HF_TOKEN` behave as in the Python tools. Files land in the hub
//! cache first and are then linked (or copied) into `<dir>/<name>/` in diffusers layout.

use std::path::{Path, PathBuf};

use atelier_engine::{inspect, EngineError, ModelInfo};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};

/// Errors from listing or pulling.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("hub request for {repo}: {message}")]
    Hub { repo: String, message: String },
    #[error("{repo} is neither a diffusers repository (model_index.json) nor a language model (config.json + tokenizer.json); to take one file, name it with --file")]
    NotAModel { repo: String },
    #[error("{repo} holds several GGUF files; pick one with --file: {}", .files.join(", "))]
    PickFile { repo: String, files: Vec<String> },
    #[error("{repo} has no file {file:?}")]
    NoSuchFile { repo: String, file: String },
    #[error("invalid repository id {0:?}: expected owner/name")]
    BadRepoId(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// One entry of a models folder.
#[derive(Debug)]
pub enum Listed {
    Ok(ModelInfo),
    /// A folder that looks like a model but cannot be used, with the reason.
    Broken {
        path: PathBuf,
        error: EngineError,
    },
}

/// Lists models in `dir`: `dir` itself if it is a model folder, else each sub-folder with a
/// `model_index.json`. A missing `dir` lists nothing.
pub fn list(dir: &Path) -> Result<Vec<Listed>, HubError> {
    let classify = |p: &Path| match inspect(p) {
        Ok(info) => Listed::Ok(info),
        Err(error) => Listed::Broken {
            path: p.to_path_buf(),
            error,
        },
    };
    if dir.join("model_index.json").is_file() {
        return Ok(vec![classify(dir)]);
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(HubError::Io {
                path: dir.to_path_buf(),
                source: e,
            })
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model_index.json").is_file())
        .collect();
    paths.sort();
    Ok(paths.iter().map(|p| classify(p)).collect())
}

/// Whether a repository file is needed to run the model: configs, tokenizers and safetensors
/// of the pipeline components that `model_index.json` declares. Other weights (`.bin`, `.ckpt`, ONNX, Flax, single-file
/// checkpoints at the top level) are skipped unless `all_files`.
pub fn wanted(file: &str, all: &[String], components: &[String], all_files: bool) -> bool {
    if all_files {
        return true;
    }
    let Some((dir, name)) = file.rsplit_once('/') else {
        return file == "model_index.json";
    };
    if !components.iter().any(|c| c == dir) {
        return false;
    }
    if name.ends_with(".json") || name.ends_with(".txt") {
        return true;
    }
    if !name.ends_with(".safetensors") {
        return false;
    }
    // Prefer full-precision weights; take an fp16 variant only when it is all there is.
    if let Some(base) = name.strip_suffix(".fp16.safetensors") {
        let plain = format!("{dir}/{base}.safetensors");
        return !all.contains(&plain);
    }
    !name.contains(".fp16") && !name.contains(".non_ema")
}

/// Hears how a pull is going: the CLI draws bars on the terminal, the server keeps figures that
/// the web UI polls.
pub trait PullObserver: Send + Sync {
    /// How many files this pull will fetch (called once the repository listing is read).
    fn planned(&self, _files: usize) {}
    /// A file's download starts; `size` is its length in bytes (0 when unknown).
    fn start(&self, file: &str, size: u64);
    /// `n` more bytes of the current file arrived.
    fn advance(&self, n: u64);
    /// The current file is complete (also when it came from the local cache).
    fn finish(&self, file: &str);
}

/// Terminal progress bars, one per file.
struct TerminalBars(std::sync::Mutex<Option<indicatif::ProgressBar>>);

impl PullObserver for TerminalBars {
    fn start(&self, file: &str, size: u64) {
        let bar = new_bar();
        bar.set_length(size);
        bar.set_message(file.to_owned());
        if let Ok(mut b) = self.0.lock() {
            *b = Some(bar);
        }
    }
    fn advance(&self, n: u64) {
        if let Ok(b) = self.0.lock() {
            if let Some(b) = b.as_ref() {
                b.inc(n);
            }
        }
    }
    fn finish(&self, _file: &str) {
        if let Ok(mut b) = self.0.lock() {
            if let Some(b) = b.take() {
                b.finish();
            }
        }
    }
}

/// Adapts an observer to `hf-hub`'s per-download progress callbacks.
struct Relay<'a> {
    observer: &'a dyn PullObserver,
    file: String,
}

impl hf_hub::api::Progress for Relay<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.observer.start(&self.file, size as u64);
    }
    fn update(&mut self, size: usize) {
        self.observer.advance(size as u64);
    }
    fn finish(&mut self) {}
}

fn new_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:40} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Whether a language-model repository file is needed: the top-level configs, tokenizer files,
/// chat template and safetensors weights (not `.bin`, ONNX, GGUF or sub-folders) unless
/// `all_files`.
pub fn wanted_llm(file: &str, all_files: bool) -> bool {
    if all_files {
        return true;
    }
    !file.contains('/')
        && [".json", ".safetensors", ".jinja", ".txt"]
            .iter()
            .any(|e| file.ends_with(e))
}

/// What a pull brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    /// A diffusers pipeline folder.
    Diffusers(PathBuf),
    /// A language-model folder (config.json, tokenizer, safetensors).
    LanguageModel(PathBuf),
    /// One file named with `--file` (e.g. a GGUF model).
    File(PathBuf),
}

impl Pulled {
    /// Where it landed.
    pub fn path(&self) -> &Path {
        match self {
            Pulled::Diffusers(p) | Pulled::LanguageModel(p) | Pulled::File(p) => p,
        }
    }
}

/// Downloads `repo_id` at `revision` into `dir/<name>`: a diffusers pipeline, a language model's
/// safetensors folder, or only `file` when one is named (a GGUF repository holds many
/// quantizations of one model).
pub fn pull(
    repo_id: &str,
    revision: &str,
    dir: &Path,
    all_files: bool,
    file: Option<&str>,
) -> Result<Pulled, HubError> {
    pull_observed(
        repo_id,
        revision,
        dir,
        all_files,
        file,
        &TerminalBars(std::sync::Mutex::new(None)),
    )
}

/// [`pull`], reporting each file's progress to `observer` instead of the terminal.
pub fn pull_observed(
    repo_id: &str,
    revision: &str,
    dir: &Path,
    all_files: bool,
    file: Option<&str>,
    observer: &dyn PullObserver,
) -> Result<Pulled, HubError> {
    let name = repo_id
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && repo_id.matches('/').count() <= 1 && !n.contains(".."))
        .ok_or_else(|| HubError::BadRepoId(repo_id.into()))?;
    let hub = |e: hf_hub::api::sync::ApiError| HubError::Hub {
        repo: repo_id.into(),
        message: e.to_string(),
    };
    let api = ApiBuilder::from_env()
        .with_progress(false)
        .build()
        .map_err(hub)?;
    let repo = api.repo(Repo::with_revision(
        repo_id.into(),
        RepoType::Model,
        revision.into(),
    ));
    let info = repo.info().map_err(hub)?;
    let files: Vec<String> = info.siblings.iter().map(|s| s.rfilename.clone()).collect();
    let target = dir.join(name);
    let fetch = |file: &str| -> Result<PathBuf, HubError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HubError::Io { path, source }
        };
        let relay = Relay {
            observer,
            file: file.to_owned(),
        };
        let cached = repo.download_with_progress(file, relay).map_err(hub)?;
        observer.finish(file);
        let dest = target.join(file);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let _ = std::fs::remove_file(&dest);
        let real = std::fs::canonicalize(&cached).map_err(io(&cached))?;
        if std::fs::hard_link(&real, &dest).is_err() {
            std::fs::copy(&real, &dest).map_err(io(&dest))?;
        }
        tracing::info!(file = %file, "pulled");
        Ok(dest)
    };
    let safe = |f: &str| !f.split('/').any(|part| part == ".." || part.is_empty());
    if let Some(file) = file {
        if !safe(file) || !files.iter().any(|f| f == file) {
            return Err(HubError::NoSuchFile {
                repo: repo_id.into(),
                file: file.into(),
            });
        }
        observer.planned(1);
        return Ok(Pulled::File(fetch(file)?));
    }
    if !files.iter().any(|f| f == "model_index.json") {
        let has = |n: &str| files.iter().any(|f| f == n);
        if has("config.json") && has("tokenizer.json") {
            let take: Vec<&String> = files
                .iter()
                .filter(|f| safe(f) && wanted_llm(f, all_files))
                .collect();
            observer.planned(take.len());
            for f in take {
                fetch(f)?;
            }
            return Ok(Pulled::LanguageModel(target));
        }
        let gguf: Vec<String> = files
            .iter()
            .filter(|f| f.ends_with(".gguf"))
            .cloned()
            .collect();
        if !gguf.is_empty() {
            return Err(HubError::PickFile {
                repo: repo_id.into(),
                files: gguf,
            });
        }
        return Err(HubError::NotAModel {
            repo: repo_id.into(),
        });
    }
    // Read (and cached) here to learn the components; the file loop below reports it once.
    let index_path = repo.get("model_index.json").map_err(hub)?;
    let index: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&index_path).map_err(|source| {
            HubError::Io {
                path: index_path.clone(),
                source,
            }
        })?)
        .map_err(|e| HubError::Hub {
            repo: repo_id.into(),
            message: format!("model_index.json: {e}"),
        })?;
    // Components are the keys whose value is a [library, class] pair with a class.
    let components: Vec<String> = index
        .iter()
        .filter(|(_, v)| {
            v.as_array()
                .is_some_and(|a| a.get(1).is_some_and(|c| !c.is_null()))
        })
        .map(|(k, _)| k.clone())
        .collect();
    let take: Vec<&String> = files
        .iter()
        .filter(|f| safe(f) && wanted(f, &files, &components, all_files))
        .collect();
    observer.planned(take.len());
    for file in take {
        fetch(file)?;
    }
    inspect(&target)?;
    Ok(Pulled::Diffusers(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_pipeline_files_and_prefers_full_precision() {
        let all = names(&[
            "model_index.json",
            "sd_turbo.safetensors",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "unet/diffusion_pytorch_model.bin",
            "vae/diffusion_pytorch_model.fp16.safetensors",
            "tokenizer/merges.txt",
            "text_encoder/flax_model.msgpack",
            "reference/reference.json",
            "unet/extra/notes.json",
        ]);
        let components = names(&["unet", "vae", "tokenizer", "text_encoder"]);
        let got: Vec<&String> = all
            .iter()
            .filter(|f| wanted(f, &all, &components, false))
            .collect();
        assert_eq!(
            got,
            vec![
                "model_index.json",
                "unet/config.json",
                "unet/diffusion_pytorch_model.safetensors",
                "vae/diffusion_pytorch_model.fp16.safetensors",
                "tokenizer/merges.txt",
            ]
        );
    }

    #[test]
    fn picks_language_model_files() {
        let got: Vec<&str> = [
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "merges.txt",
            "model-00001-of-00002.safetensors",
            "model.safetensors.index.json",
            "pytorch_model.bin",
            "onnx/model.onnx",
            "qwen2.5-1.5b-instruct-q4_k_m.gguf",
            "chat_template.jinja",
        ]
        .into_iter()
        .filter(|f| wanted_llm(f, false))
        .collect();
        assert_eq!(
            got,
            [
                "config.json",
                "generation_config.json",
                "tokenizer.json",
                "tokenizer_config.json",
                "merges.txt",
                "model-00001-of-00002.safetensors",
                "model.safetensors.index.json",
                "chat_template.jinja",
            ]
        );
    }

    #[test]
    fn missing_dir_lists_nothing() {
        let d = tempfile::tempdir().unwrap();
        assert!(list(&d.path().join("nope")).unwrap().is_empty());
    }
}
