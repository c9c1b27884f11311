//! The embedded SQLite engine: one writer thread that group-commits, and a
//! pool of read-only connections that never wait for it.
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, so a
//! commit returns only after the WAL is fsynced. The writer takes every job
//! waiting in its queue (up to [`MAX_GROUP_COMMIT`]), runs each inside its own
//! savepoint (a failing job rolls back alone), then commits once: concurrent
//! writers share one fsync. A job's caller is answered only after the commit.

use crate::guard::{Admitted, CallGuard};
use mosaic_types::{MosaicError, MosaicResult};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};
use tracing::Instrument;

/// Most jobs folded into one transaction.
pub const MAX_GROUP_COMMIT: usize = 512;
/// How long a connection waits for a lock held by another process (e.g. the
/// `mosaic tenant create` CLI writing while a server runs).
pub const BUSY_TIMEOUT: Duration = mosaic_types::timeouts::DB_BUSY_TIMEOUT;
/// Read-only connections per database.
pub const READERS: usize = 8;

type Job = Box<dyn WriteJob>;

trait WriteJob: Send {
    /// Runs inside a savepoint. Returns false when the job failed and its
    /// savepoint must be rolled back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Called after the transaction ends: `Ok` when committed.
    fn finish(self: Box<Self>, committed: Result<(), MosaicError>);
}

struct ClosureJob<T, F> {
    f: Option<F>,
    result: Option<MosaicResult<T>>,
    reply: oneshot::Sender<MosaicResult<T>>,
}

impl<T: Send, F: FnOnce(&Connection) -> MosaicResult<T> + Send> WriteJob for ClosureJob<T, F> {
    fn run(&mut self, conn: &Connection) -> bool {
        let f = match self.f.take() {
            Some(f) => f,
            None => return false,
        };
        let r = f(conn);
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), MosaicError>) {
        let out = match (committed, self.result) {
            (Ok(()), Some(r)) => r,
            (Err(_), Some(Err(job_err))) => Err(job_err),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(MosaicError::internal("write job did not run")),
        };
        let _ = self.reply.send(out);
    }
}

/// Statistics of the group-commit writer (for metrics).
#[derive(Default, Debug)]
pub struct WriterStats {
    pub transactions: AtomicU64,
    pub jobs: AtomicU64,
}

/// A SQLite database file with its writer thread and reader pool.
pub struct SqliteDb {
    path: PathBuf,
    /// Metrics label: the file stem (`metadata`, `records`).
    label: String,
    tx: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    reader_permits: Semaphore,
    pub stats: Arc<WriterStats>,
    /// Consulted before every read and write (the runtime's circuit breaker).
    guard: OnceLock<Arc<dyn CallGuard>>,
}

/// A lock the database could not take in time is `UNABLE_TO_LOCK_ROW` (the
/// statement changed nothing; a retry may succeed); a unique key taken is
/// `DUPLICATE_VALUE` (the stores check names first, so this is a race lost
/// — the PostgreSQL backend answers the same); anything else is an internal
/// error.
fn sql_err(e: rusqlite::Error) -> MosaicError {
    use rusqlite::ErrorCode as C;
    let unique = matches!(
        &e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    );
    if e.to_string().contains(crate::transfer::FROZEN_MARK) {
        return crate::transfer::moving_error();
    }
    match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => MosaicError::new(
            mosaic_types::ErrorCode::UNABLE_TO_LOCK_ROW,
            format!("sqlite: {e}"),
        ),
        _ if unique => MosaicError::new(
            mosaic_types::ErrorCode::DUPLICATE_VALUE,
            format!("duplicate value (sqlite: {e})"),
        ),
        _ => MosaicError::internal(format!("sqlite: {e}")),
    }
}

pub(crate) fn map_sql(e: rusqlite::Error) -> MosaicError {
    sql_err(e)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -32000)?;
    conn.set_prepared_statement_cache_capacity(256);
    crate::sqlite_query::register_functions(conn)?;
    Ok(())
}

