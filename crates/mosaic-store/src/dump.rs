//! An embedded database read whole, as tables of plain cells: the source
//! of `mosaic migrate-metadata`, which copies `metadata.sqlite` into a
//! PostgreSQL metadata database (`mosaic_store_pg::import`).

use crate::sqlite::map_sql;
use mosaic_types::{MosaicError, MosaicResult};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// One stored value, as SQLite holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A table's columns and every row.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDump {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// Every ordinary table of the SQLite database at `path` (read-only;
/// SQLite's own and full-text tables left out), in name order.
pub fn dump_tables(path: &Path) -> MosaicResult<Vec<TableDump>> {
    if !path.exists() {
        return Err(MosaicError::invalid(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(map_sql)?;
    conn.busy_timeout(crate::sqlite::BUSY_TIMEOUT)
        .map_err(map_sql)?;
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
        )
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(map_sql)?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
            .and_then(|mut st| st.query_map([&name], |r| r.get(0))?.collect())
            .map_err(map_sql)?;
        let list = columns
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(", ");
        let mut st = conn
            .prepare(&format!(
                "SELECT {list} FROM \"{}\"",
                name.replace('"', "\"\"")
            ))
            .map_err(map_sql)?;
        let n = columns.len();
        let rows = st
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        Ok(match r.get_ref(i)? {
                            ValueRef::Null => Cell::Null,
                            ValueRef::Integer(v) => Cell::Integer(v),
                            ValueRef::Real(v) => Cell::Real(v),
                            ValueRef::Text(t) => {
                                Cell::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                        })
                    })
                    .collect::<rusqlite::Result<Vec<Cell>>>()
            })
            .and_then(|it| it.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(map_sql)?;
        out.push(TableDump {
            name,
            columns,
            rows,
        });
    }
    Ok(out)
}
