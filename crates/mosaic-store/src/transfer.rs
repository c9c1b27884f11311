//! Moving a tenant's rows between shards (decision 0013).
//!
//! Every shard keeps a small `tenant_moves` table and a `tenant_journal`.
//! Triggers on each tenant table (records, shares, field history, outbox,
//! counters, idempotency keys) look up the row's tenant in `tenant_moves`:
//!
//! - `journal`: the change is applied and the changed row's key is appended
//!   to the journal in the same transaction — whichever process or code
//!   path made it (cascades, workflow effects, the delivery worker);
//! - `frozen`: the write is refused with a "tenant is moving" error that
//!   the router turns into a wait (the write is retried on the new shard
//!   after the cutover; it is never rejected);
//! - `purging`: inserts and updates are refused in the same way; deletes
//!   (the cleanup of a moved-away copy) go through.
//!
//! A state change waits for the tenant's in-flight write transactions
//! (SQLite: the single writer; PostgreSQL: an advisory lock every trigger
//! holds shared), so no transaction straddles a state change.
//!
//! Rows travel in a backend-neutral form: records as [`RecordRow`] with every
//! slot, other tables as typed [`Cell`]s in the column order of their
//! [`TableSpec`]. Pivot rows and search documents are derived data: the
//! target rebuilds them from the record and the object's index specs.

use crate::record_store::{IndexSpec, RecordRow};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::collections::HashMap;

/// What the triggers write into refusals; the stores map it to
/// [`moving_error`].
pub const FROZEN_MARK: &str = "mosaic:tenant-moving";
/// The SQLSTATE of the PostgreSQL refusal.
pub const FROZEN_SQLSTATE: &str = "MSC01";

/// Move states of a tenant on one shard.
pub const JOURNAL: &str = "journal";
pub const FROZEN: &str = "frozen";
pub const PURGING: &str = "purging";

/// The error of a write refused because its tenant is being moved.
pub fn moving_error() -> MosaicError {
    MosaicError::new(
        ErrorCode::SERVICE_UNAVAILABLE,
        format!("{FROZEN_MARK}: the tenant is being moved to another shard; retry shortly"),
    )
}

pub fn is_moving(e: &MosaicError) -> bool {
    e.code == ErrorCode::SERVICE_UNAVAILABLE && e.message.starts_with(FROZEN_MARK)
}

/// Column kinds of the neutral row form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    I16,
    I32,
    I64,
    /// A UTC instant (text on SQLite, timestamptz on PostgreSQL).
    Time,
    Bool,
    Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Time(DateTime<Utc>),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// A tenant table other than the records: its name, key columns (after
/// `tenant_id`) and every column but `tenant_id`, keys first.
#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub keys: usize,
    pub columns: &'static [(&'static str, Kind)],
}

impl TableSpec {
    pub fn key_columns(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns[..self.keys].iter().map(|(c, _)| *c)
    }
}

use Kind::*;

/// The records table (its rows travel as [`RecordRow`]).
pub const RECORDS: &str = "object_records";

/// Every other table a tenant has on a shard.
pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "record_shares",
        keys: 3,
        columns: &[
            ("record_id", Text),
            ("principal", Text),
            ("id", Text),
            ("object_id", Text),
            ("access", I16),
            ("rule_id", Text),
            ("created_by", Text),
            ("created_at", Time),
        ],
    },
    TableSpec {
        name: "field_history",
        keys: 2,
        columns: &[
            ("record_id", Text),
            ("id", Text),
            ("object_id", Text),
            ("field", Text),
            ("old_value", Text),
            ("new_value", Text),
            ("changed_by", Text),
            ("changed_at", Time),
        ],
    },
    TableSpec {
        name: "outbox",
        keys: 1,
        columns: &[
            ("id", Text),
            ("kind", Text),
            ("object_id", Text),
            ("record_id", Text),
            ("rule_id", Text),
            ("action_id", Text),
            ("payload", Text),
            ("state", Text),
            ("due_at", Time),
            ("attempts", I64),
            ("last_error", Text),
            ("lease_until", Time),
            ("created_at", Time),
            ("updated_at", Time),
        ],
    },
    TableSpec {
        name: "auto_number_counters",
        keys: 2,
        columns: &[("object_id", Text), ("counter", Text), ("next_value", I64)],
    },
    TableSpec {
        name: "idempotency_keys",
        keys: 1,
        columns: &[
            ("idem_key", Text),
            ("fingerprint", Text),
            ("reservation", Text),
            ("state", Text),
            ("created_at", I64),
            ("expires_at", I64),
            ("status", I32),
            ("headers", Text),
            ("body", Bytes),
            ("body_kept", Bool),
        ],
    },
];

