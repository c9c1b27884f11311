//! The metadata service: validates changes, allocates flex slots, commits
//! versioned definitions, keeps pivot indexes in step, and caches compiled
//! definitions in process.

use crate::formulas;
use crate::model::*;
use crate::validate::*;
use chrono::Utc;
use moka::future::Cache;
use mosaic_cache::{CacheTier, Invalidation, L1Sizing, LastGood, LayerStats};
use mosaic_formula::{Compiled, FormulaError, Options};
use mosaic_store::{IndexSpec, MetaStore, ObjectRow, RecordStore};
use mosaic_types::{
    DataType, ErrorCode, FlexSlot, MosaicError, MosaicResult, OutboundGuard, SlotPool,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// L1 metadata cache defaults (seed: 50,000 entries, 60 s after write, 30 s
/// after access); `CacheConfig::metadata` overrides them.
pub const META_CACHE_CAPACITY: u64 = mosaic_cache::defaults::METADATA.capacity;
pub const META_CACHE_TTL: Duration = mosaic_cache::defaults::METADATA.ttl;
pub const META_CACHE_TTI: Duration = Duration::from_secs(30);
/// Attempts of a change that carries no client version before giving up
/// on concurrent writers.
pub(crate) const INTERNAL_RETRIES: usize = 5;

pub use mosaic_types::CacheStats;

type Key = (String, String);

/// An L1 entry: the definition, when it was loaded and how long the load
/// took (XFetch's inputs).
#[derive(Clone)]
struct Cached {
    meta: Arc<ObjectMeta>,
    loaded: Instant,
    took: Duration,
}

/// Tenants whose objects were warmed recently (on a first login).
const WARMED_CAPACITY: u64 = 100_000;

pub struct MetadataService {
    store: Arc<dyn MetaStore>,
    records: Arc<dyn RecordStore>,
    tier: Arc<CacheTier>,
    by_name: Cache<Key, Cached>,
    by_id: Cache<Key, Cached>,
    lists: Cache<String, Arc<Vec<Arc<ObjectMeta>>>>,
    compiled: moka::sync::Cache<FormulaKey, Arc<Compiled>>,
    /// The newest version announced for an object (by id): an older copy,
    /// in L1 or L2, is refetched.
    known: moka::sync::Cache<String, i64>,
    warmed: moka::sync::Cache<String, ()>,
    epoch: std::sync::atomic::AtomicU64,
    /// Hits and misses of the L1 object cache (by name).
    pub stats: CacheStats,
    /// Hits and misses of the compiled-formula cache.
    pub formula_stats: CacheStats,
    /// L1 figures of object definitions (by name and by id).
    pub l1: Arc<LayerStats>,
    /// L1 figures of compiled formulas.
    pub l1_formulas: Arc<LayerStats>,
    /// Definitions read from the metadata database to fill a cache.
    database_loads: Arc<AtomicU64>,
    /// The last copy of each definition this process loaded, by
    /// (by name?, key), kept past L1's lifetime: served, stale, when the
    /// metadata database is unavailable and neither L1 nor L2 holds the
    /// definition (the seed's metadata-breaker fallback). A change or a
    /// delete drops its entries.
    last_good: LastGood<(bool, Key), Arc<ObjectMeta>>,
    /// The same for each tenant's list of objects.
    last_good_lists: LastGood<String, Arc<Vec<Arc<ObjectMeta>>>>,
    /// Destinations tenant-entered URLs may name besides public addresses.
    outbound: std::sync::RwLock<Arc<OutboundGuard>>,
}

/// Compiled formulas are shared per (tenant, object, object version,
/// expression, options).
type FormulaKey = (String, String, i64, String, bool, Option<u8>, bool);

/// L1 compiled-formula cache defaults (seed: 100,000 entries, 300 s).
pub const FORMULA_CACHE_CAPACITY: u64 = 100_000;
pub const FORMULA_CACHE_TTL: Duration = Duration::from_secs(300);

fn not_found(name: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "The requested resource does not exist: no object named '{}'",
        name.chars().take(80).collect::<String>()
    ))
}

fn field_not_found(object: &str, field: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "The requested resource does not exist: object '{object}' has no field '{}'",
        field.chars().take(80).collect::<String>()
    ))
}

pub(crate) fn decode(row: &ObjectRow) -> MosaicResult<Arc<ObjectMeta>> {
    let corrupt = |e: serde_json::Error| {
        MosaicError::internal(format!("corrupt object definition {}: {e}", row.id))
    };
    let mut doc: serde_json::Value = serde_json::from_str(&row.definition).map_err(corrupt)?;
    crate::model::upgrade_document(&mut doc);
    let mut def: ObjectDef = serde_json::from_value(doc).map_err(corrupt)?;
    def.version = row.version;
    Ok(Arc::new(ObjectMeta::new(def)))
}

pub(crate) fn encode(def: &ObjectDef, tenant: &str) -> MosaicResult<ObjectRow> {
    Ok(ObjectRow {
        id: def.id.clone(),
        tenant_id: tenant.to_string(),
        api_name: def.api_name.clone(),
        version: def.version,
        definition: serde_json::to_string(def)
            .map_err(|e| MosaicError::internal(format!("encode definition: {e}")))?,
    })
}

fn key(tenant: &str, s: &str) -> Key {
    (tenant.to_string(), s.to_lowercase())
}

/// The pivot spec of a field (None when it is not mirrored).
pub fn index_spec(f: &FieldDef) -> Option<IndexSpec> {
    let slot = f.slot?;
    (f.is_unique || f.needs_index()).then(|| IndexSpec {
        slot,
        field: f.api_name.clone(),
        unique: f.is_unique,
        indexed: f.needs_index(),
        case_insensitive: f.data_type.is_text_like(),
    })
}

fn allocate(def: &ObjectDef, pool: SlotPool) -> MosaicResult<FlexSlot> {
    (1..=pool.capacity())
        .filter_map(|i| FlexSlot::new(pool, i))
        .find(|s| {
            !def.pending_clear.contains(s) && !def.fields.iter().any(|f| f.slot == Some(*s))
        })
        .ok_or_else(|| {
            MosaicError::field(
                ErrorCode::LIMIT_EXCEEDED,
                "data_type",
                format!(
                    "object '{}' has used all {} slots of the {pool} pool; delete a field of that pool first",
                    def.api_name,
                    pool.capacity()
                ),
            )
        })
}

fn l1_cache<V: Clone + Send + Sync + 'static>(
    sizing: L1Sizing,
    stats: Option<Arc<LayerStats>>,
) -> Cache<Key, V> {
    let mut b = Cache::builder()
        .max_capacity(sizing.capacity)
        .time_to_live(sizing.ttl);
    if let Some(tti) = sizing.tti {
        b = b.time_to_idle(tti);
    }
    if let Some(stats) = stats {
        b = b.eviction_listener(move |_, _, cause| {
            if cause.was_evicted() {
                stats.evicted();
            }
        });
    }
    b.build()
}

