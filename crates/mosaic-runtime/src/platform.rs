//! The platform: stores opened from configuration, and the services built
//! on them. One per process; shared by every request.

use crate::cipher::FieldCipher;
use crate::clock::{Clock, SystemClock};
use crate::resilience::{Breakers, Maintenance, ShardBreakers};
use mosaic_access::{AccessService, AuthService};
use mosaic_meta::MetadataService;
use mosaic_store::replicas::ReplicatedMetaStore;
use mosaic_store::router::{Shard, ShardOpener, ShardRouter};
use mosaic_store::shards::{ShardDirectory, ShardRow, LOCAL_SHARD};
use mosaic_store::{
    AccessStore, AutomationStore, CallGuard, IdempotencyStore, MetaStore, RecordStore,
    SettingsStore, SqliteAccessStore, SqliteMetaStore, SqliteRecordStore, SqliteSettingsStore,
};
use mosaic_types::timeouts;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub data_dir: PathBuf,
    pub token_ttl: Duration,
    /// Lifetime of a refresh token from its issue; each use rotates it
    /// (`--refresh-token-ttl-days`, default 30 days).
    pub refresh_token_ttl: Duration,
    pub automation: AutomationConfig,
    /// "Now" for scheduling time-based actions and retries.
    pub clock: Arc<dyn Clock>,
    /// How long an `Idempotency-Key` and its kept response live.
    pub idempotency_ttl: Duration,
    /// The metadata database on PostgreSQL (`postgres://…`); `None`: the
    /// embedded `metadata.sqlite` in the data directory.
    pub metadata_url: Option<String>,
    /// Read replicas of the PostgreSQL metadata database (`postgres://…`,
    /// physical standbys of `metadata_url`): metadata reads are spread over
    /// them, writes stay on the primary (decision 0014). Only valid with
    /// `metadata_url`.
    pub metadata_replica_urls: Vec<String>,
    /// The built-in record shard on PostgreSQL; `None`: the embedded
    /// `records.sqlite` in the data directory.
    pub records_url: Option<String>,
    /// Connections per PostgreSQL pool.
    pub pg_pool_size: usize,
    /// Hot-tenant detection: the window, and the fewest requests in it that
    /// can make a tenant hot (`None`: one per second of the window).
    pub hot_window: Duration,
    pub hot_min_requests: Option<u64>,
    /// Move hot tenants to an empty shard automatically (checked every
    /// `hot_check_interval`).
    pub hot_auto_move: bool,
    pub hot_check_interval: Duration,
    /// L1 sizes, and the L2 cache on Redis when `cache.redis_url` is set
    /// (decision 0012).
    pub cache: mosaic_cache::CacheConfig,
    /// Per-tenant request rate limits (`MOSAIC_RATE_LIMITS=off` disables).
    pub rate_limits: bool,
    /// Circuit breaker settings per dependency (the seed's by default).
    pub breakers: crate::resilience::BreakerConfig,
    /// The LLM service of the AI tier (`--llm-url`); `None`: the AI
    /// endpoints answer `NOT_IMPLEMENTED`.
    pub llm: Option<crate::ai::LlmConfig>,
    /// How long deleted records stay in the recycle bin before the
    /// scheduled purge removes them (`--recycle-retention-days`, default 15).
    pub recycle_retention: Duration,
    /// Where file content lives and how much of it (decision 0034).
    pub files: crate::files::FilesConfig,
    /// How long a worker's claim on a Bulk API job lasts between chunks
    /// (`--bulk-lease-secs`, default 60 s).
    pub bulk_lease: Duration,
}

