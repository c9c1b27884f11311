//! Blobs in an S3-compatible object store: keys
//! `[prefix/]blobs/<tenant>/<sha>`; an upload streams as a multipart
//! upload to `[prefix/]tmp/<uuid>` (the hash is known only at its end),
//! then is copied to its content key and the temporary object deleted.
//! The store's own versioning and replication are the cross-region copy.

use crate::{
    body_error, check_key, io_error, is_key_segment, is_sha256, BlobBody, BlobEntry, BlobStore,
    ByteStream, Digest, StoredBlob,
};
use futures::{StreamExt, TryStreamExt};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};
use std::ops::Range;

/// Part size of multipart uploads (S3's minimum is 5 MiB); at most this
/// times [`MAX_CONCURRENT_PARTS`] is buffered per upload.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once.
const MAX_CONCURRENT_PARTS: usize = 2;

/// The S3-compatible blob store.
pub struct S3BlobStore {
    store: AmazonS3,
    prefix: String,
}

impl S3BlobStore {
    /// `s3://bucket[/prefix][?endpoint=…&region=…&allow_http=true]`;
    /// credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.
    pub fn from_url(blob_url: &str) -> MosaicResult<S3BlobStore> {
        let bad =
            |why: String| MosaicError::new(ErrorCode::INVALID_INPUT, format!("--blob-url: {why}"));
        let url = url::Url::parse(blob_url).map_err(|e| bad(e.to_string()))?;
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad("no bucket in s3://bucket/prefix".into()))?;
        let prefix = url.path().trim_matches('/').to_string();
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (k, v) in url.query_pairs() {
            b = match k.as_ref() {
                "endpoint" => b.with_endpoint(v.as_ref()),
                "region" => b.with_region(v.as_ref()),
                "allow_http" => b.with_allow_http(v == "true"),
                other => return Err(bad(format!("unknown parameter {other:?}"))),
            };
        }
        let store = b.build().map_err(|e| bad(e.to_string()))?;
        Ok(S3BlobStore { store, prefix })
    }

    fn key(&self, rest: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rest)
        } else {
            ObjectPath::from(format!("{}/{rest}", self.prefix))
        }
    }

    fn blob_key(&self, tenant_id: &str, sha256: &str) -> ObjectPath {
        self.key(&format!("blobs/{tenant_id}/{sha256}"))
    }
}

fn store_error(what: &str, e: object_store::Error) -> MosaicError {
    match e {
        object_store::Error::NotFound { .. } => MosaicError::not_found("file content"),
        e => io_error(what, e),
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn put(
        &self,
        tenant_id: &str,
        mut body: ByteStream,
        max_bytes: u64,
    ) -> MosaicResult<StoredBlob> {
        if !is_key_segment(tenant_id) {
            return Err(MosaicError::internal("tenant id unfit for a blob key"));
        }
        let tmp = self.key(&format!("tmp/{}", uuid::Uuid::now_v7()));
        let upload = self
            .store
            .put_multipart(&tmp)
            .await
            .map_err(|e| store_error("start an upload", e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut digest = Digest::new(max_bytes);
        let streamed: MosaicResult<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(body_error)?;
                digest.update(&chunk)?;
                writer
                    .wait_for_capacity(MAX_CONCURRENT_PARTS)
                    .await
                    .map_err(|e| store_error("upload a part", e))?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(e) = streamed {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer
            .finish()
            .await
            .map_err(|e| store_error("complete an upload", e))?;
        let stored = digest.finish();
        let dest = self.blob_key(tenant_id, &stored.sha256);
        let copied = self.store.copy(&tmp, &dest).await;
        let _ = self.store.delete(&tmp).await;
        copied.map_err(|e| store_error("copy into place", e))?;
        Ok(stored)
    }

    async fn get(
        &self,
        tenant_id: &str,
        sha256: &str,
        range: Option<Range<u64>>,
    ) -> MosaicResult<BlobBody> {
        check_key(tenant_id, sha256)?;
        let key = self.blob_key(tenant_id, sha256);
        let opts = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&key, opts)
            .await
            .map_err(|e| store_error("read", e))?;
        let total_size = got.meta.size;
        let range = got.range.clone();
        let stream = got
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .boxed();
        Ok(BlobBody {
            total_size,
            range,
            stream,
        })
    }

    async fn list(&self) -> MosaicResult<Vec<BlobEntry>> {
        let prefix = self.key("blobs");
        let mut out = Vec::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| store_error("list", e))?;
            let parts: Vec<_> = meta.location.parts().collect();
            let n = parts.len();
            if n < 2 {
                continue;
            }
            let (tenant_id, sha256) = (parts[n - 2].as_ref(), parts[n - 1].as_ref());
            if !is_key_segment(tenant_id) || !is_sha256(sha256) {
                continue;
            }
            out.push(BlobEntry {
                tenant_id: tenant_id.to_string(),
                sha256: sha256.to_string(),
                size: meta.size,
                modified: meta.last_modified,
            });
        }
        Ok(out)
    }

    async fn delete(&self, tenant_id: &str, sha256: &str) -> MosaicResult<()> {
        check_key(tenant_id, sha256)?;
        match self.store.delete(&self.blob_key(tenant_id, sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("delete", e)),
        }
    }

    async fn clean_temporary(&self, older_than: std::time::Duration) -> MosaicResult<usize> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::zero());
        let prefix = self.key("tmp");
        let mut n = 0;
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| store_error("list", e))?;
            if meta.last_modified <= cutoff && self.store.delete(&meta.location).await.is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    fn kind(&self) -> &'static str {
        "s3"
    }
}