impl MetadataService {
    /// The service with an embedded cache tier (L1 only, default sizes).
    pub fn new(store: Arc<dyn MetaStore>, records: Arc<dyn RecordStore>) -> MetadataService {
        Self::with_tier(store, records, CacheTier::embedded())
    }

    /// The service on `tier`: its L1 sizes, and its L2 and invalidation
    /// bus when Redis is configured.
    pub fn with_tier(
        store: Arc<dyn MetaStore>,
        records: Arc<dyn RecordStore>,
        tier: Arc<CacheTier>,
    ) -> MetadataService {
        let l1 = Arc::new(LayerStats::default());
        let l1_formulas = Arc::new(LayerStats::default());
        let sizing = tier.config.metadata;
        let formulas = tier.config.formulas;
        let evicted = l1_formulas.clone();
        MetadataService {
            store,
            records,
            by_name: l1_cache(sizing, Some(l1.clone())),
            by_id: l1_cache(sizing, Some(l1.clone())),
            lists: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(sizing.ttl)
                .build(),
            compiled: moka::sync::Cache::builder()
                .max_capacity(formulas.capacity)
                .time_to_live(formulas.ttl)
                .eviction_listener(move |_, _, cause| {
                    if cause.was_evicted() {
                        evicted.evicted();
                    }
                })
                .build(),
            known: moka::sync::Cache::builder()
                .max_capacity(sizing.capacity)
                .time_to_live(tier.config.metadata_l2_ttl * 2)
                .build(),
            warmed: moka::sync::Cache::builder()
                .max_capacity(WARMED_CAPACITY)
                .time_to_live(sizing.ttl)
                .build(),
            tier,
            epoch: std::sync::atomic::AtomicU64::new(0),
            stats: CacheStats::default(),
            formula_stats: CacheStats::default(),
            l1,
            l1_formulas,
            database_loads: Arc::new(AtomicU64::new(0)),
            last_good: LastGood::new("metadata", sizing.capacity),
            last_good_lists: LastGood::new("metadata_lists", 10_000),
            outbound: std::sync::RwLock::new(Arc::new(OutboundGuard::none())),
        }
    }

    /// The operator's allow-list for tenant-entered destinations (outbound
    /// message endpoints), checked when a rule is saved.
    pub fn set_outbound_guard(&self, guard: OutboundGuard) {
        if let Ok(mut g) = self.outbound.write() {
            *g = Arc::new(guard);
        }
    }

