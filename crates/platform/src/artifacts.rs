//! Artifact bytes. The embedded store is a folder; ids are server-generated, so no client
//! string ever becomes a path.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::error::{PlatformError, Result};
use crate::store::FileRecord;

/// A local folder of artifacts, sharded by the first two characters of the id.
#[derive(Debug, Clone)]
pub struct LocalArtifacts {
    root: PathBuf,
}

impl LocalArtifacts {
    /// Uses (and creates) `root`.
    pub fn new(root: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&root).map_err(|e| PlatformError::Storage {
            path: root.display().to_string(),
            source: e,
        })?;
        Ok(Self { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(PlatformError::Corrupt(format!("storage key {key:?}")));
        }
        Ok(self.root.join(&key[..2.min(key.len())]).join(key))
    }

    /// Writes bytes (atomically, via a temp file) and returns the file record to store.
    pub async fn put(
        &self,
        tenant_id: &str,
        job_id: Option<&str>,
        content_type: &str,
        ext: &str,
        bytes: Vec<u8>,
        now: i64,
    ) -> Result<FileRecord> {
        let id = crate::new_id();
        let key = format!("{id}.{ext}");
        let path = self.path(&key)?;
        let sha = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as i64;
        let io = |e: std::io::Error| PlatformError::Storage {
            path: path.display().to_string(),
            source: e,
        };
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        tokio::fs::write(&tmp, &bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        Ok(FileRecord {
            id,
            tenant_id: tenant_id.to_owned(),
            job_id: job_id.map(str::to_owned),
            content_type: content_type.to_owned(),
            size,
            sha256: sha,
            storage_key: key,
            created_at: now,
        })
    }

    /// Reads a stored artifact.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        tokio::fs::read(&path)
            .await
            .map_err(|e| PlatformError::Storage {
                path: path.display().to_string(),
                source: e,
            })
    }
}
