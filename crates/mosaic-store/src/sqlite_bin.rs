//! The recycle bin on SQLite: which binned records a delete put there (and
//! when, by whom, with which root), the lookup values it cleared, undelete
//! and purge. A binned record keeps its row in `object_records` with
//! `is_deleted = 1`; its pivot rows and search document are dropped until
//! it comes back.

use crate::record_store::*;
use crate::sqlite::{map_sql, savepoint};
use crate::sqlite_meta::parse_ts;
use crate::sqlite_records::{decode, put_pivots, shard_specs_of};
use mosaic_types::value::format_datetime;
use mosaic_types::{FlexSlot, MosaicError, MosaicResult};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

/// DDL of the bin tables (part of every shard's schema).
pub(crate) const BIN_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS record_bin (
  tenant_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  root_id TEXT NOT NULL,
  deleted_at TEXT NOT NULL,
  deleted_by TEXT NOT NULL,
  PRIMARY KEY (tenant_id, record_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS record_bin_by_root ON record_bin (tenant_id, root_id);
CREATE INDEX IF NOT EXISTS record_bin_by_time ON record_bin (tenant_id, deleted_at, record_id);
CREATE INDEX IF NOT EXISTS record_bin_by_object ON record_bin (tenant_id, object_id, deleted_at);
CREATE TABLE IF NOT EXISTS record_bin_lookups (
  tenant_id TEXT NOT NULL,
  root_id TEXT NOT NULL,
  object_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  slot TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (tenant_id, root_id, record_id, slot)
) WITHOUT ROWID;
"#;

/// Records that `id` went to the bin with the delete of `root`.
pub(crate) fn bin_record(
    conn: &Connection,
    tenant: &str,
    object_id: &str,
    id: &str,
    root: &str,
    by: &str,
    at: &str,
) -> MosaicResult<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO record_bin (tenant_id, record_id, object_id, root_id, deleted_at, deleted_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut st| st.execute(params![tenant, id, object_id, root, at, by]))
    .map_err(map_sql)?;
    Ok(())
}

/// Keeps the lookup values about to be cleared because `id` goes to the
/// bin with `root` (the lookup's pivot rows name them).
pub(crate) fn bin_lookups(
    conn: &Connection,
    tenant: &str,
    root: &str,
    id: &str,
    r: &LookupRef,
) -> MosaicResult<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO record_bin_lookups (tenant_id, root_id, object_id, record_id, slot, value) \
         SELECT tenant_id, ?5, object_id, record_id, slot, value FROM record_index \
         WHERE tenant_id = ?1 AND object_id = ?2 AND slot = ?3 AND value = ?4",
    )
    .and_then(|mut st| st.execute(params![tenant, r.object_id, r.slot.column(), id, root]))
    .map_err(map_sql)?;
    Ok(())
}

fn entry_of(r: &rusqlite::Row) -> rusqlite::Result<BinEntry> {
    Ok(BinEntry {
        id: r.get(0)?,
        object_id: r.get(1)?,
        root_id: r.get(2)?,
        deleted_at: parse_ts(&r.get::<_, String>(3)?)?,
        deleted_by: r.get(4)?,
    })
}

const ENTRY_COLS: &str = "record_id, object_id, root_id, deleted_at, deleted_by";

pub(crate) fn bin_entry(
    conn: &Connection,
    tenant: &str,
    id: &str,
) -> MosaicResult<Option<BinEntry>> {
    conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLS} FROM record_bin WHERE tenant_id = ?1 AND record_id = ?2"
    ))
    .and_then(|mut st| st.query_row(params![tenant, id], entry_of).optional())
    .map_err(map_sql)
}

