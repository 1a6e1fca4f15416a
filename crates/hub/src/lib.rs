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
    #[error("{repo} has no model_index.json: atelier pulls diffusers-format repositories")]
    NotDiffusers { repo: String },
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

struct Bar(indicatif::ProgressBar);

impl hf_hub::api::Progress for Bar {
    fn init(&mut self, size: usize, filename: &str) {
        self.0.set_length(size as u64);
        self.0.set_message(filename.to_owned());
    }
    fn update(&mut self, size: usize) {
        self.0.inc(size as u64);
    }
    fn finish(&mut self) {
        self.0.finish();
    }
}

fn new_bar() -> Bar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:40} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Bar(bar)
}

/// Downloads `repo_id` at `revision` into `dir/<name>` and returns that folder.
pub fn pull(
    repo_id: &str,
    revision: &str,
    dir: &Path,
    all_files: bool,
) -> Result<PathBuf, HubError> {
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
    if !files.iter().any(|f| f == "model_index.json") {
        return Err(HubError::NotDiffusers {
            repo: repo_id.into(),
        });
    }
    let index_path = repo
        .download_with_progress("model_index.json", new_bar())
        .map_err(hub)?;
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
    let target = dir.join(name);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HubError::Io { path, source }
    };
    for file in files
        .iter()
        .filter(|f| wanted(f, &files, &components, all_files))
    {
        if file.split('/').any(|part| part == ".." || part.is_empty()) {
            continue;
        }
        let cached = repo.download_with_progress(file, new_bar()).map_err(hub)?;
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
    }
    inspect(&target)?;
    Ok(target)
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
    fn missing_dir_lists_nothing() {
        let d = tempfile::tempdir().unwrap();
        assert!(list(&d.path().join("nope")).unwrap().is_empty());
    }
}
