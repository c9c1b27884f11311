//! The connection pool of one PostgreSQL database, the mapping of its errors
//! to [`MosaicError`], and the transaction runner every write goes through.
//!
//! Writes run `SERIALIZABLE` and are retried on serialization failures and
//! deadlocks ([`MAX_TX_RETRIES`] times): each store method then behaves as if
//! it ran alone, as it does on SQLite's single writer, so check-then-write
//! code (a taken name, a role moved under its own subordinate) needs no
//! extra locking and reports the same errors. Reads are single autocommit
//! statements or a `REPEATABLE READ READ ONLY` transaction when they take
//! several statements.

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use mosaic_store::guard::{Admitted, CallGuard};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// A starting pool size for one instance's metadata database: writes are
/// rare and most reads are served by caches, so a few connections serve
/// many requests (instances × pool size must stay under `max_connections`).
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Largest pool a store accepts (connections are a server resource shared by
/// every `mosaic serve` instance; PostgreSQL's default `max_connections` is 100).
pub const MAX_POOL_SIZE: usize = 256;
/// How long a request waits for a free pooled connection before the store
/// reports the database unavailable.
pub const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long opening one connection may take (unless the URL says otherwise).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries of a write transaction after a serialization failure or deadlock.
pub const MAX_TX_RETRIES: u32 = 8;
/// First back-off before a retried transaction; doubles per retry.
const RETRY_BASE: Duration = Duration::from_millis(2);

/// A pooled PostgreSQL database. Cloning shares the pool.
#[derive(Clone)]
pub struct PgPool {
    pool: Pool,
    /// The TLS setup of the pool's connections, for cancel requests.
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// Asked before every connection is handed out (the platform installs
    /// the database's circuit breaker); shared by every clone of the pool.
    guard: std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<dyn CallGuard>>>>,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.pool.status();
        f.debug_struct("PgPool")
            .field("max_size", &s.max_size)
            .field("size", &s.size)
            .field("available", &s.available)
            .finish()
    }
}

impl PgPool {
    /// A pool of at most `pool_size` connections to `url`
    /// (`postgres://user@host:port/db?…`). Connections open lazily; call
    /// [`PgPool::check`] to fail fast. A bad URL → `INVALID_INPUT`.
    pub fn new(url: &str, pool_size: usize) -> MosaicResult<PgPool> {
        if pool_size == 0 || pool_size > MAX_POOL_SIZE {
            return Err(MosaicError::invalid(format!(
                "the PostgreSQL pool size must be between 1 and {MAX_POOL_SIZE}, not {pool_size}"
            )));
        }
        let (url, tls) = crate::tls::split_url(url)?;
        let mut config = tokio_postgres::Config::from_str(&url)
            .map_err(|e| MosaicError::invalid(format!("invalid PostgreSQL connection URL: {e}")))?;
        let connector = crate::tls::configure(&mut config, &tls)?;
        // Every statement is bounded even outside a request (delivery
        // workers, maintenance); a request's shorter deadline is set per
        // transaction and enforced by cancellation (`PgClient`).
        if !config
            .get_options()
            .is_some_and(|o| o.contains("statement_timeout"))
        {
            let bound = format!(
                "-c statement_timeout={}",
                mosaic_types::timeouts::DB_STATEMENT_TIMEOUT.as_millis()
            );
            let options = match config.get_options() {
                Some(o) if !o.trim().is_empty() => format!("{o} {bound}"),
                _ => bound,
            };
            config.options(&options);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("mosaic");
        }
        let manager = Manager::from_config(
            config,
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| MosaicError::internal(format!("postgres pool: {e}")))?;
        Ok(PgPool {
            pool,
            tls: connector,
            guard: Default::default(),
        })
    }

    /// A connection from the pool; an unreachable database → `SERVICE_UNAVAILABLE`.
    /// The guard, when one is installed, is asked first and told whether a
    /// connection could be had.
    pub async fn client(&self) -> MosaicResult<PgClient> {
        let guard = self.guard.read().ok().and_then(|g| g.clone());
        let admitted = Admitted::ask(guard.as_ref())?;
        let object = admitted.finish(self.pool.get().await.map_err(map_pool))?;
        Ok(PgClient {
            object: Some(object),
            tls: self.tls.clone(),
            settled: false,
        })
    }

