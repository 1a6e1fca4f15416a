//! `atelier models pull` against a local server that speaks the Hugging Face hub's URL layout,
//! configured only through `HF_ENDPOINT` and `HF_HOME`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::hub::serve as hub;

const REPO: &str = "atelier-test/sd15-tiny";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sd15-tiny")
}

fn pull(addr: std::net::SocketAddr, hf_home: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["models", "pull"])
        .args(args)
        .env("HF_ENDPOINT", format!("http://{addr}"))
        .env("HF_HOME", hf_home)
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), out)
}

/// A language model repository (safetensors folder plus files atelier does not need) and a
/// GGUF repository (several quantizations: one must be named with --file).
#[test]
fn pull_downloads_language_models_and_single_gguf_files() {
    let tmp = tempfile::tempdir().unwrap();
    let tiny = atelier_llm::tiny::build(&tmp.path().join("build"), &Default::default()).unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("onnx")).unwrap();
    for e in std::fs::read_dir(&tiny.folder).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, repo.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(repo.join("pytorch_model.bin"), b"not needed").unwrap();
    std::fs::write(repo.join("onnx/model.onnx"), b"not needed").unwrap();
    let gguf_repo = tmp.path().join("gguf");
    std::fs::create_dir_all(&gguf_repo).unwrap();
    std::fs::copy(&tiny.gguf, gguf_repo.join("tiny-q8_0.gguf")).unwrap();
    std::fs::copy(&tiny.gguf, gguf_repo.join("tiny-q4_0.gguf")).unwrap();
    std::fs::write(gguf_repo.join("README.md"), b"# tiny").unwrap();

    let models = tmp.path().join("models");
    let hf_home = tmp.path().join("hf");
    let addr = hub(repo, "atelier-test/tiny-llm");
    let (ok, out) = pull(
        addr,
        &hf_home,
        &["atelier-test/tiny-llm", "--dir", models.to_str().unwrap()],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("language model") && out.contains("--llm"),
        "{out}"
    );
    let dst = models.join("tiny-llm");
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "model.safetensors",
    ] {
        assert_eq!(
            std::fs::read(dst.join(f)).unwrap(),
            std::fs::read(tiny.folder.join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(!dst.join("pytorch_model.bin").exists() && !dst.join("onnx").exists());
    let m = atelier_llm::LocalModel::load(&dst, &atelier_llm::Device::Cpu).unwrap();
    assert_eq!(m.id(), "tiny-llm");

    let addr = hub(gguf_repo, "atelier-test/tiny-gguf");
    let (ok, out) = pull(
        addr,
        &hf_home,
        &["atelier-test/tiny-gguf", "--dir", models.to_str().unwrap()],
    );
    assert!(
        !ok && out.contains("--file") && out.contains("tiny-q4_0.gguf"),
        "{out}"
    );
    let (ok, out) = pull(
        addr,
        &hf_home,
        &[
            "atelier-test/tiny-gguf",
            "--dir",
            models.to_str().unwrap(),
            "--file",
            "tiny-q8_0.gguf",
        ],
    );
    assert!(ok, "{out}");
    let file = models.join("tiny-gguf/tiny-q8_0.gguf");
    assert!(out.contains("--llm") && file.is_file(), "{out}");
    assert!(!models.join("tiny-gguf/tiny-q4_0.gguf").exists());
    assert!(atelier_llm::LocalModel::load(&file, &atelier_llm::Device::Cpu).is_ok());
    let (ok, out) = pull(
        addr,
        &hf_home,
        &[
            "atelier-test/tiny-gguf",
            "--dir",
            models.to_str().unwrap(),
            "--file",
            "../etc/passwd",
        ],
    );
    assert!(!ok && out.contains("has no file"), "{out}");
}

#[test]
fn pull_downloads_a_diffusers_repo_through_hf_endpoint() {
    let addr = hub(fixture(), REPO);
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let hf_home = tmp.path().join("hf");
    let o = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["models", "pull", REPO, "--dir", models.to_str().unwrap()])
        .env("HF_ENDPOINT", format!("http://{addr}"))
        .env("HF_HOME", &hf_home)
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{out}");
    assert!(out.contains("pulled atelier-test/sd15-tiny@main"), "{out}");
    let dst = models.join("sd15-tiny");
    for f in [
        "model_index.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "scheduler/scheduler_config.json",
    ] {
        let a = std::fs::read(dst.join(f)).unwrap_or_else(|e| panic!("{f}: {e}\n{out}"));
        assert_eq!(a, std::fs::read(fixture().join(f)).unwrap(), "{f} differs");
    }
    // The reference traces are not part of a pipeline and are not fetched.
    assert!(!dst.join("reference").exists());
    // The hub cache honours HF_HOME.
    assert!(
        hf_home.join("hub/models--atelier-test--sd15-tiny").is_dir(),
        "cache not under HF_HOME"
    );
    // And the pulled model is usable.
    let o = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["models", "list", "--dir", models.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("Stable Diffusion 1.x"));
}