    pub fn outbound_guard(&self) -> Arc<OutboundGuard> {
        self.outbound
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Definitions served stale so far because the metadata database was
    /// unavailable.
    pub fn stale_served(&self) -> u64 {
        self.last_good.served() + self.last_good_lists.served()
    }

    pub fn tier(&self) -> &Arc<CacheTier> {
        &self.tier
    }

    /// Definitions read from the metadata database to fill a cache so far.
    pub fn database_loads(&self) -> u64 {
        self.database_loads.load(Ordering::Relaxed)
    }

    /// A formula compiled in the context of `obj`, from the shared cache.
    #[tracing::instrument(name = "formula.compiled", skip_all)]
    pub async fn compiled(
        &self,
        tenant: &str,
        obj: &ObjectMeta,
        src: &str,
        opts: &Options,
        is_default: bool,
    ) -> Result<Arc<Compiled>, Vec<FormulaError>> {
        let rt = opts.return_type.map(|t| t as u8);
        let key: FormulaKey = (
            tenant.to_string(),
            obj.def.id.clone(),
            obj.def.version,
            src.to_string(),
            opts.treat_blanks_as_zero,
            rt,
            is_default,
        );
        if let Some(c) = self.compiled.get(&key) {
            self.formula_stats.hit();
            self.l1_formulas.hit();
            return Ok(c);
        }
        self.formula_stats.miss();
        self.l1_formulas.miss();
        let started = Instant::now();
        let all = self.objects(tenant).await.map_err(|e| {
            vec![FormulaError {
                message: e.message,
                position: 0,
                line: 1,
                column: 1,
                kind: mosaic_formula::ErrorKind::Type,
            }]
        })?;
        metrics::counter!("formula_compilations_total").increment(1);
        let c = Arc::new(formulas::compile_on(&obj.def, &all, src, opts, is_default)?);
        self.compiled.insert(key, c.clone());
        self.l1_formulas.loaded(started.elapsed());
        Ok(c)
    }

    /// Checks every formula of the tenant as it would be with `next`
    /// replacing its current definition (compiles, no cycles).
    async fn check_formulas(&self, tenant: &str, next: &ObjectDef) -> MosaicResult<()> {
        let all = self.store.list_objects(tenant).await?;
        let mut defs: Vec<Arc<ObjectMeta>> = Vec::with_capacity(all.len() + 1);
        for row in &all {
            if row.id != next.id {
                defs.push(decode(row)?);
            }
        }
        defs.push(Arc::new(ObjectMeta::new(next.clone())));
        let any = defs.iter().any(|d| !formulas::uses_of(&d.def).is_empty());
        if any {
            formulas::check_all(&defs)?;
        }
        Ok(())
    }

    /// Checks and completes the roll-up summary fields of `next` against
    /// the tenant's objects (decision 0039).
    async fn check_rollups(&self, tenant: &str, next: &mut ObjectDef) -> MosaicResult<()> {
        if !next
            .fields
            .iter()
            .any(|f| f.data_type == DataType::RollupSummary)
        {
            return Ok(());
        }
        let all = self.store.list_objects(tenant).await?;
        let defs = all.iter().map(decode).collect::<MosaicResult<Vec<_>>>()?;
        crate::rollup::check_object(&defs, next)
    }

    /// Refuses to remove or rename a field that formulas read.
    async fn check_no_dependents(
        &self,
        tenant: &str,
        def: &ObjectDef,
        field: &FieldDef,
        action: &str,
    ) -> MosaicResult<()> {
        let all = self.store.list_objects(tenant).await?;
        let defs = all.iter().map(decode).collect::<MosaicResult<Vec<_>>>()?;
        let mut deps = formulas::dependents(&defs, &def.id, &field.api_name);
        deps.extend(crate::rollup::dependents(
            &defs,
            &def.id,
            Some(&field.api_name),
        ));
        deps.extend(crate::workflow::rules_using(def, &field.api_name));
        deps.extend(
            crate::sharing::sharing_rules_using(def, &field.api_name)
                .into_iter()
                .map(|n| format!("sharing rule {n}")),
        );
        if !deps.is_empty() {
            return Err(MosaicError::field(
                ErrorCode::DELETE_FAILED,
                field.api_name.clone(),
                format!(
                    "cannot {action} field '{}': it is used by {}",
                    field.api_name,
                    deps.join(", ")
                ),
            ));
        }
        Ok(())
    }

    pub fn meta_store(&self) -> &Arc<dyn MetaStore> {
        &self.store
    }

    /// The record store (counts for impact reports).
    pub(crate) fn record_store(&self) -> &Arc<dyn RecordStore> {
        &self.records
    }

    /// An object by api name (case-insensitive): L1, then L2 (Redis, when
    /// configured), then the metadata database, filling both. Concurrent
    /// misses for one key cause one load; a hot entry is refreshed early
    /// by one reader (XFetch) instead of expiring under all of them.
    #[tracing::instrument(name = "metadata.object", skip_all)]
    pub async fn object(&self, tenant: &str, name: &str) -> MosaicResult<Arc<ObjectMeta>> {
        self.lookup(tenant, name, true).await
    }

    /// An object by id (same layers as [`MetadataService::object`]).
    pub async fn object_by_id(&self, tenant: &str, id: &str) -> MosaicResult<Arc<ObjectMeta>> {
        self.lookup(tenant, id, false).await
    }

    /// Whether an entry is older than a version announced for its object.
    fn is_stale(&self, def: &ObjectDef) -> bool {
        self.known
            .get(def.id.as_str())
            .is_some_and(|v| def.version < v)
    }

    async fn lookup(
        &self,
        tenant: &str,
        name: &str,
        by_name: bool,
    ) -> MosaicResult<Arc<ObjectMeta>> {
        let cache = if by_name { &self.by_name } else { &self.by_id };
        let k = key(tenant, name);
        if let Some(c) = cache.get(&k).await {
            if !self.is_stale(&c.meta.def) {
                self.stats.hit();
                self.l1.hit();
                metrics::counter!("cache_hits_total", "cache" => "metadata", "layer" => "l1")
                    .increment(1);
                self.maybe_refresh_early(&k, &c, by_name);
                return Ok(c.meta);
            }
            cache.invalidate(&k).await;
        }
        self.stats.miss();
        self.l1.miss();
        metrics::counter!("cache_misses_total", "cache" => "metadata", "layer" => "l1")
            .increment(1);
        let epoch = self.epoch();
        let loaded = match cache
            .try_get_with(k.clone(), self.load(tenant, name, by_name))
            .await
        {
            Ok(loaded) => loaded,
            Err(e) if mosaic_cache::stale::falls_back(&e) => {
                return match self.stale_copy(tenant, name, by_name, &k).await {
                    Some(meta) => Ok(meta),
                    None => Err((*e).clone()),
                };
            }
            Err(e) => return Err((*e).clone()),
        };
        // Kept by name and by id, whichever way it was asked for.
        let def = &loaded.meta.def;
        for k in [
            (true, key(tenant, &def.api_name)),
            (false, key(tenant, &def.id)),
        ] {
            self.last_good.remember(k, loaded.meta.clone());
        }
        // An invalidation arrived while the load was in flight: what it
        // read may predate the change, so the next reader loads again.
        if self.epoch() != epoch {
            cache.invalidate(&k).await;
        }
        Ok(loaded.meta)
    }

    /// One load for L1: L2, else the database (then L2 is filled).
    async fn load(&self, tenant: &str, name: &str, by_name: bool) -> MosaicResult<Cached> {
        let started = Instant::now();
        if let Some(meta) = self.l2_copy(tenant, name).await {
            self.l1.loaded(started.elapsed());
            return Ok(Cached {
                meta,
                loaded: Instant::now(),
                took: started.elapsed(),
            });
        }
        let row = if by_name {
            self.store.object_by_name(tenant, name).await?
        } else {
            self.store.object_by_id(tenant, name).await?
        };
        self.database_loads.fetch_add(1, Ordering::Relaxed);
        let meta = match row {
            Some(row) => decode(&row)?,
            None => return Err(not_found(name)),
        };
        let took = started.elapsed();
        self.fill_l2(tenant, &meta, took).await;
        self.l1.loaded(took);
        Ok(Cached {
            meta,
            loaded: Instant::now(),
            took,
        })
    }

    /// The metadata database is unavailable: the last copy this process
    /// loaded, else whatever L2 holds however old, counted as stale.
    async fn stale_copy(
        &self,
        tenant: &str,
        name: &str,
        by_name: bool,
        k: &Key,
    ) -> Option<Arc<ObjectMeta>> {
        if let Some(m) = self.last_good.get(&(by_name, k.clone())) {
            return Some(m);
        }
        if !self.tier.has_l2() {
            return None;
        }
        let bytes = self
            .tier
            .get(&self.tier.keys.meta(tenant, name))
            .await
            .ok()??;
        let stored = mosaic_cache::codec::decode::<ObjectDef>(&bytes)
            .filter(|s| s.value.format == crate::model::DOC_FORMAT)?;
        let mut def = stored.value;
        def.version = stored.version;
        self.last_good.count();
        Some(Arc::new(ObjectMeta::new(def)))
    }

    /// The L2 copy unless it is missing, older than an announced version,
    /// or due for an early refresh (then this reader reloads it).
    async fn l2_copy(&self, tenant: &str, name: &str) -> Option<Arc<ObjectMeta>> {
        if !self.tier.has_l2() {
            return None;
        }
        let stats = &self.tier.l2_metadata;
        let bytes = match self.tier.get(&self.tier.keys.meta(tenant, name)).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                stats.miss();
                return None;
            }
            Err(_) => {
                stats.error();
                return None;
            }
        };
        let Some(stored) = mosaic_cache::codec::decode::<ObjectDef>(&bytes)
            .filter(|s| s.value.format == crate::model::DOC_FORMAT)
        else {
            stats.miss();
            return None;
        };
        let mut def = stored.value;
        def.version = stored.version;
        let remaining = CacheTier::remaining(stored.written_ms, self.tier.config.metadata_l2_ttl);
        let took = Duration::from_millis(stored.compute_ms.max(1));
        if self.is_stale(&def)
            || mosaic_cache::xfetch::roll(remaining, took, self.tier.config.early_refresh_beta)
        {
            stats.miss();
            return None;
        }
        stats.hit();
        metrics::counter!("cache_hits_total", "cache" => "metadata", "layer" => "l2").increment(1);
        Some(Arc::new(ObjectMeta::new(def)))
    }

    /// Puts a definition read from the database in L2, by name and by id,
    /// unless a newer version was committed meanwhile.
    async fn fill_l2(&self, tenant: &str, meta: &ObjectMeta, took: Duration) {
        if !self.tier.has_l2() {
            return;
        }
        let def = &meta.def;
        let Some(bytes) = self.tier.encode(def.version, took, def) else {
            return;
        };
        let vkey = self.tier.keys.meta_version(tenant, &def.id);
        let ttl = self.tier.config.metadata_l2_ttl;
        for k in [
            self.tier.keys.meta(tenant, &def.api_name),
            self.tier.keys.meta(tenant, &def.id),
        ] {
            match self.tier.fill(&k, &vkey, def.version, &bytes, ttl).await {
                Ok(true) => self.tier.l2_metadata.loaded(took),
                Ok(false) => {}
                Err(_) => {
                    self.tier.l2_metadata.error();
                    return;
                }
            }
        }
    }

    /// XFetch on L1: close to expiry, one reader reloads the entry in the
    /// background while everyone is still served the current copy.
    fn maybe_refresh_early(&self, k: &Key, c: &Cached, by_name: bool) {
        let ttl = self.tier.config.metadata.ttl;
        let remaining = ttl.saturating_sub(c.loaded.elapsed());
        // Far from expiry the roll cannot succeed: skip the random draw.
        if remaining > c.took.saturating_mul(64)
            || !mosaic_cache::xfetch::roll(remaining, c.took, self.tier.config.early_refresh_beta)
        {
            return;
        }
        mosaic_cache::TierStats::add(&self.tier.stats.early_refreshes);
        let cache = if by_name {
            self.by_name.clone()
        } else {
            self.by_id.clone()
        };
        let (store, k) = (self.store.clone(), k.clone());
        let loads = self.database_loads.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let row = if by_name {
                store.object_by_name(&k.0, &k.1).await
            } else {
                store.object_by_id(&k.0, &k.1).await
            };
            loads.fetch_add(1, Ordering::Relaxed);
            if let Ok(Some(row)) = row {
                if let Ok(meta) = decode(&row) {
                    cache
                        .insert(
                            k,
                            Cached {
                                meta,
                                loaded: Instant::now(),
                                took: started.elapsed(),
                            },
                        )
                        .await;
                }
            }
        });
    }

    /// Loads every object of a tenant into L1 (and L2) in one database
    /// read, once per L1 lifetime: called on a user's login so the first
    /// requests of a session do not each miss.
    pub async fn warm(&self, tenant: &str) -> MosaicResult<usize> {
        if self.warmed.contains_key(tenant) {
            return Ok(0);
        }
        self.warmed.insert(tenant.to_string(), ());
        let started = Instant::now();
        let epoch = self.epoch();
        let rows = self.store.list_objects(tenant).await?;
        self.database_loads.fetch_add(1, Ordering::Relaxed);
        let took = started.elapsed();
        let list = rows.iter().map(decode).collect::<MosaicResult<Vec<_>>>()?;
        if self.epoch() != epoch {
            return Ok(0);
        }
        for meta in &list {
            let entry = Cached {
                meta: meta.clone(),
                loaded: Instant::now(),
                took,
            };
            self.by_name
                .insert(key(tenant, &meta.def.api_name), entry.clone())
                .await;
            self.by_id.insert(key(tenant, &meta.def.id), entry).await;
            self.fill_l2(tenant, meta, took).await;
        }
        self.lists
            .insert(tenant.to_string(), Arc::new(list.clone()))
            .await;
        mosaic_cache::TierStats::add(&self.tier.stats.warmed_tenants);
        Ok(list.len())
    }

    /// Every object of a tenant, ordered by api name.
    pub async fn objects(&self, tenant: &str) -> MosaicResult<Arc<Vec<Arc<ObjectMeta>>>> {
        let store = self.store.clone();
        let t = tenant.to_string();
        let epoch = self.epoch();
        let list = match self
            .lists
            .try_get_with::<_, MosaicError>(tenant.to_string(), async move {
                let rows = store.list_objects(&t).await?;
                let list = rows.iter().map(decode).collect::<MosaicResult<Vec<_>>>()?;
                Ok(Arc::new(list))
            })
            .await
        {
            Ok(list) => list,
            Err(e) => {
                return self
                    .last_good_lists
                    .or_stale(&tenant.to_string(), (*e).clone(), |_| true)
            }
        };
        self.last_good_lists
            .remember(tenant.to_string(), list.clone());
        if self.epoch() != epoch {
            self.lists.invalidate(tenant).await;
        }
        Ok(list)
    }

    /// Drops every cached entry of an object (called after each change).
    pub async fn invalidate(&self, tenant: &str, def: &ObjectDef) {
        self.epoch.fetch_add(1, Ordering::Release);
        self.by_name.invalidate(&key(tenant, &def.api_name)).await;
        self.by_id.invalidate(&key(tenant, &def.id)).await;
        self.last_good.forget(&(true, key(tenant, &def.api_name)));
        self.last_good.forget(&(false, key(tenant, &def.id)));
        self.lists.invalidate(tenant).await;
        self.last_good_lists.forget(&tenant.to_string());
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// Remembers the newest version announced for an object.
    fn announce(&self, id: &str, version: i64) {
        if self.known.get(id).is_none_or(|v| v < version) {
            self.known.insert(id.to_string(), version);
        }
    }

    /// Applies an invalidation from another instance (or, for
    /// [`Invalidation::All`], from a lost subscription) to this process's
    /// caches. Other kinds are not the metadata service's.
    pub async fn apply(&self, event: &Invalidation) {
        match event {
            Invalidation::Object {
                tenant,
                id,
                names,
                version,
            } => {
                self.announce(id, *version);
                self.epoch.fetch_add(1, Ordering::Release);
                for n in names {
                    self.by_name.invalidate(&key(tenant, n)).await;
                    self.last_good.forget(&(true, key(tenant, n)));
                }
                self.by_id.invalidate(&key(tenant, id)).await;
                self.last_good.forget(&(false, key(tenant, id)));
                self.lists.invalidate(tenant).await;
                self.last_good_lists.forget(tenant);
                self.warmed.invalidate(tenant.as_str());
                self.epoch.fetch_add(1, Ordering::Release);
            }
            Invalidation::Objects { tenant } => {
                self.epoch.fetch_add(1, Ordering::Release);
                self.lists.invalidate(tenant).await;
                self.last_good_lists.forget(tenant);
                self.warmed.invalidate(tenant.as_str());
                self.epoch.fetch_add(1, Ordering::Release);
            }
            Invalidation::All => {
                self.epoch.fetch_add(1, Ordering::Release);
                self.by_name.invalidate_all();
                self.by_id.invalidate_all();
                self.lists.invalidate_all();
                self.warmed.invalidate_all();
                self.epoch.fetch_add(1, Ordering::Release);
            }
            _ => {}
        }
    }

    /// Tells the other instances that an object changed (after the commit
    /// and this process's own invalidation).
    async fn announce_change(&self, tenant: &str, before: &ObjectDef, after: Option<&ObjectDef>) {
        let mut names = vec![before.api_name.to_lowercase()];
        let version = match after {
            Some(a) => {
                if !a.api_name.eq_ignore_ascii_case(&before.api_name) {
                    names.push(a.api_name.to_lowercase());
                }
                a.version
            }
            // Deleted: no copy of any version is current.
            None => before.version + 1,
        };
        self.announce(&before.id, version);
        self.tier
            .publish(Invalidation::Object {
                tenant: tenant.to_string(),
                id: before.id.clone(),
                names,
                version,
            })
            .await;
    }

    /// A counter that moves on every metadata change of any tenant, after
    /// the caches are cleared: caches of things derived from several
    /// definitions (e.g. a rendered describe) key on it.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Entries in the L1 object cache (by name) and in the compiled-formula
    /// cache; moka's counts are approximate while writes are pending.
    pub fn cache_entries(&self) -> (u64, u64) {
        (self.by_name.entry_count(), self.compiled.entry_count())
    }

    /// The lookup / master-detail fields of other objects that point at `object_id`.
    pub async fn children(
        &self,
        tenant: &str,
        object_id: &str,
    ) -> MosaicResult<Vec<(Arc<ObjectMeta>, FieldDef)>> {
        let all = self.objects(tenant).await?;
        let mut out = Vec::new();
        for o in all.iter() {
            for f in &o.def.fields {
                if f.lookup_object_id.as_deref() == Some(object_id) {
                    out.push((o.clone(), f.clone()));
                }
            }
        }
        Ok(out)
    }

    fn resolver(
        list: &[Arc<ObjectMeta>],
        extra: Option<&ObjectDef>,
    ) -> impl Fn(&str) -> Option<(String, String)> {
        let mut names: Vec<(String, String)> = list
            .iter()
            .map(|o| (o.def.id.clone(), o.def.api_name.clone()))
            .collect();
        if let Some(e) = extra {
            names.push((e.id.clone(), e.api_name.clone()));
        }
        move |n: &str| {
            names
                .iter()
                .find(|(_, a)| a.eq_ignore_ascii_case(n))
                .cloned()
        }
    }

    pub(crate) async fn commit(
        &self,
        tenant: &str,
        before: &ObjectDef,
        mut after: ObjectDef,
    ) -> MosaicResult<Arc<ObjectMeta>> {
        after.version = before.version + 1;
        after.updated_at = Utc::now();
        let row = encode(&after, tenant)?;
        let res = self.store.update_object(row, before.version).await;
        self.invalidate(tenant, before).await;
        self.invalidate(tenant, &after).await;
        res?;
        self.announce_change(tenant, before, Some(&after)).await;
        Ok(Arc::new(ObjectMeta::new(after)))
    }

    pub(crate) fn check_version(def: &ObjectDef, requested: Option<i64>) -> MosaicResult<()> {
        match requested {
            Some(v) if v != def.version => Err(MosaicError::field(
                ErrorCode::CONFLICT,
                "version",
                format!(
                    "object '{}' is at version {}, the change was based on version {v}; reload and retry",
                    def.api_name, def.version
                ),
            )),
            _ => Ok(()),
        }
    }

    pub async fn create_object(
        &self,
        tenant: &str,
        input: ObjectInput,
    ) -> MosaicResult<Arc<ObjectMeta>> {
        let mut def = new_object(&input)?;
        let list = self.objects(tenant).await?;
        if list.len() >= MAX_OBJECTS_PER_TENANT {
            return Err(MosaicError::new(
                ErrorCode::LIMIT_EXCEEDED,
                format!("a tenant may define at most {MAX_OBJECTS_PER_TENANT} objects"),
            ));
        }
        if let Some(o) = list
            .iter()
            .find(|o| o.def.api_name.eq_ignore_ascii_case(&def.api_name))
        {
            return Err(MosaicError::field(
                ErrorCode::DUPLICATE_VALUE,
                "api_name",
                format!("an object named '{}' already exists", o.def.api_name),
            ));
        }
        let resolve = Self::resolver(&list, Some(&def));
        for (i, fi) in input.fields.unwrap_or_default().into_iter().enumerate() {
            let mut f = new_field(fi, &resolve).map_err(|mut e| {
                e.fields = e
                    .fields
                    .iter()
                    .map(|x| format!("fields[{i}].{x}"))
                    .collect();
                e
            })?;
            self.add_to(&mut def, &mut f)?;
        }
        self.store.insert_object(encode(&def, tenant)?).await?;
        self.objects_changed(tenant).await;
        Ok(Arc::new(ObjectMeta::new(def)))
    }

    /// Objects were created or removed: the tenant's object list is
    /// forgotten here and on every instance.
    pub(crate) async fn objects_changed(&self, tenant: &str) {
        self.lists.invalidate(tenant).await;
        self.epoch.fetch_add(1, Ordering::Release);
        self.tier
            .publish(Invalidation::Objects {
                tenant: tenant.to_string(),
            })
            .await;
    }

    fn add_to(&self, def: &mut ObjectDef, f: &mut FieldDef) -> MosaicResult<()> {
        add_field_to(def, f)
    }
}

