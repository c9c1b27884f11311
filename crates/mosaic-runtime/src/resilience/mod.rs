//! How the platform survives its dependencies failing: a circuit breaker per
//! dependency ([`breaker`]), one retry policy ([`retry`]), the operator's
//! maintenance switch ([`maintenance`]), and the degradation level that
//! follows from them (level 3, read-only, refuses writes; level 4,
//! maintenance, refuses everything but health and the switch itself).
//! Time limits of external calls are in [`mosaic_types::timeouts`].

pub mod breaker;
pub mod maintenance;
pub mod retry;

pub use breaker::{BreakerConfig, BreakerSettings, BreakerState, CircuitBreaker};
pub use maintenance::Maintenance;
pub use retry::{retry, retry_http, CallKind, HttpFailure, HttpOutcome, RetryPolicy};

use crate::clock::Clock;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The breakers of the platform's dependencies. Named like the dependencies
/// of `/readyz`: `metadata_store`, and one per record shard (`record_store`
/// for the embedded shard).
pub struct Breakers {
    pub metadata: Arc<CircuitBreaker>,
    pub shards: Vec<Arc<CircuitBreaker>>,
    /// One per metadata read replica (`metadata-replica:<n>`). Not in
    /// [`Breakers::all`]: a replica down sends its reads elsewhere and
    /// degrades nothing.
    pub replicas: Vec<Arc<CircuitBreaker>>,
    /// One per registered shard (`shard:<id>`), made when the shard is
    /// first opened. Not in [`Breakers::all`] either: a registered shard
    /// down fails its own tenants fast and leaves the level alone.
    pub registered: Arc<ShardBreakers>,
}

/// The breakers of registered shards, by shard id. A shard reopened (its
/// row changed) keeps its breaker and so its state.
pub struct ShardBreakers {
    settings: BreakerSettings,
    clock: Arc<dyn Clock>,
    by_id: Mutex<BTreeMap<String, Arc<CircuitBreaker>>>,
}

impl ShardBreakers {
    /// The breaker of shard `id`, made on first use.
    pub fn for_shard(&self, id: &str) -> Arc<CircuitBreaker> {
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_string())
            .or_insert_with(|| {
                Arc::new(CircuitBreaker::new(
                    format!("shard:{id}"),
                    self.settings,
                    self.clock.clone(),
                ))
            })
            .clone()
    }

    /// Every registered shard's breaker, in shard id order.
    pub fn all(&self) -> Vec<Arc<CircuitBreaker>> {
        let map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        map.values().cloned().collect()
    }
}

/// Dependency name of the embedded record shard's breaker.
pub const RECORD_STORE: &str = "record_store";
/// Dependency name of the metadata database's breaker.
pub const METADATA_STORE: &str = "metadata_store";

impl Breakers {
    /// Breakers for the metadata database and the built-in shard, and the
    /// registry of registered shards' breakers, with `config`'s settings.
    pub fn new(clock: Arc<dyn Clock>, config: &BreakerConfig) -> Breakers {
        Breakers {
            metadata: Arc::new(CircuitBreaker::new(
                METADATA_STORE,
                config.metadata,
                clock.clone(),
            )),
            shards: vec![Arc::new(CircuitBreaker::new(
                RECORD_STORE,
                config.shard,
                clock.clone(),
            ))],
            replicas: Vec::new(),
            registered: Arc::new(ShardBreakers {
                settings: config.shard,
                clock,
                by_id: Mutex::default(),
            }),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<CircuitBreaker>> {
        std::iter::once(&self.metadata).chain(self.shards.iter())
    }

    pub fn by_dependency(&self, name: &str) -> Option<&Arc<CircuitBreaker>> {
        self.all().find(|b| b.dependency() == name)
    }
}
