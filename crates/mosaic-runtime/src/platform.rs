//! The platform: stores opened from configuration, and the services built
//! on them. One per process; shared by every request.

use crate::cipher::FieldCipher;
use mosaic_access::{AccessService, AuthService};
use mosaic_meta::MetadataService;
use mosaic_store::{
    AccessStore, MetaStore, RecordStore, SqliteAccessStore, SqliteMetaStore, SqliteRecordStore,
};
use mosaic_types::{MosaicError, MosaicResult};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub data_dir: PathBuf,
    pub token_ttl: Duration,
}

impl PlatformConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> PlatformConfig {
        PlatformConfig {
            data_dir: data_dir.into(),
            token_ttl: mosaic_access::service::DEFAULT_TOKEN_TTL,
        }
    }
}

pub struct Platform {
    pub config: PlatformConfig,
    pub meta: Arc<MetadataService>,
    pub auth: Arc<AuthService>,
    /// Users, roles, groups, permission sets, connected apps, OAuth grants
    /// and permission snapshots.
    pub access: Arc<AccessService>,
    pub records: Arc<dyn RecordStore>,
    pub meta_store: Arc<dyn MetaStore>,
    pub cipher: FieldCipher,
    /// SOQL / SOSL engine with its query cursors.
    pub queries: Arc<crate::query::QueryEngine>,
    sqlite_meta: Option<Arc<SqliteMetaStore>>,
    sqlite_records: Option<Arc<SqliteRecordStore>>,
}

impl Platform {
    /// Opens the embedded (SQLite) platform in `config.data_dir`, creating
    /// the directory and databases on first use.
    pub fn open_embedded(config: PlatformConfig) -> MosaicResult<Platform> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            MosaicError::internal(format!(
                "create data dir {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let meta_db = Arc::new(SqliteMetaStore::open(
            &config.data_dir.join("metadata.sqlite"),
        )?);
        let shard = Arc::new(SqliteRecordStore::open(
            &config.data_dir.join("records.sqlite"),
        )?);
        let meta_store: Arc<dyn MetaStore> = meta_db.clone();
        let records: Arc<dyn RecordStore> = shard.clone();
        let cipher = FieldCipher::load(&config.data_dir)?;
        let auth = Arc::new(AuthService::new(meta_store.clone(), config.token_ttl));
        let access_store: Arc<dyn AccessStore> =
            Arc::new(SqliteAccessStore::new(meta_db.db().clone()));
        Ok(Platform {
            meta: Arc::new(MetadataService::new(meta_store.clone(), records.clone())),
            access: Arc::new(AccessService::new(
                access_store,
                meta_store.clone(),
                auth.clone(),
            )),
            auth,
            records,
            meta_store,
            cipher,
            queries: Arc::new(crate::query::QueryEngine::new(shard.clone())),
            config,
            sqlite_meta: Some(meta_db),
            sqlite_records: Some(shard),
        })
    }

    /// Flushes pending writes and stops the database writers.
    pub fn close(&self) {
        if let Some(s) = &self.sqlite_records {
            s.db().close();
        }
        if let Some(m) = &self.sqlite_meta {
            m.db().close();
        }
    }

    /// Group-commit figures of the record shard: (transactions, jobs).
    pub fn writer_stats(&self) -> Option<(u64, u64)> {
        use std::sync::atomic::Ordering;
        self.sqlite_records.as_ref().map(|s| {
            let st = &s.db().stats;
            (
                st.transactions.load(Ordering::Relaxed),
                st.jobs.load(Ordering::Relaxed),
            )
        })
    }
}