    /// Installs the guard every later connection request asks.
    pub fn set_guard(&self, guard: std::sync::Arc<dyn CallGuard>) {
        if let Ok(mut g) = self.guard.write() {
            *g = Some(guard);
        }
    }

    /// Opens (or reuses) one connection and runs a trivial statement.
    pub async fn check(&self) -> MosaicResult<()> {
        let mut client = self.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| map_pg(&e))?;
        client.settle();
        Ok(())
    }

    /// Connections open and idle right now, and the pool's bound.
    pub fn usage(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size, s.available, s.max_size)
    }

    /// Closes the pool: every later call fails with `SERVICE_UNAVAILABLE`.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// A pooled connection that stops its statement when its user goes away.
/// Dropped before [`PgClient::settle`] (the request's future was dropped at
/// its deadline or the client hung up, possibly mid-statement), it sends
/// the server a cancel request for whatever runs on it and leaves the
/// pool, so the statement stops and the connection is never handed to
/// the next request with work still running on it.
pub struct PgClient {
    object: Option<deadpool_postgres::Object>,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    settled: bool,
}

impl PgClient {
    /// Marks the connection idle (every statement on it answered): dropped
    /// after this it returns to the pool.
    pub fn settle(&mut self) {
        self.settled = true;
    }
}

impl std::ops::Deref for PgClient {
    type Target = deadpool_postgres::Object;
    fn deref(&self) -> &Self::Target {
        self.object
            .as_ref()
            .expect("a PgClient holds its connection until dropped")
    }
}

impl std::ops::DerefMut for PgClient {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.object
            .as_mut()
            .expect("a PgClient holds its connection until dropped")
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        let Some(object) = self.object.take() else {
            return;
        };
        if self.settled {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let token = object.cancel_token();
        let tls = self.tls.clone();
        // Out of the pool: closed once the cancel request has gone out.
        let detached = deadpool_postgres::Object::take(object);
        runtime.spawn(async move {
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, token.cancel_query(tls)).await;
            drop(detached);
        });
    }
}

fn map_pool(e: PoolError) -> MosaicError {
    match e {
        // Opening a connection failed (unreachable server, refused login,
        // missing database): nothing can be served until it opens again.
        PoolError::Backend(e) => {
            MosaicError::unavailable(format!("postgres: cannot connect: {}", describe(&e)))
        }
        PoolError::Timeout(t) => {
            MosaicError::unavailable(format!("postgres: no connection available ({t:?} timeout)"))
        }
        PoolError::Closed => MosaicError::unavailable("postgres: the connection pool is closed"),
        other => MosaicError::internal(format!("postgres pool: {other}")),
    }
}

/// True when `e` says the database cannot be reached or cannot take work
/// right now (the server answers 503 and the client retries later).
fn is_unavailable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        return code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || *code == SqlState::READ_ONLY_SQL_TRANSACTION
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            || *code == SqlState::INVALID_PASSWORD;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    // The driver's connect / authentication / timeout kinds have no public
    // accessor; their texts are fixed.
    matches!(
        e.to_string().as_str(),
        "error connecting to server" | "timeout waiting for server" | "authentication error"
    )
}

/// Maps a driver error to the error code the SQLite backend would report;
/// a lost or refused connection is `SERVICE_UNAVAILABLE`.
pub fn map_pg(e: &tokio_postgres::Error) -> MosaicError {
    if is_unavailable(e) {
        return MosaicError::unavailable(format!("postgres: {}", describe(e)));
    }
    if let Some(db) = e.as_db_error() {
        if db.code().code() == mosaic_store::transfer::FROZEN_SQLSTATE {
            return mosaic_store::transfer::moving_error();
        }
        if *db.code() == SqlState::QUERY_CANCELED {
            // `statement_timeout` (the request's deadline) or a cancel
            // request sent for a request that went away.
            return mosaic_store::deadline::timed_out();
        }
        if *db.code() == SqlState::UNIQUE_VIOLATION {
            // The stores check names before inserting, so this is a race
            // lost outside a serializable transaction; same code as a check.
            return MosaicError::new(
                ErrorCode::DUPLICATE_VALUE,
                format!(
                    "duplicate value ({})",
                    db.constraint().unwrap_or("unique constraint")
                ),
            );
        }
    }
    MosaicError::internal(format!("postgres: {}", describe(e)))
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

/// What a step of a store method can fail with: a driver error (which may
/// be worth retrying) or a domain error decided by the method itself.
#[derive(Debug)]
pub(crate) enum TxError {
    Pg(tokio_postgres::Error),
    Mosaic(MosaicError),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        TxError::Pg(e)
    }
}

