//! The last good copy of what a cache loaded, kept past the cache's own
//! lifetime, for when the database behind it is unavailable: the seed's
//! "serve stale" fallback of the metadata database's breaker. A caller
//! whose load failed with `SERVICE_UNAVAILABLE` gets the kept copy (if it
//! is still valid by the caller's rule) instead of the error; any other
//! error is passed on. Changes drop their copies ([`LastGood::forget`]),
//! so only what nobody could have changed meanwhile is ever served.

use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a copy stays available after it was last loaded.
pub const STALE_FALLBACK_TTL: Duration = Duration::from_secs(60 * 60);

/// Whether a failed load may fall back to a kept copy: the database (or
/// its breaker) said it is unavailable.
pub fn falls_back(e: &MosaicError) -> bool {
    e.code == ErrorCode::SERVICE_UNAVAILABLE
}

pub struct LastGood<K, V> {
    /// The cache's name in `cache_stale_served_total{cache}`.
    cache: &'static str,
    entries: moka::sync::Cache<K, V>,
    served: AtomicU64,
}

impl<K, V> LastGood<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(cache: &'static str, capacity: u64) -> LastGood<K, V> {
        LastGood {
            cache,
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(STALE_FALLBACK_TTL)
                .build(),
            served: AtomicU64::new(0),
        }
    }

    /// Keeps `v` as the last good copy of `k`.
    pub fn remember(&self, k: K, v: V) {
        self.entries.insert(k, v);
    }

    /// `k` changed: its copy must never be served.
    pub fn forget(&self, k: &K) {
        self.entries.invalidate(k);
    }

    pub fn forget_all(&self) {
        self.entries.invalidate_all();
    }

    /// The kept copy of `k` if `err` says the database is unavailable and
    /// the copy passes `valid`; else `err`.
    pub fn or_stale(&self, k: &K, err: MosaicError, valid: impl Fn(&V) -> bool) -> MosaicResult<V> {
        if !falls_back(&err) {
            return Err(err);
        }
        match self.entries.get(k).filter(|v| valid(v)) {
            Some(v) => {
                self.count();
                Ok(v)
            }
            None => Err(err),
        }
    }

    /// The kept copy of `k`, counted as served stale (the caller decided
    /// the database is unavailable).
    pub fn get(&self, k: &K) -> Option<V> {
        let v = self.entries.get(k)?;
        self.count();
        Some(v)
    }

    /// Counts a stale answer found elsewhere (e.g. an old L2 entry).
    pub fn count(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("cache_stale_served_total", "cache" => self.cache).increment(1);
    }

    /// Stale answers given so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailability_falls_back_and_only_to_a_valid_copy() {
        let lg: LastGood<String, u32> = LastGood::new("test", 10);
        let down = || MosaicError::unavailable("database down");
        assert!(
            lg.or_stale(&"a".into(), down(), |_| true).is_err(),
            "nothing kept"
        );
        lg.remember("a".into(), 7);
        assert_eq!(lg.or_stale(&"a".into(), down(), |_| true).unwrap(), 7);
        assert_eq!(lg.served(), 1);
        assert!(
            lg.or_stale(&"a".into(), down(), |v| *v > 7).is_err(),
            "invalid copy"
        );
        let other = MosaicError::not_found("gone");
        let e = lg.or_stale(&"a".into(), other, |_| true).unwrap_err();
        assert_eq!(e.code, ErrorCode::NOT_FOUND, "a domain answer is passed on");
        lg.forget(&"a".into());
        assert!(
            lg.or_stale(&"a".into(), down(), |_| true).is_err(),
            "forgotten"
        );
        assert_eq!(lg.served(), 1);
    }
}
