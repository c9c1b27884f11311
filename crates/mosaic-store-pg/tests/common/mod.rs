//! Test harness: the stores of one backend, opened fresh for one test.
//! SQLite stores live in a temporary directory; PostgreSQL stores in a
//! database created for the test (`mosaic_test_<random>`) and dropped when
//! the test ends, whether it passed or panicked.
//!
//! The admin connection comes from `MOSAIC_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); `scripts/services` starts
//! PostgreSQL there.

#![allow(dead_code, unused_imports)]

use mosaic_store::{
    AccessStore, IdempotencyStore, MetaStore, SqliteAccessStore, SqliteDb, SqliteIdempotencyStore,
    SqliteMetaStore,
};
use mosaic_store_pg::{PgAccessStore, PgIdempotencyStore, PgMetaStore};
use std::sync::Arc;

pub use mosaic_store_pg::scratch::{admin_url, with_database, DEFAULT_ADMIN_URL};
/// Connections per store in tests (small: many test databases exist at once).
pub const TEST_POOL_SIZE: usize = 4;

pub type TestDatabase = mosaic_store_pg::scratch::ScratchDatabase;

/// A fresh database for one test.
pub async fn test_database() -> TestDatabase {
    TestDatabase::create()
        .await
        .expect("create the test database")
}

/// Whether a database of this name exists (asked on the admin connection).
pub async fn database_exists(name: &str) -> bool {
    mosaic_store_pg::scratch::database_exists(name)
        .await
        .expect("query pg_database")
}

/// Where a set of stores lives, kept alive as long as the stores.
pub enum Home {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
}

/// The stores of one backend.
pub struct Stores {
    pub backend: &'static str,
    pub meta: Arc<dyn MetaStore>,
    pub access: Arc<dyn AccessStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub home: Home,
}

pub async fn sqlite() -> Stores {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = SqliteMetaStore::open(&dir.path().join("metadata.sqlite")).expect("open metadata");
    let access = SqliteAccessStore::new(meta.db().clone());
    let records = SqliteDb::open(&dir.path().join("records.sqlite"), "").expect("open records");
    let idempotency = SqliteIdempotencyStore::open(records).expect("idempotency schema");
    Stores {
        backend: "sqlite",
        meta: Arc::new(meta),
        access: Arc::new(access),
        idempotency: Arc::new(idempotency),
        home: Home::Sqlite(dir),
    }
}

pub async fn postgres() -> Stores {
    let db = test_database().await;
    let meta = PgMetaStore::connect(&db.url, TEST_POOL_SIZE)
        .await
        .expect("connect the metadata store");
    let access = PgAccessStore::new(meta.pool().clone());
    // The records database is the same test database here: the key table
    // does not depend on anything else.
    let idempotency = PgIdempotencyStore::connect(&db.url, TEST_POOL_SIZE)
        .await
        .expect("connect the idempotency store");
    Stores {
        backend: "postgres",
        meta: Arc::new(meta),
        access: Arc::new(access),
        idempotency: Arc::new(idempotency),
        home: Home::Postgres(db),
    }
}

// ---------- records shards ----------

/// The record-side stores of one shard (one object implements them all).
pub struct Shard {
    pub backend: &'static str,
    pub records: Arc<dyn mosaic_store::RecordStore>,
    pub queries: Arc<dyn mosaic_store::QueryStore>,
    pub automation: Arc<dyn mosaic_store::AutomationStore>,
    pub shares: Arc<dyn mosaic_store::ShareStore>,
    pub home: Home,
}

pub async fn sqlite_shard() -> Shard {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        mosaic_store::SqliteRecordStore::open(&dir.path().join("records.sqlite"))
            .expect("open the shard"),
    );
    Shard {
        backend: "sqlite",
        records: store.clone(),
        queries: store.clone(),
        automation: store.clone(),
        shares: store,
        home: Home::Sqlite(dir),
    }
}

pub async fn postgres_shard() -> Shard {
    let db = test_database().await;
    let store = Arc::new(
        mosaic_store_pg::PgRecordStore::connect(&db.url, TEST_POOL_SIZE)
            .await
            .expect("connect the shard"),
    );
    Shard {
        backend: "postgres",
        records: store.clone(),
        queries: store.clone(),
        automation: store.clone(),
        shares: store,
        home: Home::Postgres(db),
    }
}
