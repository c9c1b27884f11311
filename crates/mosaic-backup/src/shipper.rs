//! Continuous WAL shipping (the Litestream approach) for `mosaic serve
//! --backup-target`.
//!
//! Per database, the shipper always holds a read transaction on its own
//! connection. While it does, SQLite cannot checkpoint past that reader's
//! snapshot nor restart the WAL from the beginning, so no frame is
//! overwritten before it was shipped. Each round it opens a *new* read
//! transaction first, reads the WAL from where it stopped (verifying salts
//! and checksums, keeping whole transactions only), uploads the new
//! commits as one segment, and only then releases the previous read
//! transaction. Each commit carries the time the writer stamped on it
//! ([`mosaic_store::commit_clock`]), so a restore stops at the last commit
//! at or before the requested time.
//!
//! A generation starts with a snapshot of every database; a new one is
//! taken every [`ShipperConfig::generation_interval`] and old ones are
//! pruned by [`crate::Retention`]. When the WAL grows past
//! [`MAX_WAL_BYTES`] the shipper briefly takes the write lock, ships the
//! rest, checkpoints and lets the next writer restart the log.

use crate::databases::{discover, Database};
use crate::manifest::{self, Manifest};
use crate::segment::{self, SegmentCommit};
use crate::wal::{self, Cursor};
use crate::{BackupError, BackupResult, Retention, Target};
use chrono::{DateTime, Utc};
use mosaic_store::commit_clock::{self, CommitLog, CommitStamp};
use rusqlite::Connection;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often new commits are shipped (the RPO is about this plus one
/// upload).
pub const SHIP_INTERVAL: Duration = Duration::from_millis(200);
/// WAL size past which the shipper forces a checkpoint so the log restarts.
pub const MAX_WAL_BYTES: u64 = 64 * 1024 * 1024;
/// Commits kept in memory while the target is unreachable; past it they
/// are dropped and a new generation is started once the target answers.
pub const MAX_UNSHIPPED_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ShipperConfig {
    pub ship_interval: Duration,
    /// A fresh snapshot (generation) this often (the seed's daily full).
    pub generation_interval: Duration,
    pub retention: Retention,
}

impl Default for ShipperConfig {
    fn default() -> Self {
        ShipperConfig {
            ship_interval: SHIP_INTERVAL,
            generation_interval: Duration::from_secs(24 * 3600),
            retention: Retention::default(),
        }
    }
}

/// Figures of a running shipper (also exported as metrics).
#[derive(Debug, Default)]
pub struct ShipStats {
    pub segments: AtomicU64,
    pub shipped_bytes: AtomicU64,
    pub commits: AtomicU64,
    /// Largest time between a commit and its segment landing in the
    /// target, in microseconds: the RPO achieved.
    pub max_lag_micros: AtomicU64,
    pub generations: AtomicU64,
    pub last_lag_micros: AtomicU64,
    /// Sum of the lags of every segment (their mean is this over
    /// `segments`).
    pub lag_sum_micros: AtomicU64,
}

impl ShipStats {
    fn log(&self) {
        let segments = self.segments.load(Ordering::Relaxed);
        let mean = self.lag_sum_micros.load(Ordering::Relaxed) as f64 / segments.max(1) as f64;
        tracing::info!(
            segments,
            commits = self.commits.load(Ordering::Relaxed),
            shipped_bytes = self.shipped_bytes.load(Ordering::Relaxed),
            max_lag_ms = self.max_lag_micros.load(Ordering::Relaxed) as f64 / 1e3,
            mean_lag_ms = mean / 1e3,
            "continuous backup: shipping figures"
        );
    }
}

/// The state of one database's shipping.
struct DbShipper {
    db: Database,
    holder: Option<Connection>,
    cursor: Option<Cursor>,
    log: CommitLog,
    stamps: VecDeque<CommitStamp>,
    last_at: i64,
    unshipped: Vec<SegmentCommit>,
    unshipped_bytes: usize,
    overflowed: bool,
    /// The WAL epoch and frame count when watching began, and that time:
    /// commits up to there were never stamped (they are in the first
    /// snapshot anyway) and take that time.
    preexisting: Option<((u32, u32), u32, i64)>,
}

fn begin_read(path: &Path) -> BackupResult<Connection> {
    let c = crate::databases::open_read_only(path)?;
    c.execute_batch("BEGIN")?;
    c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(c)
}

impl DbShipper {
    fn new(db: Database) -> BackupResult<DbShipper> {
        let log = commit_clock::watch(&db.path);
        let holder = Some(begin_read(&db.path)?);
        let wal_bytes = wal::read_from(&wal::wal_path(&db.path), 0)?;
        let preexisting = match wal_bytes.get(..wal::WAL_HEADER).and_then(wal::parse_header) {
            Some(h) => {
                let (_, end) = wal::read_commits(Cursor::start(h), &wal_bytes[wal::WAL_HEADER..])?;
                Some((h.salt, end.frames, Utc::now().timestamp_micros()))
            }
            None => None,
        };
        Ok(DbShipper {
            db,
            holder,
            cursor: None,
            log,
            stamps: VecDeque::new(),
            last_at: 0,
            unshipped: Vec::new(),
            unshipped_bytes: 0,
            overflowed: false,
            preexisting,
        })
    }

    fn wal(&self) -> PathBuf {
        wal::wal_path(&self.db.path)
    }

    /// Reads every whole transaction committed since the last round into
    /// `unshipped`; the new read transaction is taken before reading and
    /// the old one released after.
    fn collect(&mut self) -> BackupResult<()> {
        let next = begin_read(&self.db.path)?;
        if let Some(header) = wal::read_header(&self.wal())? {
            let cursor = match self.cursor {
                Some(c) if c.header.salt == header.salt => c,
                _ => Cursor::start(header),
            };
            let tail = wal::read_from(&self.wal(), cursor.offset())?;
            let (commits, after) = wal::read_commits(cursor, &tail)?;
            self.cursor = Some(after);
            let now = Utc::now().timestamp_micros();
            self.stamps.extend(self.log.drain());
            for c in commits {
                let at = match self
                    .stamps
                    .iter()
                    .position(|s| s.wal_frames == c.commit_frame)
                {
                    Some(i) => {
                        let s = self.stamps[i];
                        self.stamps.drain(..=i);
                        s.at.timestamp_micros()
                    }
                    None => match self.preexisting {
                        Some((salt, frames, at))
                            if salt == header.salt && c.commit_frame <= frames =>
                        {
                            at
                        }
                        // Committed by another process (or seen just
                        // before its stamp): timed when shipped.
                        _ => now,
                    },
                };
                let at = at.max(self.last_at);
                self.last_at = at;
                let bytes: usize = c.pages.iter().map(|(_, p)| p.len() + 4).sum();
                // After an overflow the chain has a hole: nothing more goes
                // to this generation (a new one starts at the next round).
                if self.overflowed || self.unshipped_bytes + bytes > MAX_UNSHIPPED_BYTES {
                    self.overflowed = true;
                    self.unshipped.clear();
                    self.unshipped_bytes = 0;
                    continue;
                }
                self.unshipped_bytes += bytes + 20;
                self.unshipped.push(SegmentCommit {
                    at_micros: at,
                    db_pages: c.db_pages,
                    page_size: header.page_size,
                    pages: c.pages,
                });
            }
            // Stamps the WAL no longer holds (an older epoch) are dropped.
            if self.stamps.len() > commit_clock::MAX_PENDING_STAMPS {
                self.stamps.clear();
            }
        }
        self.holder = Some(next);
        Ok(())
    }

    /// Every whole transaction in the current WAL epoch from its first
    /// frame: the start of a new generation's log (replayed on top of its
    /// snapshot, which already holds them — page images are idempotent).
    fn wal_prefix(&self, at_micros: i64) -> BackupResult<Vec<SegmentCommit>> {
        let bytes = wal::read_from(&self.wal(), 0)?;
        let Some(header) = bytes.get(..wal::WAL_HEADER).and_then(wal::parse_header) else {
            return Ok(Vec::new());
        };
        let upto = self
            .cursor
            .filter(|c| c.header.salt == header.salt)
            .map_or(0, |c| c.frames);
        let (commits, _) = wal::read_commits(Cursor::start(header), &bytes[wal::WAL_HEADER..])?;
        Ok(commits
            .into_iter()
            .filter(|c| c.commit_frame <= upto)
            .map(|c| SegmentCommit {
                at_micros,
                db_pages: c.db_pages,
                page_size: header.page_size,
                pages: c.pages,
            })
            .collect())
    }

    /// Takes the write lock, ships the rest, checkpoints, and holds a new
    /// read transaction before letting writers go, so the next writer can
    /// restart the log.
    fn checkpoint_under_lock(&mut self) -> BackupResult<()> {
        let w = Connection::open(&self.db.path)?;
        w.busy_timeout(mosaic_store::sqlite::BUSY_TIMEOUT)?;
        w.execute_batch("BEGIN IMMEDIATE")?;
        self.collect()?;
        self.holder = None;
        let c = Connection::open(&self.db.path)?;
        let _ = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        drop(c);
        self.holder = Some(begin_read(&self.db.path)?);
        w.execute_batch("COMMIT")?;
        Ok(())
    }
}

/// A generation being written: its id and each database's next segment
/// number.
struct Generation {
    id: String,
    seq: Vec<u64>,
}

/// Continuous shipping of one data directory to one target.
pub struct Shipper {
    data_dir: PathBuf,
    target: Target,
    config: ShipperConfig,
    dbs: Vec<DbShipper>,
    current: Option<Generation>,
    last_generation: Instant,
    stats: Arc<ShipStats>,
    /// False for the round that closes a generation change: its commits
    /// waited for the snapshots, which the lag figures report apart
    /// (`backup_snapshot_seconds`).
    measuring: bool,
}

/// Stops a running shipper: the final round ships every committed frame.
pub struct ShipperHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<BackupResult<()>>,
    pub stats: Arc<ShipStats>,
}

