//! PostgreSQL implementation of [`RecordStore`]: a shard's wide
//! `object_records` table, its pivot tables and auto-number counters, with
//! the behaviour of `SqliteRecordStore` (same errors, same pivot keys, same
//! all-or-none batches).
//!
//! Encoding: text and number slots are `text COLLATE "C"` (numbers as the
//! order-preserving keys of [`mosaic_types::deckey`], so byte order is
//! numeric order, as on SQLite), dates `date`, datetimes `timestamptz`
//! truncated to milliseconds, booleans `boolean`.
//!
//! Concurrency: writes run `READ COMMITTED` (see `shard_tx!`). A record
//! being updated is locked `FOR NO KEY UPDATE`, one being deleted — and the
//! master-detail children its delete cascades to — `FOR UPDATE`; a record a
//! lookup must point at is locked `FOR KEY SHARE` until the write commits,
//! so a concurrent delete either waits for the new child (and cascades to
//! it) or wins and the child's reference check fails. Unique pivot rows are
//! decided by their primary key; an upsert's "create if absent" takes a
//! transaction-scoped advisory lock on the key.
//!
//! Pivot specs: every write that touches an object's records takes a
//! transaction-scoped advisory lock on (tenant, object) shared, then reads
//! the shard's `pivot_specs` of the object in a later statement; an index
//! build takes it exclusively before it records the new spec and scans the
//! records. So the build sees every write that read the old specs, and
//! every write after it sees the new ones — whatever definition the
//! writer's instance holds.

use crate::migrate::migrate_records;
use crate::param::{refs, Param};
use crate::planner_stats::PlannerStats;
use crate::pool::{millis, shard_tx, with_client, PgPool, Step, TxError};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use mosaic_store::record_store::*;
use mosaic_store::{fmt_auto_number, index_key, Effect};
use mosaic_types::value::format_time;
use mosaic_types::{deckey, ErrorCode, FlexSlot, MosaicError, MosaicResult, SlotPool, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future of one step of a write (recursive steps: cascades,
/// inserts made by effects).
pub(crate) type StepFuture<'a, T> = Pin<Box<dyn Future<Output = Step<T>> + Send + 'a>>;

/// Ids per statement in [`RecordStore::get_many`].
const GET_MANY_CHUNK: usize = 500;
/// The statement finding a record's live master-detail children: through
/// the master-detail field's pivot rows (reference fields are always
/// indexed) and the record primary key, never a scan of the child object.
/// `$1` tenant, `$2` child object, `$3` slot column, `$4` parent id, `$5` limit.
pub const CASCADE_CHILDREN_SQL: &str = "SELECT i.record_id FROM record_index i \
     JOIN object_records r ON r.tenant_id = i.tenant_id AND r.id = i.record_id \
     WHERE i.tenant_id = $1 AND i.object_id = $2 AND i.slot = $3 AND i.value = $4 \
     AND r.object_id = $2 AND r.is_deleted = FALSE ORDER BY i.record_id LIMIT $5 FOR UPDATE OF r";

/// Deepest master-detail chain a cascade delete follows (as on SQLite).
const MAX_CASCADE_DEPTH: usize = 16;

/// Records of one shard on PostgreSQL. Cloning shares the pool.
#[derive(Clone)]
pub struct PgRecordStore {
    pool: PgPool,
    /// Keeps the planner's statistics current while the tables grow.
    stats: Arc<PlannerStats>,
    /// Connections that may hold record locks at once: half the pool, so
    /// the saves holding them always find a connection for their writes.
    lockers: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for PgRecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRecordStore")
            .field("pool", &self.pool)
            .finish()
    }
}

impl PgRecordStore {
    /// Connects to the shard database at `url` with a pool of `pool_size`
    /// connections and migrates its record tables.
    pub async fn connect(url: &str, pool_size: usize) -> MosaicResult<PgRecordStore> {
        PgRecordStore::open(PgPool::new(url, pool_size)?).await
    }

    /// The store on `pool` (a shard database), migrating it first.
    pub async fn open(pool: PgPool) -> MosaicResult<PgRecordStore> {
        migrate_records(&pool).await?;
        crate::transfer::migrate_transfer(&pool).await?;
        let stats = PlannerStats::open(pool.clone()).await;
        let lockers = Arc::new(tokio::sync::Semaphore::new((pool.usage().2 / 2).max(1)));
        Ok(PgRecordStore {
            pool,
            stats,
            lockers,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The planner-statistics keeper of this shard.
    pub fn planner_stats(&self) -> &Arc<PlannerStats> {
        &self.stats
    }
}

/// A record lock not obtained: its wait timed out (`UNABLE_TO_LOCK_ROW`,
/// as a SQLite writer's busy timeout), or the database failed.
fn lock_error(e: &tokio_postgres::Error) -> MosaicError {
    if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
        return MosaicError::new(
            mosaic_types::ErrorCode::UNABLE_TO_LOCK_ROW,
            "another save of this record is taking too long; nothing was applied, retry",
        );
    }
    crate::pool::map_pg(e)
}

fn type_mismatch(slot: FlexSlot, v: &Value) -> MosaicError {
    MosaicError::internal(format!("value {v:?} does not fit slot {slot}"))
}

/// A typed null for a column of `pool`.
pub(crate) fn null_of(pool: SlotPool) -> Param {
    match pool {
        SlotPool::String | SlotPool::Number | SlotPool::Clob => Param::Text(None),
        SlotPool::Date => Param::Date(None),
        SlotPool::Datetime => Param::Time(None),
        SlotPool::Boolean => Param::Bool(None),
    }
}

/// Encodes a value for its slot's column.
pub(crate) fn encode(slot: FlexSlot, v: &Value) -> MosaicResult<Param> {
    Ok(match (slot.pool, v) {
        (p, Value::Null) => null_of(p),
        (SlotPool::String | SlotPool::Clob, Value::Text(s)) => Param::text(s.clone()),
        (SlotPool::String, Value::Time(t)) => Param::text(format_time(t)),
        (
            SlotPool::String,
            Value::Location {
                latitude,
                longitude,
            },
        ) => Param::text(format!("{latitude},{longitude}")),
        (SlotPool::Number, Value::Number(d)) => Param::text(deckey::encode(d)),
        (SlotPool::Date, Value::Date(d)) => Param::Date(Some(*d)),
        (SlotPool::Datetime, Value::Datetime(d)) => Param::Time(Some(millis(d))),
        (SlotPool::Boolean, Value::Boolean(b)) => Param::Bool(Some(*b)),
        _ => return Err(type_mismatch(slot, v)),
    })
}

/// Decodes column `i` of `row`, a column of `slot`.
pub(crate) fn decode(
    row: &tokio_postgres::Row,
    i: usize,
    slot: FlexSlot,
) -> Result<Value, tokio_postgres::Error> {
    Ok(match slot.pool {
        SlotPool::String | SlotPool::Clob => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::Text),
        SlotPool::Number => row
            .try_get::<_, Option<String>>(i)?
            .and_then(|k| deckey::decode(&k))
            .map_or(Value::Null, Value::Number),
        SlotPool::Date => row
            .try_get::<_, Option<NaiveDate>>(i)?
            .map_or(Value::Null, Value::Date),
        SlotPool::Datetime => row
            .try_get::<_, Option<DateTime<Utc>>>(i)?
            .map_or(Value::Null, Value::Datetime),
        SlotPool::Boolean => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(Value::Null, Value::Boolean),
    })
}

pub(crate) const SYSTEM_COLS: &str =
    "id, object_id, name, owner_id, created_by, created_at, modified_by, modified_at, is_deleted";

/// `SELECT <system columns>, <slots> FROM object_records`.
pub(crate) fn select_records(slots: &[FlexSlot]) -> String {
    let mut sql = format!("SELECT {SYSTEM_COLS}");
    for s in slots {
        sql.push_str(", ");
        sql.push_str(s.column());
    }
    sql.push_str(" FROM object_records");
    sql
}

pub(crate) fn row_of(
    r: &tokio_postgres::Row,
    slots: &[FlexSlot],
) -> Result<RecordRow, tokio_postgres::Error> {
    let mut values = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter().enumerate() {
        values.push((*s, decode(r, 9 + i, *s)?));
    }
    Ok(RecordRow {
        id: r.try_get(0)?,
        object_id: r.try_get(1)?,
        name: r.try_get(2)?,
        owner_id: r.try_get(3)?,
        created_by: r.try_get(4)?,
        created_at: r.try_get(5)?,
        modified_by: r.try_get(6)?,
        modified_at: r.try_get(7)?,
        is_deleted: r.try_get(8)?,
        values,
    })
}

fn not_found(id: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "the requested resource does not exist: no record with id '{id}'"
    ))
}

