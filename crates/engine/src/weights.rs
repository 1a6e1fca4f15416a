//! Locating and memory-mapping a component's safetensors weights.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
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

/// A builder that reads tensors from the files on demand, cast to `dtype` on `device`, with
/// the number of elements the files declare (so a loaded model can report how much memory
/// its weights take: elements x the dtype's size).
///
/// Why not candle's mmap builder: every page of a mapped file that is read counts towards the
/// process's resident memory until the map is dropped, so loading a model that way peaks at
/// about twice its size (the map plus the tensors copied out of it). Positioned reads put each
/// tensor's bytes straight into the buffer that becomes the tensor, so loading peaks at the
/// weights plus the layer being packed; the OS page cache still makes a reload fast.
pub fn var_builder(
    files: &[PathBuf],
    dtype: DType,
    device: &Device,
) -> Result<(VarBuilder<'static>, u64)> {
    let mut elements = 0u64;
    let mut index = std::collections::HashMap::new();
    for (i, f) in files.iter().enumerate() {
        let header = check_header(f)?;
        elements += header.elements;
        for (name, entry) in header.tensors {
            index.entry(name).or_insert((i, entry));
        }
    }
    let opened = files
        .iter()
        .map(|p| {
            std::fs::File::open(p).map_err(|e| EngineError::Io {
                path: p.clone(),
                source: e,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let backend = FileBackend {
        files: files.iter().cloned().zip(opened).collect(),
        index,
    };
    Ok((
        VarBuilder::from_backend(Box::new(backend), dtype, device.clone()),
        elements,
    ))
}

/// Where one tensor lies in its file.
#[derive(Debug, Clone)]
struct TensorEntry {
    dtype: DType,
    shape: Vec<usize>,
    /// Absolute byte offset of the data in the file (its length follows from shape and dtype,
    /// checked when the header is read).
    start: u64,
}

/// What a header declares.
struct Header {
    elements: u64,
    tensors: Vec<(String, TensorEntry)>,
}

/// candle's [`candle_nn::var_builder::SimpleBackend`] over safetensors files read with
/// positioned reads (see [`var_builder`]).
struct FileBackend {
    files: Vec<(PathBuf, std::fs::File)>,
    index: std::collections::HashMap<String, (usize, TensorEntry)>,
}

impl FileBackend {
    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        use std::os::unix::fs::FileExt;
        let (fi, e) = self
            .index
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            })?;
        let (path, file) = &self.files[*fi];
        let read = |buf: &mut [u8]| {
            file.read_exact_at(buf, e.start).map_err(|err| {
                candle_core::Error::Msg(format!("reading {name} from {}: {err}", path.display()))
            })
        };
        let shape = candle_core::Shape::from(e.shape.clone());
        let n = shape.elem_count();
        // Read straight into the element buffer that becomes the tensor: no second copy.
        fn filled<T: bytemuck::Pod + Default>(
            n: usize,
            read: impl Fn(&mut [u8]) -> candle_core::Result<()>,
        ) -> candle_core::Result<Vec<T>> {
            let mut v = vec![T::default(); n];
            read(bytemuck::cast_slice_mut(&mut v))?;
            Ok(v)
        }
        let t = match e.dtype {
            DType::F32 => Tensor::from_vec(filled::<f32>(n, read)?, shape, dev)?,
            DType::F16 => Tensor::from_vec(filled::<half::f16>(n, read)?, shape, dev)?,
            DType::BF16 => Tensor::from_vec(filled::<half::bf16>(n, read)?, shape, dev)?,
            DType::F64 => Tensor::from_vec(filled::<f64>(n, read)?, shape, dev)?,
            DType::I64 => Tensor::from_vec(filled::<i64>(n, read)?, shape, dev)?,
            DType::U32 => Tensor::from_vec(filled::<u32>(n, read)?, shape, dev)?,
            DType::U8 => Tensor::from_vec(filled::<u8>(n, read)?, shape, dev)?,
            other => candle_core::bail!("{name}: unsupported tensor dtype {other:?}"),
        };
        Ok(t)
    }
}

impl candle_nn::var_builder::SimpleBackend for FileBackend {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let declared = self.index.get(name).map(|(_, e)| e.shape.clone());
        if let Some(shape) = declared {
            // Refuse a wrong shape before reading (and allocating) the tensor.
            if shape.as_slice() != s.dims() {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: s,
                    got: shape.into(),
                });
            }
        }
        self.load(name, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

/// Reads only the JSON header, so a truncated or non-safetensors file is reported by name
/// before anything is read; returns what it declares.
fn check_header(path: &Path) -> Result<Header> {
    let mut f = std::fs::File::open(path).map_err(|e| EngineError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    read_header(&mut f, size, path)
}

/// What a safetensors header declares, checked against the file's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSummary {
    /// Tensors in the file.
    pub tensors: usize,
    /// Elements over all tensors.
    pub elements: u64,
}

/// Checks the safetensors header at the start of `r` (a file of `size` bytes, named `path` in
/// errors) without reading tensor data: lets tools vet a download, and the fuzzer reach the
/// same code the loader runs.
pub fn check_safetensors(
    r: &mut impl std::io::Read,
    size: u64,
    path: &Path,
) -> Result<HeaderSummary> {
    let h = read_header(r, size, path)?;
    Ok(HeaderSummary {
        tensors: h.tensors.len(),
        elements: h.elements,
    })
}

fn read_header(f: &mut impl std::io::Read, size: u64, path: &Path) -> Result<Header> {
    let bad = |m: String| EngineError::Weights {
        path: path.to_path_buf(),
        message: m,
    };
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
    let obj = v
        .as_object()
        .ok_or_else(|| bad("header is not a JSON object".into()))?;
    let mut end = 0u64;
    let mut elements = 0u64;
    let mut tensors = Vec::with_capacity(obj.len());
    for (name, t) in obj {
        if name == "__metadata__" {
            continue;
        }
        let dtype = match t.get("dtype").and_then(|d| d.as_str()) {
            Some("F32") => DType::F32,
            Some("F16") => DType::F16,
            Some("BF16") => DType::BF16,
            Some("F64") => DType::F64,
            Some("I64") => DType::I64,
            Some("U32") => DType::U32,
            Some("U8") => DType::U8,
            Some(other) => return Err(bad(format!("{name}: unsupported dtype {other}"))),
            None => return Err(bad(format!("{name}: no dtype"))),
        };
        let shape: Vec<usize> = t
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad(format!("{name}: no shape")))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(format!("{name}: shape is not a list of sizes")))?;
        let offsets: Vec<u64> = t
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .map(|o| o.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default();
        let [a, b] = offsets[..] else {
            return Err(bad(format!("{name}: data_offsets must be two numbers")));
        };
        let count = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        let want = count.and_then(|c| c.checked_mul(dtype.size_in_bytes() as u64));
        if b < a || want != Some(b - a) {
            return Err(bad(format!(
                "{name}: data_offsets [{a}, {b}] do not hold a {shape:?} {dtype:?} tensor"
            )));
        }
        elements = elements.saturating_add(count.unwrap_or(0));
        end = end.max(b);
        tensors.push((
            name.clone(),
            TensorEntry {
                dtype,
                shape,
                start: (8 + n).saturating_add(a),
            },
        ));
    }
    // Offsets come from the file: add without overflowing (a declared end near u64::MAX).
    let need = (8 + n).checked_add(end);
    if need.is_none_or(|need| need > size) {
        return Err(bad(format!(
            "file is truncated: tensors need {} bytes, file has {size}",
            need.map_or_else(|| "more than 2^64".to_owned(), |n| n.to_string())
        )));
    }
    Ok(Header { elements, tensors })
}