impl ShipperHandle {
    /// Ships everything committed so far and stops. Call it after the
    /// stores are closed (every write committed or refused).
    pub async fn finish(self) -> BackupResult<()> {
        let _ = self.stop.send(true);
        let r = self
            .task
            .await
            .map_err(|e| BackupError::Refused(format!("backup shipper: {e}")))?;
        self.stats.log();
        r
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> BackupResult<T> + Send + 'static,
) -> BackupResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackupError::Refused(format!("backup task: {e}")))?
}

impl Shipper {
    /// Starts shipping `data_dir` to `target`: holds every database's WAL,
    /// takes the first generation's snapshot, then ships every round.
    pub async fn start(
        data_dir: &Path,
        target: Target,
        config: ShipperConfig,
    ) -> BackupResult<ShipperHandle> {
        let dir = data_dir.to_path_buf();
        let dbs = blocking(move || {
            discover(&dir)?
                .into_iter()
                .map(DbShipper::new)
                .collect::<BackupResult<Vec<_>>>()
        })
        .await?;
        let stats = Arc::new(ShipStats::default());
        let mut shipper = Shipper {
            data_dir: data_dir.to_path_buf(),
            target,
            config,
            dbs,
            current: None,
            last_generation: Instant::now(),
            stats: stats.clone(),
            measuring: true,
        };
        shipper.new_generation().await?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(shipper.config.ship_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => {
                        // The last round: everything committed is in the WAL.
                        return shipper.round().await;
                    }
                }
                if let Err(e) = shipper.round().await {
                    tracing::warn!(error = %e, "backup: shipping round failed; retrying");
                    metrics::counter!("backup_errors_total").increment(1);
                }
                if shipper.last_generation.elapsed() >= shipper.config.generation_interval
                    || shipper.dbs.iter().any(|d| d.overflowed)
                {
                    if let Err(e) = shipper.new_generation().await {
                        tracing::warn!(error = %e, "backup: new generation failed");
                        metrics::counter!("backup_errors_total").increment(1);
                    }
                }
            }
        });
        Ok(ShipperHandle { stop, task, stats })
    }

    /// Starts a new generation: its log begins with the current WAL, then
    /// every database is snapshotted, then the manifest makes it visible.
    /// The previous generation received every commit up to the round
    /// before; the first round after also goes to it, so a time between
    /// the two is covered by the older one.
    async fn new_generation(&mut self) -> BackupResult<()> {
        let started = Utc::now();
        // Shards registered since the last generation join this one.
        let dir = self.data_dir.clone();
        let known: Vec<String> = self.dbs.iter().map(|d| d.db.name.clone()).collect();
        let added = blocking(move || {
            discover(&dir)?
                .into_iter()
                .filter(|db| !known.contains(&db.name))
                .map(DbShipper::new)
                .collect::<BackupResult<Vec<_>>>()
        })
        .await?;
        self.dbs.extend(added);
        let id = manifest::new_generation_id(started);
        let mut seq = vec![0u64; self.dbs.len()];
        for (i, d) in self.dbs.iter_mut().enumerate() {
            let prefix = d.wal_prefix(started.timestamp_micros())?;
            d.overflowed = false;
            if !prefix.is_empty() {
                let key = segment_key(&id, &d.db.name, seq[i], &prefix);
                self.target
                    .put(&key, segment::encode(&prefix).into())
                    .await?;
                seq[i] += 1;
            }
        }
        let mut entries = Vec::new();
        let dbs: Vec<Database> = self.dbs.iter().map(|d| d.db.clone()).collect();
        for db in &dbs {
            entries.push(
                crate::snapshot::upload_snapshot(&self.target, &id, db, &self.data_dir).await?,
            );
        }
        let files = crate::snapshot::upload_files(&self.target, &id, &self.data_dir).await?;
        let m = Manifest {
            format: manifest::FORMAT,
            mosaic_version: crate::MOSAIC_VERSION.into(),
            generation: id.clone(),
            kind: "continuous".into(),
            snapshot_at: Utc::now(),
            databases: entries,
            files,
        };
        crate::snapshot::write_manifest(&self.target, &m).await?;
        record_success(&m);
        // One round to both, then the old generation is closed.
        let previous = self.current.replace(Generation { id, seq });
        self.measuring = false;
        let r = self.round_to(previous).await;
        self.measuring = true;
        r?;
        metrics::gauge!("backup_snapshot_seconds")
            .set((Utc::now() - started).num_milliseconds() as f64 / 1e3);
        self.last_generation = Instant::now();
        self.stats.generations.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.config.retention.prune(&self.target, Utc::now()).await {
            tracing::warn!(error = %e, "backup: pruning old generations failed");
        }
        Ok(())
    }

    async fn round(&mut self) -> BackupResult<()> {
        self.round_to(None).await
    }

    /// One shipping round: collect new commits of every database and
    /// upload them (also to `also`, a generation being closed).
    async fn round_to(&mut self, mut also: Option<Generation>) -> BackupResult<()> {
        let dbs = std::mem::take(&mut self.dbs);
        let mut dbs = blocking(move || {
            let mut dbs = dbs;
            for d in dbs.iter_mut() {
                let big = std::fs::metadata(d.wal())
                    .map(|m| m.len() > MAX_WAL_BYTES)
                    .unwrap_or(false);
                let r = if big {
                    d.checkpoint_under_lock()
                } else {
                    d.collect()
                };
                if let Err(e) = r {
                    tracing::warn!(db = %d.db.name, error = %e, "backup: reading the WAL failed");
                    metrics::counter!("backup_errors_total").increment(1);
                }
            }
            Ok(dbs)
        })
        .await?;
        let result = self.upload(&mut dbs, also.as_mut()).await;
        self.dbs = dbs;
        result
    }

    async fn upload(
        &mut self,
        dbs: &mut [DbShipper],
        mut also: Option<&mut Generation>,
    ) -> BackupResult<()> {
        let Some(current) = self.current.as_ref() else {
            return Ok(());
        };
        let current_id = current.id.clone();
        let mut current_seq = current.seq.clone();
        let mut oldest_pending: Option<i64> = None;
        let mut result = Ok(());
        for (i, d) in dbs.iter_mut().enumerate() {
            if d.unshipped.is_empty() {
                continue;
            }
            let body = bytes::Bytes::from(segment::encode(&d.unshipped));
            let mut ok = true;
            let mut targets = vec![(current_id.clone(), current_seq[i])];
            if let Some(g) = also.as_deref() {
                if let Some(seq) = g.seq.get(i) {
                    targets.push((g.id.clone(), *seq));
                }
            }
            for (gen, seq) in &targets {
                let key = segment_key(gen, &d.db.name, *seq, &d.unshipped);
                if let Err(e) = self.target.put(&key, body.clone()).await {
                    ok = false;
                    result = Err(e);
                    break;
                }
            }
            if !ok {
                oldest_pending = Some(oldest_pending.map_or(d.unshipped[0].at_micros, |o| {
                    o.min(d.unshipped[0].at_micros)
                }));
                continue;
            }
            current_seq[i] += 1;
            if let Some(seq) = also.as_deref_mut().and_then(|g| g.seq.get_mut(i)) {
                *seq += 1;
            }
            let now = Utc::now().timestamp_micros();
            let lag = (now - d.unshipped[0].at_micros).max(0) as u64;
            if self.measuring {
                self.stats.max_lag_micros.fetch_max(lag, Ordering::Relaxed);
                self.stats.lag_sum_micros.fetch_add(lag, Ordering::Relaxed);
                self.stats.last_lag_micros.store(lag, Ordering::Relaxed);
                self.stats.segments.fetch_add(1, Ordering::Relaxed);
                metrics::histogram!("backup_ship_lag_seconds").record(lag as f64 / 1e6);
            }
            self.stats
                .commits
                .fetch_add(d.unshipped.len() as u64, Ordering::Relaxed);
            self.stats
                .shipped_bytes
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            metrics::counter!("backup_shipped_bytes_total", "db" => d.db.name.clone())
                .increment(body.len() as u64);
            d.unshipped.clear();
            d.unshipped_bytes = 0;
        }
        // Sequence numbers advance only for segments that landed.
        if let Some(c) = self.current.as_mut() {
            c.seq = current_seq;
        }
        let lag = oldest_pending.map_or(0.0, |o| (Utc::now().timestamp_micros() - o) as f64 / 1e6);
        metrics::gauge!("backup_lag_seconds").set(lag);
        if result.is_ok() {
            metrics::gauge!("backup_last_ship_timestamp_seconds")
                .set(Utc::now().timestamp_millis() as f64 / 1e3);
        }
        result
    }
}

fn segment_key(generation: &str, db: &str, seq: u64, commits: &[SegmentCommit]) -> String {
    let first = commits.first().map_or(0, |c| c.at_micros);
    let last = commits.last().map_or(0, |c| c.at_micros);
    format!(
        "{}{}",
        manifest::wal_prefix(generation, db),
        segment::name(seq, first, last)
    )
}

/// Records a finished snapshot in the metrics (`backup_last_success_*`).
pub fn record_success(m: &Manifest) {
    metrics::gauge!("backup_last_success_timestamp_seconds")
        .set(m.snapshot_at.timestamp_millis() as f64 / 1e3);
    metrics::gauge!("backup_snapshot_bytes")
        .set(m.databases.iter().map(|d| d.size).sum::<u64>() as f64);
    metrics::counter!("backup_generations_total").increment(1);
}

/// The time of a commit stamp as a UTC time.
pub fn micros_to_time(micros: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default()
}
