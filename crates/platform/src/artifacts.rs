//! Artifact bytes, in a local folder (the embedded default) or an S3-compatible bucket, behind
//! one interface so API nodes and workers on different machines share them.
//!
//! Keys are server-generated, so no client string ever becomes a path. A job's files live
//! under `jobs/<job id>/<attempt>/`: when a worker dies mid-job, the next attempt deletes what
//! the dead one left, so a finished job has exactly one set of outputs and nothing is orphaned.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};

use crate::error::{PlatformError, Result};
use crate::store::FileRecord;

/// Where artifact bytes live; cheap to clone.
#[derive(Debug, Clone)]
pub struct Artifacts {
    objects: Arc<dyn ObjectStore>,
    /// `file:///…` or `s3://bucket/prefix`, for logs and `/v1/system`.
    location: String,
}

/// A job's share of the store: its files go under this job and attempt.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub job_id: &'a str,
    pub attempt: i64,
}

impl Artifacts {
    /// A local folder (created if missing).
    pub fn local(root: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&root).map_err(|e| PlatformError::Storage {
            path: root.display().to_string(),
            source: e,
        })?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| objects(&root, e))?;
        Ok(Self {
            objects: Arc::new(fs),
            location: format!("file://{}", root.display()),
        })
    }

    /// Opens `--store`: `s3://bucket[/prefix]` (credentials, region and endpoint from the usual
    /// `AWS_*` environment variables), `file:///path`, or a plain folder path.
    pub fn open(spec: &str) -> Result<Self> {
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(PlatformError::invalid("store", "s3:// needs a bucket name"));
            }
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
            // A plain-http endpoint (MinIO, moto, s3s on a private network) is what the user
            // asked for by writing it; object_store refuses it unless told.
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .unwrap_or_default();
            if endpoint.starts_with("http://") {
                b = b.with_allow_http(true);
            }
            let s3 = b
                .build()
                .map_err(|e| PlatformError::invalid("store", e.to_string()))?;
            let prefix = prefix.trim_matches('/');
            let objects: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            };
            return Ok(Self {
                objects,
                location: format!("s3://{bucket}/{prefix}"),
            });
        }
        let path = spec.strip_prefix("file://").unwrap_or(spec);
        if path.is_empty() || spec.contains("://") && !spec.starts_with("file://") {
            return Err(PlatformError::invalid(
                "store",
                format!("{spec:?} is not s3://bucket/prefix, file:///path or a folder"),
            ));
        }
        Self::local(PathBuf::from(path))
    }

    /// Where the bytes go, for logs.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Writes bytes (atomically: readers see all or nothing) and returns the file record to
    /// store. `owner` places a job's files under its current attempt.
    pub async fn put(
        &self,
        tenant_id: &str,
        owner: Option<Owner<'_>>,
        content_type: &str,
        ext: &str,
        bytes: Vec<u8>,
        now: i64,
    ) -> Result<FileRecord> {
        let id = crate::new_id();
        let key = match owner {
            Some(o) => format!("jobs/{}/{}/{id}.{ext}", o.job_id, o.attempt),
            None => format!("files/{}/{id}.{ext}", &id[..2.min(id.len())]),
        };
        let path = object_path(&key)?;
        let sha = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as i64;
        self.objects
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| objects(&key, e))?;
        Ok(FileRecord {
            id,
            tenant_id: tenant_id.to_owned(),
            job_id: owner.map(|o| o.job_id.to_owned()),
            content_type: content_type.to_owned(),
            size,
            sha256: sha,
            storage_key: key,
            created_at: now,
        })
    }

    /// Reads a stored artifact.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = object_path(key)?;
        let got = self.objects.get(&path).await.map_err(|e| objects(key, e))?;
        let bytes = got.bytes().await.map_err(|e| objects(key, e))?;
        Ok(bytes.to_vec())
    }

    /// Deletes one artifact; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = object_path(key)?;
        match self.objects.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(objects(key, e)),
        }
    }

    /// Every key under `prefix` (`""` for all), for audits and garbage collection.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let p = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.trim_end_matches('/')));
        let metas: Vec<_> = self
            .objects
            .list(p.as_ref())
            .try_collect()
            .await
            .map_err(|e| objects(prefix, e))?;
        Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
    }
}

