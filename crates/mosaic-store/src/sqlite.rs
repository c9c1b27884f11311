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
/// SQLite virtual-machine steps between two looks at a reader's deadline
/// (a look is one clock read: cheap at this spacing, and a runaway
/// statement is stopped within about a millisecond of its deadline).
pub const DEADLINE_CHECK_STEPS: i32 = 4_000;

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
        // A panicking job fails alone: its savepoint is rolled back and
        // its caller answered, and the writer keeps serving the others.
        let r = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn))) {
            Ok(r) => r,
            Err(panic) => {
                let what = panic_text(panic.as_ref());
                tracing::error!(panic = %what, "a write job panicked; rolled back alone");
                metrics::counter!("store_write_panics_total").increment(1);
                Err(MosaicError::internal(format!("the write failed: {what}")))
            }
        };
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

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
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
        Some(C::OperationInterrupted) => crate::deadline::timed_out(),
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
                let path = path.to_path_buf();
                move || writer_loop(wconn, rx, wstats, label, path)
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
        // The statement stops at the request's deadline, or as soon as the
        // caller goes away (its future dropped): the reader is freed for
        // the next request instead of finishing work nobody waits for.
        let deadline = crate::deadline::statement_deadline();
        let abandoned = AbandonFlag::default();
        let gone = abandoned.0.clone();
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
            conn.progress_handler(
                DEADLINE_CHECK_STEPS,
                Some(move || gone.load(Ordering::Relaxed) || std::time::Instant::now() >= deadline),
            );
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&conn)))
                .unwrap_or_else(|panic| {
                    Err(MosaicError::internal(format!(
                        "the read failed: {}",
                        panic_text(panic.as_ref())
                    )))
                });
            conn.progress_handler(0, None::<fn() -> bool>);
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
        abandoned.finished();
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

/// Set when a read's caller drops its future before the answer: the
/// reader's progress handler then interrupts the statement.
#[derive(Default)]
struct AbandonFlag(Arc<std::sync::atomic::AtomicBool>, bool);

impl AbandonFlag {
    fn finished(mut self) {
        self.1 = true;
    }
}

impl Drop for AbandonFlag {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for SqliteDb {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: std::sync::mpsc::Receiver<Job>,
    stats: Arc<WriterStats>,
    label: String,
    path: PathBuf,
) {
    crate::commit_clock::install(&conn, &path);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP_COMMIT {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        // Jobs catch their own panics; this catches the writer's, so that
        // the thread survives whatever happens and fails only this batch.
        let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_batch(&conn, &mut batch)
        }))
        .unwrap_or_else(|panic| {
            Err(MosaicError::internal(format!(
                "the write transaction failed: {}",
                panic_text(panic.as_ref())
            )))
        });
        if committed.is_err() || !conn.is_autocommit() {
            conn = recovered(conn, &path, &label);
            crate::commit_clock::install(&conn, &path);
        }
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

/// The writer's connection after a failed transaction: rolled back to a
/// clean state, or — when it no longer answers — reopened, so that one bad
/// transaction never leaves the database refusing writes until a restart.
fn recovered(conn: Connection, path: &Path, label: &str) -> Connection {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let healthy = conn.is_autocommit()
        && conn
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
            .is_ok();
    if healthy {
        return conn;
    }
    tracing::error!(db = %label, "the writer's connection is broken; reopening it");
    metrics::counter!("store_writer_reopened_total", "db" => label.to_string()).increment(1);
    match Connection::open(path).and_then(|c| configure(&c).map(|()| c)) {
        Ok(fresh) => fresh,
        Err(e) => {
            tracing::error!(db = %label, error = %e, "reopening the writer's connection failed");
            conn
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

#[cfg(test)]
mod tests {
    use super::*;
    use mosaic_types::ErrorCode;
    use std::time::Instant;

    /// Never ends by itself: counts an endless recursive sequence.
    const ENDLESS: &str =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    /// Longest a test waits for an answer that should come at once.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn open() -> (tempfile::TempDir, Arc<SqliteDb>) {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteDb::open(
            &dir.path().join("t.sqlite"),
            "CREATE TABLE IF NOT EXISTS t (x INTEGER NOT NULL);",
        )
        .unwrap();
        (dir, db)
    }

    async fn insert(db: &SqliteDb, x: i64) -> MosaicResult<()> {
        db.write(move |c| {
            c.execute("INSERT INTO t (x) VALUES (?1)", [x])
                .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn values(db: &Arc<SqliteDb>) -> Vec<i64> {
        db.read(|c| {
            let mut st = c.prepare("SELECT x FROM t ORDER BY x").map_err(sql_err)?;
            let rows = st
                .query_map([], |r| r.get::<_, i64>(0))
                .map_err(sql_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql_err)?;
            Ok(rows)
        })
        .await
        .unwrap()
    }

    fn endless(c: &Connection) -> MosaicResult<i64> {
        c.query_row(ENDLESS, [], |r| r.get(0)).map_err(sql_err)
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_keeps_serving() {
        let (_dir, db) = open();
        // Jobs queued together share one transaction: the panicking one
        // is rolled back alone, the others commit.
        let before = insert(&db, 1);
        let bad = db.write(|c: &Connection| -> MosaicResult<()> {
            c.execute("INSERT INTO t (x) VALUES (99)", [])
                .map_err(sql_err)?;
            panic!("a write job that panics");
        });
        let after = insert(&db, 2);
        let (before, bad, after) = tokio::join!(before, bad, after);
        before.unwrap();
        after.unwrap();
        let e = bad.unwrap_err();
        assert_eq!(e.code, ErrorCode::UNKNOWN_EXCEPTION);
        assert!(e.message.contains("a write job that panics"), "{e}");
        // The writer still serves every later write.
        for x in 3..6 {
            tokio::time::timeout(PATIENCE, insert(&db, x))
                .await
                .expect("the writer answers after a panic")
                .unwrap();
        }
        assert_eq!(values(&db).await, vec![1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn a_broken_transaction_is_rolled_back_and_the_writer_recovers() {
        let (_dir, db) = open();
        // A job that ends the writer's transaction under it: the batch
        // fails, the connection is put back in order, later writes commit.
        let r = db
            .write(|c| {
                c.execute_batch("ROLLBACK").map_err(sql_err)?;
                Ok(())
            })
            .await;
        assert!(r.is_err());
        insert(&db, 7).await.unwrap();
        assert_eq!(values(&db).await, vec![7]);
    }

    #[tokio::test]
    async fn a_read_past_its_deadline_is_interrupted() {
        let (_dir, db) = open();
        let deadline = Instant::now() + Duration::from_millis(50);
        let r = tokio::time::timeout(PATIENCE, crate::deadline::scope(deadline, db.read(endless)))
            .await
            .expect("the statement is stopped at its deadline");
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::REQUEST_RUNNING_TOO_LONG, "{e}");
        // The reader went back to the pool, usable.
        assert_eq!(db.pool_usage().1, 0);
        assert!(values(&db).await.is_empty());
    }

    #[tokio::test]
    async fn abandoned_reads_free_their_readers_at_once() {
        let (_dir, db) = open();
        insert(&db, 1).await.unwrap();
        // Every reader takes an endless statement whose caller gives up;
        // no request deadline is in scope, so only the abandonment stops it.
        for _ in 0..READERS {
            let gave_up = tokio::time::timeout(Duration::from_millis(20), db.read(endless)).await;
            assert!(gave_up.is_err());
        }
        let next = tokio::time::timeout(PATIENCE, values(&db))
            .await
            .expect("a reader is free for the next request");
        assert_eq!(next, vec![1]);
    }
}
