//! Where backups go: a local directory or an S3-compatible bucket, both
//! behind `object_store` so that every other module sees one interface.

use crate::{BackupError, BackupResult};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use std::sync::Arc;

/// A backup target: an object store and the prefix inside it.
#[derive(Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// As the operator wrote it (for messages).
    pub display: String,
}

/// One object under the target: its key relative to the prefix and size.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub size: u64,
}

impl Target {
    /// Parses `s3://bucket/prefix` (credentials, region and endpoint from
    /// the usual `AWS_*` variables, `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP`
    /// included) or a directory path (created if missing).
    pub fn parse(spec: &str) -> BackupResult<Target> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(BackupError::Refused("--target: empty backup target".into()));
        }
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(BackupError::Refused(format!(
                    "--target {spec}: the S3 URL names no bucket (s3://bucket/prefix)"
                )));
            }
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| BackupError::Refused(format!("--target {spec}: {e}")))?;
            return Ok(Target {
                store: Arc::new(store),
                prefix: prefix.trim_matches('/').to_string(),
                display: spec.to_string(),
            });
        }
        if spec.contains("://") {
            return Err(BackupError::Refused(format!(
                "--target {spec}: only a directory path or an s3://bucket/prefix URL is supported"
            )));
        }
        std::fs::create_dir_all(spec)
            .map_err(|e| BackupError::io(format!("--target {spec}"), e))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(spec)
            .map_err(|e| BackupError::Refused(format!("--target {spec}: {e}")))?;
        Ok(Target {
            store: Arc::new(store),
            prefix: String::new(),
            display: spec.to_string(),
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn key_of(&self, p: &ObjectPath) -> String {
        let s = p.as_ref();
        if self.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&self.prefix)
                .map(|r| r.trim_start_matches('/').to_string())
                .unwrap_or_else(|| s.to_string())
        }
    }

    pub async fn put(&self, key: &str, data: Bytes) -> BackupResult<()> {
        self.store
            .put(&self.path(key), PutPayload::from_bytes(data))
            .await?;
        Ok(())
    }

    /// Uploads a local file (snapshots can be large: multipart, in parts).
    pub async fn put_file(&self, key: &str, file: &std::path::Path) -> BackupResult<()> {
        use tokio::io::AsyncReadExt;
        const PART: usize = 8 * 1024 * 1024;
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| BackupError::io(file.display(), e))?;
        let len = f
            .metadata()
            .await
            .map_err(|e| BackupError::io(file.display(), e))?
            .len();
        if len <= PART as u64 {
            let mut buf = Vec::with_capacity(len as usize);
            f.read_to_end(&mut buf)
                .await
                .map_err(|e| BackupError::io(file.display(), e))?;
            return self.put(key, Bytes::from(buf)).await;
        }
        let mut upload = self.store.put_multipart(&self.path(key)).await?;
        loop {
            let mut buf = vec![0u8; PART];
            let mut filled = 0;
            while filled < PART {
                let n = f
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|e| BackupError::io(file.display(), e))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            buf.truncate(filled);
            if let Err(e) = upload.put_part(PutPayload::from(buf)).await {
                let _ = upload.abort().await;
                return Err(e.into());
            }
            if filled < PART {
                break;
            }
        }
        upload.complete().await?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> BackupResult<Bytes> {
        Ok(self.store.get(&self.path(key)).await?.bytes().await?)
    }

    /// Downloads an object into a local file.
    pub async fn get_to_file(&self, key: &str, file: &std::path::Path) -> BackupResult<u64> {
        use tokio::io::AsyncWriteExt;
        let mut stream = self.store.get(&self.path(key)).await?.into_stream();
        let mut out = tokio::fs::File::create(file)
            .await
            .map_err(|e| BackupError::io(file.display(), e))?;
        let mut n = 0u64;
        while let Some(chunk) = stream.try_next().await? {
            n += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|e| BackupError::io(file.display(), e))?;
        }
        out.sync_all()
            .await
            .map_err(|e| BackupError::io(file.display(), e))?;
        Ok(n)
    }

    /// Every object whose key starts with `prefix`, sorted by key.
    pub async fn list(&self, prefix: &str) -> BackupResult<Vec<Entry>> {
        let p = self.path(prefix.trim_end_matches('/'));
        let mut out: Vec<Entry> = self
            .store
            .list(Some(&p))
            .map_ok(|m| Entry {
                key: self.key_of(&m.location),
                size: m.size,
            })
            .try_collect()
            .await?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub async fn delete(&self, key: &str) -> BackupResult<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
