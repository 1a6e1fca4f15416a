//! Machine-readable provenance inside the file: PNG text chunks (`parameters` as A1111
//! writes it, `atelier` JSON) and XMP (PNG iTXt `XML:com.adobe.xmp`, JPEG APP1) carrying the
//! IPTC digital source type `trainedAlgorithmicMedia`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ProvenanceError;

/// IPTC NewsCodes digital source type for content made by a trained model.
pub const TRAINED_ALGORITHMIC_MEDIA: &str =
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

const XMP_KEYWORD: &str = "XML:com.adobe.xmp";
const XMP_JPEG_HEADER: &[u8] = b"http://ns.adobe.com/xap/1.0/\0";

/// Everything recorded about how an image was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Always [`TRAINED_ALGORITHMIC_MEDIA`] for our outputs.
    pub digital_source_type: String,
    /// `atelier <version>`.
    pub generator: String,
    /// RFC 3339 UTC time of generation (left out where byte-identical reruns matter).
    pub created: Option<String>,
    pub job_id: Option<String>,
    /// Model id as installed.
    pub model: String,
    /// `sha256:<hex>` over the model's weight files (see [`crate::weights_digest`]).
    pub weights_sha256: Option<String>,
    pub seed: u64,
    /// The resolved generation settings.
    pub parameters: Value,
    /// Watermark payload embedded in the pixels (`service-jobhash` hex), if any.
    pub watermark: Option<String>,
    /// Visible label drawn on the image, if any.
    pub label: Option<String>,
    /// Screening results (prompt decision, image screening status and flags).
    pub screening: Option<Value>,
}

impl Provenance {
    /// A record for one output image.
    pub fn new(model: &str, seed: u64, parameters: Value) -> Self {
        Self {
            digital_source_type: TRAINED_ALGORITHMIC_MEDIA.into(),
            generator: concat!("atelier ", env!("CARGO_PKG_VERSION")).into(),
            created: Some(rfc3339_now()),
            job_id: None,
            model: model.into(),
            weights_sha256: None,
            seed,
            parameters,
            watermark: None,
            label: None,
            screening: None,
        }
    }

    /// The XMP packet: IPTC source type, creator tool, date and our fields.
    pub fn xmp(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let prompt = self
            .parameters
            .get("prompt")
            .and_then(Value::as_str)
            .unwrap_or("");
        let opt = |k: &str, v: &Option<String>| {
            v.as_ref()
                .map(|v| format!("\n   atelier:{k}=\"{}\"", esc(v)))
                .unwrap_or_default()
        };
        format!(
            r#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
   xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
   xmlns:xmp="http://ns.adobe.com/xap/1.0/"
   xmlns:dc="http://purl.org/dc/elements/1.1/"
   xmlns:atelier="https://github.com/atelier/ns/1.0/"
   Iptc4xmpExt:DigitalSourceType="{dst}"
   xmp:CreatorTool="{gen}"{created}
   atelier:Model="{model}"
   atelier:Seed="{seed}"{job}{hash}{wm}{label}>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{prompt}</rdf:li></rdf:Alt></dc:description>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="r"?>"#,
            dst = esc(&self.digital_source_type),
            gen = esc(&self.generator),
            created = self
                .created
                .as_ref()
                .map(|c| format!("\n   xmp:CreateDate=\"{}\"", esc(c)))
                .unwrap_or_default(),
            model = esc(&self.model),
            seed = self.seed,
            job = opt("JobId", &self.job_id),
            hash = opt("WeightsSha256", &self.weights_sha256),
            wm = opt("Watermark", &self.watermark),
            label = opt("Label", &self.label),
            prompt = esc(prompt),
        )
    }
}

/// RFC 3339 UTC timestamp with millisecond precision, from the system clock.
pub fn rfc3339_now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    rfc3339(ms)
}

/// Formats milliseconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// An 8-bit RGB PNG with provenance: `parameters` (A1111 format), `atelier` (JSON of
/// [`Provenance`]) and XMP.
pub fn encode_png(
    width: usize,
    height: usize,
    rgb: &[u8],
    parameters_text: &str,
    prov: &Provenance,
) -> Result<Vec<u8>, ProvenanceError> {
    let enc_err = |e: png::EncodingError| ProvenanceError::Encode(e.to_string());
    let json = serde_json::to_string(prov).map_err(|e| ProvenanceError::Encode(e.to_string()))?;
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        // tEXt is Latin-1 only; Korean prompts go to iTXt (readers such as A1111 check both).
        if parameters_text.chars().all(|c| (c as u32) < 256) {
            enc.add_text_chunk("parameters".into(), parameters_text.into())
                .map_err(enc_err)?;
        } else {
            enc.add_itxt_chunk("parameters".into(), parameters_text.into())
                .map_err(enc_err)?;
        }
        enc.add_itxt_chunk("atelier".into(), json)
            .map_err(enc_err)?;
        enc.add_itxt_chunk(XMP_KEYWORD.into(), prov.xmp())
            .map_err(enc_err)?;
        let mut w = enc.write_header().map_err(enc_err)?;
        w.write_image_data(rgb).map_err(enc_err)?;
    }
    Ok(out)
}

