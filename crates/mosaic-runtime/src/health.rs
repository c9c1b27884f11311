//! What an operator asks of the platform: are its dependencies up, which
//! degradation level follows, what each shard holds, and how the embedded
//! stores are working. Readiness and the status view both read it.

use crate::resilience::breaker::BreakerState;
use crate::resilience::maintenance::MAINTENANCE_RETRY_AFTER;
use crate::resilience::{METADATA_STORE, RECORD_STORE};
use crate::Platform;
use mosaic_types::MosaicError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A tenant id no tenant has: probes read it and expect nothing.
const PROBE_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The seed's graceful degradation levels.
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

    /// The seed's `determine_degradation_level`: the operator's maintenance
    /// switch → maintenance; a database (metadata or a record shard) down →
    /// read-only (reads that still work are served, writes are refused);
    /// the cache down → cache degraded; the LLM service down → AI degraded;
    /// else full operation. The most severe condition wins.
    pub fn from_dependencies(maintenance: bool, deps: &[DependencyProbe]) -> DegradationLevel {
        let down = |role: DependencyRole| deps.iter().any(|d| d.role == role && !d.up);
        Self::from_conditions(
            maintenance,
            down(DependencyRole::Database),
            down(DependencyRole::Cache),
            down(DependencyRole::Ai),
        )
    }

    /// The same from the conditions themselves.
    pub fn from_conditions(
        maintenance: bool,
        database_down: bool,
        cache_down: bool,
        ai_down: bool,
    ) -> DegradationLevel {
        if maintenance {
            DegradationLevel::Maintenance
        } else if database_down {
            DegradationLevel::ReadOnly
        } else if cache_down {
            DegradationLevel::CacheDegraded
        } else if ai_down {
            DegradationLevel::AiDegraded
        } else {
            DegradationLevel::FullOperation
        }
    }
}

/// What a dependency is to the platform, which decides the level its
/// outage causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyRole {
    /// The metadata database or a record shard.
    Database,
    /// The L2 cache (Redis).
    Cache,
    /// The LLM service.
    Ai,
    /// A registered record shard: down, it fails its own tenants fast (503)
    /// and changes no level — tenants on other shards are untouched.
    Shard,
}

/// One dependency's answer to a cheap probe.
#[derive(Debug, Clone)]
pub struct DependencyProbe {
    /// `metadata_store`, `record_store`, `redis`, `shard:<id>`.
    pub name: String,
    pub role: DependencyRole,
    pub up: bool,
    pub latency: Duration,
    /// Why it is down (the store's error message).
    pub error: Option<String>,
    /// The state of the dependency's circuit breaker.
    pub breaker: Option<BreakerState>,
}

/// A record shard: its tenants (placed on it), records and health.
#[derive(Debug, Clone)]
pub struct ShardStatus {
    pub name: String,
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
    /// Probes the metadata store and the record store with one read each,
    /// and adds what the other breakers say (Redis, registered shards),
    /// without calling those.
    pub async fn probe_dependencies(&self) -> Vec<DependencyProbe> {
        let mut deps = self.probe_databases().await;
        deps.extend(self.breaker_dependencies());
        deps
    }

    /// Redis and the LLM service (when configured) and each registered
    /// shard as their breakers know them: up while the breaker is closed.
    pub fn breaker_dependencies(&self) -> Vec<DependencyProbe> {
        let from = |b: &crate::resilience::CircuitBreaker, role, up: bool| DependencyProbe {
            name: b.dependency().to_string(),
            role,
            up,
            latency: Duration::ZERO,
            error: b.retry_after().map(|left| b.unavailable(left).message),
            breaker: Some(b.state()),
        };
        let mut deps = Vec::new();
        if let (Some(b), Some(up)) = (self.cache.breaker.as_ref(), self.cache.l2_up()) {
            deps.push(from(b, DependencyRole::Cache, up));
        }
        // The LLM is never called for a probe (a completion costs time and
        // money): up means its breaker is closed.
        if let Some(llm) = &self.llm {
            let b = llm.breaker();
            deps.push(from(
                b,
                DependencyRole::Ai,
                b.state() == BreakerState::Closed,
            ));
        }
        for b in self.breakers.registered.all() {
            let up = b.state() == BreakerState::Closed;
            deps.push(from(&b, DependencyRole::Shard, up));
        }
        deps
    }

    async fn probe_databases(&self) -> Vec<DependencyProbe> {
        let started = Instant::now();
        let meta = self.metadata_primary.tenant(PROBE_ID).await.map(|_| ());
        let meta_latency = started.elapsed();
        let started = Instant::now();
        let records = self.records.locate(PROBE_ID, PROBE_ID).await.map(|_| ());
        let records_latency = started.elapsed();
        let breaker = |name: &str| self.breakers.by_dependency(name).map(|b| b.state());
        vec![
            probe(METADATA_STORE, meta, meta_latency, breaker(METADATA_STORE)),
            probe(
                RECORD_STORE,
                records,
                records_latency,
                breaker(RECORD_STORE),
            ),
        ]
    }