/// Default connections per PostgreSQL pool.
pub const DEFAULT_PG_POOL_SIZE: usize = 16;

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
            refresh_token_ttl: mosaic_access::service::DEFAULT_REFRESH_TOKEN_TTL,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            clock: Arc::new(SystemClock),
            metadata_url: None,
            metadata_replica_urls: Vec::new(),
            records_url: None,
            pg_pool_size: DEFAULT_PG_POOL_SIZE,
            hot_window: crate::hot::DEFAULT_HOT_WINDOW,
            hot_min_requests: None,
            hot_auto_move: false,
            hot_check_interval: Duration::from_secs(60),
            cache: mosaic_cache::CacheConfig::default(),
            rate_limits: true,
            breakers: Default::default(),
            llm: None,
            recycle_retention: crate::recycle_bin::DEFAULT_RETENTION,
            files: Default::default(),
            bulk_lease: crate::bulk::JOB_LEASE,
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
    /// The operator's allow-list (`--outbound-allow`): loopback, private,
    /// link-local … destinations tenants' outbound messages may still
    /// reach. Empty: public addresses only.
    pub outbound_allow: mosaic_types::OutboundGuard,
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
            outbound_allow: mosaic_types::OutboundGuard::none(),
        }
    }
}

pub struct Platform {
    pub config: PlatformConfig,
    /// File content (`ContentVersion` bodies): the data directory's
    /// `blobs/` or an S3-compatible store (`--blob-url`).
    pub blobs: Arc<dyn mosaic_files::BlobStore>,
    pub meta: Arc<MetadataService>,
    pub auth: Arc<AuthService>,
    /// Users, roles, groups, permission sets, connected apps, OAuth grants
    /// and permission snapshots.
    pub access: Arc<AccessService>,
    pub records: Arc<dyn RecordStore>,
    /// Record shares (manual and rule-made), beside the records.
    pub shares: Arc<dyn mosaic_store::ShareStore>,
    pub meta_store: Arc<dyn MetaStore>,
    /// The metadata database's primary (`meta_store` itself without read
    /// replicas): health probes ask it, not a replica.
    pub metadata_primary: Arc<dyn MetaStore>,
    /// The metadata store with read replicas, when configured (its read
    /// counts per database).
    pub metadata_replicas: Option<Arc<ReplicatedMetaStore>>,
    pub cipher: FieldCipher,
    /// SOQL / SOSL engine with its query cursors.
    pub queries: Arc<crate::query::QueryEngine>,
    /// Outbox and field history of the record shard.
    pub automation: Arc<dyn AutomationStore>,
    /// Serializes concurrent saves of one record.
    pub(crate) record_locks: crate::workflow::RecordLocks,
    /// Wakes the delivery worker when a write queued something.
    pub(crate) outbox_wake: Arc<tokio::sync::Notify>,
    /// Routes every shard-side call to the tenant's shard.
    pub shards: Arc<ShardRouter>,
    /// Requests per tenant over the hot-tenant window.
    pub hot: crate::hot::HotTenants,
    /// Idempotency keys of keyed writes (in the records database).
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub(crate) sqlite_meta: Option<Arc<SqliteMetaStore>>,
    pub(crate) sqlite_records: Option<Arc<SqliteRecordStore>>,
    /// Platform-wide settings (the maintenance switch), in the metadata database.
    pub settings: Arc<dyn SettingsStore>,
    /// Each user's recently viewed records, in the metadata database.
    pub recent: Arc<dyn mosaic_store::RecentStore>,
    /// Bulk API jobs, their uploads and results, in the metadata database.
    pub bulk: Arc<dyn mosaic_store::BulkStore>,
    /// Wakes the bulk worker when a job is ready.
    pub(crate) bulk_wake: Arc<tokio::sync::Notify>,
    /// Operator users, their sessions and the platform audit log.
    pub operators: Arc<mosaic_access::OperatorService>,
    /// One circuit breaker per database; every call of the database asks it.
    pub breakers: Breakers,
    /// The maintenance switch as last read (see `resilience::maintenance`).
    pub(crate) maintenance: std::sync::RwLock<Maintenance>,
    /// Whether the health monitor's last read of the metadata database failed.
    pub(crate) metadata_probe_failed: std::sync::atomic::AtomicBool,
    /// Tenant moves started through this process, with their progress.
    pub moves: crate::tenant_move::MoveBoard,
    /// The cache tier: L2, invalidation bus, rate limits, locks.
    pub cache: crate::cache::CacheServices,
    /// The LLM service behind its breaker, when configured (the AI tier).
    pub llm: Option<Arc<crate::ai::LlmClient>>,
    /// Resolved zones and locales by (tenant, user) (see [`crate::zones`]).
    pub(crate) zones: moka::sync::Cache<(String, String), crate::zones::Resolved>,
}

