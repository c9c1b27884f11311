//! SQLite side of tenant moves: the move-state and journal tables, their
//! triggers, and [`TenantTransfer`] for a SQLite shard.
//!
//! SQLite has one writer, so a state change (a write job) is ordered with
//! every write transaction: none straddles it.

use crate::record_store::{IndexSpec, RecordRow};
use crate::sqlite::map_sql;
use crate::sqlite_meta::parse_ts;
use crate::sqlite_query::{index_search, unindex_search};
use crate::sqlite_records::{
    drop_pivots_of, encode, index_key, row_of, SqliteRecordStore, SYSTEM_COLS,
};
use crate::transfer::*;
use async_trait::async_trait;
use mosaic_types::value::format_datetime;
use mosaic_types::{FlexSlot, MosaicResult, Value};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

/// Move states (platform-wide jobs on a shard read it, so every database
/// with tenant tables has it).
pub(crate) const MOVES_TABLE: &str = r#"
CREATE TABLE IF NOT EXISTS tenant_moves (
  tenant_id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
"#;

/// The move tables and, per tenant table, the triggers that refuse writes
/// of a frozen tenant and journal the changes of a moving one.
pub(crate) fn transfer_schema() -> String {
    let mut sql = String::from(MOVES_TABLE);
    sql.push_str(
        r#"
CREATE TABLE IF NOT EXISTS tenant_journal (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id TEXT NOT NULL,
  tbl TEXT NOT NULL,
  key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tenant_journal_by_tenant ON tenant_journal (tenant_id, seq);
"#,
    );
    let mut tables: Vec<(&str, Vec<&str>)> = vec![(RECORDS, vec!["id"])];
    tables.extend(TABLES.iter().map(|t| (t.name, t.key_columns().collect())));
    for (t, keys) in tables {
        let state = |row: &str, states: &str| {
            format!("EXISTS (SELECT 1 FROM tenant_moves WHERE tenant_id = {row}.tenant_id AND state IN ({states}))")
        };
        let refused = format!("'{FROZEN}', '{PURGING}'");
        let frozen = format!("'{FROZEN}'");
        let journal = format!("'{JOURNAL}'");
        let key = |row: &str| {
            let cols: Vec<String> = keys.iter().map(|k| format!("{row}.{k}")).collect();
            format!("json_array({})", cols.join(", "))
        };
        for (op, row, states) in [
            ("INSERT", "NEW", &refused),
            ("UPDATE", "NEW", &refused),
            ("DELETE", "OLD", &frozen),
        ] {
            let lc = op.to_lowercase();
            sql.push_str(&format!(
                "CREATE TRIGGER IF NOT EXISTS {t}_refuse_{lc} BEFORE {op} ON {t} WHEN {} \
                 BEGIN SELECT RAISE(ABORT, '{FROZEN_MARK}'); END;\n",
                state(row, states)
            ));
            sql.push_str(&format!(
                "CREATE TRIGGER IF NOT EXISTS {t}_journal_{lc} AFTER {op} ON {t} WHEN {} \
                 BEGIN INSERT INTO tenant_journal (tenant_id, tbl, key) VALUES ({row}.tenant_id, '{t}', {}); END;\n",
                state(row, &journal),
                key(row)
            ));
        }
    }
    sql
}

fn select_sql(spec: &TableSpec) -> String {
    let cols: Vec<&str> = spec.columns.iter().map(|(c, _)| *c).collect();
    format!(
        "SELECT {} FROM {} WHERE tenant_id = ?1",
        cols.join(", "),
        spec.name
    )
}

fn key_tuple(spec: &TableSpec) -> String {
    format!("({})", spec.key_columns().collect::<Vec<_>>().join(", "))
}

fn placeholders(from: usize, n: usize) -> String {
    let p: Vec<String> = (from..from + n).map(|i| format!("?{i}")).collect();
    format!("({})", p.join(", "))
}

fn cells_of(r: &rusqlite::Row, spec: &TableSpec) -> rusqlite::Result<Vec<Cell>> {
    let mut out = Vec::with_capacity(spec.columns.len());
    for (i, (_, kind)) in spec.columns.iter().enumerate() {
        let v: SqlValue = r.get(i)?;
        out.push(match (kind, v) {
            (_, SqlValue::Null) => Cell::Null,
            (Kind::Time, SqlValue::Text(s)) => Cell::Time(parse_ts(&s)?),
            (Kind::Bool, SqlValue::Integer(n)) => Cell::Bool(n != 0),
            (_, SqlValue::Integer(n)) => Cell::Int(n),
            (_, SqlValue::Text(s)) => Cell::Text(s),
            (_, SqlValue::Blob(b)) => Cell::Bytes(b),
            (_, SqlValue::Real(f)) => Cell::Text(f.to_string()),
        });
    }
    Ok(out)
}

fn sql_of(c: &Cell) -> SqlValue {
    match c {
        Cell::Null => SqlValue::Null,
        Cell::Text(s) => SqlValue::Text(s.clone()),
        Cell::Int(n) => SqlValue::Integer(*n),
        Cell::Time(t) => SqlValue::Text(format_datetime(t)),
        Cell::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Cell::Bytes(b) => SqlValue::Blob(b.clone()),
    }
}

fn all_slots() -> Vec<FlexSlot> {
    FlexSlot::all().collect()
}

fn record_select() -> String {
    let mut sql = format!("SELECT {SYSTEM_COLS}");
    for s in FlexSlot::all() {
        sql.push_str(", ");
        sql.push_str(s.column());
    }
    sql.push_str(" FROM object_records WHERE tenant_id = ?1");
    sql
}

fn remove_record(conn: &Connection, tenant: &str, id: &str) -> MosaicResult<()> {
    unindex_search(conn, tenant, id)?;
    drop_pivots_of(conn, tenant, id, None)?;
    conn.prepare_cached("DELETE FROM object_records WHERE tenant_id = ?1 AND id = ?2")
        .and_then(|mut st| st.execute(params![tenant, id]))
        .map_err(map_sql)?;
    Ok(())
}

/// Mirrors one value into the pivots; a unique key held by another record
/// of the source's past is taken over (the source is the truth, and that
/// record's own change is in the same catch-up).
fn import_pivot(
    conn: &Connection,
    tenant: &str,
    r: &RecordRow,
    spec: &IndexSpec,
    v: &Value,
) -> MosaicResult<()> {
    let Some(key) = index_key(spec.case_insensitive, spec.slot, v)? else {
        return Ok(());
    };
    let col = spec.slot.column();
    if spec.unique {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO record_unique (tenant_id, object_id, slot, value, record_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut st| st.execute(params![tenant, r.object_id, col, key, r.id]))
        .map_err(map_sql)?;
    }
    if spec.indexed {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO record_index (tenant_id, object_id, slot, value, record_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut st| st.execute(params![tenant, r.object_id, col, key, r.id]))
        .map_err(map_sql)?;
    }
    Ok(())
}

fn import_record(
    conn: &Connection,
    tenant: &str,
    r: &RecordRow,
    specs: &IndexSpecs,
) -> MosaicResult<()> {
    remove_record(conn, tenant, &r.id)?;
    let mut sql = format!("INSERT INTO object_records (tenant_id, {SYSTEM_COLS}");
    let mut args: Vec<SqlValue> = vec![
        SqlValue::Text(tenant.to_string()),
        SqlValue::Text(r.id.clone()),
        SqlValue::Text(r.object_id.clone()),
        r.name.clone().map(SqlValue::Text).unwrap_or(SqlValue::Null),
        SqlValue::Text(r.owner_id.clone()),
        SqlValue::Text(r.created_by.clone()),
        SqlValue::Text(format_datetime(&r.created_at)),
        SqlValue::Text(r.modified_by.clone()),
        SqlValue::Text(format_datetime(&r.modified_at)),
        SqlValue::Integer(i64::from(r.is_deleted)),
    ];
    for (slot, v) in r.values.iter().filter(|(_, v)| !v.is_null()) {
        sql.push_str(", ");
        sql.push_str(slot.column());
        args.push(encode(*slot, v)?);
    }
    sql.push_str(") VALUES ");
    sql.push_str(&placeholders(1, args.len()));
    conn.prepare_cached(&sql)
        .and_then(|mut st| st.execute(params_from_iter(args.iter())))
        .map_err(map_sql)?;
    if r.is_deleted {
        return Ok(());
    }
    for spec in specs.get(&r.object_id).into_iter().flatten() {
        if let Some(v) = r.value(spec.slot) {
            import_pivot(conn, tenant, r, spec, v)?;
        }
    }
    index_search(conn, tenant, &r.id)
}

fn bind_key(args: &mut Vec<SqlValue>, key: &[String]) {
    args.extend(key.iter().map(|k| SqlValue::Text(k.clone())));
}

fn check_key(spec: &TableSpec, key: &[String]) -> MosaicResult<()> {
    if key.len() != spec.keys {
        return Err(mosaic_types::MosaicError::internal(format!(
            "a key of {} has {} parts, not {}",
            spec.name,
            key.len(),
            spec.keys
        )));
    }
    Ok(())
}

#[async_trait]
impl TenantTransfer for SqliteRecordStore {
    async fn move_state(&self, tenant_id: &str) -> MosaicResult<Option<String>> {
        let t = tenant_id.to_string();
        self.db()
            .read(move |conn| {
                conn.prepare_cached("SELECT state FROM tenant_moves WHERE tenant_id = ?1")
                    .and_then(|mut st| st.query_row([&t], |r| r.get(0)).optional())
                    .map_err(map_sql)
            })
            .await
    }

    async fn set_move_state(&self, tenant_id: &str, state: Option<&str>) -> MosaicResult<()> {
        let (t, state) = (tenant_id.to_string(), state.map(str::to_string));
        let now = format_datetime(&chrono::Utc::now());
        self.db()
            .write(move |conn| {
                let before: Option<String> = conn
                    .query_row(
                        "SELECT state FROM tenant_moves WHERE tenant_id = ?1",
                        [&t],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(map_sql)?;
                if before.is_none() || state.is_none() {
                    conn.execute("DELETE FROM tenant_journal WHERE tenant_id = ?1", [&t])
                        .map_err(map_sql)?;
                }
                match state {
                    None => conn.execute("DELETE FROM tenant_moves WHERE tenant_id = ?1", [&t]),
                    Some(s) => conn.execute(
                        "INSERT INTO tenant_moves (tenant_id, state, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (tenant_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                        params![t, s, now],
                    ),
                }
                .map_err(map_sql)?;
                Ok(())
            })
            .await
    }

    async fn export(
        &self,
        tenant_id: &str,
        table_name: &str,
        after: Option<Vec<String>>,
        limit: usize,
    ) -> MosaicResult<Vec<Item>> {
        let t = tenant_id.to_string();
        let name = table_name.to_string();
        self.db()
            .read(move |conn| {
                let mut args = vec![SqlValue::Text(t)];
                if name == RECORDS {
                    let mut sql = record_select();
                    if let Some(k) = &after {
                        sql.push_str(" AND id > ?2");
                        bind_key(&mut args, k);
                    }
                    sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
                    let slots = all_slots();
                    let mut st = conn.prepare_cached(&sql).map_err(map_sql)?;
                    let rows = st
                        .query_map(params_from_iter(args.iter()), |r| row_of(r, &slots))
                        .map_err(map_sql)?;
                    return rows.map(|r| r.map(Item::Record).map_err(map_sql)).collect();
                }
                let spec = table(&name)?;
                let mut sql = select_sql(spec);
                if let Some(k) = &after {
                    check_key(spec, k)?;
                    sql.push_str(&format!(
                        " AND {} > {}",
                        key_tuple(spec),
                        placeholders(2, spec.keys)
                    ));
                    bind_key(&mut args, k);
                }
                sql.push_str(&format!(
                    " ORDER BY {} LIMIT {limit}",
                    key_tuple(spec).trim_matches(['(', ')'])
                ));
                let mut st = conn.prepare_cached(&sql).map_err(map_sql)?;
                let rows = st
                    .query_map(params_from_iter(args.iter()), |r| cells_of(r, spec))
                    .map_err(map_sql)?;
                rows.map(|r| r.map(Item::Row).map_err(map_sql)).collect()
            })
            .await
    }

    async fn fetch(
        &self,
        tenant_id: &str,
        table_name: &str,
        keys: &[Vec<String>],
    ) -> MosaicResult<Vec<Item>> {
        let t = tenant_id.to_string();
        let name = table_name.to_string();
        let keys = keys.to_vec();
        self.db()
            .read(move |conn| {
                let mut out = Vec::with_capacity(keys.len());
                if name == RECORDS {
                    let sql = format!("{} AND id = ?2", record_select());
                    let slots = all_slots();
                    let mut st = conn.prepare_cached(&sql).map_err(map_sql)?;
                    for k in &keys {
                        let id = k.first().cloned().unwrap_or_default();
                        if let Some(r) = st
                            .query_row(params![t, id], |r| row_of(r, &slots))
                            .optional()
                            .map_err(map_sql)?
                        {
                            out.push(Item::Record(r));
                        }
                    }
                    return Ok(out);
                }
                let spec = table(&name)?;
                let sql = format!(
                    "{} AND {} = {}",
                    select_sql(spec),
                    key_tuple(spec),
                    placeholders(2, spec.keys)
                );
                let mut st = conn.prepare_cached(&sql).map_err(map_sql)?;
                for k in &keys {
                    check_key(spec, k)?;
                    let mut args = vec![SqlValue::Text(t.clone())];
                    bind_key(&mut args, k);
                    if let Some(cells) = st
                        .query_row(params_from_iter(args.iter()), |r| cells_of(r, spec))
                        .optional()
                        .map_err(map_sql)?
                    {
                        out.push(Item::Row(cells));
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn import(
        &self,
        tenant_id: &str,
        table_name: &str,
        rows: Vec<Item>,
        absent: Vec<Vec<String>>,
        specs: &IndexSpecs,
    ) -> MosaicResult<()> {
        let t = tenant_id.to_string();
        let name = table_name.to_string();
        let specs = specs.clone();
        self.db()
            .write(move |conn| {
                if name == RECORDS {
                    for k in &absent {
                        remove_record(conn, &t, k.first().map(String::as_str).unwrap_or(""))?;
                    }
                    for item in &rows {
                        if let Item::Record(r) = item {
                            import_record(conn, &t, r, &specs)?;
                        }
                    }
                    return Ok(());
                }
                let spec = table(&name)?;
                let del = format!(
                    "DELETE FROM {} WHERE tenant_id = ?1 AND {} = {}",
                    spec.name,
                    key_tuple(spec),
                    placeholders(2, spec.keys)
                );
                for k in &absent {
                    check_key(spec, k)?;
                    let mut args = vec![SqlValue::Text(t.clone())];
                    bind_key(&mut args, k);
                    conn.prepare_cached(&del)
                        .and_then(|mut st| st.execute(params_from_iter(args.iter())))
                        .map_err(map_sql)?;
                }
                let cols: Vec<&str> = spec.columns.iter().map(|(c, _)| *c).collect();
                let ins = format!(
                    "INSERT OR REPLACE INTO {} (tenant_id, {}) VALUES {}",
                    spec.name,
                    cols.join(", "),
                    placeholders(1, cols.len() + 1)
                );
                let mut st = conn.prepare_cached(&ins).map_err(map_sql)?;
                for item in &rows {
                    if let Item::Row(cells) = item {
                        let mut args = vec![SqlValue::Text(t.clone())];
                        args.extend(cells.iter().map(sql_of));
                        st.execute(params_from_iter(args.iter())).map_err(map_sql)?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn journal(
        &self,
        tenant_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> MosaicResult<Vec<JournalEntry>> {
        let t = tenant_id.to_string();
        let rows: Vec<(i64, String, String)> = self
            .db()
            .read(move |conn| {
                let mut st = conn
                    .prepare_cached(
                        "SELECT seq, tbl, key FROM tenant_journal WHERE tenant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                    )
                    .map_err(map_sql)?;
                let rows = st
                    .query_map(params![t, after_seq, limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .map_err(map_sql)?;
                rows.map(|r| r.map_err(map_sql)).collect()
            })
            .await?;
        rows.into_iter()
            .map(|(seq, table, key)| {
                Ok(JournalEntry {
                    seq,
                    table,
                    key: parse_key(&key)?,
                })
            })
            .collect()
    }

    async fn forget(&self, tenant_id: &str, seqs: &[i64]) -> MosaicResult<()> {
        let t = tenant_id.to_string();
        let seqs = serde_json::to_string(seqs)
            .map_err(|e| mosaic_types::MosaicError::internal(e.to_string()))?;
        self.db()
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM tenant_journal WHERE tenant_id = ?1 AND seq IN (SELECT value FROM json_each(?2))",
                    params![t, seqs],
                )
                .map_err(map_sql)?;
                Ok(())
            })
            .await
    }

    async fn purge(&self, tenant_id: &str, limit: usize) -> MosaicResult<u64> {
        let t = tenant_id.to_string();
        self.db()
            .write(move |conn| {
                let lim = limit as i64;
                let ids: Vec<String> = conn
                    .prepare_cached("SELECT id FROM object_records WHERE tenant_id = ?1 LIMIT ?2")
                    .and_then(|mut st| {
                        st.query_map(params![t, lim], |r| r.get(0))?
                            .collect::<rusqlite::Result<Vec<String>>>()
                    })
                    .map_err(map_sql)?;
                let mut n = ids.len() as u64;
                for id in &ids {
                    remove_record(conn, &t, id)?;
                }
                for spec in TABLES {
                    let k = key_tuple(spec);
                    let sql = format!(
                        "DELETE FROM {} WHERE tenant_id = ?1 AND {k} IN (SELECT {} FROM {} WHERE tenant_id = ?1 LIMIT ?2)",
                        spec.name,
                        k.trim_matches(['(', ')']),
                        spec.name
                    );
                    n += conn.execute(&sql, params![t, lim]).map_err(map_sql)? as u64;
                }
                // Pivots of records already gone (a crash between batches).
                for p in ["record_index", "record_unique"].into_iter().filter(|_| ids.is_empty()) {
                    n += conn
                        .execute(
                            &format!("DELETE FROM {p} WHERE tenant_id = ?1 AND record_id NOT IN (SELECT id FROM object_records WHERE tenant_id = ?1)"),
                            [&t],
                        )
                        .map_err(map_sql)? as u64;
                }
                if ids.is_empty() {
                    // The shard's record of the tenant's pivot specs.
                    n += conn
                        .execute("DELETE FROM pivot_specs WHERE tenant_id = ?1", [&t])
                        .map_err(map_sql)? as u64;
                }
                if n == 0 {
                    conn.execute("DELETE FROM tenant_journal WHERE tenant_id = ?1", [&t])
                        .map_err(map_sql)?;
                }
                Ok(n)
            })
            .await
    }

    async fn row_count(&self, tenant_id: &str) -> MosaicResult<u64> {
        let t = tenant_id.to_string();
        self.db()
            .read(move |conn| {
                let mut n = 0u64;
                for name in table_names() {
                    let c: i64 = conn
                        .query_row(
                            &format!("SELECT count(*) FROM {name} WHERE tenant_id = ?1"),
                            [&t],
                            |r| r.get(0),
                        )
                        .map_err(map_sql)?;
                    n += c as u64;
                }
                Ok(n)
            })
            .await
    }
}