impl SqliteDb {
    /// Opens (creating if needed) the database at `path`, applies `schema`
    /// (idempotent DDL) and starts the writer thread.
    pub fn open(path: &Path, schema: &str) -> MosaicResult<Arc<SqliteDb>> {
        let wconn = Connection::open(path).map_err(sql_err)?;
        wconn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err)?;
        configure(&wconn).map_err(sql_err)?;
        wconn.execute_batch(schema).map_err(sql_err)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sql_err)?;
            configure(&c).map_err(sql_err)?;
            readers.push(c);
        }
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let stats = Arc::new(WriterStats::default());
        let wstats = stats.clone();
        let name = format!(
            "sqlite-writer-{}",
            path.file_name().and_then(|s| s.to_str()).unwrap_or("db")
        );
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn({
                let label = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("db")
                    .to_string();
                move || writer_loop(wconn, rx, wstats, label)
            })
            .map_err(|e| MosaicError::internal(format!("spawn writer: {e}")))?;
        Ok(Arc::new(SqliteDb {
            label: path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("db")
                .to_string(),
            path: path.to_path_buf(),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            readers: Mutex::new(readers),
            reader_permits: Semaphore::new(READERS),
            stats,
            guard: OnceLock::new(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Installs the guard every later read and write asks first; a second
    /// guard is refused (returns false).
    pub fn set_guard(&self, guard: Arc<dyn CallGuard>) -> bool {
        self.guard.set(guard).is_ok()
    }

    /// The metrics label of this database (its file stem).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The reader pool: (connections, connections checked out now).
    pub fn pool_usage(&self) -> (usize, usize) {
        let idle = self.reader_permits.available_permits().min(READERS);
        (READERS, READERS - idle)
    }

    /// Publishes the reader pool's gauges; called at every checkout and
    /// return, so the last value set is at most one read behind.
    fn publish_pool_usage(&self) {
        let (size, in_use) = self.pool_usage();
        metrics::gauge!("store_pool_connections", "db" => self.label.clone(), "state" => "in_use")
            .set(in_use as f64);
        metrics::gauge!("store_pool_connections", "db" => self.label.clone(), "state" => "idle")
            .set((size - in_use) as f64);
    }

    /// Runs `f` inside the writer's transaction (in its own savepoint) and
    /// answers after the commit is durable.
    pub async fn write<T, F>(&self, f: F) -> MosaicResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> MosaicResult<T> + Send + 'static,
    {
        let admitted = Admitted::ask(self.guard.get())?;
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(ClosureJob {
            f: Some(f),
            result: None,
            reply,
        });
        {
            let guard = self
                .tx
                .lock()
                .map_err(|_| MosaicError::internal("writer lock"))?;
            let tx = guard
                .as_ref()
                .ok_or_else(|| MosaicError::unavailable("the database is shutting down"))?;
            tx.send(job)
                .map_err(|_| MosaicError::unavailable("the database writer has stopped"))?;
        }
        let queued = std::time::Instant::now();
        async move {
            let r = rx
                .await
                .map_err(|_| MosaicError::internal("the database writer dropped a job"))?;
            tracing::debug!(
                micros = queued.elapsed().as_micros() as u64,
                ok = r.is_ok(),
                "write"
            );
            admitted.finish(r)
        }
        .instrument(tracing::info_span!("store.write", db = %self.label))
        .await
    }

    /// Runs `f` on a pooled read-only connection on the blocking pool.
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> MosaicResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> MosaicResult<T> + Send + 'static,
    {
        let span = tracing::info_span!("store.read", db = %self.label);
        let admitted = Admitted::ask(self.guard.get())?;
        let permit = self
            .reader_permits
            .acquire()
            .await
            .map_err(|_| MosaicError::unavailable("reader pool closed"))?;
        self.publish_pool_usage();
        let this = self.clone();
        let started = std::time::Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let conn = {
                let mut pool = this
                    .readers
                    .lock()
                    .map_err(|_| MosaicError::internal("reader pool lock"))?;
                pool.pop()
                    .ok_or_else(|| MosaicError::internal("reader pool empty"))?
            };
            let ran = std::time::Instant::now();
            let r = f(&conn);
            if let Ok(mut pool) = this.readers.lock() {
                pool.push(conn);
            }
            tracing::debug!(
                micros = ran.elapsed().as_micros() as u64,
                ok = r.is_ok(),
                "read"
            );
            r
        })
        .await
        .map_err(|e| MosaicError::internal(format!("read task: {e}")))?;
        drop(permit);
        self.publish_pool_usage();
        metrics::histogram!("store_read_seconds", "db" => self.label.clone())
            .record(started.elapsed().as_secs_f64());
        admitted.finish(out)
    }

    /// Stops accepting writes, lets the writer finish everything queued, and
    /// waits for it. Called on graceful shutdown.
    pub fn close(&self) {
        if let Ok(mut g) = self.tx.lock() {
            g.take();
        }
        if let Ok(mut w) = self.writer.lock() {
            if let Some(h) = w.take() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for SqliteDb {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_loop(
    conn: Connection,
    rx: std::sync::mpsc::Receiver<Job>,
    stats: Arc<WriterStats>,
    label: String,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP_COMMIT {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let committed = run_batch(&conn, &mut batch);
        // Looked up per batch (not cached) so that a recorder installed
        // after the database opened still receives them.
        metrics::histogram!("store_commit_seconds", "db" => label.clone())
            .record(started.elapsed().as_secs_f64());
        metrics::histogram!("store_group_commit_jobs", "db" => label.clone())
            .record(batch.len() as f64);
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        stats.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics::counter!("store_transactions_total", "db" => label.clone()).increment(1);
        metrics::counter!("store_writes_total", "db" => label.clone())
            .increment(batch.len() as u64);
        for job in batch {
            job.finish(committed.clone());
        }
    }
}

fn run_batch(conn: &Connection, batch: &mut [Job]) -> Result<(), MosaicError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_err)?;
    for job in batch.iter_mut() {
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(sql_err(e));
        }
        let ok = job.run(conn);
        let end = if ok {
            conn.execute_batch("RELEASE job")
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = end {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(sql_err(e));
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(sql_err(e))
        }
    }
}

/// Runs `f` inside a nested savepoint on `conn`: rolled back alone on error.
pub(crate) fn savepoint<T>(
    conn: &Connection,
    f: impl FnOnce() -> MosaicResult<T>,
) -> MosaicResult<T> {
    conn.execute_batch("SAVEPOINT op").map_err(sql_err)?;
    match f() {
        Ok(v) => {
            conn.execute_batch("RELEASE op").map_err(sql_err)?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO op; RELEASE op")
                .map_err(sql_err)?;
            Err(e)
        }
    }
}