impl From<MosaicError> for TxError {
    fn from(e: MosaicError) -> Self {
        TxError::Mosaic(e)
    }
}

impl TxError {
    /// A serialization failure or deadlock: the transaction did nothing and
    /// may run again.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            TxError::Pg(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
            ),
            TxError::Mosaic(_) => false,
        }
    }

    pub(crate) fn into_mosaic(self) -> MosaicError {
        match self {
            TxError::Pg(e) => map_pg(&e),
            TxError::Mosaic(e) => e,
        }
    }

    /// The error to report when every retry failed.
    pub(crate) fn exhausted(self) -> MosaicError {
        match self {
            TxError::Pg(e) => MosaicError::unavailable(format!(
                "postgres: the transaction kept conflicting with concurrent changes ({}); try again",
                describe(&e)
            )),
            TxError::Mosaic(e) => e,
        }
    }
}

pub(crate) type Step<T> = Result<T, TxError>;

/// Back-off before retry `attempt` (1-based): doubling, with jitter so that
/// transactions that conflicted once do not collide again in lockstep.
pub(crate) fn retry_delay(attempt: u32) -> Duration {
    let base = RETRY_BASE * (1u32 << attempt.min(6));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    base + Duration::from_micros(u64::from(nanos % 1000) * base.as_micros() as u64 / 1000)
}

/// One transaction on a pooled connection: started from the builder
/// `$builder` makes of `$client`, bounded by the request's deadline,
/// `$body` run with `$tx` naming it, committed; the connection settled
/// (back to the pool) whether the body succeeded or not. Evaluates to a
/// [`Step`].
macro_rules! in_transaction {
    ($pool:expr, |$client:ident| $builder:expr, |$tx:ident| $body:expr) => {{
        let mut $client = $pool.client().await?;
        let outcome: $crate::pool::Step<_> = async {
            let transaction = $builder.start().await?;
            $crate::pool::bound_statements(&transaction).await?;
            let value = {
                let $tx = &transaction;
                let step: $crate::pool::Step<_> = async { $body }.await;
                step?
            };
            transaction.commit().await?;
            Ok(value)
        }
        .await;
        $client.settle();
        outcome
    }};
}

/// Runs `$body` in a transaction of isolation `$level` on a pooled
/// connection and commits it; retries the whole transaction on a
/// serialization failure or deadlock. `$tx` names a
/// `&deadpool_postgres::Transaction` inside the body, which evaluates to a
/// [`Step`]. The body may run several times, so it must not move what it
/// captures.
macro_rules! retried_tx {
    ($level:expr, $pool:expr, |$tx:ident| $body:expr) => {{
        let mut attempt: u32 = 0;
        loop {
            let outcome: $crate::pool::Step<_> = async {
                $crate::pool::in_transaction!(
                    $pool,
                    |client| client.build_transaction().isolation_level($level),
                    |$tx| $body
                )
            }
            .await;
            match outcome {
                Ok(v) => break Ok(v),
                Err(e) if e.is_retryable() => {
                    attempt += 1;
                    if attempt > $crate::pool::MAX_TX_RETRIES {
                        break Err(e.exhausted());
                    }
                    tokio::time::sleep($crate::pool::retry_delay(attempt)).await;
                }
                Err(e) => break Err(e.into_mosaic()),
            }
        }
    }};
}

/// A `SERIALIZABLE` write (metadata, access, idempotency): each method
/// behaves as if it ran alone, as on SQLite's single writer.
macro_rules! write_tx {
    ($pool:expr, |$tx:ident| $body:expr) => {
        $crate::pool::retried_tx!(tokio_postgres::IsolationLevel::Serializable, $pool, |$tx| {
            $body
        })
    };
}