pub(crate) fn bin_entries(
    conn: &Connection,
    tenant: &str,
    f: &BinFilter,
) -> MosaicResult<Vec<BinEntry>> {
    let mut sql = format!("SELECT {ENTRY_COLS} FROM record_bin WHERE tenant_id = ?");
    let mut args = vec![SqlValue::Text(tenant.to_string())];
    if let Some(o) = &f.object_id {
        sql.push_str(" AND object_id = ?");
        args.push(SqlValue::Text(o.clone()));
    }
    if let Some(from) = &f.from {
        sql.push_str(" AND deleted_at >= ?");
        args.push(SqlValue::Text(format_datetime(from)));
    }
    if let Some(to) = &f.to {
        sql.push_str(" AND deleted_at < ?");
        args.push(SqlValue::Text(format_datetime(to)));
    }
    if f.roots_only {
        sql.push_str(" AND root_id = record_id");
    }
    sql.push_str(" ORDER BY deleted_at DESC, record_id LIMIT ?");
    args.push(SqlValue::Integer(
        i64::try_from(f.limit).unwrap_or(i64::MAX),
    ));
    conn.prepare_cached(&sql)
        .and_then(|mut st| {
            st.query_map(params_from_iter(args.iter()), entry_of)?
                .collect()
        })
        .map_err(map_sql)
}

/// Brings one binned record back: the flag, its pivot rows (a unique key
/// taken meanwhile fails) and its search document.
fn restore_record(
    conn: &Connection,
    tenant: &str,
    object_id: &str,
    id: &str,
    op: &UndeleteOp,
) -> MosaicResult<()> {
    conn.prepare_cached(
        "UPDATE object_records SET is_deleted = 0 WHERE tenant_id = ?1 AND object_id = ?2 AND id = ?3",
    )
    .and_then(|mut st| st.execute(params![tenant, object_id, id]))
    .map_err(map_sql)?;
    let from_op = op
        .indexes
        .iter()
        .find(|(o, _)| o == object_id)
        .map(|(_, s)| s.as_slice())
        .unwrap_or(&[]);
    let specs = merge_index_specs(from_op, &shard_specs_of(conn, tenant, object_id)?);
    if !specs.is_empty() {
        let slots: Vec<FlexSlot> = specs.iter().map(|s| s.slot).collect();
        let cols: Vec<&str> = slots.iter().map(|s| s.column()).collect();
        let raw: Vec<SqlValue> = conn
            .prepare_cached(&format!(
                "SELECT {} FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND id = ?3",
                cols.join(", ")
            ))
            .and_then(|mut st| {
                st.query_row(params![tenant, object_id, id], |r| {
                    (0..slots.len()).map(|i| r.get::<_, SqlValue>(i)).collect()
                })
            })
            .map_err(map_sql)?;
        for (spec, v) in specs.iter().zip(raw) {
            let v = decode(spec.slot, v);
            put_pivots(conn, tenant, object_id, id, spec, &v)?;
        }
    }
    crate::sqlite_query::index_search(conn, tenant, id)
}

/// Puts back the lookup values the delete of `root` cleared, on referring
/// records that are live and whose lookup is still empty.
fn restore_lookups(conn: &Connection, tenant: &str, root: &str) -> MosaicResult<()> {
    let rows: Vec<(String, String, String, String)> = conn
        .prepare_cached(
            "SELECT object_id, record_id, slot, value FROM record_bin_lookups WHERE tenant_id = ?1 AND root_id = ?2",
        )
        .and_then(|mut st| {
            st.query_map(params![tenant, root], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })
        .map_err(map_sql)?;
    for (object_id, record_id, slot, value) in rows {
        let Some(slot) = FlexSlot::from_column(&slot) else {
            continue;
        };
        let n = conn
            .prepare_cached(&format!(
                "UPDATE object_records SET {c} = ?1 WHERE tenant_id = ?2 AND object_id = ?3 AND id = ?4 \
                 AND is_deleted = 0 AND {c} IS NULL",
                c = slot.column()
            ))
            .and_then(|mut st| st.execute(params![value, tenant, object_id, record_id]))
            .map_err(map_sql)?;
        if n > 0 {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO record_index (tenant_id, object_id, slot, value, record_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![tenant, object_id, slot.column(), value, record_id]))
            .map_err(map_sql)?;
            crate::sqlite_query::index_search(conn, tenant, &record_id)?;
        }
    }
    Ok(())
}

fn check_parents(conn: &Connection, tenant: &str, checks: &[RefCheck]) -> MosaicResult<()> {
    for c in checks {
        let deleted: Option<bool> = conn
            .prepare_cached(
                "SELECT is_deleted FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND id = ?3",
            )
            .and_then(|mut st| st.query_row(params![tenant, c.object_id, c.id], |r| r.get(0)).optional())
            .map_err(map_sql)?;
        if let Some(err) = parent_error(c, deleted) {
            return Err(err);
        }
    }
    Ok(())
}