/// Adds a new field to a definition: name clash, field and master-detail
/// limits, child relationship name and a slot of its pool.
pub(crate) fn add_field_to(def: &mut ObjectDef, f: &mut FieldDef) -> MosaicResult<()> {
    if def.fields.len() >= MAX_FIELDS_PER_OBJECT {
        return Err(MosaicError::new(
            ErrorCode::LIMIT_EXCEEDED,
            format!("an object may have at most {MAX_FIELDS_PER_OBJECT} fields"),
        ));
    }
    if let Some(o) = def
        .fields
        .iter()
        .find(|x| x.api_name.eq_ignore_ascii_case(&f.api_name))
    {
        return Err(MosaicError::field(
            ErrorCode::DUPLICATE_VALUE,
            "api_name",
            format!(
                "object '{}' already has a field named '{}'",
                def.api_name, o.api_name
            ),
        ));
    }
    if f.data_type == DataType::MasterDetail
        && def
            .fields
            .iter()
            .filter(|x| x.data_type == DataType::MasterDetail)
            .count()
            >= 2
    {
        return Err(MosaicError::field(
            ErrorCode::LIMIT_EXCEEDED,
            "data_type",
            "an object may have at most 2 master_detail fields",
        ));
    }
    if f.data_type.is_reference() && f.relationship_name.is_none() {
        f.relationship_name = Some(crate::model::default_child_relationship(&def.api_name));
    }
    if let Some(pool) = f.data_type.pool() {
        f.slot = Some(allocate(def, pool)?);
    }
    def.fields.push(f.clone());
    Ok(())
}