/// A `READ COMMITTED` write. Record writes on a shard use it: they are
/// frequent, and the few races that matter are closed by row locks (`FOR
/// UPDATE` on a record being deleted, `FOR KEY SHARE` on a record a lookup
/// points at), the auto-number counter's row lock and the primary keys of
/// the pivot tables, so they need no serializable snapshot.
macro_rules! shard_tx {
    ($pool:expr, |$tx:ident| $body:expr) => {
        $crate::pool::retried_tx!(
            tokio_postgres::IsolationLevel::ReadCommitted,
            $pool,
            |$tx| $body
        )
    };
}

/// Runs `$body` in a `REPEATABLE READ READ ONLY` transaction (one snapshot
/// for a read that takes several statements).
macro_rules! read_tx {
    ($pool:expr, |$tx:ident| $body:expr) => {{
        let outcome: $crate::pool::Step<_> = async {
            $crate::pool::in_transaction!(
                $pool,
                |client| client
                    .build_transaction()
                    .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                    .read_only(true),
                |$tx| $body
            )
        }
        .await;
        outcome.map_err($crate::pool::TxError::into_mosaic)
    }};
}

/// Runs `$body` with a pooled connection named `$client` (autocommit).
macro_rules! with_client {
    ($pool:expr, |$client:ident| $body:expr) => {{
        let outcome: $crate::pool::Step<_> = async {
            let mut held = $pool.client().await?;
            let step: $crate::pool::Step<_> = {
                let $client: &deadpool_postgres::Object = &held;
                async { $body }.await
            };
            held.settle();
            step
        }
        .await;
        outcome.map_err($crate::pool::TxError::into_mosaic)
    }};
}

pub(crate) use {in_transaction, read_tx, retried_tx, shard_tx, with_client, write_tx};

/// Bounds every statement of `tx` by the request's deadline (`SET LOCAL
/// statement_timeout`, at most the connection's own bound); a deadline
/// already passed fails at once.
pub(crate) async fn bound_statements(tx: &deadpool_postgres::Transaction<'_>) -> Step<()> {
    if mosaic_store::deadline::current().is_none() {
        return Ok(());
    }
    let left = mosaic_store::deadline::remaining().as_millis();
    if left == 0 {
        return Err(TxError::Mosaic(mosaic_store::deadline::timed_out()));
    }
    tx.batch_execute(&format!("SET LOCAL statement_timeout = {left}"))
        .await?;
    Ok(())
}

/// A time as the stores keep it: millisecond precision, like the canonical
/// text the SQLite backend stores, so both return identical values.
pub(crate) fn millis(t: &chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A read-only transaction that sleeps `secs` on the server.
    async fn sleep_in_transaction(pool: &PgPool, secs: f64) -> MosaicResult<()> {
        read_tx!(pool, |tx| {
            tx.execute("SELECT pg_sleep($1)", &[&secs]).await?;
            Ok(())
        })
    }

    #[tokio::test]
    async fn a_transaction_past_the_request_deadline_is_stopped() {
        let db = crate::scratch::ScratchDatabase::create().await.unwrap();
        let pool = PgPool::new(&db.url, 2).unwrap();
        let deadline = Instant::now() + Duration::from_millis(300);
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            mosaic_store::deadline::scope(deadline, sleep_in_transaction(&pool, 60.0)),
        )
        .await
        .expect("stopped by statement_timeout");
        let e = r.unwrap_err();
        assert_eq!(e.code, ErrorCode::REQUEST_RUNNING_TOO_LONG, "{e}");
        // A deadline already passed fails before any statement runs.
        let gone = Instant::now() - Duration::from_millis(1);
        let e = mosaic_store::deadline::scope(gone, sleep_in_transaction(&pool, 0.0))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::REQUEST_RUNNING_TOO_LONG, "{e}");
        // Outside a request: no shorter bound than the connection's.
        sleep_in_transaction(&pool, 0.01).await.unwrap();
        pool.close();
    }
}