/// Opens a registered shard: `sqlite:<path>` (relative paths are inside the
/// data directory) or `postgres://…` (migrated on open). Each gets its own
/// circuit breaker (`shard:<id>`), so an outage of one shard fails its
/// tenants fast with 503 and leaves every other shard alone.
async fn open_shard(
    data_dir: PathBuf,
    pool_size: usize,
    breakers: Arc<ShardBreakers>,
    row: ShardRow,
) -> MosaicResult<Arc<Shard>> {
    let breaker = breakers.for_shard(&row.id) as Arc<dyn CallGuard>;
    if let Some(path) = row.url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        let p = std::path::Path::new(path);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            data_dir.join(p)
        };
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| MosaicError::internal(format!("create {}: {e}", parent.display())))?;
        }
        let store = Arc::new(SqliteRecordStore::open(&p)?);
        store.db().set_guard(breaker);
        return Ok(Arc::new(Shard::sqlite(&row.id, store)?));
    }
    if row.url.starts_with("postgres://") || row.url.starts_with("postgresql://") {
        let (shard, pool) = pg_shard_with_pool(&row.id, &row.url, pool_size).await?;
        pool.set_guard(breaker);
        return Ok(Arc::new(shard));
    }
    Err(MosaicError::new(
        ErrorCode::INVALID_INPUT,
        format!("shard {}: unsupported url scheme", row.id),
    ))
}

/// A shard on PostgreSQL: its stores on one pool (returned for its guard).
async fn pg_shard_with_pool(
    id: &str,
    url: &str,
    pool_size: usize,
) -> MosaicResult<(Shard, mosaic_store_pg::PgPool)> {
    let store = Arc::new(mosaic_store_pg::PgRecordStore::connect(url, pool_size).await?);
    let pool = store.pool().clone();
    let idempotency =
        Arc::new(mosaic_store_pg::PgIdempotencyStore::open(store.pool().clone()).await?);
    Ok((Shard::on(id, store, idempotency), pool))
}

fn opener(config: &PlatformConfig, breakers: Arc<ShardBreakers>) -> ShardOpener {
    let dir = config.data_dir.clone();
    let size = config.pg_pool_size;
    Arc::new(move |row: &ShardRow| {
        let (dir, row) = (dir.clone(), row.clone());
        Box::pin(open_shard(dir, size, breakers.clone(), row))
    })
}

/// The metadata database's stores.
struct MetaStores {
    meta: Arc<dyn MetaStore>,
    /// `meta`'s primary when reads go to replicas.
    primary: Option<Arc<dyn MetaStore>>,
    replicated: Option<Arc<ReplicatedMetaStore>>,
    /// The replicas' pools, for their circuit breakers.
    replica_pools: Vec<mosaic_store_pg::PgPool>,
    access: Arc<dyn AccessStore>,
    directory: Arc<dyn ShardDirectory>,
    settings: Arc<dyn SettingsStore>,
    recent: Arc<dyn mosaic_store::RecentStore>,
    bulk: Arc<dyn mosaic_store::BulkStore>,
    operators: Arc<dyn mosaic_store::OperatorStore>,
    sqlite: Option<Arc<SqliteMetaStore>>,
    pg: Option<mosaic_store_pg::PgPool>,
}

impl Platform {
    /// Opens the embedded (SQLite) platform in `config.data_dir`, creating
    /// the directory and databases on first use.
    pub fn open_embedded(config: PlatformConfig) -> MosaicResult<Platform> {
        Self::check_replicas(&config)?;
        Self::data_dir(&config)?;
        let metas = Self::sqlite_meta(&config)?;
        let shard = Arc::new(SqliteRecordStore::open(
            &config.data_dir.join("records.sqlite"),
        )?);
        let local = Arc::new(Shard::sqlite(LOCAL_SHARD, shard.clone())?);
        Self::assemble(config, metas, local, Some(shard))
    }

