//! The shard router: one object that is the record store, query store,
//! automation store, share store and idempotency store of the platform, and
//! sends each call to the shard of its tenant (every such call names its
//! tenant; the few that span tenants — the delivery worker's claims, stats,
//! purges — go to every shard).
//!
//! The tenant → shard map comes from the [`ShardDirectory`] and is cached;
//! [`ShardRouter::refresh`] drops the cache when the directory's version has
//! moved (the serving process calls it every second), and a move made by
//! this process updates it at once. A tenant with no placement is placed on
//! first use by [`choose_shard`].

use crate::automation::{AutomationStore, Effect, HistoryRow, OutboxEntry, OutboxStats};
use crate::idempotency::{IdempotencyStore, KeptResponse, KeyRecord, Reservation};
use crate::meta_store::MetaStore;
use crate::query_store::{QueryPlan, QueryRows, QueryStore, Restrict, SearchHit};
use crate::record_store::*;
use crate::shards::{choose_shard, Load, ShardDirectory, ShardRow, LOCAL_SHARD};
use crate::sharing::{ShareRow, ShareStore, Visibility};
use crate::transfer::{is_moving, TenantTransfer};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::{ErrorCode, FlexSlot, MosaicError, MosaicResult, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

/// One shard's stores.
pub struct Shard {
    pub id: String,
    pub records: Arc<dyn RecordStore>,
    pub queries: Arc<dyn QueryStore>,
    pub automation: Arc<dyn AutomationStore>,
    pub shares: Arc<dyn ShareStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Counts what the shard holds.
    pub census: Arc<dyn ShardCensus>,
    /// Copies a tenant's rows in and out (tenant moves).
    pub transfer: Arc<dyn TenantTransfer>,
}

/// How long a write refused by a move waits for the cutover before it is
/// answered 503 (a cutover takes milliseconds; this covers a stalled one).
pub const MOVE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
const MOVE_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// What a shard holds, for the status view and `mosaic shard list`.
#[async_trait]
pub trait ShardCensus: Send + Sync {
    /// Records on the shard, every tenant and object together.
    async fn record_count(&self) -> MosaicResult<u64>;
}

#[async_trait]
impl ShardCensus for crate::SqliteRecordStore {
    async fn record_count(&self) -> MosaicResult<u64> {
        crate::SqliteRecordStore::record_count(self).await
    }
}

impl Shard {
    /// A shard whose one store is every store but the idempotency keys.
    pub fn on<S>(id: &str, store: Arc<S>, idempotency: Arc<dyn IdempotencyStore>) -> Shard
    where
        S: RecordStore
            + QueryStore
            + AutomationStore
            + ShareStore
            + ShardCensus
            + TenantTransfer
            + 'static,
    {
        Shard {
            id: id.to_string(),
            records: store.clone(),
            queries: store.clone(),
            automation: store.clone(),
            shares: store.clone(),
            idempotency,
            census: store.clone(),
            transfer: store,
        }
    }

    /// A SQLite shard: every store on one database.
    pub fn sqlite(id: &str, store: Arc<crate::SqliteRecordStore>) -> MosaicResult<Shard> {
        let idempotency = Arc::new(crate::SqliteIdempotencyStore::open(store.db().clone())?);
        Ok(Shard::on(id, store, idempotency))
    }
}

/// Opens the stores of a registered shard.
pub type ShardOpener = Arc<
    dyn Fn(
            &ShardRow,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = MosaicResult<Arc<Shard>>> + Send>>
        + Send
        + Sync,
>;

pub struct ShardRouter {
    directory: Arc<dyn ShardDirectory>,
    tenants: Arc<dyn MetaStore>,
    opener: ShardOpener,
    local: Arc<Shard>,
    shards: RwLock<HashMap<String, Arc<Shard>>>,
    placements: RwLock<HashMap<String, String>>,
    /// Every placement this process has read, kept when `placements` is
    /// cleared: while the metadata database (which holds the directory) is
    /// unavailable, tenants keep being routed to their last known shard.
    /// A tenant cannot move meanwhile (a move writes the directory).
    last_known: RwLock<HashMap<String, String>>,
    seen_version: AtomicI64,
}

/// A platform-wide call one shard could not answer: logged, and the other
/// shards' answers used.
fn skipped(shard: &str, what: &str, e: &MosaicError) {
    tracing::warn!(shard, error = %e.message, "could not {what} on a shard; it is skipped this time");
}

fn poisoned() -> MosaicError {
    MosaicError::internal("shard router lock poisoned")
}

impl ShardRouter {
    pub fn new(
        directory: Arc<dyn ShardDirectory>,
        tenants: Arc<dyn MetaStore>,
        local: Arc<Shard>,
        opener: ShardOpener,
    ) -> ShardRouter {
        ShardRouter {
            directory,
            tenants,
            opener,
            local,
            shards: RwLock::new(HashMap::new()),
            placements: RwLock::new(HashMap::new()),
            last_known: RwLock::new(HashMap::new()),
            seen_version: AtomicI64::new(-1),
        }
    }

    pub fn local(&self) -> &Arc<Shard> {
        &self.local
    }

    pub fn directory(&self) -> &Arc<dyn ShardDirectory> {
        &self.directory
    }

    /// Opens every registered shard not open yet and forgets cached
    /// placements when the directory changed since the last look.
    pub async fn refresh(&self) -> MosaicResult<()> {
        let v = self.directory.version().await?;
        if self.seen_version.swap(v, Ordering::SeqCst) == v {
            return Ok(());
        }
        for row in self.directory.shards().await? {
            let open = self
                .shards
                .read()
                .map_err(|_| poisoned())?
                .contains_key(&row.id);
            if !open {
                let s = (self.opener)(&row).await?;
                self.shards
                    .write()
                    .map_err(|_| poisoned())?
                    .insert(row.id.clone(), s);
            }
        }
        self.placements.write().map_err(|_| poisoned())?.clear();
        Ok(())
    }

    /// Every open shard, the local one first.
    pub fn all(&self) -> Vec<Arc<Shard>> {
        let mut out = vec![self.local.clone()];
        if let Ok(m) = self.shards.read() {
            let mut ids: Vec<&String> = m.keys().collect();
            ids.sort();
            out.extend(ids.into_iter().filter_map(|id| m.get(id).cloned()));
        }
        out
    }

    fn by_id(&self, id: &str) -> Option<Arc<Shard>> {
        if id == LOCAL_SHARD {
            return Some(self.local.clone());
        }
        self.shards.read().ok()?.get(id).cloned()
    }

    /// An open shard by id (opening shards registered since the last look).
    pub async fn shard_by_id(&self, id: &str) -> MosaicResult<Arc<Shard>> {
        if let Some(s) = self.by_id(id) {
            return Ok(s);
        }
        self.seen_version.store(-1, Ordering::SeqCst);
        self.refresh().await?;
        self.by_id(id)
            .ok_or_else(|| MosaicError::not_found(format!("no shard with id '{id}'")))
    }

    /// The shard of a tenant from the cache only (the local shard when not
    /// cached): for the synchronous diagnostics.
    pub fn cached(&self, tenant_id: &str) -> Arc<Shard> {
        self.placements
            .read()
            .ok()
            .and_then(|m| m.get(tenant_id).cloned())
            .and_then(|id| self.by_id(&id))
            .unwrap_or_else(|| self.local.clone())
    }

    /// Which shard holds a tenant (placing it on first use).
    pub async fn shard_id(&self, tenant_id: &str) -> MosaicResult<String> {
        if let Some(id) = self
            .placements
            .read()
            .map_err(|_| poisoned())?
            .get(tenant_id)
        {
            return Ok(id.clone());
        }
        let placement = match self.directory.placement(tenant_id).await {
            Ok(p) => p,
            Err(e) if e.code == ErrorCode::SERVICE_UNAVAILABLE => {
                let known = self.last_known.read().map_err(|_| poisoned())?;
                return known.get(tenant_id).cloned().ok_or(e);
            }
            Err(e) => return Err(e),
        };
        let id = match placement {
            Some(p) => p.shard_id,
            None => match self.tenants.tenant(tenant_id).await? {
                // Unknown tenants (probes, ids of nothing) read the local
                // shard and are not placed.
                None => return Ok(LOCAL_SHARD.to_string()),
                Some(t) => {
                    let shards = self.directory.shards().await?;
                    let load = self.load().await?;
                    let chosen = choose_shard(tenant_id, &t.tier, &shards, &load)?;
                    self.directory.assign(tenant_id, &chosen).await?.shard_id
                }
            },
        };
        self.placements
            .write()
            .map_err(|_| poisoned())?
            .insert(tenant_id.to_string(), id.clone());
        self.last_known
            .write()
            .map_err(|_| poisoned())?
            .insert(tenant_id.to_string(), id.clone());
        Ok(id)
    }

    /// Tenants per shard from the directory (records are not counted here:
    /// `mosaic shard list` counts them).
    pub async fn load(&self) -> MosaicResult<HashMap<String, Load>> {
        let mut out: HashMap<String, Load> = HashMap::new();
        for p in self.directory.placements().await? {
            out.entry(p.shard_id).or_default().tenants += 1;
        }
        Ok(out)
    }

    /// The stores of a tenant's shard.
    pub async fn shard(&self, tenant_id: &str) -> MosaicResult<Arc<Shard>> {
        let id = self.shard_id(tenant_id).await?;
        if let Some(s) = self.by_id(&id) {
            return Ok(s);
        }
        // Registered after our last refresh.
        self.seen_version.store(-1, Ordering::SeqCst);
        self.refresh().await?;
        self.by_id(&id).ok_or_else(|| {
            MosaicError::internal(format!(
                "tenant {tenant_id} is placed on unknown shard {id}"
            ))
        })
    }

    /// Runs `f` on the tenant's shard; a write refused because the tenant
    /// is being moved waits for the cutover and runs again on the shard the
    /// tenant moved to (or on the same one if the move was called off).
    /// Writes are never rejected for a move unless it takes longer than
    /// [`MOVE_WAIT`].
    pub async fn routed<T, F, Fut>(&self, tenant_id: &str, f: F) -> MosaicResult<T>
    where
        F: Fn(Arc<Shard>) -> Fut + Send,
        Fut: std::future::Future<Output = MosaicResult<T>> + Send,
        T: Send,
    {
        let started = std::time::Instant::now();
        loop {
            let shard = self.shard(tenant_id).await?;
            match f(shard.clone()).await {
                Err(e) if is_moving(&e) => self.await_move(tenant_id, &shard.id, started).await?,
                other => return other,
            }
        }
    }

    /// One wait step for a write refused by a move: a short sleep, then the
    /// tenant's placement read from the directory itself.
    async fn await_move(
        &self,
        tenant_id: &str,
        from: &str,
        started: std::time::Instant,
    ) -> MosaicResult<()> {
        if started.elapsed() > MOVE_WAIT {
            return Err(MosaicError::unavailable(
                "the tenant is being moved to another shard and the cutover is taking longer than expected; retry shortly",
            ));
        }
        tokio::time::sleep(MOVE_POLL).await;
        if let Some(p) = self.directory.placement(tenant_id).await? {
            if p.shard_id != from {
                self.moved(tenant_id, &p.shard_id);
            }
        }
        Ok(())
    }

    /// Points a tenant at another shard in this process's cache at once
    /// (after the directory was changed by a move).
    pub fn moved(&self, tenant_id: &str, shard_id: &str) {
        if let Ok(mut m) = self.placements.write() {
            m.insert(tenant_id.to_string(), shard_id.to_string());
        }
    }
}

#[async_trait]
impl RecordStore for ShardRouter {
    async fn lock_records(
        &self,
        tenant_id: &str,
        ids: &[String],
    ) -> MosaicResult<Option<crate::record_store::HeldRecordLock>> {
        self.shard(tenant_id)
            .await?
            .records
            .lock_records(tenant_id, ids)
            .await
    }

    async fn write(
        &self,
        tenant_id: &str,
        ops: Vec<WriteOp>,
        all_or_none: bool,
    ) -> MosaicResult<Vec<MosaicResult<WriteResult>>> {
        // A move's freeze refuses every row of a transaction alike, so one
        // refused operation means the whole write changed nothing.
        let refused = |r: &MosaicResult<Vec<MosaicResult<WriteResult>>>| match r {
            Err(e) => is_moving(e),
            Ok(v) => v.iter().any(|o| matches!(o, Err(e) if is_moving(e))),
        };
        let started = std::time::Instant::now();
        loop {
            let shard = self.shard(tenant_id).await?;
            let r = shard
                .records
                .write(tenant_id, ops.clone(), all_or_none)
                .await;
            if !refused(&r) {
                return r;
            }
            self.await_move(tenant_id, &shard.id, started).await?;
        }
    }

    async fn get(
        &self,
        tenant_id: &str,
        object_id: &str,
        id: &str,
        slots: &[FlexSlot],
    ) -> MosaicResult<Option<RecordRow>> {
        self.shard(tenant_id)
            .await?
            .records
            .get(tenant_id, object_id, id, slots)
            .await
    }

    async fn get_many(
        &self,
        tenant_id: &str,
        object_id: &str,
        ids: &[String],
        slots: &[FlexSlot],
    ) -> MosaicResult<Vec<RecordRow>> {
        self.shard(tenant_id)
            .await?
            .records
            .get_many(tenant_id, object_id, ids, slots)
            .await
    }

    async fn find_by_index(
        &self,
        tenant_id: &str,
        object_id: &str,
        spec: &IndexSpec,
        key: &Value,
    ) -> MosaicResult<Vec<String>> {
        self.shard(tenant_id)
            .await?
            .records
            .find_by_index(tenant_id, object_id, spec, key)
            .await
    }

    async fn clear_slot(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<()> {
        self.routed(tenant_id, |s| async move {
            s.records.clear_slot(tenant_id, object_id, slot).await
        })
        .await
    }

    async fn fill_nulls(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
        value: &Value,
    ) -> MosaicResult<()> {
        self.routed(tenant_id, |s| async move {
            s.records
                .fill_nulls(tenant_id, object_id, slot, value)
                .await
        })
        .await
    }

    async fn build_index(
        &self,
        tenant_id: &str,
        object_id: &str,
        spec: &IndexSpec,
    ) -> MosaicResult<()> {
        self.routed(tenant_id, |s| async move {
            s.records.build_index(tenant_id, object_id, spec).await
        })
        .await
    }

    async fn drop_index(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<()> {
        self.routed(tenant_id, |s| async move {
            s.records.drop_index(tenant_id, object_id, slot).await
        })
        .await
    }

    async fn purge_object(&self, tenant_id: &str, object_id: &str) -> MosaicResult<()> {
        self.routed(tenant_id, |s| async move {
            s.records.purge_object(tenant_id, object_id).await
        })
        .await
    }

    async fn max_text_len(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<usize> {
        self.shard(tenant_id)
            .await?
            .records
            .max_text_len(tenant_id, object_id, slot)
            .await
    }

    async fn count_filled(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<u64> {
        self.shard(tenant_id)
            .await?
            .records
            .count_filled(tenant_id, object_id, slot)
            .await
    }

    async fn locate(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<String>> {
        self.shard(tenant_id)
            .await?
            .records
            .locate(tenant_id, id)
            .await
    }

    async fn count(&self, tenant_id: &str, object_id: &str) -> MosaicResult<u64> {
        self.shard(tenant_id)
            .await?
            .records
            .count(tenant_id, object_id)
            .await
    }

    async fn undelete(&self, tenant_id: &str, op: UndeleteOp) -> MosaicResult<usize> {
        self.routed(tenant_id, |s| {
            let op = op.clone();
            async move { s.records.undelete(tenant_id, op).await }
        })
        .await
    }

    async fn bin_entry(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<BinEntry>> {
        self.shard(tenant_id)
            .await?
            .records
            .bin_entry(tenant_id, id)
            .await
    }

    async fn bin_entries(
        &self,
        tenant_id: &str,
        filter: &BinFilter,
    ) -> MosaicResult<Vec<BinEntry>> {
        self.shard(tenant_id)
            .await?
            .records
            .bin_entries(tenant_id, filter)
            .await
    }

    async fn purge_bin(
        &self,
        tenant_id: &str,
        roots: &[String],
        limit: usize,
    ) -> MosaicResult<usize> {
        self.routed(tenant_id, |s| async move {
            s.records.purge_bin(tenant_id, roots, limit).await
        })
        .await
    }

    async fn updated_ids(
        &self,
        tenant_id: &str,
        object_id: &str,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> MosaicResult<Vec<String>> {
        self.shard(tenant_id)
            .await?
            .records
            .updated_ids(tenant_id, object_id, start, end, limit)
            .await
    }
}

#[async_trait]
impl QueryStore for ShardRouter {
    async fn query(
        &self,
        tenant_id: &str,
        plan: Arc<QueryPlan>,
        restrict: Restrict,
        keep: usize,
        max_rows: usize,
    ) -> MosaicResult<QueryRows> {
        self.shard(tenant_id)
            .await?
            .queries
            .query(tenant_id, plan, restrict, keep, max_rows)
            .await
    }

    fn statement(&self, tenant_id: &str, plan: &QueryPlan) -> MosaicResult<(String, Vec<String>)> {
        self.cached(tenant_id).queries.statement(tenant_id, plan)
    }

    async fn explain(&self, tenant_id: &str, plan: Arc<QueryPlan>) -> MosaicResult<Vec<String>> {
        self.shard(tenant_id)
            .await?
            .queries
            .explain(tenant_id, plan)
            .await
    }

    async fn search(
        &self,
        tenant_id: &str,
        term: &str,
        object_ids: &[String],
        limit: usize,
        visibility: Option<Arc<Visibility>>,
    ) -> MosaicResult<Vec<SearchHit>> {
        self.shard(tenant_id)
            .await?
            .queries
            .search(tenant_id, term, object_ids, limit, visibility)
            .await
    }
}

#[async_trait]
impl AutomationStore for ShardRouter {
    async fn claim_due(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> MosaicResult<Vec<OutboxEntry>> {
        // A shard that cannot answer is skipped: the others' deliveries go on.
        let mut out = Vec::new();
        for s in self.all() {
            if out.len() >= limit {
                break;
            }
            match s
                .automation
                .claim_due(owner, now, lease_until, limit - out.len())
                .await
            {
                Ok(b) => out.extend(b),
                Err(e) => skipped(&s.id, "claim due deliveries", &e),
            }
        }
        Ok(out)
    }

    async fn release_leases(&self, owner: &str) -> MosaicResult<u64> {
        let mut n = 0;
        for s in self.all() {
            match s.automation.release_leases(owner).await {
                Ok(k) => n += k,
                Err(e) => skipped(&s.id, "release leases", &e),
            }
        }
        Ok(n)
    }

    async fn complete(&self, tenant_id: &str, id: &str) -> MosaicResult<()> {
        self.routed(tenant_id, |s| async move {
            s.automation.complete(tenant_id, id).await
        })
        .await
    }

    async fn complete_with(
        &self,
        tenant_id: &str,
        id: &str,
        effects: Vec<Effect>,
    ) -> MosaicResult<()> {
        self.routed(tenant_id, |s| {
            let effects = effects.clone();
            async move { s.automation.complete_with(tenant_id, id, effects).await }
        })
        .await
    }

    async fn failed(
        &self,
        tenant_id: &str,
        id: &str,
        attempts: u32,
        error: &str,
        due_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> MosaicResult<()> {
        self.routed(tenant_id, |s| async move {
            s.automation
                .failed(tenant_id, id, attempts, error, due_at, now)
                .await
        })
        .await
    }

    async fn dead_letters(
        &self,
        tenant_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> MosaicResult<Vec<OutboxEntry>> {
        self.shard(tenant_id)
            .await?
            .automation
            .dead_letters(tenant_id, limit, before)
            .await
    }

    async fn entry(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<OutboxEntry>> {
        self.shard(tenant_id)
            .await?
            .automation
            .entry(tenant_id, id)
            .await
    }

    async fn replay(&self, tenant_id: &str, id: &str, now: DateTime<Utc>) -> MosaicResult<bool> {
        self.routed(tenant_id, |s| async move {
            s.automation.replay(tenant_id, id, now).await
        })
        .await
    }

    async fn discard(&self, tenant_id: &str, id: &str) -> MosaicResult<bool> {
        self.routed(tenant_id, |s| async move {
            s.automation.discard(tenant_id, id).await
        })
        .await
    }

    async fn pending_for_record(
        &self,
        tenant_id: &str,
        record_id: &str,
    ) -> MosaicResult<Vec<OutboxEntry>> {
        self.shard(tenant_id)
            .await?
            .automation
            .pending_for_record(tenant_id, record_id)
            .await
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> MosaicResult<OutboxStats> {
        let mut total = OutboxStats::default();
        for s in self.all() {
            match s.automation.outbox_stats(now).await {
                Ok(st) => total.merge(&st),
                Err(e) => skipped(&s.id, "count outbox entries", &e),
            }
        }
        Ok(total)
    }

    async fn history(
        &self,
        tenant_id: &str,
        record_id: &str,
        limit: usize,
    ) -> MosaicResult<Vec<HistoryRow>> {
        self.shard(tenant_id)
            .await?
            .automation
            .history(tenant_id, record_id, limit)
            .await
    }
}

#[async_trait]
impl ShareStore for ShardRouter {
    async fn shares_of(&self, tenant_id: &str, record_id: &str) -> MosaicResult<Vec<ShareRow>> {
        self.shard(tenant_id)
            .await?
            .shares
            .shares_of(tenant_id, record_id)
            .await
    }

    async fn grant_share(&self, tenant_id: &str, row: ShareRow) -> MosaicResult<String> {
        self.routed(tenant_id, |s| {
            let row = row.clone();
            async move { s.shares.grant_share(tenant_id, row).await }
        })
        .await
    }

    async fn revoke_share(
        &self,
        tenant_id: &str,
        record_id: &str,
        share_id: &str,
    ) -> MosaicResult<bool> {
        self.routed(tenant_id, |s| async move {
            s.shares.revoke_share(tenant_id, record_id, share_id).await
        })
        .await
    }

    async fn replace_rule_shares(
        &self,
        tenant_id: &str,
        rule_ids: &[String],
        record_ids: &[String],
        rows: Vec<ShareRow>,
    ) -> MosaicResult<()> {
        self.routed(tenant_id, |s| {
            let rows = rows.clone();
            async move {
                s.shares
                    .replace_rule_shares(tenant_id, rule_ids, record_ids, rows)
                    .await
            }
        })
        .await
    }

    async fn drop_rule_shares(&self, tenant_id: &str, rule_id: &str) -> MosaicResult<()> {
        self.routed(tenant_id, |s| async move {
            s.shares.drop_rule_shares(tenant_id, rule_id).await
        })
        .await
    }

    async fn scan(
        &self,
        tenant_id: &str,
        object_id: &str,
        after: Option<&str>,
        limit: usize,
        slots: &[FlexSlot],
    ) -> MosaicResult<Vec<RecordRow>> {
        self.shard(tenant_id)
            .await?
            .shares
            .scan(tenant_id, object_id, after, limit, slots)
            .await
    }
}

#[async_trait]
impl IdempotencyStore for ShardRouter {
    async fn reserve(
        &self,
        tenant_id: &str,
        key: &str,
        fingerprint: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> MosaicResult<Reservation> {
        self.routed(tenant_id, |s| async move {
            s.idempotency
                .reserve(tenant_id, key, fingerprint, now_ms, expires_at_ms)
                .await
        })
        .await
    }

    async fn get(
        &self,
        tenant_id: &str,
        key: &str,
        now_ms: i64,
    ) -> MosaicResult<Option<KeyRecord>> {
        self.shard(tenant_id)
            .await?
            .idempotency
            .get(tenant_id, key, now_ms)
            .await
    }

    async fn complete(
        &self,
        tenant_id: &str,
        key: &str,
        token: &str,
        response: KeptResponse,
    ) -> MosaicResult<bool> {
        self.routed(tenant_id, |s| {
            let response = response.clone();
            async move {
                s.idempotency
                    .complete(tenant_id, key, token, response)
                    .await
            }
        })
        .await
    }

    async fn release(&self, tenant_id: &str, key: &str, token: &str) -> MosaicResult<()> {
        self.routed(tenant_id, |s| async move {
            s.idempotency.release(tenant_id, key, token).await
        })
        .await
    }

    async fn purge_expired(&self, now_ms: i64) -> MosaicResult<u64> {
        let mut n = 0;
        for s in self.all() {
            match s.idempotency.purge_expired(now_ms).await {
                Ok(k) => n += k,
                Err(e) => skipped(&s.id, "purge expired idempotency keys", &e),
            }
        }
        Ok(n)
    }
}