/// Which attempt of `job_id` wrote `key` (`None` for keys of other jobs and for bare keys).
pub fn attempt_of(key: &str, job_id: &str) -> Option<i64> {
    let rest = key
        .strip_prefix("jobs/")?
        .strip_prefix(job_id)?
        .strip_prefix('/')?;
    rest.split_once('/')?.0.parse().ok()
}

/// Maps a storage key to an object path. Keys written before jobs had their own folders are
/// bare `<id>.<ext>` names sharded by their first two characters; those still resolve.
fn object_path(key: &str) -> Result<ObjectPath> {
    let ok_segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    };
    if !key.split('/').all(ok_segment) {
        return Err(PlatformError::Corrupt(format!("storage key {key:?}")));
    }
    let full = if key.contains('/') {
        key.to_owned()
    } else {
        format!("{}/{key}", &key[..2.min(key.len())])
    };
    ObjectPath::parse(&full)
        .map_err(|e| PlatformError::Corrupt(format!("storage key {key:?}: {e}")))
}

fn objects(key: impl AsRef<Path>, e: object_store::Error) -> PlatformError {
    PlatformError::Objects {
        key: key.as_ref().display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_escape_the_store() {
        for bad in [
            "",
            "../x",
            "a/../b",
            "a//b",
            "/abs",
            "a b",
            "x/.",
            "jobs/%2e%2e/x",
        ] {
            assert!(object_path(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(object_path("abcd.png").unwrap().as_ref(), "ab/abcd.png");
        assert_eq!(
            object_path("jobs/j1/2/f.png").unwrap().as_ref(),
            "jobs/j1/2/f.png"
        );
    }

    #[tokio::test]
    async fn local_round_trip_and_attempt_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let a = Artifacts::open(dir.path().to_str().unwrap()).unwrap();
        let first = Owner {
            job_id: "j1",
            attempt: 1,
        };
        let second = Owner {
            job_id: "j1",
            attempt: 2,
        };
        let old = a
            .put("t", Some(first), "image/png", "png", b"one".to_vec(), 0)
            .await
            .unwrap();
        let new = a
            .put("t", Some(second), "image/png", "png", b"two".to_vec(), 0)
            .await
            .unwrap();
        let loose = a
            .put("t", None, "image/png", "png", b"three".to_vec(), 0)
            .await
            .unwrap();
        assert_eq!(a.get(&new.storage_key).await.unwrap(), b"two");
        assert_eq!(a.get(&loose.storage_key).await.unwrap(), b"three");
        assert_eq!(attempt_of(&old.storage_key, "j1"), Some(1));
        assert_eq!(attempt_of(&new.storage_key, "j1"), Some(2));
        assert_eq!(attempt_of(&new.storage_key, "j"), None);
        assert_eq!(attempt_of(&loose.storage_key, "j1"), None);
        let mut listed = a.list("jobs/j1").await.unwrap();
        listed.sort();
        let mut want = vec![old.storage_key.clone(), new.storage_key.clone()];
        want.sort();
        assert_eq!(listed, want);
        a.delete(&old.storage_key).await.unwrap();
        assert!(a.get(&old.storage_key).await.is_err());
        a.delete(&new.storage_key).await.unwrap();
        a.delete(&new.storage_key).await.unwrap();
        assert_eq!(a.list("").await.unwrap(), vec![loose.storage_key]);
        // A folder written before keys had folders still reads.
        std::fs::create_dir_all(dir.path().join("ab")).unwrap();
        std::fs::write(dir.path().join("ab/abcd.png"), b"legacy").unwrap();
        assert_eq!(a.get("abcd.png").await.unwrap(), b"legacy");
        assert!(Artifacts::open("gs://bucket").is_err());
        assert!(Artifacts::open("s3://").is_err());
    }
}
