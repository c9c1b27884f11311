//! Figures of every cache by layer: hits, misses, evictions, loads and the
//! time loads took. The admin API (`GET /services/admin/v1/cache`) and
//! `/metrics` read them; they are kept here, not only as Prometheus
//! counters, so a process without a metrics recorder can report them too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where a lookup was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLayer {
    /// In process (moka).
    L1,
    /// Redis.
    L2,
}

impl CacheLayer {
    pub fn name(self) -> &'static str {
        match self {
            CacheLayer::L1 => "l1",
            CacheLayer::L2 => "l2",
        }
    }
}

/// Counters of one cache at one layer.
#[derive(Debug, Default)]
pub struct LayerStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub evictions: AtomicU64,
    /// Loads from the layer below (for L1: from L2 or the database; for
    /// L2: from the database).
    pub loads: AtomicU64,
    pub load_nanos: AtomicU64,
    /// Lookups the layer could not answer at all (Redis refused or failed).
    pub errors: AtomicU64,
}

/// A point-in-time copy of [`LayerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerFigures {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub loads: u64,
    pub load_nanos: u64,
    pub errors: u64,
}

impl LayerFigures {
    /// Hits over lookups, `None` before the first lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let n = self.hits + self.misses;
        (n > 0).then(|| self.hits as f64 / n as f64)
    }

    /// Mean time of one load, `None` before the first.
    pub fn mean_load(&self) -> Option<Duration> {
        (self.loads > 0).then(|| Duration::from_nanos(self.load_nanos / self.loads))
    }
}

impl LayerStats {
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }
    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
    pub fn evicted(&self) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
    }
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    pub fn loaded(&self, took: Duration) {
        self.loads.fetch_add(1, Ordering::Relaxed);
        self.load_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn figures(&self) -> LayerFigures {
        LayerFigures {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            load_nanos: self.load_nanos.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// The tier's own figures: invalidations sent and received, L1 flushes
/// after a lost subscription, early refreshes, warmed tenants.
#[derive(Debug, Default)]
pub struct TierStats {
    pub published: AtomicU64,
    pub received: AtomicU64,
    /// Invalidations that could not be published (Redis down), kept to be
    /// sent when it is back.
    pub deferred: AtomicU64,
    /// Whole-L1 drops after (re)subscribing.
    pub l1_flushes: AtomicU64,
    pub resubscriptions: AtomicU64,
    pub early_refreshes: AtomicU64,
    pub warmed_tenants: AtomicU64,
}

impl TierStats {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