    /// Opens the platform as configured: the metadata database and the
    /// built-in shard each embedded or on PostgreSQL (`metadata_url`,
    /// `records_url`). Migrations are applied on open.
    pub async fn open(config: PlatformConfig) -> MosaicResult<Platform> {
        Self::check_replicas(&config)?;
        if config.metadata_url.is_none() && config.records_url.is_none() {
            return Self::open_embedded(config);
        }
        Self::data_dir(&config)?;
        let metas = match &config.metadata_url {
            None => Self::sqlite_meta(&config)?,
            Some(url) => {
                let m = Arc::new(
                    mosaic_store_pg::PgMetaStore::connect(url, config.pg_pool_size).await?,
                );
                let (meta, primary, replicated, replica_pools): (Arc<dyn MetaStore>, _, _, _) =
                    if config.metadata_replica_urls.is_empty() {
                        (m.clone(), None, None, Vec::new())
                    } else {
                        let (store, pools) = mosaic_store_pg::replicated_meta_store(
                            &m,
                            &config.metadata_replica_urls,
                            config.pg_pool_size,
                        )?;
                        let store = Arc::new(store);
                        (
                            store.clone(),
                            Some(m.clone() as Arc<dyn MetaStore>),
                            Some(store),
                            pools,
                        )
                    };
                MetaStores {
                    meta,
                    primary,
                    replicated,
                    replica_pools,
                    access: Arc::new(mosaic_store_pg::PgAccessStore::new(m.pool().clone())),
                    settings: m.clone(),
                    recent: m.clone(),
                    bulk: m.clone(),
                    operators: m.clone(),
                    pg: Some(m.pool().clone()),
                    directory: m,
                    sqlite: None,
                }
            }
        };
        let (local, sqlite, pg) = match &config.records_url {
            None => {
                let shard = Arc::new(SqliteRecordStore::open(
                    &config.data_dir.join("records.sqlite"),
                )?);
                (
                    Arc::new(Shard::sqlite(LOCAL_SHARD, shard.clone())?),
                    Some(shard),
                    None,
                )
            }
            Some(url) => {
                let (shard, pool) =
                    pg_shard_with_pool(LOCAL_SHARD, url, config.pg_pool_size).await?;
                (Arc::new(shard), None, Some(pool))
            }
        };
        let p = Self::assemble(config, metas, local, sqlite)?;
        if let Some(pool) = pg {
            pool.set_guard(p.breakers.shards[0].clone() as Arc<dyn CallGuard>);
        }
        Ok(p)
    }