/// Every journaled table: the records, then [`TABLES`].
pub fn table_names() -> impl Iterator<Item = &'static str> {
    std::iter::once(RECORDS).chain(TABLES.iter().map(|t| t.name))
}

pub fn table(name: &str) -> MosaicResult<&'static TableSpec> {
    TABLES
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| MosaicError::internal(format!("no transferable table {name}")))
}

/// One row of a tenant table with its key (the key columns' values).
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Record(RecordRow),
    Row(Vec<Cell>),
}

impl Item {
    /// The key of the row, as a journal entry names it.
    pub fn key(&self, spec: Option<&TableSpec>) -> Vec<String> {
        match (self, spec) {
            (Item::Record(r), _) => vec![r.id.clone()],
            (Item::Row(cells), Some(s)) => cells[..s.keys]
                .iter()
                .map(|c| match c {
                    Cell::Text(t) => t.clone(),
                    other => format!("{other:?}"),
                })
                .collect(),
            (Item::Row(_), None) => Vec::new(),
        }
    }
}

/// A change the triggers recorded: the table and the key of the row.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub seq: i64,
    pub table: String,
    pub key: Vec<String>,
}

/// Parses a journal key (a JSON array of strings, as both backends'
/// triggers write it).
pub fn parse_key(text: &str) -> MosaicResult<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|e| MosaicError::internal(format!("corrupt journal key {text:?}: {e}")))
}

/// Index specs of a tenant's objects, for rebuilding pivots on import.
pub type IndexSpecs = HashMap<String, Vec<IndexSpec>>;

/// A shard's side of a tenant move.
#[async_trait]
pub trait TenantTransfer: Send + Sync {
    /// The tenant's move state on this shard (`None`: not moving).
    async fn move_state(&self, tenant_id: &str) -> MosaicResult<Option<String>>;
    /// Sets or clears the state, after the tenant's in-flight writes end.
    async fn set_move_state(&self, tenant_id: &str, state: Option<&str>) -> MosaicResult<()>;
    /// Rows of `table` in key order after `after` (exclusive), at most
    /// `limit`.
    async fn export(
        &self,
        tenant_id: &str,
        table: &str,
        after: Option<Vec<String>>,
        limit: usize,
    ) -> MosaicResult<Vec<Item>>;
    /// The current rows of `table` with these keys (absent ones are left
    /// out).
    async fn fetch(
        &self,
        tenant_id: &str,
        table: &str,
        keys: &[Vec<String>],
    ) -> MosaicResult<Vec<Item>>;
    /// Writes `rows` (replacing rows with the same key) and deletes the rows
    /// of `absent` keys, in one transaction; pivots and search documents of
    /// records are rebuilt.
    async fn import(
        &self,
        tenant_id: &str,
        table: &str,
        rows: Vec<Item>,
        absent: Vec<Vec<String>>,
        specs: &IndexSpecs,
    ) -> MosaicResult<()>;
    /// Journal entries after `after_seq`, oldest first, at most `limit`.
    async fn journal(
        &self,
        tenant_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> MosaicResult<Vec<JournalEntry>>;
    /// Forgets applied journal entries. Entries are consumed rather than
    /// read past a cursor: on PostgreSQL a sequence number is drawn when
    /// the row is written, so a transaction can commit an entry below one
    /// already read.
    async fn forget(&self, tenant_id: &str, seqs: &[i64]) -> MosaicResult<()>;
    /// Deletes up to `limit` of the tenant's rows (every table and the
    /// journal); returns how many went. Zero: nothing left.
    async fn purge(&self, tenant_id: &str, limit: usize) -> MosaicResult<u64>;
    /// Rows the tenant has on this shard, every table together.
    async fn row_count(&self, tenant_id: &str) -> MosaicResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_moving_error_is_recognised_and_nothing_else_is() {
        assert!(is_moving(&moving_error()));
        assert!(!is_moving(&MosaicError::unavailable("database down")));
        assert!(!is_moving(&MosaicError::internal(FROZEN_MARK)));
    }

    #[test]
    fn keys_come_first_and_parse_back() {
        for t in TABLES {
            assert!(t.keys >= 1 && t.keys < t.columns.len());
            for (c, k) in &t.columns[..t.keys] {
                assert_eq!(*k, Kind::Text, "{}.{c} is a key", t.name);
            }
        }
        assert_eq!(
            parse_key(r#"["a","b"]"#).unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
        assert!(parse_key("nope").is_err());
        assert_eq!(table_names().count(), TABLES.len() + 1);
    }
}
