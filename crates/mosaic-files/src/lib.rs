//! Blob storage of Mosaic's files (ContentVersion bodies, decision 0034).
//!
//! A blob is immutable and content-addressed: its key is the tenant and
//! the SHA-256 of its bytes, so the same bytes uploaded twice by a tenant
//! are stored once, a point-in-time copy of the metadata keeps every blob
//! it references, and a key never names two contents. Bodies stream in and
//! out in chunks; nothing here holds a whole file in memory.
//!
//! Two back ends: [`LocalBlobStore`] (the data directory: written to a
//! temporary name, fsynced, renamed, the directory fsynced — durable before
//! [`BlobStore::put`] returns) and [`S3BlobStore`] (an S3-compatible object
//! store through `object_store`: a multipart upload to a temporary key,
//! then a copy to the content key). [`open`] picks one from `--blob-url`.
//!
//! **Invariant:** a blob is never changed after `put` returned; only the
//! orphan collector deletes blobs, and only ones no metadata references.

mod local;
mod s3;
pub mod sniff;

pub use local::LocalBlobStore;
pub use s3::S3BlobStore;

use bytes::Bytes;
use futures::stream::BoxStream;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// A body streamed into or out of a store.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Bytes of the head of a blob kept for content-type sniffing.
pub const SNIFF_BYTES: usize = 8 * 1024;

/// What `put` stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Lower-case hex SHA-256 of the bytes (the blob's key in its tenant).
    pub sha256: String,
    pub size: u64,
    /// The first [`SNIFF_BYTES`] bytes (for sniffing the content type).
    pub head: Vec<u8>,
}

/// A blob found by [`BlobStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    pub tenant_id: String,
    pub sha256: String,
    pub size: u64,
    /// When it was last written (a re-upload of the same bytes renews it).
    pub modified: chrono::DateTime<chrono::Utc>,
}

/// A body read back: the requested range of the blob, and its total size.
pub struct BlobBody {
    pub total_size: u64,
    pub range: Range<u64>,
    pub stream: ByteStream,
}

/// Where blobs live.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync {
    /// Streams `body` into the store under the tenant and the SHA-256 of
    /// its bytes. Refuses (`REQUEST_TOO_LARGE`, nothing kept) a body of
    /// more than `max_bytes`. Durable when it returns.
    async fn put(
        &self,
        tenant_id: &str,
        body: ByteStream,
        max_bytes: u64,
    ) -> MosaicResult<StoredBlob>;

    /// Streams a blob back, or `range` of it (clamped by the caller to the
    /// size it recorded). `NOT_FOUND` when it does not exist.
    async fn get(
        &self,
        tenant_id: &str,
        sha256: &str,
        range: Option<Range<u64>>,
    ) -> MosaicResult<BlobBody>;

    /// Every stored blob (the orphan collector's candidates).
    async fn list(&self) -> MosaicResult<Vec<BlobEntry>>;

    /// Deletes a blob (absent is fine).
    async fn delete(&self, tenant_id: &str, sha256: &str) -> MosaicResult<()>;

    /// Removes temporary uploads older than `older_than` (left by a crash
    /// or an aborted request); returns how many.
    async fn clean_temporary(&self, older_than: std::time::Duration) -> MosaicResult<usize>;

    /// `embedded` or `s3` (status views, logs).
    fn kind(&self) -> &'static str;
}

/// Opens the store `blob_url` names: `None` → `<data dir>/blobs`;
/// `file:///path` → that directory; `s3://bucket[/prefix]` → an
/// S3-compatible store (credentials and region from the usual `AWS_*`
/// variables; query parameters `endpoint`, `region`, `allow_http=true`
/// for a local server).
pub fn open(data_dir: &Path, blob_url: Option<&str>) -> MosaicResult<Arc<dyn BlobStore>> {
    match blob_url.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(Arc::new(LocalBlobStore::open(data_dir.join("blobs"))?)),
        Some(u) if u.starts_with("file://") => Ok(Arc::new(LocalBlobStore::open(
            u.trim_start_matches("file://"),
        )?)),
        Some(u) if u.starts_with("s3://") => Ok(Arc::new(S3BlobStore::from_url(u)?)),
        Some(u) => Err(MosaicError::new(
            ErrorCode::INVALID_INPUT,
            format!("--blob-url must be file://… or s3://…, not {u:?}"),
        )),
    }
}

/// Whether `s` is a lower-case hex SHA-256 (64 characters).
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `s` can name a tenant in a key (ids are UUIDs; nothing that
/// could climb out of a directory).
pub(crate) fn is_key_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn check_key(tenant_id: &str, sha256: &str) -> MosaicResult<()> {
    if is_key_segment(tenant_id) && is_sha256(sha256) {
        Ok(())
    } else {
        Err(MosaicError::not_found("blob"))
    }
}

pub(crate) fn too_large(max_bytes: u64) -> MosaicError {
    MosaicError::new(
        ErrorCode::REQUEST_TOO_LARGE,
        format!("the file exceeds the limit of {max_bytes} bytes"),
    )
}

pub(crate) fn io_error(what: &str, e: impl std::fmt::Display) -> MosaicError {
    MosaicError::new(
        ErrorCode::SERVICE_UNAVAILABLE,
        format!("blob store: {what}: {e}"),
    )
}

/// Hashes and measures a body while it streams, keeping its head.
pub(crate) struct Digest {
    hasher: sha2::Sha256,
    size: u64,
    head: Vec<u8>,
    max_bytes: u64,
}

impl Digest {
    pub(crate) fn new(max_bytes: u64) -> Digest {
        use sha2::Digest as _;
        Digest {
            hasher: sha2::Sha256::new(),
            size: 0,
            head: Vec::new(),
            max_bytes,
        }
    }

    /// Takes in one chunk; `REQUEST_TOO_LARGE` once past the limit.
    pub(crate) fn update(&mut self, chunk: &[u8]) -> MosaicResult<()> {
        use sha2::Digest as _;
        self.size += chunk.len() as u64;
        if self.size > self.max_bytes {
            return Err(too_large(self.max_bytes));
        }
        if self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        Ok(())
    }

    pub(crate) fn finish(self) -> StoredBlob {
        use sha2::Digest as _;
        StoredBlob {
            sha256: hex::encode(self.hasher.finalize()),
            size: self.size,
            head: self.head,
        }
    }
}

/// A body stream's error as the store reports it: the client's body
/// failing (a reset connection, a malformed multipart part) is its
/// mistake, not the store's.
pub(crate) fn body_error(e: std::io::Error) -> MosaicError {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<MosaicError>()) {
        return inner.clone();
    }
    MosaicError::new(
        ErrorCode::INVALID_INPUT,
        format!("the upload stopped before its end: {e}"),
    )
}