    /// The level as this instance knows it without calling anything: the
    /// cached maintenance switch, the breakers, and the health monitor's
    /// last metadata probe. The request gate reads it on every request.
    pub fn degradation_level(&self) -> DegradationLevel {
        let metadata_probe_failed = self.metadata_probe_failed.load(Ordering::Relaxed);
        let closed = |b: &crate::resilience::CircuitBreaker| b.state() == BreakerState::Closed;
        let database_down = self
            .breakers
            .all()
            .any(|b| !closed(b) || (metadata_probe_failed && b.dependency() == METADATA_STORE));
        let cache_down = self.cache.l2_up() == Some(false);
        let ai_down = self.llm.as_ref().is_some_and(|l| !closed(l.breaker()));
        DegradationLevel::from_conditions(
            self.maintenance().enabled,
            database_down,
            cache_down,
            ai_down,
        )
    }

    /// Why a write must be refused now, if it must: read-only or maintenance,
    /// with how long the client should wait (the longest time any open
    /// breaker has left, at least a second).
    pub fn write_refusal(&self) -> Option<(MosaicError, Duration)> {
        match self.degradation_level() {
            DegradationLevel::Maintenance => Some((
                MosaicError::unavailable(self.maintenance().text()),
                MAINTENANCE_RETRY_AFTER,
            )),
            DegradationLevel::ReadOnly => Some((
                MosaicError::unavailable(
                    "Mosaic is read-only for now: a database is unavailable. Reads still work; retry the change later.",
                ),
                self.retry_after(),
            )),
            _ => None,
        }
    }

    /// How long a client refused for unavailability should wait: the
    /// longest time an open breaker has left, at least a second (a second
    /// too when only the probe failed).
    pub fn retry_after(&self) -> Duration {
        self.breakers
            .all()
            .filter_map(|b| b.retry_after())
            .max()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_secs(1))
    }

    /// The record shards with what they hold: tenants placed on each (on
    /// the built-in shard also tenants never placed, from before shards
    /// existed) and records.
    pub async fn shards(&self) -> Vec<ShardStatus> {
        let placements = self.shards.directory().placements().await.ok();
        let total = self.shards.directory().tenant_count().await.ok();
        let mut out = Vec::new();
        for s in self.shards.all() {
            let records = s.census.record_count().await.ok();
            let placed = placements
                .as_ref()
                .map(|ps| ps.iter().filter(|p| p.shard_id == s.id).count() as u64);
            let tenants = if s.id == LOCAL_SHARD {
                match (placed, total, placements.as_ref()) {
                    (Some(local), Some(total), Some(ps)) => {
                        Some(local + total.saturating_sub(ps.len() as u64))
                    }
                    (p, _, _) => p,
                }
            } else {
                placed
            };
            out.push(ShardStatus {
                name: s.id.clone(),
                up: records.is_some(),
                tenants,
                records,
            });
        }
        out
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
    breaker: Option<BreakerState>,
) -> DependencyProbe {
    DependencyProbe {
        name: name.to_string(),
        role: DependencyRole::Database,
        up: r.is_ok(),
        latency,
        error: r.err().map(|e| e.message),
        breaker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(role: DependencyRole, up: bool) -> DependencyProbe {
        DependencyProbe {
            name: "dependency".into(),
            role,
            up,
            latency: Duration::ZERO,
            error: None,
            breaker: None,
        }
    }

    #[test]
    fn levels_follow_the_seeds_determination() {
        use DependencyRole::*;
        let level =
            |m, deps: &[DependencyProbe]| DegradationLevel::from_dependencies(m, deps).level();
        assert_eq!(level(false, &[dep(Database, true), dep(Database, true)]), 0);
        assert_eq!(level(false, &[dep(Database, true), dep(Ai, false)]), 1);
        assert_eq!(level(false, &[dep(Cache, false), dep(Ai, false)]), 2);
        assert_eq!(level(false, &[dep(Database, false), dep(Cache, false)]), 3);
        assert_eq!(level(true, &[dep(Database, false)]), 4);
        assert_eq!(level(true, &[dep(Database, true)]), 4);
        assert_eq!(
            level(false, &[dep(Database, true), dep(Shard, false)]),
            0,
            "a registered shard down fails only its tenants"
        );
        assert_eq!(DegradationLevel::ReadOnly.name(), "read_only");
    }
}
