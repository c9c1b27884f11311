//! The manifest of a generation: when its snapshot was taken, which
//! databases it holds (sizes, checksums) and the Mosaic version.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Format version of the manifest and the layout beside it.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub mosaic_version: String,
    pub generation: String,
    /// `snapshot` (one-off `mosaic backup`) or `continuous` (snapshot plus
    /// WAL segments shipped by `mosaic serve --backup-target`).
    pub kind: String,
    /// When the snapshot of every database had been taken: the earliest
    /// time this generation restores to.
    pub snapshot_at: DateTime<Utc>,
    pub databases: Vec<DatabaseEntry>,
    /// Small non-database files of the data directory (the field
    /// encryption key).
    #[serde(default)]
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseEntry {
    /// Path relative to the data directory (`metadata.sqlite`, …).
    pub name: String,
    pub role: String,
    pub size: u64,
    pub sha256: String,
    pub page_size: u32,
    pub snapshot_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

pub fn generations_prefix() -> &'static str {
    "generations/"
}

pub fn manifest_key(generation: &str) -> String {
    format!("generations/{generation}/manifest.json")
}

pub fn snapshot_key(generation: &str, db: &str) -> String {
    format!("generations/{generation}/db/{db}/snapshot.sqlite")
}

pub fn wal_prefix(generation: &str, db: &str) -> String {
    format!("generations/{generation}/db/{db}/wal/")
}

pub fn file_key(generation: &str, name: &str) -> String {
    format!("generations/{generation}/files/{name}")
}

/// A new generation id: sortable by time (UTC, microseconds).
pub fn new_generation_id(now: DateTime<Utc>) -> String {
    now.format("%Y%m%dT%H%M%S%6fZ").to_string()
}

/// Every generation with a manifest, oldest first.
pub async fn list(target: &crate::Target) -> crate::BackupResult<Vec<Manifest>> {
    let mut out = Vec::new();
    for e in target.list(generations_prefix()).await? {
        if !e.key.ends_with("/manifest.json") {
            continue;
        }
        let bytes = target.get(&e.key).await?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|err| crate::BackupError::Damaged(format!("{}: {err}", e.key)))?;
        out.push(m);
    }
    out.sort_by_key(|m| m.snapshot_at);
    Ok(out)
}
