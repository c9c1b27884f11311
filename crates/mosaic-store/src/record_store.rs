//! The record store: every tenant's records in one wide flex-column table,
//! plus typed pivot tables for indexed, unique and external-id fields.
//!
//! Callers speak in slots and [`Value`]s; encoding values for a backend
//! (e.g. exact decimals as order-preserving text on SQLite) is the
//! backend's business.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::{FlexSlot, MosaicResult, Value};

/// One stored record: system columns and the values of the requested slots.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    pub id: String,
    pub object_id: String,
    pub name: Option<String>,
    pub owner_id: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub modified_by: String,
    pub modified_at: DateTime<Utc>,
    pub is_deleted: bool,
    pub values: Vec<(FlexSlot, Value)>,
}

impl RecordRow {
    pub fn value(&self, slot: FlexSlot) -> Option<&Value> {
        self.values.iter().find(|(s, _)| *s == slot).map(|(_, v)| v)
    }
}

/// How a slot is mirrored into the pivot tables.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    pub slot: FlexSlot,
    /// Field api name, for error messages.
    pub field: String,
    pub unique: bool,
    pub indexed: bool,
    /// Text compared case-insensitively (keys are lower-cased).
    pub case_insensitive: bool,
}

/// The pivot specs a write maintains: the shard's own record of each slot's
/// flags (written by [`RecordStore::build_index`] and
/// [`RecordStore::drop_index`] in the same transaction as the pivot rows)
/// wins over what the writer's — possibly stale — definition says, so a
/// writer that has not yet seen an `indexed` / `unique` change still keeps
/// the pivots the change built. Slots the shard has no record of keep the
/// writer's spec; the writer's field name is kept for error messages.
pub fn merge_index_specs(from_op: &[IndexSpec], on_shard: &[IndexSpec]) -> Vec<IndexSpec> {
    let mut out: Vec<IndexSpec> = Vec::with_capacity(from_op.len() + on_shard.len());
    for s in on_shard {
        let mut spec = s.clone();
        if let Some(o) = from_op.iter().find(|o| o.slot == s.slot) {
            spec.field = o.field.clone();
        }
        out.push(spec);
    }
    out.extend(
        from_op
            .iter()
            .filter(|o| !on_shard.iter().any(|s| s.slot == o.slot))
            .cloned(),
    );
    out.retain(|s| s.unique || s.indexed);
    out
}

/// Most master-detail descendants one step of a cascade delete removes: a
/// larger cascade commits in several writer jobs (transactions on
/// PostgreSQL), deepest records first, so other writes — other tenants'
/// on the same shard — run between its steps; the master goes in the last.
pub const CASCADE_BATCH: usize = 200;

/// A gap-free counter to draw from inside the insert's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoNumberSpec {
    /// `None` targets the record's Name column.
    pub slot: Option<FlexSlot>,
    /// Stable counter key (the field id).
    pub counter: String,
    /// Display format, e.g. `INV-{0000}`; `{YYYY}`, `{YY}`, `{MM}`, `{DD}` allowed.
    pub format: String,
    pub start: i64,
    /// The day `{YYYY}`, `{YY}`, `{MM}` and `{DD}` show: the record's
    /// creation date in the tenant's time zone.
    pub date: chrono::NaiveDate,
}

