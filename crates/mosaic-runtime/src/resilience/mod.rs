//! How the platform survives its dependencies failing: a circuit breaker per
//! dependency ([`breaker`]), one retry policy ([`retry`]), the operator's
//! maintenance switch ([`maintenance`]), and the degradation level that
//! follows from them (level 3, read-only, refuses writes; level 4,
//! maintenance, refuses everything but health and the switch itself).
//! Time limits of external calls are in [`mosaic_types::timeouts`].

pub mod breaker;
pub mod maintenance;
pub mod retry;

pub use breaker::{BreakerSettings, BreakerState, CircuitBreaker};
pub use maintenance::Maintenance;
pub use retry::{retry, retry_http, CallKind, HttpFailure, HttpOutcome, RetryPolicy};

use crate::clock::Clock;
use std::sync::Arc;

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
}

/// Dependency name of the embedded record shard's breaker.
pub const RECORD_STORE: &str = "record_store";
/// Dependency name of the metadata database's breaker.
pub const METADATA_STORE: &str = "metadata_store";

impl Breakers {
    /// Breakers for the metadata database and the embedded shard, with the
    /// seed's settings.
    pub fn embedded(clock: Arc<dyn Clock>) -> Breakers {
        Breakers {
            metadata: Arc::new(CircuitBreaker::new(
                METADATA_STORE,
                BreakerSettings::METADATA_DB,
                clock.clone(),
            )),
            shards: vec![Arc::new(CircuitBreaker::new(
                RECORD_STORE,
                BreakerSettings::SHARD,
                clock,
            ))],
            replicas: Vec::new(),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<CircuitBreaker>> {
        std::iter::once(&self.metadata).chain(self.shards.iter())
    }

    pub fn by_dependency(&self, name: &str) -> Option<&Arc<CircuitBreaker>> {
        self.all().find(|b| b.dependency() == name)
    }
}