impl MetadataService {
    pub async fn update_object(
        &self,
        tenant: &str,
        name: &str,
        input: ObjectInput,
    ) -> MosaicResult<Arc<ObjectMeta>> {
        for attempt in 0.. {
            let cur = self.fresh(tenant, name).await?;
            Self::check_version(&cur.def, input.version)?;
            let mut next = cur.def.clone();
            apply_object_update(&mut next, &input)?;
            if next.sharing_model == SharingModel::ControlledByParent
                && !next
                    .fields
                    .iter()
                    .any(|f| f.data_type == DataType::MasterDetail)
            {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    "sharing_model",
                    "controlled_by_parent needs a master_detail field",
                ));
            }
            if next.sharing_model == SharingModel::ControlledByParent
                && !next.sharing_rules.is_empty()
            {
                return Err(MosaicError::field(
                    ErrorCode::INVALID_INPUT,
                    "sharing_model",
                    format!(
                        "{} has sharing rules; delete them before sharing its records through their master record",
                        next.api_name
                    ),
                ));
            }
            match self.commit(tenant, &cur.def, next).await {
                Err(e)
                    if e.code == ErrorCode::CONFLICT
                        && input.version.is_none()
                        && attempt < INTERNAL_RETRIES =>
                {
                    continue
                }
                r => return r,
            }
        }
        unreachable!()
    }

    /// The current definition straight from the store (changes must not be
    /// based on a cached copy).
    pub(crate) async fn fresh(&self, tenant: &str, name: &str) -> MosaicResult<Arc<ObjectMeta>> {
        match self.store.object_by_name(tenant, name).await? {
            Some(row) => decode(&row),
            None => Err(not_found(name)),
        }
    }

    pub async fn delete_object(&self, tenant: &str, name: &str) -> MosaicResult<()> {
        let cur = self.fresh(tenant, name).await?;
        let children = self.children(tenant, &cur.def.id).await?;
        let foreign: Vec<String> = children
            .iter()
            .filter(|(o, _)| o.def.id != cur.def.id)
            .map(|(o, f)| format!("{}.{}", o.def.api_name, f.api_name))
            .collect();
        let all = self.store.list_objects(tenant).await?;
        let defs = all.iter().map(decode).collect::<MosaicResult<Vec<_>>>()?;
        let foreign: Vec<String> = foreign
            .into_iter()
            .chain(crate::rollup::dependents(&defs, &cur.def.id, None))
            .collect();
        if !foreign.is_empty() {
            return Err(MosaicError::new(
                ErrorCode::DELETE_FAILED,
                format!(
                    "object '{}' is referenced by {}; delete those fields first",
                    cur.def.api_name,
                    foreign.join(", ")
                ),
            ));
        }
        self.store.delete_object(tenant, &cur.def.id).await?;
        self.invalidate(tenant, &cur.def).await;
        self.announce_change(tenant, &cur.def, None).await;
        self.detach_from_parents(tenant, &cur.def.id, None).await;
        self.records.purge_object(tenant, &cur.def.id).await
    }

    pub async fn add_field(
        &self,
        tenant: &str,
        object: &str,
        input: FieldInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, FieldDef)> {
        let requested = input.version;
        let list = self.objects(tenant).await?;
        let resolve = Self::resolver(&list, None);
        let mut f = new_field(input, &resolve)?;
        let field_id = f.id.clone();
        for attempt in 0.. {
            let cur = self.fresh(tenant, object).await?;
            Self::check_version(&cur.def, requested)?;
            self.clear_pending(tenant, &cur.def).await?;
            let mut next = cur.def.clone();
            next.pending_clear.clear();
            self.add_to(&mut next, &mut f)?;
            self.check_rollups(tenant, &mut next).await?;
            self.check_formulas(tenant, &next).await?;
            if let Some(spec) = index_spec(&f) {
                // A new slot is empty, but clear any stale pivots defensively.
                self.records.build_index(tenant, &next.id, &spec).await?;
            }
            match self.commit(tenant, &cur.def, next).await {
                Err(e)
                    if e.code == ErrorCode::CONFLICT
                        && requested.is_none()
                        && attempt < INTERNAL_RETRIES =>
                {
                    f.slot = None;
                    continue;
                }
                Err(e) => return Err(e),
                Ok(m) => {
                    let field = m
                        .def
                        .fields
                        .iter()
                        .find(|x| x.id == field_id)
                        .cloned()
                        .ok_or_else(|| MosaicError::internal("field vanished"))?;
                    if let (DataType::Boolean, Some(slot)) = (field.data_type, field.slot) {
                        // Booleans are never null: existing records read false.
                        self.records
                            .fill_nulls(
                                tenant,
                                &m.def.id,
                                slot,
                                &mosaic_types::Value::Boolean(false),
                            )
                            .await?;
                    }
                    return Ok((m, field));
                }
            }
        }
        unreachable!()
    }

    async fn clear_pending(&self, tenant: &str, def: &ObjectDef) -> MosaicResult<()> {
        for s in &def.pending_clear {
            self.records.clear_slot(tenant, &def.id, *s).await?;
        }
        Ok(())
    }

    pub async fn update_field(
        &self,
        tenant: &str,
        object: &str,
        field: &str,
        input: FieldInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, FieldDef)> {
        let requested = input.version;
        let list = self.objects(tenant).await?;
        let resolve = Self::resolver(&list, None);
        let cur = self.fresh(tenant, object).await?;
        Self::check_version(&cur.def, requested)?;
        let old = cur
            .field(field)
            .cloned()
            .ok_or_else(|| field_not_found(&cur.def.api_name, field))?;
        let mut f = old.clone();
        apply_update(&mut f, input, &resolve)?;
        if let (Some(slot), Some(new_len), Some(old_len)) = (f.slot, f.length, old.length) {
            if new_len < old_len {
                let mut longest = self.records.max_text_len(tenant, &cur.def.id, slot).await?;
                if f.data_type == DataType::EncryptedText {
                    // Stored as `enc1:` + base64(12-byte nonce ‖ ciphertext ‖
                    // 16-byte tag): the plaintext has at most this many bytes.
                    longest = (longest.saturating_sub(5) / 4 * 3).saturating_sub(28);
                }
                if longest > new_len as usize {
                    return Err(MosaicError::field(
                        ErrorCode::STRING_TOO_LONG,
                        "length",
                        format!("existing values of '{}' are up to {longest} characters; the new length {new_len} would truncate them", old.api_name),
                    ));
                }
            }
        }
        let mut next = cur.def.clone();
        if !f.api_name.eq_ignore_ascii_case(&old.api_name)
            && next
                .fields
                .iter()
                .any(|x| x.id != f.id && x.api_name.eq_ignore_ascii_case(&f.api_name))
        {
            return Err(MosaicError::field(
                ErrorCode::DUPLICATE_VALUE,
                "api_name",
                format!(
                    "object '{}' already has a field named '{}'",
                    next.api_name, f.api_name
                ),
            ));
        }
        if !f.api_name.eq_ignore_ascii_case(&old.api_name) {
            self.check_no_dependents(tenant, &cur.def, &old, "rename")
                .await?;
            crate::layout::rename_field(&mut next, &old.api_name, &f.api_name);
            crate::listview::rename_field(&mut next, &old.api_name, &f.api_name);
        }
        if let Some(x) = next.fields.iter_mut().find(|x| x.id == f.id) {
            *x = f.clone();
        }
        self.check_rollups(tenant, &mut next).await?;
        if let Some(x) = next.fields.iter().find(|x| x.id == f.id) {
            f = x.clone();
        }
        self.check_formulas(tenant, &next).await?;
        let old_spec = index_spec(&old);
        let new_spec = index_spec(&f);
        let rebuild = old_spec.as_ref().map(|s| (s.unique, s.indexed))
            != new_spec.as_ref().map(|s| (s.unique, s.indexed));
        if rebuild {
            match &new_spec {
                Some(spec) => self.records.build_index(tenant, &next.id, spec).await?,
                None => {
                    if let Some(slot) = f.slot {
                        self.records.drop_index(tenant, &next.id, slot).await?
                    }
                }
            }
        }
        if let Some(x) = next.fields.iter_mut().find(|x| x.id == f.id) {
            *x = f.clone();
        }
        match self.commit(tenant, &cur.def, next).await {
            Ok(m) => Ok((m, f)),
            Err(e) => {
                if rebuild {
                    // Put the pivots back as the committed definition expects.
                    match &old_spec {
                        Some(spec) => {
                            let _ = self.records.build_index(tenant, &cur.def.id, spec).await;
                        }
                        None => {
                            if let Some(slot) = old.slot {
                                let _ = self.records.drop_index(tenant, &cur.def.id, slot).await;
                            }
                        }
                    }
                }
                Err(e)
            }
        }
    }

    pub async fn delete_field(
        &self,
        tenant: &str,
        object: &str,
        field: &str,
        requested: Option<i64>,
    ) -> MosaicResult<Arc<ObjectMeta>> {
        for attempt in 0.. {
            let cur = self.fresh(tenant, object).await?;
            Self::check_version(&cur.def, requested)?;
            let f = cur
                .field(field)
                .cloned()
                .ok_or_else(|| field_not_found(&cur.def.api_name, field))?;
            self.check_no_dependents(tenant, &cur.def, &f, "delete")
                .await?;
            if let Some(r) = cur.def.validation_rules.iter().find(|r| {
                r.error_display_field
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(&f.api_name))
            }) {
                return Err(MosaicError::field(
                    ErrorCode::DELETE_FAILED,
                    f.api_name.clone(),
                    format!(
                        "cannot delete field '{}': validation rule {} shows its errors on it",
                        f.api_name, r.name
                    ),
                ));
            }
            let mut next = cur.def.clone();
            next.fields.retain(|x| x.id != f.id);
            crate::layout::remove_field(&mut next, &f.api_name);
            crate::listview::remove_field(&mut next, &f.api_name);
            if let Some(slot) = f.slot {
                next.pending_clear.push(slot);
            }
            if next.sharing_model == SharingModel::ControlledByParent
                && !next
                    .fields
                    .iter()
                    .any(|x| x.data_type == DataType::MasterDetail)
            {
                return Err(MosaicError::field(
                    ErrorCode::DELETE_FAILED,
                    field,
                    "the object's sharing is controlled by its parent through this master_detail field; change sharing_model first",
                ));
            }
            match self.commit(tenant, &cur.def, next).await {
                Err(e)
                    if e.code == ErrorCode::CONFLICT
                        && requested.is_none()
                        && attempt < INTERNAL_RETRIES =>
                {
                    continue
                }
                Err(e) => return Err(e),
                Ok(m) => {
                    // Parents' related lists through (or showing) the field.
                    self.detach_from_parents(tenant, &m.def.id, Some(&f.api_name))
                        .await;
                    // Clear the data now; the slot stays unallocatable until
                    // the clear is recorded.
                    if let Some(slot) = f.slot {
                        self.records.clear_slot(tenant, &m.def.id, slot).await?;
                        let mut done = m.def.clone();
                        done.pending_clear.retain(|s| *s != slot);
                        return match self.commit(tenant, &m.def, done).await {
                            Ok(m2) => Ok(m2),
                            // A concurrent change: the slot stays pending and
                            // is cleared again before the next allocation.
                            Err(e) if e.code == ErrorCode::CONFLICT => Ok(m),
                            Err(e) => Err(e),
                        };
                    }
                    return Ok(m);
                }
            }
        }
        unreachable!()
    }
}