fn duplicate(spec: &IndexSpec, other: &str) -> MosaicError {
    MosaicError::field(
        ErrorCode::DUPLICATE_VALUE,
        spec.field.clone(),
        format!(
            "duplicate value found: {} duplicates value on record with id: {other}",
            spec.field
        ),
    )
}

fn pivot_table(unique: bool) -> &'static str {
    if unique {
        "record_unique"
    } else {
        "record_index"
    }
}

async fn next_counter(
    tx: &Transaction<'_>,
    tenant: &str,
    object_id: &str,
    spec: &AutoNumberSpec,
) -> Step<i64> {
    let st = tx
        .prepare_cached(
            "INSERT INTO auto_number_counters (tenant_id, object_id, counter, next_value) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .await?;
    tx.execute(&st, &[&tenant, &object_id, &spec.counter, &spec.start])
        .await?;
    // The row lock taken here is held until commit: concurrent inserts draw
    // one after the other, and a rolled-back insert gives its number back.
    let st = tx
        .prepare_cached(
            "UPDATE auto_number_counters SET next_value = next_value + 1 \
             WHERE tenant_id = $1 AND object_id = $2 AND counter = $3 RETURNING next_value - 1",
        )
        .await?;
    Ok(tx
        .query_one(&st, &[&tenant, &object_id, &spec.counter])
        .await?
        .try_get(0)?)
}

async fn check_refs(tx: &Transaction<'_>, tenant: &str, checks: &[RefCheck]) -> Step<()> {
    for c in checks {
        let st = tx
            .prepare_cached(
                "SELECT 1 FROM object_records WHERE tenant_id = $1 AND object_id = $2 AND id = $3 \
                 AND is_deleted = FALSE FOR KEY SHARE",
            )
            .await?;
        if tx
            .query_opt(&st, &[&tenant, &c.object_id, &c.id])
            .await?
            .is_none()
        {
            return Err(MosaicError::field(
                ErrorCode::INVALID_CROSS_REFERENCE_KEY,
                c.field.clone(),
                format!(
                    "{}: no record with id '{}' exists to refer to",
                    c.field, c.id
                ),
            )
            .into());
        }
    }
    Ok(())
}

pub(crate) async fn put_pivots<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    object_id: &str,
    record_id: &str,
    spec: &IndexSpec,
    v: &Value,
) -> Step<()> {
    let Some(key) = index_key(spec.case_insensitive, spec.slot, v)? else {
        return Ok(());
    };
    let col = spec.slot.column();
    if spec.unique {
        let st = c
            .prepare_cached(
                "INSERT INTO record_unique (tenant_id, object_id, slot, value, record_id) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .await?;
        let n = c
            .execute(&st, &[&tenant, &object_id, &col, &key, &record_id])
            .await?;
        if n == 0 {
            let st = c
                .prepare_cached(
                    "SELECT record_id FROM record_unique \
                     WHERE tenant_id = $1 AND object_id = $2 AND slot = $3 AND value = $4",
                )
                .await?;
            let other: Option<String> =
                match c.query_opt(&st, &[&tenant, &object_id, &col, &key]).await? {
                    Some(r) => r.try_get(0)?,
                    None => None,
                };
            return Err(duplicate(spec, &other.unwrap_or_default()).into());
        }
    }
    if spec.indexed {
        put_index_row(c, tenant, object_id, col, &key, record_id).await?;
    }
    Ok(())
}

/// The non-unique pivot row of one value (kept if already there).
async fn put_index_row<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    object_id: &str,
    col: &str,
    key: &str,
    record_id: &str,
) -> Step<()> {
    let st = c
        .prepare_cached(
            "INSERT INTO record_index (tenant_id, object_id, slot, value, record_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .await?;
    c.execute(&st, &[&tenant, &object_id, &col, &key, &record_id])
        .await?;
    Ok(())
}

/// Mirrors one value into the pivots during a tenant move's import: a
/// unique key another record held in the source's past is taken over (the
/// source is the truth, and that record's change is in the same catch-up).
pub(crate) async fn put_pivots_replacing<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    object_id: &str,
    record_id: &str,
    spec: &IndexSpec,
    v: &Value,
) -> Step<()> {
    let Some(key) = index_key(spec.case_insensitive, spec.slot, v)? else {
        return Ok(());
    };
    let col = spec.slot.column();
    if spec.unique {
        let st = c
            .prepare_cached(
                "INSERT INTO record_unique (tenant_id, object_id, slot, value, record_id) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id, object_id, slot, value) DO UPDATE SET record_id = EXCLUDED.record_id",
            )
            .await?;
        c.execute(&st, &[&tenant, &object_id, &col, &key, &record_id])
            .await?;
    }
    if spec.indexed {
        put_index_row(c, tenant, object_id, col, &key, record_id).await?;
    }
    Ok(())
}

