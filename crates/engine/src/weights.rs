//! Locating and memory-mapping a component's safetensors weights.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::error::{EngineError, Result};

/// The safetensors files of one component folder: a sharded index, a single file, or an fp16
/// variant (diffusers' `variant="fp16"`), in that order of preference.
pub fn find_weights(dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(EngineError::MissingFile {
            path: dir.to_path_buf(),
            why: "component folder is missing".into(),
        });
    }
    let index = dir.join(format!("{stem}.safetensors.index.json"));
    if index.is_file() {
        let v: serde_json::Value = crate::config::read_json(&index)?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| EngineError::config(&index, "no weight_map object"))?;
        let mut files: Vec<PathBuf> = map
            .values()
            .filter_map(|f| f.as_str())
            .map(|f| dir.join(f))
            .collect();
        files.sort();
        files.dedup();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(EngineError::MissingFile {
                path: missing.clone(),
                why: format!("listed in {}", index.display()),
            });
        }
        return Ok(files);
    }
    for name in [
        format!("{stem}.safetensors"),
        format!("{stem}.fp16.safetensors"),
    ] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(vec![p]);
        }
    }
    let why = if dir.join(format!("{stem}.bin")).is_file() {
        "only a PyTorch .bin checkpoint is present; atelier loads safetensors only (convert it with diffusers' save_pretrained(safe_serialization=True))"
    } else {
        "no safetensors weights found"
    };
    Err(EngineError::MissingFile {
        path: dir.join(format!("{stem}.safetensors")),
        why: why.into(),
    })
}

/// Memory-maps the files and returns a builder that casts to `dtype` on `device` as tensors
/// are read, with the number of elements the files declare (so a loaded model can report how
/// much memory its weights take: elements x the dtype's size).
pub fn var_builder(
    files: &[PathBuf],
    dtype: DType,
    device: &Device,
) -> Result<(VarBuilder<'static>, u64)> {
    let mut elements = 0u64;
    for f in files {
        elements += check_header(f)?;
    }
    // SAFETY: the files are memory-mapped read-only; atelier never writes model files while
    // they are loaded. A concurrent external writer could corrupt tensors but not memory safety
    // of safe code beyond what mmap itself implies, which is the documented contract of candle.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(files, dtype, device) }.map_err(|e| {
        EngineError::Weights {
            path: files.first().cloned().unwrap_or_default(),
            message: e.to_string(),
        }
    })?;
    Ok((vb, elements))
}

/// Reads only the JSON header, so a truncated or non-safetensors file is reported by name
/// before anything is mapped; returns the elements it declares.
fn check_header(path: &Path) -> Result<u64> {
    use std::io::Read;
    let bad = |m: String| EngineError::Weights {
        path: path.to_path_buf(),
        message: m,
    };
    let mut f = std::fs::File::open(path).map_err(|e| EngineError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| bad("file is shorter than a safetensors header".into()))?;
    let n = u64::from_le_bytes(len);
    if n == 0 || n > 100_000_000 || n + 8 > size {
        return Err(bad(format!(
            "not a safetensors file (header length {n}, file size {size})"
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| bad(format!("truncated header: {e}")))?;
    let v: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let mut end = 0u64;
    let mut elements = 0u64;
    if let Some(obj) = v.as_object() {
        for (name, t) in obj {
            if name == "__metadata__" {
                continue;
            }
            if let Some(shape) = t.get("shape").and_then(|s| s.as_array()) {
                elements = elements.saturating_add(
                    shape
                        .iter()
                        .map(|d| d.as_u64().unwrap_or(0))
                        .fold(1u64, u64::saturating_mul),
                );
            }
            if let Some(off) = t.get("data_offsets").and_then(|o| o.as_array()) {
                if let Some(e) = off.get(1).and_then(|x| x.as_u64()) {
                    end = end.max(e);
                }
            }
        }
    }
    if 8 + n + end > size {
        return Err(bad(format!(
            "file is truncated: tensors need {} bytes, file has {size}",
            8 + n + end
        )));
    }
    Ok(elements)
}