fn rule_not_found(object: &str, rule: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "The requested resource does not exist: object '{object}' has no validation rule '{}'",
        rule.chars().take(80).collect::<String>()
    ))
}

impl MetadataService {
    /// Adds a validation rule (its formula must compile to a boolean).
    pub async fn add_rule(
        &self,
        tenant: &str,
        object: &str,
        input: RuleInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, ValidationRule)> {
        let cur = self.fresh(tenant, object).await?;
        Self::check_version(&cur.def, input.version)?;
        if cur.def.validation_rules.len() >= MAX_VALIDATION_RULES {
            return Err(MosaicError::new(
                ErrorCode::LIMIT_EXCEEDED,
                format!("an object may have at most {MAX_VALIDATION_RULES} validation rules"),
            ));
        }
        let mut rule = ValidationRule::blank();
        apply_rule(&cur.def, &mut rule, input)?;
        let mut next = cur.def.clone();
        next.validation_rules.push(rule.clone());
        self.check_formulas(tenant, &next).await?;
        let m = self.commit(tenant, &cur.def, next).await?;
        Ok((m, rule))
    }

    fn find_rule<'a>(def: &'a ObjectDef, rule: &str) -> Option<&'a ValidationRule> {
        def.validation_rules
            .iter()
            .find(|r| r.id == rule || r.name.eq_ignore_ascii_case(rule))
    }

    pub async fn update_rule(
        &self,
        tenant: &str,
        object: &str,
        rule: &str,
        input: RuleInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, ValidationRule)> {
        let cur = self.fresh(tenant, object).await?;
        Self::check_version(&cur.def, input.version)?;
        let mut r = Self::find_rule(&cur.def, rule)
            .cloned()
            .ok_or_else(|| rule_not_found(&cur.def.api_name, rule))?;
        apply_rule(&cur.def, &mut r, input)?;
        let mut next = cur.def.clone();
        if let Some(x) = next.validation_rules.iter_mut().find(|x| x.id == r.id) {
            *x = r.clone();
        }
        self.check_formulas(tenant, &next).await?;
        let m = self.commit(tenant, &cur.def, next).await?;
        Ok((m, r))
    }

    pub async fn delete_rule(&self, tenant: &str, object: &str, rule: &str) -> MosaicResult<()> {
        let cur = self.fresh(tenant, object).await?;
        let r = Self::find_rule(&cur.def, rule)
            .cloned()
            .ok_or_else(|| rule_not_found(&cur.def.api_name, rule))?;
        let mut next = cur.def.clone();
        next.validation_rules.retain(|x| x.id != r.id);
        self.commit(tenant, &cur.def, next).await?;
        Ok(())
    }

    /// A validation rule by id or name.
    pub async fn rule(
        &self,
        tenant: &str,
        object: &str,
        rule: &str,
    ) -> MosaicResult<ValidationRule> {
        let o = self.object(tenant, object).await?;
        Self::find_rule(&o.def, rule)
            .cloned()
            .ok_or_else(|| rule_not_found(&o.def.api_name, rule))
    }
}