async fn drop_pivots_of(
    tx: &Transaction<'_>,
    tenant: &str,
    record_id: &str,
    slot: Option<FlexSlot>,
) -> Step<()> {
    for sql in match slot {
        Some(_) => [
            "DELETE FROM record_index WHERE tenant_id = $1 AND record_id = $2 AND slot = $3",
            "DELETE FROM record_unique WHERE tenant_id = $1 AND record_id = $2 AND slot = $3",
        ],
        None => [
            "DELETE FROM record_index WHERE tenant_id = $1 AND record_id = $2",
            "DELETE FROM record_unique WHERE tenant_id = $1 AND record_id = $2",
        ],
    } {
        let st = tx.prepare_cached(sql).await?;
        match slot {
            Some(s) => tx.execute(&st, &[&tenant, &record_id, &s.column()]).await?,
            None => tx.execute(&st, &[&tenant, &record_id]).await?,
        };
    }
    Ok(())
}

/// The advisory lock key of an object's pivot specs.
fn specs_lock_key(tenant: &str, object_id: &str) -> String {
    format!("pivot_specs\u{1f}{tenant}\u{1f}{object_id}")
}

/// Takes the object's pivot-spec lock shared (held to the end of the
/// transaction), then reads the shard's specs of the object in a second
/// statement — pipelined, one round trip — whose snapshot follows the lock.
pub(crate) async fn shard_specs<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    object_id: &str,
) -> Step<Vec<IndexSpec>> {
    let key = specs_lock_key(tenant, object_id);
    let lock = c
        .prepare_cached("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))")
        .await?;
    let read = c
        .prepare_cached(
            "SELECT slot, field, is_unique, is_indexed, case_insensitive FROM pivot_specs \
             WHERE tenant_id = $1 AND object_id = $2",
        )
        .await?;
    let (_, rows) = futures_util::future::try_join(
        c.execute(&lock, &[&key]),
        c.query(&read, &[&tenant, &object_id]),
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let slot: String = r.try_get(0)?;
        if let Some(slot) = FlexSlot::from_column(&slot) {
            out.push(IndexSpec {
                slot,
                field: r.try_get(1)?,
                unique: r.try_get(2)?,
                indexed: r.try_get(3)?,
                case_insensitive: r.try_get(4)?,
            });
        }
    }
    Ok(out)
}

/// Takes the object's pivot-spec lock exclusively (an index build or drop):
/// waits for every write holding it shared.
async fn lock_specs_exclusive<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    object_id: &str,
) -> Step<()> {
    let st = c
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .await?;
    c.execute(&st, &[&specs_lock_key(tenant, object_id)])
        .await?;
    Ok(())
}

/// Records a slot's pivot flags on the shard (a dropped index is kept as
/// "neither", so writers with an older definition stop maintaining it).
async fn set_shard_spec<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    object_id: &str,
    slot: FlexSlot,
    spec: Option<&IndexSpec>,
) -> Step<()> {
    let st = c
        .prepare_cached(
            "INSERT INTO pivot_specs (tenant_id, object_id, slot, field, is_unique, is_indexed, case_insensitive) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, object_id, slot) DO UPDATE SET field = EXCLUDED.field, \
             is_unique = EXCLUDED.is_unique, is_indexed = EXCLUDED.is_indexed, \
             case_insensitive = EXCLUDED.case_insensitive",
        )
        .await?;
    c.execute(
        &st,
        &[
            &tenant,
            &object_id,
            &slot.column(),
            &spec.map(|s| s.field.as_str()).unwrap_or(""),
            &spec.is_some_and(|s| s.unique),
            &spec.is_some_and(|s| s.indexed),
            &spec.is_some_and(|s| s.case_insensitive),
        ],
    )
    .await?;
    Ok(())
}

