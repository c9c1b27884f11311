//! The shared cache tier of a Mosaic deployment (decision 0012): the
//! optional L2 cache on Redis, the invalidation bus that carries metadata,
//! permission, sharing and session changes between instances, per-tenant
//! rate limits and distributed locks — each with an in-process equivalent,
//! so embedded mode (no Redis configured) behaves the same on one instance.
//!
//! **Architecture invariant:** Redis is never required for an answer. Every
//! Redis call passes the Redis circuit breaker and a timeout; a refused,
//! failed or slow call is a cache miss (or a local decision), never an
//! error to the client. The databases stay the source of truth.

pub mod bus;
pub mod codec;
pub mod keys;
pub mod link;
pub mod lock;
pub mod ratelimit;
pub mod stale;
pub mod stats;
pub mod tier;
pub mod xfetch;

pub use bus::{Envelope, Invalidation};
pub use keys::Keys;
pub use link::{RedisLink, Unavailable};
pub use stale::LastGood;
pub use stats::{CacheLayer, LayerStats, TierStats};
pub use tier::CacheTier;

use std::time::Duration;

/// Size and lifetime of one in-process (L1) cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1Sizing {
    /// Most entries kept.
    pub capacity: u64,
    /// Lifetime after the entry was written.
    pub ttl: Duration,
    /// Lifetime after the entry was last read (`None`: only `ttl`).
    pub tti: Option<Duration>,
}

/// The seed's L1 sizes ("Cache Configuration").
pub mod defaults {
    use super::L1Sizing;
    use std::time::Duration;

    /// Object definitions: 50,000 entries, 60 s after write, 30 s after access.
    pub const METADATA: L1Sizing = L1Sizing {
        capacity: 50_000,
        ttl: Duration::from_secs(60),
        tti: Some(Duration::from_secs(30)),
    };
    /// Compiled formula ASTs: 100,000 entries, 300 s.
    pub const FORMULAS: L1Sizing = L1Sizing {
        capacity: 100_000,
        ttl: Duration::from_secs(300),
        tti: None,
    };
    /// Permission snapshots: 200,000 entries, 120 s.
    pub const PERMISSIONS: L1Sizing = L1Sizing {
        capacity: 200_000,
        ttl: Duration::from_secs(120),
        tti: None,
    };
    /// Resolved sessions: 200,000 entries, 30 s (a revocation reaches every
    /// instance at once over the bus; the lifetime bounds a lost one).
    pub const SESSIONS: L1Sizing = L1Sizing {
        capacity: 200_000,
        ttl: Duration::from_secs(30),
        tti: None,
    };
    /// `meta:{tenant}:{object}` in Redis: 5 minutes.
    pub const METADATA_L2_TTL: Duration = Duration::from_secs(5 * 60);
    /// `perm:{tenant}:{user}` in Redis: 2 minutes.
    pub const PERMISSIONS_L2_TTL: Duration = Duration::from_secs(2 * 60);
    /// Longest a resolved session is kept in Redis (never past its expiry).
    pub const SESSION_L2_TTL: Duration = Duration::from_secs(10 * 60);
}

/// How the cache tier is configured (`PlatformConfig::cache`).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// `redis://host:port/db` (`MOSAIC_REDIS_URL`); `None`: embedded mode,
    /// no L2, invalidation and limits within this process only.
    pub redis_url: Option<String>,
    /// The CA certificate (PEM) a `rediss://` server's certificate must
    /// chain to (`MOSAIC_REDIS_CA_FILE`); `None`: the system's roots.
    pub redis_ca_file: Option<std::path::PathBuf>,
    /// Prepended to every Redis key and channel (`MOSAIC_REDIS_PREFIX`), so
    /// deployments or test runs can share one Redis without colliding.
    pub key_prefix: String,
    pub metadata: L1Sizing,
    pub formulas: L1Sizing,
    pub permissions: L1Sizing,
    pub sessions: L1Sizing,
    pub metadata_l2_ttl: Duration,
    pub session_l2_ttl: Duration,
    /// XFetch's β: above 1 refreshes earlier, 0 turns early refresh off.
    pub early_refresh_beta: f64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            redis_url: None,
            redis_ca_file: None,
            key_prefix: String::new(),
            metadata: defaults::METADATA,
            formulas: defaults::FORMULAS,
            permissions: defaults::PERMISSIONS,
            sessions: defaults::SESSIONS,
            metadata_l2_ttl: defaults::METADATA_L2_TTL,
            session_l2_ttl: defaults::SESSION_L2_TTL,
            early_refresh_beta: xfetch::DEFAULT_BETA,
        }
    }
}
