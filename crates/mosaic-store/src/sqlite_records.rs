//! SQLite implementation of [`RecordStore`]: the wide `object_records` table
//! and its pivot tables in one database file (a shard).
//!
//! Encoding: numbers are stored as order-preserving text keys
//! ([`mosaic_types::deckey`]) so comparisons and indexes stay exact; dates and
//! datetimes as fixed-width ISO text; booleans as 0/1.

use crate::record_store::*;
use crate::sqlite::{map_sql, savepoint, SqliteDb};
use crate::sqlite_meta::parse_ts;
use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use mosaic_types::value::{format_date, format_datetime, format_time};
use mosaic_types::{deckey, ErrorCode, FlexSlot, MosaicError, MosaicResult, SlotPool, Value};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Arc;

/// DDL of a shard: the wide record table and its pivot tables.
pub fn record_schema() -> String {
    let mut cols = String::new();
    for s in FlexSlot::all() {
        let ty = match s.pool {
            SlotPool::Boolean => "INTEGER",
            _ => "TEXT",
        };
        cols.push_str(&format!(",\n  {} {ty}", s.column()));
    }
    format!(
        r#"
CREATE TABLE IF NOT EXISTS schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
INSERT OR IGNORE INTO schema_version VALUES ('records', 1);
CREATE TABLE IF NOT EXISTS object_records (
  tenant_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  id TEXT NOT NULL,
  name TEXT,
  owner_id TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  modified_by TEXT NOT NULL,
  modified_at TEXT NOT NULL,
  is_deleted INTEGER NOT NULL DEFAULT 0{cols}
);
CREATE UNIQUE INDEX IF NOT EXISTS object_records_pk ON object_records (tenant_id, id);
CREATE INDEX IF NOT EXISTS object_records_by_object ON object_records (tenant_id, object_id, id);
CREATE TABLE IF NOT EXISTS record_index (
  tenant_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  slot TEXT NOT NULL,
  value TEXT NOT NULL,
  record_id TEXT NOT NULL,
  PRIMARY KEY (tenant_id, object_id, slot, value, record_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_index_by_record ON record_index (tenant_id, record_id, slot);
CREATE TABLE IF NOT EXISTS record_unique (
  tenant_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  slot TEXT NOT NULL,
  value TEXT NOT NULL,
  record_id TEXT NOT NULL,
  PRIMARY KEY (tenant_id, object_id, slot, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_unique_by_record ON record_unique (tenant_id, record_id, slot);
CREATE TABLE IF NOT EXISTS pivot_specs (
  tenant_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  slot TEXT NOT NULL,
  field TEXT NOT NULL,
  is_unique INTEGER NOT NULL,
  is_indexed INTEGER NOT NULL,
  case_insensitive INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, object_id, slot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS auto_number_counters (
  tenant_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  counter TEXT NOT NULL,
  next_value INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, object_id, counter)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS record_search USING fts5 (body, tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO record_search (rowid, body)
  SELECT rowid, {search_body} FROM object_records
  WHERE is_deleted = 0 AND NOT EXISTS (SELECT 1 FROM schema_version WHERE component = 'search');
INSERT OR IGNORE INTO schema_version VALUES ('search', 1);
{automation}
{shares}
{idempotency}
{transfer}
{bin}
"#,
        automation = crate::automation::AUTOMATION_SCHEMA,
        shares = crate::sharing::SHARES_SCHEMA,
        idempotency = crate::idempotency::IDEMPOTENCY_SCHEMA,
        transfer = crate::sqlite_transfer::transfer_schema(),
        bin = crate::sqlite_bin::BIN_SCHEMA,
        search_body = crate::sqlite_query::search_body_sql()
    )
}

pub struct SqliteRecordStore {
    db: Arc<SqliteDb>,
}

impl SqliteRecordStore {
    pub fn open(path: &Path) -> MosaicResult<SqliteRecordStore> {
        crate::automation::migrate_lease_owner(path)?;
        Ok(SqliteRecordStore {
            db: SqliteDb::open(path, &record_schema())?,
        })
    }

    pub fn db(&self) -> &Arc<SqliteDb> {
        &self.db
    }
}

fn type_mismatch(slot: FlexSlot, v: &Value) -> MosaicError {
    MosaicError::internal(format!("value {v:?} does not fit slot {slot}"))
}

/// Encodes a value for its slot's column.
pub(crate) fn encode(slot: FlexSlot, v: &Value) -> MosaicResult<SqlValue> {
    Ok(match (slot.pool, v) {
        (_, Value::Null) => SqlValue::Null,
        (SlotPool::String | SlotPool::Clob, Value::Text(s)) => SqlValue::Text(s.clone()),
        (SlotPool::String, Value::Time(t)) => SqlValue::Text(format_time(t)),
        (
            SlotPool::String,
            Value::Location {
                latitude,
                longitude,
            },
        ) => SqlValue::Text(format!("{latitude},{longitude}")),
        (SlotPool::Number, Value::Number(d)) => SqlValue::Text(deckey::encode(d)),
        (SlotPool::Date, Value::Date(d)) => SqlValue::Text(format_date(d)),
        (SlotPool::Datetime, Value::Datetime(d)) => SqlValue::Text(format_datetime(d)),
        (SlotPool::Boolean, Value::Boolean(b)) => SqlValue::Integer(i64::from(*b)),
        _ => return Err(type_mismatch(slot, v)),
    })
}

/// Decodes a column value of `slot` (string-pool values come back as text;
/// the runtime reinterprets times and locations by field type).
pub(crate) fn decode(slot: FlexSlot, v: SqlValue) -> Value {
    match (slot.pool, v) {
        (_, SqlValue::Null) => Value::Null,
        (SlotPool::String | SlotPool::Clob, SqlValue::Text(s)) => Value::Text(s),
        (SlotPool::Number, SqlValue::Text(s)) => {
            deckey::decode(&s).map(Value::Number).unwrap_or(Value::Null)
        }
        (SlotPool::Date, SqlValue::Text(s)) => NaiveDate::parse_from_str(&s, "%Y-%m-%d")
            .map(Value::Date)
            .unwrap_or(Value::Null),
        (SlotPool::Datetime, SqlValue::Text(s)) => {
            parse_ts(&s).map(Value::Datetime).unwrap_or(Value::Null)
        }
        (SlotPool::Boolean, SqlValue::Integer(i)) => Value::Boolean(i != 0),
        (_, SqlValue::Integer(i)) => Value::Text(i.to_string()),
        (_, SqlValue::Real(f)) => Value::Text(f.to_string()),
        (_, SqlValue::Text(s)) => Value::Text(s),
        (_, SqlValue::Blob(_)) => Value::Null,
    }
}

/// The pivot-table key of a value (None for null: nulls are not indexed).
pub fn index_key(spec_ci: bool, slot: FlexSlot, v: &Value) -> MosaicResult<Option<String>> {
    Ok(match encode(slot, v)? {
        SqlValue::Null => None,
        SqlValue::Text(s) if spec_ci => Some(s.to_lowercase()),
        SqlValue::Text(s) => Some(s),
        SqlValue::Integer(i) => Some(i.to_string()),
        SqlValue::Real(f) => Some(f.to_string()),
        SqlValue::Blob(_) => None,
    })
}

/// The text of auto number `n` in `format` on `date` (`INV-{0000}`,
/// `{YYYY}{MM}{DD}-{00}`; unknown tokens are kept as written).
pub fn fmt_auto_number(format: &str, n: i64, date: NaiveDate) -> String {
    let mut out = String::new();
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let token = &after[..close];
                match token {
                    "YYYY" => out.push_str(&format!("{:04}", date.year())),
                    "YY" => out.push_str(&format!("{:02}", date.year().rem_euclid(100))),
                    "MM" => out.push_str(&format!("{:02}", date.month())),
                    "DD" => out.push_str(&format!("{:02}", date.day())),
                    t if !t.is_empty() && t.bytes().all(|b| b == b'0') => {
                        out.push_str(&format!("{:0width$}", n, width = t.len()))
                    }
                    t => {
                        out.push('{');
                        out.push_str(t);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn next_counter(
    conn: &Connection,
    tenant: &str,
    object_id: &str,
    spec: &AutoNumberSpec,
) -> MosaicResult<i64> {
    conn.prepare_cached(
        "INSERT INTO auto_number_counters (tenant_id, object_id, counter, next_value) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    )
    .and_then(|mut st| st.execute(params![tenant, object_id, spec.counter, spec.start]))
    .map_err(map_sql)?;
    conn.prepare_cached(
        "UPDATE auto_number_counters SET next_value = next_value + 1 WHERE tenant_id = ?1 AND object_id = ?2 AND counter = ?3 RETURNING next_value - 1",
    )
    .and_then(|mut st| st.query_row(params![tenant, object_id, spec.counter], |r| r.get(0)))
    .map_err(map_sql)
}

fn check_refs(conn: &Connection, tenant: &str, checks: &[RefCheck]) -> MosaicResult<()> {
    for c in checks {
        let found: Option<i64> = conn
            .prepare_cached(
                "SELECT 1 FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND id = ?3 AND is_deleted = 0",
            )
            .and_then(|mut st| st.query_row(params![tenant, c.object_id, c.id], |r| r.get(0)).optional())
            .map_err(map_sql)?;
        if found.is_none() {
            return Err(MosaicError::field(
                ErrorCode::INVALID_CROSS_REFERENCE_KEY,
                c.field.clone(),
                format!(
                    "{}: no record with id '{}' exists to refer to",
                    c.field, c.id
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn put_pivots(
    conn: &Connection,
    tenant: &str,
    object_id: &str,
    record_id: &str,
    spec: &IndexSpec,
    v: &Value,
) -> MosaicResult<()> {
    let Some(key) = index_key(spec.case_insensitive, spec.slot, v)? else {
        return Ok(());
    };
    let col = spec.slot.column();
    if spec.unique {
        let n = conn
            .prepare_cached(
                "INSERT INTO record_unique (tenant_id, object_id, slot, value, record_id) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut st| st.execute(params![tenant, object_id, col, key, record_id]))
            .map_err(map_sql)?;
        if n == 0 {
            let other: Option<String> = conn
                .query_row(
                    "SELECT record_id FROM record_unique WHERE tenant_id = ?1 AND object_id = ?2 AND slot = ?3 AND value = ?4",
                    params![tenant, object_id, col, key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(map_sql)?;
            return Err(MosaicError::field(
                ErrorCode::DUPLICATE_VALUE,
                spec.field.clone(),
                format!(
                    "duplicate value found: {} duplicates value on record with id: {}",
                    spec.field,
                    other.unwrap_or_default()
                ),
            ));
        }
    }
    if spec.indexed {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO record_index (tenant_id, object_id, slot, value, record_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut st| st.execute(params![tenant, object_id, col, key, record_id]))
        .map_err(map_sql)?;
    }
    Ok(())
}

pub(crate) fn drop_pivots_of(
    conn: &Connection,
    tenant: &str,
    record_id: &str,
    slot: Option<FlexSlot>,
) -> MosaicResult<()> {
    match slot {
        Some(s) => {
            for t in ["record_index", "record_unique"] {
                conn.prepare_cached(&format!(
                    "DELETE FROM {t} WHERE tenant_id = ?1 AND record_id = ?2 AND slot = ?3"
                ))
                .and_then(|mut st| st.execute(params![tenant, record_id, s.column()]))
                .map_err(map_sql)?;
            }
        }
        None => {
            for t in ["record_index", "record_unique"] {
                conn.prepare_cached(&format!(
                    "DELETE FROM {t} WHERE tenant_id = ?1 AND record_id = ?2"
                ))
                .and_then(|mut st| st.execute(params![tenant, record_id]))
                .map_err(map_sql)?;
            }
        }
    }
    Ok(())
}

/// The shard's record of an object's pivot specs (see
/// [`merge_index_specs`]).
pub(crate) fn shard_specs_of(
    conn: &Connection,
    tenant: &str,
    object_id: &str,
) -> MosaicResult<Vec<IndexSpec>> {
    let rows: Vec<(String, String, bool, bool, bool)> = conn
        .prepare_cached(
            "SELECT slot, field, is_unique, is_indexed, case_insensitive FROM pivot_specs WHERE tenant_id = ?1 AND object_id = ?2",
        )
        .and_then(|mut st| {
            st.query_map(params![tenant, object_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        })
        .map_err(map_sql)?;
    Ok(rows
        .into_iter()
        .filter_map(|(slot, field, unique, indexed, ci)| {
            FlexSlot::from_column(&slot).map(|slot| IndexSpec {
                slot,
                field,
                unique,
                indexed,
                case_insensitive: ci,
            })
        })
        .collect())
}

/// Records a slot's pivot flags on the shard (a dropped index is kept as
/// "neither", so writers with an older definition stop maintaining it).
fn set_shard_spec(
    conn: &Connection,
    tenant: &str,
    object_id: &str,
    slot: FlexSlot,
    spec: Option<&IndexSpec>,
) -> MosaicResult<()> {
    conn.prepare_cached(
        "INSERT INTO pivot_specs (tenant_id, object_id, slot, field, is_unique, is_indexed, case_insensitive) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (tenant_id, object_id, slot) DO UPDATE SET field = excluded.field, \
         is_unique = excluded.is_unique, is_indexed = excluded.is_indexed, case_insensitive = excluded.case_insensitive",
    )
    .and_then(|mut st| {
        st.execute(params![
            tenant,
            object_id,
            slot.column(),
            spec.map(|s| s.field.as_str()).unwrap_or(""),
            spec.is_some_and(|s| s.unique),
            spec.is_some_and(|s| s.indexed),
            spec.is_some_and(|s| s.case_insensitive),
        ])
    })
    .map_err(map_sql)?;
    Ok(())
}

fn do_insert(conn: &Connection, tenant: &str, op: &InsertOp) -> MosaicResult<WriteResult> {
    if let Some((spec, v)) = &op.require_absent {
        if let Some(key) = index_key(spec.case_insensitive, spec.slot, v)? {
            let table = if spec.unique {
                "record_unique"
            } else {
                "record_index"
            };
            let hit: Option<String> = conn
                .prepare_cached(&format!(
                    "SELECT record_id FROM {table} WHERE tenant_id = ?1 AND object_id = ?2 AND slot = ?3 AND value = ?4 LIMIT 1"
                ))
                .and_then(|mut st| {
                    st.query_row(params![tenant, op.record.object_id, spec.slot.column(), key], |r| r.get(0))
                        .optional()
                })
                .map_err(map_sql)?;
            if let Some(other) = hit {
                return Err(MosaicError::field(
                    ErrorCode::DUPLICATE_VALUE,
                    spec.field.clone(),
                    format!(
                        "duplicate value found: {} duplicates value on record with id: {other}",
                        spec.field
                    ),
                ));
            }
        }
    }
    check_refs(conn, tenant, &op.ref_checks)?;
    let r = &op.record;
    let mut name = r.name.clone();
    let mut values = r.values.clone();
    for an in &op.auto_numbers {
        let n = next_counter(conn, tenant, &r.object_id, an)?;
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
    let mut args: Vec<SqlValue> = vec![
        SqlValue::Text(tenant.to_string()),
        SqlValue::Text(r.object_id.clone()),
        SqlValue::Text(r.id.clone()),
        name.map(SqlValue::Text).unwrap_or(SqlValue::Null),
        SqlValue::Text(r.owner_id.clone()),
        SqlValue::Text(r.created_by.clone()),
        SqlValue::Text(format_datetime(&r.created_at)),
        SqlValue::Text(r.modified_by.clone()),
        SqlValue::Text(format_datetime(&r.modified_at)),
        SqlValue::Integer(0),
    ];
    for (slot, v) in &values {
        sql.push_str(", ");
        sql.push_str(slot.column());
        args.push(encode(*slot, v)?);
    }
    sql.push_str(") VALUES (");
    for i in 0..args.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('?');
    }
    sql.push(')');
    conn.prepare_cached(&sql)
        .and_then(|mut st| st.execute(params_from_iter(args.iter())))
        .map_err(map_sql)?;
    let specs = merge_index_specs(&op.indexes, &shard_specs_of(conn, tenant, &r.object_id)?);
    for spec in &specs {
        if let Some((_, v)) = values.iter().find(|(s, _)| *s == spec.slot) {
            put_pivots(conn, tenant, &r.object_id, &r.id, spec, v)?;
        }
    }
    crate::sqlite_query::index_search(conn, tenant, &r.id)?;
    Ok(WriteResult::Inserted { id: r.id.clone() })
}

fn live_exists(conn: &Connection, tenant: &str, object_id: &str, id: &str) -> MosaicResult<bool> {
    let deleted: Option<bool> = conn
        .prepare_cached(
            "SELECT is_deleted FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND id = ?3",
        )
        .and_then(|mut st| st.query_row(params![tenant, object_id, id], |r| r.get(0)).optional())
        .map_err(map_sql)?;
    Ok(matches!(deleted, Some(false)))
}

fn do_update(conn: &Connection, tenant: &str, op: &UpdateOp) -> MosaicResult<WriteResult> {
    if !live_exists(conn, tenant, &op.object_id, &op.id)? {
        return Err(MosaicError::not_found(format!(
            "the requested resource does not exist: no record with id '{}'",
            op.id
        )));
    }
    if let Some(since) = &op.unmodified_since {
        let stored: String = conn
            .prepare_cached(
                "SELECT modified_at FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND id = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant, op.object_id, op.id], |r| r.get(0))
            })
            .map_err(map_sql)?;
        let stored = crate::sqlite_meta::parse_ts(&stored).map_err(map_sql)?;
        if crate::record_store::modified_after(&stored, since) {
            return Err(crate::record_store::modified_since_error(&op.id));
        }
    }
    check_refs(conn, tenant, &op.ref_checks)?;
    let mut sql = String::from("UPDATE object_records SET modified_by = ?, modified_at = ?");
    let mut args: Vec<SqlValue> = vec![
        SqlValue::Text(op.modified_by.clone()),
        SqlValue::Text(format_datetime(&op.modified_at)),
    ];
    if let Some(name) = &op.name {
        sql.push_str(", name = ?");
        args.push(name.clone().map(SqlValue::Text).unwrap_or(SqlValue::Null));
    }
    if let Some(owner) = &op.owner_id {
        sql.push_str(", owner_id = ?");
        args.push(SqlValue::Text(owner.clone()));
    }
    for (slot, v) in &op.set {
        sql.push_str(", ");
        sql.push_str(slot.column());
        sql.push_str(" = ?");
        args.push(encode(*slot, v)?);
    }
    sql.push_str(" WHERE tenant_id = ? AND object_id = ? AND id = ?");
    args.push(SqlValue::Text(tenant.to_string()));
    args.push(SqlValue::Text(op.object_id.clone()));
    args.push(SqlValue::Text(op.id.clone()));
    conn.prepare_cached(&sql)
        .and_then(|mut st| st.execute(params_from_iter(args.iter())))
        .map_err(map_sql)?;
    let specs = merge_index_specs(&op.indexes, &shard_specs_of(conn, tenant, &op.object_id)?);
    for spec in &specs {
        if let Some((_, v)) = op.set.iter().find(|(s, _)| *s == spec.slot) {
            drop_pivots_of(conn, tenant, &op.id, Some(spec.slot))?;
            put_pivots(conn, tenant, &op.object_id, &op.id, spec, v)?;
        }
    }
    crate::sqlite_query::index_search(conn, tenant, &op.id)?;
    Ok(WriteResult::Updated { id: op.id.clone() })
}

/// Moves a record to the recycle bin with the delete of `root` (the record
/// itself when deleted directly); its row is kept as it was.
fn soft_delete(
    conn: &Connection,
    tenant: &str,
    object_id: &str,
    id: &str,
    root: &str,
    by: &str,
    at: &str,
) -> MosaicResult<()> {
    crate::sqlite_query::unindex_search(conn, tenant, id)?;
    conn.prepare_cached(
        "UPDATE object_records SET is_deleted = 1 WHERE tenant_id = ?1 AND object_id = ?2 AND id = ?3",
    )
    .and_then(|mut st| st.execute(params![tenant, object_id, id]))
    .map_err(map_sql)?;
    crate::sqlite_bin::bin_record(conn, tenant, object_id, id, root, by, at)?;
    drop_pivots_of(conn, tenant, id, None)
}

/// Clears lookup values that point at a deleted record (and their pivots),
/// finding the referring records through the lookup's pivot rows (lookups
/// are always indexed), never by scanning the referring object.
fn clear_lookups(
    conn: &Connection,
    tenant: &str,
    root: &str,
    id: &str,
    refs: &[LookupRef],
) -> MosaicResult<()> {
    for r in refs {
        crate::sqlite_bin::bin_lookups(conn, tenant, root, id, r)?;
        conn.prepare_cached(&format!(
            "UPDATE object_records SET {c} = NULL WHERE tenant_id = ?1 AND object_id = ?2 AND {c} = ?4 \
             AND id IN (SELECT record_id FROM record_index WHERE tenant_id = ?1 AND object_id = ?2 AND slot = ?3 AND value = ?4)",
            c = r.slot.column()
        ))
        .and_then(|mut st| st.execute(params![tenant, r.object_id, r.slot.column(), id]))
        .map_err(map_sql)?;
        for t in ["record_index", "record_unique"] {
            conn.prepare_cached(&format!(
                "DELETE FROM {t} WHERE tenant_id = ?1 AND object_id = ?2 AND slot = ?3 AND value = ?4"
            ))
            .and_then(|mut st| st.execute(params![tenant, r.object_id, r.slot.column(), id]))
            .map_err(map_sql)?;
        }
    }
    Ok(())
}

/// The statement finding a record's live master-detail children: through
/// the master-detail field's pivot rows (reference fields are always
/// indexed) and the record primary key — never a scan of the child object.
/// `?1` tenant, `?2` child object, `?3` slot column, `?4` parent id, `?5`
/// limit. `CROSS JOIN` fixes the join order (SQLite keeps it as written).
pub const CASCADE_CHILDREN_SQL: &str = "SELECT i.record_id FROM record_index i \
     CROSS JOIN object_records r ON r.tenant_id = i.tenant_id AND r.id = i.record_id \
     WHERE i.tenant_id = ?1 AND i.object_id = ?2 AND i.slot = ?3 AND i.value = ?4 \
     AND r.object_id = ?2 AND r.is_deleted = 0 ORDER BY i.record_id LIMIT ?5";

/// Deletes up to `budget` master-detail descendants of `parent`, deepest
/// first (a record goes only once all its own children are gone), and
/// returns how many went. With an unlimited budget it deletes them all.
#[allow(clippy::too_many_arguments)]
fn cascade(
    conn: &Connection,
    tenant: &str,
    root: &str,
    parent: &str,
    specs: &[CascadeSpec],
    by: &str,
    at: &str,
    depth: usize,
    budget: &mut usize,
) -> MosaicResult<usize> {
    if depth > 16 {
        return Err(MosaicError::new(
            ErrorCode::DELETE_FAILED,
            "cascade delete exceeds the maximum relationship depth",
        ));
    }
    let mut n = 0;
    for spec in specs {
        if *budget == 0 {
            break;
        }
        let limit = i64::try_from(*budget).unwrap_or(i64::MAX);
        let ids: Vec<String> = conn
            .prepare_cached(CASCADE_CHILDREN_SQL)
            .and_then(|mut st| {
                st.query_map(
                    params![tenant, spec.object_id, spec.slot.column(), parent, limit],
                    |r| r.get(0),
                )?
                .collect()
            })
            .map_err(map_sql)?;
        for child in ids {
            n += cascade(
                conn,
                tenant,
                root,
                &child,
                &spec.children,
                by,
                at,
                depth + 1,
                budget,
            )?;
            if *budget == 0 {
                return Ok(n);
            }
            soft_delete(conn, tenant, &spec.object_id, &child, root, by, at)?;
            clear_lookups(conn, tenant, root, &child, &spec.clear)?;
            *budget -= 1;
            n += 1;
        }
    }
    Ok(n)
}

/// One step of a large cascade, before the delete itself: removes up to
/// [`CASCADE_BATCH`] descendants of a live master (none if it is gone).
fn cascade_step(conn: &Connection, tenant: &str, op: &DeleteOp) -> MosaicResult<usize> {
    if !live_exists(conn, tenant, &op.object_id, &op.id)? {
        return Ok(0);
    }
    cascade_of(conn, tenant, op, CASCADE_BATCH)
}

/// Deletes up to `budget` descendants of the master `op` deletes.
fn cascade_of(
    conn: &Connection,
    tenant: &str,
    op: &DeleteOp,
    budget: usize,
) -> MosaicResult<usize> {
    let at = format_datetime(&op.deleted_at);
    let mut budget = budget;
    cascade(
        conn,
        tenant,
        &op.id,
        &op.id,
        &op.cascade,
        &op.deleted_by,
        &at,
        0,
        &mut budget,
    )
}

fn do_delete(conn: &Connection, tenant: &str, op: &DeleteOp) -> MosaicResult<WriteResult> {
    if !live_exists(conn, tenant, &op.object_id, &op.id)? {
        return Err(MosaicError::not_found(format!(
            "the requested resource does not exist: no record with id '{}'",
            op.id
        )));
    }
    let cascaded = cascade_of(conn, tenant, op, usize::MAX)?;
    let at = format_datetime(&op.deleted_at);
    soft_delete(
        conn,
        tenant,
        &op.object_id,
        &op.id,
        &op.id,
        &op.deleted_by,
        &at,
    )?;
    clear_lookups(conn, tenant, &op.id, &op.id, &op.clear)?;
    Ok(WriteResult::Deleted {
        id: op.id.clone(),
        cascaded,
    })
}

/// An insert and its effects (the caller provides the savepoint).
pub(crate) fn insert_with_effects(
    conn: &Connection,
    tenant: &str,
    op: &InsertOp,
) -> MosaicResult<WriteResult> {
    let r = do_insert(conn, tenant, op)?;
    crate::automation::apply_effects(conn, tenant, &op.effects)?;
    Ok(r)
}

fn apply(conn: &Connection, tenant: &str, op: &WriteOp) -> MosaicResult<WriteResult> {
    let (r, effects) = match op {
        WriteOp::Insert(i) => (do_insert(conn, tenant, i)?, &i.effects),
        WriteOp::Update(u) => (do_update(conn, tenant, u)?, &u.effects),
        WriteOp::Delete(d) => (do_delete(conn, tenant, d)?, &d.effects),
    };
    crate::automation::apply_effects(conn, tenant, effects)?;
    Ok(r)
}

/// Adds the descendants deleted in earlier cascade steps to each delete's count.
fn with_stepped(
    results: Vec<MosaicResult<WriteResult>>,
    stepped: &[usize],
) -> Vec<MosaicResult<WriteResult>> {
    results
        .into_iter()
        .zip(stepped)
        .map(|(r, before)| match r {
            Ok(WriteResult::Deleted { id, cascaded }) => Ok(WriteResult::Deleted {
                id,
                cascaded: cascaded + before,
            }),
            other => other,
        })
        .collect()
}

/// Ids per statement in [`RecordStore::get_many`].
const GET_MANY_CHUNK: usize = 500;

pub(crate) fn row_of(r: &rusqlite::Row, slots: &[FlexSlot]) -> rusqlite::Result<RecordRow> {
    let mut values = Vec::with_capacity(slots.len());
    for (i, s) in slots.iter().enumerate() {
        values.push((*s, decode(*s, r.get::<_, SqlValue>(9 + i)?)));
    }
    Ok(RecordRow {
        id: r.get(0)?,
        object_id: r.get(1)?,
        name: r.get(2)?,
        owner_id: r.get(3)?,
        created_by: r.get(4)?,
        created_at: parse_ts(&r.get::<_, String>(5)?)?,
        modified_by: r.get(6)?,
        modified_at: parse_ts(&r.get::<_, String>(7)?)?,
        is_deleted: r.get(8)?,
        values,
    })
}

pub(crate) const SYSTEM_COLS: &str =
    "id, object_id, name, owner_id, created_by, created_at, modified_by, modified_at, is_deleted";

#[async_trait]
impl RecordStore for SqliteRecordStore {
    async fn write(
        &self,
        tenant_id: &str,
        ops: Vec<WriteOp>,
        all_or_none: bool,
    ) -> MosaicResult<Vec<MosaicResult<WriteResult>>> {
        let tenant = tenant_id.to_string();
        // Large cascades first, in steps of their own (see CASCADE_BATCH);
        // an all-or-none batch of several ops stays one transaction.
        let mut stepped: Vec<usize> = vec![0; ops.len()];
        if !(all_or_none && ops.len() > 1) {
            for (i, op) in ops.iter().enumerate() {
                let WriteOp::Delete(d) = op else { continue };
                if d.cascade.is_empty() {
                    continue;
                }
                loop {
                    let (t, d) = (tenant.clone(), d.clone());
                    let n = self
                        .db
                        .write(move |conn| cascade_step(conn, &t, &d))
                        .await?;
                    stepped[i] += n;
                    if n < CASCADE_BATCH {
                        break;
                    }
                }
            }
        }
        let results = self
            .db
            .write(move |conn| {
                if all_or_none && ops.len() > 1 {
                    let mut failed: Option<(usize, MosaicError)> = None;
                    let mut done = Vec::with_capacity(ops.len());
                    let r = savepoint(conn, || {
                        for (i, op) in ops.iter().enumerate() {
                            match apply(conn, &tenant, op) {
                                Ok(w) => done.push(w),
                                Err(e) => {
                                    failed = Some((i, e.clone()));
                                    return Err(e);
                                }
                            }
                        }
                        Ok(())
                    });
                    match (r, failed) {
                        (Ok(()), _) => Ok(done.into_iter().map(Ok).collect()),
                        (Err(_), Some((at, err))) => Ok((0..ops.len())
                            .map(|i| {
                                if i == at {
                                    Err(err.clone())
                                } else {
                                    Err(MosaicError::new(
                                        ErrorCode::ALL_OR_NONE_OPERATION_ROLLED_BACK,
                                        "Record rolled back because not all records were valid and the request was using AllOrNone header",
                                    ))
                                }
                            })
                            .collect()),
                        (Err(e), None) => Err(e),
                    }
                } else {
                    Ok(ops
                        .iter()
                        .map(|op| savepoint(conn, || apply(conn, &tenant, op)))
                        .collect())
                }
            })
            .await?;
        Ok(with_stepped(results, &stepped))
    }

    async fn get(
        &self,
        tenant_id: &str,
        object_id: &str,
        id: &str,
        slots: &[FlexSlot],
    ) -> MosaicResult<Option<RecordRow>> {
        let (t, o, id) = (tenant_id.to_string(), object_id.to_string(), id.to_string());
        let slots = slots.to_vec();
        self.db
            .read(move |conn| {
                let mut sql = format!("SELECT {SYSTEM_COLS}");
                for s in &slots {
                    sql.push_str(", ");
                    sql.push_str(s.column());
                }
                sql.push_str(
                    " FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND id = ?3",
                );
                let mut st = conn.prepare_cached(&sql).map_err(map_sql)?;
                st.query_row(params![t, o, id], |r| row_of(r, &slots))
                    .optional()
                    .map_err(map_sql)
            })
            .await
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
        let (t, o) = (tenant_id.to_string(), object_id.to_string());
        let ids = ids.to_vec();
        let slots = slots.to_vec();
        self.db
            .read(move |conn| {
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(GET_MANY_CHUNK) {
                    let mut sql = format!("SELECT {SYSTEM_COLS}");
                    for s in &slots {
                        sql.push_str(", ");
                        sql.push_str(s.column());
                    }
                    sql.push_str(" FROM object_records WHERE tenant_id = ? AND object_id = ? AND is_deleted = 0 AND id IN (");
                    sql.push_str(&vec!["?"; chunk.len()].join(", "));
                    sql.push(')');
                    let mut args: Vec<SqlValue> = vec![SqlValue::Text(t.clone()), SqlValue::Text(o.clone())];
                    args.extend(chunk.iter().map(|i| SqlValue::Text(i.clone())));
                    let mut st = conn.prepare_cached(&sql).map_err(map_sql)?;
                    let rows = st
                        .query_map(params_from_iter(args.iter()), |r| row_of(r, &slots))
                        .map_err(map_sql)?;
                    for row in rows {
                        out.push(row.map_err(map_sql)?);
                    }
                }
                Ok(out)
            })
            .await
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
        let table = if spec.unique {
            "record_unique"
        } else {
            "record_index"
        };
        let (t, o, col) = (
            tenant_id.to_string(),
            object_id.to_string(),
            spec.slot.column(),
        );
        self.db
            .read(move |conn| {
                let sql = format!(
                    "SELECT record_id FROM {table} WHERE tenant_id = ?1 AND object_id = ?2 AND slot = ?3 AND value = ?4 LIMIT 10"
                );
                conn.prepare_cached(&sql)
                    .and_then(|mut st| st.query_map(params![t, o, col, key], |r| r.get(0))?.collect())
                    .map_err(map_sql)
            })
            .await
    }

    async fn clear_slot(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<()> {
        let (t, o) = (tenant_id.to_string(), object_id.to_string());
        self.db
            .write(move |conn| {
                conn.execute(
                    &format!(
                        "UPDATE object_records SET {c} = NULL WHERE tenant_id = ?1 AND object_id = ?2 AND {c} IS NOT NULL",
                        c = slot.column()
                    ),
                    params![t, o],
                )
                .map_err(map_sql)?;
                for table in ["record_index", "record_unique", "pivot_specs"] {
                    conn.execute(
                        &format!("DELETE FROM {table} WHERE tenant_id = ?1 AND object_id = ?2 AND slot = ?3"),
                        params![t, o, slot.column()],
                    )
                    .map_err(map_sql)?;
                }
                Ok(())
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
        let (t, o) = (tenant_id.to_string(), object_id.to_string());
        let v = encode(slot, value)?;
        self.db
            .write(move |conn| {
                conn.execute(
                    &format!(
                        "UPDATE object_records SET {c} = ?1 WHERE tenant_id = ?2 AND object_id = ?3 AND {c} IS NULL",
                        c = slot.column()
                    ),
                    params![v, t, o],
                )
                .map_err(map_sql)?;
                Ok(())
            })
            .await
    }

    async fn build_index(
        &self,
        tenant_id: &str,
        object_id: &str,
        spec: &IndexSpec,
    ) -> MosaicResult<()> {
        let (t, o, spec) = (tenant_id.to_string(), object_id.to_string(), spec.clone());
        self.db
            .write(move |conn| {
                for table in ["record_index", "record_unique"] {
                    conn.execute(
                        &format!("DELETE FROM {table} WHERE tenant_id = ?1 AND object_id = ?2 AND slot = ?3"),
                        params![t, o, spec.slot.column()],
                    )
                    .map_err(map_sql)?;
                }
                // From this job on, every writer keeps this slot's pivots,
                // whatever definition it holds.
                set_shard_spec(conn, &t, &o, spec.slot, Some(&spec))?;
                let sql = format!(
                    "SELECT id, {} FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND is_deleted = 0 AND {} IS NOT NULL",
                    spec.slot.column(),
                    spec.slot.column()
                );
                let rows: Vec<(String, SqlValue)> = conn
                    .prepare(&sql)
                    .and_then(|mut st| st.query_map(params![t, o], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
                    .map_err(map_sql)?;
                for (id, raw) in rows {
                    let v = decode(spec.slot, raw);
                    put_pivots(conn, &t, &o, &id, &spec, &v)?;
                }
                Ok(())
            })
            .await
    }

    async fn drop_index(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<()> {
        let (t, o) = (tenant_id.to_string(), object_id.to_string());
        self.db
            .write(move |conn| {
                for table in ["record_index", "record_unique"] {
                    conn.execute(
                        &format!("DELETE FROM {table} WHERE tenant_id = ?1 AND object_id = ?2 AND slot = ?3"),
                        params![t, o, slot.column()],
                    )
                    .map_err(map_sql)?;
                }
                set_shard_spec(conn, &t, &o, slot, None)
            })
            .await
    }

    async fn purge_object(&self, tenant_id: &str, object_id: &str) -> MosaicResult<()> {
        let (t, o) = (tenant_id.to_string(), object_id.to_string());
        self.db
            .write(move |conn| {
                for table in [
                    "object_records",
                    "record_index",
                    "record_unique",
                    "auto_number_counters",
                    "record_shares",
                    "pivot_specs",
                    "record_bin",
                    "record_bin_lookups",
                ] {
                    conn.execute(
                        &format!("DELETE FROM {table} WHERE tenant_id = ?1 AND object_id = ?2"),
                        params![t, o],
                    )
                    .map_err(map_sql)?;
                }
                Ok(())
            })
            .await
    }

    async fn max_text_len(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<usize> {
        let (t, o) = (tenant_id.to_string(), object_id.to_string());
        self.db
            .read(move |conn| {
                let n: Option<i64> = conn
                    .query_row(
                        &format!(
                            "SELECT MAX(LENGTH({c})) FROM object_records WHERE tenant_id = ?1 AND object_id = ?2",
                            c = slot.column()
                        ),
                        params![t, o],
                        |r| r.get(0),
                    )
                    .map_err(map_sql)?;
                Ok(n.unwrap_or(0).max(0) as usize)
            })
            .await
    }

    async fn count_filled(
        &self,
        tenant_id: &str,
        object_id: &str,
        slot: FlexSlot,
    ) -> MosaicResult<u64> {
        let (t, o) = (tenant_id.to_string(), object_id.to_string());
        self.db
            .read(move |conn| {
                let n: i64 = conn
                    .query_row(
                        &format!(
                            "SELECT COUNT(*) FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND is_deleted = 0 AND {c} IS NOT NULL",
                            c = slot.column()
                        ),
                        params![t, o],
                        |r| r.get(0),
                    )
                    .map_err(map_sql)?;
                Ok(n.max(0) as u64)
            })
            .await
    }

    async fn locate(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<String>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT object_id FROM object_records WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 0",
                )
                .and_then(|mut st| st.query_row(params![t, id], |r| r.get(0)).optional())
                .map_err(map_sql)
            })
            .await
    }

    async fn count(&self, tenant_id: &str, object_id: &str) -> MosaicResult<u64> {
        let (t, o) = (tenant_id.to_string(), object_id.to_string());
        self.db
            .read(move |conn| {
                let n: i64 = conn
                    .query_row(
                        "SELECT COUNT(*) FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND is_deleted = 0",
                        params![t, o],
                        |r| r.get(0),
                    )
                    .map_err(map_sql)?;
                Ok(n.max(0) as u64)
            })
            .await
    }

    async fn undelete(&self, tenant_id: &str, op: UndeleteOp) -> MosaicResult<usize> {
        let t = tenant_id.to_string();
        self.db
            .write(move |conn| crate::sqlite_bin::undelete(conn, &t, &op))
            .await
    }

    async fn bin_entry(&self, tenant_id: &str, id: &str) -> MosaicResult<Option<BinEntry>> {
        let (t, id) = (tenant_id.to_string(), id.to_string());
        self.db
            .read(move |conn| crate::sqlite_bin::bin_entry(conn, &t, &id))
            .await
    }

    async fn bin_entries(
        &self,
        tenant_id: &str,
        filter: &BinFilter,
    ) -> MosaicResult<Vec<BinEntry>> {
        let (t, f) = (tenant_id.to_string(), filter.clone());
        self.db
            .read(move |conn| crate::sqlite_bin::bin_entries(conn, &t, &f))
            .await
    }

    async fn purge_bin(
        &self,
        tenant_id: &str,
        roots: &[String],
        limit: usize,
    ) -> MosaicResult<usize> {
        let (t, roots) = (tenant_id.to_string(), roots.to_vec());
        self.db
            .write(move |conn| crate::sqlite_bin::purge(conn, &t, &roots, limit))
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
        let (t, o) = (tenant_id.to_string(), object_id.to_string());
        let (start, end) = (format_datetime(&start), format_datetime(&end));
        self.db
            .read(move |conn| crate::sqlite_bin::updated_ids(conn, &t, &o, &start, &end, limit))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_number_formats() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 9).unwrap();
        assert_eq!(fmt_auto_number("INV-{0000}", 7, d), "INV-0007");
        assert_eq!(
            fmt_auto_number("{YYYY}{MM}{DD}-{00}", 123, d),
            "20240209-123"
        );
        assert_eq!(fmt_auto_number("A{YY}-{0}", 5, d), "A24-5");
        assert_eq!(fmt_auto_number("X{bad}{", 1, d), "X{bad}{");
    }
}