async fn do_insert(tx: &Transaction<'_>, tenant: &str, op: &InsertOp) -> Step<WriteResult> {
    let r = &op.record;
    if let Some((spec, v)) = &op.require_absent {
        if let Some(key) = index_key(spec.case_insensitive, spec.slot, v)? {
            // Two upserts of one key decide one after the other.
            let lock = format!(
                "{tenant}\u{1f}{}\u{1f}{}\u{1f}{key}",
                r.object_id, spec.slot
            );
            let st = tx
                .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .await?;
            tx.execute(&st, &[&lock]).await?;
            let sql = format!(
                "SELECT record_id FROM {} WHERE tenant_id = $1 AND object_id = $2 AND slot = $3 AND value = $4 LIMIT 1",
                pivot_table(spec.unique)
            );
            let st = tx.prepare_cached(&sql).await?;
            if let Some(row) = tx
                .query_opt(&st, &[&tenant, &r.object_id, &spec.slot.column(), &key])
                .await?
            {
                let other: String = row.try_get(0)?;
                return Err(duplicate(spec, &other).into());
            }
        }
    }
    check_refs(tx, tenant, &op.ref_checks).await?;
    let mut name = r.name.clone();
    let mut values = r.values.clone();
    for an in &op.auto_numbers {
        let n = next_counter(tx, tenant, &r.object_id, an).await?;
        let text = fmt_auto_number(&an.format, n, an.date);
        match an.slot {
            None => name = Some(text),
            Some(slot) => {
                values.retain(|(s, _)| *s != slot);
                values.push((slot, Value::Text(text)));
            }
        }
    }
    let mut sql = String::from(
        "INSERT INTO object_records (tenant_id, object_id, id, name, owner_id, created_by, created_at, modified_by, modified_at, is_deleted",
    );
    let mut args = vec![
        Param::text(tenant),
        Param::text(r.object_id.clone()),
        Param::text(r.id.clone()),
        Param::Text(name),
        Param::text(r.owner_id.clone()),
        Param::text(r.created_by.clone()),
        Param::Time(Some(millis(&r.created_at))),
        Param::text(r.modified_by.clone()),
        Param::Time(Some(millis(&r.modified_at))),
        Param::Bool(Some(false)),
    ];
    for (slot, v) in &values {
        sql.push_str(", ");
        sql.push_str(slot.column());
        args.push(encode(*slot, v)?);
    }
    sql.push_str(") VALUES (");
    for i in 1..=args.len() {
        if i > 1 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${i}"));
    }
    sql.push(')');
    tx.execute(sql.as_str(), &refs(&args)).await?;
    let specs = merge_index_specs(&op.indexes, &shard_specs(tx, tenant, &r.object_id).await?);
    for spec in &specs {
        if let Some((_, v)) = values.iter().find(|(s, _)| *s == spec.slot) {
            put_pivots(tx, tenant, &r.object_id, &r.id, spec, v).await?;
        }
    }
    Ok(WriteResult::Inserted { id: r.id.clone() })
}

/// Whether a live record exists, locking it for the rest of the write.
pub(crate) async fn lock_live(
    tx: &Transaction<'_>,
    tenant: &str,
    object_id: &str,
    id: &str,
    for_delete: bool,
) -> Step<bool> {
    let sql = if for_delete {
        "SELECT is_deleted FROM object_records WHERE tenant_id = $1 AND object_id = $2 AND id = $3 FOR UPDATE"
    } else {
        "SELECT is_deleted FROM object_records WHERE tenant_id = $1 AND object_id = $2 AND id = $3 FOR NO KEY UPDATE"
    };
    let st = tx.prepare_cached(sql).await?;
    Ok(
        match tx.query_opt(&st, &[&tenant, &object_id, &id]).await? {
            Some(r) => !r.try_get::<_, bool>(0)?,
            None => false,
        },
    )
}

async fn do_update(tx: &Transaction<'_>, tenant: &str, op: &UpdateOp) -> Step<WriteResult> {
    if !lock_live(tx, tenant, &op.object_id, &op.id, false).await? {
        return Err(not_found(&op.id).into());
    }
    if let Some(since) = &op.unmodified_since {
        let st = tx
            .prepare_cached(
                "SELECT modified_at FROM object_records WHERE tenant_id = $1 AND object_id = $2 AND id = $3",
            )
            .await?;
        let row = tx.query_one(&st, &[&tenant, &op.object_id, &op.id]).await?;
        let stored: DateTime<Utc> = row.try_get(0)?;
        if mosaic_store::record_store::modified_after(&stored, since) {
            return Err(mosaic_store::record_store::modified_since_error(&op.id).into());
        }
    }
    check_refs(tx, tenant, &op.ref_checks).await?;
    let mut args = vec![
        Param::text(op.modified_by.clone()),
        Param::Time(Some(millis(&op.modified_at))),
    ];
    let mut sql = String::from("UPDATE object_records SET modified_by = $1, modified_at = $2");
    let mut set = |sql: &mut String, col: &str, p: Param| {
        args.push(p);
        sql.push_str(&format!(", {col} = ${}", args.len()));
    };
    if let Some(name) = &op.name {
        set(&mut sql, "name", Param::Text(name.clone()));
    }
    if let Some(owner) = &op.owner_id {
        set(&mut sql, "owner_id", Param::text(owner.clone()));
    }
    for (slot, v) in &op.set {
        set(&mut sql, slot.column(), encode(*slot, v)?);
    }
    let n = args.len();
    sql.push_str(&format!(
        " WHERE tenant_id = ${} AND object_id = ${} AND id = ${}",
        n + 1,
        n + 2,
        n + 3
    ));
    args.push(Param::text(tenant));
    args.push(Param::text(op.object_id.clone()));
    args.push(Param::text(op.id.clone()));
    tx.execute(sql.as_str(), &refs(&args)).await?;
    let specs = merge_index_specs(&op.indexes, &shard_specs(tx, tenant, &op.object_id).await?);
    for spec in &specs {
        if let Some((_, v)) = op.set.iter().find(|(s, _)| *s == spec.slot) {
            drop_pivots_of(tx, tenant, &op.id, Some(spec.slot)).await?;
            put_pivots(tx, tenant, &op.object_id, &op.id, spec, v).await?;
        }
    }
    Ok(WriteResult::Updated { id: op.id.clone() })
}