/// Inserts an XMP APP1 segment right after a JPEG's SOI marker.
pub fn jpeg_with_xmp(jpeg: &[u8], xmp: &str) -> Result<Vec<u8>, ProvenanceError> {
    if jpeg.len() < 2 || jpeg[0] != 0xFF || jpeg[1] != 0xD8 {
        return Err(ProvenanceError::Encode("not a JPEG (no SOI marker)".into()));
    }
    let len = XMP_JPEG_HEADER.len() + xmp.len() + 2;
    if len > 0xFFFF {
        return Err(ProvenanceError::Encode(
            "XMP packet too large for APP1".into(),
        ));
    }
    let mut out = Vec::with_capacity(jpeg.len() + len + 2);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xE1, (len >> 8) as u8, len as u8]);
    out.extend_from_slice(XMP_JPEG_HEADER);
    out.extend_from_slice(xmp.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    Ok(out)
}

/// Text metadata found in a file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FoundMetadata {
    /// PNG text chunks (keyword, text), XMP excluded.
    pub text: Vec<(String, String)>,
    pub xmp: Option<String>,
    /// The `atelier` chunk, parsed.
    pub provenance: Option<Provenance>,
}

/// Reads PNG text chunks or JPEG XMP. Unknown formats yield empty metadata.
pub fn read(bytes: &[u8]) -> Result<FoundMetadata, ProvenanceError> {
    let mut found = FoundMetadata::default();
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
        dec.set_ignore_text_chunk(false);
        let reader = dec
            .read_info()
            .map_err(|e| ProvenanceError::Decode(e.to_string()))?;
        let info = reader.info();
        for t in &info.uncompressed_latin1_text {
            found.text.push((t.keyword.clone(), t.text.clone()));
        }
        for t in &info.compressed_latin1_text {
            if let Ok(s) = t.get_text() {
                found.text.push((t.keyword.clone(), s));
            }
        }
        for t in &info.utf8_text {
            if let Ok(s) = t.get_text() {
                if t.keyword == XMP_KEYWORD {
                    found.xmp = Some(s);
                } else {
                    found.text.push((t.keyword.clone(), s));
                }
            }
        }
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 4 <= bytes.len() && bytes[i] == 0xFF {
            let marker = bytes[i + 1];
            if marker == 0xDA || marker == 0xD9 {
                break;
            }
            let len = ((bytes[i + 2] as usize) << 8) | bytes[i + 3] as usize;
            let end = (i + 2 + len).min(bytes.len());
            let body = &bytes[(i + 4).min(end)..end];
            if marker == 0xE1 && body.starts_with(XMP_JPEG_HEADER) {
                found.xmp =
                    Some(String::from_utf8_lossy(&body[XMP_JPEG_HEADER.len()..]).into_owned());
            }
            i = end;
        }
    }
    found.provenance = found
        .text
        .iter()
        .find(|(k, _)| k == "atelier")
        .and_then(|(_, v)| serde_json::from_str(v).ok());
    Ok(found)
}

/// The IPTC digital source type in an XMP packet, if declared.
pub fn xmp_source_type(xmp: &str) -> Option<String> {
    let key = "Iptc4xmpExt:DigitalSourceType";
    let at = xmp.find(key)? + key.len();
    let rest = xmp[at..].trim_start();
    let rest = rest.strip_prefix('=')?.trim_start();
    let q = rest.chars().next()?;
    let body = &rest[1..];
    body.find(q).map(|e| body[..e].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_251_661_123), "2026-11-21T09:01:01.123Z");
    }

    #[test]
    fn png_round_trips_provenance_with_korean_prompt() {
        let mut p = Provenance::new(
            "sd15-tiny",
            7,
            serde_json::json!({"prompt": "영화 티켓 <AI>"}),
        );
        p.job_id = Some("job1".into());
        let png = encode_png(2, 1, &[0; 6], "영화 티켓\nSteps: 1", &p).expect("encodes");
        let f = read(&png).expect("reads");
        assert_eq!(f.provenance.as_ref(), Some(&p));
        let xmp = f.xmp.expect("xmp");
        assert_eq!(
            xmp_source_type(&xmp).as_deref(),
            Some(TRAINED_ALGORITHMIC_MEDIA)
        );
        assert!(xmp.contains("영화 티켓 &lt;AI&gt;"));
        assert!(f
            .text
            .iter()
            .any(|(k, v)| k == "parameters" && v.starts_with("영화")));
    }

    #[test]
    fn jpeg_xmp_is_found() {
        let j = jpeg_with_xmp(
            &[0xFF, 0xD8, 0xFF, 0xD9],
            "<x Iptc4xmpExt:DigitalSourceType='t'/>",
        )
        .expect("inserts");
        let f = read(&j).expect("reads");
        assert_eq!(
            f.xmp.as_deref().and_then(xmp_source_type).as_deref(),
            Some("t")
        );
    }
}
