//! Point-in-time restore: the newest generation whose snapshot is at or
//! before the requested time, then its WAL segments replayed up to the
//! last commit at or before that time, then the integrity check.

use crate::manifest::{self, Manifest};
use crate::segment::{self, SegmentCommit};
use crate::{BackupError, BackupResult, Target};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `--to`: a time, or everything shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePoint {
    Latest,
    At(DateTime<Utc>),
}

impl RestorePoint {
    /// `latest` or an RFC 3339 time.
    pub fn parse(s: &str) -> BackupResult<RestorePoint> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("latest") {
            return Ok(RestorePoint::Latest);
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| RestorePoint::At(t.with_timezone(&Utc)))
            .map_err(|e| {
                BackupError::Refused(format!(
                    "--to {s}: not an RFC 3339 time (e.g. 2026-01-31T12:00:00Z) or `latest`: {e}"
                ))
            })
    }

    fn admits(&self, micros: i64) -> bool {
        match self {
            RestorePoint::Latest => true,
            RestorePoint::At(t) => micros <= t.timestamp_micros(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub into: PathBuf,
    pub point: RestorePoint,
}

#[derive(Debug, Clone)]
pub struct RestoreSummary {
    pub generation: String,
    pub snapshot_at: DateTime<Utc>,
    /// The time of the last commit replayed (the snapshot's time when none).
    pub restored_to: DateTime<Utc>,
    pub databases: usize,
    pub commits: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub check: crate::CheckReport,
}

/// Refuses a non-empty directory; creates a missing one.
fn prepare_dir(dir: &Path) -> BackupResult<()> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err(BackupError::Refused(format!(
                "--into {}: exists and is not a directory",
                dir.display()
            )));
        }
        let mut entries = std::fs::read_dir(dir).map_err(|e| BackupError::io(dir.display(), e))?;
        if entries.next().is_some() {
            return Err(BackupError::Refused(format!(
                "--into {}: the directory is not empty; restore only into a new or empty directory",
                dir.display()
            )));
        }
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| BackupError::io(dir.display(), e))
}

/// Chooses the generation for `point`; refuses a time before the first.
fn choose(gens: &[Manifest], point: RestorePoint, target: &Target) -> BackupResult<Manifest> {
    let Some(first) = gens.first() else {
        return Err(BackupError::Refused(format!(
            "--target {}: holds no backup yet",
            target.display
        )));
    };
    match point {
        RestorePoint::Latest => Ok(gens.last().cloned().unwrap_or_else(|| first.clone())),
        RestorePoint::At(t) => {
            if t < first.snapshot_at {
                return Err(BackupError::Refused(format!(
                    "--to {}: before the first backup in the target ({}); nothing to restore at that time",
                    t.to_rfc3339(),
                    first.snapshot_at.to_rfc3339()
                )));
            }
            Ok(gens
                .iter()
                .rev()
                .find(|g| g.snapshot_at <= t)
                .cloned()
                .unwrap_or_else(|| first.clone()))
        }
    }
}

/// Restores `target` into `options.into` and checks the result.
pub async fn restore(target: &Target, options: &RestoreOptions) -> BackupResult<RestoreSummary> {
    let started = Instant::now();
    prepare_dir(&options.into)?;
    let gens = manifest::list(target).await?;
    let g = choose(&gens, options.point, target)?;
    let mut commits = 0u64;
    let mut bytes = 0u64;
    let mut last_commit: Option<i64> = None;
    for db in &g.databases {
        let path = options.into.join(&db.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| BackupError::io(parent.display(), e))?;
        }
        let key = manifest::snapshot_key(&g.generation, &db.name);
        bytes += target.get_to_file(&key, &path).await.map_err(|e| match e {
            BackupError::Target(object_store::Error::NotFound { .. }) => {
                BackupError::Refused(format!(
                    "generation {}: the snapshot of {} was pruned by retention",
                    g.generation, db.name
                ))
            }
            e => e,
        })?;
        let (_, sum) = crate::snapshot::file_digest(&path)?;
        if sum != db.sha256 {
            return Err(BackupError::Damaged(format!(
                "{key}: checksum {sum} differs from the manifest's {}",
                db.sha256
            )));
        }
        let mut segments: Vec<(u64, i64, String)> = target
            .list(&manifest::wal_prefix(&g.generation, &db.name))
            .await?
            .into_iter()
            .filter_map(|e| segment::parse_name(&e.key).map(|(seq, first, _)| (seq, first, e.key)))
            .collect();
        segments.sort();
        let mut replay = Replay::open(&path)?;
        for (i, (seq, first, key)) in segments.iter().enumerate() {
            if *seq != i as u64 {
                return Err(BackupError::Damaged(format!(
                    "{}: WAL segment {i} is missing",
                    manifest::wal_prefix(&g.generation, &db.name)
                )));
            }
            if !options.point.admits(*first) {
                break;
            }
            let body = target.get(key).await?;
            bytes += body.len() as u64;
            let decoded = segment::decode(key, &body)?;
            let mut stop = false;
            for c in decoded {
                if !options.point.admits(c.at_micros) {
                    stop = true;
                    break;
                }
                replay.apply(&c)?;
                commits += 1;
                last_commit = Some(last_commit.map_or(c.at_micros, |l| l.max(c.at_micros)));
            }
            if stop {
                break;
            }
        }
        replay.finish()?;
    }
    for f in &g.files {
        let path = options.into.join(&f.name);
        target
            .get_to_file(&manifest::file_key(&g.generation, &f.name), &path)
            .await?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
    }
    let into = options.into.clone();
    let check = tokio::task::spawn_blocking(move || crate::check_data_dir(&into))
        .await
        .map_err(|e| BackupError::Refused(format!("check task: {e}")))??;
    let restored_to = last_commit
        .map(crate::shipper::micros_to_time)
        .filter(|t| *t > g.snapshot_at)
        .unwrap_or(g.snapshot_at);
    Ok(RestoreSummary {
        generation: g.generation.clone(),
        snapshot_at: g.snapshot_at,
        restored_to,
        databases: g.databases.len(),
        commits,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        check,
    })
}

/// Page images written into a restored database file, in commit order.
struct Replay {
    file: std::fs::File,
    path: PathBuf,
    size: Option<(u32, u32)>,
}

impl Replay {
    fn open(path: &Path) -> BackupResult<Replay> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| BackupError::io(path.display(), e))?;
        Ok(Replay {
            file,
            path: path.to_path_buf(),
            size: None,
        })
    }

    fn apply(&mut self, c: &SegmentCommit) -> BackupResult<()> {
        use std::os::unix::fs::FileExt;
        for (pgno, page) in &c.pages {
            if *pgno == 0 || page.len() != c.page_size as usize {
                return Err(BackupError::Damaged(format!(
                    "{}: a commit holds page {pgno} of {} bytes",
                    self.path.display(),
                    page.len()
                )));
            }
            let at = (*pgno as u64 - 1) * c.page_size as u64;
            self.file
                .write_all_at(page, at)
                .map_err(|e| BackupError::io(self.path.display(), e))?;
        }
        self.size = Some((c.db_pages, c.page_size));
        Ok(())
    }

    /// The database ends where the last replayed commit said.
    fn finish(self) -> BackupResult<()> {
        if let Some((pages, page_size)) = self.size {
            self.file
                .set_len(pages as u64 * page_size as u64)
                .map_err(|e| BackupError::io(self.path.display(), e))?;
        }
        self.file
            .sync_all()
            .map_err(|e| BackupError::io(self.path.display(), e))
    }
}