/// Moves a record to the recycle bin with the delete of `root` (the record
/// itself when deleted directly); its row is kept as it was.
#[allow(clippy::too_many_arguments)]
async fn soft_delete(
    tx: &Transaction<'_>,
    tenant: &str,
    object_id: &str,
    id: &str,
    root: &str,
    by: &str,
    at: &DateTime<Utc>,
) -> Step<()> {
    let st = tx
        .prepare_cached(
            "UPDATE object_records SET is_deleted = TRUE WHERE tenant_id = $1 AND object_id = $2 AND id = $3",
        )
        .await?;
    tx.execute(&st, &[&tenant, &object_id, &id]).await?;
    crate::bin::bin_record(tx, tenant, object_id, id, root, by, &millis(at)).await?;
    drop_pivots_of(tx, tenant, id, None).await
}

/// Takes the object's pivot-spec lock shared without reading the specs (a
/// delete drops pivot rows, so an index build must not run beside it).
async fn lock_specs_shared(tx: &Transaction<'_>, tenant: &str, object_id: &str) -> Step<()> {
    let st = tx
        .prepare_cached("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))")
        .await?;
    tx.execute(&st, &[&specs_lock_key(tenant, object_id)])
        .await?;
    Ok(())
}

/// Clears lookup values that point at a deleted record (and their pivots),
/// finding the referring records through the lookup's pivot rows (lookups
/// are always indexed), never by scanning the referring object.
async fn clear_lookups(
    tx: &Transaction<'_>,
    tenant: &str,
    root: &str,
    id: &str,
    lookups: &[LookupRef],
) -> Step<()> {
    for r in lookups {
        lock_specs_shared(tx, tenant, &r.object_id).await?;
        crate::bin::bin_lookups(tx, tenant, root, id, r).await?;
        let sql = format!(
            "UPDATE object_records SET {c} = NULL WHERE tenant_id = $1 AND object_id = $2 AND {c} = $4 \
             AND id IN (SELECT record_id FROM record_index WHERE tenant_id = $1 AND object_id = $2 AND slot = $3 AND value = $4)",
            c = r.slot.column()
        );
        let st = tx.prepare_cached(&sql).await?;
        tx.execute(&st, &[&tenant, &r.object_id, &r.slot.column(), &id])
            .await?;
        for sql in [
            "DELETE FROM record_index WHERE tenant_id = $1 AND object_id = $2 AND slot = $3 AND value = $4",
            "DELETE FROM record_unique WHERE tenant_id = $1 AND object_id = $2 AND slot = $3 AND value = $4",
        ] {
            let st = tx.prepare_cached(sql).await?;
            tx.execute(&st, &[&tenant, &r.object_id, &r.slot.column(), &id])
                .await?;
        }
    }
    Ok(())
}

/// Deletes up to `budget` master-detail descendants of `parent`, deepest
/// first (a record goes only once all its own children are gone), and
/// returns how many went. With an unlimited budget it deletes them all.
#[allow(clippy::too_many_arguments)]
fn cascade<'a>(
    tx: &'a Transaction<'a>,
    tenant: &'a str,
    root: &'a str,
    parent: &'a str,
    specs: &'a [CascadeSpec],
    by: &'a str,
    at: &'a DateTime<Utc>,
    depth: usize,
    budget: &'a mut usize,
) -> StepFuture<'a, usize> {
    Box::pin(async move {
        if depth > MAX_CASCADE_DEPTH {
            return Err(MosaicError::new(
                ErrorCode::DELETE_FAILED,
                "cascade delete exceeds the maximum relationship depth",
            )
            .into());
        }
        let mut n = 0;
        for spec in specs {
            if *budget == 0 {
                break;
            }
            lock_specs_shared(tx, tenant, &spec.object_id).await?;
            let limit = i64::try_from(*budget).unwrap_or(i64::MAX);
            let st = tx.prepare_cached(CASCADE_CHILDREN_SQL).await?;
            let ids: Vec<String> = tx
                .query(
                    &st,
                    &[
                        &tenant,
                        &spec.object_id,
                        &spec.slot.column(),
                        &parent,
                        &limit,
                    ],
                )
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            for child in ids {
                n += cascade(
                    tx,
                    tenant,
                    root,
                    &child,
                    &spec.children,
                    by,
                    at,
                    depth + 1,
                    &mut *budget,
                )
                .await?;
                if *budget == 0 {
                    return Ok(n);
                }
                soft_delete(tx, tenant, &spec.object_id, &child, root, by, at).await?;
                clear_lookups(tx, tenant, root, &child, &spec.clear).await?;
                *budget -= 1;
                n += 1;
            }
        }
        Ok(n)
    })
}

async fn do_delete(tx: &Transaction<'_>, tenant: &str, op: &DeleteOp) -> Step<WriteResult> {
    if !lock_live(tx, tenant, &op.object_id, &op.id, true).await? {
        return Err(not_found(&op.id).into());
    }
    let at = op.deleted_at;
    let cascaded = cascade_of(tx, tenant, op, usize::MAX).await?;
    lock_specs_shared(tx, tenant, &op.object_id).await?;
    soft_delete(
        tx,
        tenant,
        &op.object_id,
        &op.id,
        &op.id,
        &op.deleted_by,
        &at,
    )
    .await?;
    clear_lookups(tx, tenant, &op.id, &op.id, &op.clear).await?;
    Ok(WriteResult::Deleted {
        id: op.id.clone(),
        cascaded,
    })
}

/// One step of a large cascade, before the delete itself: removes up to
/// [`CASCADE_BATCH`] descendants of a live master (none if it is gone).
async fn cascade_step(tx: &Transaction<'_>, tenant: &str, op: &DeleteOp) -> Step<usize> {
    if !lock_live(tx, tenant, &op.object_id, &op.id, true).await? {
        return Ok(0);
    }
    cascade_of(tx, tenant, op, CASCADE_BATCH).await
}

