//! Hit and miss counters of an in-process cache, read by the operator's
//! status view (the Prometheus counters are kept beside them by the cache
//! owners; these survive a process that runs without a metrics recorder).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl CacheStats {
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// (hits, misses) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}
