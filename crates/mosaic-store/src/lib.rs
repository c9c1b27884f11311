//! Mosaic storage. Two stores behind traits so backends can be swapped
//! without touching callers:
//!
//! - [`MetaStore`]: tenants, users, sessions and object definitions (the
//!   metadata database);
//! - [`AccessStore`]: roles, groups, permission sets, connected apps,
//!   refresh tokens, login-failure counters and the audit log (the metadata
//!   database too);
//! - [`RecordStore`]: every tenant's records in one wide flex-column table
//!   with typed pivot tables for indexed / unique fields (a shard);
//! - [`SettingsStore`]: platform-wide settings such as the maintenance
//!   switch (the metadata database);
//! - [`ReplicatedMetaStore`]: the metadata store with read replicas
//!   (writes on the primary, reads spread, read-your-writes);
//! - [`RecentStore`]: each user's recently viewed records (the metadata
//!   database);
//! - [`BulkStore`]: Bulk API jobs, their uploads and results (the
//!   metadata database);
//! - [`IdempotencyStore`]: reserved and completed `Idempotency-Key`s with
//!   the responses kept for replays (beside the records, in the shard).
//!
//! **Architecture invariant:** only this crate writes SQL. Every statement
//! carries the tenant predicate, every literal is a bound parameter, and the
//! only identifiers spliced into SQL are flex column names from the closed
//! set of [`mosaic_types::FlexSlot::column`].

pub mod access_store;
pub mod automation;
pub mod bulk;
pub mod commit_clock;
pub mod deadline;
pub mod dump;
pub mod guard;
pub mod idempotency;
pub mod meta_store;
pub mod operators;
pub mod plan;
pub mod query_store;
pub mod recent;
pub mod record_store;
pub mod replicas;
pub mod router;
pub mod settings;
pub mod shards;
pub mod sharing;
pub mod sqlite;
mod sqlite_access;
mod sqlite_bin;
mod sqlite_census;
mod sqlite_meta;
mod sqlite_query;
mod sqlite_records;
mod sqlite_shards;
mod sqlite_sharing;
mod sqlite_transfer;
pub mod transfer;

pub use access_store::AccessStore;
pub use automation::{AutomationStore, Effect, HistoryRow, OutboxEntry, OutboxStats};
pub use bulk::{BulkChunk, BulkJobRow, BulkResultRow, BulkStore, SqliteBulkStore};
pub use guard::{CallGuard, CallOutcome};
pub use idempotency::{
    IdempotencyStore, KeptResponse, KeyRecord, KeyState, Reservation, SqliteIdempotencyStore,
};
pub use meta_store::{MetaStore, ObjectRow, SessionRow, TenantRow, UserRow};
pub use operators::{
    OperatorRow, OperatorSessionRow, OperatorStore, PlatformAuditRow, SqliteOperatorStore,
};
pub use query_store::QueryStore;
pub use recent::{RecentRow, RecentStore, SqliteRecentStore};
pub use record_store::{
    AutoNumberSpec, BinEntry, BinFilter, CascadeSpec, DeleteOp, IndexSpec, InsertOp, LookupRef,
    RecordRow, RecordStore, RefCheck, UndeleteOp, UpdateOp, WriteOp, WriteResult,
};
pub use replicas::{MetaMember, ReplicatedMetaStore, ReplicationPosition};
pub use settings::{LocaleRow, SettingRow, SettingsStore, SqliteSettingsStore};
pub use sharing::{
    Principal, RowAccess, ShareAccess, ShareCause, ShareRow, ShareStore, Visibility,
};
pub use sqlite::SqliteDb;
pub use sqlite_access::SqliteAccessStore;
pub use sqlite_meta::SqliteMetaStore;
pub use sqlite_query::{check_statement, fts_query, multi_picklist_norm, zone_name_ok};
pub use sqlite_records::{fmt_auto_number, index_key, SqliteRecordStore, CASCADE_CHILDREN_SQL};