/// Deletes up to `budget` descendants of the master `op` deletes.
async fn cascade_of(
    tx: &Transaction<'_>,
    tenant: &str,
    op: &DeleteOp,
    budget: usize,
) -> Step<usize> {
    let mut budget = budget;
    cascade(
        tx,
        tenant,
        &op.id,
        &op.id,
        &op.cascade,
        &op.deleted_by,
        &op.deleted_at,
        0,
        &mut budget,
    )
    .await
}

/// An insert and its effects (an effect of another write).
pub(crate) fn insert_with_effects<'a>(
    tx: &'a Transaction<'a>,
    tenant: &'a str,
    op: &'a InsertOp,
) -> StepFuture<'a, WriteResult> {
    Box::pin(async move {
        let r = do_insert(tx, tenant, op).await?;
        crate::automation::apply_effects(tx, tenant, &op.effects).await?;
        Ok(r)
    })
}

async fn apply(tx: &Transaction<'_>, tenant: &str, op: &WriteOp) -> Step<WriteResult> {
    let (r, effects): (WriteResult, &[Effect]) = match op {
        WriteOp::Insert(i) => (do_insert(tx, tenant, i).await?, &i.effects),
        WriteOp::Update(u) => (do_update(tx, tenant, u).await?, &u.effects),
        WriteOp::Delete(d) => (do_delete(tx, tenant, d).await?, &d.effects),
    };
    crate::automation::apply_effects(tx, tenant, effects).await?;
    Ok(r)
}

fn rolled_back() -> MosaicError {
    MosaicError::new(
        ErrorCode::ALL_OR_NONE_OPERATION_ROLLED_BACK,
        "Record rolled back because not all records were valid and the request was using AllOrNone header",
    )
}

/// What one op's failure means for the batch: a deadlock or serialization
/// failure retries the whole transaction; anything else is the op's error.
enum OpFailure {
    Retry(TxError),
    Failed(MosaicError),
}

fn classify(e: TxError) -> OpFailure {
    if e.is_retryable() {
        OpFailure::Retry(e)
    } else {
        OpFailure::Failed(e.into_mosaic())
    }
}

/// Rows of one statement decoded into record rows.
fn rows_of(rows: &[tokio_postgres::Row], slots: &[FlexSlot]) -> Step<Vec<RecordRow>> {
    Ok(rows
        .iter()
        .map(|r| row_of(r, slots))
        .collect::<Result<Vec<_>, _>>()?)
}

