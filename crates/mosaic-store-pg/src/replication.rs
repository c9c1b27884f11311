//! Metadata read replicas on PostgreSQL: the write-ahead-log positions
//! [`ReplicatedMetaStore`] compares for read-your-writes, and opening the
//! store over a primary and its replicas (decision 0014).
//!
//! The primary's position after a write is `pg_current_wal_insert_lsn()`:
//! at or past the end of every commit record, even with asynchronous
//! commit. A physical standby's is `pg_last_wal_replay_lsn()`; a database
//! that replays nothing (not a standby) answers `NULL`, and the replicated
//! store then falls back to version checks and the primary.

use crate::pool::{with_client, PgPool};
use crate::PgMetaStore;
use async_trait::async_trait;
use mosaic_store::replicas::{LogPosition, MetaMember, ReplicatedMetaStore, MAX_REPLICAS};
use mosaic_store::ReplicationPosition;
use mosaic_types::{MosaicError, MosaicResult};
use std::sync::Arc;

/// Which position a database reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationRole {
    Primary,
    Replica,
}

/// The log position of one PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgLogPosition {
    pool: PgPool,
    role: ReplicationRole,
}

impl PgLogPosition {
    pub fn new(pool: PgPool, role: ReplicationRole) -> PgLogPosition {
        PgLogPosition { pool, role }
    }
}

/// An LSN as PostgreSQL prints it (`16/B374D848`: two hex halves) as a number.
pub fn parse_lsn(text: &str) -> MosaicResult<LogPosition> {
    let bad = || MosaicError::internal(format!("postgres: not a WAL position: {text:?}"));
    let (hi, lo) = text.split_once('/').ok_or_else(bad)?;
    let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
    let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
    Ok((u64::from(hi) << 32) | u64::from(lo))
}

#[async_trait]
impl ReplicationPosition for PgLogPosition {
    async fn position(&self) -> MosaicResult<Option<LogPosition>> {
        let sql = match self.role {
            ReplicationRole::Primary => "SELECT pg_current_wal_insert_lsn()::text",
            ReplicationRole::Replica => "SELECT pg_last_wal_replay_lsn()::text",
        };
        let text: Option<String> = with_client!(self.pool, |c| {
            let st = c.prepare_cached(sql).await?;
            Ok(c.query_one(&st, &[]).await?.try_get(0)?)
        })?;
        text.as_deref().map(parse_lsn).transpose()
    }
}

/// The name of the `n`th replica (1-based), also its circuit breaker's.
pub fn replica_name(n: usize) -> String {
    format!("metadata-replica:{n}")
}

/// The metadata store over `primary` (already migrated) with reads spread
/// over the databases at `replica_urls`, and the replicas' pools (for their
/// circuit breakers). Replicas are neither migrated nor contacted here: one
/// that is down is skipped by reads until it answers. A URL that does not
/// parse, or more than [`MAX_REPLICAS`] → `INVALID_INPUT`.
pub fn replicated_meta_store(
    primary: &PgMetaStore,
    replica_urls: &[String],
    pool_size: usize,
) -> MosaicResult<(ReplicatedMetaStore, Vec<PgPool>)> {
    if replica_urls.len() > MAX_REPLICAS {
        return Err(MosaicError::invalid(format!(
            "at most {MAX_REPLICAS} metadata read replicas, not {}",
            replica_urls.len()
        )));
    }
    let mut pools = Vec::with_capacity(replica_urls.len());
    let mut members = Vec::with_capacity(replica_urls.len());
    for (i, url) in replica_urls.iter().enumerate() {
        let name = replica_name(i + 1);
        let pool = PgPool::new(url, pool_size)
            .map_err(|e| MosaicError::invalid(format!("{name}: {}", e.message)))?;
        members.push(MetaMember {
            name,
            store: Arc::new(PgMetaStore::new(pool.clone())),
            position: Arc::new(PgLogPosition::new(pool.clone(), ReplicationRole::Replica)),
        });
        pools.push(pool);
    }
    let store = ReplicatedMetaStore::new(
        MetaMember {
            name: "primary".into(),
            store: Arc::new(primary.clone()),
            position: Arc::new(PgLogPosition::new(
                primary.pool().clone(),
                ReplicationRole::Primary,
            )),
        },
        members,
    )?;
    Ok((store, pools))
}

#[cfg(test)]
mod tests {
    use super::parse_lsn;

    #[test]
    fn lsns_parse_as_ordered_numbers() {
        assert_eq!(parse_lsn("0/0").unwrap(), 0);
        assert_eq!(parse_lsn("16/B374D848").unwrap(), 0x16_B374_D848);
        assert!(parse_lsn("1/FFFFFFFF").unwrap() < parse_lsn("2/0").unwrap());
        assert!(parse_lsn("junk").is_err());
        assert!(parse_lsn("1/2/3").is_err());
    }
}
