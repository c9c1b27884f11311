//! What an operator asks of the platform: are its dependencies up, which
//! degradation level follows, what each shard holds, and how the embedded
//! stores are working. Readiness and the status view both read it.

use crate::Platform;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A tenant id no tenant has: probes read it and expect nothing.
const PROBE_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The seed's graceful degradation levels. Today only `FullOperation` and
/// `ReadOnly` are reached (from the store probes); `AiDegraded` and
/// `CacheDegraded` arrive with the circuit breakers of the LLM service and
/// the L2 cache, `Maintenance` with the operator's switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DegradationLevel {
    FullOperation = 0,
    AiDegraded = 1,
    CacheDegraded = 2,
    ReadOnly = 3,
    Maintenance = 4,
}

impl DegradationLevel {
    pub fn level(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            DegradationLevel::FullOperation => "full_operation",
            DegradationLevel::AiDegraded => "ai_degraded",
            DegradationLevel::CacheDegraded => "cache_degraded",
            DegradationLevel::ReadOnly => "read_only",
            DegradationLevel::Maintenance => "maintenance",
        }
    }

    /// The level that follows from the dependencies' states: every one up →
    /// full operation; a store down → read-only (the seed's answer to a
    /// primary database outage: reads that still work are served, writes
    /// are refused).
    pub fn from_dependencies(deps: &[DependencyProbe]) -> DegradationLevel {
        if deps.iter().all(|d| d.up) {
            DegradationLevel::FullOperation
        } else {
            DegradationLevel::ReadOnly
        }
    }
}

/// One dependency's answer to a cheap probe.
#[derive(Debug, Clone)]
pub struct DependencyProbe {
    /// `metadata_store` or `record_store`.
    pub name: &'static str,
    pub up: bool,
    pub latency: Duration,
    /// Why it is down (the store's error message).
    pub error: Option<String>,
}

/// A record shard: its tenants (placed on it), records and health.
#[derive(Debug, Clone)]
pub struct ShardStatus {
    pub name: &'static str,
    pub tenants: Option<u64>,
    pub records: Option<u64>,
    pub up: bool,
}

/// How one embedded database is working.
#[derive(Debug, Clone)]
pub struct StoreFigures {
    /// `metadata` or `records`.
    pub db: String,
    /// Group-committed transactions and the write jobs they carried.
    pub transactions: u64,
    pub jobs: u64,
    /// Read-only connections, and how many are checked out now.
    pub readers: usize,
    pub readers_in_use: usize,
}

/// The embedded platform's one shard.
pub const LOCAL_SHARD: &str = "local";

impl Platform {
    /// Probes the metadata store and the record store with one read each.
    pub async fn probe_dependencies(&self) -> Vec<DependencyProbe> {
        let started = Instant::now();
        let meta = self.meta_store.tenant(PROBE_ID).await.map(|_| ());
        let meta_latency = started.elapsed();
        let started = Instant::now();
        let records = self.records.locate(PROBE_ID, PROBE_ID).await.map(|_| ());
        let records_latency = started.elapsed();
        vec![
            probe("metadata_store", meta, meta_latency),
            probe("record_store", records, records_latency),
        ]
    }

    /// The record shards with what they hold. One embedded shard today; all
    /// tenants are placed on it.
    pub async fn shards(&self) -> Vec<ShardStatus> {
        let tenants = match &self.sqlite_meta {
            Some(m) => m.tenant_count().await.ok(),
            None => None,
        };
        let records = match &self.sqlite_records {
            Some(r) => r.record_count().await.ok(),
            None => None,
        };
        vec![ShardStatus {
            name: LOCAL_SHARD,
            up: records.is_some(),
            tenants,
            records,
        }]
    }

    /// Writer and reader-pool figures of each embedded database.
    pub fn store_figures(&self) -> Vec<StoreFigures> {
        let dbs = [
            self.sqlite_meta.as_ref().map(|m| m.db()),
            self.sqlite_records.as_ref().map(|r| r.db()),
        ];
        dbs.into_iter()
            .flatten()
            .map(|db| {
                let (readers, readers_in_use) = db.pool_usage();
                StoreFigures {
                    db: db.label().to_string(),
                    transactions: db.stats.transactions.load(Ordering::Relaxed),
                    jobs: db.stats.jobs.load(Ordering::Relaxed),
                    readers,
                    readers_in_use,
                }
            })
            .collect()
    }
}

fn probe(
    name: &'static str,
    r: mosaic_types::MosaicResult<()>,
    latency: Duration,
) -> DependencyProbe {
    DependencyProbe {
        name,
        up: r.is_ok(),
        latency,
        error: r.err().map(|e| e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(up: bool) -> DependencyProbe {
        DependencyProbe {
            name: "metadata_store",
            up,
            latency: Duration::ZERO,
            error: None,
        }
    }

    #[test]
    fn levels_follow_dependencies() {
        assert_eq!(
            DegradationLevel::from_dependencies(&[dep(true), dep(true)]).level(),
            0
        );
        assert_eq!(
            DegradationLevel::from_dependencies(&[dep(true), dep(false)]),
            DegradationLevel::ReadOnly
        );
        assert_eq!(DegradationLevel::ReadOnly.level(), 3);
    }
}