fn workflow_not_found(object: &str, rule: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "object '{object}' has no workflow rule '{}'",
        rule.chars().take(80).collect::<String>()
    ))
}

impl MetadataService {
    fn find_workflow<'a>(
        def: &'a ObjectDef,
        rule: &str,
    ) -> Option<&'a crate::workflow::WorkflowRule> {
        def.workflow_rules
            .iter()
            .find(|r| r.id == rule || r.name.eq_ignore_ascii_case(rule))
    }

    /// Adds a workflow rule; everything it names is checked now.
    pub async fn add_workflow(
        &self,
        tenant: &str,
        object: &str,
        input: crate::workflow::WorkflowInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, crate::workflow::WorkflowRule)> {
        let (cur, next, rule) = self.draft_workflow(tenant, object, input).await?;
        let m = self.commit(tenant, &cur.def, next).await?;
        Ok((m, rule))
    }

    /// Checks a new workflow rule exactly as [`MetadataService::add_workflow`]
    /// does, without saving it: the object as it is, the object with the
    /// rule, and the rule.
    pub async fn draft_workflow(
        &self,
        tenant: &str,
        object: &str,
        input: crate::workflow::WorkflowInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, ObjectDef, crate::workflow::WorkflowRule)> {
        use crate::workflow::*;
        let cur = self.fresh(tenant, object).await?;
        Self::check_version(&cur.def, input.version)?;
        if cur.def.workflow_rules.len() >= MAX_WORKFLOW_RULES {
            return Err(MosaicError::new(
                ErrorCode::LIMIT_EXCEEDED,
                format!("an object may have at most {MAX_WORKFLOW_RULES} workflow rules"),
            ));
        }
        if input.trigger_type.is_none() {
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "trigger_type",
                "trigger_type is required (created, updated, created_or_updated or deleted)",
            ));
        }
        let now = chrono::Utc::now();
        let mut rule = WorkflowRule {
            id: mosaic_types::new_id(),
            name: String::new(),
            description: None,
            trigger_type: Trigger::CreatedOrUpdated,
            filter_criteria: None,
            formula: None,
            re_evaluation: ReEvaluation::default(),
            execution_order: cur.def.workflow_rules.len() as i64 + 1,
            is_active: true,
            actions: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        apply_workflow(&cur.def, &mut rule, input, &self.outbound_guard())?;
        let mut next = cur.def.clone();
        next.workflow_rules.push(rule.clone());
        next.workflow_rules.sort_by_key(|r| r.execution_order);
        self.check_formulas(tenant, &next).await?;
        Ok((cur, next, rule))
    }

    pub async fn update_workflow(
        &self,
        tenant: &str,
        object: &str,
        rule: &str,
        input: crate::workflow::WorkflowInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, crate::workflow::WorkflowRule)> {
        let cur = self.fresh(tenant, object).await?;
        Self::check_version(&cur.def, input.version)?;
        let mut r = Self::find_workflow(&cur.def, rule)
            .cloned()
            .ok_or_else(|| workflow_not_found(&cur.def.api_name, rule))?;
        crate::workflow::apply_workflow(&cur.def, &mut r, input, &self.outbound_guard())?;
        r.updated_at = chrono::Utc::now();
        let mut next = cur.def.clone();
        if let Some(x) = next.workflow_rules.iter_mut().find(|x| x.id == r.id) {
            *x = r.clone();
        }
        next.workflow_rules.sort_by_key(|r| r.execution_order);
        self.check_formulas(tenant, &next).await?;
        let m = self.commit(tenant, &cur.def, next).await?;
        Ok((m, r))
    }

    pub async fn delete_workflow(
        &self,
        tenant: &str,
        object: &str,
        rule: &str,
    ) -> MosaicResult<()> {
        let cur = self.fresh(tenant, object).await?;
        let r = Self::find_workflow(&cur.def, rule)
            .cloned()
            .ok_or_else(|| workflow_not_found(&cur.def.api_name, rule))?;
        let mut next = cur.def.clone();
        next.workflow_rules.retain(|x| x.id != r.id);
        self.commit(tenant, &cur.def, next).await?;
        Ok(())
    }

    /// A workflow rule by id or name.
    pub async fn workflow(
        &self,
        tenant: &str,
        object: &str,
        rule: &str,
    ) -> MosaicResult<crate::workflow::WorkflowRule> {
        let o = self.object(tenant, object).await?;
        Self::find_workflow(&o.def, rule)
            .cloned()
            .ok_or_else(|| workflow_not_found(&o.def.api_name, rule))
    }
}

