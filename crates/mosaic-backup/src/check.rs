//! `mosaic check`: the integrity of a data directory, runnable any time
//! (also by `restore` before it reports success). Reads only.
//!
//! Checks: SQLite's `integrity_check` of every database; pivot rows
//! (`record_index`, `record_unique`) match the records and the shard's
//! pivot specs, unique values unique; outbox rows consistent; every
//! tenant's placement points at a shard that exists and holds its data.

use crate::databases::{discover, open_read_only, Database};
use crate::BackupResult;
use mosaic_store::IndexSpec;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// Most findings reported per check (a badly damaged database would
/// otherwise print millions of lines).
pub const MAX_FINDINGS_PER_CHECK: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub database: String,
    pub check: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.database, self.check, self.detail)
    }
}

#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub databases: Vec<String>,
    pub records: u64,
    pub pivot_rows: u64,
    pub findings: Vec<Finding>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    fn add(&mut self, db: &str, check: &'static str, detail: String) {
        let n = self
            .findings
            .iter()
            .filter(|f| f.check == check && f.database == db)
            .count();
        if n < MAX_FINDINGS_PER_CHECK {
            self.findings.push(Finding {
                database: db.to_string(),
                check,
                detail,
            });
        }
    }
}

fn table_exists(c: &Connection, name: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )
}

/// Checks every database of `data_dir`.
pub fn check_data_dir(data_dir: &Path) -> BackupResult<CheckReport> {
    let dbs = discover(data_dir)?;
    let mut report = CheckReport::default();
    let defined = defined_specs(&dbs, &mut report)?;
    for db in &dbs {
        report.databases.push(db.name.clone());
        let c = open_read_only(&db.path)?;
        integrity(&c, db, &mut report)?;
        if db.role.starts_with("shard:") && table_exists(&c, "object_records")? {
            pivots(&c, db, &defined, &mut report)?;
            outbox(&c, db, &mut report)?;
        }
    }
    placements(&dbs, &mut report)?;
    Ok(report)
}

fn integrity(c: &Connection, db: &Database, report: &mut CheckReport) -> BackupResult<()> {
    let mut st = c.prepare("PRAGMA integrity_check(100)")?;
    let rows: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for row in rows.into_iter().filter(|r| r != "ok") {
        report.add(&db.name, "integrity_check", row);
    }
    Ok(())
}

/// The pivot key of a stored column value, as the record store computes it
/// (`mosaic_store::sqlite_records::index_key` over the encoded value).
fn pivot_key(v: SqlValue, case_insensitive: bool) -> Option<String> {
    match v {
        SqlValue::Null | SqlValue::Blob(_) => None,
        SqlValue::Text(s) if case_insensitive => Some(s.to_lowercase()),
        SqlValue::Text(s) => Some(s),
        SqlValue::Integer(i) => Some(i.to_string()),
        SqlValue::Real(f) => Some(f.to_string()),
    }
}

/// Pivot specs by (tenant, object id) as writers derive them from the
/// object definitions in the metadata database (`mosaic_meta`'s rules).
type DefinedSpecs = HashMap<(String, String), Vec<IndexSpec>>;

