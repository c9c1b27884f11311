//! Online snapshots: SQLite's backup API copies a database page by page
//! inside one read transaction, so the copy is one committed state even
//! while the server writes (never a file copy of a live database).

use crate::databases::{discover, open_read_only, Database, EXTRA_FILES};
use crate::manifest::{self, DatabaseEntry, FileEntry, Manifest};
use crate::{BackupError, BackupResult, Target};
use chrono::Utc;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Instant;

/// A snapshot of one database in a local file.
pub struct LocalSnapshot {
    pub file: tempfile::TempPath,
    pub size: u64,
    pub sha256: String,
    pub page_size: u32,
    pub seconds: f64,
}

/// Copies `db` into a temporary file in `scratch` in one backup step (one
/// read transaction: a consistent state; writers are not blocked in WAL
/// mode).
pub fn snapshot_to_file(db: &Path, scratch: &Path) -> BackupResult<LocalSnapshot> {
    let started = Instant::now();
    let src = open_read_only(db)?;
    let tmp = tempfile::Builder::new()
        .prefix(".mosaic-snapshot-")
        .tempfile_in(scratch)
        .map_err(|e| BackupError::io(scratch.display(), e))?
        .into_temp_path();
    {
        let mut dst = rusqlite::Connection::open(&tmp)?;
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
        // -1: every page in one step, under one read lock of the source.
        match backup.step(-1)? {
            rusqlite::backup::StepResult::Done => {}
            other => {
                return Err(BackupError::Refused(format!(
                    "snapshot of {}: the database stayed busy ({other:?})",
                    db.display()
                )))
            }
        }
    }
    let page_size: u32 = {
        let c = rusqlite::Connection::open(&tmp)?;
        // The copy is a standalone file: no WAL beside it.
        c.pragma_update(None, "journal_mode", "DELETE")?;
        c.query_row("PRAGMA page_size", [], |r| r.get(0))?
    };
    let (size, sha256) = file_digest(&tmp)?;
    Ok(LocalSnapshot {
        file: tmp,
        size,
        sha256,
        page_size,
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub fn file_digest(path: &Path) -> BackupResult<(u64, String)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| BackupError::io(path.display(), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .map_err(|e| BackupError::io(path.display(), e))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((n, hex::encode(h.finalize())))
}

/// What `mosaic backup` did.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    pub manifest: Manifest,
    pub seconds: f64,
    pub bytes: u64,
}

/// Uploads one database's snapshot into `generation`.
pub async fn upload_snapshot(
    target: &Target,
    generation: &str,
    db: &Database,
    scratch: &Path,
) -> BackupResult<DatabaseEntry> {
    let path = db.path.clone();
    let scratch_dir = scratch.to_path_buf();
    let snap = tokio::task::spawn_blocking(move || snapshot_to_file(&path, &scratch_dir))
        .await
        .map_err(|e| BackupError::Refused(format!("snapshot task: {e}")))??;
    target
        .put_file(&manifest::snapshot_key(generation, &db.name), &snap.file)
        .await?;
    Ok(DatabaseEntry {
        name: db.name.clone(),
        role: db.role.clone(),
        size: snap.size,
        sha256: snap.sha256,
        page_size: snap.page_size,
        snapshot_seconds: snap.seconds,
    })
}

/// Uploads the data directory's extra files (the field encryption key).
pub async fn upload_files(
    target: &Target,
    generation: &str,
    data_dir: &Path,
) -> BackupResult<Vec<FileEntry>> {
    let mut out = Vec::new();
    for name in EXTRA_FILES {
        let p = data_dir.join(name);
        if !p.is_file() {
            continue;
        }
        let (size, sha256) = file_digest(&p)?;
        target
            .put_file(&manifest::file_key(generation, name), &p)
            .await?;
        out.push(FileEntry {
            name: name.to_string(),
            size,
            sha256,
        });
    }
    Ok(out)
}

/// `mosaic backup`: one snapshot of every database of `data_dir` now, as a
/// new generation of kind `snapshot`.
pub async fn backup_now(data_dir: &Path, target: &Target) -> BackupResult<BackupSummary> {
    let started = Instant::now();
    let dbs = discover(data_dir)?;
    let generation = manifest::new_generation_id(Utc::now());
    let mut entries = Vec::new();
    for db in &dbs {
        entries.push(upload_snapshot(target, &generation, db, data_dir).await?);
    }
    let files = upload_files(target, &generation, data_dir).await?;
    let m = Manifest {
        format: manifest::FORMAT,
        mosaic_version: crate::MOSAIC_VERSION.into(),
        generation: generation.clone(),
        kind: "snapshot".into(),
        snapshot_at: Utc::now(),
        databases: entries,
        files,
    };
    write_manifest(target, &m).await?;
    let bytes = m.databases.iter().map(|d| d.size).sum();
    crate::shipper::record_success(&m);
    Ok(BackupSummary {
        manifest: m,
        seconds: started.elapsed().as_secs_f64(),
        bytes,
    })
}

pub async fn write_manifest(target: &Target, m: &Manifest) -> BackupResult<()> {
    let body =
        serde_json::to_vec_pretty(m).map_err(|e| BackupError::Refused(format!("manifest: {e}")))?;
    target
        .put(&manifest::manifest_key(&m.generation), body.into())
        .await
}
