//! Fills an empty PostgreSQL metadata database from an embedded one
//! (`mosaic migrate-metadata`): every table the PostgreSQL schema has is
//! copied from the SQLite dump (`mosaic_store::dump`), each value converted
//! to its column's type, in one transaction. Platform-wide by design: the
//! whole metadata database moves, every tenant at once.

use crate::pool::{map_pg, PgPool};
use chrono::{DateTime, NaiveDate, Utc};
use mosaic_store::dump::{Cell, TableDump};
use mosaic_types::{MosaicError, MosaicResult};
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::types::ToSql;

/// What was copied: rows per table; the source tables PostgreSQL has no
/// table for (left behind); and the tables whose PostgreSQL form has
/// columns the source lacks (bookkeeping the migrations seeded, such as
/// the directory's version row: the target's own rows are kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    pub tables: BTreeMap<String, u64>,
    pub left_behind: Vec<String>,
    pub kept: Vec<String>,
}

struct Column {
    name: String,
    data_type: String,
    identity: bool,
}

type Param = Box<dyn ToSql + Sync + Send>;

fn bad(table: &str, column: &str, row: usize, what: &str) -> MosaicError {
    MosaicError::invalid(format!("{table}.{column}, row {}: {what}", row + 1))
}

/// The value of `cell` for a column of PostgreSQL type `data_type`.
fn param(cell: &Cell, data_type: &str, at: (&str, &str, usize)) -> MosaicResult<Param> {
    let (table, column, row) = at;
    Ok(match (data_type, cell) {
        ("timestamp with time zone", Cell::Null) => Box::new(None::<DateTime<Utc>>),
        ("timestamp with time zone", Cell::Text(s)) => Box::new(Some(
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| bad(table, column, row, &format!("timestamp '{s}': {e}")))?,
        )),
        ("timestamp with time zone", Cell::Integer(ms)) => Box::new(Some(
            DateTime::<Utc>::from_timestamp_millis(*ms)
                .ok_or_else(|| bad(table, column, row, "timestamp out of range"))?,
        )),
        ("date", Cell::Null) => Box::new(None::<NaiveDate>),
        ("date", Cell::Text(s)) => Box::new(Some(
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|e| bad(table, column, row, &format!("date '{s}': {e}")))?,
        )),
        ("boolean", Cell::Null) => Box::new(None::<bool>),
        ("boolean", Cell::Integer(v)) => Box::new(Some(*v != 0)),
        ("boolean", Cell::Text(s)) => Box::new(Some(matches!(s.as_str(), "1" | "true" | "t"))),
        ("bigint", Cell::Null) => Box::new(None::<i64>),
        ("bigint", Cell::Integer(v)) => Box::new(Some(*v)),
        ("integer", Cell::Null) => Box::new(None::<i32>),
        ("integer", Cell::Integer(v)) => Box::new(Some(
            i32::try_from(*v).map_err(|_| bad(table, column, row, "integer out of range"))?,
        )),
        ("smallint", Cell::Null) => Box::new(None::<i16>),
        ("smallint", Cell::Integer(v)) => Box::new(Some(
            i16::try_from(*v).map_err(|_| bad(table, column, row, "integer out of range"))?,
        )),
        ("double precision", Cell::Null) => Box::new(None::<f64>),
        ("double precision", Cell::Real(v)) => Box::new(Some(*v)),
        ("double precision", Cell::Integer(v)) => Box::new(Some(*v as f64)),
        ("bytea", Cell::Null) => Box::new(None::<Vec<u8>>),
        ("bytea", Cell::Blob(b)) => Box::new(Some(b.clone())),
        ("bytea", Cell::Text(s)) => Box::new(Some(s.as_bytes().to_vec())),
        ("text" | "character varying", Cell::Null) => Box::new(None::<String>),
        ("text" | "character varying", Cell::Text(s)) => Box::new(Some(s.clone())),
        ("text" | "character varying", Cell::Integer(v)) => Box::new(Some(v.to_string())),
        ("text" | "character varying", Cell::Real(v)) => Box::new(Some(v.to_string())),
        (t, c) => {
            return Err(bad(
                table,
                column,
                row,
                &format!("a {c:?} cannot be stored in a column of type {t}"),
            ))
        }
    })
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Copies `dump` into the metadata database on `pool`, which must be
/// migrated and hold no tenant yet (else `INVALID_INPUT` naming the count).
pub async fn import_metadata(pool: &PgPool, dump: &[TableDump]) -> MosaicResult<ImportReport> {
    let mut client = pool.client().await?;
    let tenants: i64 = client
        .query_one("SELECT count(*) FROM tenants", &[])
        .await
        .map_err(|e| map_pg(&e))?
        .get(0);
    if tenants > 0 {
        return Err(MosaicError::invalid(format!(
            "the target metadata database is not empty: it holds {tenants} tenant(s); migrate-metadata only fills an empty one"
        )));
    }
    // Every column of the schema's tables (generated ones are computed).
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text, is_identity::text
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND is_generated = 'NEVER'
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .map_err(|e| map_pg(&e))?;
    let mut schema: HashMap<String, Vec<Column>> = HashMap::new();
    for r in rows {
        schema.entry(r.get(0)).or_default().push(Column {
            name: r.get(1),
            data_type: r.get(2),
            identity: r.get::<_, String>(3) == "YES",
        });
    }
    let mut report = ImportReport::default();
    let tx = client.transaction().await.map_err(|e| map_pg(&e))?;
    for table in dump {
        // The migrations' own bookkeeping stays the target's.
        if table.name == "schema_version" {
            continue;
        }
        let Some(columns) = schema.get(&table.name) else {
            report.left_behind.push(table.name.clone());
            continue;
        };
        // Columns both sides have, with the source's position.
        let shared: Vec<(&Column, usize)> = columns
            .iter()
            .filter_map(|c| {
                table
                    .columns
                    .iter()
                    .position(|s| s == &c.name)
                    .map(|i| (c, i))
            })
            .collect();
        if shared.len() < columns.len() {
            report.kept.push(table.name.clone());
            continue;
        }
        // Rows the migrations seeded (the shard directory's first entries)
        // give way to the source's.
        tx.batch_execute(&format!("DELETE FROM {}", quoted(&table.name)))
            .await
            .map_err(|e| map_pg(&e))?;
        if shared.is_empty() || table.rows.is_empty() {
            report.tables.insert(table.name.clone(), 0);
            continue;
        }
        let identity = shared.iter().any(|(c, _)| c.identity);
        let sql = format!(
            "INSERT INTO {} ({}) {}VALUES ({})",
            quoted(&table.name),
            shared
                .iter()
                .map(|(c, _)| quoted(&c.name))
                .collect::<Vec<_>>()
                .join(", "),
            if identity {
                "OVERRIDING SYSTEM VALUE "
            } else {
                ""
            },
            (1..=shared.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let st = tx.prepare(&sql).await.map_err(|e| map_pg(&e))?;
        for (n, row) in table.rows.iter().enumerate() {
            let params = shared
                .iter()
                .map(|(c, i)| param(&row[*i], &c.data_type, (&table.name, &c.name, n)))
                .collect::<MosaicResult<Vec<Param>>>()?;
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            tx.execute(&st, &refs).await.map_err(|e| map_pg(&e))?;
        }
        // Later rows continue after the copied ones.
        for (c, _) in shared.iter().filter(|(c, _)| c.identity) {
            tx.batch_execute(&format!(
                "SELECT setval(pg_get_serial_sequence('{t}', '{c}'), COALESCE((SELECT max({qc}) FROM {qt}), 0) + 1, false)",
                t = table.name.replace('\'', "''"),
                c = c.name.replace('\'', "''"),
                qc = quoted(&c.name),
                qt = quoted(&table.name),
            ))
            .await
            .map_err(|e| map_pg(&e))?;
        }
        report
            .tables
            .insert(table.name.clone(), table.rows.len() as u64);
    }
    tx.commit().await.map_err(|e| map_pg(&e))?;
    client.settle();
    Ok(report)
}