#[async_trait]
impl RecordStore for PgRecordStore {
    /// Transaction-scoped advisory locks keyed by (tenant, record), taken in
    /// id order on a connection of their own and held by a task until the
    /// lock is dropped; waiting longer than the lock timeout is
    /// `UNABLE_TO_LOCK_ROW`.
    async fn lock_records(
        &self,
        tenant_id: &str,
        ids: &[String],
    ) -> MosaicResult<Option<HeldRecordLock>> {
        let mut ids: Vec<String> = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(None);
        }
        let permit = self
            .lockers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| MosaicError::unavailable("postgres: the record store is closed"))?;
        let mut client = self.pool.client().await?;
        let tenant = tenant_id.to_string();
        let (acquired_tx, acquired_rx) = tokio::sync::oneshot::channel::<MosaicResult<()>>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _permit = permit;
            let taken: Result<(), tokio_postgres::Error> = async {
                client.batch_execute("BEGIN").await?;
                client
                    .batch_execute(&format!(
                        "SET LOCAL lock_timeout = {}",
                        mosaic_types::timeouts::DB_BUSY_TIMEOUT.as_millis()
                    ))
                    .await?;
                // Keyed by (tenant_id, record id); a hash collision only
                // serializes two saves that need not be.
                let st = client
                    .prepare_cached(
                        "SELECT pg_advisory_xact_lock(hashtext($1::text), hashtext($2::text))",
                    )
                    .await?;
                for id in &ids {
                    client.execute(&st, &[&tenant, id]).await?;
                }
                Ok(())
            }
            .await;
            let ok = taken.is_ok();
            let _ = acquired_tx.send(taken.map_err(|e| lock_error(&e)));
            if !ok {
                return; // dropped unsettled: the connection leaves the pool
            }
            // Held until the save drops its lock (or gives up waiting).
            let _ = release_rx.await;
            if client.batch_execute("COMMIT").await.is_ok() {
                client.settle();
            }
        });
        match acquired_rx.await {
            Ok(Ok(())) => Ok(Some(HeldRecordLock::new(release_tx))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(MosaicError::internal("record lock holder ended")),
        }
    }

    async fn write(
        &self,
        tenant_id: &str,
        ops: Vec<WriteOp>,
        all_or_none: bool,
    ) -> MosaicResult<Vec<MosaicResult<WriteResult>>> {
        let tenant = tenant_id;
        // Large cascades first, each step a transaction of its own (see
        // CASCADE_BATCH); an all-or-none batch of several ops stays one.
        let mut stepped: Vec<usize> = vec![0; ops.len()];
        if !(all_or_none && ops.len() > 1) {
            for (i, op) in ops.iter().enumerate() {
                let WriteOp::Delete(d) = op else { continue };
                if d.cascade.is_empty() {
                    continue;
                }
                loop {
                    let n = shard_tx!(self.pool, |tx| cascade_step(tx, tenant, d).await)?;
                    stepped[i] += n;
                    if n < CASCADE_BATCH {
                        break;
                    }
                }
            }
        }
        let written = shard_tx!(self.pool, |tx| {
            if all_or_none && ops.len() > 1 {
                let mut done = Vec::with_capacity(ops.len());
                tx.batch_execute("SAVEPOINT mosaic_batch").await?;
                for (i, op) in ops.iter().enumerate() {
                    match apply(tx, tenant, op).await {
                        Ok(w) => done.push(Ok(w)),
                        Err(e) => match classify(e) {
                            OpFailure::Retry(e) => return Err(e),
                            OpFailure::Failed(err) => {
                                // Nothing of the batch stays.
                                tx.batch_execute("ROLLBACK TO SAVEPOINT mosaic_batch")
                                    .await?;
                                return Ok((0..ops.len())
                                    .map(|j| {
                                        if j == i {
                                            Err(err.clone())
                                        } else {
                                            Err(rolled_back())
                                        }
                                    })
                                    .collect());
                            }
                        },
                    }
                }
                Ok(done)
            } else {
                let mut out = Vec::with_capacity(ops.len());
                for op in &ops {
                    tx.batch_execute("SAVEPOINT mosaic_op").await?;
                    match apply(tx, tenant, op).await {
                        Ok(w) => {
                            tx.batch_execute("RELEASE SAVEPOINT mosaic_op").await?;
                            out.push(Ok(w));
                        }
                        Err(e) => {
                            match classify(e) {
                                OpFailure::Retry(e) => return Err(e),
                                OpFailure::Failed(err) => {
                                    tx.batch_execute("ROLLBACK TO SAVEPOINT mosaic_op; RELEASE SAVEPOINT mosaic_op")
                                    .await?;
                                    out.push(Err(err));
                                }
                            }
                        }
                    }
                }
                Ok(out)
            }
        })?;
        let rows = written.iter().filter(|w| w.is_ok()).count() as u64;
        self.stats
            .wrote(rows + stepped.iter().sum::<usize>() as u64);
        Ok(written
            .into_iter()
            .zip(&stepped)
            .map(|(r, before)| match r {
                Ok(WriteResult::Deleted { id, cascaded }) => Ok(WriteResult::Deleted {
                    id,
                    cascaded: cascaded + before,
                }),
                other => other,
            })
            .collect())
    }

    async fn get(
        &self,
        tenant_id: &str,
        object_id: &str,
        id: &str,
        slots: &[FlexSlot],
    ) -> MosaicResult<Option<RecordRow>> {
        let sql = format!(
            "{} WHERE tenant_id = $1 AND object_id = $2 AND id = $3",
            select_records(slots)
        );
        with_client!(self.pool, |c| {
            let st = c.prepare_cached(&sql).await?;
            match c.query_opt(&st, &[&tenant_id, &object_id, &id]).await? {
                Some(r) => Ok(Some(row_of(&r, slots)?)),
                None => Ok(None),
            }
        })
    }

    async fn get_many(
        &self,
        tenant_id: &str,
        object_id: &str,
        ids: &[String],
        slots: &[FlexSlot],
    ) -> MosaicResult<Vec<RecordRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "{} WHERE tenant_id = $1 AND object_id = $2 AND is_deleted = FALSE AND id = ANY($3::text[])",
            select_records(slots)
        );
        with_client!(self.pool, |c| {
            let st = c.prepare_cached(&sql).await?;
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(GET_MANY_CHUNK) {
                let rows = c.query(&st, &[&tenant_id, &object_id, &chunk]).await?;
                out.extend(rows_of(&rows, slots)?);
            }
            Ok(out)
        })
    }

    async fn find_by_index(
        &self,
        tenant_id: &str,
        object_id: &str,
        spec: &IndexSpec,
        key: &Value,
    ) -> MosaicResult<Vec<String>> {
        let Some(key) = index_key(spec.case_insensitive, spec.slot, key)? else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT record_id FROM {} WHERE tenant_id = $1 AND object_id = $2 AND slot = $3 AND value = $4 \
             ORDER BY record_id LIMIT 10",
            pivot_table(spec.unique)
        );
        with_client!(self.pool, |c| {
            let st = c.prepare_cached(&sql).await?;
            let rows = c
                .query(&st, &[&tenant_id, &object_id, &spec.slot.column(), &key])
                .await?;
            Ok(rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<String>, _>>()?)
        })
    }

    async fn clear_slot(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<()> {
        let sql = format!(
            "UPDATE object_records SET {c} = NULL WHERE tenant_id = $1 AND object_id = $2 AND {c} IS NOT NULL",
            c = slot.column()
        );
        shard_tx!(self.pool, |tx| {
            lock_specs_exclusive(tx, tenant_id, object_id).await?;
            tx.execute(sql.as_str(), &[&tenant_id, &object_id]).await?;
            drop_slot_pivots(tx, tenant_id, object_id, slot).await?;
            tx.execute(
                "DELETE FROM pivot_specs WHERE tenant_id = $1 AND object_id = $2 AND slot = $3",
                &[&tenant_id, &object_id, &slot.column()],
            )
            .await?;
            Ok(())
        })
    }

    async fn fill_nulls(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
        value: &Value,
    ) -> MosaicResult<()> {
        let v = encode(slot, value)?;
        let sql = format!(
            "UPDATE object_records SET {c} = $1 WHERE tenant_id = $2 AND object_id = $3 AND {c} IS NULL",
            c = slot.column()
        );
        with_client!(self.pool, |c| {
            c.execute(sql.as_str(), &[&v, &tenant_id, &object_id])
                .await?;
            Ok(())
        })
    }

    async fn build_index(
        &self,
        tenant_id: &str,
        object_id: &str,
        spec: &IndexSpec,
    ) -> MosaicResult<()> {
        let sql = format!(
            "SELECT id, {c} FROM object_records WHERE tenant_id = $1 AND object_id = $2 \
             AND is_deleted = FALSE AND {c} IS NOT NULL ORDER BY id",
            c = spec.slot.column()
        );
        shard_tx!(self.pool, |tx| {
            // Waits for the object's writes in flight; every later write
            // reads the new spec and keeps this slot's pivots.
            lock_specs_exclusive(tx, tenant_id, object_id).await?;
            set_shard_spec(tx, tenant_id, object_id, spec.slot, Some(spec)).await?;
            drop_slot_pivots(tx, tenant_id, object_id, spec.slot).await?;
            let rows = tx.query(sql.as_str(), &[&tenant_id, &object_id]).await?;
            for r in &rows {
                let id: String = r.try_get(0)?;
                let v = decode(r, 1, spec.slot)?;
                put_pivots(tx, tenant_id, object_id, &id, spec, &v).await?;
            }
            Ok(rows.len() as u64)
        })
        .map(|rows| self.stats.wrote(rows))
    }

    async fn drop_index(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<()> {
        shard_tx!(self.pool, |tx| {
            lock_specs_exclusive(tx, tenant_id, object_id).await?;
            set_shard_spec(tx, tenant_id, object_id, slot, None).await?;
            drop_slot_pivots(tx, tenant_id, object_id, slot).await
        })
    }

    async fn purge_object(&self, tenant_id: &str, object_id: &str) -> MosaicResult<()> {
        shard_tx!(self.pool, |tx| {
            for sql in [
                "DELETE FROM object_records WHERE tenant_id = $1 AND object_id = $2",
                "DELETE FROM record_index WHERE tenant_id = $1 AND object_id = $2",
                "DELETE FROM record_unique WHERE tenant_id = $1 AND object_id = $2",
                "DELETE FROM auto_number_counters WHERE tenant_id = $1 AND object_id = $2",
                "DELETE FROM record_shares WHERE tenant_id = $1 AND object_id = $2",
                "DELETE FROM pivot_specs WHERE tenant_id = $1 AND object_id = $2",
                "DELETE FROM record_bin WHERE tenant_id = $1 AND object_id = $2",
                "DELETE FROM record_bin_lookups WHERE tenant_id = $1 AND object_id = $2",
            ] {
                tx.execute(sql, &[&tenant_id, &object_id]).await?;
            }
            Ok(())
        })
    }

    async fn max_text_len(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<usize> {
        let sql = format!(
            "SELECT MAX(char_length({c}::text))::bigint FROM object_records WHERE tenant_id = $1 AND object_id = $2",
            c = slot.column()
        );
        with_client!(self.pool, |c| {
            let n: Option<i64> = c
                .query_one(sql.as_str(), &[&tenant_id, &object_id])
                .await?
                .try_get(0)?;
            Ok(usize::try_from(n.unwrap_or(0).max(0)).unwrap_or(usize::MAX))
        })
    }

    async fn count_filled(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<u64> {
        let sql = format!(
            "SELECT COUNT(*) FROM object_records WHERE tenant_id = $1 AND object_id = $2 AND is_deleted = FALSE AND {c} IS NOT NULL",
            c = slot.column()
        );
        with_client!(self.pool, |c| {
            let n: i64 = c
                .query_one(sql.as_str(), &[&tenant_id, &object_id])
                .await?
                .try_get(0)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    async fn locate(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<String>> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(
                    "SELECT object_id FROM object_records WHERE tenant_id = $1 AND id = $2 AND is_deleted = FALSE",
                )
                .await?;
            match c.query_opt(&st, &[&tenant_id, &id]).await? {
                Some(r) => Ok(Some(r.try_get(0)?)),
                None => Ok(None),
            }
        })
    }

    async fn count(&self, tenant_id: &str, object_id: &str) -> MosaicResult<u64> {
        with_client!(self.pool, |c| {
            let st = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM object_records WHERE tenant_id = $1 AND object_id = $2 AND is_deleted = FALSE",
                )
                .await?;
            let n: i64 = c
                .query_one(&st, &[&tenant_id, &object_id])
                .await?
                .try_get(0)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    async fn undelete(&self, tenant_id: &str, op: UndeleteOp) -> MosaicResult<usize> {
        let n = shard_tx!(self.pool, |tx| crate::bin::undelete(tx, tenant_id, &op)
            .await)?;
        self.stats.wrote(n as u64);
        Ok(n)
    }

    async fn bin_entry(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<BinEntry>> {
        with_client!(self.pool, |c| crate::bin::bin_entry(
            c, tenant_id, id, false
        )
        .await)
    }

    async fn bin_entries(
        &self,
        tenant_id: &str,
        filter: &BinFilter,
    ) -> MosaicResult<Vec<BinEntry>> {
        with_client!(self.pool, |c| crate::bin::bin_entries(c, tenant_id, filter)
            .await)
    }

    async fn purge_bin(
        &self,
        tenant_id: &str,
        roots: &[String],
        limit: usize,
    ) -> MosaicResult<usize> {
        shard_tx!(self.pool, |tx| crate::bin::purge(
            tx, tenant_id, roots, limit
        )
        .await)
    }

    async fn updated_ids(
        &self,
        tenant_id: &str,
        object_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        limit: usize,
    ) -> MosaicResult<Vec<String>> {
        with_client!(self.pool, |c| {
            crate::bin::updated_ids(c, tenant_id, object_id, &start, &end, limit).await
        })
    }
}

/// Drops the pivot rows of one slot of an object.
async fn drop_slot_pivots<C: GenericClient + Sync>(
    c: &C,
    tenant: &str,
    object_id: &str,
    slot: FlexSlot,
) -> Step<()> {
    for sql in [
        "DELETE FROM record_index WHERE tenant_id = $1 AND object_id = $2 AND slot = $3",
        "DELETE FROM record_unique WHERE tenant_id = $1 AND object_id = $2 AND slot = $3",
    ] {
        let st = c.prepare_cached(sql).await?;
        c.execute(&st, &[&tenant, &object_id, &slot.column()])
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl mosaic_store::router::ShardCensus for PgRecordStore {
    async fn record_count(&self) -> MosaicResult<u64> {
        crate::pool::with_client!(self.pool(), |c| {
            let n: i64 = c
                .query_one("SELECT count(*) FROM object_records", &[])
                .await?
                .try_get(0)?;
            Ok(n.max(0) as u64)
        })
    }
}
