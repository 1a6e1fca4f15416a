//! C2PA manifests (Content Credentials): a signed claim that the file was created by a
//! trained model (`c2pa.created` with digital source type `trainedAlgorithmicMedia`), plus
//! our generation record as an `org.atelier.generation` assertion.
//!
//! Signing needs a certificate. A deployment passes its own (PEM chain + key); without one
//! an ephemeral self-signed chain is made at start, which validators report as
//! `signingCredential.untrusted`: the manifest is genuine and tamper-evident, but its signer
//! is not vouched for by any trust list. `inspect` says which.

use std::io::Cursor;

use c2pa::{Builder, BuilderIntent, Context, DigitalSourceType, Reader};
use serde::{Deserialize, Serialize};

use crate::{Provenance, ProvenanceError};

/// A manifest signer: the deployment's certificate, or an ephemeral local one.
pub struct Signer {
    inner: c2pa::BoxedSigner,
    /// Human-readable origin of the certificate.
    pub description: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("description", &self.description)
            .finish()
    }
}

fn c2pa_err(e: c2pa::Error) -> ProvenanceError {
    ProvenanceError::Encode(format!("c2pa: {e}"))
}

impl Signer {
    /// A self-signed chain generated now, for deployments without a certificate of their own.
    pub fn ephemeral(name: &str) -> Result<Self, ProvenanceError> {
        Ok(Self {
            inner: Box::new(c2pa::EphemeralSigner::new(name).map_err(c2pa_err)?),
            description: format!("ephemeral self-signed certificate for {name} (untrusted)"),
        })
    }

    /// The deployment's certificate chain (PEM, end entity first) and private key (PEM).
    /// `alg` is `es256`, `es384`, `es512`, `ps256`, `ps384`, `ps512` or `ed25519`.
    pub fn from_pem(cert_chain: &[u8], key: &[u8], alg: &str) -> Result<Self, ProvenanceError> {
        let alg: c2pa::SigningAlg = alg.parse().map_err(|_| {
            ProvenanceError::Encode(format!("c2pa: unknown signing algorithm {alg:?}"))
        })?;
        Ok(Self {
            inner: c2pa::create_signer::from_keys(cert_chain, key, alg, None).map_err(c2pa_err)?,
            description: "deployment certificate".into(),
        })
    }
}

/// Embeds a signed manifest into `bytes` (`image/png`, `image/jpeg` or `image/webp`).
pub fn sign(
    bytes: &[u8],
    mime: &str,
    prov: &Provenance,
    signer: &Signer,
) -> Result<Vec<u8>, ProvenanceError> {
    let def = serde_json::json!({
        "title": format!("{} output", prov.generator),
        "format": mime,
        "claim_generator_info": [{"name": "atelier", "version": env!("CARGO_PKG_VERSION")}],
        "assertions": [{
            "label": "org.atelier.generation",
            "data": {
                "job_id": prov.job_id,
                "model": prov.model,
                "weights_sha256": prov.weights_sha256,
                "seed": prov.seed,
                "parameters": prov.parameters,
                "created": prov.created,
                "watermark": prov.watermark,
                "label": prov.label,
            }
        }]
    });
    let mut b = Builder::from_context(Context::new())
        .with_definition(def.to_string())
        .map_err(c2pa_err)?;
    b.set_intent(BuilderIntent::Create(
        DigitalSourceType::TrainedAlgorithmicMedia,
    ));
    let mut src = Cursor::new(bytes);
    let mut dst = Cursor::new(Vec::with_capacity(bytes.len() + 32 * 1024));
    b.sign(signer.inner.as_ref(), mime, &mut src, &mut dst)
        .map_err(c2pa_err)?;
    Ok(dst.into_inner())
}

/// What a file's C2PA manifest says, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub title: Option<String>,
    pub claim_generator: Option<String>,
    /// Signer's certificate issuer.
    pub issuer: Option<String>,
    /// Digital source types declared by `c2pa.created` actions.
    pub source_types: Vec<String>,
    /// `valid`, `trusted` or `invalid` (the SDK's validation state).
    pub state: String,
    /// Validation status codes (e.g. `signingCredential.untrusted`).
    pub status: Vec<String>,
}

/// Reads a C2PA manifest, if the file has one.
pub fn read(bytes: &[u8], mime: &str) -> Option<Summary> {
    let r = Reader::from_context(Context::new())
        .with_stream(mime, Cursor::new(bytes))
        .ok()?;
    let m = r.active_manifest()?;
    let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap_or_default();
    let label = m.label().unwrap_or_default().to_owned();
    let mut source_types = Vec::new();
    if let Some(assertions) = json["manifests"][&label]["assertions"].as_array() {
        for a in assertions {
            if a["label"]
                .as_str()
                .is_some_and(|l| l.starts_with("c2pa.actions"))
            {
                for act in a["data"]["actions"].as_array().into_iter().flatten() {
                    if let Some(t) = act["digitalSourceType"].as_str() {
                        source_types.push(t.to_owned());
                    }
                }
            }
        }
    }
    Some(Summary {
        title: m.title().map(str::to_owned),
        claim_generator: m.claim_generator().map(str::to_owned),
        issuer: m.issuer(),
        source_types,
        state: format!("{:?}", r.validation_state()).to_lowercase(),
        status: r
            .validation_status()
            .unwrap_or_default()
            .iter()
            .map(|s| s.code().to_owned())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_png_carries_a_manifest_and_stays_a_png() {
        let p = Provenance::new("sd15-tiny", 7, serde_json::json!({"prompt": "티켓"}));
        let png = crate::metadata::encode_png(2, 2, &[9; 12], "티켓", &p).expect("png");
        let signer = Signer::ephemeral("atelier.test").expect("signer");
        let signed = sign(&png, "image/png", &p, &signer).expect("signs");
        let s = read(&signed, "image/png").expect("manifest");
        assert_eq!(
            s.source_types,
            vec![crate::TRAINED_ALGORITHMIC_MEDIA.to_owned()]
        );
        assert!(
            s.status.iter().any(|c| c == "signingCredential.untrusted"),
            "{s:?}"
        );
        // Our own metadata and pixels survive signing.
        let meta = crate::metadata::read(&signed).expect("reads");
        assert_eq!(meta.provenance.as_ref(), Some(&p));
        assert!(read(&png, "image/png").is_none());
    }
}
