//! The SQLite databases of a data directory: the metadata database, the
//! built-in shard and every registered `sqlite:` shard.

use crate::{BackupError, BackupResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

pub const METADATA_FILE: &str = "metadata.sqlite";
pub const RECORDS_FILE: &str = "records.sqlite";
/// Files of the data directory that are not databases but a restore needs.
pub const EXTRA_FILES: &[&str] = &["field-encryption.key"];

/// One database: its path relative to the data directory and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub name: String,
    pub role: String,
    pub path: PathBuf,
}

/// Opens a database read-only (never creating it).
pub fn open_read_only(path: &Path) -> BackupResult<Connection> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(mosaic_store::sqlite::BUSY_TIMEOUT)?;
    Ok(c)
}

/// The databases of `data_dir`; refuses a directory without a metadata
/// database, and shards stored outside the directory (a restore could not
/// put them back where the shard directory says).
pub fn discover(data_dir: &Path) -> BackupResult<Vec<Database>> {
    let meta = data_dir.join(METADATA_FILE);
    if !meta.is_file() {
        return Err(BackupError::Refused(format!(
            "--data-dir {}: no {METADATA_FILE} here; is this a Mosaic data directory?",
            data_dir.display()
        )));
    }
    let mut out = vec![Database {
        name: METADATA_FILE.into(),
        role: "metadata".into(),
        path: meta.clone(),
    }];
    let records = data_dir.join(RECORDS_FILE);
    if records.is_file() {
        out.push(Database {
            name: RECORDS_FILE.into(),
            role: "shard:local".into(),
            path: records,
        });
    }
    let conn = open_read_only(&meta)?;
    let has_shards: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'shards'",
        [],
        |r| r.get(0),
    )?;
    if !has_shards {
        return Ok(out);
    }
    let mut st = conn.prepare("SELECT id, url FROM shards ORDER BY id")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (id, url) = row?;
        let Some(p) = url.strip_prefix("sqlite:") else {
            continue;
        };
        let p = Path::new(p.trim_start_matches("//"));
        let rel = if p.is_absolute() {
            match p.strip_prefix(data_dir) {
                Ok(r) => r.to_path_buf(),
                Err(_) => {
                    return Err(BackupError::Refused(format!(
                        "shard {id} is stored outside the data directory ({}); back it up by moving it inside",
                        p.display()
                    )))
                }
            }
        } else {
            p.to_path_buf()
        };
        if rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(BackupError::Refused(format!(
                "shard {id}: path {} leaves the data directory",
                rel.display()
            )));
        }
        let path = data_dir.join(&rel);
        let name = rel.to_string_lossy().replace('\\', "/");
        if path.is_file() && !out.iter().any(|d| d.name == name) {
            out.push(Database {
                name,
                role: format!("shard:{id}"),
                path,
            });
        }
    }
    Ok(out)
}
