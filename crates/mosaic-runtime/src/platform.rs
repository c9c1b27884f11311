//! The platform: stores opened from configuration, and the services built
//! on them. One per process; shared by every request.

use crate::cipher::FieldCipher;
use crate::clock::{Clock, SystemClock};
use crate::resilience::{Breakers, Maintenance};
use mosaic_access::{AccessService, AuthService};
use mosaic_meta::MetadataService;
use mosaic_store::{
    AccessStore, AutomationStore, CallGuard, IdempotencyStore, MetaStore, RecordStore,
    SettingsStore, SqliteAccessStore, SqliteIdempotencyStore, SqliteMetaStore, SqliteRecordStore,
    SqliteSettingsStore,
};
use mosaic_types::timeouts;
use mosaic_types::{MosaicError, MosaicResult};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub data_dir: PathBuf,
    pub token_ttl: Duration,
    pub automation: AutomationConfig,
    /// "Now" for scheduling time-based actions and retries.
    pub clock: Arc<dyn Clock>,
    /// How long an `Idempotency-Key` and its kept response live.
    pub idempotency_ttl: Duration,
}

/// Default lifetime of an idempotency key: a day, long enough for any
/// client's retry schedule.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl PlatformConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> PlatformConfig {
        let data_dir = data_dir.into();
        PlatformConfig {
            automation: AutomationConfig::new(&data_dir),
            data_dir,
            token_ttl: mosaic_access::service::DEFAULT_TOKEN_TTL,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            clock: Arc::new(SystemClock),
        }
    }
}

/// How workflow actions leave the platform.
#[derive(Debug, Clone)]
pub struct AutomationConfig {
    /// First retry delay; each retry doubles it (with jitter) up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Retries after the first attempt before an entry is dead-lettered.
    pub max_retries: u32,
    /// How long a claimed entry is reserved for the worker that claimed it.
    pub lease: Duration,
    /// How often the worker looks for due entries when not woken.
    pub poll: Duration,
    /// Timeout of one outbound message delivery.
    pub http_timeout: Duration,
    /// Timeout of handing one email alert to the SMTP server.
    pub smtp_timeout: Duration,
    /// Entries handled concurrently by one worker.
    pub concurrency: usize,
    /// `smtp://host:port` (or `smtps://`, with credentials in the URL);
    /// without it, email alerts are written as files to `mail_dir`.
    pub smtp_url: Option<String>,
    pub mail_dir: PathBuf,
    pub mail_from: String,
}

impl AutomationConfig {
    pub fn new(data_dir: &std::path::Path) -> AutomationConfig {
        AutomationConfig {
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(300),
            max_retries: 5,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(500),
            http_timeout: timeouts::HTTP_DELIVERY_TIMEOUT,
            smtp_timeout: timeouts::SMTP_TIMEOUT,
            concurrency: 16,
            smtp_url: None,
            mail_dir: data_dir.join("mail"),
            mail_from: "Mosaic <no-reply@mosaic.localhost>".into(),
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
    /// Record shares (manual and rule-made), beside the records.
    pub shares: Arc<dyn mosaic_store::ShareStore>,
    pub meta_store: Arc<dyn MetaStore>,
    pub cipher: FieldCipher,
    /// SOQL / SOSL engine with its query cursors.
    pub queries: Arc<crate::query::QueryEngine>,
    /// Outbox and field history of the record shard.
    pub automation: Arc<dyn AutomationStore>,
    /// Serializes concurrent saves of one record.
    pub(crate) record_locks: crate::workflow::RecordLocks,
    /// Wakes the delivery worker when a write queued something.
    pub(crate) outbox_wake: Arc<tokio::sync::Notify>,
    /// Idempotency keys of keyed writes (in the records database).
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub(crate) sqlite_meta: Option<Arc<SqliteMetaStore>>,
    pub(crate) sqlite_records: Option<Arc<SqliteRecordStore>>,
    /// Platform-wide settings (the maintenance switch), in the metadata database.
    pub settings: Arc<dyn SettingsStore>,
    /// One circuit breaker per database; every call of the database asks it.
    pub breakers: Breakers,
    /// The maintenance switch as last read (see `resilience::maintenance`).
    pub(crate) maintenance: std::sync::RwLock<Maintenance>,
    /// Whether the health monitor's last read of the metadata database failed.
    pub(crate) metadata_probe_failed: std::sync::atomic::AtomicBool,
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
        let idempotency: Arc<dyn IdempotencyStore> =
            Arc::new(SqliteIdempotencyStore::open(shard.db().clone())?);
        let settings: Arc<dyn SettingsStore> =
            Arc::new(SqliteSettingsStore::new(meta_db.db().clone()));
        // Installed after the databases are open and migrated: every call
        // from here on asks the database's breaker first.
        let breakers = Breakers::embedded(config.clock.clone());
        meta_db
            .db()
            .set_guard(breakers.metadata.clone() as Arc<dyn CallGuard>);
        shard
            .db()
            .set_guard(breakers.shards[0].clone() as Arc<dyn CallGuard>);
        Ok(Platform {
            meta: Arc::new(MetadataService::new(meta_store.clone(), records.clone())),
            access: Arc::new(AccessService::new(
                access_store,
                meta_store.clone(),
                auth.clone(),
            )),
            auth,
            records,
            shares: shard.clone(),
            meta_store,
            cipher,
            queries: Arc::new(crate::query::QueryEngine::new(shard.clone())),
            automation: shard.clone(),
            record_locks: crate::workflow::RecordLocks::new(),
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            idempotency,
            config,
            sqlite_meta: Some(meta_db),
            sqlite_records: Some(shard),
            settings,
            breakers,
            maintenance: Default::default(),
            metadata_probe_failed: Default::default(),
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
