//! Online tenant moves between shards (decision 0013): journal, batch copy,
//! catch-up, a short freeze for the cutover, directory switch, cleanup.
//!
//! 1. The source shard starts journaling the tenant's changes (triggers, so
//!    every writer on every instance is covered).
//! 2. Every table is copied to the target in key order, in batches.
//! 3. Catch-up: the journaled keys are re-read from the source and written
//!    to the target (or deleted there) until a round takes less than
//!    [`CATCH_UP_TARGET`].
//! 4. Cutover: the source refuses the tenant's writes (writers wait, see
//!    `ShardRouter::routed`), the last journal entries are applied, the
//!    target starts journaling (for a rollback), the directory points at the
//!    target. The pause is measured from the freeze to the switch.
//! 5. Cleanup, after [`MoveOptions::grace`] (other instances follow the
//!    directory within a second): the source's copy is deleted in batches.
//!    Until then [`Platform::rollback_move`] brings the tenant back with
//!    the writes made on the target since the cutover.

use crate::platform::Platform;
use mosaic_store::router::Shard;
use mosaic_store::transfer::{
    table_names, IndexSpecs, Item, TenantTransfer, FROZEN, JOURNAL, PURGING, RECORDS, TABLES,
};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rows per copy batch.
pub const COPY_BATCH: usize = 500;
/// Longest shard name a move may name as its target.
pub const MAX_SHARD_NAME_LEN: usize = 64;
/// Journal entries read per step.
const JOURNAL_BATCH: usize = 5_000;
/// Catch-up ends when one round takes less than this (the lag left for the
/// freeze to absorb).
pub const CATCH_UP_TARGET: Duration = Duration::from_millis(50);
/// A round with at most this many changes also ends the catch-up: the
/// freeze applies the few written meanwhile.
pub const FREEZE_ABSORBS: u64 = 25;
/// A backlog that no longer shrinks is frozen only when at most this many
/// changes: larger, the rounds go on (and the move is called off after
/// [`MAX_ROUNDS`]) rather than make writes wait long.
pub const FREEZE_MAX: u64 = 500;
/// Catch-up rounds before giving up (writes outrun the copy).
const MAX_ROUNDS: usize = 200;
/// Rows deleted per cleanup batch.
const PURGE_BATCH: usize = 1_000;

/// What a move reports to its caller while it runs.
pub trait MoveProgress: Send + Sync {
    /// A new phase: `copy`, `catch-up`, `cutover`, `cleanup`.
    fn phase(&self, name: &str);
    /// Rows the copy will write (known at its start).
    fn total(&self, rows: u64);
    fn advance(&self, rows: u64);
}

/// Progress nobody watches.
pub struct Quiet;

impl MoveProgress for Quiet {
    fn phase(&self, _: &str) {}
    fn total(&self, _: u64) {}
    fn advance(&self, _: u64) {}
}

#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// Delete the source's copy after the move (after `grace`); `false`
    /// keeps it, and a rollback possible, until [`Platform::finish_move`].
    pub cleanup: bool,
    /// Wait before the cleanup, so every instance follows the directory.
    pub grace: Duration,
}

