//! Scratch databases: a PostgreSQL database created for one test run (or a
//! trial) and dropped — `WITH (FORCE)`, closing connections left open — when
//! its guard goes out of scope, whether the run passed or panicked.
//!
//! The admin connection is `MOSAIC_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`; `scripts/services`
//! starts PostgreSQL there).

use mosaic_types::{MosaicError, MosaicResult};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

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

async fn admin_client() -> MosaicResult<tokio_postgres::Client> {
    let url = admin_url();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            MosaicError::unavailable(format!(
                "PostgreSQL is not reachable at {url} ({e}); run scripts/services first"
            ))
        })?;
    tokio::spawn(conn);
    Ok(client)
}

/// Whether a database of this name exists.
pub async fn database_exists(name: &str) -> MosaicResult<bool> {
    Ok(admin_client()
        .await?
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(|e| MosaicError::internal(e.to_string()))?
        .is_some())
}

/// A database dropped when this guard goes out of scope.
pub struct ScratchDatabase {
    pub name: String,
    pub url: String,
}

impl ScratchDatabase {
    pub async fn create() -> MosaicResult<ScratchDatabase> {
        // Only hex digits: safe to splice into the DDL (database names
        // cannot be bound parameters).
        let name = format!("mosaic_test_{}", mosaic_types::new_id().replace('-', ""));
        let client = admin_client().await?;
        // A linguistic default collation (ICU, English), where `_`, `.`,
        // `-` and accented letters sort differently from bytes: the stores
        // must still order rows as the embedded backend does. Plain
        // `CREATE DATABASE` where the server has no ICU.
        let icu = format!(
            "CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        );
        if client.batch_execute(&icu).await.is_err() {
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .map_err(|e| MosaicError::internal(format!("create database {name}: {e}")))?;
        }
        Ok(ScratchDatabase {
            url: with_database(&admin_url(), &name),
            name,
        })
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a runtime, which cannot be blocked on: a
        // short-lived thread with its own runtime drops the database.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
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
            eprintln!("could not drop scratch database {}: {e}", self.name);
        }
    }
}