    fn data_dir(config: &PlatformConfig) -> MosaicResult<()> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            MosaicError::internal(format!(
                "create data dir {}: {e}",
                config.data_dir.display()
            ))
        })
    }

    fn sqlite_meta(config: &PlatformConfig) -> MosaicResult<MetaStores> {
        let meta_db = Arc::new(SqliteMetaStore::open(
            &config.data_dir.join("metadata.sqlite"),
        )?);
        Ok(MetaStores {
            meta: meta_db.clone(),
            access: Arc::new(SqliteAccessStore::new(meta_db.db().clone())),
            directory: meta_db.clone(),
            settings: Arc::new(SqliteSettingsStore::new(meta_db.db().clone())),
            recent: Arc::new(mosaic_store::SqliteRecentStore::new(meta_db.db().clone())),
            bulk: Arc::new(mosaic_store::SqliteBulkStore::new(meta_db.db().clone())),
            operators: Arc::new(mosaic_store::SqliteOperatorStore::new(meta_db.db().clone())),
            sqlite: Some(meta_db),
            pg: None,
            primary: None,
            replicated: None,
            replica_pools: Vec::new(),
        })
    }

    /// Read replicas need the PostgreSQL metadata database they replicate.
    fn check_replicas(config: &PlatformConfig) -> MosaicResult<()> {
        if config.metadata_replica_urls.is_empty() {
            return Ok(());
        }
        if config.metadata_url.is_none() {
            return Err(MosaicError::invalid(
                "metadata read replicas (--metadata-replica-url, MOSAIC_METADATA_REPLICA_URLS) need a PostgreSQL metadata database (--metadata-url, MOSAIC_METADATA_URL): the embedded metadata.sqlite has no replicas",
            ));
        }
        for (i, url) in config.metadata_replica_urls.iter().enumerate() {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(MosaicError::invalid(format!(
                    "{}: a metadata read replica must be a postgres:// URL",
                    mosaic_store_pg::replication::replica_name(i + 1)
                )));
            }
        }
        Ok(())
    }

    fn assemble(
        config: PlatformConfig,
        metas: MetaStores,
        local: Arc<Shard>,
        sqlite_records: Option<Arc<SqliteRecordStore>>,
    ) -> MosaicResult<Platform> {
        let meta_store = metas.meta;
        let metadata_primary = metas.primary.unwrap_or_else(|| meta_store.clone());
        // Installed after the databases are open and migrated: every call
        // to an embedded database from here on asks its breaker first.
        let mut breakers = Breakers::new(config.clock.clone(), &config.breakers);
        // Placement reads the tenant's tier once, then writes the directory:
        // from the primary, not a replica that may not have the tenant yet.
        let router = Arc::new(ShardRouter::new(
            metas.directory,
            metadata_primary.clone(),
            local,
            opener(&config, breakers.registered.clone()),
        ));
        let records: Arc<dyn RecordStore> = router.clone();
        let cipher = FieldCipher::load(&config.data_dir)?;
        let tier = mosaic_cache::CacheTier::new(config.cache.clone())?;
        let cache = crate::cache::CacheServices::new(
            tier.clone(),
            config.clock.clone(),
            config.rate_limits,
            config.breakers.redis,
        );
        let auth = Arc::new(
            AuthService::with_tier(meta_store.clone(), config.token_ttl, tier.clone())
                .with_refresh_ttl(config.refresh_token_ttl),
        );
        let idempotency: Arc<dyn IdempotencyStore> = router.clone();
        let llm = match &config.llm {
            Some(c) => Some(Arc::new(crate::ai::LlmClient::new(
                c.clone(),
                config.breakers.llm,
                config.clock.clone(),
                tier.clone(),
            )?)),
            None => None,
        };
        // Each replica its own breaker: a sick replica is skipped at once
        // and leaves the primary's breaker (and the degradation level) alone.
        for (i, pool) in metas.replica_pools.iter().enumerate() {
            let b = Arc::new(crate::resilience::CircuitBreaker::new(
                mosaic_store_pg::replication::replica_name(i + 1),
                config.breakers.metadata,
                config.clock.clone(),
            ));
            pool.set_guard(b.clone() as Arc<dyn CallGuard>);
            breakers.replicas.push(b);
        }
        if let Some(m) = &metas.sqlite {
            m.db()
                .set_guard(breakers.metadata.clone() as Arc<dyn CallGuard>);
        }
        if let Some(pool) = &metas.pg {
            pool.set_guard(breakers.metadata.clone() as Arc<dyn CallGuard>);
        }
        if let Some(r) = &sqlite_records {
            r.db()
                .set_guard(breakers.shards[0].clone() as Arc<dyn CallGuard>);
        }
        let meta = Arc::new(MetadataService::with_tier(
            meta_store.clone(),
            records.clone(),
            tier.clone(),
        ));
        meta.set_outbound_guard(config.automation.outbound_allow.clone());
        let operators = Arc::new(mosaic_access::OperatorService::new(
            metas.operators,
            metas.access.clone(),
        ));
        let access = Arc::new(AccessService::with_tier(
            metas.access,
            meta_store.clone(),
            auth.clone(),
            tier,
        ));
        // Permission changes are in force fleet-wide at the next request.
        access.share_generations(metas.settings.clone());
        let blobs = mosaic_files::open(&config.data_dir, config.files.blob_url.as_deref())?;
        Ok(Platform {
            blobs,
            meta,
            operators,
            access,
            auth,
            records,
            shares: router.clone(),
            meta_store,
            metadata_primary,
            metadata_replicas: metas.replicated,
            cipher,
            queries: Arc::new(crate::query::QueryEngine::new(router.clone())),
            automation: router.clone(),
            shards: router,
            hot: crate::hot::HotTenants::new(
                config.clock.clone(),
                config.hot_window,
                config.hot_min_requests,
            ),
            record_locks: crate::workflow::RecordLocks::new(),
            outbox_wake: Arc::new(tokio::sync::Notify::new()),
            idempotency,
            config,
            sqlite_meta: metas.sqlite,
            sqlite_records,
            settings: metas.settings,
            recent: metas.recent,
            bulk: metas.bulk,
            bulk_wake: Arc::new(tokio::sync::Notify::new()),
            breakers,
            maintenance: Default::default(),
            metadata_probe_failed: Default::default(),
            moves: Default::default(),
            cache,
            llm,
            zones: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(crate::zones::ZONE_CACHE_TTL)
                .build(),
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

impl Platform {
    /// Creates a tenant and places it on a shard by its tier. A tier that
    /// cannot be placed (an enterprise tenant without a spare dedicated
    /// shard, every shard of the tier's group full) is refused before
    /// anything is created.
    pub async fn create_tenant(
        &self,
        t: mosaic_access::NewTenant,
    ) -> MosaicResult<mosaic_access::TenantCreated> {
        let shards = self.shards.directory().shards().await?;
        let load = self.shards.load().await?;
        mosaic_store::shards::choose_shard(&t.subdomain, &t.tier, &shards, &load)?;
        let created = self.auth.create_tenant(t).await?;
        self.shards.shard_id(&created.tenant_id).await?;
        Ok(created)
    }
}

/// What one [`Platform::purge_expired`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub credentials: mosaic_store::access_store::PurgedCredentials,
    pub operator_sessions: u64,
    pub idempotency_keys: u64,
    /// Records removed from the recycle bin after the retention.
    pub binned_records: u64,
}

/// How often `mosaic serve` purges expired credentials and keys.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(300);

impl Platform {
    /// Deletes what has expired by `now`: tenant sessions and refresh
    /// tokens, login-failure windows that are over, operator sessions and
    /// idempotency keys (on every shard). Expired rows are already refused;
    /// this reclaims their space and keeps token tables from growing
    /// without bound. One part failing does not stop the others; the first
    /// error is returned after all ran.
    pub async fn purge_expired(&self, now: chrono::DateTime<chrono::Utc>) -> MosaicResult<Purged> {
        let mut out = Purged::default();
        let mut first_err = None;
        match self.access.purge_expired(now).await {
            Ok(c) => out.credentials = c,
            Err(e) => first_err = Some(e),
        }
        match self.operators.store().purge_operator_sessions(now).await {
            Ok(n) => out.operator_sessions = n,
            Err(e) => first_err = first_err.or(Some(e)),
        }
        match self.idempotency.purge_expired(now.timestamp_millis()).await {
            Ok(n) => out.idempotency_keys = n,
            Err(e) => first_err = first_err.or(Some(e)),
        }
        match self.purge_recycle_bins(now).await {
            Ok(n) => out.binned_records = n,
            Err(e) => first_err = first_err.or(Some(e)),
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

/// Starts the task that runs [`Platform::purge_expired`] every
/// [`PURGE_INTERVAL`]. It ends when the platform is dropped; outside a
/// Tokio runtime it does nothing.
pub fn spawn_purge(platform: &Arc<Platform>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let platform = Arc::downgrade(platform);
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(p) = platform.upgrade() else {
                return;
            };
            match p.purge_expired(chrono::Utc::now()).await {
                Ok(n) if n != Purged::default() => {
                    tracing::debug!(
                        sessions = n.credentials.sessions,
                        refresh_tokens = n.credentials.refresh_tokens,
                        login_failures = n.credentials.login_failures,
                        operator_sessions = n.operator_sessions,
                        idempotency_keys = n.idempotency_keys,
                        binned_records = n.binned_records,
                        "expired credentials, keys and binned records deleted"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purging expired credentials and keys failed"),
            }
        }
    });
}
