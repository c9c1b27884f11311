//! Blobs in a directory of the data directory:
//! `<root>/<tenant>/<sha[0..2]>/<sha>`, uploads first written to
//! `<root>/tmp/<uuid>`, fsynced, renamed into place, and both directories
//! fsynced — an acknowledged upload survives a crash or a power cut.

use crate::{
    body_error, check_key, io_error, is_key_segment, is_sha256, BlobBody, BlobEntry, BlobStore,
    ByteStream, Digest, StoredBlob,
};
use futures::StreamExt;
use mosaic_types::{MosaicError, MosaicResult};
use std::ops::Range;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Read size of a download's chunks.
const READ_CHUNK: usize = 64 * 1024;

/// The embedded blob store.
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// Opens (creating) the directory.
    pub fn open(root: impl Into<PathBuf>) -> MosaicResult<LocalBlobStore> {
        let root = root.into();
        std::fs::create_dir_all(root.join("tmp"))
            .map_err(|e| io_error(&format!("create {}", root.display()), e))?;
        Ok(LocalBlobStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, tenant_id: &str, sha256: &str) -> PathBuf {
        self.root.join(tenant_id).join(&sha256[..2]).join(sha256)
    }
}

/// fsyncs a directory, so that a rename or a new entry in it is durable.
async fn sync_dir(dir: &Path) -> MosaicResult<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(&format!("fsync {}", dir.display()), e))
    })
    .await
    .map_err(|e| io_error("fsync", e))?
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(
        &self,
        tenant_id: &str,
        mut body: ByteStream,
        max_bytes: u64,
    ) -> MosaicResult<StoredBlob> {
        if !is_key_segment(tenant_id) {
            return Err(MosaicError::internal("tenant id unfit for a blob key"));
        }
        let tmp_dir = self.root.join("tmp");
        let tmp = tmp_dir.join(uuid::Uuid::now_v7().to_string());
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io_error("create a temporary file", e))?;
        let mut digest = Digest::new(max_bytes);
        let written: MosaicResult<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(body_error)?;
                digest.update(&chunk)?;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| io_error("write", e))?;
            }
            file.flush().await.map_err(|e| io_error("flush", e))?;
            file.sync_all().await.map_err(|e| io_error("fsync", e))
        }
        .await;
        drop(file);
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let stored = digest.finish();
        let dest = self.path_of(tenant_id, &stored.sha256);
        let parent = dest.parent().expect("blob path has a parent").to_path_buf();
        let created_parent = !tokio::fs::try_exists(&parent).await.unwrap_or(false);
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| io_error("create a blob directory", e))?;
        if created_parent {
            // The new directories' entries in their parents.
            sync_dir(&self.root).await?;
            if let Some(tenant_dir) = parent.parent() {
                sync_dir(tenant_dir).await?;
            }
        }
        // Same bytes already stored: replacing them renews the blob's time,
        // which keeps the orphan collector off it until the metadata commits.
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(|e| io_error("rename into place", e))?;
        sync_dir(&parent).await?;
        sync_dir(&tmp_dir).await?;
        Ok(stored)
    }

    async fn get(
        &self,
        tenant_id: &str,
        sha256: &str,
        range: Option<Range<u64>>,
    ) -> MosaicResult<BlobBody> {
        check_key(tenant_id, sha256)?;
        let path = self.path_of(tenant_id, sha256);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(MosaicError::not_found("file content"))
            }
            Err(e) => return Err(io_error("open", e)),
        };
        let total_size = file
            .metadata()
            .await
            .map_err(|e| io_error("stat", e))?
            .len();
        let range = range.unwrap_or(0..total_size);
        let range = range.start.min(total_size)..range.end.min(total_size);
        file.seek(std::io::SeekFrom::Start(range.start))
            .await
            .map_err(|e| io_error("seek", e))?;
        let reader = file.take(range.end - range.start);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK).boxed();
        Ok(BlobBody {
            total_size,
            range,
            stream,
        })
    }

    async fn list(&self) -> MosaicResult<Vec<BlobEntry>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || list_dir(&root))
            .await
            .map_err(|e| io_error("list", e))?
    }

    async fn delete(&self, tenant_id: &str, sha256: &str) -> MosaicResult<()> {
        check_key(tenant_id, sha256)?;
        let path = self.path_of(tenant_id, sha256);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => sync_dir(path.parent().expect("parent")).await,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete", e)),
        }
    }

    async fn clean_temporary(&self, older_than: std::time::Duration) -> MosaicResult<usize> {
        let dir = self.root.join("tmp");
        tokio::task::spawn_blocking(move || {
            let mut n = 0;
            let now = std::time::SystemTime::now();
            let entries = std::fs::read_dir(&dir).map_err(|e| io_error("list tmp", e))?;
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|t| now.duration_since(t).unwrap_or_default() >= older_than)
                    .unwrap_or(false);
                if old && std::fs::remove_file(entry.path()).is_ok() {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
        .map_err(|e| io_error("clean tmp", e))?
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}

fn list_dir(root: &Path) -> MosaicResult<Vec<BlobEntry>> {
    let mut out = Vec::new();
    let read = |p: &Path| std::fs::read_dir(p).map_err(|e| io_error("list", e));
    for tenant in read(root)?.flatten() {
        let tenant_id = tenant.file_name().to_string_lossy().into_owned();
        if tenant_id == "tmp" || !is_key_segment(&tenant_id) || !tenant.path().is_dir() {
            continue;
        }
        for fan in read(&tenant.path())?.flatten() {
            if !fan.path().is_dir() {
                continue;
            }
            for blob in read(&fan.path())?.flatten() {
                let sha256 = blob.file_name().to_string_lossy().into_owned();
                if !is_sha256(&sha256) {
                    continue;
                }
                let Ok(meta) = blob.metadata() else { continue };
                let modified = meta
                    .modified()
                    .map(chrono::DateTime::<chrono::Utc>::from)
                    .unwrap_or_else(|_| chrono::Utc::now());
                out.push(BlobEntry {
                    tenant_id: tenant_id.clone(),
                    sha256,
                    size: meta.len(),
                    modified,
                });
            }
        }
    }
    Ok(out)
}
