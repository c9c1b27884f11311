//! Counts for the operator's status view: tenants in the directory and
//! records on a shard. Each is one read on the reader pool.

use crate::sqlite::map_sql;
use crate::{SqliteMetaStore, SqliteRecordStore};
use mosaic_types::MosaicResult;

impl SqliteMetaStore {
    /// Tenants in the directory (every status).
    pub async fn tenant_count(&self) -> MosaicResult<u64> {
        self.db()
            .read(|c| {
                c.query_row("SELECT COUNT(*) FROM tenants", [], |r| r.get::<_, i64>(0))
                    .map(|n| n.max(0) as u64)
                    .map_err(map_sql)
            })
            .await
    }
}

impl SqliteRecordStore {
    /// Records on this shard, all tenants and objects together (a scan of
    /// the smallest index: exact, and linear in the shard's size).
    pub async fn record_count(&self) -> MosaicResult<u64> {
        self.db()
            .read(|c| {
                c.query_row("SELECT COUNT(*) FROM object_records", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n.max(0) as u64)
                .map_err(map_sql)
            })
            .await
    }
}