fn sharing_rule_not_found(id: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "no sharing rule with id '{}'",
        id.chars().take(80).collect::<String>()
    ))
}

/// Sharing rules: kept in their object's definition, addressed by id.
impl MetadataService {
    /// Every sharing rule of the tenant with its object.
    pub async fn sharing_rules(
        &self,
        tenant: &str,
    ) -> MosaicResult<Vec<(Arc<ObjectMeta>, crate::sharing::SharingRule)>> {
        let objects = self.objects(tenant).await?;
        Ok(objects
            .iter()
            .flat_map(|o| o.def.sharing_rules.iter().map(|r| (o.clone(), r.clone())))
            .collect())
    }

    /// One sharing rule by id, with its object.
    pub async fn sharing_rule(
        &self,
        tenant: &str,
        id: &str,
    ) -> MosaicResult<(Arc<ObjectMeta>, crate::sharing::SharingRule)> {
        self.sharing_rules(tenant)
            .await?
            .into_iter()
            .find(|(_, r)| r.id == id)
            .ok_or_else(|| sharing_rule_not_found(id))
    }

    pub async fn add_sharing_rule(
        &self,
        tenant: &str,
        object: &str,
        input: crate::sharing::SharingRuleInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, crate::sharing::SharingRule)> {
        let cur = self.fresh(tenant, object).await?;
        Self::check_version(&cur.def, input.version)?;
        if cur.def.sharing_rules.len() >= crate::sharing::MAX_SHARING_RULES {
            return Err(MosaicError::new(
                ErrorCode::LIMIT_EXCEEDED,
                format!(
                    "an object may have at most {} sharing rules",
                    crate::sharing::MAX_SHARING_RULES
                ),
            ));
        }
        let mut rule = crate::sharing::new_sharing_rule(&input)?;
        crate::sharing::apply_sharing_rule(&cur.def, &mut rule, input)?;
        let mut next = cur.def.clone();
        next.sharing_rules.push(rule.clone());
        let m = self.commit(tenant, &cur.def, next).await?;
        Ok((m, rule))
    }

    /// Updates a rule; returns the object, the rule before and after.
    pub async fn update_sharing_rule(
        &self,
        tenant: &str,
        id: &str,
        input: crate::sharing::SharingRuleInput,
    ) -> MosaicResult<(
        Arc<ObjectMeta>,
        crate::sharing::SharingRule,
        crate::sharing::SharingRule,
    )> {
        let (obj, _) = self.sharing_rule(tenant, id).await?;
        let cur = self.fresh(tenant, obj.api_name()).await?;
        Self::check_version(&cur.def, input.version)?;
        let before = cur
            .def
            .sharing_rules
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| sharing_rule_not_found(id))?;
        let mut r = before.clone();
        crate::sharing::apply_sharing_rule(&cur.def, &mut r, input)?;
        r.updated_at = Utc::now();
        let mut next = cur.def.clone();
        if let Some(x) = next.sharing_rules.iter_mut().find(|x| x.id == r.id) {
            *x = r.clone();
        }
        let m = self.commit(tenant, &cur.def, next).await?;
        Ok((m, before, r))
    }

    /// Deletes a rule; returns its object and the rule.
    pub async fn delete_sharing_rule(
        &self,
        tenant: &str,
        id: &str,
    ) -> MosaicResult<(Arc<ObjectMeta>, crate::sharing::SharingRule)> {
        let (obj, _) = self.sharing_rule(tenant, id).await?;
        let cur = self.fresh(tenant, obj.api_name()).await?;
        let r = cur
            .def
            .sharing_rules
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or_else(|| sharing_rule_not_found(id))?;
        let mut next = cur.def.clone();
        next.sharing_rules.retain(|x| x.id != id);
        let m = self.commit(tenant, &cur.def, next).await?;
        Ok((m, r))
    }
}