fn defined_specs(dbs: &[Database], report: &mut CheckReport) -> BackupResult<DefinedSpecs> {
    let mut out = DefinedSpecs::new();
    let Some(meta) = dbs.iter().find(|d| d.role == "metadata") else {
        return Ok(out);
    };
    let c = open_read_only(&meta.path)?;
    if !table_exists(&c, "objects")? {
        return Ok(out);
    }
    let mut st = c.prepare("SELECT tenant_id, id, definition FROM objects")?;
    let rows: Vec<(String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (tenant, object, definition) in rows {
        let def = serde_json::from_str::<serde_json::Value>(&definition).and_then(|mut doc| {
            mosaic_meta::model::upgrade_document(&mut doc);
            serde_json::from_value::<mosaic_meta::ObjectDef>(doc)
        });
        match def {
            Ok(def) => {
                let specs = def
                    .fields
                    .iter()
                    .filter_map(mosaic_meta::service::index_spec)
                    .collect();
                out.insert((tenant, object), specs);
            }
            Err(e) => report.add(
                &meta.name,
                "definitions",
                format!("object {tenant}/{object}: unreadable definition: {e}"),
            ),
        }
    }
    Ok(out)
}

fn pivots(
    c: &Connection,
    db: &Database,
    defined: &DefinedSpecs,
    report: &mut CheckReport,
) -> BackupResult<()> {
    let columns: BTreeSet<String> = {
        let mut st = c.prepare("SELECT name FROM pragma_table_info('object_records')")?;
        let v: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        v.into_iter().collect()
    };
    report.records += c.query_row("SELECT count(*) FROM object_records", [], |r| {
        r.get::<_, i64>(0)
    })? as u64;
    // The shard's own record of slot flags wins over the definition's
    // (what writers do: `merge_index_specs`).
    let mut on_shard: HashMap<(String, String), Vec<IndexSpec>> = HashMap::new();
    {
        let mut st = c.prepare(
            "SELECT tenant_id, object_id, slot, field, is_unique, is_indexed, case_insensitive FROM pivot_specs",
        )?;
        let rows: Vec<(String, String, String, String, bool, bool, bool)> = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        for (tenant, object, slot, field, unique, indexed, ci) in rows {
            match mosaic_types::FlexSlot::from_column(&slot) {
                Some(slot) => on_shard
                    .entry((tenant, object))
                    .or_default()
                    .push(IndexSpec {
                        slot,
                        field,
                        unique,
                        indexed,
                        case_insensitive: ci,
                    }),
                None => report.add(
                    &db.name,
                    "pivots",
                    format!("pivot spec {tenant}/{object}/{field} names unknown slot {slot}"),
                ),
            }
        }
    }
    let mut keys: BTreeSet<(String, String)> = defined.keys().cloned().collect();
    keys.extend(on_shard.keys().cloned());
    let mut specs: Vec<(String, String, String, String, bool, bool, bool)> = Vec::new();
    for (tenant, object) in keys {
        let from_def = defined
            .get(&(tenant.clone(), object.clone()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let shard = on_shard
            .get(&(tenant.clone(), object.clone()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for s in mosaic_store::record_store::merge_index_specs(from_def, shard) {
            specs.push((
                tenant.clone(),
                object.clone(),
                s.slot.column().to_string(),
                s.field,
                s.unique,
                s.indexed,
                s.case_insensitive,
            ));
        }
    }
    let mut covered: BTreeSet<(String, String, String, &'static str)> = BTreeSet::new();
    for (tenant, object, slot, field, unique, indexed, ci) in specs {
        if !columns.contains(&slot) {
            report.add(
                &db.name,
                "pivots",
                format!("pivot spec {tenant}/{object}/{field} names unknown slot {slot}"),
            );
            continue;
        }
        // `slot` is one of the table's own column names (checked above).
        let sql = format!(
            "SELECT id, \"{slot}\" FROM object_records WHERE tenant_id = ?1 AND object_id = ?2 AND is_deleted = 0"
        );
        let mut expected: BTreeMap<(String, String), ()> = BTreeMap::new();
        let mut by_value: HashMap<String, Vec<String>> = HashMap::new();
        {
            let mut st = c.prepare(&sql)?;
            let mut rows = st.query(params![tenant, object])?;
            while let Some(r) = rows.next()? {
                let id: String = r.get(0)?;
                if let Some(k) = pivot_key(r.get(1)?, ci) {
                    if unique {
                        by_value.entry(k.clone()).or_default().push(id.clone());
                    }
                    expected.insert((k, id), ());
                }
            }
        }
        for (value, ids) in by_value.iter().filter(|(_, ids)| ids.len() > 1) {
            report.add(
                &db.name,
                "unique",
                format!(
                    "{tenant}/{object}.{field}: value {value:?} is held by {} records: {}",
                    ids.len(),
                    ids.join(", ")
                ),
            );
        }
        for (table, on) in [("record_index", indexed), ("record_unique", unique)] {
            if !on {
                continue;
            }
            covered.insert((tenant.clone(), object.clone(), slot.clone(), table));
            let mut actual: BTreeSet<(String, String)> = BTreeSet::new();
            let mut st = c.prepare(&format!(
                "SELECT value, record_id FROM {table} WHERE tenant_id = ?1 AND object_id = ?2 AND slot = ?3"
            ))?;
            let mut rows = st.query(params![tenant, object, slot])?;
            while let Some(r) = rows.next()? {
                actual.insert((r.get(0)?, r.get(1)?));
                report.pivot_rows += 1;
            }
            for (k, id) in expected.keys() {
                if !actual.contains(&(k.clone(), id.clone())) {
                    report.add(
                        &db.name,
                        "pivots",
                        format!(
                        "{table}: record {id} ({tenant}/{object}.{field} = {k:?}) has no pivot row"
                    ),
                    );
                }
            }
            for (k, id) in &actual {
                if !expected.contains_key(&(k.clone(), id.clone())) {
                    report.add(&db.name, "pivots", format!(
                        "{table}: row {tenant}/{object}.{field} = {k:?} → {id} matches no live record with that value"
                    ));
                }
            }
        }
    }
    // Pivot rows of slots no spec keeps.
    for table in ["record_index", "record_unique"] {
        let mut st = c.prepare(&format!(
            "SELECT DISTINCT tenant_id, object_id, slot FROM {table}"
        ))?;
        let keys: Vec<(String, String, String)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (t, o, s) in keys {
            if !covered.contains(&(t.clone(), o.clone(), s.clone(), table)) {
                report.add(
                    &db.name,
                    "pivots",
                    format!("{table}: rows for {t}/{o} slot {s} without a pivot spec"),
                );
            }
        }
    }
    Ok(())
}

fn outbox(c: &Connection, db: &Database, report: &mut CheckReport) -> BackupResult<()> {
    if !table_exists(c, "outbox")? {
        return Ok(());
    }
    let mut st = c.prepare(
        "SELECT id, state, attempts, lease_owner, lease_until, due_at FROM outbox
         WHERE state NOT IN (?1, ?2) OR attempts < 0 OR (lease_owner IS NOT NULL AND lease_until IS NULL)
            OR due_at IS NULL OR due_at = ''",
    )?;
    let bad: Vec<(String, String, i64)> = st
        .query_map(
            params![
                mosaic_store::automation::PENDING,
                mosaic_store::automation::DEAD
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?
        .collect::<Result<_, _>>()?;
    for (id, state, attempts) in bad {
        report.add(&db.name, "outbox", format!("entry {id}: inconsistent (state {state:?}, attempts {attempts}, lease without expiry or no due time)"));
    }
    let dup: Vec<(String, i64)> = {
        let mut st =
            c.prepare("SELECT id, count(*) FROM outbox GROUP BY id HAVING count(*) > 1")?;
        let v = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        v
    };
    for (id, n) in dup {
        report.add(
            &db.name,
            "outbox",
            format!("entry id {id} appears {n} times"),
        );
    }
    Ok(())
}

fn placements(dbs: &[Database], report: &mut CheckReport) -> BackupResult<()> {
    let Some(meta) = dbs.iter().find(|d| d.role == "metadata") else {
        return Ok(());
    };
    let c = open_read_only(&meta.path)?;
    if !table_exists(&c, "tenants")? {
        return Ok(());
    }
    let tenants: BTreeSet<String> = {
        let mut st = c.prepare("SELECT id FROM tenants")?;
        let v: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        v.into_iter().collect()
    };
    let mut placement: HashMap<String, String> = HashMap::new();
    let mut shards: BTreeMap<String, String> = BTreeMap::new();
    if table_exists(&c, "tenant_shards")? {
        let mut st = c.prepare("SELECT tenant_id, shard_id FROM tenant_shards")?;
        for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (t, s) = r?;
            placement.insert(t, s);
        }
        let mut st = c.prepare("SELECT id, url FROM shards")?;
        for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (id, url) = r?;
            shards.insert(id, url);
        }
    }
    let local = mosaic_store::shards::LOCAL_SHARD;
    for (t, s) in &placement {
        if s != local && !shards.contains_key(s) {
            report.add(
                &meta.name,
                "placement",
                format!("tenant {t} is placed on shard {s}, which is not registered"),
            );
        } else if s != local
            && shards.get(s).is_some_and(|u| u.starts_with("sqlite:"))
            && !dbs.iter().any(|d| d.role == format!("shard:{s}"))
        {
            report.add(
                &meta.name,
                "placement",
                format!("tenant {t} is placed on shard {s}, whose database file is missing"),
            );
        }
    }
    for db in dbs.iter().filter(|d| d.role.starts_with("shard:")) {
        let shard = &db.role["shard:".len()..];
        let sc = open_read_only(&db.path)?;
        if !table_exists(&sc, "object_records")? {
            continue;
        }
        let moving: BTreeSet<String> = if table_exists(&sc, "tenant_moves")? {
            let mut st = sc.prepare("SELECT tenant_id FROM tenant_moves")?;
            let v: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            v.into_iter().collect()
        } else {
            BTreeSet::new()
        };
        let mut st =
            sc.prepare("SELECT tenant_id, count(*) FROM object_records GROUP BY tenant_id")?;
        let held: Vec<(String, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (t, n) in held {
            let placed = placement.get(&t).map(String::as_str).unwrap_or(local);
            if !tenants.contains(&t) {
                report.add(
                    &db.name,
                    "placement",
                    format!("{n} records of tenant {t}, which does not exist"),
                );
            } else if placed != shard && !moving.contains(&t) {
                report.add(&db.name, "placement", format!(
                    "{n} records of tenant {t} are on shard {shard}, but the tenant is placed on {placed}"
                ));
            }
        }
    }
    Ok(())
}