/// A lookup value that must name a live record of `object_id` in the same
/// tenant when the write commits.
#[derive(Debug, Clone, PartialEq)]
pub struct RefCheck {
    pub field: String,
    pub object_id: String,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InsertOp {
    pub record: RecordRow,
    pub indexes: Vec<IndexSpec>,
    pub auto_numbers: Vec<AutoNumberSpec>,
    pub ref_checks: Vec<RefCheck>,
    /// Fail with `DUPLICATE_VALUE` if a live record already has this indexed
    /// value (upsert's create branch, decided inside the transaction).
    pub require_absent: Option<(IndexSpec, Value)>,
    /// Outbox entries, history rows and related records written with it.
    pub effects: Vec<crate::automation::Effect>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateOp {
    pub object_id: String,
    pub id: String,
    /// `Some(new)` changes the Name column.
    pub name: Option<Option<String>>,
    pub owner_id: Option<String>,
    pub modified_by: String,
    pub modified_at: DateTime<Utc>,
    pub set: Vec<(FlexSlot, Value)>,
    /// Pivot specs of the slots in `set` that are indexed or unique.
    pub indexes: Vec<IndexSpec>,
    pub ref_checks: Vec<RefCheck>,
    pub effects: Vec<crate::automation::Effect>,
    /// Refuse with `CONFLICT` (changing nothing) when the record was
    /// modified after this instant (millisecond precision): a save based on
    /// a copy read then must not silently overwrite a newer save.
    pub unmodified_since: Option<DateTime<Utc>>,
}

/// The error of an update refused by [`UpdateOp::unmodified_since`].
pub fn modified_since_error(id: &str) -> mosaic_types::MosaicError {
    mosaic_types::MosaicError::new(
        mosaic_types::ErrorCode::CONFLICT,
        format!("record '{id}' was changed by someone else after it was read"),
    )
}

/// Whether a record last modified at `stored` was modified after `since`
/// (compared in whole milliseconds, the stored precision).
pub fn modified_after(stored: &DateTime<Utc>, since: &DateTime<Utc>) -> bool {
    stored.timestamp_millis() > since.timestamp_millis()
}

/// A lookup field (object, slot) pointing at the object of a deleted
/// record: its value is cleared, as Salesforce does.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupRef {
    pub object_id: String,
    pub slot: FlexSlot,
}

/// Master-detail children deleted with their parent, recursively.
#[derive(Debug, Clone, PartialEq)]
pub struct CascadeSpec {
    pub object_id: String,
    /// The child's master-detail slot pointing at the parent.
    pub slot: FlexSlot,
    pub children: Vec<CascadeSpec>,
    /// Lookups pointing at this child object, cleared when a child goes.
    pub clear: Vec<LookupRef>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeleteOp {
    pub object_id: String,
    pub id: String,
    pub deleted_by: String,
    pub deleted_at: DateTime<Utc>,
    pub cascade: Vec<CascadeSpec>,
    /// Lookups pointing at the deleted record's object, cleared.
    pub clear: Vec<LookupRef>,
    pub effects: Vec<crate::automation::Effect>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Insert(InsertOp),
    Update(UpdateOp),
    Delete(DeleteOp),
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteResult {
    Inserted { id: String },
    Updated { id: String },
    Deleted { id: String, cascaded: usize },
}

/// Saves of some records serialized across every process writing to the
/// same database, held until dropped (see [`RecordStore::lock_records`]).
pub struct HeldRecordLock {
    /// Dropping it tells the holder to let go.
    _release: tokio::sync::oneshot::Sender<()>,
}

impl HeldRecordLock {
    pub fn new(release: tokio::sync::oneshot::Sender<()>) -> HeldRecordLock {
        HeldRecordLock { _release: release }
    }
}

#[async_trait]
pub trait RecordStore: Send + Sync {
    /// Serializes saves of `ids` of the tenant across every process that
    /// writes to this store, from the reading of their old values to the
    /// commit of the new ones: held by the database until the returned
    /// lock is dropped (or the holder's connection ends — a crashed
    /// instance never keeps a record locked). `None`: the store needs no
    /// such lock (an embedded SQLite shard is written by one process,
    /// whose in-process record locks already serialize its saves).
    async fn lock_records(
        &self,
        _tenant_id: &str,
        _ids: &[String],
    ) -> MosaicResult<Option<HeldRecordLock>> {
        Ok(None)
    }

    /// Applies `ops` in one transaction. With `all_or_none`, the first failing
    /// op rolls back the whole batch (its error is returned for that op,
    /// the others report `ALL_OR_NONE_OPERATION_ROLLED_BACK`); otherwise each
    /// op succeeds or fails alone. The outer error is for infrastructure
    /// failures only.
    async fn write(
        &self,
        tenant_id: &str,
        ops: Vec<WriteOp>,
        all_or_none: bool,
    ) -> MosaicResult<Vec<MosaicResult<WriteResult>>>;

    /// Reads one record (deleted ones too: `is_deleted` tells) with the
    /// values of `slots`.
    async fn get(
        &self,
        tenant_id: &str,
        object_id: &str,
        id: &str,
        slots: &[FlexSlot],
    ) -> MosaicResult<Option<RecordRow>>;

    /// Reads many live records of one object by id (any order; missing and
    /// deleted ids are skipped). One round trip per chunk of ids.
    async fn get_many(
        &self,
        tenant_id: &str,
        object_id: &str,
        ids: &[String],
        slots: &[FlexSlot],
    ) -> MosaicResult<Vec<RecordRow>>;

    /// Ids of live records whose indexed / unique `slot` equals `key`.
    async fn find_by_index(
        &self,
        tenant_id: &str,
        object_id: &str,
        spec: &IndexSpec,
        key: &Value,
    ) -> MosaicResult<Vec<String>>;

    /// Sets `slot` to NULL on every record of the object and drops its
    /// pivot rows (a deleted field's slot, before reuse).
    async fn clear_slot(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<()>;

    /// Sets `slot` to `value` on every record of the object where it is NULL
    /// (a boolean field added to an object that already has records).
    async fn fill_nulls(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
        value: &Value,
    ) -> MosaicResult<()>;

    /// (Re)builds the pivot rows of one slot from the records; a unique spec
    /// whose data has duplicates fails with `DUPLICATE_VALUE` and changes nothing.
    async fn build_index(
        &self,
        tenant_id: &str,
        object_id: &str,
        spec: &IndexSpec,
    ) -> MosaicResult<()>;

    /// Drops the pivot rows of one slot.
    async fn drop_index(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<()>;

    /// Removes every record, pivot row and counter of an object (object deletion).
    async fn purge_object(&self, tenant_id: &str, object_id: &str) -> MosaicResult<()>;

    /// Largest length (in characters) of a text slot's values, for checks
    /// before shrinking a field.
    async fn max_text_len(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<usize>;

    /// Number of live records of an object holding a value in `slot`
    /// (what deleting or retyping the field behind it would touch).
    async fn count_filled(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<u64>;

    /// The object of a live record, by id alone.
    async fn locate(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<String>>;

    /// Number of live records of an object.
    async fn count(&self, tenant_id: &str, object_id: &str) -> MosaicResult<u64>;

    /// Restores `op.id` from the recycle bin with every record its delete
    /// cascaded to: the flag, the pivot rows (a unique key taken meanwhile
    /// fails with `DUPLICATE_VALUE`), the search documents and the lookup
    /// values the delete cleared. All or nothing; returns how many records
    /// came back.
    async fn undelete(&self, tenant_id: &str, op: UndeleteOp) -> MosaicResult<usize>;

    /// The bin entry of one record, if it is in the bin.
    async fn bin_entry(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<BinEntry>>;

    /// Binned records matching `filter`, newest deletes first.
    async fn bin_entries(&self, tenant_id: &str, filter: &BinFilter)
        -> MosaicResult<Vec<BinEntry>>;

    /// Removes for good up to `limit` binned records deleted with the given
    /// roots (one transaction); returns how many went.
    async fn purge_bin(
        &self,
        tenant_id: &str,
        roots: &[String],
        limit: usize,
    ) -> MosaicResult<usize>;

    /// Ids of live records of an object last modified in `[start, end)`,
    /// oldest change first, at most `limit`.
    async fn updated_ids(
        &self,
        tenant_id: &str,
        object_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        limit: usize,
    ) -> MosaicResult<Vec<String>>;
}

/// Restores a record from the recycle bin with every record its delete
/// cascaded to (see [`RecordStore::undelete`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UndeleteOp {
    pub object_id: String,
    pub id: String,
    /// Pivot specs per object id, for the root's object and every object
    /// its delete may have cascaded to.
    pub indexes: Vec<(String, Vec<IndexSpec>)>,
    /// Master-detail parents of the root that must be live.
    pub ref_checks: Vec<RefCheck>,
}

/// One record in the recycle bin.
#[derive(Debug, Clone, PartialEq)]
pub struct BinEntry {
    pub id: String,
    pub object_id: String,
    /// The record whose delete put this one in the bin (itself for a
    /// record deleted directly, its master for a cascaded child).
    pub root_id: String,
    pub deleted_at: DateTime<Utc>,
    pub deleted_by: String,
}

/// Which binned records [`RecordStore::bin_entries`] lists (newest deletes
/// first, then by id).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BinFilter {
    pub object_id: Option<String>,
    /// Deleted at or after.
    pub from: Option<DateTime<Utc>>,
    /// Deleted before.
    pub to: Option<DateTime<Utc>>,
    /// Only records deleted directly (the ones an undelete names).
    pub roots_only: bool,
    pub limit: usize,
}

/// The error of an undelete naming a record that is not in the bin.
pub fn not_in_bin(id: &str) -> mosaic_types::MosaicError {
    mosaic_types::MosaicError::new(
        mosaic_types::ErrorCode::NOT_FOUND,
        format!(
            "the requested resource does not exist: no record with id '{id}' in the recycle bin"
        ),
    )
}

/// The error of an undelete naming a record that went to the bin with its
/// master-detail parent.
pub fn cascaded_error(id: &str, root: &str) -> mosaic_types::MosaicError {
    mosaic_types::MosaicError::new(
        mosaic_types::ErrorCode::UNDELETE_FAILED,
        format!("record '{id}' was deleted with its parent '{root}': undelete '{root}' instead"),
    )
}

/// Why an undelete cannot bring a record back under its master-detail
/// parent `c` (`deleted`: the parent's flag, `None` if it is gone).
pub fn parent_error(c: &RefCheck, deleted: Option<bool>) -> Option<mosaic_types::MosaicError> {
    let message = match deleted {
        Some(false) => return None,
        Some(true) => format!(
            "{}: the parent record '{}' is in the recycle bin: undelete it first",
            c.field, c.id
        ),
        None => format!("{}: the parent record '{}' no longer exists", c.field, c.id),
    };
    Some(mosaic_types::MosaicError::field(
        mosaic_types::ErrorCode::UNDELETE_FAILED,
        c.field.clone(),
        message,
    ))
}
