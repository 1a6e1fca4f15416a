//! Provenance for every output: what made it (metadata), a mark people can see (label) and a
//! mark that survives re-encoding, resizing and cropping (watermark); and the reverse,
//! [`inspect`], for files that come back to us.

#[cfg(feature = "c2pa")]
pub mod c2pa;
pub mod label;
pub mod metadata;
pub mod watermark;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use label::{Corner, LabelSpec};
pub use metadata::{Provenance, TRAINED_ALGORITHMIC_MEDIA};
pub use watermark::{Detection, Payload};

/// Errors of the provenance layer.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("encoding: {0}")]
    Encode(String),
    #[error("decoding: {0}")]
    Decode(String),
    /// A label setting is invalid; `field` names it.
    #[error("label.{field}: {message}")]
    Label { field: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// `sha256:<hex>` identifying a model's weights: SHA-256 over the sorted list of
/// `relative path, size, SHA-256 of contents` of every `.safetensors` file under `root`.
/// Reads every byte (seconds for a multi-GB model), so callers cache it per model.
pub fn weights_digest(root: &Path) -> Result<String, ProvenanceError> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| ProvenanceError::Io {
            path: d.display().to_string(),
            source: e,
        })?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "safetensors") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut all = Sha256::new();
    for f in files {
        let mut h = Sha256::new();
        let mut file = std::fs::File::open(&f).map_err(|e| ProvenanceError::Io {
            path: f.display().to_string(),
            source: e,
        })?;
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(|e| ProvenanceError::Io {
                path: f.display().to_string(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            size += n as u64;
            h.update(&buf[..n]);
        }
        let rel = f
            .strip_prefix(root)
            .unwrap_or(&f)
            .to_string_lossy()
            .replace('\\', "/");
        all.update(format!("{rel}\0{size}\0{}\n", hex::encode(h.finalize())).as_bytes());
    }
    Ok(format!("sha256:{}", hex::encode(all.finalize())))
}

#[cfg(feature = "c2pa")]
fn c2pa_summary(bytes: &[u8], format: &str) -> Option<serde_json::Value> {
    let mime = match format {
        "png" => "image/png",
        "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        _ => return None,
    };
    c2pa::read(bytes, mime).and_then(|s| serde_json::to_value(s).ok())
}

#[cfg(not(feature = "c2pa"))]
fn c2pa_summary(_: &[u8], _: &str) -> Option<serde_json::Value> {
    None
}

/// Everything known about a file's provenance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub width: u32,
    pub height: u32,
    /// The `atelier` record, when the file still carries its metadata.
    pub provenance: Option<Provenance>,
    /// IPTC digital source type from XMP.
    pub digital_source_type: Option<String>,
    /// Other text chunks (`parameters`…).
    pub text: Vec<(String, String)>,
    pub xmp: Option<String>,
    /// The C2PA manifest, when the file has one (and this build reads C2PA).
    pub c2pa: Option<serde_json::Value>,
    /// The invisible watermark, when detected.
    pub watermark: Option<Detection>,
}

/// Reads metadata and looks for the watermark in an image file's bytes.
pub fn inspect(bytes: &[u8]) -> Result<Report, ProvenanceError> {
    let meta = metadata::read(bytes)?;
    let img = image::load_from_memory(bytes).map_err(|e| ProvenanceError::Decode(e.to_string()))?;
    let format = image::guess_format(bytes)
        .map(|f| format!("{f:?}").to_lowercase())
        .unwrap_or_else(|_| "unknown".into());
    let format_name = format.clone();
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    let watermark = watermark::detect(rgb.as_raw(), w as usize, h as usize);
    Ok(Report {
        format,
        width: w,
        height: h,
        digital_source_type: meta.xmp.as_deref().and_then(metadata::xmp_source_type),
        provenance: meta.provenance,
        text: meta
            .text
            .into_iter()
            .filter(|(k, _)| k != "atelier")
            .collect(),
        xmp: meta.xmp,
        c2pa: c2pa_summary(bytes, &format_name),
        watermark,
    })
}
