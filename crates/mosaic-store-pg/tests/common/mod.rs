//! Test harness: the stores of one backend, opened fresh for one test.
//! SQLite stores live in a temporary directory; PostgreSQL stores in a
//! database created for the test (`mosaic_test_<random>`) and dropped when
//! the test ends, whether it passed or panicked.
//!
//! The admin connection comes from `MOSAIC_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); `scripts/services` starts
//! PostgreSQL there.

#![allow(dead_code)]

use mosaic_store::{
    AccessStore, IdempotencyStore, MetaStore, SqliteAccessStore, SqliteDb, SqliteIdempotencyStore,
    SqliteMetaStore,
};
use mosaic_store_pg::{PgAccessStore, PgIdempotencyStore, PgMetaStore};
use std::sync::Arc;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Connections per store in tests (small: many test databases exist at once).
pub const TEST_POOL_SIZE: usize = 4;

pub fn admin_url() -> String {
    std::env::var("MOSAIC_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(i) => &base[..authority_start + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

async fn admin_client() -> tokio_postgres::Client {
    let url = admin_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable at {url} ({e}); run scripts/services first")
        });
    tokio::spawn(conn);
    client
}

/// A database that exists for one test and is dropped (`WITH (FORCE)`,
/// closing any connection left open) when this guard goes out of scope.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        // Only hex digits: the name is safe to splice into the DDL (database
        // names cannot be bound parameters).
        let name = format!("mosaic_test_{}", mosaic_types::new_id().replace('-', ""));
        let client = admin_client().await;
        // A linguistic default collation (ICU, English), where `_`, `.`,
        // `-` and accented letters sort differently from bytes: the stores
        // must still list rows in SQLite's byte order. Plain `CREATE
        // DATABASE` where the server has no ICU.
        let icu = format!(
            "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        );
        if client.batch_execute(&icu).await.is_err() {
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create the test database");
        }
        TestDatabase {
            url: with_database(&admin_url(), &name),
            name,
        }
    }
}

/// Whether a database of this name exists (asked on the admin connection).
pub async fn database_exists(name: &str) -> bool {
    admin_client()
        .await
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("query pg_database")
        .is_some()
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on:
        // a short-lived thread with its own runtime drops the database.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
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
    let db = TestDatabase::create().await;
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
    let db = TestDatabase::create().await;
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