impl Default for MoveOptions {
    fn default() -> Self {
        MoveOptions {
            cleanup: true,
            grace: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MoveReport {
    pub tenant_id: String,
    pub from: String,
    pub to: String,
    /// Rows copied in the batch phase (records and every other table).
    pub rows_copied: u64,
    pub records: u64,
    pub catch_up_rounds: usize,
    /// Journaled changes applied during catch-up and cutover.
    pub changes_applied: u64,
    pub copy_ms: u64,
    /// From the freeze to the directory switch: how long writes waited.
    pub cutover_pause_ms: f64,
    pub total_ms: u64,
    /// Rows deleted from the source (0 when the copy is kept).
    pub cleaned_up: u64,
}

fn conflict(msg: impl Into<String>) -> MosaicError {
    MosaicError::new(ErrorCode::CONFLICT, msg)
}

/// Journal entries → per table, the distinct keys in first-seen order.
type Changes = BTreeMap<String, Vec<Vec<String>>>;

impl Platform {
    /// The index specs of every object of a tenant (pivots are rebuilt from
    /// them on the target).
    async fn index_specs(&self, tenant: &str) -> MosaicResult<IndexSpecs> {
        let mut out = IndexSpecs::new();
        for o in self.meta.objects(tenant).await?.iter() {
            let specs: Vec<_> = o
                .def
                .fields
                .iter()
                .filter_map(mosaic_meta::service::index_spec)
                .collect();
            out.insert(o.def.id.clone(), specs);
        }
        Ok(out)
    }

    /// The version of a tenant's placement, which the directory switch
    /// must still find (a concurrent move makes it CONFLICT).
    async fn placement_version(&self, tenant: &str) -> MosaicResult<i64> {
        self.shards
            .directory()
            .placement(tenant)
            .await?
            .map(|p| p.version)
            .ok_or_else(|| conflict(format!("tenant {tenant} has no placement yet")))
    }

    /// Starts moving a tenant to shard `to` in the background (the
    /// operator API and the operator console both start moves here): the
    /// move board shows its phase and progress while it runs. Refused when
    /// `to` is empty or longer than [`MAX_SHARD_NAME_LEN`], when there is
    /// no such tenant, or when a move of the tenant already runs here.
    pub async fn start_move(
        self: &Arc<Self>,
        tenant: &str,
        to: &str,
        cleanup: bool,
    ) -> MosaicResult<()> {
        let to = to.trim().to_string();
        if to.is_empty() || to.len() > MAX_SHARD_NAME_LEN {
            return Err(MosaicError::field(
                ErrorCode::INVALID_INPUT,
                "to",
                "name the shard to move to (1 to 64 characters)",
            ));
        }
        if self.meta_store.tenant(tenant).await?.is_none() {
            return Err(MosaicError::not_found(format!(
                "no tenant with id '{}'",
                tenant.chars().take(80).collect::<String>()
            )));
        }
        if !self.moves.start(tenant, &to) {
            return Err(MosaicError::new(
                ErrorCode::CONFLICT,
                "a move of this tenant is already running",
            ));
        }
        let options = MoveOptions {
            cleanup,
            ..MoveOptions::default()
        };
        let (p, t) = (self.clone(), tenant.to_string());
        tokio::spawn(async move {
            let progress = p.moves.progress(&t);
            let r = p.move_tenant(&t, &to, &options, &progress).await;
            p.moves.finish(&t, &r);
        });
        Ok(())
    }

    /// Moves a tenant to shard `to` while it keeps serving.
    pub async fn move_tenant(
        &self,
        tenant: &str,
        to: &str,
        options: &MoveOptions,
        progress: &dyn MoveProgress,
    ) -> MosaicResult<MoveReport> {
        let started = Instant::now();
        if self.meta_store.tenant(tenant).await?.is_none() {
            return Err(MosaicError::not_found(format!(
                "no tenant with id '{tenant}'"
            )));
        }
        self.shards.refresh().await?;
        let target_row = self
            .shards
            .directory()
            .shards()
            .await?
            .into_iter()
            .find(|s| s.id == to);
        if to != mosaic_store::shards::LOCAL_SHARD {
            match &target_row {
                None => {
                    return Err(MosaicError::field(
                        ErrorCode::NOT_FOUND,
                        "to",
                        format!("no shard with id '{to}'"),
                    ))
                }
                Some(r) if r.status != "active" => {
                    return Err(MosaicError::field(
                        ErrorCode::INVALID_INPUT,
                        "to",
                        format!("shard '{to}' is {}: it takes no tenants", r.status),
                    ))
                }
                _ => {}
            }
        }
        let from = self.shards.shard_id(tenant).await?;
        if from == to {
            return Err(conflict(format!(
                "tenant {tenant} is already on shard {to}"
            )));
        }
        let version = self.placement_version(tenant).await?;
        let source = self.shards.shard_by_id(&from).await?;
        let target = self.shards.shard_by_id(to).await?;
        if let Some(state) = source.transfer.move_state(tenant).await? {
            return Err(conflict(format!(
                "tenant {tenant} is already being moved (state {state} on shard {from}); \
                 finish or roll back that move first"
            )));
        }
        // Leftovers of an earlier, abandoned move to the same target.
        target
            .transfer
            .set_move_state(tenant, Some(PURGING))
            .await?;
        purge_all(&target, tenant).await?;
        target.transfer.set_move_state(tenant, None).await?;

        tracing::info!(tenant, from = %from, to, "tenant move started");
        let mut report = MoveReport {
            tenant_id: tenant.to_string(),
            from: from.clone(),
            to: to.to_string(),
            rows_copied: 0,
            records: 0,
            catch_up_rounds: 0,
            changes_applied: 0,
            copy_ms: 0,
            cutover_pause_ms: 0.0,
            total_ms: 0,
            cleaned_up: 0,
        };
        match self
            .copy_and_switch(tenant, &source, &target, version, progress, &mut report)
            .await
        {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(tenant, error = %e.message, "tenant move failed; the tenant stays on its shard");
                // Nothing switched: the source serves on; the partial copy goes.
                let _ = source.transfer.set_move_state(tenant, None).await;
                let _ = purge_all(&target, tenant).await;
                let _ = target.transfer.set_move_state(tenant, None).await;
                return Err(e);
            }
        }
        if options.cleanup {
            progress.phase("cleanup");
            tokio::time::sleep(options.grace).await;
            report.cleaned_up = self.finish_move(tenant).await?;
        }
        report.total_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            tenant,
            from = %report.from,
            to = %report.to,
            rows = report.rows_copied,
            pause_ms = report.cutover_pause_ms,
            total_ms = report.total_ms,
            "tenant moved"
        );
        metrics::counter!("tenant_moves_total").increment(1);
        metrics::histogram!("tenant_move_cutover_seconds").record(report.cutover_pause_ms / 1e3);
        Ok(report)
    }

    async fn copy_and_switch(
        &self,
        tenant: &str,
        source: &Arc<Shard>,
        target: &Arc<Shard>,
        version: i64,
        progress: &dyn MoveProgress,
        report: &mut MoveReport,
    ) -> MosaicResult<()> {
        let src = &source.transfer;
        let dst = &target.transfer;
        // 1. Journal. The second call waits once more for writes whose
        //    snapshot predates the first (serializable idempotency writes).
        src.set_move_state(tenant, Some(JOURNAL)).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        src.set_move_state(tenant, Some(JOURNAL)).await?;
        let specs = self.index_specs(tenant).await?;

        // 2. Copy.
        progress.phase("copy");
        let copy_started = Instant::now();
        progress.total(src.row_count(tenant).await?);
        for table in table_names() {
            let spec = TABLES.iter().find(|t| t.name == table);
            let mut after: Option<Vec<String>> = None;
            loop {
                let rows = src.export(tenant, table, after.clone(), COPY_BATCH).await?;
                let Some(last) = rows.last() else { break };
                after = Some(last.key(spec));
                let n = rows.len() as u64;
                if table == RECORDS {
                    report.records += n;
                }
                dst.import(tenant, table, rows, Vec::new(), &specs).await?;
                report.rows_copied += n;
                progress.advance(n);
                if (n as usize) < COPY_BATCH {
                    break;
                }
            }
        }
        report.copy_ms = copy_started.elapsed().as_millis() as u64;

        // 3. Catch up until a round is short.
        progress.phase("catch-up");
        let mut previous = u64::MAX;
        loop {
            let round = Instant::now();
            let n = catch_up(src.as_ref(), dst.as_ref(), tenant, &specs).await?;
            report.changes_applied += n;
            report.catch_up_rounds += 1;
            tracing::debug!(
                tenant,
                round = report.catch_up_rounds,
                changes = n,
                micros = round.elapsed().as_micros() as u64,
                "catch-up round"
            );
            // Short enough: what is left is small work for the freeze. Or
            // no longer shrinking (writes arrive as fast as a round applies
            // them): more rounds would not shorten the freeze.
            if round.elapsed() < CATCH_UP_TARGET
                || n <= FREEZE_ABSORBS
                || (report.catch_up_rounds > 2 && n >= previous && n <= FREEZE_MAX)
            {
                break;
            }
            previous = n;
            if report.catch_up_rounds >= MAX_ROUNDS {
                return Err(MosaicError::unavailable(
                    "the tenant's writes outran the copy; the move was called off, try again at a quieter time",
                ));
            }
        }

        // 4. Cutover.
        progress.phase("cutover");
        let frozen = Instant::now();
        src.set_move_state(tenant, Some(FROZEN)).await?;
        let switched: MosaicResult<()> = async {
            report.changes_applied += catch_up(src.as_ref(), dst.as_ref(), tenant, &specs).await?;
            // An index added during the move: build it on the target now.
            let now_specs = self.index_specs(tenant).await?;
            for (object, list) in &now_specs {
                for spec in list {
                    if !specs.get(object).is_some_and(|l| l.contains(spec)) {
                        target.records.build_index(tenant, object, spec).await?;
                    }
                }
            }
            dst.set_move_state(tenant, Some(JOURNAL)).await?;
            self.shards
                .directory()
                .reassign(tenant, &target.id, version)
                .await?;
            Ok(())
        }
        .await;
        if let Err(e) = switched {
            let _ = dst.set_move_state(tenant, None).await;
            return Err(e);
        }
        self.shards.moved(tenant, &target.id);
        report.cutover_pause_ms = frozen.elapsed().as_secs_f64() * 1e3;
        Ok(())
    }

    /// Deletes the copy a finished move left on the old shard (rollback is
    /// no longer possible afterwards). Returns the rows deleted.
    pub async fn finish_move(&self, tenant: &str) -> MosaicResult<u64> {
        self.shards.refresh().await?;
        let current = self.shards.shard_id(tenant).await?;
        let mut deleted = 0;
        let mut found = false;
        for shard in self.shards.all() {
            let state = shard.transfer.move_state(tenant).await?;
            if shard.id == current {
                if state.is_some() {
                    shard.transfer.set_move_state(tenant, None).await?;
                }
                continue;
            }
            if matches!(state.as_deref(), Some(FROZEN) | Some(PURGING)) {
                found = true;
                shard.transfer.set_move_state(tenant, Some(PURGING)).await?;
                deleted += purge_all(&shard, tenant).await?;
                shard.transfer.set_move_state(tenant, None).await?;
            }
        }
        if !found {
            return Err(MosaicError::not_found(format!(
                "tenant {tenant} has no moved-away copy to clean up"
            )));
        }
        Ok(deleted)
    }

    /// Brings a moved tenant back to the shard it left, with every write
    /// made since the cutover; possible until [`Platform::finish_move`].
    pub async fn rollback_move(&self, tenant: &str) -> MosaicResult<MoveReport> {
        let started = Instant::now();
        self.shards.refresh().await?;
        let current_id = self.shards.shard_id(tenant).await?;
        let current = self.shards.shard_by_id(&current_id).await?;
        let mut old = None;
        for shard in self.shards.all() {
            if shard.id != current_id
                && shard.transfer.move_state(tenant).await?.as_deref() == Some(FROZEN)
            {
                old = Some(shard);
            }
        }
        let old = old.ok_or_else(|| {
            MosaicError::not_found(format!(
                "tenant {tenant} has no earlier shard to return to (cleaned up already?)"
            ))
        })?;
        if current.transfer.move_state(tenant).await?.as_deref() != Some(JOURNAL) {
            return Err(conflict(format!(
                "tenant {tenant}'s changes on shard {current_id} were not journaled; it cannot be rolled back"
            )));
        }
        let version = self.placement_version(tenant).await?;
        let specs = self.index_specs(tenant).await?;
        let frozen = Instant::now();
        current
            .transfer
            .set_move_state(tenant, Some(FROZEN))
            .await?;
        // The old copy takes the writes made since the cutover (nothing else
        // writes to it: the directory points at the frozen current shard).
        old.transfer.set_move_state(tenant, None).await?;
        let applied = catch_up(
            current.transfer.as_ref(),
            old.transfer.as_ref(),
            tenant,
            &specs,
        )
        .await?;
        self.shards
            .directory()
            .reassign(tenant, &old.id, version)
            .await?;
        self.shards.moved(tenant, &old.id);
        let pause = frozen.elapsed().as_secs_f64() * 1e3;
        current
            .transfer
            .set_move_state(tenant, Some(PURGING))
            .await?;
        let cleaned = purge_all(&current, tenant).await?;
        current.transfer.set_move_state(tenant, None).await?;
        tracing::info!(tenant, back_to = %old.id, applied, "tenant move rolled back");
        Ok(MoveReport {
            tenant_id: tenant.to_string(),
            from: current_id,
            to: old.id.clone(),
            rows_copied: 0,
            records: 0,
            catch_up_rounds: 1,
            changes_applied: applied,
            copy_ms: 0,
            cutover_pause_ms: pause,
            total_ms: started.elapsed().as_millis() as u64,
            cleaned_up: cleaned,
        })
    }
}

/// Every journal entry not consumed yet: the changed keys per table, and
/// the entries' sequence numbers (to forget once applied).
async fn read_journal(src: &dyn TenantTransfer, tenant: &str) -> MosaicResult<(Changes, Vec<i64>)> {
    let mut changes = Changes::new();
    let mut seen: BTreeSet<(String, Vec<String>)> = BTreeSet::new();
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let batch = src.journal(tenant, after, JOURNAL_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        let n = batch.len();
        for e in batch {
            seqs.push(e.seq);
            if seen.insert((e.table.clone(), e.key.clone())) {
                changes.entry(e.table).or_default().push(e.key);
            }
        }
        if n < JOURNAL_BATCH {
            break;
        }
    }
    Ok((changes, seqs))
}

/// Applies the journal of `src` to `dst` and forgets what was applied.
async fn catch_up(
    src: &dyn TenantTransfer,
    dst: &dyn TenantTransfer,
    tenant: &str,
    specs: &IndexSpecs,
) -> MosaicResult<u64> {
    let (changes, seqs) = read_journal(src, tenant).await?;
    let n = apply(src, dst, tenant, changes, specs).await?;
    for chunk in seqs.chunks(JOURNAL_BATCH) {
        src.forget(tenant, chunk).await?;
    }
    Ok(n)
}

/// Re-reads the changed rows from `src` and writes them to `dst` (rows gone
/// from `src` are deleted from `dst`). Returns the keys applied.
async fn apply(
    src: &dyn TenantTransfer,
    dst: &dyn TenantTransfer,
    tenant: &str,
    changes: Changes,
    specs: &IndexSpecs,
) -> MosaicResult<u64> {
    let mut n = 0;
    for (table, keys) in changes {
        let spec = TABLES.iter().find(|t| t.name == table);
        for chunk in keys.chunks(COPY_BATCH) {
            let rows: Vec<Item> = src.fetch(tenant, &table, chunk).await?;
            let present: BTreeSet<Vec<String>> = rows.iter().map(|r| r.key(spec)).collect();
            let absent: Vec<Vec<String>> = chunk
                .iter()
                .filter(|k| !present.contains(*k))
                .cloned()
                .collect();
            n += chunk.len() as u64;
            dst.import(tenant, &table, rows, absent, specs).await?;
        }
    }
    Ok(n)
}

/// Deletes every row of a tenant on one shard.
async fn purge_all(shard: &Shard, tenant: &str) -> MosaicResult<u64> {
    let mut total = 0;
    loop {
        let n = shard.transfer.purge(tenant, PURGE_BATCH).await?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// A move's state as the admin API shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MoveStatus {
    pub tenant_id: String,
    pub to: String,
    /// `copy`, `catch-up`, `cutover`, `cleanup`, `done` or `failed`.
    pub phase: String,
    pub rows_total: u64,
    pub rows_copied: u64,
    pub report: Option<MoveReport>,
    pub error: Option<String>,
}

/// The moves this process runs or ran, by tenant.
#[derive(Default)]
pub struct MoveBoard {
    moves: std::sync::Mutex<std::collections::HashMap<String, MoveStatus>>,
}

impl MoveBoard {
    pub fn get(&self, tenant: &str) -> Option<MoveStatus> {
        self.moves.lock().ok()?.get(tenant).cloned()
    }

    fn update(&self, tenant: &str, f: impl FnOnce(&mut MoveStatus)) {
        if let Ok(mut m) = self.moves.lock() {
            f(m.entry(tenant.to_string()).or_default());
        }
    }

    /// Claims the tenant for a new move; false if one is running here.
    pub fn start(&self, tenant: &str, to: &str) -> bool {
        let Ok(mut m) = self.moves.lock() else {
            return false;
        };
        if m.get(tenant)
            .is_some_and(|s| !matches!(s.phase.as_str(), "done" | "failed"))
        {
            return false;
        }
        m.insert(
            tenant.to_string(),
            MoveStatus {
                tenant_id: tenant.to_string(),
                to: to.to_string(),
                phase: "starting".into(),
                ..MoveStatus::default()
            },
        );
        true
    }

    pub fn finish(&self, tenant: &str, r: &MosaicResult<MoveReport>) {
        self.update(tenant, |s| match r {
            Ok(rep) => {
                s.phase = "done".into();
                s.report = Some(rep.clone());
            }
            Err(e) => {
                s.phase = "failed".into();
                s.error = Some(e.message.clone());
            }
        });
    }

    /// The progress sink of one tenant's move.
    pub fn progress<'a>(&'a self, tenant: &'a str) -> impl MoveProgress + 'a {
        BoardProgress {
            board: self,
            tenant,
        }
    }
}

struct BoardProgress<'a> {
    board: &'a MoveBoard,
    tenant: &'a str,
}

impl MoveProgress for BoardProgress<'_> {
    fn phase(&self, name: &str) {
        self.board
            .update(self.tenant, |s| s.phase = name.to_string());
    }
    fn total(&self, rows: u64) {
        self.board.update(self.tenant, |s| s.rows_total = rows);
    }
    fn advance(&self, rows: u64) {
        self.board.update(self.tenant, |s| s.rows_copied += rows);
    }
}