/// Undoes the delete of `op.id` (the caller runs it in a transaction).
pub(crate) fn undelete(conn: &Connection, tenant: &str, op: &UndeleteOp) -> MosaicResult<usize> {
    let entry = bin_entry(conn, tenant, &op.id)?
        .filter(|e| e.object_id == op.object_id)
        .ok_or_else(|| not_in_bin(&op.id))?;
    if entry.root_id != op.id {
        return Err(cascaded_error(&op.id, &entry.root_id));
    }
    savepoint(conn, || {
        check_parents(conn, tenant, &op.ref_checks)?;
        let members: Vec<(String, String)> = conn
            .prepare_cached(
                "SELECT record_id, object_id FROM record_bin WHERE tenant_id = ?1 AND root_id = ?2 ORDER BY record_id",
            )
            .and_then(|mut st| {
                st.query_map(params![tenant, op.id], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(map_sql)?;
        for (id, object_id) in &members {
            restore_record(conn, tenant, object_id, id, op)?;
        }
        restore_lookups(conn, tenant, &op.id)?;
        for t in ["record_bin_lookups", "record_bin"] {
            conn.prepare_cached(&format!(
                "DELETE FROM {t} WHERE tenant_id = ?1 AND root_id = ?2"
            ))
            .and_then(|mut st| st.execute(params![tenant, op.id]))
            .map_err(map_sql)?;
        }
        Ok(members.len())
    })
}

/// Removes for good up to `limit` binned records deleted with `roots`.
pub(crate) fn purge(
    conn: &Connection,
    tenant: &str,
    roots: &[String],
    limit: usize,
) -> MosaicResult<usize> {
    let mut n = 0;
    for root in roots {
        if n >= limit {
            break;
        }
        let left = i64::try_from(limit - n).unwrap_or(i64::MAX);
        let ids: Vec<String> = conn
            .prepare_cached(
                "SELECT record_id FROM record_bin WHERE tenant_id = ?1 AND root_id = ?2 ORDER BY record_id LIMIT ?3",
            )
            .and_then(|mut st| st.query_map(params![tenant, root, left], |r| r.get(0))?.collect())
            .map_err(map_sql)?;
        for id in &ids {
            for sql in [
                "DELETE FROM object_records WHERE tenant_id = ?1 AND id = ?2 AND is_deleted = 1",
                "DELETE FROM record_shares WHERE tenant_id = ?1 AND record_id = ?2",
                "DELETE FROM field_history WHERE tenant_id = ?1 AND record_id = ?2",
                "DELETE FROM record_bin WHERE tenant_id = ?1 AND record_id = ?2",
            ] {
                conn.prepare_cached(sql)
                    .and_then(|mut st| st.execute(params![tenant, id]))
                    .map_err(map_sql)?;
            }
        }
        n += ids.len();
        let left_in_bin: Option<i64> = conn
            .prepare_cached(
                "SELECT 1 FROM record_bin WHERE tenant_id = ?1 AND root_id = ?2 LIMIT 1",
            )
            .and_then(|mut st| st.query_row(params![tenant, root], |r| r.get(0)).optional())
            .map_err(map_sql)?;
        if left_in_bin.is_none() {
            conn.prepare_cached(
                "DELETE FROM record_bin_lookups WHERE tenant_id = ?1 AND root_id = ?2",
            )
            .and_then(|mut st| st.execute(params![tenant, root]))
            .map_err(map_sql)?;
        }
    }
    Ok(n)
}

/// Ids of live records of an object last modified in `[start, end)`.
pub(crate) fn updated_ids(
    conn: &Connection,
    tenant: &str,
    object_id: &str,
    start: &str,
    end: &str,
    limit: usize,
) -> MosaicResult<Vec<String>> {
    conn.prepare_cached(
        "SELECT id FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND is_deleted = 0 \
         AND modified_at >= ?3 AND modified_at < ?4 ORDER BY modified_at, id LIMIT ?5",
    )
    .and_then(|mut st| {
        st.query_map(
            params![
                tenant,
                object_id,
                start,
                end,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| r.get(0),
        )?
        .collect()
    })
    .map_err(|e: rusqlite::Error| -> MosaicError { map_sql(e) })
}
